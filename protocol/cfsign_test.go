package protocol

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/halleypush/halley/persist"
)

// TestHMACSignerMatchesCryptoHMAC: the allocation-free HMAC is RFC 2104's,
// for secrets shorter than, as long as and longer than a SHA-256 block, and
// one signer reused across keys keeps no state from the previous one.
func TestHMACSignerMatchesCryptoHMAC(t *testing.T) {
	s := newHMACSigner()
	for _, n := range []int{0, 1, 32, 63, 64, 65, 200, 32} {
		secret := strings.Repeat("k", n)
		for _, text := range []string{"", "x", strings.Repeat("t", 1000)} {
			head := []byte("key\nident\n")
			m := hmac.New(sha256.New, []byte(secret))
			m.Write(head)
			m.Write([]byte(text))
			if got, want := s.sum(secret, head, []byte(text)), m.Sum(nil); !bytes.Equal(got, want) {
				t.Fatalf("secret of %d bytes, text of %d: %x, crypto/hmac %x", n, len(text), got, want)
			}
		}
	}
}

// TestCFHMACVectors pins CF-P-10's signed message: the vectors were
// computed with Python's hmac module, not with this code.
func TestCFHMACVectors(t *testing.T) {
	for _, v := range []struct {
		secret, pushID, want string
	}{
		{"0", "", "15b3c60d98257e75da0696a3015bcb6261f31b98190016ffc2c5f39da5f578b4"},
		{"1", "42", "c035526eebfeb0f86ee78779707da69a7dcc6bbf1b78bd0ad1091633d2fb67c7"},
	} {
		pf := pushFields{ident: []byte("visitors"), secret: []byte(v.secret), pushID: []byte(v.pushID), text: []byte("284 people")}
		head := appendSignedHead(nil, "1", &pf, []byte("1700000000"), []byte("n-1_a"))
		s := newHMACSigner()
		if got := hex.EncodeToString(s.sum("c1h89chHaka9s1", head, pf.text)); got != v.want {
			t.Errorf("secret=%s push_id=%q: %s, want %s", v.secret, v.pushID, got, v.want)
		}
		if !s.verify([]byte(strings.ToUpper(v.want)), "c1h89chHaka9s1", head, pf.text) {
			t.Error("upper-case hex refused")
		}
	}
}

// signedPush is a push form; sign fills signature (and secure, with md5)
// over the fields as they are at that moment, so a test can change a field
// afterwards and send what an attacker would.
type signedPush struct {
	ident, secret, pushID, ts, nonce, text string
	secure, signature                      string
	omit                                   map[string]bool // fields not sent at all
}

func (f *cfFixture) signedPush(n int) *signedPush {
	return &signedPush{
		ident: "chat", secret: "0", text: fmt.Sprintf("text %d", n),
		ts:    strconv.FormatInt(f.clk.now().Unix(), 10),
		nonce: fmt.Sprintf("nonce-%d", n),
		omit:  map[string]bool{"secure": true, "push_id": true},
	}
}

// sign computes the signature with key and secret (the account's
// cf_api_key and api_secret unless a test says otherwise).
func (p *signedPush) sign(key, secret string) *signedPush {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strings.Join([]string{key, p.ident, p.secret, p.pushID, p.ts, p.nonce, p.text}, "\n")))
	p.signature = hex.EncodeToString(m.Sum(nil))
	return p
}

// withSecure adds CF-P-03's md5 secure.
func (p *signedPush) withSecure(key, secret string) *signedPush {
	p.secure = md5hex(key + md5hex(secret) + p.ident + p.text)
	delete(p.omit, "secure")
	return p
}

func (p *signedPush) body() string {
	var b []string
	for _, kv := range [][2]string{
		{"identifier", p.ident}, {"secret", p.secret}, {"text", p.text}, {"push_id", p.pushID},
		{"ts", p.ts}, {"nonce", p.nonce}, {"signature", p.signature}, {"secure", p.secure},
	} {
		if !p.omit[kv[0]] {
			b = append(b, kv[0]+"="+url.QueryEscape(kv[1]))
		}
	}
	return strings.Join(b, "&")
}

// TestCFPushSigned is CF-P-10 through the whole push path: the signature
// covers every field, expires after 300 s either way, takes the place of
// the md5 secure or is checked with it, and its fields' shapes are 400s
// checked in C-04's order.
func TestCFPushSigned(t *testing.T) {
	f, fs := newFaultFixture(t)
	key, secret := f.acct.CFAPIKey, f.acct.APISecret
	n := 0
	next := func() *signedPush { n++; return f.signedPush(n) }
	sign := func(p *signedPush) *signedPush { return p.sign(key, secret) }
	now := f.clk.now().Unix()
	ts := func(d int64) string { return strconv.FormatInt(now+d, 10) }

	type tc struct {
		name   string
		push   *signedPush
		status int
		msg    string
	}
	cases := []tc{
		{"signature only", sign(next()), 200, ""},
		{"signature with push_id", func() *signedPush { p := next(); p.pushID = "77"; delete(p.omit, "push_id"); return sign(p) }(), 200, ""},
		{"signature in upper-case hex", func() *signedPush { p := sign(next()); p.signature = strings.ToUpper(p.signature); return p }(), 200, ""},
		{"signature and secure", sign(next()).withSecure(key, secret), 200, ""},
		{"signature and a wrong secure", sign(next()).withSecure(key, "other"), 403, "secure does not match"},
		{"a wrong signature and secure", next().sign(key, "other").withSecure(key, secret), 403, "signature does not match"},
		{"signature with the private key", next().sign(f.acct.APIKey, secret), 403, "signature does not match"},
		{"signature of zeros", func() *signedPush { p := next(); p.signature = strings.Repeat("0", 64); return p }(), 403, "signature does not match"},
		{"signature one digit short", func() *signedPush { p := sign(next()); p.signature = p.signature[:63]; return p }(), 403, "signature does not match"},
		{"signature not hex", func() *signedPush { p := sign(next()); p.signature = "zz" + p.signature[2:]; return p }(), 403, "signature does not match"},
		{"empty signature", func() *signedPush { p := next(); p.signature = ""; return p }(), 403, "signature does not match"},
		{"ts 300 s behind", func() *signedPush { p := next(); p.ts = ts(-300); return sign(p) }(), 200, ""},
		{"ts 300 s ahead", func() *signedPush { p := next(); p.ts = ts(300); return sign(p) }(), 200, ""},
		{"ts 301 s behind", func() *signedPush { p := next(); p.ts = ts(-301); return sign(p) }(), 403, "ts is more than 300 s away from the server's clock"},
		{"ts 301 s ahead", func() *signedPush { p := next(); p.ts = ts(301); return sign(p) }(), 403, "ts is more than 300 s away from the server's clock"},
		{"ts 0", func() *signedPush { p := next(); p.ts = "0"; return sign(p) }(), 403, "ts is more than 300 s away from the server's clock"},
		{"ts 2^63-1", func() *signedPush { p := next(); p.ts = "9223372036854775807"; return sign(p) }(), 403, "ts is more than 300 s away from the server's clock"},
		{"nonce of 64", func() *signedPush { p := next(); p.nonce = strings.Repeat("aZ9_-", 12) + "abcd"; return sign(p) }(), 200, ""},
		{"neither secure nor signature", func() *signedPush {
			p := next()
			p.omit = map[string]bool{"secure": true, "signature": true, "ts": true, "nonce": true, "push_id": true}
			return p
		}(), 400, "secure is required, unless signature, ts and nonce are given"},
		{"413 before 403", func() *signedPush { p := next(); p.text = strings.Repeat("x", maxCFText+1); return p }(), 413, "text is larger than 65536 bytes"},
		{"400 before 403", func() *signedPush { p := next(); p.ts = "x"; return p }(), 400, "ts must be unix seconds, a decimal integer"},
		{"push_id 0 before 403", func() *signedPush { p := next(); p.pushID = "0"; delete(p.omit, "push_id"); return p }(), 400, "push_id must be a decimal integer 1..2^63-1"},
	}
	// Every field is covered: change one after signing.
	for _, field := range []string{"identifier", "secret", "push_id", "ts", "nonce", "text"} {
		p := sign(next())
		switch field {
		case "identifier":
			p.ident = "Chat" // the path's identifier ignoring case, signed as "chat"
		case "secret":
			p.secret = "1"
		case "push_id":
			p.pushID = "5"
			delete(p.omit, "push_id")
		case "ts":
			p.ts = ts(1)
		case "nonce":
			p.nonce += "x"
		case "text":
			p.text += "!"
		}
		cases = append(cases, tc{"changed " + field, p, 403, "signature does not match"})
	}
	for _, bad := range []string{"", "-1", "+5", " 1", "1 ", "1.5", "1e9", "0x10", "abc", "9223372036854775808"} {
		p := next()
		p.ts = bad
		cases = append(cases, tc{"ts " + strconv.Quote(bad), sign(p), 400, "ts must be unix seconds, a decimal integer"})
	}
	for _, bad := range []string{"", strings.Repeat("n", 65), "a b", "a.b", "a/b", "é", "a+b"} {
		p := next()
		p.nonce = bad
		cases = append(cases, tc{"nonce " + strconv.Quote(bad), sign(p), 400, "nonce must be 1..64 chars of [A-Za-z0-9_-]"})
	}
	for _, missing := range [][]string{{"ts"}, {"nonce"}, {"signature"}, {"ts", "nonce"}, {"signature", "nonce"}, {"signature", "ts"}} {
		p := sign(next()).withSecure(key, secret)
		for _, m := range missing {
			p.omit[m] = true
		}
		cases = append(cases, tc{"without " + strings.Join(missing, ", "), p, 400, "signature, ts and nonce must be given together"})
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var before, after int
			fs.set(func(s *faultStore) { before = len(s.pushes) })
			r := f.postPush(key, "chat", c.push.body())
			if c.status != 200 {
				wantError(t, r, c.status, c.msg)
				if fs.set(func(s *faultStore) { after = len(s.pushes) }); after != before {
					t.Fatal("a refused push reached the store")
				}
				return
			}
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			got := fs.lastPush(t)
			if got.Nonce != c.push.nonce {
				t.Fatalf("the store got nonce %q, want %q", got.Nonce, c.push.nonce)
			}
			if got.HasSecure != !c.push.omit["secure"] {
				t.Fatalf("HasSecure %v with secure sent=%v", got.HasSecure, !c.push.omit["secure"])
			}
		})
	}
}

// TestCFPushSecureDigest is CF-P-09's input: the store gets the md5
// digest the push's secure carried (whatever the hex case), so it can
// refuse a secret push's secure in the clear; its refusal is a 403.
func TestCFPushSecureDigest(t *testing.T) {
	f, fs := newFaultFixture(t)
	key, secret := f.acct.CFAPIKey, f.acct.APISecret
	sec := md5hex(key + md5hex(secret) + "chat" + "hidden")
	want := md5.Sum([]byte(key + md5hex(secret) + "chat" + "hidden"))
	// secret=0 first: after a secret=1 push the store (CF-P-09) refuses
	// the same secure in the clear, which the end of this test covers.
	for _, s := range []string{"0", "1"} {
		for _, secure := range []string{sec, strings.ToUpper(sec)} {
			r := f.postPush(key, "chat", "identifier=chat&secret="+s+"&text=hidden&secure="+secure)
			if r.status != 200 {
				t.Fatalf("secret=%s: %d %s", s, r.status, r.body)
			}
			p := fs.lastPush(t)
			if !p.HasSecure || p.Secure != want || p.Nonce != "" {
				t.Fatalf("the store got HasSecure=%v Secure=%x Nonce=%q, want the digest %x", p.HasSecure, p.Secure, p.Nonce, want)
			}
		}
	}
	fs.set(func(s *faultStore) { s.pushErr = persist.ErrSecretReplay })
	wantError(t, f.postPush(key, "chat", "identifier=chat&secret=0&text=hidden&secure="+sec), 403, "secure already used by a secret push")
	fs.set(func(s *faultStore) { s.pushErr = persist.ErrNonceReused })
	wantError(t, f.postPush(key, "chat", f.signedPush(1).sign(key, secret).body()), 403, "nonce already used")
}

// TestCFPushRequireSignature: an account set to "v2" refuses a push that
// carries only the md5 secure (403) and takes a signed one, with or
// without secure.
func TestCFPushRequireSignature(t *testing.T) {
	f, fs := newFaultFixture(t)
	key, secret := f.acct.CFAPIKey, f.acct.APISecret
	fs.set(func(s *faultStore) { s.account = func(a *persist.Account) { a.RequireSignature = "v2" } })
	md5Only := "identifier=chat&secret=0&text=x&secure=" + md5hex(key+md5hex(secret)+"chatx")
	wantError(t, f.postPush(key, "chat", md5Only), 403, "this account accepts only pushes with signature, ts and nonce")
	if r := f.postPush(key, "chat", f.signedPush(1).sign(key, secret).body()); r.status != 200 {
		t.Fatalf("signed push: %d %s", r.status, r.body)
	}
	if r := f.postPush(key, "chat", f.signedPush(2).sign(key, secret).withSecure(key, secret).body()); r.status != 200 {
		t.Fatalf("signed push with secure: %d %s", r.status, r.body)
	}
	wantError(t, f.postPush(key, "chat", "identifier=chat&secret=0&text=x"), 400, errMissingSecure.msg)
	// Without the setting, md5 alone is still accepted.
	fs.set(func(s *faultStore) { s.account = nil })
	if r := f.postPush(key, "chat", md5Only); r.status != 200 {
		t.Fatalf("md5 push without the setting: %d %s", r.status, r.body)
	}
}

// FuzzPushAuth checks parsePushAuth against a model built on net/url,
// regexp and strconv: which of secure, signature, ts and nonce were sent
// decides the answer (secure alone; all three of signature, ts, nonce;
// or both), a ts is 1..19 decimal digits up to 2^63-1, a nonce 1..64 of
// [A-Za-z0-9_-], and what is accepted is handed on as sent.
func FuzzPushAuth(f *testing.F) {
	for _, s := range []string{
		"secure=abc", "signature=ab&ts=1700000000&nonce=n-1", "signature=&ts=&nonce=",
		"signature=x&ts=1&nonce=a&secure=y", "ts=1&nonce=a", "signature=x", "nonce=a%2Bb&ts=1&signature=s",
		"signature=s&ts=9223372036854775807&nonce=" + strings.Repeat("n", 64),
		"signature=s&ts=9223372036854775808&nonce=n", "signature=s&ts=+1&nonce=n", "signature=s&ts=1&nonce=a+b", "",
	} {
		f.Add(s)
	}
	nonceRE := regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	tsRE := regexp.MustCompile(`^[0-9]{1,19}$`)
	f.Fuzz(func(t *testing.T, body string) {
		var fm form
		fm.parse(nil, []byte(body), true)
		p, e := parsePushAuth(&fm)
		std, err := url.ParseQuery(body)
		if fm.err != nil || err != nil {
			return // decoding is FuzzFormParse's
		}
		has := func(k string) bool { return len(std[k]) > 0 }
		var want *apiError
		var tsSec uint64
		switch n := btoi(has("signature")) + btoi(has("ts")) + btoi(has("nonce")); {
		case n == 0 && !has("secure"):
			want = errMissingSecure
		case n == 0:
		case n < 3:
			want = errSignatureFields
		default:
			ts := std.Get("ts")
			tsSec, err = strconv.ParseUint(ts, 10, 63)
			if !tsRE.MatchString(ts) || err != nil {
				want = errBadTS
			} else if !nonceRE.MatchString(std.Get("nonce")) {
				want = errBadNonce
			}
		}
		if e != want {
			t.Fatalf("%q: %v, want %v", body, e, want)
		}
		if e != nil {
			return
		}
		if p.hasSecure != has("secure") || string(p.secure) != std.Get("secure") || p.signed != has("signature") {
			t.Fatalf("%q: secure %v %q, signed %v", body, p.hasSecure, p.secure, p.signed)
		}
		if p.signed && (string(p.signature) != std.Get("signature") || string(p.ts) != std.Get("ts") ||
			string(p.nonce) != std.Get("nonce") || p.tsSec != tsSec) {
			t.Fatalf("%q: signature %q ts %q (%d) nonce %q", body, p.signature, p.ts, p.tsSec, p.nonce)
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// FuzzHMACSigner: the allocation-free HMAC-SHA256 equals crypto/hmac's
// for any secret, head and text, and verify accepts exactly its hex.
func FuzzHMACSigner(f *testing.F) {
	f.Add("c1h89chHaka9s1", []byte("1\nvisitors\n0\n\n1700000000\nn\n"), []byte("284 people"))
	f.Add(strings.Repeat("s", 65), []byte{}, []byte{0xff})
	s := newHMACSigner()
	f.Fuzz(func(t *testing.T, secret string, head, text []byte) {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(head)
		m.Write(text)
		want := m.Sum(nil)
		if got := s.sum(secret, head, text); !bytes.Equal(got, want) {
			t.Fatalf("%x, crypto/hmac %x", got, want)
		}
		if !s.verify([]byte(hex.EncodeToString(want)), secret, head, text) {
			t.Fatal("its own hex refused")
		}
		want[0] ^= 1
		if s.verify([]byte(hex.EncodeToString(want)), secret, head, text) {
			t.Fatal("another MAC accepted")
		}
	})
}
