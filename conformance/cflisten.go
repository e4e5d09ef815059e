package conformance

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cfListenCases are the Cometify listen rules (docs/spec.md §5).
func cfListenCases() []ruleCase {
	return []ruleCase{
		{rule: "CF-L-01", what: "/{apiKey}/listen WebSocket: push frames {identifier (lowercase), id, data}, server pings; malformed LIST 400 on every transport", run: checkListenWebSocket},
		{rule: "CF-L-02", what: "/{apiKey}/poll: {code, pushes, since}, since loses nothing, plain LIST waits, timeout 0..120, JSONP, CORS", run: checkListenPoll},
		{rule: "CF-L-03", what: "/{apiKey}/sse: data is the push, id the LIST in id form; Last-Event-ID overrides the ids", run: checkListenSSE},
		{rule: "CF-L-04", what: "plain LIST: only pushes made after connecting (every transport)", run: checkListenPlain},
		{rule: "CF-L-05", what: "id form: replay above the id within --cf-resume-window, id 0 within --cf-replay-window, in id order, no duplicates across the replay/live hand-off", run: checkListenReplay, timeout: 90 * time.Second},
		{rule: "CF-L-06", what: "secureKey = md5hex(cf_api_key + secret + md5hex(names as sent)): seed vectors, hex case, wrong key 403 (over the private api_key too), empty key = none", run: checkListenSecureKey},
		{rule: "CF-L-07", what: "secret=1 pushes reach only listeners with a valid secureKey, live and replayed (every transport)", run: checkListenSecret},
		{rule: "CF-L-08", what: "listeners per client IP per account capped: 429 before upgrade on every transport, instant polls free, slots freed on close, a 300-request burst refused fast", run: checkListenCap, timeout: 90 * time.Second},
		{rule: "CF-L-09", what: "unknown apiKey 401 on every transport, the private api_key in the path too; precedence 405, 401, 400, 403, 429 (C-04); accounts' identifiers kept apart", run: checkListenKey},
	}
}

func checkListenWebSocket(t *caseT) {
	x, y, other := ident(), ident(), ident()
	w := t.watchCF(x)
	s := t.openCF(viaWS, strings.ToUpper(x)+","+y, cfOpen{})
	odd := "quote \" backslash \\ newline \n cr \r crlf \r\n tab \t </script> ünï 😀 \x01"
	ix := t.push(x, odd)
	iy := t.push(y, "")
	t.push(other, "not listened to")
	ix2 := t.push(strings.ToUpper(x), "two")
	s.expect(5*time.Second, []cfItem{pushed(x, ix, odd), pushed(y, iy, ""), pushed(x, ix2, "two")}, "pushes to the listened identifiers")
	s.expectNothing(500*time.Millisecond, "after the pushes")

	t.parallel(func() { checkListSyntax(t) }, func() {
		pi := t.cfg.PingInterval
		if pi > t.cfg.MaxWait {
			t.Notef("server pings: --ping-interval %v is longer than %v", pi, t.cfg.MaxWait)
			return
		}
		start := time.Now()
		s.expectNothing(pi+t.slack(), "waiting for a ping")
		if pings := s.ws.pingTimes(); len(pings) == 0 || pings[len(pings)-1].Before(start) {
			t.Fatalf("no ping on a Cometify WebSocket within %v (--ping-interval %v)", pi+t.slack(), pi)
		}
	})
	w.quiet()
}

// checkListSyntax sends malformed LISTs to every transport (docs/spec.md §5's
// LIST rules); each must be a 400 before any upgrade.
func checkListSyntax(t *caseT) {
	a := t.cfg.Account
	x, y := ident(), ident()
	var many []string
	for range t.cfg.MaxIdentifiers {
		many = append(many, ident())
	}
	bad := []struct{ list, what string }{
		{"", "empty LIST"},
		{x + ",", "trailing comma"},
		{"," + x, "leading comma"},
		{x + ",," + y, "empty name between commas"},
		{" " + x, "leading space"},
		{x + ", " + y, "space after a comma"},
		{x + ":1," + y, "mixed forms (id, then plain)"},
		{x + "," + y + ":1", "mixed forms (plain, then id)"},
		{x + ":", "empty id"},
		{":5", "empty name with an id"},
		{x + ":abc", "non-numeric id"},
		{x + ":-1", "negative id"},
		{x + ":1.5", "fractional id"},
		{x + ":+1", "id with a sign"},
		{x + ":1:2", "two ids"},
		{x + ":99999999999999999999", "id over 2^63-1"},
		{"1abc", "name starting with a digit"},
		{"_abc", "name starting with an underscore"},
		{"a-b", "name with a dash"},
		{"a" + strings.Repeat("b", 60), "61-char name"},
		{x + "," + strings.ToUpper(x), "one identifier twice, in two cases"},
		{idList(x, 1, strings.ToUpper(x), 2), "one identifier twice in id form"},
		{strings.Join(append(many, y), ","), fmt.Sprintf("%d identifiers (--max-identifiers %d)", len(many)+1, t.cfg.MaxIdentifiers)},
		{strings.Join(append(many, y), ":0,") + ":0", fmt.Sprintf("%d identifiers in id form (--max-identifiers %d)", len(many)+1, t.cfg.MaxIdentifiers)},
	}
	for _, via := range ezTransports {
		var kv []string
		if via == viaPoll {
			kv = []string{"timeout", "0"}
		}
		for _, b := range bad {
			t.wantError(t.refusedCF(via, listenerPath(a, via, b.list, kv...)), 400, fmt.Sprintf("%s %s (%q)", via, b.what, clip([]byte(b.list))))
		}
		missing := "/" + a.CFKey + map[string]string{viaWS: "/listen", viaSSE: "/sse", viaPoll: "/poll?timeout=0"}[via]
		t.wantError(t.refusedCF(via, missing), 400, via+" without identifiers")
		twice := listenerPath(a, via, x, kv...) + "&" + form("identifiers", y)
		t.wantError(t.refusedCF(via, twice), 400, via+" with identifiers twice in the query (C-05)")
	}
	// Exactly --max-identifiers is served, and so are raw commas (a
	// client need not percent-encode them).
	t.openCF(viaWS, strings.Join(many, ","), cfOpen{}).close()
	t.openCF(viaWS, strings.Join(many, ":0,")+":0", cfOpen{}).close()
	t.mustWS("/" + a.CFKey + "/listen?identifiers=" + x + "," + y).close()
}

func checkListenPoll(t *caseT) {
	a := t.cfg.Account
	x, y := ident(), ident()
	w := t.watchCF(x)
	t.pushID(x, "a1", 1)
	t.pushID(x, "a2", 2)
	p := t.cfPoll(a, idList(strings.ToUpper(x), 0, y, 0), 0)
	if err := samePerIdentifier(p.items, []cfItem{pushed(x, 1, "a1"), pushed(x, 2, "a2")}); err != nil {
		t.Fatalf("poll %s: %v", idList(x, 0, y, 0), err)
	}
	if want := idList(x, 2, y, 0); p.since != want {
		t.Fatalf("poll from id 0: since %q, want %q (lowercase, in LIST order)", p.since, want)
	}
	if p.took > t.cfg.scaled(atOnce) {
		t.Fatalf("poll with a backlog answered after %v, want at once", p.took.Round(time.Millisecond))
	}
	cors := func(r *reply, what string) {
		if v := r.header.Get("Access-Control-Allow-Origin"); v != "*" {
			t.Fatalf("%s: Access-Control-Allow-Origin %q, want * (C-06)", what, v)
		}
		if v := r.header.Get("Cache-Control"); !strings.Contains(v, "no-store") {
			t.Fatalf("%s: Cache-Control %q, want no-store (C-06)", what, v)
		}
	}
	cors(p.raw, "poll")
	for _, via := range []string{viaPoll, viaSSE} {
		r := t.do("OPTIONS", listenerPath(a, via, x), "", "Origin: https://example.com", "Access-Control-Request-Method: GET")
		if (r.status != 200 && r.status != 204) || r.header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("OPTIONS preflight of the %s endpoint: want 200/204 with Access-Control-Allow-Origin *, got %s %v (C-06)", via, r, r.header)
		}
	}

	// since back as identifiers: nothing new, so it waits for timeout.
	q := t.cfPoll(a, p.since, 1)
	if len(q.items) != 0 || q.since != p.since {
		t.Fatalf("poll %s with nothing new: got %v since %q", p.since, q.items, q.since)
	}
	if q.took < 900*time.Millisecond {
		t.Fatalf("poll %s with timeout=1 and nothing new answered after %v", p.since, q.took.Round(time.Millisecond))
	}

	// A plain LIST waits for the next push.
	t.parallel(func() {
		w := t.cfPoll(a, x+","+y, 10)
		if err := samePerIdentifier(w.items, []cfItem{pushed(y, 1, "b1")}); err != nil {
			t.Fatalf("plain poll answered by a push: %v", err)
		}
		if want := idList(x, 2, y, 1); w.since != want {
			t.Fatalf("plain poll answered by a push to %s: since %q, want %q", y, w.since, want)
		}
		if w.took < 700*time.Millisecond {
			t.Fatalf("plain poll answered after %v, before the push", w.took.Round(time.Millisecond))
		}
	}, func() {
		t.sleep(t.cfg.scaled(time.Second))
		t.pushID(y, "b1", 1)
	})
	// A push between two polls is in the next answer, at once.
	t.pushID(x, "a3", 3)
	n := t.cfPoll(a, idList(x, 2, y, 1), 10)
	if err := samePerIdentifier(n.items, []cfItem{pushed(x, 3, "a3")}); err != nil || n.took > t.cfg.scaled(atOnce) {
		t.Fatalf("poll after a push made between polls: got %v after %v (%v), want a3 at once", n.items, n.took.Round(time.Millisecond), err)
	}

	for _, bad := range []string{"121", "-1", "abc", "1.5", "0x10"} {
		t.wantError(t.do("GET", listenerPath(a, viaPoll, x, "timeout", bad), ""), 400, "poll timeout="+bad)
	}
	start := time.Now()
	if z := t.cfPoll(a, x+","+y, 0); len(z.items) != 0 || time.Since(start) > t.cfg.scaled(atOnce) {
		t.Fatalf("plain poll with timeout=0: got %v after %v, want [] at once", z.items, time.Since(start))
	}

	// JSONP, errors included.
	r := t.do("GET", listenerPath(a, viaPoll, idList(x, 0), "timeout", "0", "callback", "cb.x_1"), "")
	body := strings.TrimSpace(string(r.body))
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/javascript") ||
		!strings.HasPrefix(body, "cb.x_1(") || !strings.HasSuffix(body, ");") {
		t.Fatalf("JSONP poll: want 200 application/javascript cb.x_1(<json>);, got %s", r)
	}
	inner := &reply{status: 200, header: r.header, body: []byte(body[len("cb.x_1(") : len(body)-2])}
	if m := t.obj(inner, "JSONP poll"); m["code"] != "ok" || m["since"] != idList(x, 3) {
		t.Fatalf("JSONP poll: want the poll answer inside, got %s", r)
	}
	r = t.do("GET", listenerPath(a, viaPoll, "1bad", "timeout", "0", "callback", "cb"), "")
	if r.status != 400 || !strings.HasPrefix(string(r.body), "cb(") {
		t.Fatalf("JSONP poll with a bad LIST: want a 400 wrapped in cb(…);, got %s", r)
	}
	// A waiting JSONP poll answered by a push goes through another path.
	t.parallel(func() {
		r := t.doWithin(10*time.Second, "GET", listenerPath(a, viaPoll, x, "timeout", "10", "callback", "held"), "")
		if r.status != 200 || !strings.HasPrefix(string(r.body), "held(") || !strings.Contains(string(r.body), `"data":"late"`) {
			t.Fatalf("waiting JSONP poll answered by a push: want held({…\"data\":\"late\"…});, got %s", r)
		}
	}, func() {
		t.sleep(t.cfg.scaled(time.Second))
		t.push(x, "late")
	})
	for _, cb := range []string{"1cb", "a-b", "alert(1)//", ""} {
		t.wantError(t.do("GET", listenerPath(a, viaPoll, x, "timeout", "0", "callback", cb), ""), 400, fmt.Sprintf("poll callback=%q", cb))
	}
	w.quiet()
}

func checkListenSSE(t *caseT) {
	x, y := ident(), ident()
	w := t.watchCF(x)
	s := t.openCF(viaSSE, x+","+strings.ToUpper(y), cfOpen{})
	if v := s.sse.resp.header.Get("Access-Control-Allow-Origin"); v != "*" {
		t.Fatalf("SSE: Access-Control-Allow-Origin %q, want * (C-06)", v)
	}
	multi := "line1\nline2\r\n\nline4\rline5\r\rline7\r"
	ix := t.push(x, multi)
	s.expect(5*time.Second, []cfItem{pushed(x, ix, multi)}, "a multi-line push (CR, LF, CRLF)")
	if want := idList(x, ix, y, 0); s.resume != want {
		t.Fatalf("SSE push event id %q, want the LIST in id form %q", s.resume, want)
	}
	iy := t.push(y, "why")
	s.expect(5*time.Second, []cfItem{pushed(y, iy, "why")}, "a push to the second identifier")
	if want := idList(x, ix, y, iy); s.resume != want {
		t.Fatalf("SSE push event id %q, want %q", s.resume, want)
	}
	t.pushID(x, "x2", 2)
	t.pushID(x, "x3", 3)
	s.expect(5*time.Second, []cfItem{pushed(x, 2, "x2"), pushed(x, 3, "x3")}, "two more pushes")

	// Last-Event-ID overrides the ids of the query's identifiers.
	l := t.openCF(viaSSE, idList(x, 0, y, 0), cfOpen{lastEventID: idList(x, 2, y, iy)})
	l.skipGaps = true
	l.expect(atOnce, []cfItem{pushed(x, 3, "x3")}, "Last-Event-ID "+idList(x, 2, y, iy)+" over the query's ids 0")
	l.expectNothing(500*time.Millisecond, "after the Last-Event-ID backlog")
	// A browser reconnects to the URL it opened, plain LIST included.
	l = t.openCF(viaSSE, x+","+y, cfOpen{lastEventID: idList(x, 1, y, 0)})
	l.skipGaps = true
	l.expect(atOnce, []cfItem{pushed(x, 2, "x2"), pushed(x, 3, "x3"), pushed(y, iy, "why")}, "plain LIST with Last-Event-ID "+idList(x, 1, y, 0))
	l.expectNothing(500*time.Millisecond, "after the Last-Event-ID backlog")
	w.quiet()
}

func checkListenPlain(t *caseT) {
	t.forEachTransport(func(via string) {
		x := ident()
		w := t.watchCF(x)
		t.push(x, "before")
		t.pushID(x, "before too", 7)
		s := t.openCF(via, x, cfOpen{})
		s.expectNothing(700*time.Millisecond, "plain LIST, pushes made before connecting")
		id := t.push(x, "after")
		s.expect(5*time.Second, []cfItem{pushed(x, id, "after")}, "plain LIST, a push after connecting")
		w.quiet()
	})
}

func checkListenReplay(t *caseT) {
	t.parallel(func() { replayWindows(t) }, func() { replayOrder(t) })
}

// replayOrder checks the id rules that need no waiting.
func replayOrder(t *caseT) {
	x, y := ident(), ident()
	nb := t.watchCF(x)
	var xs []cfItem
	for i := range int64(5) {
		t.pushID(x, "x"+strconv.FormatInt(i+1, 10), i+1)
		xs = append(xs, pushed(x, i+1, "x"+strconv.FormatInt(i+1, 10)))
	}
	t.pushID(y, "y1", 1)
	t.pushID(y, "y2", 2)
	ys := []cfItem{pushed(y, 1, "y1"), pushed(y, 2, "y2")}
	w := ident()
	for _, id := range []int64{10, 20, 30} {
		t.pushID(w, "w"+strconv.FormatInt(id, 10), id)
	}
	t.forEachTransport(func(via string) {
		for _, c := range []struct {
			list string
			want []cfItem
		}{
			{idList(x, 2, y, 0), append(append([]cfItem(nil), xs[2:]...), ys...)},
			{idList(x, 0, y, 1), append(append([]cfItem(nil), xs...), ys[1:]...)},
			{idList(x, 5, y, 2), nil},
			{idList(w, 15), []cfItem{pushed(w, 20, "w20"), pushed(w, 30, "w30")}},
			{idList(w, 0), []cfItem{pushed(w, 10, "w10"), pushed(w, 20, "w20"), pushed(w, 30, "w30")}},
		} {
			s := t.openCF(via, c.list, cfOpen{})
			s.skipGaps = true
			s.expect(atOnce, c.want, "replay from "+c.list)
			s.expectNothing(300*time.Millisecond, "after the replay from "+c.list)
			s.close()
		}
	})

	// An id above the newest: nothing until a push above it.
	z := ident()
	t.pushID(z, "z1", 1)
	var above []*cfStream
	for _, via := range ezTransports {
		above = append(above, t.openCF(via, idList(z, 100), cfOpen{}))
	}
	t.push(z, "z2 not above 100")
	t.pushID(z, "z101", 101)
	for _, s := range above {
		s.skipGaps = true
		s.expect(5*time.Second, []cfItem{pushed(z, 101, "z101")}, "listening from id 100 (only pushes above it)")
	}

	// The replay/live hand-off: listeners join while pushes keep coming;
	// each gets every id after its own, once, in order.
	h := ident()
	for i := 1; i <= 3; i++ {
		t.pushID(h, "h"+strconv.Itoa(i), int64(i))
	}
	const last = 40
	var joined []*cfStream
	var mu sync.Mutex
	t.parallel(func() {
		for i := 4; i <= last; i++ {
			t.pushID(h, "h"+strconv.Itoa(i), int64(i))
		}
	}, func() {
		for round := range 3 {
			for _, via := range ezTransports {
				s := t.openCF(via, idList(h, 3), cfOpen{})
				mu.Lock()
				joined = append(joined, s)
				mu.Unlock()
			}
			t.sleep(time.Duration(round+1) * 30 * time.Millisecond)
		}
	})
	var want []cfItem
	for i := 4; i <= last; i++ {
		want = append(want, pushed(h, int64(i), "h"+strconv.Itoa(i)))
	}
	// Read them all at once: a long-poll listener that waited its turn
	// could fall out of --cf-resume-window.
	var fns []func()
	for i, s := range joined {
		fns = append(fns, func() {
			s.skipGaps = true
			s.expect(5*time.Second, want, fmt.Sprintf("listener %d from id 3, joined while ids 4..%d were pushed", i+1, last))
			s.expectNothing(300*time.Millisecond, "after the hand-off")
		})
	}
	t.parallel(fns...)
	nb.quiet()
}

// replayWindows checks the two windows with the server's own timers.
func replayWindows(t *caseT) {
	rw, pw := t.cfg.CFResumeWindow, t.cfg.CFReplayWindow
	if rw+2*time.Second > t.cfg.MaxWait {
		t.Notef("the resume and replay windows (--cf-resume-window %v is longer than %v; start the server with short windows and pass them)", rw, t.cfg.MaxWait)
		return
	}
	o := ident()
	w := t.watchCF(o)
	t.pushID(o, "o1", 1)
	t.pushID(o, "o2", 2)
	t0 := time.Now()
	t.sleep(rw + time.Second)
	t.pushID(o, "o3", 3)
	t3 := time.Now()
	t.forEachTransport(func(via string) {
		s := t.openCF(via, idList(o, 1), cfOpen{})
		s.skipGaps = true
		s.expect(atOnce, []cfItem{pushed(o, 3, "o3")}, fmt.Sprintf("from id 1 with o2 older than --cf-resume-window %v", rw))
		s.expectNothing(300*time.Millisecond, "after the resume-window replay")
		s.close()
		if time.Since(t0) < pw-time.Second {
			s = t.openCF(via, idList(o, 0), cfOpen{})
			s.skipGaps = true
			s.expect(atOnce, []cfItem{pushed(o, 1, "o1"), pushed(o, 2, "o2"), pushed(o, 3, "o3")}, fmt.Sprintf("from id 0, all within --cf-replay-window %v", pw))
			s.close()
		}
	})
	w.quiet()
	if pw > t.cfg.MaxWait+2*time.Second {
		t.Notef("the end of --cf-replay-window %v (longer than %v)", pw, t.cfg.MaxWait)
		return
	}
	t.sleep(time.Until(t0.Add(pw + 1500*time.Millisecond)))
	if time.Since(t3) > pw-time.Second {
		t.Notef("the end of --cf-replay-window: --cf-resume-window %v too close to it", rw)
		return
	}
	t.forEachTransport(func(via string) {
		s := t.openCF(via, idList(o, 0), cfOpen{})
		s.skipGaps = true
		s.expect(atOnce, []cfItem{pushed(o, 3, "o3")}, fmt.Sprintf("from id 0 with o1 and o2 older than --cf-replay-window %v", pw))
		s.expectNothing(300*time.Millisecond, "after the replay-window backlog")
		s.close()
	})
	w.quiet()
}

func checkListenSecureKey(t *caseT) {
	for _, v := range []struct {
		key, secret, want string
		names             []string
	}{
		{"1", "c1h89chHaka9s1", "d6d02dbf813a87619a1ab325878942b0", []string{"metrics", "tweets"}},
		{"37282591", "dj28DNam!!nx72*", "5b70b14ea396f689a1b9550ba66025bc", []string{"guestbook", "comments", "oneliner"}},
	} {
		if got := listenKey(v.key, v.secret, v.names...); got != v.want {
			t.Fatalf("the suite's secureKey for the seed vector %v is %s, want %s", v.names, got, v.want)
		}
	}
	a := t.cfg.Account
	x, y := ident(), ident()
	w := t.watchCF(x)
	X := strings.ToUpper(x)
	good := listenKey(a.CFKey, a.Secret, x, y)
	wrong := []struct{ list, key, what string }{
		{x + "," + y, listenKey(a.CFKey, a.Secret, y, x), "key over the names in another order"},
		{x + "," + y, listenKey(a.CFKey, a.Secret, X, y), "key over " + X + " while listening to " + x},
		{X + "," + y, good, "key over " + x + " while listening to " + X + " (names joined as sent)"},
		{x + "," + y, randHex(32), "random key"},
		{x + "," + y, good[:31], "key one hex digit short"},
		{x + "," + y, md5hex(a.CFKey + a.Secret + x + "," + y), "key without the inner md5"},
		{idList(x, 0, y, 0), listenKey(a.CFKey, a.Secret, x+":0", y+":0"), "key over the names with their ids"},
		{x + "," + y, listenKey(a.Key, a.Secret, x, y), "key over the private api_key instead of the cf_api_key"},
	}
	if a2 := t.cfg.Account2; a2.Secret != "" {
		wrong = append(wrong, struct{ list, key, what string }{x + "," + y, listenKey(a.CFKey, a2.Secret, x, y), "key with the second account's secret"})
	}
	var valid, none []*cfStream
	for _, via := range ezTransports {
		var kv []string
		if via == viaPoll {
			kv = []string{"timeout", "0"}
		}
		for _, w := range wrong {
			t.wantError(t.refusedCF(via, listenerPath(a, via, w.list, append(kv, "secureKey", w.key)...)), 403, via+" "+w.what)
		}
		valid = append(valid,
			t.openCF(via, x+","+y, cfOpen{secureKey: good}),
			t.openCF(via, x+","+y, cfOpen{secureKey: strings.ToUpper(good)}),
			t.openCF(via, X+","+y, cfOpen{secureKey: listenKey(a.CFKey, a.Secret, X, y)}),
			t.openCF(via, idList(x, 0, y, 0), cfOpen{secureKey: good}))
		// An empty secureKey is no secureKey: served, secret pushes withheld.
		none = append(none, t.openCF(via, x+","+y, cfOpen{}), t.openCF(via, x+","+y, cfOpen{emptyKey: true}))
	}
	sid := t.pushAs(a, x, "secret", "1", "")
	pid := t.pushAs(a, x, "public", "0", "")
	for _, s := range valid {
		s.skipGaps = true
		s.expect(5*time.Second, []cfItem{pushed(x, sid, "secret"), pushed(x, pid, "public")}, "a listener with a valid secureKey")
	}
	for _, s := range none {
		s.expect(5*time.Second, []cfItem{pushed(x, pid, "public")}, "a listener without secureKey or with an empty one")
	}
	w.quiet()
}

func checkListenSecret(t *caseT) {
	a := t.cfg.Account
	x := ident()
	w := t.watchCF(x)
	key := listenKey(a.CFKey, a.Secret, x)
	id1 := t.pushAs(a, x, "pub1", "0", "")
	id2 := t.pushAs(a, x, "sec2", "1", "")
	id3 := t.pushAs(a, x, "pub3", "0", "")
	type pair struct{ keyed, plain *cfStream }
	var ls []pair
	for _, via := range ezTransports {
		ls = append(ls, pair{t.openCF(via, idList(x, 0), cfOpen{secureKey: key}), t.openCF(via, idList(x, 0), cfOpen{})})
	}
	id4 := t.pushAs(a, x, "sec4", "1", "")
	id5 := t.pushAs(a, x, "pub5", "0", "")
	for _, p := range ls {
		p.keyed.skipGaps, p.plain.skipGaps = true, true
		p.keyed.expect(5*time.Second, []cfItem{pushed(x, id1, "pub1"), pushed(x, id2, "sec2"), pushed(x, id3, "pub3"), pushed(x, id4, "sec4"), pushed(x, id5, "pub5")}, "with secureKey, replayed and live")
		p.plain.expect(5*time.Second, []cfItem{pushed(x, id1, "pub1"), pushed(x, id3, "pub3"), pushed(x, id5, "pub5")}, "without secureKey, replayed and live")
		p.plain.expectNothing(300*time.Millisecond, "without secureKey, after the public pushes")
	}
	w.quiet()
}
