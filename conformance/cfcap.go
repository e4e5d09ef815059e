package conformance

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Per-IP listener slots (CF-L-08, C-07): a held listener is a socket
// the case keeps open without reading, which is all a slot needs.

// tryHold opens a listener that should take a slot: a WebSocket, an SSE
// stream, or a plain-LIST poll with timeout=120 that must still be
// waiting 300 ms later. It returns the open socket, or the answer that
// refused it.
func (t *caseT) tryHold(via string, a Account, list string, headers ...string) (*wireConn, *reply) {
	switch via {
	case viaWS:
		c, r := t.openWS(listenerPath(a, via, list), headers...)
		if c == nil {
			return nil, r
		}
		c.start() // answers the server's pings, which keeps the slot
		return c.w, nil
	case viaSSE:
		c, r := t.openSSE(listenerPath(a, via, list), headers...)
		if c == nil {
			return nil, r
		}
		return c.w, nil
	}
	w := t.dial()
	w.send(t.request("GET", listenerPath(a, via, list, "timeout", "120"), "", headers...))
	r, err := w.readErr("GET", 300*time.Millisecond)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return w, nil
	}
	if err != nil {
		t.Fatalf("poll %s: %v", list, err)
	}
	w.close()
	return nil, r
}

// wantJSONPError checks a JSONP error answer (C-06): callback cb, the
// error object inside, the HTTP status equal to its status.
func (t *caseT) wantJSONPError(path string, status int, what string) {
	r := t.refusedCF(viaPoll, path)
	body := strings.TrimSpace(string(r.body))
	if r.status != status || !strings.HasPrefix(r.header.Get("Content-Type"), "application/javascript") ||
		!strings.HasPrefix(body, "cb(") || !strings.HasSuffix(body, ");") {
		t.Fatalf("%s: want %d application/javascript cb({…});, got %s", what, status, r)
	}
	m := t.obj(&reply{status: r.status, header: r.header, body: []byte(body[3 : len(body)-2])}, what)
	if m["code"] != "error" || fmt.Sprint(m["status"]) != fmt.Sprint(status) {
		t.Fatalf(`%s: want "code":"error","status":%d inside, got %s`, what, status, r)
	}
}

// hold is tryHold that fails the case on a refusal.
func (t *caseT) hold(via string, a Account, list, what string, headers ...string) *wireConn {
	w, r := t.tryHold(via, a, list, headers...)
	if w == nil {
		t.Fatalf("%s: %s listener on %s refused: %s", what, via, list, r)
	}
	return w
}

// holdSoon is hold that retries refusals with 429 for up to a second
// (scaled): the time a server may take to see a closed socket.
func (t *caseT) holdSoon(via string, a Account, list, what string, headers ...string) *wireConn {
	end := time.Now().Add(t.cfg.scaled(time.Second))
	for {
		w, r := t.tryHold(via, a, list, headers...)
		if w != nil {
			return w
		}
		if r.status != http.StatusTooManyRequests || time.Now().After(end) {
			t.Fatalf("%s: %s listener on %s: want it served, got %s", what, via, list, r)
		}
		t.sleep(50 * time.Millisecond)
	}
}

// wantOver checks that one more listener from this case's address gets a
// JSON 429 before any upgrade, on every transport.
func (t *caseT) wantOver(a Account, list, what string, headers ...string) {
	for _, via := range ezTransports {
		var kv []string
		if via == viaPoll {
			kv = []string{"timeout", "10"}
		}
		t.wantError(t.refusedCF(via, listenerPath(a, via, list, kv...), headers...), 429, fmt.Sprintf("%s: one more %s listener", what, via))
	}
}

// holdMany opens n listeners from this case's address, transports taken
// in turn, and returns their sockets.
func (t *caseT) holdMany(n int, a Account, list, what string, headers ...func(i int) string) []*wireConn {
	var held []*wireConn
	for i := range n {
		var hs []string
		for _, h := range headers {
			hs = append(hs, h(i))
		}
		held = append(held, t.hold(ezTransports[i%len(ezTransports)], a, list, fmt.Sprintf("%s, listener %d of %d", what, i+1, n), hs...))
	}
	return held
}

func checkListenCap(t *caseT) {
	limit := t.cfg.MaxListenersPerIP
	if limit > 300 {
		t.Skipf("--max-listeners-per-ip %d needs too many sockets", limit)
	}
	a := t.cfg.Account
	x, y := ident(), ident()
	ipA, ipB := t.fresh(), t.fresh()
	held := ipA.holdMany(limit-1, a, x, "under the cap")
	t.pushID(y, "backlog", 1) // now, well within --cf-replay-window
	// Polls answered at once hold no slot.
	for i := range 3 {
		p := ipA.cfPoll(a, idList(y, 0), 10)
		if len(p.items) != 1 || p.took > t.cfg.scaled(atOnce) {
			t.Fatalf("poll %d from id 0 with %d listeners open: want the backlog at once, got %v after %v", i+1, limit-1, p.items, p.took)
		}
	}
	held = append(held, ipA.hold(viaWS, a, x, fmt.Sprintf("listener %d of %d after three polls answered at once", limit, limit)))
	ipA.wantOver(a, x, fmt.Sprintf("%d listeners open from %v", limit, ipA.src))
	ipA.wantJSONPError(listenerPath(a, viaPoll, x, "timeout", "10", "callback", "cb"), 429, "a JSONP poll over the cap (C-06)")

	// Another IP and another account are not affected.
	ipB.hold(viaWS, a, x, "another IP while the first is at the cap").close()
	if a2 := t.cfg.Account2; a2.Key != "" {
		ipA.hold(viaWS, a2, x, "the second account from an IP at the first account's cap").close()
	} else {
		t.Notef("the cap is per account (pass --user2/--key2)")
	}
	capBurst(t, ipA, ipB)

	// A slot frees as soon as its socket goes, whatever the transport.
	for i, via := range ezTransports {
		held[i].close()
		held[i] = ipA.holdSoon(via, a, x, "after closing a "+via+" listener at the cap")
		ipA.wantOver(a, x, "after a "+via+" slot was taken again")
	}
	// A waiting poll answered by a push frees its slot.
	t.push(x, "wake")
	polls := 0
	for i, w := range held {
		if i >= limit-1 || ezTransports[i%len(ezTransports)] != viaPoll {
			continue
		}
		r, err := w.readErr("GET", 5*time.Second)
		if err != nil {
			t.Fatalf("a waiting poll after a push: %v", err)
		}
		t.wantOK(r, "a waiting poll after a push")
		w.close()
		held[i] = ipA.holdSoon(viaWS, a, x, fmt.Sprintf("after %d waiting polls were answered", polls+1))
		polls++
	}
	ipA.wantOver(a, x, "after the answered polls' slots were taken again")

	// Close them all: the whole cap opens again.
	for _, w := range held {
		w.close()
	}
	held = held[:0]
	for i := range limit {
		held = append(held, ipA.holdSoon(ezTransports[i%len(ezTransports)], a, x, fmt.Sprintf("after closing all, listener %d of %d", i+1, limit)))
	}
	ipA.wantOver(a, x, "after closing all and opening the cap again")
}

// capBurst sends 300 WebSocket upgrades from ipA, which is at the cap, 50 at
// a time: each must be a fast 429, and ipB must be served meanwhile.
func capBurst(t, ipA, ipB *caseT) {
	const n, conc = 300, 50
	a := t.cfg.Account
	x, z := ident(), ident()
	sem := make(chan struct{}, conc)
	var slowest atomic.Int64
	var fns []func()
	for range n {
		fns = append(fns, func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			start := time.Now()
			r := ipA.refusedCF(viaWS, listenerPath(a, viaWS, x))
			took := time.Since(start)
			if r.status != http.StatusTooManyRequests {
				t.Fatalf("burst of %d upgrades from an IP at the cap: want 429, got %s", n, r)
			}
			for {
				old := slowest.Load()
				if int64(took) <= old || slowest.CompareAndSwap(old, int64(took)) {
					break
				}
			}
		})
	}
	fns = append(fns, func() {
		s := ipB.openCF(viaWS, z, cfOpen{})
		id := t.push(z, "during the burst")
		s.expect(atOnce, []cfItem{pushed(z, id, "during the burst")}, "another IP during a burst of refused upgrades")
	})
	t.parallel(fns...)
	if took := time.Duration(slowest.Load()); took > t.cfg.scaled(atOnce) {
		t.Fatalf("burst of %d upgrades from an IP at the cap: the slowest 429 took %v", n, took.Round(time.Millisecond))
	}
}

func checkListenKey(t *caseT) {
	a := t.cfg.Account
	bad := Account{CFKey: randHex(32)}
	upper := Account{CFKey: strings.ToUpper(a.CFKey)}
	private := Account{CFKey: a.Key} // the private api_key where the public key goes
	x := ident()
	wrongKey := randHex(32)
	for _, via := range ezTransports {
		var kv []string
		if via == viaPoll {
			kv = []string{"timeout", "0"}
		}
		path := func(acct Account, list string, more ...string) string {
			return listenerPath(acct, via, list, append(append([]string(nil), kv...), more...)...)
		}
		t.wantError(t.refusedCF(via, path(bad, x)), 401, via+" with an unknown apiKey")
		if via == viaPoll {
			t.wantJSONPError(path(bad, x, "callback", "cb"), 401, "a JSONP poll with an unknown apiKey (C-06)")
		}
		t.wantError(t.refusedCF(via, path(upper, x)), 401, via+" with the apiKey in upper case")
		// The private key is never accepted in a path.
		t.wantError(t.refusedCF(via, path(private, x)), 401, via+" with the private api_key in the path")
		t.wantError(t.refusedCF(via, path(private, x, "secureKey", listenKey(a.Key, a.Secret, x))), 401, via+" with the private api_key in the path and a secureKey over it")
		for _, m := range []string{"POST", "PUT", "DELETE"} {
			t.wantError(t.do(m, path(bad, "1bad"), ""), 405, fmt.Sprintf("%s %s with an unknown apiKey (405 before 401)", m, via))
		}
		t.wantError(t.refusedCF(via, path(bad, "1bad", "secureKey", wrongKey)), 401, via+" unknown apiKey, bad LIST (401 before 400)")
		t.wantError(t.refusedCF(via, path(a, "1bad", "secureKey", wrongKey)), 400, via+" bad LIST, wrong secureKey (400 before 403)")
	}
	t.wantError(t.do("GET", listenerPath(a, viaPoll, x, "timeout", "abc", "secureKey", wrongKey), ""), 400, "poll timeout=abc, wrong secureKey (400 before 403)")
	t.wantError(t.do("GET", "/"+a.CFKey+"/no-such-endpoint-"+randHex(4), ""), 404, "an unknown path under the apiKey")
	t.wantError(t.do("GET", listenerPath(a, viaPoll, x, "timeout", "0", "callback", "1cb", "secureKey", wrongKey), ""), 400, "poll callback=1cb, wrong secureKey (400 before 403)")

	// At the cap: 403 before 429, and 400, 401 before both.
	ipC, own := t.freshOrSame()
	limit := t.cfg.MaxListenersPerIP
	switch {
	case !own:
		t.Notef("403 before 429 (needs a client IP of the case's own: an IPv4 loopback target)")
	case limit > 300:
		t.Notef("403 before 429: --max-listeners-per-ip %d needs too many sockets", limit)
	default:
		for i := range limit {
			ipC.hold(viaWS, a, x, fmt.Sprintf("listener %d of %d", i+1, limit))
		}
		for _, via := range ezTransports {
			var kv []string
			if via == viaPoll {
				kv = []string{"timeout", "10"}
			}
			r := ipC.refusedCF(via, listenerPath(a, via, x, append(kv, "secureKey", wrongKey)...))
			t.wantError(r, 403, via+" wrong secureKey from an IP at the cap (403 before 429)")
			t.wantError(ipC.refusedCF(via, listenerPath(a, via, "1bad", kv...)), 400, via+" bad LIST from an IP at the cap (400 before 429)")
			t.wantError(ipC.refusedCF(via, listenerPath(bad, via, x, kv...)), 401, via+" unknown apiKey from an IP at the cap")
		}
		ipC.wantOver(a, x, "the same requests done right")
	}

	// Accounts are apart: the same identifier name is two identifiers.
	a2 := t.cfg.Account2
	if a2.Key == "" || a2.Secret == "" {
		t.Notef("accounts kept apart (pass --user2/--key2/--secret2)")
		return
	}
	y := ident()
	l1 := t.openCF(viaWS, y, cfOpen{})
	l2 := t.openCF(viaSSE, y, cfOpen{acct: a2})
	id1 := t.push(y, "first account")
	if id2 := t.pushAs(a2, y, "second account", "0", ""); id2 != 1 {
		t.Fatalf("the second account's first push to %s got id %d, want 1 (its own sequence)", y, id2)
	}
	l1.expect(5*time.Second, []cfItem{pushed(y, id1, "first account")}, "first account's listener")
	l2.expect(5*time.Second, []cfItem{pushed(y, 1, "second account")}, "second account's listener")
	l1.expectNothing(500*time.Millisecond, "first account's listener, after the second account pushed")
	l2.expectNothing(10*time.Millisecond, "second account's listener")
}
