package protocol

import (
	"crypto/md5"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// demoStore is the real store with the pushes it was given recorded, and
// the demo account's lookup overridable (a rotation, without persist).
type demoStore struct {
	*persist.Store
	mu     sync.Mutex
	pushes []persist.CFPush
	demo   *persist.Account
}

func (s *demoStore) CFPushTo(p persist.CFPush, done persist.CFCompletion) {
	s.mu.Lock()
	s.pushes = append(s.pushes, p)
	s.mu.Unlock()
	s.Store.CFPushTo(p, done)
}

func (s *demoStore) AccountByName(name []byte) (persist.Account, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.demo != nil && string(name) == s.demo.Username {
		return *s.demo, true
	}
	return s.Store.AccountByName(name)
}

func (s *demoStore) recorded() []persist.CFPush {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]persist.CFPush(nil), s.pushes...)
}

// demoFixture: a store with the demo account and another one ("john"),
// and an API serving the demo for "demo".
type demoFixture struct {
	*fixture
	ds   *demoStore
	demo persist.Account
}

func newDemoFixture(t *testing.T, demo Demo) *demoFixture {
	t.Helper()
	store, err := persist.Open(persist.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	john, err := store.AddAccount("john")
	if err != nil {
		t.Fatal(err)
	}
	acct, err := store.AddAccount("demo")
	if err != nil {
		t.Fatal(err)
	}
	ds := &demoStore{Store: store}
	if demo.Page == nil {
		demo.Page = func(user, cfKey string) []byte { return []byte("<!doctype html>page of " + user + " with " + cfKey) }
	}
	api, err := New(Options{Store: ds, Demo: demo})
	if err != nil {
		t.Fatal(err)
	}
	loop := newTestLoop(t)
	api.Attach(loop)
	t.Cleanup(api.Close)
	return &demoFixture{fixture: &fixture{t: t, api: api, loop: loop, store: store, acct: john}, ds: ds, demo: acct}
}

// demoRequest is one request to the demo: from client, through peer
// (the same address unless a trusted proxy forwarded it).
type demoRequest struct {
	method, path, query, body string
	peer, client              string
	trusted                   bool // the peer is a trusted proxy (implied when client != peer)
	h                         header
}

// do serves r and waits for its answer.
func (f *demoFixture) do(r demoRequest) reply {
	f.t.Helper()
	if r.peer == "" {
		r.peer = "127.0.0.1"
	}
	if r.client == "" {
		r.client = r.peer
	}
	if r.h == nil {
		r.h = header{}
	}
	c := newFakeConn()
	req := &engine.Request{
		Method: []byte(r.method), Path: []byte(r.path), Query: []byte(r.query), Body: []byte(r.body),
		Header: r.h, PeerAddr: netip.MustParseAddr(r.peer), ClientIP: netip.MustParseAddr(r.client),
		ViaTrustedProxy: r.trusted || r.client != r.peer,
	}
	f.loop.do(func() { f.api.Serve(c, req) })
	f.settle()
	f.await("an answer", func() bool { return c.numReplies() > 0 })
	return c.lastReply(f.t)
}

func demoForm(kv ...string) string {
	v := url.Values{}
	for i := 0; i < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v.Encode()
}

// everyDemoPath is one well-formed request to each demo path.
func everyDemoPath() []demoRequest {
	return []demoRequest{
		{method: "GET", path: "/"},
		{method: "POST", path: "/demo/write", body: demoForm("channel", "chat", "msg", "hi")},
		{method: "POST", path: "/demo/push", body: demoForm("identifier", "chat", "text", "hi", "secret", "0")},
		{method: "GET", path: "/demo/securekey", query: "identifiers=chat"},
	}
}

// wantError checks a C-03 error answer.
func wantError(t *testing.T, got reply, status int, msg string) {
	t.Helper()
	if got.status != status || got.ctype != ctJSON {
		t.Fatalf("want a JSON %d, got %d %s: %s", status, got.status, got.ctype, got.body)
	}
	v := decode(t, got.body)
	if v["code"] != "error" || v["status"] != float64(status) || (msg != "" && v["msg"] != msg) {
		t.Fatalf("want {code:error, status:%d, msg:%q}, got %s", status, msg, got.body)
	}
}

// stored says whether the demo account has any message or push.
func (f *demoFixture) stored(channel string) (msgs int, pushes int) {
	f.t.Helper()
	rr, err := f.store.EZReadAfter("demo-"+channel, 0, persist.ReadLimit{Messages: 100})
	if err != nil {
		f.t.Fatal(err)
	}
	cr, err := f.store.CFRead([]byte("demo/"+strings.ToLower(channel)), 0, 0, persist.ReadLimit{Messages: 100})
	if err != nil {
		f.t.Fatal(err)
	}
	return len(rr.Messages), len(cr.Pushes)
}

// A client that is not on loopback gets a 403 on every demo path, and
// nothing is written or pushed: whether it reached the port directly or
// through a trusted proxy (ClientIP from X-Forwarded-For, C-07).
func TestDemoRefusesANonLoopbackClient(t *testing.T) {
	f := newDemoFixture(t, Demo{Account: "demo"})
	for _, from := range []struct{ peer, client string }{
		{"203.0.113.7", "203.0.113.7"},
		{"127.0.0.1", "203.0.113.7"}, // a trusted proxy on loopback forwarding a remote client
		{"::1", "2001:db8::7"},
		{"10.0.0.2", "10.0.0.2"},
	} {
		for _, r := range everyDemoPath() {
			r.peer, r.client = from.peer, from.client
			wantError(t, f.do(r), 403, errDemoNotLoopback.msg)
		}
	}
	if m, p := f.stored("chat"); m != 0 || p != 0 {
		t.Fatalf("a refused client stored %d messages and %d pushes", m, p)
	}
}

// A loopback client, direct or forwarded by a trusted proxy, is served:
// the page, a durable write and a push, each answered as /write and a
// push answer.
func TestDemoServesALoopbackClient(t *testing.T) {
	f := newDemoFixture(t, Demo{Account: "demo"})
	n := 0
	for _, from := range []struct{ peer, client string }{
		{"127.0.0.1", "127.0.0.1"},
		{"127.0.0.2", "127.0.0.2"},
		{"::1", "::1"},
		{"::ffff:127.0.0.1", "::ffff:127.0.0.1"},
		{"127.0.0.1", "::1"}, // through a trusted proxy, which computed ClientIP
	} {
		n++
		page := f.do(demoRequest{method: "GET", path: "/", peer: from.peer, client: from.client})
		if page.status != 200 || page.ctype != "text/html; charset=utf-8" || page.body != "<!doctype html>page of demo with "+f.demo.CFAPIKey {
			t.Fatalf("%v: page: %+v", from, page)
		}
		h := header{}
		if from.peer != from.client {
			h["X-Forwarded-For"] = from.client
		}
		w := f.do(demoRequest{method: "POST", path: "/demo/write", body: demoForm("channel", "chat", "msg", "m"), peer: from.peer, client: from.client, h: h})
		if w.status != 200 || !strings.HasPrefix(w.body, `{"code":"ok","tick":"`) {
			t.Fatalf("%v: write: %+v", from, w)
		}
		p := f.do(demoRequest{method: "POST", path: "/demo/push", body: demoForm("identifier", "chat", "text", "t", "secret", "0"), peer: from.peer, client: from.client, h: h})
		if want := `{"code":"ok","push_id":` + string(rune('0'+n)) + `}`; p.status != 200 || p.body != want {
			t.Fatalf("%v: push: %+v, want %s", from, p, want)
		}
	}
	if m, p := f.stored("chat"); m != n || p != n {
		t.Fatalf("stored %d messages and %d pushes, want %d of each", m, p, n)
	}
}

// With --demo every client is served.
func TestDemoOpenServesEveryClient(t *testing.T) {
	f := newDemoFixture(t, Demo{Account: "demo", Open: true})
	for _, r := range everyDemoPath() {
		r.peer = "203.0.113.7"
		if got := f.do(r); got.status != 200 {
			t.Fatalf("%s %s with --demo: %+v", r.method, r.path, got)
		}
	}
}

// The server signs a demo push as the account's own publisher would
// (CF-P-03): the store gets the md5 digest a valid `secure` carries (so
// CF-P-09 records it), the account's id, and the secret flag; and the
// secureKey it hands out is CF-L-06's, which the listen path accepts: a
// listener with it gets the secret push, one without does not.
func TestDemoSignsPushesAsThePublisher(t *testing.T) {
	f := newDemoFixture(t, Demo{Account: "demo"})
	got := f.do(demoRequest{method: "POST", path: "/demo/push", body: demoForm("identifier", "News", "text", "secret ünïcode", "secret", "1")})
	if got.body != `{"code":"ok","push_id":1}` {
		t.Fatalf("push: %+v", got)
	}
	pushes := f.ds.recorded()
	if len(pushes) != 1 {
		t.Fatalf("%d pushes reached the store, want 1", len(pushes))
	}
	p := pushes[0]
	want := md5.Sum([]byte(f.demo.CFAPIKey + md5hex(f.demo.APISecret) + "News" + "secret ünïcode"))
	if !p.HasSecure || p.Secure != want {
		t.Fatalf("the push's digest is %x (has %v), want md5(cf_api_key + md5(api_secret) + identifier + text) = %x", p.Secure, p.HasSecure, want)
	}
	if p.Topic != "demo/news" || !p.Secret || p.AccountID != f.demo.ID || p.AccountID == 0 || string(p.Text) != "secret ünïcode" {
		t.Fatalf("push reached the store as %+v", p)
	}

	sk := f.do(demoRequest{method: "GET", path: "/demo/securekey", query: "identifiers=News,other"})
	wantKey := md5hex(f.demo.CFAPIKey + f.demo.APISecret + md5hex("News,other"))
	if sk.status != 200 || sk.body != `{"code":"ok","secureKey":"`+wantKey+`"}` || strings.Contains(sk.hdrs, "Access-Control") {
		t.Fatalf("securekey: %+v, want key %s and no CORS header", sk, wantKey)
	}
	poll := func(secureKey string) string {
		q := "identifiers=News:0,other:0&timeout=0"
		if secureKey != "" {
			q += "&secureKey=" + secureKey
		}
		return f.do(demoRequest{method: "GET", path: "/" + f.demo.CFAPIKey + "/poll", query: q, peer: "10.0.0.9"}).body
	}
	if body := poll(wantKey); !strings.Contains(body, `"data":"secret ünïcode"`) {
		t.Fatalf("a listener with the demo's secureKey did not get the secret push: %s", body)
	}
	if body := poll(""); strings.Contains(body, "secret ünïcode") || !strings.HasPrefix(body, `{"code":"ok"`) {
		t.Fatalf("a listener without the secureKey: %s", body)
	}
}

// Only the demo account is served: no parameter reaches another account,
// and without the demo account there is no page and no endpoint.
func TestDemoServesOnlyTheDemoAccount(t *testing.T) {
	f := newDemoFixture(t, Demo{Account: "demo"})
	w := f.do(demoRequest{method: "POST", path: "/demo/write",
		body: demoForm("channel", "x", "msg", "m", "qname", "john-x", "api_key", f.acct.APIKey, "user_name", "john")})
	if w.status != 200 {
		t.Fatalf("write: %+v", w)
	}
	p := f.do(demoRequest{method: "POST", path: "/demo/push",
		body: demoForm("identifier", "x", "text", "t", "secret", "0", "api_key", f.acct.CFAPIKey)})
	if p.status != 200 {
		t.Fatalf("push: %+v", p)
	}
	if m, n := f.stored("x"); m != 1 || n != 1 {
		t.Fatalf("demo-x holds %d messages and %d pushes, want 1 and 1", m, n)
	}
	if rr, _ := f.store.EZReadAfter("john-x", 0, persist.ReadLimit{Messages: 10}); len(rr.Messages) != 0 {
		t.Fatal("a demo write reached john's channel")
	}
	if cr, _ := f.store.CFRead([]byte("john/x"), 0, 0, persist.ReadLimit{Messages: 10}); len(cr.Pushes) != 0 {
		t.Fatal("a demo push reached john's identifier")
	}
	// The page shows the demo account's key, whatever the request says.
	if page := f.do(demoRequest{method: "GET", path: "/", query: "user=john"}); strings.Contains(page.body, f.acct.CFAPIKey) {
		t.Fatal("the page shows john's key")
	}

	if err := f.store.RemoveAccount("demo"); err != nil {
		t.Fatal(err)
	}
	for _, r := range everyDemoPath() {
		wantError(t, f.do(r), 404, errNotFound.msg)
	}
	// An API without a demo account configured has neither.
	g := newDemoFixture(t, Demo{})
	for _, r := range everyDemoPath() {
		wantError(t, g.do(r), 404, errNotFound.msg)
	}
}

// The page is rendered from the account as it is now: after the public
// key is rotated it carries the new one.
func TestDemoPageFollowsTheAccount(t *testing.T) {
	f := newDemoFixture(t, Demo{Account: "demo"})
	rotated := f.demo
	rotated.CFAPIKey = strings.Repeat("ab", 16)
	f.ds.mu.Lock()
	f.ds.demo = &rotated
	f.ds.mu.Unlock()
	if page := f.do(demoRequest{method: "GET", path: "/"}); !strings.HasSuffix(page.body, rotated.CFAPIKey) {
		t.Fatalf("page after rotation: %s", page.body)
	}
}

// What a browser on this machine can be made to send for another site is
// refused even from loopback: a request an untrusted proxy forwarded, a
// foreign Host (DNS rebinding), a foreign Origin (cross-site forgery).
// The page's own requests pass.
func TestDemoRefusesForwardedAndCrossSiteRequests(t *testing.T) {
	f := newDemoFixture(t, Demo{Account: "demo"})
	cases := []struct {
		h    header
		want *apiError
	}{
		{header{"X-Forwarded-For": "203.0.113.7"}, errDemoForwarded},
		{header{"Forwarded": "for=203.0.113.7"}, errDemoForwarded},
		{header{"X-Real-IP": "203.0.113.7"}, errDemoForwarded},
		{header{"Host": "evil.example:8080", "Origin": "http://evil.example:8080"}, errDemoHost},
		{header{"Host": "127.0.0.1:8080", "Origin": "http://evil.example"}, errDemoOrigin},
		{header{"Host": "127.0.0.1:8080", "Origin": "null"}, errDemoOrigin},
		{header{"Host": "127.0.0.1:8080", "Origin": "http://127.0.0.1:8080"}, nil},
		{header{"Host": "LOCALHOST:8080", "Origin": "http://localhost:8080"}, nil},
		{header{"Host": "demo.localhost", "Origin": "https://demo.localhost"}, nil},
		{header{"Host": "[::1]:8080", "Origin": "http://[::1]:8080"}, nil},
		{header{"Host": "127.0.0.1:8080"}, nil},
	}
	// A trusted proxy on loopback forwarding for a loopback client: every
	// hop is trusted, so ClientIP is the peer itself, and it is served.
	if got := f.do(demoRequest{method: "POST", path: "/demo/write", body: demoForm("channel", "c", "msg", "m"),
		trusted: true, h: header{"X-Forwarded-For": "127.0.0.1"}}); got.status != 200 {
		t.Fatalf("a trusted loopback proxy forwarding for 127.0.0.1: %+v", got)
	}
	for _, tc := range cases {
		for _, r := range everyDemoPath() {
			r.h = tc.h
			got := f.do(r)
			if tc.want != nil {
				wantError(t, got, 403, tc.want.msg)
			} else if got.status != 200 {
				t.Fatalf("%s %s with %v: %+v", r.method, r.path, tc.h, got)
			}
		}
	}
	// --demo: the operator opened it to everyone, so nothing is refused.
	g := newDemoFixture(t, Demo{Account: "demo", Open: true})
	for _, tc := range cases {
		if got := g.do(demoRequest{method: "POST", path: "/demo/write", body: demoForm("channel", "c", "msg", "m"), h: tc.h}); got.status != 200 {
			t.Fatalf("--demo with %v: %+v", tc.h, got)
		}
	}
}

// Parameters and methods are checked as on /write and push paths.
func TestDemoParameters(t *testing.T) {
	f := newDemoFixture(t, Demo{Account: "demo"})
	cases := []struct {
		r    demoRequest
		want *apiError
	}{
		{demoRequest{method: "GET", path: "/demo/write", query: demoForm("channel", "c", "msg", "m")}, errMethod},
		{demoRequest{method: "OPTIONS", path: "/demo/push"}, errMethod},
		{demoRequest{method: "POST", path: "/"}, errMethod},
		{demoRequest{method: "POST", path: "/demo/securekey"}, errMethod},
		// 405 before the address check, as on every path (C-04).
		{demoRequest{method: "GET", path: "/demo/push", peer: "203.0.113.7"}, errMethod},
		{demoRequest{method: "POST", path: "/demo/write", body: demoForm("msg", "m")}, errDemoMissingChannel},
		{demoRequest{method: "POST", path: "/demo/write", body: demoForm("channel", "a b", "msg", "m")}, errDemoBadChannel},
		{demoRequest{method: "POST", path: "/demo/write", body: demoForm("channel", strings.Repeat("c", 60), "msg", "m")}, errDemoBadChannel},
		{demoRequest{method: "POST", path: "/demo/write", body: demoForm("channel", "c")}, errDemoMissingMsg},
		{demoRequest{method: "POST", path: "/demo/write", body: demoForm("channel", "c", "msg", strings.Repeat("m", maxMsg+1))}, errMsgTooLarge},
		{demoRequest{method: "POST", path: "/demo/write", body: "channel=c&channel=d&msg=m"}, errDupParam},
		{demoRequest{method: "POST", path: "/demo/push", body: demoForm("text", "t", "secret", "0")}, errMissingIdentifier},
		{demoRequest{method: "POST", path: "/demo/push", body: demoForm("identifier", "9x", "text", "t", "secret", "0")}, errBadIdentifier},
		{demoRequest{method: "POST", path: "/demo/push", body: demoForm("identifier", "x", "text", "t")}, errBadSecret},
		{demoRequest{method: "POST", path: "/demo/push", body: demoForm("identifier", "x", "secret", "1")}, errMissingText},
		{demoRequest{method: "POST", path: "/demo/push", body: demoForm("identifier", "x", "secret", "1", "text", strings.Repeat("t", maxCFText+1))}, errTextTooLarge},
		{demoRequest{method: "GET", path: "/demo/securekey"}, errMissingIdentifiers},
		{demoRequest{method: "GET", path: "/demo/securekey", query: "identifiers=a,a"}, errBadList},
	}
	for _, tc := range cases {
		wantError(t, f.do(tc.r), tc.want.status, tc.want.msg)
	}
	if got := f.do(demoRequest{method: "POST", path: "/demo/write", body: demoForm("channel", strings.Repeat("c", 59), "msg", "m")}); got.status != 200 {
		t.Fatalf("a 59-byte channel (a 64-byte qname): %+v", got)
	}
}

// FuzzDemoLoopbackHost checks the demo's Host check against net/url's
// reading of the same Host: wherever net/url reads it as a bare host and
// port, both agree on whether it names this machine's loopback.
func FuzzDemoLoopbackHost(f *testing.F) {
	for _, s := range []string{"127.0.0.1:8080", "localhost", "LOCALHOST.:80", "a.localhost:1", "[::1]:8080", "[::1]",
		"[::ffff:127.0.0.1]:80", "127.1.2.3", "evil.example:8080", "localhost.evil.example", "[::1%25lo]:80", "0.0.0.0:80", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		got := loopbackHost(host)
		u, err := url.Parse("http://" + host)
		if err != nil || u.Host != host || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
			return
		}
		name := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
		ip, ipErr := netip.ParseAddr(name)
		want := name == "localhost" || strings.HasSuffix(name, ".localhost") || ipErr == nil && ip.Unmap().IsLoopback()
		if got != want {
			t.Fatalf("loopbackHost(%q) = %v; net/url reads host %q: %v", host, got, u.Hostname(), want)
		}
	})
}
