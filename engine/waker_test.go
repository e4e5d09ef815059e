package engine

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// awaitRuns posts n functions to loop i one after another, each once the
// one before has run, so that every post wakes the loop, and waits for
// the last.
func awaitRuns(t *testing.T, s *Server, i, n int) {
	t.Helper()
	done := make(chan struct{}, 1)
	fn := func() { done <- struct{}{} }
	for range n {
		s.Post(i, fn)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("loop %d: a posted function did not run", i)
		}
	}
}

// TestEveryLoopHasAWaker: once the server is ready every loop is woken
// through its own socket (waker.go), and a post wakes it.
func TestEveryLoopHasAWaker(t *testing.T) {
	opts := testOptions()
	opts.Loops = 3
	s, _ := startServer(t, opts, &testHandler{})
	if n := s.wakers(); n != opts.Loops {
		t.Fatalf("%d of %d loops have a waker", n, opts.Loops)
	}
	for i := range opts.Loops {
		awaitRuns(t, s, i, 50)
	}
}

// TestPostWithoutWaker: a loop that lost its waker (its anchor closed) is
// woken by gnet's Execute: posts still run, in order.
func TestPostWithoutWaker(t *testing.T) {
	opts := testOptions()
	opts.Loops = 2
	s, _ := startServer(t, opts, &testHandler{})
	s.dropWakers()
	if n := s.wakers(); n != 0 {
		t.Fatalf("%d wakers left", n)
	}
	var order []int
	var ran atomic.Int32
	for k := range 100 {
		s.Post(1, func() { order = append(order, k); ran.Add(1) })
	}
	awaitRuns(t, s, 1, 1)
	if ran.Load() != 100 {
		t.Fatalf("%d of 100 posts ran", ran.Load())
	}
	for k, v := range order {
		if k != v {
			t.Fatalf("posts ran out of order: %v", order)
		}
	}
}

// TestWakeUpAllocatesNothing (PERF P5: nothing per idle wake-up): a post
// that wakes an idle loop allocates nothing in the engine, where gnet's
// Execute allocated a closure and a queue node per wake-up. The count is
// per wake-up over 2000, so background allocations of the runtime stay
// far below 1.
func TestWakeUpAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are checked without -race")
	}
	opts := testOptions()
	opts.Loops = 1
	s, _ := startServer(t, opts, &testHandler{})
	done := make(chan struct{}, 1)
	fn := func() { done <- struct{}{} }
	const n = 2000
	cycle := func() {
		for range n {
			s.Post(0, fn)
			<-done
		}
	}
	cycle() // warm: the task queue grows to its size once
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cycle()
	runtime.ReadMemStats(&after)
	per := float64(after.Mallocs-before.Mallocs) / n
	t.Logf("%.3f allocations per wake-up", per)
	if per > 0.1 {
		t.Fatalf("%.3f allocations per wake-up of an idle loop, want 0", per)
	}
}
