package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// testHandler routes by path; it records Closed, Drain, Fail and
// Expired calls.
type testHandler struct {
	srv *Server

	mu      sync.Mutex
	closed  map[uint64]int
	drained map[uint64]int
	fails   []int
	expired int
	held    []Conn // /holdpost connections, for the test to wake
	serveFn func(c Conn, r *Request) bool
	pipeFn  func(r *Request) bool // Pipelinable; nil: false

	drainedFn    func(c Conn)
	drainedCalls map[uint64]int
	// inCall counts, per loop, the Handler calls on its stack; nested
	// counts Drained or Closed calls made inside another Handler call.
	inCall [8]int
	nested atomic.Int32
}

// enter records a Handler call on c's loop (its goroutine only).
func (h *testHandler) enter(c Conn, queued bool) {
	if i := c.Loop(); i < len(h.inCall) {
		if queued && h.inCall[i] > 0 {
			h.nested.Add(1)
		}
		h.inCall[i]++
	}
}

func (h *testHandler) leave(c Conn) {
	if i := c.Loop(); i < len(h.inCall) {
		h.inCall[i]--
	}
}

func newTestHandler() *testHandler {
	return &testHandler{closed: map[uint64]int{}, drained: map[uint64]int{}, drainedCalls: map[uint64]int{}}
}

func (h *testHandler) Serve(c Conn, r *Request) {
	h.enter(c, false)
	defer h.leave(c)
	if h.serveFn != nil && h.serveFn(c, r) {
		return
	}
	switch string(r.Path) {
	case "/hold":
		c.SetTag("hold")
		c.Hold(50 * time.Millisecond)
	case "/holdlong":
		c.SetTag("hold")
		c.Hold(time.Hour)
		h.mu.Lock()
		h.held = append(h.held, c)
		h.mu.Unlock()
	case "/ws":
		if err := c.UpgradeWebSocket(r, []byte("X-Test: 1\r\n")); err != nil {
			if errors.Is(err, ErrUpgradeVersion) {
				c.Reply(426, "text/plain", []byte("Sec-WebSocket-Version: 13\r\n"), []byte(err.Error()))
				return
			}
			c.Reply(400, "text/plain", nil, []byte(err.Error()))
			return
		}
		c.SetTag("ws")
	case "/sse":
		c.StartStream("text/event-stream", []byte("Cache-Control: no-store\r\n"))
		c.SetTag("sse")
	case "/panic":
		panic("test panic")
	default:
		q := "<nil>"
		if r.Query != nil {
			q = string(r.Query)
		}
		body := fmt.Sprintf("%s %s %s %s", r.Method, r.Path, q, r.Body)
		c.Reply(200, "text/plain", []byte("X-Peer: "+r.PeerAddr.String()+"\r\nX-Client: "+r.ClientIP.String()+"\r\n"), []byte(body))
	}
}

func (h *testHandler) Pipelinable(r *Request) bool {
	return h.pipeFn != nil && h.pipeFn(r)
}

func (h *testHandler) Fail(c Conn, r *Request, status int, msg string) {
	h.mu.Lock()
	h.fails = append(h.fails, status)
	h.mu.Unlock()
	c.Reply(status, "application/json", nil, fmt.Appendf(nil, `{"code":"error","msg":%q,"status":%d}`, msg, status))
}

func (h *testHandler) Expired(c Conn) {
	h.mu.Lock()
	h.expired++
	h.mu.Unlock()
	c.Reply(200, "text/plain", nil, []byte("expired"))
}

func (h *testHandler) Drained(c Conn) {
	h.enter(c, true)
	defer h.leave(c)
	h.mu.Lock()
	h.drainedCalls[c.ID()]++
	h.mu.Unlock()
	if c.(*conn).state >= stFlushing {
		panic("Drained for a closed connection")
	}
	if h.drainedFn != nil {
		h.drainedFn(c)
	}
}

func (h *testHandler) drainedCount(id uint64) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.drainedCalls[id]
}

func (h *testHandler) Closed(c Conn) {
	h.enter(c, true)
	defer h.leave(c)
	h.mu.Lock()
	h.closed[c.ID()]++
	h.mu.Unlock()
}

func (h *testHandler) Drain(c Conn) {
	h.mu.Lock()
	h.drained[c.ID()]++
	h.mu.Unlock()
	switch c.Tag() {
	case "ws":
		c.CloseWebSocket(CloseGoingAway, "restart")
	case "hold":
		c.Reply(200, "text/plain", nil, []byte("drained"))
	case "sse":
		c.Close()
	}
}

func (h *testHandler) closedCount() (conns, calls int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range h.closed {
		conns++
		calls += n
	}
	return
}

func testOptions() Options {
	return Options{
		Listen:        []string{"127.0.0.1:0"},
		Loops:         2,
		SweepInterval: 10 * time.Millisecond,
		DrainTimeout:  2 * time.Second,
	}
}

// startServer runs a server for the test and stops it at cleanup; setup
// runs before Run.
func startServer(t *testing.T, opts Options, h *testHandler, setup ...func(*Server)) (*Server, string) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := New(opts, h, log)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range setup {
		f(s)
	}
	h.srv = s
	errc := make(chan error, 1)
	go func() { errc <- s.Run() }()
	select {
	case <-s.Ready():
	case err := <-errc:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server not ready")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	})
	return s, s.Addrs()[0].String()
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func readResponse(t *testing.T, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	resp.Body.Close()
	return resp, string(b)
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func expectEOF(t *testing.T, br *bufio.Reader) {
	t.Helper()
	if b, err := br.ReadByte(); err == nil {
		t.Fatalf("expected close, got byte %q", b)
	}
}

func TestServerPipelinedInOrder(t *testing.T) {
	h := newTestHandler()
	_, addr := startServer(t, testOptions(), h)
	c, br := dial(t, addr)
	reqs := "GET /a?1 HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
		"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST http://x/c?z HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n" +
		"GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(c, reqs); err != nil {
		t.Fatal(err)
	}
	want := []string{"GET /a 1 ", "POST /b <nil> hello", "expired", "POST /c z ok", "GET /d <nil> "}
	for i, w := range want {
		resp, body := readResponse(t, br)
		if body != w {
			t.Fatalf("response %d: %q, want %q", i, body, w)
		}
		if i == 0 && resp.Header.Get("X-Peer") != "127.0.0.1" {
			t.Fatalf("X-Peer %q", resp.Header.Get("X-Peer"))
		}
		if i == 4 && !resp.Close {
			t.Fatal("Connection: close not honoured")
		}
	}
	expectEOF(t, br)
}

// TestServerPipelineFloodWithoutPause: where reads cannot be paused, a
// client that pipelines more than MaxPipelined bytes behind a request
// still being answered gets that answer, then a JSON 429 for the next
// request, then the close; nothing else is parsed. Below the limit every
// pipelined request is answered in order. (With pausing, see
// TestPipelineOfPushesNeverCut.)
func TestServerPipelineFloodWithoutPause(t *testing.T) {
	h := newTestHandler()
	opts := testOptions()
	opts.MaxPipelined = 64 << 10
	_, addr := startServer(t, opts, h, func(s *Server) { s.noPause = true })
	req := "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("m", 1000)
	for _, tc := range []struct {
		n     int
		flood bool
	}{{50, false}, {200, true}} {
		c, br := dial(t, addr)
		if _, err := io.WriteString(c, "GET /holdlong HTTP/1.1\r\nHost: x\r\n\r\n"+strings.Repeat(req, tc.n)); err != nil {
			t.Fatal(err)
		}
		var held Conn
		waitFor(t, "hold", func() bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			if len(h.held) > 0 {
				held, h.held = h.held[0], h.held[1:]
			}
			return held != nil
		})
		time.Sleep(50 * time.Millisecond) // let the pipelined bytes arrive
		h.srv.Post(held.Loop(), func() { held.Reply(200, "text/plain", nil, []byte("woken")) })
		if _, body := readResponse(t, br); body != "woken" {
			t.Fatalf("first answer %q", body)
		}
		if !tc.flood {
			for i := range tc.n {
				if _, body := readResponse(t, br); !strings.HasPrefix(body, "POST /p") {
					t.Fatalf("pipelined answer %d: %q", i, body)
				}
			}
			c.Close()
			continue
		}
		resp, body := readResponse(t, br)
		if resp.StatusCode != 429 || !strings.Contains(body, `"status":429`) || !resp.Close {
			t.Fatalf("after the flood: %d %q close=%v", resp.StatusCode, body, resp.Close)
		}
		expectEOF(t, br)
	}
}

func TestServerOneByteAtATime(t *testing.T) {
	h := newTestHandler()
	_, addr := startServer(t, testOptions(), h)
	c, br := dial(t, addr)
	req := "POST /x?y HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /z HTTP/1.1\r\nHost: x\r\n\r\n"
	for i := 0; i < len(req); i++ {
		if _, err := c.Write([]byte{req[i]}); err != nil {
			t.Fatal(err)
		}
	}
	if _, body := readResponse(t, br); body != "POST /x y abc" {
		t.Fatalf("got %q", body)
	}
	if _, body := readResponse(t, br); body != "GET /z <nil> " {
		t.Fatalf("got %q", body)
	}
}

func TestServerHTTP10(t *testing.T) {
	h := newTestHandler()
	_, addr := startServer(t, testOptions(), h)
	c, br := dial(t, addr)
	io.WriteString(c, "GET /ten HTTP/1.0\r\n\r\n")
	resp, body := readResponse(t, br)
	if body != "GET /ten <nil> " || !resp.Close {
		t.Fatalf("got %q close=%v", body, resp.Close)
	}
	expectEOF(t, br)

	c, br = dial(t, addr)
	io.WriteString(c, "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n")
	if _, body := readResponse(t, br); body != "GET /a <nil> " {
		t.Fatalf("got %q", body)
	}
	if _, body := readResponse(t, br); body != "GET /b <nil> " {
		t.Fatalf("got %q", body)
	}
	expectEOF(t, br)
}

func TestServerExpectContinue(t *testing.T) {
	h := newTestHandler()
	_, addr := startServer(t, testOptions(), h)
	c, br := dial(t, addr)
	io.WriteString(c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("got %q %v", line, err)
	}
	if l, _ := br.ReadString('\n'); l != "\r\n" {
		t.Fatalf("got %q", l)
	}
	io.WriteString(c, "data")
	if _, body := readResponse(t, br); body != "POST /up <nil> data" {
		t.Fatalf("got %q", body)
	}
}

func TestServerFailures(t *testing.T) {
	h := newTestHandler()
	opts := testOptions()
	opts.HeaderTimeout = 100 * time.Millisecond
	_, addr := startServer(t, opts, h)
	cases := []struct {
		name, in string
		status   int
	}{
		{"garbage", "\x00\x01\x02 binary junk\r\n\r\n", 400},
		{"bad line", "NOT A REQUEST\r\n\r\n", 400},
		{"version", "GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505},
		{"headers", "GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", 9000) + "\r\n\r\n", 431},
		{"body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n", 413},
		{"timeout", "GET / HTTP/1.1\r\nHost: x\r\n", 408},
		{"after good", "GET /ok HTTP/1.1\r\nHost: x\r\n\r\nBAD\x00\r\n\r\n", 400},
		// C-03: framing that could be read two ways is refused, never
		// served (the body would otherwise be a second request).
		{"te identity", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"te and cl", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"te list", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400},
		{"te http/1.0", "POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"cl disagree", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
		{"bare LF in chunks", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\r\n0\r\n\r\n", 400},
	}
	for _, tc := range cases {
		c, br := dial(t, addr)
		io.WriteString(c, tc.in)
		resp, body := readResponse(t, br)
		if tc.name == "after good" {
			if resp.StatusCode != 200 {
				t.Fatalf("%s: first status %d", tc.name, resp.StatusCode)
			}
			resp, body = readResponse(t, br)
		}
		if resp.StatusCode != tc.status || !strings.Contains(body, fmt.Sprintf(`"status":%d`, tc.status)) {
			t.Fatalf("%s: status %d body %q", tc.name, resp.StatusCode, body)
		}
		expectEOF(t, br)
	}
}

func TestServerEndlessGarbageAndVanishingPeers(t *testing.T) {
	h := newTestHandler()
	s, addr := startServer(t, testOptions(), h)
	base := s.Stats().OpenConns
	for i := 0; i < 20; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 0: // vanishes mid-request
			io.WriteString(c, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
		case 1: // endless text garbage with no newline
			io.WriteString(c, strings.Repeat("a", 20000))
		case 2: // vanishes during a hold
			io.WriteString(c, "GET /holdlong HTTP/1.1\r\nHost: x\r\n\r\n")
		}
		c.Close()
	}
	waitFor(t, "connections to be released", func() bool { return s.Stats().OpenConns == base })
	waitFor(t, "held polls to be released", func() bool { return s.Stats().HeldPolls == 0 })
	// Every held connection (tagged) got exactly one Closed.
	waitFor(t, "Closed calls", func() bool { n, _ := h.closedCount(); return n >= 6 })
	if n, calls := h.closedCount(); n != calls {
		t.Fatalf("Closed called %d times for %d connections", calls, n)
	}
}

func TestServerIdleTimeout(t *testing.T) {
	h := newTestHandler()
	opts := testOptions()
	opts.IdleTimeout = 50 * time.Millisecond
	s, addr := startServer(t, opts, h)
	c, br := dial(t, addr)
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	readResponse(t, br)
	expectEOF(t, br)
	waitFor(t, "deadline close counted", func() bool { return s.Stats().DeadlineCloses >= 1 })
}

// TestServerIdleRequestUnreadByBusyLoop: a keep-alive connection whose
// next request reached the socket while the loop was busy elsewhere is
// served, even when the idle deadline's sweep runs before the loop reads
// it. The loop is held by a posted task, which runs the sweep itself.
func TestServerIdleRequestUnreadByBusyLoop(t *testing.T) {
	h := newTestHandler()
	opts := testOptions()
	opts.Loops = 1
	opts.IdleTimeout = 200 * time.Millisecond
	s, addr := startServer(t, opts, h)
	c, br := dial(t, addr)
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	readResponse(t, br)
	answered := time.Now()
	started, sent, swept := make(chan struct{}), make(chan struct{}), make(chan struct{})
	lp := s.loops[0]
	s.Post(0, func() {
		close(started)
		<-sent
		time.Sleep(time.Until(answered.Add(opts.IdleTimeout + 100*time.Millisecond)))
		lp.now = int64(time.Since(s.start))
		lp.sweep()
		close(swept)
	})
	<-started
	io.WriteString(c, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
	close(sent)
	<-swept
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("closed with a request the busy loop had not read: %v (deadline closes %d)", err, s.Stats().DeadlineCloses)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || s.Stats().DeadlineCloses != 0 {
		t.Fatalf("status %d, %d deadline closes", resp.StatusCode, s.Stats().DeadlineCloses)
	}
}

func TestServerHoldReplyFromPost(t *testing.T) {
	h := newTestHandler()
	s, addr := startServer(t, testOptions(), h)
	c, br := dial(t, addr)
	// A second request pipelined behind the held one waits for it.
	io.WriteString(c, "GET /holdlong HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n")
	waitFor(t, "hold", func() bool { h.mu.Lock(); defer h.mu.Unlock(); return len(h.held) == 1 })
	if st := s.Stats(); st.HeldPolls != 1 {
		t.Fatalf("HeldPolls %d", st.HeldPolls)
	}
	h.mu.Lock()
	held := h.held[0]
	h.mu.Unlock()
	go s.Post(held.Loop(), func() { held.Reply(200, "text/plain", nil, []byte("woken")) })
	if _, body := readResponse(t, br); body != "woken" {
		t.Fatalf("got %q", body)
	}
	if _, body := readResponse(t, br); body != "GET /after <nil> " {
		t.Fatalf("got %q", body)
	}
	// A stale handle is harmless.
	done := make(chan struct{})
	s.Post(held.Loop(), func() {
		held.Reply(200, "", nil, nil)
		held.Hold(time.Second)
		close(done)
	})
	<-done
	c.Close()
	waitFor(t, "Closed", func() bool { n, _ := h.closedCount(); return n == 1 })
	if held.Alive() {
		t.Fatal("Alive after close")
	}
}

func TestServerClosedOnceDuringHold(t *testing.T) {
	h := newTestHandler()
	s, addr := startServer(t, testOptions(), h)
	c, _ := dial(t, addr)
	io.WriteString(c, "GET /holdlong HTTP/1.1\r\nHost: x\r\n\r\n")
	waitFor(t, "hold", func() bool { return s.Stats().HeldPolls == 1 })
	c.Close()
	waitFor(t, "Closed", func() bool { n, _ := h.closedCount(); return n == 1 })
	waitFor(t, "held released", func() bool { return s.Stats().HeldPolls == 0 })
	h.mu.Lock()
	held := h.held[0]
	h.mu.Unlock()
	// Waking a closed hold is a no-op and never a second Closed.
	done := make(chan struct{})
	s.Post(held.Loop(), func() { held.Reply(200, "", nil, nil); held.Close(); close(done) })
	<-done
	if _, calls := h.closedCount(); calls != 1 {
		t.Fatalf("Closed called %d times", calls)
	}
	if h.expired != 0 {
		t.Fatalf("Expired called after close")
	}
}

func TestServerPanicClosesConnection(t *testing.T) {
	h := newTestHandler()
	s, addr := startServer(t, testOptions(), h)
	c, br := dial(t, addr)
	io.WriteString(c, "GET /panic HTTP/1.1\r\nHost: x\r\n\r\n")
	expectEOF(t, br)
	c2, br2 := dial(t, addr)
	io.WriteString(c2, "GET /fine HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := readResponse(t, br2); body != "GET /fine <nil> " {
		t.Fatalf("got %q", body)
	}
	if s.Stats().Panics != 1 {
		t.Fatalf("Panics %d", s.Stats().Panics)
	}
}

func TestServerPostOrderAndBroadcast(t *testing.T) {
	h := newTestHandler()
	s, _ := startServer(t, testOptions(), h)
	const n = 10000
	var got []int
	done := make(chan struct{})
	for i := 0; i < n; i++ {
		s.Post(1, func() {
			got = append(got, i)
			if i == n-1 {
				close(done)
			}
		})
	}
	<-done
	for i, v := range got {
		if v != i {
			t.Fatalf("post %d ran at %d", v, i)
		}
	}
	var mu sync.Mutex
	seen := map[int]bool{}
	var wg sync.WaitGroup
	wg.Add(s.NumLoops())
	s.Broadcast(func(i int) {
		mu.Lock()
		seen[i] = true
		mu.Unlock()
		wg.Done()
	})
	wg.Wait()
	if len(seen) != s.NumLoops() {
		t.Fatalf("broadcast reached %v", seen)
	}
}

func TestServerLoopsMatchConnections(t *testing.T) {
	h := newTestHandler()
	loops := make(chan [2]int, 16)
	h.serveFn = func(c Conn, r *Request) bool {
		if string(r.Path) != "/loop" {
			return false
		}
		// Post to the connection's own loop must run on the same goroutine
		// as its handler: check through a loop-local marker.
		lp := c.(*conn).lp
		h.srv.Post(c.Loop(), func() {
			loops <- [2]int{c.Loop(), lp.idx}
			c.Reply(200, "text/plain", nil, nil)
		})
		return true
	}
	_, addr := startServer(t, testOptions(), h)
	for i := 0; i < 4; i++ {
		c, br := dial(t, addr)
		io.WriteString(c, "GET /loop HTTP/1.1\r\nHost: x\r\n\r\n")
		readResponse(t, br)
		l := <-loops
		if l[0] != l[1] {
			t.Fatalf("Loop() %d, loop %d", l[0], l[1])
		}
	}
}

func TestServerShutdownDrains(t *testing.T) {
	h := newTestHandler()
	opts := testOptions()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := New(opts, h, log)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = s
	errc := make(chan error, 1)
	go func() { errc <- s.Run() }()
	<-s.Ready()
	addr := s.Addrs()[0].String()

	hc, hbr := dial(t, addr)
	io.WriteString(hc, "GET /holdlong HTTP/1.1\r\nHost: x\r\n\r\n")
	wc, wbr := wsDial(t, addr)
	_ = wc
	idle, ibr := dial(t, addr)
	io.WriteString(idle, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	readResponse(t, ibr)
	waitFor(t, "hold and ws", func() bool { st := s.Stats(); return st.HeldPolls == 1 && st.WebSockets == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(ctx) }()
	resp, body := readResponse(t, hbr)
	if body != "drained" || !resp.Close {
		t.Fatalf("held poll got %q close=%v", body, resp.Close)
	}
	expectEOF(t, hbr)
	hc.Close()
	code, reason := readCloseFrame(t, wbr)
	if code != CloseGoingAway || reason != "restart" {
		t.Fatalf("ws close %d %q", code, reason)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	expectEOF(t, ibr)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.drained) != 2 {
		t.Fatalf("Drain called for %d connections", len(h.drained))
	}
	for id, n := range h.drained {
		if n != 1 || h.closed[id] != 1 {
			t.Fatalf("conn %d: Drain %d, Closed %d", id, n, h.closed[id])
		}
	}
}

// TestServerRefusedBodyStillAnswered: the client is still sending a body
// the server refused; lingering close lets it read the 413 anyway.
func TestServerRefusedBodyStillAnswered(t *testing.T) {
	h := newTestHandler()
	s, addr := startServer(t, testOptions(), h)
	for i := 0; i < 5; i++ {
		c, br := dial(t, addr)
		go func() {
			io.WriteString(c, "POST /w HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n\r\n")
			chunk := strings.Repeat("b", 64<<10)
			for j := 0; j < 40; j++ {
				if _, err := io.WriteString(c, chunk); err != nil {
					return
				}
			}
		}()
		resp, _ := readResponse(t, br)
		if resp.StatusCode != 413 || !resp.Close {
			t.Fatalf("status %d close %v", resp.StatusCode, resp.Close)
		}
		c.Close()
	}
	waitFor(t, "lingering connections to close", func() bool { return s.Stats().OpenConns == 0 })
}

func TestServerSeveralAddresses(t *testing.T) {
	h := newTestHandler()
	opts := testOptions()
	opts.Listen = []string{"127.0.0.1:0", "127.0.0.2:0"}
	s, _ := startServer(t, opts, h)
	addrs := s.Addrs()
	if len(addrs) != 2 || addrs[0] == nil || addrs[1] == nil || addrs[0].String() == addrs[1].String() {
		t.Fatalf("addrs %v", addrs)
	}
	for _, a := range addrs {
		c, br := dial(t, a.String())
		io.WriteString(c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, body := readResponse(t, br); body != "GET /x <nil> " {
			t.Fatalf("%v: %q", a, body)
		}
	}
}

func TestServerReusePort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h := newTestHandler()
	opts := testOptions()
	opts.Listen = []string{addr}
	opts.ReusePort = true
	opts.Loops = 3
	s, got := startServer(t, opts, h)
	if got != addr {
		t.Fatalf("bound %s, want %s", got, addr)
	}
	for i := 0; i < 10; i++ {
		c, br := dial(t, addr)
		io.WriteString(c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
		readResponse(t, br)
	}
	var wg sync.WaitGroup
	wg.Add(3)
	s.Broadcast(func(int) { wg.Done() })
	wg.Wait()
	if st := s.Stats(); st.AcceptedTotal != 10 || st.RequestsTotal != 10 {
		t.Fatalf("stats %+v", st)
	}
}

func TestConnStructSize(t *testing.T) {
	// What Halley adds per idle connection (S-01, PERF P1): keep it small.
	// 160 before issue 15; since then 32 more for the chunked body's
	// progress (C-03), the per-IP count's key (C-12), the WebSocket
	// message state (C-13) and the output mark (C-08).
	if n := unsafe.Sizeof(conn{}); n > 192 {
		t.Fatalf("conn is %d bytes", n)
	}
}

func TestServerMaxConns(t *testing.T) {
	h := newTestHandler()
	opts := testOptions()
	opts.MaxConns = 2
	s, addr := startServer(t, opts, h)
	for i := 0; i < 2; i++ {
		c, br := dial(t, addr)
		io.WriteString(c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
		readResponse(t, br)
	}
	_, br := dial(t, addr)
	expectEOF(t, br)
	if st := s.Stats(); st.Refused != 1 || st.OpenConns != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPostBeforeRun(t *testing.T) {
	h := newTestHandler()
	s, err := New(testOptions(), h, nil)
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan int, 2)
	s.Post(0, func() { ran <- 0 })
	s.Post(1, func() { ran <- 1 })
	errc := make(chan error, 1)
	go func() { errc <- s.Run() }()
	got := map[int]bool{<-ran: true, <-ran: true}
	if !got[0] || !got[1] {
		t.Fatalf("ran %v", got)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestHoldExpiresOnce(t *testing.T) {
	h := newTestHandler()
	s, addr := startServer(t, testOptions(), h)
	c, br := dial(t, addr)
	for i := 0; i < 3; i++ {
		io.WriteString(c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, body := readResponse(t, br); body != "expired" {
			t.Fatalf("got %q", body)
		}
	}
	h.mu.Lock()
	n := h.expired
	h.mu.Unlock()
	if n != 3 || s.Stats().HeldPolls != 0 {
		t.Fatalf("Expired %d times, held %d", n, s.Stats().HeldPolls)
	}
}

// TestServerStress mixes pipelined requests, holds woken from other
// goroutines, WebSockets and abrupt closes on many connections at once;
// run with -race. Every tagged connection must see Closed exactly once.
func TestServerStress(t *testing.T) {
	h := newTestHandler()
	wake := make(chan Conn, 1024)
	h.serveFn = func(c Conn, r *Request) bool {
		if string(r.Path) != "/wake" {
			return false
		}
		c.SetTag("hold")
		c.Hold(time.Hour)
		wake <- c
		return true
	}
	s, addr := startServer(t, testOptions(), h)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case c := <-wake:
				s.Post(c.Loop(), func() { c.Reply(200, "text/plain", nil, []byte("woke")) })
			case <-stop:
				return
			}
		}
	}()
	defer close(stop)

	var wg sync.WaitGroup
	for g := 0; g < 20; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; round < 10; round++ {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Error(err)
					return
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				var reqs strings.Builder
				n := 1 + (g+round)%5
				for i := 0; i < n; i++ {
					if i%2 == 0 {
						reqs.WriteString("GET /wake HTTP/1.1\r\nHost: x\r\n\r\n")
					} else {
						reqs.WriteString("POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
					}
				}
				io.WriteString(c, reqs.String())
				read := n
				if round%3 == 0 {
					read = n / 2 // leave with replies pending
				}
				for i := 0; i < read; i++ {
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						t.Errorf("read: %v", err)
						break
					}
					io.Copy(io.Discard, resp.Body)
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	waitFor(t, "all connections closed", func() bool { return s.Stats().OpenConns == 0 })
	waitFor(t, "no holds", func() bool { return s.Stats().HeldPolls == 0 })
	if n, calls := h.closedCount(); n != calls || n == 0 {
		t.Fatalf("Closed %d calls for %d connections", calls, n)
	}
}

// BenchmarkServeKeepAlive is one request and its reply over a keep-alive
// connection, client included (the raw client allocates nothing).
func BenchmarkServeKeepAlive(b *testing.B) {
	h := newTestHandler()
	body := []byte(`{"code":"ok","messages":[]}`)
	h.serveFn = func(c Conn, r *Request) bool {
		c.Reply(200, "application/json; charset=utf-8", nil, body)
		return true
	}
	s, err := New(testOptions(), h, nil)
	if err != nil {
		b.Fatal(err)
	}
	go s.Run()
	<-s.Ready()
	b.Cleanup(func() { s.Shutdown(context.Background()) })
	c, err := net.Dial("tcp", s.Addrs()[0].String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET /read?qname=demo-chat&tick=abc HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\n\r\n")
	// Learn the reply's length once.
	buf := make([]byte, 4096)
	c.Write(req)
	n, _ := c.Read(buf)
	respLen := n
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Write(req)
		for got := 0; got < respLen; {
			m, err := c.Read(buf[got:])
			if err != nil {
				b.Fatal(err)
			}
			got += m
		}
	}
}

func TestServerNoContent(t *testing.T) {
	h := newTestHandler()
	h.serveFn = func(c Conn, r *Request) bool {
		c.Reply(204, "application/json", []byte("Access-Control-Allow-Origin: *\r\n"), nil)
		return true
	}
	_, addr := startServer(t, testOptions(), h)
	c, br := dial(t, addr)
	io.WriteString(c, "OPTIONS /read HTTP/1.1\r\nHost: x\r\n\r\nOPTIONS /read HTTP/1.1\r\nHost: x\r\n\r\n")
	for i := 0; i < 2; i++ {
		resp, body := readResponse(t, br)
		if resp.StatusCode != 204 || body != "" || resp.Header.Get("Content-Length") != "" ||
			resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("got %d %q %v", resp.StatusCode, body, resp.Header)
		}
	}
}
