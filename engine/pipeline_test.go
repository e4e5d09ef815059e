package engine

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Deferred answers and pipelining (pipeline.go), over real sockets.

// deferRec is a test handler's store: /w requests defer their answer and
// wait here until the test releases them; /bad is answered 400 at once.
// Both are pipelinable.
type deferRec struct {
	mu       sync.Mutex
	ds       []Deferred
	ids      []string // the query of each, the answer's body
	loop     int
	released int // on the loop: answers released so far
	// seenReleased is, for each other request served, how many answers
	// had been released when it was.
	seenReleased []int
	// auto answers each /w at once with a body of that many bytes, from a
	// posted task, except the first when holdFirst.
	auto      int
	holdFirst bool
	srv       *Server
}

func newDeferHandler(rec *deferRec) *testHandler {
	h := newTestHandler()
	h.pipeFn = func(r *Request) bool { p := string(r.Path); return p == "/w" || p == "/bad" }
	h.serveFn = func(c Conn, r *Request) bool {
		switch string(r.Path) {
		case "/w":
			d := c.Defer()
			rec.mu.Lock()
			rec.ds = append(rec.ds, d)
			rec.ids = append(rec.ids, string(r.Query))
			rec.loop = c.Loop()
			n := len(rec.ds)
			rec.mu.Unlock()
			if rec.auto > 0 && !(rec.holdFirst && n == 1) {
				body := []byte(strings.Repeat("x", rec.auto))
				rec.srv.Post(c.Loop(), func() { d.Reply(200, "text/plain", nil, body) })
			}
			return true
		case "/bad":
			c.Reply(400, "text/plain", nil, []byte("bad "+string(r.Query)))
			return true
		}
		rec.mu.Lock()
		rec.seenReleased = append(rec.seenReleased, rec.released)
		rec.mu.Unlock()
		return false
	}
	return h
}

func (rec *deferRec) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.ds)
}

// release answers the deferred requests in the given order (indexes into
// ds), in one task on their loop, and waits for it to have run.
func (rec *deferRec) release(t *testing.T, order []int) {
	t.Helper()
	rec.mu.Lock()
	ds, ids, loop := append([]Deferred(nil), rec.ds...), append([]string(nil), rec.ids...), rec.loop
	rec.mu.Unlock()
	done := make(chan struct{})
	rec.srv.Post(loop, func() {
		for _, i := range order {
			rec.mu.Lock()
			rec.released++
			rec.mu.Unlock()
			ds[i].Reply(200, "text/plain", []byte("X-Seq: "+ids[i]+"\r\n"), []byte("ok "+ids[i]))
		}
		close(done)
	})
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("release did not run")
	}
}

func reversed(n int) []int {
	o := make([]int, n)
	for i := range o {
		o[i] = n - 1 - i
	}
	return o
}

func startDeferServer(t *testing.T, opts Options, rec *deferRec, setup ...func(*Server)) (*Server, string) {
	h := newDeferHandler(rec)
	// rec.srv is set before Run: the handler reads it on a loop, and a
	// socket round trip is no ordering the race detector sees.
	setup = append([]func(*Server){func(s *Server) { rec.srv = s }}, setup...)
	return startServer(t, opts, h, setup...)
}

// TestDeferPipelinedInOrder: 100 pipelined deferred requests on one
// connection are all served before any is answered (so a store sees them
// together), a 400 among them is answered in its place, and the answers,
// released in reverse order, leave in request order. Both with answers
// gathered (released from a task batch) and written at once.
func TestDeferPipelinedInOrder(t *testing.T) {
	for _, gather := range []bool{true, false} {
		t.Run(fmt.Sprintf("gather=%v", gather), func(t *testing.T) {
			rec := &deferRec{}
			s, addr := startDeferServer(t, testOptions(), rec, func(s *Server) { s.noGather = !gather })
			c, br := dial(t, addr)
			var req strings.Builder
			const n = 100
			for i := range n {
				fmt.Fprintf(&req, "GET /w?%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
				if i == 49 {
					req.WriteString("GET /bad?49 HTTP/1.1\r\nHost: x\r\n\r\n")
				}
			}
			if _, err := io.WriteString(c, req.String()); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "every write deferred", func() bool { return rec.count() == n })
			if st := s.Stats(); st.Pipelines != 1 {
				t.Fatalf("Pipelines = %d, want 1", st.Pipelines)
			}
			rec.release(t, reversed(n))
			for i := range n {
				resp, body := readResponse(t, br)
				if want := fmt.Sprintf("ok %d", i); resp.StatusCode != 200 || body != want || resp.Header.Get("X-Seq") != fmt.Sprint(i) {
					t.Fatalf("answer %d: %d %q, want 200 %q", i, resp.StatusCode, body, want)
				}
				if i == 49 {
					resp, body := readResponse(t, br)
					if resp.StatusCode != 400 || body != "bad 49" {
						t.Fatalf("after answer 49: %d %q, want the 400", resp.StatusCode, body)
					}
				}
			}
			// The connection goes on as usual.
			io.WriteString(c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp, body := readResponse(t, br); resp.StatusCode != 200 || !strings.HasPrefix(body, "GET /x") {
				t.Fatalf("after the pipeline: %d %q", resp.StatusCode, body)
			}
			waitFor(t, "pipeline released", func() bool { return s.Stats().Pipelines == 0 })
		})
	}
}

// TestDeferNotPipelinableWaits: a request the handler does not call
// pipelinable (here a long-poll) is served only once every earlier answer
// is written, and answered after them.
func TestDeferNotPipelinableWaits(t *testing.T) {
	rec := &deferRec{}
	s, addr := startDeferServer(t, testOptions(), rec)
	c, br := dial(t, addr)
	io.WriteString(c, "GET /w?0 HTTP/1.1\r\nHost: x\r\n\r\nGET /w?1 HTTP/1.1\r\nHost: x\r\n\r\n"+
		"GET /hold HTTP/1.1\r\nHost: x\r\n\r\nGET /w?2 HTTP/1.1\r\nHost: x\r\n\r\n")
	waitFor(t, "two writes deferred", func() bool { return rec.count() == 2 })
	rec.release(t, []int{1})
	rec.release(t, []int{0})
	for i := range 2 {
		if _, body := readResponse(t, br); body != fmt.Sprintf("ok %d", i) {
			t.Fatalf("answer %d: %q", i, body)
		}
	}
	if _, body := readResponse(t, br); body != "expired" {
		t.Fatalf("the long-poll: %q", body)
	}
	waitFor(t, "the write after the long-poll", func() bool { return rec.count() == 3 })
	rec.release(t, []int{2})
	if _, body := readResponse(t, br); body != "ok 2" {
		t.Fatalf("last answer: %q", body)
	}
	rec.mu.Lock()
	seen := rec.seenReleased
	rec.mu.Unlock()
	if len(seen) != 1 || seen[0] != 2 {
		t.Fatalf("the long-poll was served with %v answers released, want [2]", seen)
	}
	_ = s
}

// answersPastBuffers is how many answers of body bytes a client that
// reads nothing must be sent before the server's own output bound has
// to act: more than the kernel could take, the server's send buffer
// autotuning up to tcp_wmem's maximum (4 MiB by default; with 6,000
// answers, 1.1 MB, the buffer sometimes took them all, nothing stayed
// unsent in the server, and the test failed one run in a few).
func answersPastBuffers(body int) int {
	wmemMax := 4 << 20
	if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 3 {
			if v, err := strconv.Atoi(f[2]); err == nil {
				wmemMax = v
			}
		}
	}
	const head = 80 // status line and headers of an answer, at least
	// The buffer's limit counts its segments' overhead too, so a quarter
	// more than its maximum in payload cannot fit.
	return max(6000, wmemMax*5/4/(body+head))
}

// TestDeferOutputBound: a client that pipelines requests and reads
// nothing costs bounded memory (C-08), whether the answers reach the
// socket's buffer or are held behind one that is not ready: parsing stops
// past the bound, and every answer still comes, in order, once it reads.
func TestDeferOutputBound(t *testing.T) {
	for _, holdFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("holdFirst=%v", holdFirst), func(t *testing.T) {
			const answer = 100 // a write's ack: less than a deferred request weighs
			rec := &deferRec{auto: answer, holdFirst: holdFirst}
			opts := testOptions()
			opts.MaxOutbound = 256 << 10 // parsing stops past 32 KiB
			s, addr := startDeferServer(t, opts, rec)
			// A small receive buffer, set before the handshake (set after,
			// the kernel drops what the window already allowed).
			d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
				return rc.Control(func(fd uintptr) {
					_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10)
				})
			}}
			c, err := d.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(60 * time.Second))
			br := bufio.NewReader(c)
			n := answersPastBuffers(answer)
			var req strings.Builder
			for i := range n {
				fmt.Fprintf(&req, "GET /w?%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
			}
			werr := make(chan error, 1)
			go func() { _, err := io.WriteString(c, req.String()); werr <- err }()
			// Wait until parsing stopped for output (or, wrongly, every
			// request was parsed); then look at what the connection holds.
			var unsent, pipe int
			waitFor(t, "parsing stopped for output", func() bool {
				if k := rec.count(); k == 0 {
					return false
				} else if k == n {
					t.Fatalf("all %d requests parsed while nothing was read", n)
				}
				rec.mu.Lock()
				loop := rec.loop
				rec.mu.Unlock()
				got := make(chan bool, 1)
				s.Post(loop, func() {
					for x := s.loops[loop].all; x != nil; x = x.anext {
						if x.flags&fOutBlocked != 0 {
							unsent, pipe = x.unsent(), x.pipeWeight()
							got <- true
							return
						}
					}
					got <- false
				})
				return <-got
			})
			bound := parseStopAt(&opts) + 1024
			if unsent > bound {
				t.Fatalf("unsent output %d (pipeline %d) over %d", unsent, pipe, bound)
			}
			if holdFirst && pipe == 0 {
				t.Fatal("nothing held behind the first answer")
			}
			if k := rec.count(); k >= n {
				t.Fatalf("all %d requests parsed while nothing was read", k)
			}
			if holdFirst {
				rec.release(t, []int{0})
			}
			for i := range n {
				resp, body := readResponse(t, br)
				if resp.StatusCode != 200 || len(body) != answer && !(holdFirst && i == 0) {
					t.Fatalf("answer %d: %d, %d bytes", i, resp.StatusCode, len(body))
				}
				if holdFirst && i == 0 && body != "ok 0" {
					t.Fatalf("first answer %q", body)
				}
			}
			if err := <-werr; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestDeferClosedMidPipeline: a connection that goes while answers are
// outstanding leaves no pipeline behind, and answering afterwards is a
// harmless no-op.
func TestDeferClosedMidPipeline(t *testing.T) {
	rec := &deferRec{}
	s, addr := startDeferServer(t, testOptions(), rec)
	c, _ := dial(t, addr)
	var req strings.Builder
	for i := range 10 {
		fmt.Fprintf(&req, "GET /w?%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
	}
	io.WriteString(c, req.String())
	waitFor(t, "writes deferred", func() bool { return rec.count() == 10 })
	c.Close()
	waitFor(t, "connection gone", func() bool { st := s.Stats(); return st.OpenConns == 0 && st.Pipelines == 0 })
	rec.release(t, []int{3, 0, 1, 2, 4, 5, 6, 7, 8, 9})
	if st := s.Stats(); st.Panics != 0 || st.Pipelines != 0 {
		t.Fatalf("stats %+v", st)
	}
	rec.mu.Lock()
	loop := rec.loop
	rec.mu.Unlock()
	lp := s.loops[loop]
	got := make(chan int, 1)
	s.Post(loop, func() { got <- len(lp.pipes) })
	if n := <-got; n != 0 {
		t.Fatalf("%d pipelines left in the loop", n)
	}
}

// TestDeferConnectionClose: a deferred request that asks to close
// (Connection: close, HTTP/1.0) ends the pipeline: nothing after it is
// served, and the connection closes once its answer is written.
func TestDeferConnectionClose(t *testing.T) {
	for _, last := range []string{
		"GET /w?1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"GET /w?1 HTTP/1.0\r\n\r\n",
	} {
		rec := &deferRec{}
		s, addr := startDeferServer(t, testOptions(), rec)
		c, br := dial(t, addr)
		io.WriteString(c, "GET /w?0 HTTP/1.1\r\nHost: x\r\n\r\n"+last+"GET /w?2 HTTP/1.1\r\nHost: x\r\n\r\nGET /x HTTP/1.1\r\nHost: x\r\n\r\n")
		waitFor(t, "writes deferred", func() bool { return rec.count() == 2 })
		rec.release(t, []int{1, 0})
		for i := range 2 {
			resp, body := readResponse(t, br)
			if body != fmt.Sprintf("ok %d", i) || resp.Close != (i == 1) {
				t.Fatalf("%q: answer %d %q close=%v", last, i, body, resp.Close)
			}
		}
		expectEOF(t, br)
		if k := rec.count(); k != 2 {
			t.Fatalf("%q: %d requests served, want 2", last, k)
		}
		c.Close() // the server lingers for the client's FIN
		waitFor(t, "closed", func() bool { st := s.Stats(); return st.OpenConns == 0 && st.Pipelines == 0 })
	}
}

// TestDeferParseErrorInOrder: a malformed request behind deferred ones
// gets its 400 after their answers, and the connection then closes.
func TestDeferParseErrorInOrder(t *testing.T) {
	rec := &deferRec{}
	_, addr := startDeferServer(t, testOptions(), rec)
	c, br := dial(t, addr)
	io.WriteString(c, "GET /w?0 HTTP/1.1\r\nHost: x\r\n\r\nGET /w?1 HTTP/1.1\r\nHost: x\r\n\r\nNOT HTTP\r\n\r\n")
	waitFor(t, "writes deferred", func() bool { return rec.count() == 2 })
	rec.release(t, []int{1, 0})
	for i := range 2 {
		if _, body := readResponse(t, br); body != fmt.Sprintf("ok %d", i) {
			t.Fatalf("answer %d: %q", i, body)
		}
	}
	if resp, _ := readResponse(t, br); resp.StatusCode != 400 {
		t.Fatalf("third answer %d, want 400", resp.StatusCode)
	}
	expectEOF(t, br)
}

// TestDeferGracefulDrain: a graceful stop (C-11) with answers outstanding
// still writes them, then closes the connection.
func TestDeferGracefulDrain(t *testing.T) {
	rec := &deferRec{}
	s, addr := startDeferServer(t, testOptions(), rec)
	c, br := dial(t, addr)
	io.WriteString(c, "GET /w?0 HTTP/1.1\r\nHost: x\r\n\r\nGET /w?1 HTTP/1.1\r\nHost: x\r\n\r\nGET /w?2 HTTP/1.1\r\nHost: x\r\n\r\n")
	waitFor(t, "writes deferred", func() bool { return rec.count() == 3 })
	stopped := make(chan error, 1)
	go func() { stopped <- s.Shutdown(t.Context()) }()
	waitFor(t, "draining", func() bool { return s.draining.Load() })
	// The drain reached the loop: a task posted after it runs after it.
	rec.release(t, nil)
	rec.release(t, []int{2, 1, 0})
	for i := range 3 {
		if _, body := readResponse(t, br); body != fmt.Sprintf("ok %d", i) {
			t.Fatalf("answer %d: %q", i, body)
		}
	}
	expectEOF(t, br)
	c.Close()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

// TestDeferWaitingChunkedReparsed: a chunked request that waits behind
// deferred answers is parsed again from its start once they are written,
// and served whole.
func TestDeferWaitingChunkedReparsed(t *testing.T) {
	rec := &deferRec{}
	_, addr := startDeferServer(t, testOptions(), rec)
	c, br := dial(t, addr)
	io.WriteString(c, "GET /w?0 HTTP/1.1\r\nHost: x\r\n\r\n"+
		"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
	waitFor(t, "write deferred", func() bool { return rec.count() == 1 })
	rec.release(t, []int{0})
	if _, body := readResponse(t, br); body != "ok 0" {
		t.Fatalf("first answer %q", body)
	}
	if _, body := readResponse(t, br); body != "POST /echo <nil> hello world" {
		t.Fatalf("second answer %q", body)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.seenReleased) != 1 || rec.seenReleased[0] != 1 {
		t.Fatalf("the chunked request was served with %v answers released, want [1]", rec.seenReleased)
	}
}
