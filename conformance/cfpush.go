package conformance

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cfPushCases are the Cometify push rules (docs/spec.md §4).
func cfPushCases() []ruleCase {
	return []ruleCase{
		{rule: "CF-P-01", what: "identifiers ^[a-zA-Z][a-zA-Z0-9_]{0,59}$, case-insensitive: a push to Chat reaches a listener of chat", run: checkPushIdentifier},
		{rule: "CF-P-02", what: "form fields identifier (= path ignoring case), secret 0/1, text ≤65536 bytes (413), secure, push_id 1..2^63-1", run: checkPushFields},
		{rule: "CF-P-03", what: "secure = md5hex(cf_api_key + md5hex(secret) + identifier + text): seed vector, form identifier, decoded text, hex case; 403 otherwise (over the private api_key too)", run: checkPushSecure},
		{rule: "CF-P-04", what: "assigned ids are 1 + highest, strictly increasing; a push_id not above the highest 409; ids 1..2^63-1 (0, 2^63, -1, +1, ' 1' 400); at 2^63-1 delivered exactly everywhere, then an assigned id 409 and nothing else harmed; bad path identifier 400", run: checkPushIDs},
		{rule: "CF-P-05", what: `success answer is exactly {"code":"ok","push_id":<int>}`, run: checkPushAnswer},
		{rule: "CF-P-06", what: "same push_id again: same text ok and delivered once, different text 409", run: checkPushIdempotent},
		{rule: "CF-P-07", what: "only POST (405); unknown apiKey 401, the private api_key in the path too; precedence 405, 401, 400, 413, 403, 409 (C-04)", run: checkPushMethodKey},
		{rule: "CF-P-08", what: "pushes retained at least --cf-replay-window: an id-0 listener gets pushes from within it", run: checkPushRetention, timeout: 90 * time.Second},
		{rule: "CF-P-09", what: "a secure accepted with secret=1 is refused (403) with secret=0 on that identifier (with a push_id, in hex of another case, in the same pipeline); nothing reaches a keyless listener; other texts still push", run: checkSecretReplay},
		{rule: "CF-P-10", what: "HMAC-SHA256 signature with ts and nonce: accepted without secure; wrong, |now-ts| > 300 s, reused nonce (on any identifier of the account) 403; malformed ts or nonce 400; with secure both must verify; every field covered; C-04 order", run: checkPushSignature},
	}
}

func checkPushIdentifier(t *caseT) {
	a := t.cfg.Account
	// The whole string must match.
	long := "a" + strings.Repeat("b", 59)
	for _, good := range []string{"a", "Z", "a_1", long} {
		t.pushAs(a, good, "x", "0", "")
	}
	for _, bad := range []string{"1abc", "_abc", "a-b", "a.b", "a%20b", "%C3%BCber", long + "c", "abc%0A"} {
		// The form identifier equals the path's, so only the name is wrong.
		dec := strings.NewReplacer("%20", " ", "%C3%BC", "ü", "%0A", "\n").Replace(bad)
		t.wantError(t.pushTo(a.CFKey, bad, pushForm(a, dec, "x", "0", "")), 400, fmt.Sprintf("identifier %q", dec))
	}

	// Chat and chat are one identifier: one id sequence, one set of
	// listeners, and pushes name it in lower case.
	name := ident()
	w := t.watchCF(name)
	upper := "C" + strings.ToUpper(name[1:])
	mixed := "c" + strings.ToUpper(name[1:2]) + name[2:]
	var streams []*cfStream
	for _, via := range []string{viaWS, viaSSE} {
		streams = append(streams, t.openCF(via, name, cfOpen{}), t.openCF(via, upper, cfOpen{}))
	}
	id1 := t.pushAs(a, upper, "one", "0", "")
	id2 := t.pushAs(a, mixed, "two", "0", "")
	id3 := t.pushAs(a, name, "three", "0", "")
	if id2 <= id1 || id3 <= id2 {
		t.Fatalf("pushes to %s, %s and %s got ids %d, %d, %d: one identifier, so they must increase", upper, mixed, name, id1, id2, id3)
	}
	want := []cfItem{pushed(name, id1, "one"), pushed(name, id2, "two"), pushed(name, id3, "three")}
	for i, s := range streams {
		s.expect(5*time.Second, want, fmt.Sprintf("listener %d of %s/%s (pushes to %s, %s, %s)", i+1, name, upper, upper, mixed, name))
	}
	// A LIST naming one identifier twice, in any case, is a 400.
	t.wantError(t.refusedCF(viaWS, listenerPath(a, viaWS, name+","+upper)), 400, "LIST "+name+","+upper)
	w.quiet()
}

func checkPushFields(t *caseT) {
	a := t.cfg.Account
	name := ident()
	w := t.watchCF(name)
	path := func(body string) *reply { return t.pushTo(a.CFKey, name, body) }
	sec := func(text string) string { return pushSecure(a.CFKey, a.Secret, name, text) }
	missing := []struct{ kv []string }{
		{[]string{"secret", "0", "text", "x", "secure", sec("x")}},
		{[]string{"identifier", name, "text", "x", "secure", sec("x")}},
		{[]string{"identifier", name, "secret", "0", "secure", sec("")}},
		{[]string{"identifier", name, "secret", "0", "text", "x"}},
	}
	for i, m := range missing {
		field := []string{"identifier", "secret", "text", "secure"}[i]
		t.wantError(path(form(m.kv...)), 400, "push without "+field)
	}
	other := ident()
	t.wantError(path(form("identifier", other, "secret", "0", "text", "x", "secure", pushSecure(a.CFKey, a.Secret, other, "x"))), 400,
		"form identifier "+other+" on path "+name)
	for _, s := range []string{"2", "", "yes", "-1", "01", "true"} {
		t.wantError(path(form("identifier", name, "secret", s, "text", "x", "secure", sec("x"))), 400, fmt.Sprintf("secret=%q", s))
	}
	for _, id := range []string{"abc", "-1", "1.5", "0x10", "1e3", "9223372036854775808", "99999999999999999999"} {
		t.wantError(path(pushForm(a, name, "x", "0", id)), 400, "push_id="+id)
	}
	// C-05 holds for pushes too.
	t.wantError(path(pushForm(a, name, "x", "0", "")+"&text=y"), 400, "text twice in the body")
	t.wantError(path(form("identifier", name, "secret", "0", "secure", sec("\xff"))+"&text=%ff"), 400, "text that is not UTF-8")
	t.wantError(path(form("identifier", name, "secret", "0", "secure", sec("a\x00b"))+"&text=a%00b"), 400, "text with NUL")

	// text: empty is a push, 65536 bytes (also as 2-byte characters) too,
	// one byte more is a 413.
	full := strings.Repeat("t", 65536)
	wide := strings.Repeat("é", 32768)
	l := t.openCF(viaWS, name, cfOpen{secureKey: listenKey(a.CFKey, a.Secret, name)})
	ids := []int64{
		t.pushAs(a, name, "", "0", ""),
		t.pushAs(a, name, full, "0", ""),
		t.pushAs(a, name, wide, "0", ""),
	}
	t.wantError(path(pushForm(a, name, full+"t", "0", "")), 413, "text of 65537 bytes")
	t.wantError(path(pushForm(a, name, wide+"a", "0", "")), 413, "text of 32769 characters, 65537 bytes")
	// The identifier may differ from the path's in case only.
	upper := strings.ToUpper(name)
	ids = append(ids, t.pushAnswer(path(pushForm(a, upper, "upper", "0", "")), "form identifier "+upper+" on path "+name, ""))
	ids = append(ids, t.pushAs(a, name, "secret", "1", ""))
	top := "9223372036854775807"
	topID := t.pushAs(a, name, "top", "0", top)
	l.expect(5*time.Second, []cfItem{
		pushed(name, ids[0], ""), pushed(name, ids[1], full), pushed(name, ids[2], wide),
		pushed(name, ids[3], "upper"), pushed(name, ids[4], "secret"), pushed(name, topID, "top"),
	}, "the accepted pushes")
	w.quiet()
}

func checkPushSecure(t *caseT) {
	if got := pushSecure("1", "c1h89chHaka9s1", "visitors", "284 people"); got != "149f26540f697a97e886e2527466c6e8" {
		t.Fatalf("the suite's secure for the seed vector is %s, want 149f26540f697a97e886e2527466c6e8", got)
	}
	a := t.cfg.Account
	name := ident()
	w := t.watchCF(name)
	upper := strings.ToUpper(name)
	l := t.openCF(viaWS, name, cfOpen{})
	body := func(formIdent, text, secure string) string {
		return form("identifier", formIdent, "secret", "0", "text", text, "secure", secure)
	}
	var want []cfItem
	ok := func(formIdent, text, secure, what string) {
		id := t.pushAnswer(t.pushTo(a.CFKey, name, body(formIdent, text, secure)), what, "")
		want = append(want, pushed(name, id, text))
	}
	bad := func(formIdent, text, secure, what string) {
		t.wantError(t.pushTo(a.CFKey, name, body(formIdent, text, secure)), 403, what)
	}
	odd := "a+b c%2B&=é\n"
	ok(name, "plain", pushSecure(a.CFKey, a.Secret, name, "plain"), "correct secure")
	ok(name, "upper hex", strings.ToUpper(pushSecure(a.CFKey, a.Secret, name, "upper hex")), "secure in upper-case hex")
	ok(upper, "as sent", pushSecure(a.CFKey, a.Secret, upper, "as sent"), "secure over the form identifier "+upper+" (path "+name+")")
	ok(name, odd, pushSecure(a.CFKey, a.Secret, name, odd), "secure over the decoded text")
	bad(upper, "case", pushSecure(a.CFKey, a.Secret, name, "case"), "secure over "+name+" while the form says "+upper)
	bad(name, "x", pushSecure(a.CFKey, a.Secret, name, "y"), "secure over another text")
	bad(name, "x", md5hex(a.CFKey+a.Secret+name+"x"), "secure with the secret not hashed")
	bad(name, "x", strings.Repeat("0", 32), "secure of zeros")
	bad(name, "x", pushSecure(a.CFKey, a.Secret, name, "x")[:31], "secure one hex digit short")
	bad(name, "x", "", "empty secure")
	bad(name, "x", pushSecure(a.Key, a.Secret, name, "x"), "secure over the private api_key instead of the cf_api_key")
	if a2 := t.cfg.Account2; a2.Key != "" && a2.Secret != "" {
		bad(name, "x", pushSecure(a.CFKey, a2.Secret, name, "x"), "secure with the second account's secret")
	}
	l.expect(5*time.Second, want, "the accepted pushes, none of the refused")
	l.expectNothing(500*time.Millisecond, "after the accepted pushes")
	w.quiet()
}

func checkPushIDs(t *caseT) {
	t.parallel(func() { pushIDOrder(t) }, func() { pushTopID(t) })
}

func pushIDOrder(t *caseT) {
	a := t.cfg.Account
	name := ident()
	w := t.watchCF(name)
	l := t.openCF(viaWS, name, cfOpen{})
	if id := t.push(name, "a"); id != 1 {
		t.Fatalf("first push to a new identifier got id %d, want 1", id)
	}
	if id := t.push(name, "b"); id != 2 {
		t.Fatalf("second push got id %d, want 2", id)
	}
	t.pushID(name, "c", 10)
	if id := t.push(name, "d"); id != 11 {
		t.Fatalf("push after push_id 10 got id %d, want 11", id)
	}
	for _, id := range []string{"11", "5", "1"} {
		t.wantError(t.pushTo(a.CFKey, name, pushForm(a, name, "new text "+id, "0", id)), 409, "push_id "+id+" with the highest at 11")
	}
	// Ids are 1..2^63-1 written as plain decimal: anything else is a 400,
	// before the 409 an id not above the highest would get.
	fresh := ident()
	for _, id := range []string{"0", "9223372036854775808", "18446744073709551616", "-1", "+1", " 1", "1 ", "00"} {
		t.wantError(t.pushTo(a.CFKey, name, pushForm(a, name, "bad id", "0", id)), 400, fmt.Sprintf("push_id %q", id))
		t.wantError(t.pushTo(a.CFKey, fresh, pushForm(a, fresh, "bad id", "0", id)), 400, fmt.Sprintf("push_id %q on a new identifier", id))
	}
	if id := t.push(name, "e"); id != 12 {
		t.Fatalf("push after the refused ones got id %d, want 12 (refused pushes take no id)", id)
	}
	l.expect(5*time.Second, []cfItem{pushed(name, 1, "a"), pushed(name, 2, "b"), pushed(name, 10, "c"), pushed(name, 11, "d"), pushed(name, 12, "e")}, "pushes with assigned and given ids")
	if id := t.push(fresh, "other"); id != 1 {
		t.Fatalf("another identifier's first push got id %d, want 1 (ids are per identifier; refused pushes take none)", id)
	}
	t.wantError(t.pushTo(a.CFKey, "9"+name, pushForm(a, "9"+name, "x", "0", "")), 400, "path identifier starting with a digit")
	w.quiet()
	// Concurrent pushes: distinct ids, delivered in increasing order.
	c := ident()
	cl := t.openCF(viaSSE, c, cfOpen{})
	const n = 20
	var mu sync.Mutex
	got := map[int64]string{}
	var fns []func()
	for i := range n {
		fns = append(fns, func() {
			text := "p" + strconv.Itoa(i)
			id := t.push(c, text)
			mu.Lock()
			defer mu.Unlock()
			if prev, dup := got[id]; dup {
				t.Fatalf("concurrent pushes %q and %q both got id %d", prev, text, id)
			}
			got[id] = text
		})
	}
	t.parallel(fns...)
	var last int64
	for i := range n {
		it, ok := cl.nextData(5 * time.Second)
		if !ok {
			t.Fatalf("concurrent pushes: push %d of %d did not arrive", i+1, n)
		}
		if it.id <= last || got[it.id] != it.data {
			t.Fatalf("concurrent pushes: after id %d got %v (accepted: %v)", last, it, got)
		}
		last = it.id
	}
	t.Notef("ids not reused after retention dropped them (needs a wait past retention)")
}

// maxPushID is the highest push id, 2^63-1.
const maxPushID = "9223372036854775807"

// pushTopID: 2^63-1 is accepted and delivered with that exact id on every
// transport; after it an assigned id is a 409, and nothing else about the
// identifier changes (CF-P-04).
func pushTopID(t *caseT) {
	a := t.cfg.Account
	x := ident()
	const top = int64(math.MaxInt64)
	w := t.watchCF(x)
	var streams []*cfStream
	for _, via := range ezTransports {
		streams = append(streams, t.openCF(via, x, cfOpen{}))
	}
	t.pushID(x, "one", 1)
	t.pushAs(a, x, "top", "0", maxPushID)
	want := []cfItem{pushed(x, 1, "one"), pushed(x, top, "top")}
	for _, s := range streams {
		s.expect(5*time.Second, want, "push_id 1 then 2^63-1")
		if s.resume != "" && s.resume != idList(x, maxPushID) {
			t.Fatalf("%s listener after push_id 2^63-1: resume point %q, want %q", s.via, s.resume, idList(x, maxPushID))
		}
	}
	t.wantError(t.pushTo(a.CFKey, x, pushForm(a, x, "assigned after the top", "0", "")), 409, "a push without push_id when the highest id is 2^63-1")
	t.wantError(t.pushTo(a.CFKey, x, pushForm(a, x, "below the top", "0", "2")), 409, "push_id 2 below the highest 2^63-1")
	t.wantError(t.pushTo(a.CFKey, x, pushForm(a, x, "other text", "0", maxPushID)), 409, "push_id 2^63-1 again with another text")
	t.pushAs(a, x, "top", "0", maxPushID) // the same push again: ok, delivered once
	for _, s := range streams {
		s.expectNothing(500*time.Millisecond, "after the refused pushes and the repeated 2^63-1")
	}
	// Replays, resume points and polls still name it exactly.
	t.forEachTransport(func(via string) {
		s := t.openCF(via, idList(x, 0), cfOpen{})
		s.skipGaps = true
		s.expect(atOnce, want, "replay from id 0 of an identifier at 2^63-1")
		s.close()
		s = t.openCF(via, idList(x, maxPushID), cfOpen{})
		s.expectSince(idList(x, maxPushID), "listening from id 2^63-1")
		s.expectNothing(300*time.Millisecond, "listening from id 2^63-1 (nothing is above it)")
		s.close()
		s = t.openCF(via, x, cfOpen{})
		s.expectSince(idList(x, maxPushID), "a plain listener of an identifier at 2^63-1")
		s.close()
	})
	p := t.cfPoll(a, idList(x, 1), 0)
	if err := samePerIdentifier(p.items, want[1:]); err != nil || p.since != idList(x, maxPushID) {
		t.Fatalf("poll %s: got %v since %q, want the push 2^63-1 since %q (%v)", idList(x, 1), p.items, p.since, idList(x, maxPushID), err)
	}
	// Other identifiers are not touched.
	if id := t.push(x+"y", "next door"); id != 1 {
		t.Fatalf("another identifier's first push after %s reached 2^63-1 got id %d, want 1", x, id)
	}
	w.quiet()
}

func checkSecretReplay(t *caseT) {
	a := t.cfg.Account
	x := ident()
	w := t.watchCF(x)
	key := listenKey(a.CFKey, a.Secret, x)
	var keyed, plain []*cfStream
	for _, via := range ezTransports {
		keyed = append(keyed, t.openCF(via, x, cfOpen{secureKey: key}))
		plain = append(plain, t.openCF(via, x, cfOpen{}))
	}
	// What a listener with the secureKey saw, re-sent with secret=0.
	captured := func(text, secure, secret, pushID string) string {
		kv := []string{"identifier", x, "secret", secret, "text", text, "secure", secure}
		if pushID != "" {
			kv = append(kv, "push_id", pushID)
		}
		return form(kv...)
	}
	text := "the secret"
	sec := pushSecure(a.CFKey, a.Secret, x, text)
	id := t.pushAnswer(t.pushTo(a.CFKey, x, captured(text, sec, "1", "")), "the secret push", "")
	t.wantError(t.pushTo(a.CFKey, x, captured(text, sec, "0", "")), 403, "the captured secret push re-sent with secret=0")
	t.wantError(t.pushTo(a.CFKey, x, captured(text, sec, "0", strconv.FormatInt(id+5, 10))), 403, "re-sent with secret=0 and a new push_id")
	t.wantError(t.pushTo(a.CFKey, x, captured(text, strings.ToUpper(sec), "0", "")), 403, "re-sent with secret=0 and the secure in upper-case hex")
	// The same push as it was is still the same push (CF-P-06).
	t.pushAnswer(t.pushTo(a.CFKey, x, captured(text, sec, "1", strconv.FormatInt(id, 10))), "the secret push again, secret=1, its own push_id", strconv.FormatInt(id, 10))

	// A secret push and its replay in one pipeline: the replay is refused
	// though both are decided together.
	text2 := "second secret"
	sec2 := pushSecure(a.CFKey, a.Secret, x, text2)
	c := t.dial()
	path := "/" + a.CFKey + "/push/" + x
	c.send(t.request("POST", path, captured(text2, sec2, "1", "")) + t.request("POST", path, captured(text2, sec2, "0", "")))
	id2 := t.pushAnswer(c.read(), "a secret push pipelined with its replay", "")
	t.wantError(c.read(), 403, "the replay with secret=0 pipelined right after the secret push")

	pid := t.pushAs(a, x, "public", "0", "")
	for _, s := range keyed {
		s.expect(5*time.Second, []cfItem{pushed(x, id, text), pushed(x, id2, text2), pushed(x, pid, "public")}, "a listener with the secureKey")
	}
	for _, s := range plain {
		s.expect(5*time.Second, []cfItem{pushed(x, pid, "public")}, "a listener without a secureKey (no replayed secret)")
		s.expectNothing(300*time.Millisecond, "a listener without a secureKey, after the public push")
	}
	// A keyless replay from id 0 holds no secret either.
	r := t.openCF(viaPoll, idList(x, 0), cfOpen{})
	r.skipGaps = true
	r.expect(atOnce, []cfItem{pushed(x, pid, "public")}, "a keyless poll from id 0")
	w.quiet()
}

func checkPushSignature(t *caseT) {
	a := t.cfg.Account
	x, y := ident(), ident()
	w := t.watchCF(x)
	keyed := t.openCF(viaWS, x, cfOpen{secureKey: listenKey(a.CFKey, a.Secret, x)})
	plain := t.openCF(viaSSE, x, cfOpen{})
	var all, public []cfItem
	ok := func(p signedPush, what string) {
		id := t.pushAnswer(t.sendSigned(a, p), what, p.pushID)
		if strings.EqualFold(p.identifier, x) {
			all = append(all, pushed(x, id, p.text))
			if p.secret == "0" {
				public = append(public, pushed(x, id, p.text))
			}
		}
	}
	bad := func(status int, p signedPush, what string) {
		t.wantError(t.sendSigned(a, p), status, what)
	}
	now := time.Now().Unix()
	at := func(p signedPush, secs int64) signedPush {
		p.ts = strconv.FormatInt(now+secs, 10)
		return p.sign(a)
	}

	ok(newSigned(a, x, "signed, no secure"), "a signed push without secure")
	p := newSigned(a, x, "signed with a push_id")
	p.pushID = "100"
	ok(p.sign(a), "a signed push with push_id")
	p = newSigned(a, x, "signed secret")
	p.secret = "1"
	ok(p.sign(a), "a signed secret push")
	ok(at(newSigned(a, x, "295 s old"), -295), "ts 295 s in the past")
	ok(at(newSigned(a, x, "295 s ahead"), 295), "ts 295 s in the future")
	bad(403, at(newSigned(a, x, "301 s old"), -301), "ts 301 s in the past")
	bad(403, at(newSigned(a, x, "302 s ahead"), 302), "ts 302 s in the future")
	p = newSigned(a, x, "wrong")
	p.signature = randHex(64)
	bad(403, p, "a wrong signature")
	bad(403, p.sign(Account{CFKey: a.Key, Secret: a.Secret}), "a signature over the private api_key")

	// A nonce serves one accepted push of the account, on any identifier.
	first := newSigned(a, x, "nonce once")
	ok(first, "the first push of a nonce")
	bad(403, first, "the same signed push again (a replay)")
	again := newSigned(a, x, "nonce twice")
	again.nonce = first.nonce
	bad(403, again.sign(a), "another push with a used nonce")
	again.identifier = y
	bad(403, again.sign(a), "a used nonce on another identifier of the account")
	if a2 := t.cfg.Account2; a2.CFKey != "" && a2.Secret != "" {
		p := newSigned(a2, y, "another account's nonce")
		p.nonce = first.nonce
		t.pushAnswer(t.sendSigned(a2, p.sign(a2)), "another account's push with the same nonce", "")
	} else {
		t.Notef("nonces are per account (pass --user2/--key2/--cf-key2/--secret2)")
	}

	// Malformed ts and nonce: 400, even signed over themselves.
	for _, ts := range []string{"", "abc", "1.5", "12a", "0x10", "+" + strconv.FormatInt(now, 10), " " + strconv.FormatInt(now, 10), "99999999999999999999"} {
		p := newSigned(a, x, "bad ts")
		p.ts = ts
		bad(400, p.sign(a), fmt.Sprintf("ts %q", ts))
	}
	for _, nonce := range []string{"", strings.Repeat("n", 65), "a b", "a.b", "a/b", "a+b", "é", "a=b"} {
		p := newSigned(a, x, "bad nonce")
		p.nonce = nonce
		bad(400, p.sign(a), fmt.Sprintf("nonce %q", nonce))
	}
	for _, nonce := range []string{"n", strings.Repeat("N", 54) + randHex(10), "A-z_0-" + randHex(8)} {
		p := newSigned(a, x, "nonce "+nonce[:1])
		p.nonce = nonce
		ok(p.sign(a), fmt.Sprintf("nonce %q", nonce))
	}
	missing := newSigned(a, x, "no ts")
	bad(400, signedPush{identifier: x, secret: "0", text: "no ts", nonce: missing.nonce, signature: missing.signature}, "a signature without ts")
	missing = newSigned(a, x, "no nonce")
	bad(400, signedPush{identifier: x, secret: "0", text: "no nonce", ts: missing.ts, signature: missing.signature}, "a signature without nonce")

	// With secure as well, both must verify.
	p = newSigned(a, x, "both good")
	p.secure = pushSecure(a.CFKey, a.Secret, x, p.text)
	ok(p, "signature and secure both good")
	p = newSigned(a, x, "bad secure")
	p.secure = strings.Repeat("0", 32)
	bad(403, p, "a good signature with a bad secure")
	p = newSigned(a, x, "bad signature")
	p.secure = pushSecure(a.CFKey, a.Secret, x, p.text)
	p.signature = randHex(64)
	bad(403, p, "a good secure with a bad signature")

	// The signature covers every field: change one, keep the signature.
	base := newSigned(a, x, "covered")
	base.pushID = "200"
	base = base.sign(a)
	for _, c := range []struct {
		what   string
		change func(p *signedPush)
	}{
		{"secret 0 → 1", func(p *signedPush) { p.secret = "1" }},
		{"push_id 200 → 201", func(p *signedPush) { p.pushID = "201" }},
		{"push_id left out", func(p *signedPush) { p.pushID = "" }},
		{"text", func(p *signedPush) { p.text = "covered!" }},
		{"identifier", func(p *signedPush) { p.identifier = y }},
		{"ts", func(p *signedPush) { p.ts = strconv.FormatInt(now-1, 10) }},
		{"nonce", func(p *signedPush) { p.nonce = "n" + randHex(20) }},
	} {
		p := base
		c.change(&p)
		bad(403, p, "the signature of another push, "+c.what+" changed")
	}
	ok(base, "the unchanged push after the refused variants (their nonce was not used)")

	// C-04: 401, 400, 413, 403, 409 in that order.
	big := newSigned(a, x, strings.Repeat("b", 65537))
	t.wantError(t.pushTo(randHex(32), x, big.body()), 401, "an unknown key and a 65537-byte text")
	big.signature = randHex(64)
	bad(413, big, "a bad signature and a 65537-byte text (413 before 403)")
	big.ts = "abc"
	bad(400, big, "a malformed ts and a 65537-byte text (400 before 413)")
	p = newSigned(a, x, "bad nonce, bad signature")
	p.nonce, p.signature = "a b", randHex(64)
	bad(400, p, "a malformed nonce and a bad signature (400 before 403)")
	p = newSigned(a, x, "stale below the highest")
	p.pushID = "1"
	bad(403, at(p, -400), "a stale ts and a push_id below the highest (403 before 409)")
	p = newSigned(a, x, "used nonce below the highest")
	p.nonce, p.pushID = first.nonce, "1"
	bad(403, p.sign(a), "a used nonce and a push_id below the highest (403 before 409)")

	keyed.expect(5*time.Second, all, "a listener with the secureKey: every accepted push, no refused one")
	keyed.expectNothing(300*time.Millisecond, "a listener with the secureKey, after the accepted pushes")
	plain.expect(5*time.Second, public, "a listener without secureKey: the accepted secret=0 pushes")
	plain.expectNothing(300*time.Millisecond, "a listener without secureKey, after the accepted pushes")
	w.quiet()
}

func checkPushAnswer(t *caseT) {
	a := t.cfg.Account
	// The seed's PHP example, byte for byte in its form: absolute-form
	// target, header names as it writes them, Connection: Close.
	php := ident()
	body := form("identifier", php, "secret", "1", "text", "Hello world!", "secure", pushSecure(a.CFKey, a.Secret, php, "Hello world!"))
	w := t.dial()
	w.send(fmt.Sprintf("POST http://%s/%s/push/%s HTTP/1.1\r\nHost: %s\r\nContent-type: application/x-www-form-urlencoded\r\nContent-length: %d\r\nConnection: Close\r\n\r\n%s",
		t.cfg.host(), a.CFKey, php, t.cfg.host(), len(body), body))
	if id := t.pushAnswer(w.read(), "the seed's PHP push", ""); id != 1 {
		t.Fatalf("the seed's PHP push to a new identifier answered push_id %d, want 1", id)
	}
	w.expectClosed(3*time.Second, "after the seed's PHP push with Connection: Close")

	name := ident()
	for _, id := range []string{"", "7"} {
		r := t.pushTo(t.cfg.Account.CFKey, name, pushForm(t.cfg.Account, name, "x", "0", id))
		m := t.wantOK(r, "push")
		if len(m) != 2 {
			t.Fatalf(`want exactly {"code":"ok","push_id":<int>}, got %s`, r)
		}
		got := t.pushAnswer(r, "push", id)
		if id == "" && got != 1 {
			t.Fatalf("first push to a new identifier answered push_id %d, want 1", got)
		}
	}
}

func checkPushIdempotent(t *caseT) {
	a := t.cfg.Account
	name := ident()
	w := t.watchCF(name)
	var streams []*cfStream
	for _, via := range ezTransports {
		streams = append(streams, t.openCF(via, name, cfOpen{}))
	}
	t.pushID(name, "one", 1)
	t.pushID(name, "two", 2)
	t.pushID(name, "two", 2)
	t.pushID(name, "one", 1) // not the newest, still retained: ok
	if id := t.pushAs(a, name, "one", "0", "1"); id != 1 {
		t.Fatalf("re-push of push_id 1 answered %d", id)
	}
	t.wantError(t.pushTo(a.CFKey, name, pushForm(a, name, "ONE", "0", "1")), 409, "push_id 1 again with another text")
	t.wantError(t.pushTo(a.CFKey, name, pushForm(a, name, "twO", "0", "2")), 409, "push_id 2 again with another text")
	t.pushID(name, "three", 3)
	want := []cfItem{pushed(name, 1, "one"), pushed(name, 2, "two"), pushed(name, 3, "three")}
	r := t.openCF(viaWS, idList(name, 0), cfOpen{})
	r.skipGaps = true
	streams = append(streams, r)
	var fns []func()
	for _, s := range streams {
		fns = append(fns, func() {
			s.expect(5*time.Second, want, "each push once though pushes 1 and 2 were sent twice")
			s.expectNothing(time.Second, "after the three pushes")
		})
	}
	t.parallel(fns...)
	w.quiet()
}

func checkPushMethodKey(t *caseT) {
	a := t.cfg.Account
	name := ident()
	body := pushForm(a, name, "x", "0", "")
	badKey := randHex(32)
	for _, m := range []string{"GET", "PUT", "DELETE", "PATCH"} {
		t.wantError(t.do(m, "/"+a.CFKey+"/push/"+name, body), 405, m+" push")
	}
	t.wantError(t.do("GET", "/"+badKey+"/push/"+name, ""), 405, "GET with an unknown key (405 before 401)")
	t.wantError(t.pushTo(badKey, name, body), 401, "unknown apiKey")
	t.wantError(t.pushTo(strings.ToUpper(a.CFKey), name, body), 401, "apiKey in upper case")
	// The private key is never accepted in a path, signed with
	// either key.
	t.wantError(t.pushTo(a.Key, name, body), 401, "the private api_key in the path, secure over the cf_api_key")
	t.wantError(t.pushTo(a.Key, name, form("identifier", name, "secret", "0", "text", "x", "secure", pushSecure(a.Key, a.Secret, name, "x"))), 401,
		"the private api_key in the path, secure over it")
	t.wantError(t.sendSigned(Account{CFKey: a.Key, Secret: a.Secret}, newSigned(Account{CFKey: a.Key, Secret: a.Secret}, name, "x")), 401,
		"the private api_key in the path, CF-P-10 signature over it")
	t.wantError(t.pushTo(badKey, "9bad", "text=x"), 401, "unknown apiKey, bad identifier, missing fields (401 before 400)")

	big := strings.Repeat("x", 65537)
	t.pushID(name, "first", 5)
	t.wantError(t.pushTo(a.CFKey, "9"+name, pushForm(a, "9"+name, big, "0", "")), 400, "bad path identifier and 65537-byte text (400 before 413)")
	t.wantError(t.pushTo(a.CFKey, name, form("identifier", name, "text", big, "secure", "00")), 400, "no secret, 65537-byte text, bad secure (400 before 413 and 403)")
	t.wantError(t.pushTo(a.CFKey, name, form("identifier", name, "secret", "0", "text", big, "secure", "00", "push_id", "1")), 413, "65537-byte text, bad secure, old push_id (413 before 403 and 409)")
	t.wantError(t.pushTo(a.CFKey, name, form("identifier", name, "secret", "0", "text", "y", "secure", "00", "push_id", "1")), 403, "bad secure and old push_id (403 before 409)")
	t.wantError(t.pushTo(a.CFKey, name, pushForm(a, name, "y", "0", "5")), 409, "push_id 5 again with another text")
	t.wantError(t.pushTo(a.CFKey, name, pushForm(a, name, "y", "0", "4")), 409, "push_id below the highest")
}

func checkPushRetention(t *caseT) {
	window := t.cfg.CFReplayWindow
	name := ident()
	w := t.watchCF(name)
	id1 := t.push(name, "early")
	id2 := t.push(name, "later")
	start := time.Now()
	age := window - max(2*time.Second, window/4)
	if window > t.cfg.MaxWait+2*time.Second {
		age = time.Second
		t.Notef("pushes near the end of --cf-replay-window %v (longer than %v; start the server with a shorter one and pass --cf-replay-window)", window, t.cfg.MaxWait)
	}
	t.sleep(time.Until(start.Add(age)))
	want := []cfItem{pushed(name, id1, "early"), pushed(name, id2, "later")}
	t.forEachTransport(func(via string) {
		s := t.openCF(via, idList(name, 0), cfOpen{})
		s.skipGaps = true
		s.expect(atOnce, want, fmt.Sprintf("id 0, %v after the pushes (window %v)", age.Round(time.Millisecond), window))
		s.close()
	})
	if time.Since(start) >= window {
		t.Fatalf("the check took past --cf-replay-window %v; raise it to check retention", window)
	}
	w.quiet()
}
