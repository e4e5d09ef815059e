package persist

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestPipelineBuildsWhileSyncing: while one group's fsync hangs, the
// committer goes on applying the groups queued behind it (more than one
// group in flight), yet nothing of them is acknowledged or visible to
// readers until the fsync covering it returns; then every write completes
// in acceptance order with consecutive sequence numbers, EZ writes and CF
// pushes alike.
func TestPipelineBuildsWhileSyncing(t *testing.T) {
	opts, st, _ := stallOptions(t)
	opts.StallTimeout = time.Hour // the stall must not refuse writes here
	s := openTest(t, opts)
	t.Cleanup(st.unblock)
	mustAppend(t, s, "u-ch", "t0", "zero")

	st.armed.Store(true)
	var mu sync.Mutex
	var order []string
	done := make(chan struct{}, 64)
	write := func(tick string) {
		s.EZWrite(msg("u-ch", tick, tick), func(r EZWriteResult) {
			mu.Lock()
			order = append(order, fmt.Sprintf("%s:%d:%v", tick, r.Msg.Seq, r.Err))
			mu.Unlock()
			done <- struct{}{}
		})
	}
	write("t1")
	await(t, st.entered, "the stalled WAL sync of t1's group")
	s.CFPushTo(cfAuto("u/a", "p1"), cfDoneFunc(func(r CFPushResult) {
		mu.Lock()
		order = append(order, fmt.Sprintf("p1:%d:%v", r.Msg.ID, r.Err))
		mu.Unlock()
		done <- struct{}{}
	}))
	// The committer takes each write while the sync hangs (a committer
	// that waited for the fsync would leave them queued).
	for i := 2; i <= 3; i++ {
		write(fmt.Sprintf("t%d", i))
		deadline := time.Now().Add(30 * time.Second)
		for len(s.writes) > 0 {
			if time.Now().After(deadline) {
				t.Fatal("the committer stopped taking writes while a sync hung")
			}
			time.Sleep(time.Millisecond)
		}
	}
	time.Sleep(50 * time.Millisecond) // room for a wrong early completion
	mu.Lock()
	early := len(order)
	mu.Unlock()
	if early != 0 {
		t.Fatalf("%d writes acknowledged while the fsync covering them hung: %v", early, order)
	}
	if _, last, _ := s.channelRange("u-ch"); last != 1 {
		t.Fatalf("readers see u-ch up to seq %d before its fsync, want 1", last)
	}
	if s.CFLast([]byte("u/a")) != 0 {
		t.Fatal("readers see a push before its fsync")
	}

	st.unblock()
	for range 4 {
		await(t, done, "completions after the fsync")
	}
	mu.Lock()
	got := fmt.Sprint(order)
	mu.Unlock()
	if want := "[t1:2:<nil> p1:1:<nil> t2:3:<nil> t3:4:<nil>]"; got != want {
		t.Fatalf("completions %s, want %s", got, want)
	}
	if got := ticks(mustRead(t, s, "u-ch", nil, 0)); got != "t0,t1,t2,t3|cursor=4" {
		t.Fatalf("u-ch after the fsync: %s", got)
	}
}
