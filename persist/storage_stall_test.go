package persist

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// syncStaller blocks the first sync of Pebble's WAL after arm until
// release is closed: a disk that stops answering. It counts the WAL writes
// and syncs that begin after countFrom is set.
type syncStaller struct {
	armed     atomic.Bool
	entered   chan struct{} // closed when the blocked sync began
	release   chan struct{} // closed by unblock
	once      sync.Once
	countFrom atomic.Bool
	walOps    atomic.Int64
	failSync  atomic.Bool // the stalled sync fails once released
}

func newSyncStaller() *syncStaller {
	return &syncStaller{entered: make(chan struct{}), release: make(chan struct{})}
}

func (f *syncStaller) String() string { return "syncStaller" }

// unblock lets the stalled sync return (idempotent).
func (f *syncStaller) unblock() { f.once.Do(func() { close(f.release) }) }

func (f *syncStaller) MaybeError(op errorfs.Op) error {
	if !strings.HasSuffix(op.Path, ".log") {
		return nil
	}
	switch op.Kind {
	case errorfs.OpFileWrite, errorfs.OpFileWriteAt:
		if f.countFrom.Load() {
			f.walOps.Add(1)
		}
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
		if f.countFrom.Load() {
			f.walOps.Add(1)
		}
		if f.armed.CompareAndSwap(true, false) {
			close(f.entered)
			<-f.release
			if f.failSync.Load() {
				return errInjected
			}
		}
	}
	return nil
}

// manualClock is a stall clock that moves only when told.
type manualClock struct{ d atomic.Int64 }

func (c *manualClock) now() time.Duration      { return time.Duration(c.d.Load()) + 1 }
func (c *manualClock) advance(d time.Duration) { c.d.Add(int64(d)) }

// stallOptions opens a store whose WAL sync can be stalled and whose
// stall clock is manual.
func stallOptions(t *testing.T) (Options, *syncStaller, *manualClock) {
	st, clock := newSyncStaller(), &manualClock{}
	opts := testOptions(t, "")
	opts.FS = errorfs.Wrap(vfs.Default, st)
	opts.StallTimeout = time.Second
	opts.stallClock = clock.now
	return opts, st, clock
}

// await receives from ch or fails the test after a generous deadline
// (the deadline only turns a hang into a failure).
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: still waiting after 30 s", what)
		panic("unreachable")
	}
}

// refusedAtOnce issues one write and one push and checks that both
// completed before the call returned, with an error wrapping ErrStorage.
func refusedAtOnce(t *testing.T, s *Store, when string) {
	t.Helper()
	var wr EZWriteResult
	var pr CFPushResult
	var wDone, pDone bool
	s.EZWrite(msg("u-ch", "refused", "x"), func(r EZWriteResult) { wr, wDone = r, true })
	s.CFPushTo(cfAuto("u/a", "refused"), cfDoneFunc(func(r CFPushResult) { pr, pDone = r, true }))
	if !wDone || !pDone {
		t.Fatalf("%s: a write was queued instead of refused at once (write done %v, push done %v)", when, wDone, pDone)
	}
	if !errors.Is(wr.Err, ErrStorage) || !errors.Is(pr.Err, ErrStorage) {
		t.Fatalf("%s: write %v, push %v: want errors wrapping ErrStorage", when, wr.Err, pr.Err)
	}
}

// TestStall: while a WAL sync hangs, nothing of its batch is acknowledged;
// writes queued before the stall is noticed wait; once it is noticed
// Healthy reports it and new writes are refused at once; reads keep
// working; when the sync returns everything queued completes ok and the
// Store is healthy again.
func TestStall(t *testing.T) {
	opts, st, clock := stallOptions(t)
	s := openTest(t, opts)
	t.Cleanup(st.unblock) // runs before the store's Close: a failing test does not hang
	mustAppend(t, s, "u-ch", "t0", "zero")
	mustPush(t, s, cfAuto("u/a", "zero"))

	st.armed.Store(true)
	w1 := make(chan EZWriteResult, 1)
	s.EZWrite(msg("u-ch", "t1", "one"), func(r EZWriteResult) { w1 <- r })
	await(t, st.entered, "the WAL sync of the first write")
	if err := s.Healthy(); err != nil {
		t.Fatalf("Healthy before the stall timeout: %v", err)
	}
	w2 := make(chan EZWriteResult, 1)
	s.EZWrite(msg("u-ch", "t2", "two"), func(r EZWriteResult) { w2 <- r })
	p2 := make(chan CFPushResult, 1)
	s.CFPushTo(cfAuto("u/a", "two"), cfDoneFunc(func(r CFPushResult) { p2 <- r }))

	clock.advance(opts.StallTimeout + time.Millisecond)
	if err := s.Healthy(); !errors.Is(err, ErrStorage) {
		t.Fatalf("Healthy during a stall: %v, want an ErrStorage error", err)
	}
	refusedAtOnce(t, s, "during the stall")
	select {
	case r := <-w1:
		t.Fatalf("write acknowledged while its sync hangs: %+v", r)
	case r := <-w2:
		t.Fatalf("queued write completed during the stall: %+v", r)
	case r := <-p2:
		t.Fatalf("queued push completed during the stall: %+v", r)
	default:
	}
	if got := ticks(mustRead(t, s, "u-ch", nil, 0)); got != "t0|cursor=1" {
		t.Fatalf("EZ read during the stall: %s", got)
	}
	if got := cfIDs(mustCFRead(t, s, "u/a", 0, 0, 0)); got != "1|cursor=1 last=1" {
		t.Fatalf("CF read during the stall: %s", got)
	}

	st.unblock()
	if r := await(t, w1, "the stalled write"); r.Err != nil || r.Msg.Seq != 2 {
		t.Fatalf("stalled write after the sync returned: %+v", r)
	}
	if r := await(t, w2, "the write queued during the stall"); r.Err != nil || r.Msg.Seq != 3 {
		t.Fatalf("queued write: %+v", r)
	}
	if r := await(t, p2, "the push queued during the stall"); r.Err != nil || r.Msg.ID != 2 {
		t.Fatalf("queued push: %s", describeCF(r))
	}
	if err := s.Healthy(); err != nil {
		t.Fatalf("Healthy after the stall: %v", err)
	}
	if seq := mustAppend(t, s, "u-ch", "t3", "three"); seq != 4 {
		t.Fatalf("write after the stall got seq %d", seq)
	}
	if got := s.Stats().Refused; got != 2 {
		t.Fatalf("Refused = %d, want 2", got)
	}
}

// TestStallThenFailure: when the stalled sync fails, neither its batch
// nor the writes queued behind it are acknowledged, and the Store stays
// failed.
func TestStallThenFailure(t *testing.T) {
	opts, st, clock := stallOptions(t)
	s := openTest(t, opts)
	t.Cleanup(st.unblock)
	st.failSync.Store(true)
	st.armed.Store(true)
	w1 := make(chan EZWriteResult, 1)
	s.EZWrite(msg("u-ch", "t1", "one"), func(r EZWriteResult) { w1 <- r })
	await(t, st.entered, "the WAL sync")
	p2 := make(chan CFPushResult, 1)
	s.CFPushTo(cfAuto("u/a", "queued"), cfDoneFunc(func(r CFPushResult) { p2 <- r }))
	clock.advance(opts.StallTimeout + time.Millisecond)
	refusedAtOnce(t, s, "during the stall")
	st.unblock()
	if r := await(t, w1, "the stalled write"); !errors.Is(r.Err, ErrStorage) {
		t.Fatalf("write whose sync failed: %+v", r)
	}
	if r := await(t, p2, "the queued push"); !errors.Is(r.Err, ErrStorage) {
		t.Fatalf("push queued behind a failed sync: %s", describeCF(r))
	}
	if err := s.Healthy(); !errors.Is(err, ErrStorage) || err == errStalled {
		t.Fatalf("Healthy after the failed sync: %v, want the failure", err)
	}
}

// TestCloseGivesUpOnStall: Close returns once the stalled commit has run
// for twice the stall timeout, says so, and the committer starts nothing
// in Pebble after it (no final sync, no close): the stalled write, and
// one queued behind it, are answered as their syncs turned out.
func TestCloseGivesUpOnStall(t *testing.T) {
	opts, st, clock := stallOptions(t)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.unblock)
	mustAppend(t, s, "u-ch", "t0", "zero")
	st.armed.Store(true)
	w1 := make(chan EZWriteResult, 1)
	s.EZWrite(msg("u-ch", "t1", "one"), func(r EZWriteResult) { w1 <- r })
	await(t, st.entered, "the WAL sync of the first write")
	w2 := make(chan EZWriteResult, 1)
	s.EZWrite(msg("u-ch", "t2", "two"), func(r EZWriteResult) { w2 <- r })

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	clock.advance(opts.StallTimeout) // within the bound: Close waits
	select {
	case err := <-closed:
		t.Fatalf("Close returned within its bound: %v", err)
	default:
	}
	clock.advance(opts.StallTimeout + time.Millisecond)
	err = await(t, closed, "Close on a stalled disk")
	if !errors.Is(err, ErrStorage) || !strings.Contains(err.Error(), "gave up") {
		t.Fatalf("Close = %v, want an ErrStorage error saying it gave up", err)
	}
	if err := s.Healthy(); err != ErrClosed {
		t.Fatalf("Healthy after Close: %v", err)
	}

	st.unblock()
	if r := await(t, w1, "the stalled write"); r.Err != nil {
		t.Fatalf("the stalled write, synced after all: %+v", r)
	}
	// The commit pipeline may have applied w2 while w1's fsync stalled:
	// then it is answered once synced, as w1 is; otherwise it is refused.
	if r := await(t, w2, "the write queued behind the stall"); r.Err != nil && !errors.Is(r.Err, ErrClosed) {
		t.Fatalf("write queued behind the stall: %+v, want ok (synced) or ErrClosed", r)
	}
	st.countFrom.Store(true)
	await(t, s.committerDone, "the committer")
	if n := st.walOps.Load(); n != 0 {
		t.Fatalf("%d WAL writes or syncs began after Close gave up", n)
	}
	_ = s.db.Close() // what Close left open
}

// TestWriteQueueFull: a write that finds the queue full is refused at
// once (an event loop never blocks on the store); the queued ones complete.
func TestWriteQueueFull(t *testing.T) {
	opts := testOptions(t, "")
	opts.WriteQueue = 2
	s := openTest(t, opts)
	release := sync.OnceFunc(holdCommitter(t, s))
	t.Cleanup(release) // before the store's Close: a failing test does not hang
	res := make(chan EZWriteResult, 2)
	for _, tick := range []string{"t1", "t2"} {
		s.EZWrite(msg("u-ch", tick, "x"), func(r EZWriteResult) { res <- r })
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		refusedAtOnce(t, s, "queue full")
	}()
	await(t, done, "a write to a full queue")
	if err := s.Healthy(); err != nil {
		t.Fatalf("a full queue is not a storage fault: Healthy %v", err)
	}
	release()
	for range 2 {
		if r := await(t, res, "a queued write"); r.Err != nil {
			t.Fatalf("queued write: %+v", r)
		}
	}
	if got := s.Stats().Refused; got != 2 {
		t.Fatalf("Refused = %d, want 2", got)
	}
}

// TestFailedStoreSaysSo: after a failed commit Healthy reports it, new
// writes are refused at once, and the log says the process must be
// restarted, again and again while it is not.
func TestFailedStoreSaysSo(t *testing.T) {
	inj := &walFailer{}
	var mu sync.Mutex
	var logs []string
	opts := testOptions(t, "")
	opts.FS = errorfs.Wrap(vfs.Default, inj)
	opts.failLogEvery = time.Millisecond
	opts.Logf = func(format string, args ...any) {
		mu.Lock()
		logs = append(logs, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	s := openTest(t, opts)
	mustAppend(t, s, "u-ch", "t1", "one")
	if err := s.Healthy(); err != nil {
		t.Fatal(err)
	}
	inj.armed.Store(true)
	if r := write(t, s, msg("u-ch", "t2", "two")); !errors.Is(r.Err, ErrStorage) {
		t.Fatalf("write on a failing disk: %+v", r)
	}
	inj.armed.Store(false)
	if err := s.Healthy(); !errors.Is(err, ErrStorage) {
		t.Fatalf("Healthy after a failed commit: %v", err)
	}
	refusedAtOnce(t, s, "failed")
	restarts := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, l := range logs {
			if strings.Contains(l, "until the process is restarted") {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	for restarts() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the failure was logged %d times in 30 s", restarts())
		}
		time.Sleep(time.Millisecond)
	}
}
