package engine

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// onLoop runs fn on c's loop and waits for it.
func onLoop(s *Server, c Conn, fn func()) {
	done := make(chan struct{})
	s.Post(c.Loop(), func() { fn(); close(done) })
	<-done
}

// needPause skips a test of paused reads where they cannot pause.
func needPause(t *testing.T) {
	if !pauseSupported {
		t.Skip("reads cannot be paused here (readpause_other.go)")
	}
}

// lateReply is a request answered later from a posted task.
type lateReply struct {
	c    Conn
	body []byte
}

// TestPipelineOfPushesNeverCut (C-08): 225 pipelined POSTs of 64 KiB
// bodies, 14.7 MB, far over MaxPipelined, each answered late from a
// posted task: the engine stops reading the socket while one is pending
// instead of cutting the connection, and all 225 are answered in order.
// The first is answered only once reads have paused, so the pause is
// always exercised.
func TestPipelineOfPushesNeverCut(t *testing.T) {
	needPause(t)
	h := newTestHandler()
	first := make(chan lateReply, 1)
	var n atomic.Int32
	h.serveFn = func(c Conn, r *Request) bool {
		if string(r.Path) != "/push" {
			return false
		}
		lr := lateReply{c, fmt.Appendf(nil, "ok %s %d", r.Query, len(r.Body))}
		if n.Add(1) == 1 {
			first <- lr
			return true
		}
		delay := time.Duration(rand.Intn(300)) * time.Microsecond
		go func() {
			time.Sleep(delay)
			h.srv.Post(c.Loop(), func() { c.Reply(200, "text/plain", nil, lr.body) })
		}()
		return true
	}
	s, addr := startServer(t, testOptions(), h)
	c, br := dial(t, addr)
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	const count = 225
	payload := strings.Repeat("p", 64<<10)
	if count*len(payload) <= s.opts.MaxPipelined {
		t.Fatal("the pipeline must be larger than MaxPipelined")
	}
	go func() {
		w := bufio.NewWriterSize(c, 256<<10)
		for i := range count {
			fmt.Fprintf(w, "POST /push?%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", i, len(payload), payload)
		}
		w.Flush()
	}()
	lr := <-first
	waitFor(t, "reads paused", func() bool { return s.Stats().ReadPauses > 0 })
	s.Post(lr.c.Loop(), func() { lr.c.Reply(200, "text/plain", nil, lr.body) })
	for i := range count {
		resp, body := readResponse(t, br)
		if want := fmt.Sprintf("ok %d %d", i, len(payload)); resp.StatusCode != 200 || body != want {
			t.Fatalf("answer %d: %d %q, want %q", i, resp.StatusCode, body, want)
		}
	}
	if st := s.Stats(); st.ParseErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// bigReplies answers GET /big with a 256 KiB body at once, numbered by
// its query in an X-N header. The first connection's server side comes
// out on the channel, its kernel send buffer made small so that what the
// test sees piling up is the engine's own.
func bigReplies(h *testHandler) <-chan *conn {
	conns := make(chan *conn, 1)
	big := []byte(strings.Repeat("b", 256<<10))
	h.serveFn = func(c Conn, r *Request) bool {
		if string(r.Path) != "/big" {
			return false
		}
		if r.Query != nil && string(r.Query) == "0" {
			cc := c.(*conn)
			_ = cc.gc.SetWriteBuffer(64 << 10)
			conns <- cc
		}
		c.Reply(200, "text/plain", []byte("X-N: "+string(r.Query)+"\r\n"), big)
		return true
	}
	return conns
}

// waitOutBlocked waits until c has stopped parsing for its output.
func waitOutBlocked(t *testing.T, s *Server, c *conn) {
	t.Helper()
	waitFor(t, "parsing stopped for output", func() bool {
		var blocked bool
		onLoop(s, c, func() { blocked = c.flags&fOutBlocked != 0 })
		return blocked
	})
}

func pipelineBig(t *testing.T, c net.Conn, count int) {
	t.Helper()
	_ = c.(*net.TCPConn).SetReadBuffer(64 << 10)
	var b strings.Builder
	for i := range count {
		fmt.Fprintf(&b, "GET /big?%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
}

// TestPipelineWithoutReadingBounded (C-08): a client that pipelines 100
// requests of 256 KiB answers and reads nothing costs the engine at most
// an eighth of MaxOutbound plus one answer: parsing stops while the
// unsent output is over an eighth of the bound. When the client reads,
// parsing resumes (below a sixteenth of the bound) and every answer
// arrives, in order.
func TestPipelineWithoutReadingBounded(t *testing.T) {
	h := newTestHandler()
	conns := bigReplies(h)
	opts := testOptions()
	opts.MaxOutbound = 1 << 20
	s, addr := startServer(t, opts, h)
	c, br := dial(t, addr)
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	const count = 100
	pipelineBig(t, c, count)
	sc := <-conns
	waitOutBlocked(t, s, sc)
	var out int
	onLoop(s, sc, func() { out = sc.unsent() })
	if limit := opts.MaxOutbound/8 + 256<<10 + 512; out > limit {
		t.Fatalf("unsent output %d, over %d", out, limit)
	}
	if st := s.Stats(); st.RequestsTotal >= count {
		t.Fatalf("every request parsed while nothing was read: %+v", st)
	}
	for i := range count {
		resp, body := readResponse(t, br)
		if resp.Header.Get("X-N") != fmt.Sprint(i) || len(body) != 256<<10 {
			t.Fatalf("answer %d: X-N %q, %d bytes", i, resp.Header.Get("X-N"), len(body))
		}
	}
	if st := s.Stats(); st.SlowConsumerCuts != 0 || st.DeadlineCloses != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestPipelineNoProgressClosed (C-08): a connection whose unsent output
// does not shrink for IdleTimeout while parsing is stopped is closed,
// whether its pipelined requests all reached the engine (50) or some
// still wait in the socket behind paused reads (20,000, written while the
// test goes on: they must not count as a request on its way).
func TestPipelineNoProgressClosed(t *testing.T) {
	for _, count := range []int{50, 20000} {
		h := newTestHandler()
		conns := bigReplies(h)
		opts := testOptions()
		opts.MaxOutbound = 1 << 20
		opts.IdleTimeout = 200 * time.Millisecond
		s, addr := startServer(t, opts, h)
		c, _ := dial(t, addr)
		if count <= 50 {
			pipelineBig(t, c, count)
		} else {
			var b strings.Builder
			for i := range count {
				fmt.Fprintf(&b, "GET /big?%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
			}
			go io.WriteString(c, b.String()) // ends with an error once closed
			if pauseSupported {
				waitFor(t, "reads paused", func() bool { return s.Stats().ReadPauses > 0 })
			}
		}
		<-conns
		waitFor(t, fmt.Sprintf("the stalled connection closed (%d pipelined)", count), func() bool {
			st := s.Stats()
			return st.OpenConns == 0 && st.DeadlineCloses == 1
		})
	}
}

// TestPausedPeerGoes: a connection whose reads are paused still sees its
// peer go, by a reset or a close: Handler.Closed runs and nothing is
// left open or held. (The limits are small so that the client's bytes
// all reach the server and its FIN is not queued behind them: a peer
// whose unread bytes fill the window is seen going once reads resume.)
func TestPausedPeerGoes(t *testing.T) {
	needPause(t)
	h := newTestHandler()
	opts := testOptions()
	opts.MaxHeaderBytes = 1024
	opts.MaxBodyBytes = 1024
	s, addr := startServer(t, opts, h)
	for i, reset := range []bool{true, false} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		paused := s.Stats().ReadPauses
		io.WriteString(c, "GET /holdlong HTTP/1.1\r\nHost: x\r\n\r\n"+strings.Repeat("GET /x HTTP/1.1\r\nHost: x\r\n\r\n", 200))
		waitFor(t, "reads paused", func() bool { return s.Stats().ReadPauses > paused })
		if reset {
			_ = c.(*net.TCPConn).SetLinger(0)
		}
		c.Close()
		waitFor(t, "Closed", func() bool { n, _ := h.closedCount(); return n == i+1 })
		waitFor(t, "released", func() bool { st := s.Stats(); return st.OpenConns == 0 && st.HeldPolls == 0 })
	}
	if n, calls := h.closedCount(); n != calls {
		t.Fatalf("Closed %d calls for %d connections", calls, n)
	}
}

// backlogSender sends n numbered frames to a WebSocket as its socket
// drains, as the protocol's catch-up does: while not Backlogged, then
// from Handler.Drained.
type backlogSender struct {
	c    Conn
	next int
	n    int
	pad  []byte
}

func (b *backlogSender) send() {
	for b.next < b.n && !b.c.Backlogged() {
		if !b.c.Send(AppendTextFrame(nil, fmt.Appendf(nil, "%d %s", b.next, b.pad))) {
			return
		}
		b.next++
	}
	if b.next < b.n {
		b.c.WhenDrained()
	}
}

// dialSmallWindow opens a WebSocket whose receive buffer is 4 KiB from
// the start (the window the peer sees).
func dialSmallWindow(t *testing.T, addr, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := ws.Dialer{NetDial: nd.DialContext}
	c, br, _, err := d.Dial(ctx, "ws://"+addr+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	if br == nil {
		br = bufio.NewReader(c)
	}
	return c, br
}

// TestBacklogSentAsSocketDrains (C-08): a WebSocket reader with a backlog
// of 1000 frames (1 MiB, sixteen times MaxOutbound) on a 4 KiB receive
// window reads all 1000 in order: the handler sends while the connection
// is not Backlogged and goes on from Handler.Drained, which the engine
// calls as the socket drains, never inside another Handler call. Nothing
// is cut.
func TestBacklogSentAsSocketDrains(t *testing.T) {
	h := newTestHandler()
	const n = 1000
	senders := map[uint64]*backlogSender{}
	h.serveFn = func(c Conn, r *Request) bool {
		if err := c.UpgradeWebSocket(r, nil); err != nil {
			panic(err)
		}
		c.SetTag("ws")
		_ = c.(*conn).gc.SetWriteBuffer(8 << 10)
		b := &backlogSender{c: c, n: n, pad: make([]byte, 1000)}
		senders[c.ID()] = b // loop goroutine only: Loops is 1
		b.send()
		return true
	}
	h.drainedFn = func(c Conn) { senders[c.ID()].send() }
	opts := testOptions()
	opts.Loops = 1
	opts.MaxOutbound = 64 << 10
	opts.BacklogBytes = 16 << 10
	s, addr := startServer(t, opts, h)
	_, br := dialSmallWindow(t, addr, "/")
	pad := string(make([]byte, 1000))
	for i := range n {
		f := readFrame(t, br)
		if want := fmt.Sprintf("%d %s", i, pad); string(f.Payload) != want {
			t.Fatalf("frame %d: %.12q", i, f.Payload)
		}
	}
	st := s.Stats()
	if st.SlowConsumerCuts != 0 {
		t.Fatalf("cut: %+v", st)
	}
	var drained int
	h.mu.Lock()
	for _, k := range h.drainedCalls {
		drained += k
	}
	h.mu.Unlock()
	if drained == 0 {
		t.Fatal("the backlog never needed Drained: the test proves nothing")
	}
	if k := h.nested.Load(); k != 0 {
		t.Fatalf("%d Drained or Closed calls inside another Handler call", k)
	}
}

// TestDrainedNotForClosed: a connection that asked for Drained and went
// away before its output drained never gets it, and leaves the waiting
// list.
func TestDrainedNotForClosed(t *testing.T) {
	h := newTestHandler()
	conns := upgradeAll(h, 1)
	opts := testOptions()
	opts.MaxOutbound = 1 << 20
	opts.BacklogBytes = 64 << 10
	s, addr := startServer(t, opts, h)
	c, _ := dialSmallWindow(t, addr, "/")
	sc := <-conns
	frame := AppendTextFrame(nil, make([]byte, 1000))
	onLoop(s, sc, func() {
		_ = sc.(*conn).gc.SetWriteBuffer(8 << 10)
		for !sc.Backlogged() {
			sc.Send(frame)
		}
		sc.WhenDrained()
	})
	_ = c.(*net.TCPConn).SetLinger(0)
	c.Close()
	waitFor(t, "Closed", func() bool { n, _ := h.closedCount(); return n == 1 })
	waitFor(t, "the waiting list emptied", func() bool { return s.loops[sc.Loop()].waiting.Load() == 0 })
	if k := h.drainedCount(sc.ID()); k != 0 {
		t.Fatalf("Drained called %d times for a closed connection", k)
	}
	if sc.Backlogged() {
		t.Fatal("Backlogged on a closed connection")
	}
}

// TestDrainedOnceWhenAlreadyDrained: WhenDrained with nothing unsent
// gets one Drained soon, from a later loop entry; calls before it
// coalesce.
func TestDrainedOnceWhenAlreadyDrained(t *testing.T) {
	h := newTestHandler()
	conns := upgradeAll(h, 1)
	s, addr := startServer(t, testOptions(), h)
	wsDialPath(t, addr, "/")
	sc := <-conns
	var during int
	onLoop(s, sc, func() {
		sc.WhenDrained()
		sc.WhenDrained()
		during = h.drainedCount(sc.ID())
	})
	if during != 0 {
		t.Fatal("Drained called from inside WhenDrained")
	}
	waitFor(t, "Drained", func() bool { return h.drainedCount(sc.ID()) == 1 })
	waitFor(t, "the waiting list emptied", func() bool { return s.loops[sc.Loop()].waiting.Load() == 0 })
	onLoop(s, sc, func() {}) // one more loop entry
	if k := h.drainedCount(sc.ID()); k != 1 {
		t.Fatalf("Drained called %d times", k)
	}
}

// TestOutputBoundWithoutPause: where reads cannot be paused, a client
// that keeps pipelining while parsing is stopped for output has its
// bytes past MaxPipelined dropped: it gets the answers already made,
// then a JSON 429, then the close.
func TestOutputBoundWithoutPause(t *testing.T) {
	h := newTestHandler()
	conns := bigReplies(h)
	opts := testOptions()
	opts.MaxOutbound = 1 << 20
	opts.MaxPipelined = 64 << 10
	s, addr := startServer(t, opts, h, func(s *Server) { s.noPause = true })
	c, br := dial(t, addr)
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	pipelineBig(t, c, 10)
	sc := <-conns
	waitOutBlocked(t, s, sc)
	go io.WriteString(c, strings.Repeat("GET /x HTTP/1.1\r\nHost: x\r\n\r\n", 10000))
	answers := 0
	for {
		resp, body := readResponse(t, br)
		if resp.StatusCode == 429 {
			if !resp.Close || !strings.Contains(body, msgFlood) {
				t.Fatalf("429: close=%v %q", resp.Close, body)
			}
			break
		}
		answers++
	}
	expectEOF(t, br)
	if answers < 1 || s.Stats().ParseErrors != 1 {
		t.Fatalf("%d answers before the 429, stats %+v", answers, s.Stats())
	}
}

// TestFailInsideServeKeepsRequest: a Serve that answers another
// connection's held request (a write waking a long-poll) may make the
// engine call Fail there (its pipelined bytes were dropped): the request
// being served is left as it was.
func TestFailInsideServeKeepsRequest(t *testing.T) {
	h := newTestHandler()
	seen := make(chan string, 1)
	h.serveFn = func(c Conn, r *Request) bool {
		if string(r.Path) != "/wake" {
			return false
		}
		h.mu.Lock()
		held := h.held[0]
		h.mu.Unlock()
		held.Reply(200, "text/plain", nil, []byte("woken"))
		seen <- string(r.Path) + " " + string(r.Query)
		c.Reply(200, "text/plain", nil, nil)
		return true
	}
	opts := testOptions()
	opts.Loops = 1
	opts.MaxPipelined = 64 << 10
	s, addr := startServer(t, opts, h, func(s *Server) { s.noPause = true })
	a, abr := dial(t, addr)
	io.WriteString(a, "GET /holdlong HTTP/1.1\r\nHost: x\r\n\r\n")
	waitFor(t, "hold", func() bool { return s.Stats().HeldPolls == 1 })
	go io.WriteString(a, strings.Repeat("GET /x HTTP/1.1\r\nHost: x\r\n\r\n", 5000))
	waitFor(t, "the flood dropped", func() bool { return s.Stats().ParseErrors == 1 })
	b, bbr := dial(t, addr)
	io.WriteString(b, "GET /wake?q=1 HTTP/1.1\r\nHost: x\r\n\r\n")
	if got := <-seen; got != "/wake q=1" {
		t.Fatalf("the request being served became %q", got)
	}
	readResponse(t, bbr)
	if _, body := readResponse(t, abr); body != "woken" {
		t.Fatalf("held: %q", body)
	}
	if resp, _ := readResponse(t, abr); resp.StatusCode != 429 {
		t.Fatalf("after the flood: %d", resp.StatusCode)
	}
}
