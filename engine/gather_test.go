package engine

import (
	"fmt"
	"testing"
)

// TestGatheredSendsKeepOrder: frames sent by posted tasks are gathered and
// written at the batch's end; whatever their number and size (one frame,
// a copied run, the writev path past maxFlat and past maxIov pieces), the
// client gets them all in order, and a close frame written in the same
// batch comes after them.
func TestGatheredSendsKeepOrder(t *testing.T) {
	h := newTestHandler()
	conns := upgradeAll(h, 1)
	s, addr := startServer(t, testOptions(), h)
	_, br := wsDialPath(t, addr, "/")
	c := <-conns
	pad := make([]byte, 90)
	for _, n := range []int{1, 50, 2000} {
		// Two tasks in one wake-up: the second's frames follow the first's.
		s.Post(c.Loop(), func() {
			for i := range n / 2 {
				c.Send(AppendTextFrame(nil, fmt.Appendf(nil, "%d %s", i, pad)))
			}
		})
		s.Post(c.Loop(), func() {
			for i := n / 2; i < n; i++ {
				c.Send(AppendTextFrame(nil, fmt.Appendf(nil, "%d %s", i, pad)))
			}
		})
		for i := range n {
			f := readFrame(t, br)
			if want := fmt.Sprintf("%d %s", i, pad); string(f.Payload) != want {
				t.Fatalf("batch of %d: frame %d is %.10q", n, i, f.Payload)
			}
		}
	}
	s.Post(c.Loop(), func() {
		c.Send(AppendTextFrame(nil, []byte("last")))
		c.CloseWebSocket(1001, "restart")
	})
	if f := readFrame(t, br); string(f.Payload) != "last" {
		t.Fatalf("got %q before the close", f.Payload)
	}
	if code, _ := readCloseFrame(t, br); code != 1001 {
		t.Fatalf("close code %d", code)
	}
}

// TestGatheredSlowConsumerCut: MaxOutbound counts gathered bytes too, so a
// batch cannot pile up more than the limit for one connection.
func TestGatheredSlowConsumerCut(t *testing.T) {
	h := newTestHandler()
	conns := upgradeAll(h, 1)
	opts := testOptions()
	opts.MaxOutbound = 64 << 10
	s, addr := startServer(t, opts, h)
	wsDialPath(t, addr, "/")
	c := <-conns
	sent := make(chan int, 1)
	s.Post(c.Loop(), func() {
		frame := AppendTextFrame(nil, make([]byte, 1000))
		n := 0
		for n < 1000 && c.Send(frame) {
			n++
		}
		sent <- n
	})
	if n := <-sent; n > 65 {
		t.Fatalf("%d KB gathered past a 64 KB limit", n)
	}
	waitFor(t, "Closed", func() bool { n, _ := h.closedCount(); return n == 1 })
	if st := s.Stats(); st.SlowConsumerCuts != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// upgradeAll makes h upgrade every request to a WebSocket (with the
// X-Test header wsDialPath checks) and hand the Conn over on the channel.
func upgradeAll(h *testHandler, n int) chan Conn {
	conns := make(chan Conn, n)
	h.serveFn = func(c Conn, r *Request) bool {
		if err := c.UpgradeWebSocket(r, []byte("X-Test: 1\r\n")); err != nil {
			panic(err)
		}
		c.SetTag("ws")
		conns <- c
		return true
	}
	return conns
}
