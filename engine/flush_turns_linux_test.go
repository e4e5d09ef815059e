package engine

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// The tests below look at a client socket from inside a task on the
// server's loop: while the task runs, the loop writes nothing, so what
// the socket holds then is exactly what was written before the task.

// hasInput reports whether the client socket c holds unread bytes. It
// runs on the server's loop, so it reports errors without t.Fatal.
func hasInput(t *testing.T, c net.Conn) bool {
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Error(err)
		return false
	}
	var got bool
	if err := rc.Control(func(fd uintptr) { got = unreadInput(int(fd)) }); err != nil {
		t.Error(err)
	}
	return got
}

// TestFlushInTurns: a fan-out gathered for many connections is written a
// turn at a time, and a task posted meanwhile (a committed group's
// answers, a read's result) runs between two turns, not after the whole
// fan-out: when it runs, the last subscriber has not been written yet.
// Fan-outs posted between the turns of the one before still reach every
// connection once each, in order. With turns of no limit (the engine
// before turns) the task finds the last subscriber written and the test
// fails.
func TestFlushInTurns(t *testing.T) {
	const n, turn, msgs = 120, 16, 5
	opts := testOptions()
	opts.Loops = 1
	h := newTestHandler()
	conns := upgradeAll(h, n)
	s, addr := startServer(t, opts, h, func(s *Server) { s.flushTurn, s.turnsAfter = turn, 0 })
	ncs, brs, cs := dialWebSockets(t, addr, "/", n, conns)
	lastWritten := make(chan bool, 1)
	var fan func(m int)
	fan = func(m int) {
		for _, c := range cs {
			c.Send(AppendTextFrame(nil, fmt.Appendf(nil, "m%d", m)))
		}
		if m < msgs {
			s.Post(0, func() {
				if m == 1 {
					lastWritten <- hasInput(t, ncs[n-1])
				}
				fan(m + 1)
			})
		}
	}
	s.Post(0, func() { fan(1) })
	// Nothing is read before the first look, which must find the socket
	// as the server left it.
	if <-lastWritten {
		t.Fatalf("the task posted during a fan-out to %d connections ran after all of them were written (turns of %d)", n, turn)
	}
	for i := range n {
		for m := 1; m <= msgs; m++ {
			if f := readFrame(t, brs[i]); string(f.Payload) != fmt.Sprint("m", m) {
				t.Fatalf("subscriber %d: frame %d is %q", i, m, f.Payload)
			}
		}
	}
}

// TestAnswersBeforeFanOut: a deferred answer released by a task (a
// committed group's acknowledgement; protocol's groupRun answers its
// group's writers, then runs the group's deliveries, in one task) is
// written before the deliveries the task sends after it, and an answer
// released by an earlier task of the same wake-up before the next task
// starts: a publisher does not wait for its own message's delivery to
// every subscriber. The task looks at the publisher's socket after its
// sends; when answers were gathered behind the fan-out, the test failed.
func TestAnswersBeforeFanOut(t *testing.T) {
	const n = 50
	rec := &deferRec{}
	h := newDeferHandler(rec)
	serve := h.serveFn
	conns := make(chan Conn, n)
	h.serveFn = func(c Conn, r *Request) bool {
		if string(r.Path) != "/ws" {
			return serve(c, r)
		}
		if err := c.UpgradeWebSocket(r, []byte("X-Test: 1\r\n")); err != nil {
			panic(err)
		}
		conns <- c
		return true
	}
	opts := testOptions()
	opts.Loops = 1
	s, addr := startServer(t, opts, h, func(s *Server) { rec.srv = s })
	_, brs, cs := dialWebSockets(t, addr, "/ws", n, conns)
	pub, pbr := dial(t, addr)
	if _, err := pub.Write([]byte("GET /w?1 HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the write deferred", func() bool { return rec.count() == 1 })
	rec.mu.Lock()
	d := rec.ds[0]
	rec.mu.Unlock()
	answered := make(chan bool, 2)
	s.Post(0, func() {
		for _, c := range cs {
			c.Send(AppendTextFrame(nil, []byte("before")))
		}
		d.Reply(200, "text/plain", nil, []byte("ok 1"))
		for _, c := range cs {
			c.Send(AppendTextFrame(nil, []byte("msg")))
		}
		answered <- hasInput(t, pub)
	})
	// The answer is read after the look, which must find it in the socket.
	if !<-answered {
		t.Fatal("the answer was not written before the fan-out sent after it")
	}
	if resp, body := readResponse(t, pbr); resp.StatusCode != 200 || body != "ok 1" {
		t.Fatalf("answer %d %q", resp.StatusCode, body)
	}

	// An answer released by one task, its fan-out in the next task of the
	// same wake-up (both posted from a task, so that they run in one).
	if _, err := pub.Write([]byte("GET /w?2 HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second write deferred", func() bool { return rec.count() == 2 })
	rec.mu.Lock()
	d = rec.ds[1]
	rec.mu.Unlock()
	s.Post(0, func() {
		s.Post(0, func() { d.Reply(200, "text/plain", nil, []byte("ok 2")) })
		s.Post(0, func() {
			answered <- hasInput(t, pub)
			for _, c := range cs {
				c.Send(AppendTextFrame(nil, []byte("msg2")))
			}
		})
	})
	if !<-answered {
		t.Fatal("the answer was not written when the next task's fan-out began")
	}
	if resp, body := readResponse(t, pbr); resp.StatusCode != 200 || body != "ok 2" {
		t.Fatalf("answer %d %q", resp.StatusCode, body)
	}
	for i, br := range brs {
		var got []string
		for range 3 {
			got = append(got, string(readFrame(t, br).Payload))
		}
		if g := strings.Join(got, ","); g != "before,msg,msg2" {
			t.Fatalf("subscriber %d got %s", i, g)
		}
	}
}

// TestFlushInTurnsLongPoll: held polls answered by a task (a fan-out to
// long-poll readers) are gathered and written in turns like frames: a
// task posted meanwhile runs before the last poll is answered, every
// poll gets its answer once, and each connection serves its next
// request after it. Answered at once (before held polls were gathered)
// the task finds the last answer written and the test fails.
func TestFlushInTurnsLongPoll(t *testing.T) {
	const n, turn = 120, 16
	opts := testOptions()
	opts.Loops = 1
	h := newTestHandler()
	s, addr := startServer(t, opts, h, func(s *Server) { s.flushTurn, s.turnsAfter = turn, 0 })
	ncs := make([]net.Conn, n)
	brs := make([]*bufio.Reader, n)
	for i := range n {
		ncs[i], brs[i] = dial(t, addr)
		if _, err := ncs[i].Write([]byte("GET /holdlong HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the poll held", func() bool { h.mu.Lock(); defer h.mu.Unlock(); return len(h.held) == i+1 })
	}
	h.mu.Lock()
	held := append([]Conn(nil), h.held...)
	h.mu.Unlock()
	lastWritten := make(chan bool, 1)
	s.Post(0, func() {
		for i, c := range held {
			c.Reply(200, "text/plain", nil, fmt.Appendf(nil, "woken %d", i))
		}
		s.Post(0, func() { lastWritten <- hasInput(t, ncs[n-1]) })
	})
	if <-lastWritten {
		t.Fatalf("the task posted while %d polls were answered ran after all of them were written (turns of %d)", n, turn)
	}
	for i := range n {
		if resp, body := readResponse(t, brs[i]); resp.StatusCode != 200 || body != fmt.Sprint("woken ", i) {
			t.Fatalf("poll %d: %d %q", i, resp.StatusCode, body)
		}
		if _, err := ncs[i].Write([]byte("GET /after HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		if _, body := readResponse(t, brs[i]); body != "GET /after <nil> " {
			t.Fatalf("poll %d: next request answered %q", i, body)
		}
	}
}

// TestPingsNotHeldByTurns: the sweep's pings leave when they are sent,
// even while a long flush goes in turns: a ping's deadline counts from
// the sweep, and a ping gathered behind the turns of a saturated loop
// could leave too late for the pong to come back in time (at a million
// connections on 63 nodes, 91,770 WebSockets were closed so). The task
// gathers a frame for every connection, runs the sweep with every ping
// due, and a task after it finds the last connection written. With the
// pings gathered like frames it finds nothing and the test fails.
func TestPingsNotHeldByTurns(t *testing.T) {
	const n, turn = 120, 16
	opts := testOptions()
	opts.Loops = 1
	opts.PingInterval = time.Second
	h := newTestHandler()
	conns := upgradeAll(h, n)
	s, addr := startServer(t, opts, h, func(s *Server) { s.flushTurn, s.turnsAfter = turn, 0 })
	ncs, brs, cs := dialWebSockets(t, addr, "/", n, conns)
	upgraded := time.Now()
	lp := s.loops[0]
	lastWritten := make(chan bool, 1)
	s.Post(0, func() {
		for _, c := range cs {
			c.Send(AppendTextFrame(nil, []byte("m")))
		}
		time.Sleep(time.Until(upgraded.Add(opts.PingInterval + 50*time.Millisecond)))
		lp.now = int64(time.Since(s.start))
		lp.sweep()
		s.Post(0, func() { lastWritten <- hasInput(t, ncs[n-1]) })
	})
	if !<-lastWritten {
		t.Fatalf("the last connection's ping waited for the flush's turns (%d connections, turns of %d)", n, turn)
	}
	for i := range n {
		if f := readFrame(t, brs[i]); string(f.Payload) != "m" {
			t.Fatalf("connection %d: first frame %q", i, f.Payload)
		}
		if f := readFrame(t, brs[i]); f.Header.OpCode != ws.OpPing {
			t.Fatalf("connection %d: op %v after the frame, want a ping", i, f.Header.OpCode)
		}
	}
}

// dialWebSockets opens n WebSockets to path, one after the other, and
// returns the client ends and the server's Conns (from conns, in order).
func dialWebSockets(t *testing.T, addr, path string, n int, conns chan Conn) ([]net.Conn, []*bufio.Reader, []Conn) {
	t.Helper()
	ncs := make([]net.Conn, n)
	brs := make([]*bufio.Reader, n)
	cs := make([]Conn, n)
	for i := range n {
		ncs[i], brs[i] = wsDialPath(t, addr, path)
		cs[i] = <-conns
	}
	return ncs, brs, cs
}
