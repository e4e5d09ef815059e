package conformance

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gobwas/ws"
)

// checkLimits is C-08: every limit is checked concurrently, since several
// wait on server timers.
func checkLimits(t *caseT) {
	t.parallel(
		func() { limitHeaderBytes(t) },
		func() { limitBodyBytes(t) },
		func() { limitHeaderDeadline(t, false) },
		func() { limitHeaderDeadline(t, true) },
		func() { limitFrameBytes(t) },
		func() { limitSlowConsumer(t) },
		func() { limitSlowListener(t) },
		func() { limitIdleKeepAlive(t) },
	)
}

func limitHeaderBytes(t *caseT) {
	limit := t.cfg.MaxHeaderBytes
	// Just under the limit is served.
	base := len(t.request("GET", "/healthz", "", "X-Pad: "))
	if room := limit - base - 64; room > 0 {
		r := t.do("GET", "/healthz", "", "X-Pad: "+strings.Repeat("a", room))
		if r.status != 200 {
			t.Fatalf("request line + headers of %d bytes (limit %d): want 200, got %s", base+room, limit, r)
		}
	}
	w := t.dial()
	_ = w.trySend(t.request("GET", "/healthz", "", "X-Pad: "+strings.Repeat("a", limit+100)))
	r, err := w.readErr("GET", defaultWait)
	if err != nil {
		t.Fatalf("headers over %d bytes: want a JSON 431, got %v", limit, err)
	}
	t.wantError(r, 431, fmt.Sprintf("headers over %d bytes", limit))
}

func limitBodyBytes(t *caseT) {
	limit := t.cfg.MaxBodyBytes
	w := t.dial()
	head := fmt.Sprintf("POST /write HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n", t.cfg.host(), limit+1)
	w.send(head)
	// The server may answer from Content-Length alone; keep sending anyway.
	go func() {
		_ = w.trySend("msg=" + strings.Repeat("a", limit+1-4))
	}()
	r, err := w.readErr("POST", defaultWait)
	if err != nil {
		t.Fatalf("body of %d bytes: want a JSON 413, got %v", limit+1, err)
	}
	t.wantError(r, 413, fmt.Sprintf("body of %d bytes (limit %d)", limit+1, limit))
}

// limitHeaderDeadline sends half a request and waits to be cut off; with
// trickle it keeps sending a byte every 500 ms, which must not extend the
// deadline because it counts from the request's first byte.
func limitHeaderDeadline(t *caseT, trickle bool) {
	ht := t.cfg.HeaderTimeout
	if ht > t.cfg.MaxWait {
		if !trickle {
			t.Notef("header deadline %v > %v (start the server with a shorter one and pass --header-timeout)", ht, t.cfg.MaxWait)
		}
		return
	}
	w := t.dial()
	start := time.Now()
	w.send("GET /healthz HTTP/1.1\r\nHost: x\r\n")
	what := "half a request header"
	if trickle {
		what = "a header trickled one byte per 500 ms"
		go func() {
			for i := 0; ; i++ {
				time.Sleep(500 * time.Millisecond)
				if w.trySend(fmt.Sprintf("X-%d: y\r\n", i)[:1]) != nil {
					return
				}
			}
		}()
	}
	closed, extra := w.closedWithin(ht + 3*time.Second)
	took := time.Since(start)
	if !closed {
		t.Fatalf("%s: connection still open %v after the first byte (header timeout %v)", what, took.Round(time.Millisecond), ht)
	}
	if took < ht/2 {
		t.Fatalf("%s: closed after %v, well before the header timeout %v", what, took.Round(time.Millisecond), ht)
	}
	if len(extra) > 0 {
		r, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(extra)), nil)
		if err != nil || r.StatusCode != 408 {
			t.Fatalf("%s: only a JSON 408 may precede the close, got %q", what, clip(extra))
		}
	}
}

func limitFrameBytes(t *caseT) {
	c := t.mustWS(readPath("/read/ws", t.qname(), "", -1))
	c.start()
	go func() {
		_ = c.writeFrame(ws.NewTextFrame(bytes.Repeat([]byte("f"), t.cfg.MaxFrameBytes+1)))
	}()
	for {
		f, ok := c.next(5 * time.Second)
		if !ok {
			t.Fatalf("WebSocket frame of %d bytes (limit %d): no close frame within 5s", t.cfg.MaxFrameBytes+1, t.cfg.MaxFrameBytes)
		}
		if f.err != nil {
			t.Fatalf("WebSocket frame of %d bytes: connection ended without a close frame: %v", t.cfg.MaxFrameBytes+1, f.err)
		}
		if f.op == ws.OpClose {
			if f.code != ws.StatusMessageTooBig {
				t.Fatalf("WebSocket frame of %d bytes: close code %d %q, want 1009", t.cfg.MaxFrameBytes+1, f.code, f.reason)
			}
			return
		}
	}
}

// limitSlowConsumer holds a WebSocket reader that never reads (with a small
// receive buffer so the kernel cannot hide the backlog), writes more than
// the unsent-output cap, and then checks that the reader was cut off and
// that resuming from its last tick loses nothing still retained.
func limitSlowConsumer(t *caseT) {
	const size = 4096
	// The server's kernel send buffer holds output the server no longer
	// counts as unsent: write past the cap by that much and 1 MiB more.
	n := (t.cfg.MaxUnsentBytes+kernelSendBufferMax()+1<<20)/size + 1
	if n > 20000 {
		t.Notef("slow consumer: --max-unsent-bytes %d needs too many writes", t.cfg.MaxUnsentBytes)
		return
	}
	q := t.qname()
	wc, err := t.dialErr(8192)
	if err != nil {
		t.Fatalf("connect %s: %v", t.cfg.hostPort(), err)
	}
	c, r := t.openWSOn(wc, readPath("/read/ws", q, "", -1))
	if c == nil {
		t.Fatalf("slow consumer: want a WebSocket upgrade, got %s", r)
	}
	msgs := make([]string, n)
	ticks := make([]string, n)
	for i := range n {
		ticks[i] = fmt.Sprintf("s%d", i)
		msgs[i] = fmt.Sprintf("%06d", i) + strings.Repeat("s", size-6)
	}
	t.writeMany(q, msgs, ticks)

	var got []ezItem
	disconnected := false
	for !disconnected {
		f, ok := c.next(5 * time.Second)
		switch {
		case !ok:
			t.Fatalf("slow consumer: after %d of %d messages the stream stalled without being closed", len(got), n)
		case f.err != nil || f.op == ws.OpClose:
			disconnected = true
		default:
			it := t.decodeEZFrame("slow consumer", f.payload)
			if !it.gap {
				got = append(got, it)
			}
		}
		if len(got) == n {
			t.Fatalf("slow consumer: all %d messages (%d MiB) were delivered to a reader that never read; it should have been disconnected past %d bytes unsent", n, n*size>>20, t.cfg.MaxUnsentBytes)
		}
	}
	if err := sameItems(got, msgs[:len(got)], ticks[:len(got)]); err != nil {
		t.Fatalf("slow consumer: what arrived before the disconnect: %v", err)
	}
	last := ""
	if len(got) > 0 {
		last = got[len(got)-1].tick
	}
	rest, gap := t.readAll(q, last)
	want := n - len(got)
	if len(rest) > want || len(rest) == 0 {
		t.Fatalf("slow consumer: resuming from %q returned %d messages, want the %d written after it (or the retained ones)", last, len(rest), want)
	}
	skip := want - len(rest)
	if err := sameItems(rest, msgs[n-len(rest):], ticks[n-len(rest):]); err != nil {
		t.Fatalf("slow consumer: resuming from %q: %v", last, err)
	}
	if skip > 0 && !gap {
		t.Fatalf("slow consumer: resuming from %q lost %d messages (retention %d) without a gap signal", last, skip, t.cfg.EZMaxQueue)
	}
}

// limitSlowListener is limitSlowConsumer for a Cometify WebSocket: cut
// off past the cap, it resumes by id (within --cf-resume-window) and gets
// every later push.
func limitSlowListener(t *caseT) {
	const size = 65536
	n := (t.cfg.MaxUnsentBytes+kernelSendBufferMax()+1<<20)/size + 1
	if n > 2000 {
		t.Notef("slow Cometify listener: --max-unsent-bytes %d needs too many pushes", t.cfg.MaxUnsentBytes)
		return
	}
	a := t.cfg.Account
	x := ident()
	wc, err := t.dialErr(8192)
	if err != nil {
		t.Fatalf("connect %s: %v", t.cfg.hostPort(), err)
	}
	c, r := t.openWSOn(wc, listenerPath(a, viaWS, x))
	if c == nil {
		t.Fatalf("slow Cometify listener: want a WebSocket upgrade, got %s", r)
	}
	text := func(i int) string { return fmt.Sprintf("%06d", i) + strings.Repeat("c", size-6) }
	start := time.Now()
	t.pipeline(n, 8, func(i int) string {
		return t.request("POST", pushPath(a, x), pushForm(a, x, text(i), "0", strconv.Itoa(i+1)))
	}, func(i int, r *reply) {
		t.pushAnswer(r, fmt.Sprintf("pipelined push %d of %d", i+1, n), strconv.Itoa(i+1))
	})
	var last int64
	for disconnected := false; !disconnected; {
		f, ok := c.next(5 * time.Second)
		switch {
		case !ok:
			t.Fatalf("slow Cometify listener: after push %d of %d the stream stalled without being closed", last, n)
		case f.err != nil || f.op == ws.OpClose:
			disconnected = true
		default:
			it, known := t.decodeCFObject("slow Cometify listener", f.payload)
			if !known || it.kind != cfPush {
				continue
			}
			if it.id != last+1 || it.data != text(int(last)) {
				t.Fatalf("slow Cometify listener: after push %d got %v", last, it)
			}
			last = it.id
		}
		if last == int64(n) {
			t.Fatalf("slow Cometify listener: all %d pushes (%d MiB) were delivered to a listener that never read; it should have been disconnected past %d bytes unsent", n, n*size>>20, t.cfg.MaxUnsentBytes)
		}
	}
	if age := time.Since(start); age > t.cfg.CFResumeWindow-time.Second {
		t.Notef("slow Cometify listener resuming by id: the pushes are %v old, too close to --cf-resume-window %v", age.Round(time.Millisecond), t.cfg.CFResumeWindow)
		return
	}
	s := t.openCF(viaWS, idList(x, last), cfOpen{})
	var want []cfItem
	for i := int(last); i < n; i++ {
		want = append(want, pushed(x, int64(i+1), text(i)))
	}
	s.expect(5*time.Second, want, fmt.Sprintf("slow Cometify listener resuming from id %d", last))
}

// kernelSendBufferMax is the most a TCP send buffer can grow to on this
// host (Linux tcp_wmem), the best guess for a server on the same host.
func kernelSendBufferMax() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem")
	if f := strings.Fields(string(b)); err == nil && len(f) == 3 {
		if n, err := strconv.Atoi(f[2]); err == nil && n > 0 {
			return n
		}
	}
	return 4 << 20
}

func limitIdleKeepAlive(t *caseT) {
	idle := t.cfg.IdleTimeout
	if idle > t.cfg.MaxWait {
		t.Notef("idle keep-alive %v > %v (start the server with a shorter one and pass --idle-timeout)", idle, t.cfg.MaxWait)
		return
	}
	w := t.dial()
	w.send(t.request("GET", "/healthz", ""))
	if r := w.read(); r.status != 200 {
		t.Fatalf("GET /healthz: %s", r)
	}
	start := time.Now()
	closed, _ := w.closedWithin(idle + 3*time.Second)
	took := time.Since(start)
	if !closed {
		t.Fatalf("idle keep-alive still open after %v (idle timeout %v)", took.Round(time.Millisecond), idle)
	}
	if took < idle/2 {
		t.Fatalf("idle keep-alive closed after %v, well before the idle timeout %v", took.Round(time.Millisecond), idle)
	}
}
