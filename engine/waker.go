package engine

import (
	"context"
	"net"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// A loop is woken to run posted tasks (a committed group, a read's
// result, a sweep) through a socket of its own rather than gnet's
// Execute, which allocates a closure and a queue node at every wake-up
// (PERF P5: no allocation per idle wake-up, at most two per accepted
// publish, and a publish wakes every loop with a reader). Loop discovery
// already enrolls one connection per loop to learn its handle
// (discoverLoops); the loop keeps it: its other end, held here, is the
// waker, and a byte written there makes the loop's OnTraffic drain the
// tasks. A loop whose anchor is not known yet (or was lost) is woken by
// Execute as before: the waker is a cost saving, never a condition.
//
// An anchor is one end of a socketpair (waker_unix.go): nothing else can
// connect to it, and writing a byte to it costs about what gnet's own
// eventfd write does.

// wakeByte is what a wake-up writes; its value does not matter.
var wakeByte = []byte{1}

// anchor marks the connections discoverLoops enrolls; peer is the end
// that stays with the engine and becomes the loop's waker.
type anchor struct{ peer net.Conn }

// wakeAnchor is the Context of the enrolled end of a loop's waker.
type wakeAnchor struct{ lp *loop }

// adopt makes peer lp's waker unless it has one; it reports whether it
// did (the caller closes a peer it did not adopt). On the loop goroutine.
func (lp *loop) adopt(peer net.Conn) bool {
	sc, ok := peer.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil || fd < 0 {
		return false
	}
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if lp.wakeConn != nil {
		return false
	}
	lp.wakeConn, lp.wakeFD = peer, fd
	return true
}

// dropWaker forgets lp's waker and closes its end (the anchor closed, or
// the engine stopped): wake-ups go through Execute again. The fd is
// forgotten under lp.mu before it is closed, and wake writes under lp.mu,
// so a wake-up never writes to a number the process has reused.
func (lp *loop) dropWaker() {
	lp.mu.Lock()
	c := lp.wakeConn
	lp.wakeConn, lp.wakeFD = nil, -1
	lp.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
}

// onWake runs on the loop when its waker's bytes arrive.
func (lp *loop) onWake(gc gnet.Conn) {
	_, _ = gc.Discard(-1)
	_ = lp.drainTasks(context.Background())
}

// wakers counts the loops that have a waker.
func (s *Server) wakers() int {
	n := 0
	for _, lp := range s.loops {
		lp.mu.Lock()
		if lp.wakeConn != nil {
			n++
		}
		lp.mu.Unlock()
	}
	return n
}

// anchorSeen tells discoverLoops that OnOpen has handled an anchor.
func (s *Server) anchorSeen() {
	select {
	case s.anchors <- struct{}{}:
	default:
	}
}

// awaitAnchor waits until OnOpen has handled the anchor just enrolled, so
// that discovery counts its loop's waker before enrolling another.
func (s *Server) awaitAnchor() {
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case <-s.anchors:
	case <-t.C:
	}
}

// dropWakers closes every loop's waker once the engine has stopped.
func (s *Server) dropWakers() {
	for _, lp := range s.loops {
		lp.dropWaker()
	}
}
