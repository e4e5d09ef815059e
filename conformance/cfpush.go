package conformance

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cfPushCases are the Cometify push rules (SPEC.md §4).
func cfPushCases() []ruleCase {
	return []ruleCase{
		{rule: "CF-P-01", what: "identifiers ^[a-zA-Z][a-zA-Z0-9_]{0,59}$, case-insensitive: a push to Chat reaches a listener of chat", run: checkPushIdentifier},
		{rule: "CF-P-02", what: "form fields identifier (= path ignoring case), secret 0/1, text ≤65536 bytes (413), secure, push_id 0..2^63-1", run: checkPushFields},
		{rule: "CF-P-03", what: "secure = md5hex(key + md5hex(secret) + identifier + text): seed vector, form identifier, decoded text, hex case; 403 otherwise", run: checkPushSecure},
		{rule: "CF-P-04", what: "assigned ids are 1 + highest, strictly increasing; a push_id not above the highest 409; bad path identifier 400", run: checkPushIDs},
		{rule: "CF-P-05", what: `success answer is exactly {"code":"ok","push_id":<int>}`, run: checkPushAnswer},
		{rule: "CF-P-06", what: "same push_id again: same text ok and delivered once, different text 409", run: checkPushIdempotent},
		{rule: "CF-P-07", what: "only POST (405); unknown apiKey 401; precedence 405, 401, 400, 413, 403, 409 (C-04)", run: checkPushMethodKey},
		{rule: "CF-P-08", what: "pushes retained at least --cf-replay-window: an id-0 listener gets pushes from within it", run: checkPushRetention, timeout: 90 * time.Second},
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
		t.wantError(t.pushTo(a.Key, bad, pushForm(a, dec, "x", "0", "")), 400, fmt.Sprintf("identifier %q", dec))
	}

	// Chat and chat are one identifier: one id sequence, one set of
	// listeners, and pushes name it in lower case.
	name := ident()
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
}

func checkPushFields(t *caseT) {
	a := t.cfg.Account
	name := ident()
	path := func(body string) *reply { return t.pushTo(a.Key, name, body) }
	sec := func(text string) string { return pushSecure(a.Key, a.Secret, name, text) }
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
	t.wantError(path(form("identifier", other, "secret", "0", "text", "x", "secure", pushSecure(a.Key, a.Secret, other, "x"))), 400,
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
	l := t.openCF(viaWS, name, cfOpen{secureKey: listenKey(a.Key, a.Secret, name)})
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
}

func checkPushSecure(t *caseT) {
	if got := pushSecure("1", "c1h89chHaka9s1", "visitors", "284 people"); got != "149f26540f697a97e886e2527466c6e8" {
		t.Fatalf("the suite's secure for the seed vector is %s, want 149f26540f697a97e886e2527466c6e8", got)
	}
	a := t.cfg.Account
	name := ident()
	upper := strings.ToUpper(name)
	l := t.openCF(viaWS, name, cfOpen{})
	body := func(formIdent, text, secure string) string {
		return form("identifier", formIdent, "secret", "0", "text", text, "secure", secure)
	}
	var want []cfItem
	ok := func(formIdent, text, secure, what string) {
		id := t.pushAnswer(t.pushTo(a.Key, name, body(formIdent, text, secure)), what, "")
		want = append(want, pushed(name, id, text))
	}
	bad := func(formIdent, text, secure, what string) {
		t.wantError(t.pushTo(a.Key, name, body(formIdent, text, secure)), 403, what)
	}
	odd := "a+b c%2B&=é\n"
	ok(name, "plain", pushSecure(a.Key, a.Secret, name, "plain"), "correct secure")
	ok(name, "upper hex", strings.ToUpper(pushSecure(a.Key, a.Secret, name, "upper hex")), "secure in upper-case hex")
	ok(upper, "as sent", pushSecure(a.Key, a.Secret, upper, "as sent"), "secure over the form identifier "+upper+" (path "+name+")")
	ok(name, odd, pushSecure(a.Key, a.Secret, name, odd), "secure over the decoded text")
	bad(upper, "case", pushSecure(a.Key, a.Secret, name, "case"), "secure over "+name+" while the form says "+upper)
	bad(name, "x", pushSecure(a.Key, a.Secret, name, "y"), "secure over another text")
	bad(name, "x", md5hex(a.Key+a.Secret+name+"x"), "secure with the secret not hashed")
	bad(name, "x", strings.Repeat("0", 32), "secure of zeros")
	bad(name, "x", pushSecure(a.Key, a.Secret, name, "x")[:31], "secure one hex digit short")
	bad(name, "x", "", "empty secure")
	if a2 := t.cfg.Account2; a2.Key != "" && a2.Secret != "" {
		bad(name, "x", pushSecure(a.Key, a2.Secret, name, "x"), "secure with the second account's secret")
	}
	l.expect(5*time.Second, want, "the accepted pushes, none of the refused")
	l.expectNothing(500*time.Millisecond, "after the accepted pushes")
}

func checkPushIDs(t *caseT) {
	a := t.cfg.Account
	name := ident()
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
	for _, id := range []string{"11", "5", "1", "0"} {
		t.wantError(t.pushTo(a.Key, name, pushForm(a, name, "new text "+id, "0", id)), 409, "push_id "+id+" with the highest at 11")
	}
	if id := t.push(name, "e"); id != 12 {
		t.Fatalf("push after the refused ones got id %d, want 12 (refused pushes take no id)", id)
	}
	l.expect(5*time.Second, []cfItem{pushed(name, 1, "a"), pushed(name, 2, "b"), pushed(name, 10, "c"), pushed(name, 11, "d"), pushed(name, 12, "e")}, "pushes with assigned and given ids")
	if id := t.push(ident(), "other"); id != 1 {
		t.Fatalf("another identifier's first push got id %d, want 1 (ids are per identifier)", id)
	}
	fresh := ident()
	t.wantError(t.pushTo(a.Key, fresh, pushForm(a, fresh, "zero", "0", "0")), 409, "push_id 0 on a new identifier (not above the highest, 0)")
	t.wantError(t.pushTo(a.Key, "9"+name, pushForm(a, "9"+name, "x", "0", "")), 400, "path identifier starting with a digit")

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

func checkPushAnswer(t *caseT) {
	a := t.cfg.Account
	// The seed's PHP example, byte for byte in its form: absolute-form
	// target, header names as it writes them, Connection: Close.
	php := ident()
	body := form("identifier", php, "secret", "1", "text", "Hello world!", "secure", pushSecure(a.Key, a.Secret, php, "Hello world!"))
	w := t.dial()
	w.send(fmt.Sprintf("POST http://%s/%s/push/%s HTTP/1.1\r\nHost: %s\r\nContent-type: application/x-www-form-urlencoded\r\nContent-length: %d\r\nConnection: Close\r\n\r\n%s",
		t.cfg.host(), a.Key, php, t.cfg.host(), len(body), body))
	if id := t.pushAnswer(w.read(), "the seed's PHP push", ""); id != 1 {
		t.Fatalf("the seed's PHP push to a new identifier answered push_id %d, want 1", id)
	}
	w.expectClosed(3*time.Second, "after the seed's PHP push with Connection: Close")

	name := ident()
	for _, id := range []string{"", "7"} {
		r := t.pushTo(t.cfg.Account.Key, name, pushForm(t.cfg.Account, name, "x", "0", id))
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
	t.wantError(t.pushTo(a.Key, name, pushForm(a, name, "ONE", "0", "1")), 409, "push_id 1 again with another text")
	t.wantError(t.pushTo(a.Key, name, pushForm(a, name, "twO", "0", "2")), 409, "push_id 2 again with another text")
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
}

func checkPushMethodKey(t *caseT) {
	a := t.cfg.Account
	name := ident()
	body := pushForm(a, name, "x", "0", "")
	badKey := randHex(32)
	for _, m := range []string{"GET", "PUT", "DELETE", "PATCH"} {
		t.wantError(t.do(m, "/"+a.Key+"/push/"+name, body), 405, m+" push")
	}
	t.wantError(t.do("GET", "/"+badKey+"/push/"+name, ""), 405, "GET with an unknown key (405 before 401)")
	t.wantError(t.pushTo(badKey, name, body), 401, "unknown apiKey")
	t.wantError(t.pushTo(strings.ToUpper(a.Key), name, body), 401, "apiKey in upper case")
	t.wantError(t.pushTo(badKey, "9bad", "text=x"), 401, "unknown apiKey, bad identifier, missing fields (401 before 400)")

	big := strings.Repeat("x", 65537)
	t.pushID(name, "first", 5)
	t.wantError(t.pushTo(a.Key, "9"+name, pushForm(a, "9"+name, big, "0", "")), 400, "bad path identifier and 65537-byte text (400 before 413)")
	t.wantError(t.pushTo(a.Key, name, form("identifier", name, "text", big, "secure", "00")), 400, "no secret, 65537-byte text, bad secure (400 before 413 and 403)")
	t.wantError(t.pushTo(a.Key, name, form("identifier", name, "secret", "0", "text", big, "secure", "00", "push_id", "1")), 413, "65537-byte text, bad secure, old push_id (413 before 403 and 409)")
	t.wantError(t.pushTo(a.Key, name, form("identifier", name, "secret", "0", "text", "y", "secure", "00", "push_id", "1")), 403, "bad secure and old push_id (403 before 409)")
	t.wantError(t.pushTo(a.Key, name, pushForm(a, name, "y", "0", "5")), 409, "push_id 5 again with another text")
	t.wantError(t.pushTo(a.Key, name, pushForm(a, name, "y", "0", "4")), 409, "push_id below the highest")
}

func checkPushRetention(t *caseT) {
	window := t.cfg.CFReplayWindow
	name := ident()
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
}
