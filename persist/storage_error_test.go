package persist

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

var errInjected = errors.New("injected disk failure")

// walFailer fails every write and sync of Pebble's WAL files while armed.
type walFailer struct{ armed atomic.Bool }

func (f *walFailer) String() string { return "walFailer" }

func (f *walFailer) MaybeError(op errorfs.Op) error {
	if !f.armed.Load() || !strings.HasSuffix(op.Path, ".log") {
		return nil
	}
	switch op.Kind {
	case errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
		return errInjected
	}
	return nil
}

// TestCommitFailure: when the WAL cannot be written, every write of the
// batch gets a storage error, nothing of it is visible, later writes are
// refused, and a reopen shows only what was acknowledged.
func TestCommitFailure(t *testing.T) {
	dir := t.TempDir()
	inj := &walFailer{}
	opts := testOptions(t, dir)
	opts.FS = errorfs.Wrap(vfs.Default, inj)
	opts.EZMaxQueue = 2
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := s.AddAccount("alice")
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, "alice-ch", "t1", "one")
	mustAppend(t, s, "alice-ch", "t2", "two")
	mustPush(t, s, cfAuto("alice/a", "one"))

	release := holdCommitter(t, s)
	inj.armed.Store(true) // after the held write committed: ws's batch is the one that fails
	ws := []EZWrite{
		msg("alice-ch", "t3", "three"), // would drop t1 by count
		msg("alice-ch", "t3", "three"), // duplicate within the batch
		msg("alice-other", "x1", "x"),  // a channel the batch creates
		{QName: "alice-ch", Flush: true},
	}
	ps := []CFPush{
		cfAuto("alice/a", "moves last"),
		cfGiven("alice/a", 1, "re-send"),   // duplicate within the batch
		cfGiven("alice/new", 9, "creates"), // a topic the batch creates
	}
	res := make([]EZWriteResult, len(ws))
	cfRes := make([]CFPushResult, len(ps))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Add(1)
		s.EZWrite(w, func(r EZWriteResult) { res[i] = r; wg.Done() })
		if i < len(ps) {
			wg.Add(1)
			s.CFPushTo(ps[i], cfDoneFunc(func(r CFPushResult) { cfRes[i] = r; wg.Done() }))
		}
	}
	release()
	wg.Wait()
	for i, r := range res {
		if !errors.Is(r.Err, ErrStorage) || r.Duplicate || r.Msg.Seq != 0 {
			t.Errorf("write %d: %+v, want a storage error", i, r)
		}
	}
	for i, r := range cfRes {
		if !errors.Is(r.Err, ErrStorage) || r.Duplicate || r.Msg.ID != 0 {
			t.Errorf("push %d: %+v, want a storage error", i, r)
		}
	}
	if st := s.Stats(); st.Errors != uint64(len(ws)+len(ps)) || st.Batches != 5 || st.CFPushes != 1 {
		t.Errorf("Errors = %d, Batches = %d, CFPushes = %d", st.Errors, st.Batches, st.CFPushes)
	}
	if s.CFLast([]byte("alice/a")) != 1 || s.CFLast([]byte("alice/new")) != 0 {
		t.Fatalf("a failed commit moved last: a %d new %d", s.CFLast([]byte("alice/a")), s.CFLast([]byte("alice/new")))
	}
	if _, err := s.CFRead([]byte("alice/a"), 0, 0, ReadLimit{}); !errors.Is(err, ErrStorage) {
		t.Fatalf("CF read after failure: %v", err)
	}
	if r := push(t, s, cfAuto("alice/a", "later")); !errors.Is(r.Err, ErrStorage) {
		t.Fatalf("push after failure: %+v", r)
	}
	// No phantom state in memory.
	if s.EZLastSeq("alice-ch") != 2 || s.EZQueued("alice-ch") != 2 || s.EZLastSeq("alice-other") != 0 {
		t.Fatalf("after failure: last %d queued %d other %d",
			s.EZLastSeq("alice-ch"), s.EZQueued("alice-ch"), s.EZLastSeq("alice-other"))
	}
	// Pebble's memtable may hold the failed batch: reads fail closed.
	if _, err := s.EZRead("alice-ch", nil, ReadLimit{}); !errors.Is(err, ErrStorage) {
		t.Fatalf("read after failure: %v", err)
	}
	// The store fails closed: later writes and account changes are refused.
	inj.armed.Store(false)
	if r := write(t, s, msg("alice-ch", "t4", "four")); !errors.Is(r.Err, ErrStorage) {
		t.Fatalf("write after failure: %+v", r)
	}
	if _, err := s.AddAccount("bob"); !errors.Is(err, ErrStorage) {
		t.Fatalf("add account after failure: %v", err)
	}
	_ = s.Close() // may report the failure again

	opts.FS = nil
	s = openTest(t, opts)
	if a, ok := s.AccountByName([]byte("alice")); !ok || a != acct {
		t.Fatal("account lost")
	}
	if got := ticks(mustRead(t, s, "alice-ch", nil, 0)); got != "t1,t2|cursor=2" {
		t.Fatalf("after reopen %s", got)
	}
	if s.EZLastSeq("alice-other") != 0 {
		t.Fatal("phantom channel after reopen")
	}
	if r := write(t, s, msg("alice-ch", "t3", "three")); r.Err != nil || r.Duplicate || r.Msg.Seq != 3 {
		t.Fatalf("write after reopen %+v", r)
	}
	if got := cfIDs(mustCFRead(t, s, "alice/a", 0, 0, 0)); got != "1|cursor=1 last=1" || s.CFLast([]byte("alice/new")) != 0 {
		t.Fatalf("CF after reopen %s", got)
	}
	if got := describeCF(push(t, s, cfAuto("alice/a", "two"))); got != "id 2" {
		t.Fatalf("push after reopen %s", got)
	}
}
