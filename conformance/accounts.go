package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/gobwas/ws"
)

var (
	usernameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_]{0,31}$`)
	apiKeyRE   = regexp.MustCompile(`^[0-9a-f]{32}$`)
	secretRE   = regexp.MustCompile(`^[A-Za-z0-9_-]{24,}$`)
)

// accountCases are the A rules.
func accountCases() []ruleCase {
	return []ruleCase{
		{rule: "A-01", what: "credentials: username, private api_key and public cf_api_key (32 lowercase hex, distinct), api_secret; the api_key writes, the cf_api_key pushes and listens (each refused in the other's place: EZ-W-01, CF-P-07, CF-L-09, X-03)", run: checkAccountShape},
		{rule: "A-02", what: "account add --json (one line, four fields) / list / set / rotate / rm take effect at once on the running server; list and set never print a secret or the private api_key", run: checkAccountCLI, timeout: 90 * time.Second},
		{rule: "A-03", what: "the demo page and JS clients carry no api_secret and no private api_key; demo-only endpoints refuse a client whose C-07 address is not loopback", run: checkDemoPage},
		{rule: "A-04", what: "revocation at once: rm closes every reader and listener (close frame, end of stream, error answer), frees its slots, and the name added again starts empty; rotate closes only what the old credential admitted", run: checkRevocation, timeout: 90 * time.Second},
	}
}

// accountShape reports what is wrong with an account's credentials.
func accountShape(a Account) error {
	if err := keyShape(a); err != nil {
		return err
	}
	if !secretRE.MatchString(a.Secret) {
		return fmt.Errorf("api_secret %q is not 24+ chars of [A-Za-z0-9_-]", a.Secret)
	}
	return nil
}

// keyShape reports what is wrong with an account's username and keys.
func keyShape(a Account) error {
	switch {
	case !usernameRE.MatchString(a.User):
		return fmt.Errorf("username %q does not match %s", a.User, usernameRE)
	case !apiKeyRE.MatchString(a.Key):
		return fmt.Errorf("api_key %q is not 32 lowercase hex chars", a.Key)
	case !apiKeyRE.MatchString(a.CFKey):
		return fmt.Errorf("cf_api_key %q is not 32 lowercase hex chars", a.CFKey)
	case a.Key == a.CFKey:
		return fmt.Errorf("api_key and cf_api_key are both %s: the public key must not be the write key", a.Key)
	}
	return nil
}

// credentials names an account's values, for "no two alike" checks.
func (a Account) credentials() [][2]string {
	return [][2]string{{"api_key", a.Key}, {"cf_api_key", a.CFKey}, {"api_secret", a.Secret}}
}

func checkAccountShape(t *caseT) {
	accounts := []Account{t.cfg.Account}
	if t.cfg.Account2.User != "" {
		accounts = append(accounts, t.cfg.Account2)
	}
	seen := map[string]string{}
	for _, a := range accounts {
		shape := accountShape
		if a.Secret == "" {
			shape = keyShape // --secret2 is optional
		}
		if err := shape(a); err != nil {
			t.Fatalf("account %s: %v", a.User, err)
		}
		for _, c := range a.credentials() {
			if other, dup := seen[c[1]]; dup && c[1] != "" {
				t.Fatalf("%s's %s is also %s", a.User, c[0], other)
			}
			seen[c[1]] = a.User + "'s " + c[0]
		}
		if a.Secret == "" {
			continue
		}
		// Each key does its own job.
		q := a.User + "-a01" + randHex(8)
		t.wantOK(t.write("api_key", a.Key, "qname", q, "msg", "x"), "write with "+a.User+"'s api_key")
		x := ident()
		s := t.openCF(viaWS, x, cfOpen{acct: a})
		id := t.pushAs(a, x, "a01", "0", "")
		s.expect(5*time.Second, []cfItem{pushed(x, id, "a01")}, "a listener under "+a.User+"'s cf_api_key")
	}
}

// accountCmd runs the --account-cmd prefix with args and returns its stdout.
func (t *caseT) accountCmd(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.scaled(20*time.Second))
	defer cancel()
	argv := append(append([]string(nil), t.cfg.AccountCmd[1:]...), args...)
	cmd := exec.CommandContext(ctx, t.cfg.AccountCmd[0], argv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", strings.Join(t.cfg.AccountCmd, " "), strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// mustAccountCmd is accountCmd that fails the case on a non-zero exit.
func (t *caseT) mustAccountCmd(args ...string) string {
	out, err := t.accountCmd(args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// needAccountCmd skips a case that manages accounts without --account-cmd.
func (t *caseT) needAccountCmd() {
	if len(t.cfg.AccountCmd) == 0 {
		t.Skipf(`pass --account-cmd "halley account --data DIR" (the server's data directory)`)
	}
}

// addAccount adds an account of its own for a case (a fresh name starting
// with prefix): the suite's main accounts are never changed.
func (t *caseT) addAccount(prefix string) Account {
	return t.addAccountNamed(prefix + randHex(10))
}

// addAccountNamed runs `add NAME --json` and checks A-02's answer: exactly
// one line, a JSON object of exactly username, api_key, cf_api_key and
// api_secret, in A-01's shapes.
func (t *caseT) addAccountNamed(name string) Account {
	out := t.mustAccountCmd("add", name, "--json")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("add %s --json: want exactly one line, got %d: %q", name, len(lines), clip([]byte(out)))
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatalf("add %s --json: not a JSON object: %v: %q", name, err, lines[0])
	}
	field := func(k string) string {
		v, ok := got[k].(string)
		if !ok {
			t.Fatalf(`add %s --json: want a string "%s", got %q`, name, k, lines[0])
		}
		return v
	}
	a := Account{User: field("username"), Key: field("api_key"), CFKey: field("cf_api_key"), Secret: field("api_secret")}
	if len(got) != 4 {
		t.Fatalf(`add %s --json: want exactly username, api_key, cf_api_key, api_secret, got %q`, name, lines[0])
	}
	if a.User != name {
		t.Fatalf("add --json: username %q, want %q", a.User, name)
	}
	if err := accountShape(a); err != nil {
		t.Fatalf("add %s --json: %v", name, err)
	}
	return a
}

// credentialWords are the words of a command's output that look like a
// credential: runs of [A-Za-z0-9_-].
func credentialWords(out string) []string {
	return strings.FieldsFunc(out, func(r rune) bool {
		return r > unicode.MaxASCII || !(r == '_' || r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r))
	})
}

// rotate runs `rotate NAME flag` (--api-key, --cf-api-key or --secret)
// and returns the account with the new value. The output must show it
// (the one credential-shaped word the account did not have) and no other
// private value of the account.
func (t *caseT) rotate(a Account, flag string) Account {
	out := t.mustAccountCmd("rotate", a.User, flag)
	shape := apiKeyRE
	if flag == "--secret" {
		shape = secretRE
	}
	var fresh []string
	for _, w := range credentialWords(out) {
		if shape.MatchString(w) && w != a.Key && w != a.CFKey && w != a.Secret && !slices.Contains(fresh, w) {
			fresh = append(fresh, w)
		}
	}
	if len(fresh) != 1 {
		t.Fatalf("rotate %s %s: want the new value printed, found %d new values in %q", a.User, flag, len(fresh), clip([]byte(out)))
	}
	b := a
	switch flag {
	case "--api-key":
		b.Key = fresh[0]
	case "--cf-api-key":
		b.CFKey = fresh[0]
	default:
		b.Secret = fresh[0]
	}
	if err := accountShape(b); err != nil {
		t.Fatalf("rotate %s %s: %v", a.User, flag, err)
	}
	if flag != "--secret" && strings.Contains(out, a.Secret) {
		t.Fatalf("rotate %s %s printed the api_secret: %q", a.User, flag, clip([]byte(out)))
	}
	if flag != "--api-key" && strings.Contains(out, a.Key) {
		t.Fatalf("rotate %s %s printed the private api_key: %q", a.User, flag, clip([]byte(out)))
	}
	return b
}

// hidden fails the case when out shows any of the private values given
// (api_key and api_secret, current or old).
func (t *caseT) hidden(out, what string, private ...string) {
	for _, v := range private {
		if v != "" && strings.Contains(out, v) {
			t.Fatalf("%s printed a private value (%s…): %q", what, v[:6], clip([]byte(out)))
		}
	}
}

// immediately checks that the first answer after an account change has
// the wanted status; when a later one does, the failure says how late the
// change took effect.
func (t *caseT) immediately(what string, status int, send func() *reply) {
	r := send()
	if r.status == status {
		return
	}
	start := time.Now()
	for time.Since(start) < t.cfg.scaled(3*time.Second) {
		t.sleep(50 * time.Millisecond)
		if send().status == status {
			t.Fatalf("%s: answered %d only after %v, want it at once (got %s first)", what, status, time.Since(start).Round(time.Millisecond), r)
		}
	}
	t.Fatalf("%s: want %d, got %s", what, status, r)
}

func checkAccountCLI(t *caseT) {
	t.needAccountCmd()
	a := t.addAccount("ac")
	name := a.User
	if _, err := t.accountCmd("add", name, "--json"); err == nil {
		t.Fatalf("adding %s a second time succeeded; want a non-zero exit", name)
	}
	if _, err := t.accountCmd("add", "Bad-Name", "--json"); err == nil {
		t.Fatalf(`adding the invalid username "Bad-Name" succeeded; want a non-zero exit`)
	}

	// Both keys work at once on the running server.
	q := name + "-fresh"
	t.immediately("a new account's api_key on the running server", 200, func() *reply {
		return t.write("api_key", a.Key, "qname", q, "msg", "hi", "tick", "a02")
	})
	if items, _ := t.readAll(q, ""); len(items) != 1 || items[0].tick != "a02" {
		t.Fatalf("read back the new account's message: got %v", items)
	}
	x := ident()
	t.immediately("a new account's cf_api_key on the running server", 200, func() *reply {
		return t.pushTo(a.CFKey, x, pushForm(a, x, "hi", "0", ""))
	})

	private := []string{a.Key, a.Secret}
	showsName := func(args ...string) {
		out := t.mustAccountCmd(args...)
		if !strings.Contains(out, name) {
			t.Fatalf("%s does not show %s: %q", strings.Join(args, " "), name, clip([]byte(out)))
		}
		t.hidden(out, strings.Join(args, " "), private...)
	}
	showsName("list")
	showsName("list", "--json")
	showsName("set", name, "--max-listeners-per-ip", "5", "--json")
	showsName("set", name, "--max-listeners-per-ip", "5")
	// The new limit holds on the running server: five listeners from one
	// IP, and the sixth is a 429. The account is this case's alone, so a
	// shared client IP does no harm.
	ip, _ := t.freshOrSame()
	for i := range 5 {
		ip.holdSoon(viaWS, a, ident(), fmt.Sprintf("listener %d of 5 after set --max-listeners-per-ip 5", i+1))
	}
	t.immediately("a sixth listener after set --max-listeners-per-ip 5", 429, func() *reply {
		c, r := ip.openWS(listenerPath(a, viaWS, ident()))
		if c != nil {
			c.close()
			return &reply{status: 101, header: c.resp.header}
		}
		return r
	})

	// rotate: the new value works, the old one stops at once.
	old := a
	a = t.rotate(a, "--api-key")
	private = append(private, a.Key)
	t.immediately("the old api_key after rotate --api-key", 401, func() *reply {
		return t.write("api_key", old.Key, "qname", q, "msg", "old key")
	})
	t.wantOK(t.write("api_key", a.Key, "qname", q, "msg", "new key"), "the new api_key after rotate --api-key")
	t.pushAs(a, x, "cf key unchanged", "0", "")

	old = a
	a = t.rotate(a, "--cf-api-key")
	t.immediately("the old cf_api_key after rotate --cf-api-key", 401, func() *reply {
		return t.pushTo(old.CFKey, x, pushForm(old, x, "old cf key", "0", ""))
	})
	t.wantError(t.refusedCF(viaWS, listenerPath(old, viaWS, x)), 401, "a listener with the old cf_api_key")
	t.pushAs(a, x, "new cf key", "0", "")
	t.wantError(t.pushTo(a.CFKey, x, pushForm(old, x, "md5 over the old key", "0", "")), 403, "secure over the old cf_api_key, on the new key's path")
	t.wantOK(t.write("api_key", a.Key, "qname", q, "msg", "api_key unchanged"), "the api_key after rotate --cf-api-key")

	old = a
	a = t.rotate(a, "--secret")
	private = append(private, a.Secret)
	t.immediately("a push signed with the old api_secret after rotate --secret", 403, func() *reply {
		return t.pushTo(a.CFKey, x, pushForm(old, x, "old secret", "0", ""))
	})
	t.pushAs(a, x, "new secret", "0", "")
	t.wantError(t.refusedCF(viaWS, listenerPath(a, viaWS, x, "secureKey", listenKey(a.CFKey, old.Secret, x))), 403, "a secureKey over the old api_secret")
	t.wantError(t.do("GET", "/"+a.CFKey+"/stats", "", "Authorization: Bearer "+old.Secret), 403, "stats with the old api_secret")
	t.wantOK(t.do("GET", "/"+a.CFKey+"/stats", "", "Authorization: Bearer "+a.Secret), "stats with the new api_secret")

	// set --require-signature v2: the md5 form alone is refused.
	out := t.mustAccountCmd("set", name, "--require-signature", "v2")
	t.hidden(out, "set --require-signature v2", private...)
	t.immediately("an md5-only push after set --require-signature v2", 403, func() *reply {
		return t.pushTo(a.CFKey, x, pushForm(a, x, "md5 only", "0", ""))
	})
	t.pushAnswer(t.sendSigned(a, newSigned(a, x, "signed")), "a CF-P-10 signed push after set --require-signature v2", "")
	both := newSigned(a, x, "signed and md5")
	both.secure = pushSecure(a.CFKey, a.Secret, x, both.text)
	t.pushAnswer(t.sendSigned(a, both), "a push with both signature and secure after set --require-signature v2", "")

	for _, args := range [][]string{{"list"}, {"list", "--json"}, {"set", name, "--max-listeners-per-ip", "6"}, {"set", name, "--max-listeners-per-ip", "6", "--json"}} {
		t.hidden(t.mustAccountCmd(args...), strings.Join(args, " ")+" after the rotations", private...)
	}

	t.mustAccountCmd("rm", name)
	t.immediately("a removed account's api_key", 401, func() *reply {
		return t.write("api_key", a.Key, "qname", q, "msg", "after rm")
	})
	t.immediately("a removed account's cf_api_key", 401, func() *reply {
		return t.sendSigned(a, newSigned(a, x, "after rm"))
	})
	if out := t.mustAccountCmd("list", "--json"); strings.Contains(out, `"`+name+`"`) {
		t.Fatalf("list --json still shows %s after rm: %q", name, clip([]byte(out)))
	}
}

// jsAssets are the JS client paths (JS-01): no page may carry a secret.
var jsAssets = []string{"/ezcomet.js", "/ezcomet.min.js", "/latest/cometify.js", "/latest/cometify.min.js"}

func checkDemoPage(t *caseT) {
	d := t.cfg.Demo
	// The suite's own accounts and the demo account: no page shows
	// their private values.
	private := map[string]string{}
	for _, a := range []Account{t.cfg.Account, t.cfg.Account2, d} {
		who := a.User
		if a == d {
			who = "demo"
		}
		if a.Key != "" {
			private[a.Key] = who + "'s api_key"
		}
		if a.Secret != "" {
			private[a.Secret] = who + "'s api_secret"
		}
	}
	clean := func(path string, body []byte) {
		for v, what := range private {
			if bytes.Contains(body, []byte(v)) {
				t.Fatalf("GET %s carries %s (A-03: no page carries an api_secret or a private api_key)", path, what)
			}
		}
	}
	r := t.do("GET", "/", "")
	switch r.status {
	case 404:
		t.Notef("the demo page (GET / answers 404: no demo account)")
	case 200:
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "text/html") {
			t.Fatalf("GET /: Content-Type %q, want text/html", ct)
		}
		body := strings.ToLower(string(r.body))
		if !strings.Contains(body, "<html") && !strings.Contains(body, "<!doctype html") {
			t.Fatalf("GET /: not an HTML page: %q", clip(r.body))
		}
		clean("/", r.body)
	default:
		t.Fatalf("GET /: want the demo page (200) or 404, got %s", r)
	}
	for _, p := range jsAssets {
		if r := t.do("GET", p, ""); r.status == 200 {
			clean(p, r.body)
		}
	}
	if d.Key == "" || d.Secret == "" {
		t.Notef("that no page carries the demo account's api_secret and api_key (pass --demo-key and --demo-secret as the server printed them on an empty data directory)")
	}
	// The demo account works with no other set-up, its two keys apart.
	if d.CFKey != "" {
		d.User = "demo"
		if d.Key != "" {
			if err := keyShape(d); err != nil {
				t.Fatalf("the demo account: %v", err)
			}
		}
		x := ident()
		s := t.openCF(viaWS, x, cfOpen{acct: d})
		if d.Secret != "" {
			id := t.pushAs(d, x, "demo", "0", "")
			s.expect(5*time.Second, []cfItem{pushed(x, id, "demo")}, "a listener under the demo account's cf_api_key")
		}
		s.close()
	} else {
		t.Notef("the demo account's cf_api_key listens (pass --demo-cf-key)")
	}
	demoEndpoints(t)
}

// demoEndpoints checks that the demo-only endpoints serve a loopback
// client and refuse one whose C-07 address is not loopback.
func demoEndpoints(t *caseT) {
	type endpoint struct{ path, body string }
	var eps []endpoint
	if p := t.cfg.DemoWritePath; p != "" {
		eps = append(eps, endpoint{p, form("channel", "a03"+randHex(6), "msg", "a03")})
	}
	if p := t.cfg.DemoPushPath; p != "" {
		x := ident()
		eps = append(eps, endpoint{p, form("identifier", x, "secret", "0", "text", "a03")})
	}
	if len(eps) == 0 {
		t.Notef("the demo-only endpoints refuse non-loopback clients (pass --demo-push-path and --demo-write-path)")
		return
	}
	proxy, ok := t.cfg.proxyAddr()
	const outside = "203.0.113.9"
	for _, e := range eps {
		// A loopback client is served (the endpoint exists for it).
		if r := t.do("POST", e.path, e.body); r.status != 200 {
			t.Fatalf("POST %s from loopback %v: want it served, got %s", e.path, t.src, r)
		}
		// A loopback peer that forwards for someone without being a
		// --trusted-proxy (a local proxy left unconfigured) is, by C-07,
		// the client itself; a server may still refuse it, since the
		// request plainly comes from elsewhere. Either way the answer is
		// C-03's.
		if r := t.do("POST", e.path, e.body, "X-Forwarded-For: "+outside); r.status != 200 {
			if r.status != 403 {
				t.Fatalf("POST %s from loopback %v forwarding for %s untrusted: want 200 or 403, got %s", e.path, t.src, outside, r)
			}
			t.wantError(r, 403, "POST "+e.path+" forwarded by an untrusted loopback peer")
		}
		if !ok {
			t.Notef("a client that is not loopback (the suite appears as one only through a --trusted-proxy CIDR holding a loopback address)")
			continue
		}
		px := t.from(proxy)
		for _, xff := range []string{outside, outside + ", " + proxy.String(), "[2001:db8::9]:443"} {
			r := px.do("POST", e.path, e.body, "X-Forwarded-For: "+xff)
			if r.status != 403 && r.status != 404 {
				t.Fatalf("POST %s through trusted proxy %v for client %q: want 403 or 404 (demo endpoints serve loopback clients only), got %s", e.path, proxy, xff, r)
			}
			t.wantError(r, r.status, "POST "+e.path+" for client "+xff)
		}
		if r := px.do("POST", e.path, e.body, "X-Forwarded-For: 127.0.0.1"); r.status == 403 || r.status == 404 {
			t.Fatalf("POST %s through trusted proxy %v for loopback client 127.0.0.1: want it served, got %s", e.path, proxy, r)
		}
	}
}

// revoked checks that h was closed at once after why: a WebSocket gets a
// close frame, an SSE stream ends, a waiting poll gets an error answer.
func (h *kept) revoked(t *caseT, why string) {
	ctx := h.what + ", " + why
	switch {
	case h.poll != nil:
		r, err := h.poll.readErr("GET", atOnce)
		if err != nil {
			t.Fatalf("%s: want an error answer within %v, got %v", ctx, t.cfg.scaled(atOnce), err)
		}
		if r.status < 400 || r.status > 499 {
			t.Fatalf("%s: want an error answer (4xx), got %s", ctx, r)
		}
		t.wantError(r, r.status, ctx)
	case h.ws != nil:
		for {
			f, ok := h.ws.next(atOnce)
			switch {
			case !ok:
				t.Fatalf("%s: no close frame within %v", ctx, t.cfg.scaled(atOnce))
			case f.err != nil:
				t.Fatalf("%s: the connection ended without a close frame: %v", ctx, f.err)
			case f.op == ws.OpClose:
				return
			}
			if h.cf {
				if it, known := t.decodeCFObject(ctx, f.payload); !known || it.kind == cfSince {
					continue
				}
			}
			t.Fatalf("%s: got %q, want a close frame", ctx, clip(f.payload))
		}
	default:
		for {
			e, ok := h.sse.nextEvent(atOnce)
			switch {
			case !ok:
				t.Fatalf("%s: the event stream did not end within %v", ctx, t.cfg.scaled(atOnce))
			case e.err != nil:
				return
			case h.cf && !e.hasData:
				continue
			}
			t.Fatalf("%s: got %s, want the end of the stream", ctx, e.describe())
		}
	}
}

// getsEZ checks that h is still open and receives the message written.
func (h *kept) getsEZ(t *caseT, tick, msg, why string) {
	ctx := h.what + ", " + why
	if h.poll == nil {
		(&ezStream{t: t, via: h.via, ws: h.ws, sse: h.sse}).expect(5*time.Second, []string{msg}, []string{tick}, ctx)
		return
	}
	r, err := h.poll.readErr("GET", 5*time.Second)
	if err != nil {
		t.Fatalf("%s: the waiting poll: %v", ctx, err)
	}
	if err := sameItems(t.decodePoll(r, 0).messages, []string{msg}, []string{tick}); err != nil {
		t.Fatalf("%s: the waiting poll: %v", ctx, err)
	}
}

// getsCF checks that h is still open and receives the push.
func (h *kept) getsCF(t *caseT, want cfItem, why string) {
	ctx := h.what + ", " + why
	if h.poll == nil {
		(&cfStream{t: t, via: h.via, acct: h.acct, ws: h.ws, sse: h.sse}).expect(5*time.Second, []cfItem{want}, ctx)
		return
	}
	r, err := h.poll.readErr("GET", 5*time.Second)
	if err != nil {
		t.Fatalf("%s: the waiting poll: %v", ctx, err)
	}
	if err := samePerIdentifier(t.decodeCFPoll(r, 0, ctx).items, []cfItem{want}); err != nil {
		t.Fatalf("%s: the waiting poll: %v", ctx, err)
	}
}

// revokedAll checks every h at once.
func revokedAll(t *caseT, hs []*kept, why string) {
	var fns []func()
	for _, h := range hs {
		fns = append(fns, func() { h.revoked(t, why) })
	}
	t.parallel(fns...)
}

func checkRevocation(t *caseT) {
	t.needAccountCmd()
	t.parallel(
		func() { revokeRemove(t) },
		func() { revokeCFKey(t) },
		func() { revokeSecret(t) },
		func() { revokeAPIKey(t) },
	)
}

// revokeRemove: rm closes every reader and listener of the account at
// once, on every transport, frees their slots, and the name added again
// starts empty.
func revokeRemove(t *caseT) {
	a := t.addAccount("rm")
	const limit = 6
	t.mustAccountCmd("set", a.User, "--max-listeners-per-ip", fmt.Sprint(limit))
	ip, own := t.freshOrSame()
	q := a.User + "-chan"
	t.wantOK(t.write("api_key", a.Key, "qname", q, "msg", "old", "tick", "o1"), "write before rm")
	x := ident()
	t.pushAs(a, x, "old public", "0", "")
	t.pushAs(a, x, "old secret", "1", "")
	var hs []*kept
	for _, via := range ezTransports {
		hs = append(hs, ip.keepEZ(via, q, "o1"), ip.keepCF(via, a, x, listenKey(a.CFKey, a.Secret, x)))
	}
	t.mustAccountCmd("rm", a.User)
	revokedAll(t, hs, "after account rm")
	t.wantError(t.write("api_key", a.Key, "qname", q, "msg", "after rm"), 401, "the removed account's api_key")
	t.wantError(t.pushTo(a.CFKey, x, pushForm(a, x, "after rm", "0", "")), 401, "the removed account's cf_api_key")
	t.wantError(t.refusedCF(viaSSE, listenerPath(a, viaSSE, x)), 401, "a listener with the removed account's cf_api_key")
	t.wantError(t.do("GET", readPath("/read", q, "", 0), ""), 404, "a read of the removed account's channel (EZ-R-07)")

	// The name added again is another account, and starts empty.
	b := t.addAccountNamed(a.User)
	for i, c := range b.credentials() {
		if old := a.credentials()[i]; c[1] == old[1] {
			t.Fatalf("%s added again got the removed account's %s", a.User, c[0])
		}
	}
	t.mustAccountCmd("set", b.User, "--max-listeners-per-ip", fmt.Sprint(limit))
	if got, _ := t.readAll(q, ""); len(got) != 0 {
		t.Fatalf("%s added again: its channel %s still holds %v", b.User, q, got)
	}
	t.wantOK(t.write("api_key", b.Key, "qname", q, "msg", "new", "tick", "o1"), "the old tick o1 with another msg (the old tick memory is gone, no 409)")
	bKey := listenKey(b.CFKey, b.Secret, x)
	p := t.cfPoll(b, idList(x, 0), 0, "secureKey", bKey)
	if len(p.items) != 0 || p.since != idList(x, 0) {
		t.Fatalf("%s added again: a poll of %s from id 0 with a secureKey answered %v since %q, want nothing since %q", b.User, x, p.items, p.since, idList(x, 0))
	}
	for _, via := range []string{viaWS, viaSSE} {
		s := t.openCF(via, idList(x, 0), cfOpen{acct: b, secureKey: bKey})
		s.expectSince(idList(x, 0), b.User+" added again, listening to "+x+" from id 0")
		s.expectNothing(300*time.Millisecond, b.User+" added again, listening to "+x+" from id 0 (the removed account's pushes are gone)")
		s.close()
	}
	if id := t.pushAs(b, x, "new", "0", ""); id != 1 {
		t.Fatalf("%s added again: its first push to %s got id %d, want 1", b.User, x, id)
	}
	// The removed account's slots are free: the whole cap from that IP.
	if !own {
		t.Notef("slots freed by rm (needs a client IP of the case's own: an IPv4 loopback target)")
		return
	}
	for i := range limit {
		ip.holdSoon(ezTransports[i%len(ezTransports)], b, x, fmt.Sprintf("after rm and add, listener %d of %d from the IP the removed account's readers used", i+1, limit))
	}
	ip.wantOver(b, x, "after rm and add, the cap again")
}

// revocationSetup adds an account of the case's own (name starting with
// prefix), writes one message (tick o1) to its channel q, and picks a
// client IP and an identifier x for what the case holds.
func (t *caseT) revocationSetup(prefix string) (a Account, ip *caseT, q, x string) {
	a = t.addAccount(prefix)
	ip, _ = t.freshOrSame()
	q = a.User + "-chan"
	t.wantOK(t.write("api_key", a.Key, "qname", q, "msg", "old", "tick", "o1"), "write before the change")
	return a, ip, q, ident()
}

// revokeCFKey: rotate --cf-api-key closes the Cometify listeners admitted
// by the old key, and nothing else.
func revokeCFKey(t *caseT) {
	a, ip, q, x := t.revocationSetup("rc")
	var gone, stay []*kept
	for _, via := range ezTransports {
		gone = append(gone, ip.keepCF(via, a, x, ""), ip.keepCF(via, a, x, listenKey(a.CFKey, a.Secret, x)))
		stay = append(stay, ip.keepEZ(via, q, "o1"))
	}
	other := ip.keepCF(viaWS, t.cfg.Account, x, "")
	b := t.rotate(a, "--cf-api-key")
	revokedAll(t, gone, "after rotate --cf-api-key")
	t.wantOK(t.write("api_key", b.Key, "qname", q, "msg", "after", "tick", "o2"), "write after rotate --cf-api-key")
	for _, h := range stay {
		h.getsEZ(t, "o2", "after", "after rotate --cf-api-key (nothing but Cometify listeners closes)")
	}
	id := t.pushAs(t.cfg.Account, x, "another account", "0", "")
	other.getsCF(t, pushed(x, id, "another account"), "after another account's rotate --cf-api-key")
	for _, via := range ezTransports {
		var kv []string
		if via == viaPoll {
			kv = []string{"timeout", "0"}
		}
		t.wantError(t.refusedCF(via, listenerPath(a, via, x, kv...)), 401, via+" listener with the old cf_api_key")
	}
	n := ip.keepCF(viaWS, b, x, listenKey(b.CFKey, b.Secret, x))
	id = t.pushAs(b, x, "new key", "1", "")
	n.getsCF(t, pushed(x, id, "new key"), "opened with the new cf_api_key")
}

// revokeSecret: rotate --secret closes the listeners admitted with a
// secureKey; plain listeners and EZComet readers stay.
func revokeSecret(t *caseT) {
	a, ip, q, x := t.revocationSetup("rs")
	var keyed, plain []*kept
	for _, via := range ezTransports {
		keyed = append(keyed, ip.keepCF(via, a, x, listenKey(a.CFKey, a.Secret, x)))
		plain = append(plain, ip.keepCF(via, a, x, ""))
	}
	reader := ip.keepEZ(viaWS, q, "o1")
	b := t.rotate(a, "--secret")
	revokedAll(t, keyed, "after rotate --secret")
	id := t.pushAs(b, x, "after", "0", "")
	for _, h := range plain {
		h.getsCF(t, pushed(x, id, "after"), "after rotate --secret (a plain listener stays)")
	}
	t.wantOK(t.write("api_key", b.Key, "qname", q, "msg", "after", "tick", "o2"), "write after rotate --secret")
	reader.getsEZ(t, "o2", "after", "after rotate --secret")
	t.wantError(t.pushTo(b.CFKey, x, pushForm(a, x, "old secret", "0", "")), 403, "a push signed with the old api_secret")
	t.wantError(t.refusedCF(viaWS, listenerPath(b, viaWS, x, "secureKey", listenKey(a.CFKey, a.Secret, x))), 403, "a secureKey over the old api_secret")
	n := ip.keepCF(viaSSE, b, x, listenKey(b.CFKey, b.Secret, x))
	id = t.pushAs(b, x, "secret", "1", "")
	n.getsCF(t, pushed(x, id, "secret"), "opened with a secureKey over the new api_secret")
}

// revokeAPIKey: rotate --api-key stops the old key writing and closes
// nothing live.
func revokeAPIKey(t *caseT) {
	a, ip, q, x := t.revocationSetup("rk")
	var readers, listeners []*kept
	key := listenKey(a.CFKey, a.Secret, x)
	for _, via := range ezTransports {
		readers = append(readers, ip.keepEZ(via, q, "o1"))
	}
	listeners = append(listeners, ip.keepCF(viaWS, a, x, ""), ip.keepCF(viaSSE, a, x, key), ip.keepCF(viaPoll, a, x, key))
	b := t.rotate(a, "--api-key")
	t.immediately("the old api_key after rotate --api-key", 401, func() *reply {
		return t.write("api_key", a.Key, "qname", q, "msg", "old key")
	})
	t.wantOK(t.write("api_key", b.Key, "qname", q, "msg", "after", "tick", "o2"), "the new api_key")
	for _, h := range readers {
		h.getsEZ(t, "o2", "after", "after rotate --api-key (nothing live closes)")
	}
	id := t.pushAs(b, x, "after", "0", "")
	for _, h := range listeners {
		h.getsCF(t, pushed(x, id, "after"), "after rotate --api-key (nothing live closes)")
	}
}
