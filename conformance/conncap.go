package conformance

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// C-12: no client IP holds an unbounded share of the server. Connections
// per client IP are capped at accept (peers inside --trusted-proxy are
// exempt there and counted per forwarded client, request by request), and
// EZComet readers take slots in the account's per-IP listener bucket, the
// same one as its Cometify listeners.

func connCapCases() []ruleCase {
	return []ruleCase{
		{rule: "C-12", what: "--max-conns-per-ip connections from one address served, one more a JSON 429 and closed, another address served, a closed one frees its place; a trusted proxy's connections exempt at accept, a request forwarded for a client at the cap a 429", run: checkConnCap, timeout: 120 * time.Second},
		{rule: "C-12", what: "EZComet readers (WebSocket, SSE, waiting long-poll) share the account's per-IP listener bucket with Cometify listeners: one more of either kind over the cap is a JSON 429, slots free across kinds", run: checkReaderBucket, timeout: 90 * time.Second},
	}
}

// servedConn opens a connection and checks that GET /healthz on it, sent
// with headers, is answered 200; the connection stays open.
func (t *caseT) servedConn(what string, headers ...string) *wireConn {
	w := t.dial()
	w.send(t.request("GET", "/healthz", "", headers...))
	r, err := w.readErr("GET", defaultWait)
	if err != nil {
		t.Fatalf("%s: GET /healthz: %v", what, err)
	}
	if r.status != 200 {
		t.Fatalf("%s: GET /healthz: want 200, got %s", what, r)
	}
	return w
}

// tryConn opens a connection and returns its first answer: one the server
// sends unasked within 300 ms, else the answer to GET /healthz sent with
// headers. The connection is returned open unless the server closed it.
func (t *caseT) tryConn(headers ...string) (*wireConn, *reply) {
	w := t.dial()
	r, err := w.readErr("GET", 300*time.Millisecond)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		if err := w.trySend(t.request("GET", "/healthz", "", headers...)); err != nil {
			t.Fatalf("GET /healthz on a new connection: %v", err)
		}
		r, err = w.readErr("GET", defaultWait)
	}
	if err != nil {
		t.Fatalf("a new connection: want an answer, got %v", err)
	}
	return w, r
}

// refusedConn checks that a new connection is refused: a JSON 429 (unasked
// or to its first request) and then closed.
func (t *caseT) refusedConn(what string, headers ...string) {
	w, r := t.tryConn(headers...)
	t.wantError(r, http.StatusTooManyRequests, what)
	w.expectClosed(3*time.Second, "after the 429 to "+what)
}

// servedConns opens n connections at once (32 at a time), each served as
// servedConn; header(i), if given, goes with connection i's request.
func (t *caseT) servedConns(n int, what string, header func(i int) string) []*wireConn {
	conns := make([]*wireConn, n)
	sem := make(chan struct{}, 32)
	var fns []func()
	for i := range n {
		fns = append(fns, func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			var hs []string
			if header != nil {
				hs = append(hs, header(i))
			}
			conns[i] = t.servedConn(fmt.Sprintf("%s, connection %d of %d", what, i+1, n), hs...)
		})
	}
	t.parallel(fns...)
	return conns
}

func closeConns(conns []*wireConn) {
	for _, c := range conns {
		if c != nil {
			c.close()
		}
	}
}

func checkConnCap(t *caseT) {
	n := t.cfg.Wire.MaxConnsPerIP
	if n > 2000 {
		t.Skipf("--max-conns-per-ip %d needs too many sockets (start the server with a smaller cap and pass it on)", n)
	}
	ipA, ipB := t.fresh(), t.fresh()
	start := time.Now()
	held := ipA.servedConns(n, "from one address", nil)
	ipA.refusedConn(fmt.Sprintf("connection %d from %v, which holds %d", n+1, ipA.src, n))
	ipB.servedConn("another address while the first is at the cap").close()
	held[0].close()
	held[0] = ipA.servedSoon("after closing one of the connections at the cap")
	ipA.refusedConn("one more connection after the freed place was taken again")
	// The connections held are untouched by the refusals.
	for _, i := range []int{1, n / 2, n - 1} {
		if i <= 0 || i >= n {
			continue
		}
		held[i].send(t.request("GET", "/healthz", ""))
		if r, err := held[i].readErr("GET", defaultWait); err != nil || r.status != 200 {
			t.Fatalf("connection %d of %d held at the cap, after the refusals: GET /healthz: %v %v", i+1, n, r, err)
		}
	}
	if took := time.Since(start); took > t.cfg.IdleTimeout/2 {
		t.Notef("the connection cap is unreliable when opening %d connections takes %v against --idle-timeout %v", n, took.Round(time.Millisecond), t.cfg.IdleTimeout)
	}
	closeConns(held)

	proxy, ok := t.cfg.proxyAddr()
	if !ok {
		t.Notef("connections through a trusted proxy (pass the server's --trusted-proxy CIDRs, one holding a loopback address)")
		return
	}
	px := t.from(proxy)
	v := t.outsideAddr()
	xff := func(addr string) string { return "X-Forwarded-For: " + addr }
	held = px.servedConns(n, "through trusted proxy "+proxy.String()+" for client "+v, func(int) string { return xff(v) })
	w := px.servedConn(fmt.Sprintf("connection %d from the trusted proxy, for another client (a proxy is exempt at accept)", n+1), xff(t.outsideAddr()))
	px.refusedConn(fmt.Sprintf("a request forwarded for client %s, which holds %d connections", v, n), xff(v))
	px.refusedConn("a request forwarded for that client as ip:port over two X-Forwarded-For lines", xff(t.outsideAddr()), xff(v+":443"))
	w.close()
	closeConns(held)
}

// servedSoon is servedConn retried for up to a second (scaled) while the
// answer is a 429: the time a server may take to see a closed socket.
func (t *caseT) servedSoon(what string, headers ...string) *wireConn {
	end := time.Now().Add(t.cfg.scaled(time.Second))
	for {
		w, r := t.tryConn(headers...)
		if r.status == 200 {
			return w
		}
		w.close()
		if r.status != http.StatusTooManyRequests || time.Now().After(end) {
			t.Fatalf("%s: want GET /healthz served, got %s", what, r)
		}
		t.sleep(50 * time.Millisecond)
	}
}

// tryHoldEZ opens an EZComet reader of qname q that should take a slot: a
// WebSocket, an SSE stream, or a long-poll (timeout=120) that must still be
// waiting 300 ms later. It returns the open socket, or the answer that
// refused it.
func (t *caseT) tryHoldEZ(via, q string) (*wireConn, *reply) {
	switch via {
	case viaWS:
		c, r := t.openWS(readPath("/read/ws", q, "", -1))
		if c == nil {
			return nil, r
		}
		c.start() // answers the server's pings, which keeps the slot
		return c.w, nil
	case viaSSE:
		c, r := t.openSSE(readPath("/read/sse", q, "", -1))
		if c == nil {
			return nil, r
		}
		return c.w, nil
	}
	w := t.dial()
	w.send(t.request("GET", readPath("/read", q, "", 120), ""))
	r, err := w.readErr("GET", 300*time.Millisecond)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return w, nil
	}
	if err != nil {
		t.Fatalf("read %s: %v", q, err)
	}
	w.close()
	return nil, r
}

// holdEZ is tryHoldEZ that fails the case on a refusal.
func (t *caseT) holdEZ(via, q, what string) *wireConn {
	w, r := t.tryHoldEZ(via, q)
	if w == nil {
		t.Fatalf("%s: %s reader of %s refused: %s", what, via, q, r)
	}
	return w
}

// holdEZSoon is holdEZ retried for up to a second (scaled) while refused
// with 429.
func (t *caseT) holdEZSoon(via, q, what string) *wireConn {
	end := time.Now().Add(t.cfg.scaled(time.Second))
	for {
		w, r := t.tryHoldEZ(via, q)
		if w != nil {
			return w
		}
		if r.status != http.StatusTooManyRequests || time.Now().After(end) {
			t.Fatalf("%s: %s reader of %s: want it served, got %s", what, via, q, r)
		}
		t.sleep(50 * time.Millisecond)
	}
}

// wantEZRefused checks that one more EZComet reader of q, on every
// transport, gets a JSON 429 before any upgrade.
func (t *caseT) wantEZRefused(q, what string) {
	for _, via := range ezTransports {
		w, r := t.tryHoldEZ(via, q)
		if w != nil {
			w.close()
			t.Fatalf("%s: a %s reader was served; want a JSON 429, the account's per-IP bucket is full", what, via)
		}
		t.wantError(r, http.StatusTooManyRequests, fmt.Sprintf("%s: one more %s reader", what, via))
	}
}

func checkReaderBucket(t *caseT) {
	limit := t.cfg.MaxListenersPerIP
	if limit > 300 {
		t.Skipf("--max-listeners-per-ip %d needs too many sockets", limit)
	}
	if limit < 2 {
		t.Skipf("--max-listeners-per-ip %d: the bucket must hold readers of both kinds", limit)
	}
	a := t.cfg.Account
	ip := t.fresh()
	q, x := t.qname(), ident()
	ez := limit - limit/3
	var readers, listeners []*wireConn
	for i := range ez {
		readers = append(readers, ip.holdEZ(ezTransports[i%len(ezTransports)], q, fmt.Sprintf("EZComet reader %d of %d", i+1, ez)))
	}
	listeners = ip.holdMany(limit-ez, a, x, fmt.Sprintf("after %d EZComet readers, a Cometify listener", ez))
	what := fmt.Sprintf("%d EZComet readers and %d Cometify listeners from %v", ez, limit-ez, ip.src)
	ip.wantEZRefused(q, what)
	ip.wantEZRefused(t.qname(), what+", a reader of another channel")
	ip.wantRefused(a, x, what)

	// Another address, and the other account from this one, are served.
	o := t.fresh()
	o.holdEZ(viaWS, q, "another address while the first is at the cap").close()
	o.hold(viaWS, a, x, "another address while the first is at the cap").close()
	if a2 := t.cfg.Account2; a2.User != "" {
		ip.holdEZ(viaSSE, a2.User+"-cf"+randHex(12), "a reader of the second account's channel from an address at the first account's cap").close()
	} else {
		t.Notef("the bucket is per account (pass --user2/--key2)")
	}

	// A slot freed by one kind is taken by the other.
	readers[0].close()
	listeners = append(listeners, ip.holdSoon(viaWS, a, x, "a Cometify listener after an EZComet reader at the cap closed"))
	ip.wantEZRefused(q, "after a Cometify listener took an EZComet reader's slot")
	listeners[0].close()
	readers[0] = ip.holdEZSoon(viaSSE, q, "an EZComet reader after a Cometify listener at the cap closed")
	ip.wantRefused(a, x, "after an EZComet reader took a Cometify listener's slot")

	// A waiting EZComet poll answered by a write frees its slot.
	polls := 0
	t.writeMsg(q, "wake", "")
	for i, w := range readers {
		if i == 0 || ezTransports[i%len(ezTransports)] != viaPoll {
			continue
		}
		r, err := w.readErr("GET", 5*time.Second)
		if err != nil {
			t.Fatalf("a waiting EZComet poll after a write: %v", err)
		}
		t.wantOK(r, "a waiting EZComet poll after a write")
		w.close()
		readers[i] = ip.holdSoon(viaWS, a, x, fmt.Sprintf("a Cometify listener after %d waiting EZComet polls were answered", polls+1))
		polls++
	}
	ip.wantRefused(a, x, "after the answered polls' slots were taken again")
	closeConns(readers)
	closeConns(listeners[1:])
}
