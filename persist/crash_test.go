package persist

import (
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// crashDuringWrites opens a Store on a crashable in-memory disk, runs 4
// writers calling writeOne(s, w, i) until 500 writes were acknowledged,
// then simulates a machine crash (only synced bytes survive, via
// vfs.MemFS.CrashClone). writeOne returns what to record once its write
// is acknowledged (nil on failure, which stops that writer); snapshot
// runs at the crash instant, with no record in progress, to save what was
// acknowledged before it. It returns the Store reopened on the crashed
// disk.
func crashDuringWrites(t *testing.T, opts Options, writeOne func(s *Store, w, i int) (record func()), snapshot func()) *Store {
	t.Helper()
	if faultAckFirst {
		t.Skip("the ack-first fault loses acknowledged writes by design")
	}
	mem := vfs.NewCrashableMem()
	opts.FS = mem
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := 0
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				record := writeOne(s, w, i)
				if record == nil {
					return
				}
				mu.Lock()
				record()
				acked++
				mu.Unlock()
			}
		}()
	}
	for {
		mu.Lock()
		n := acked
		mu.Unlock()
		if n >= 500 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	snapshot()
	crashed := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	mu.Unlock()
	close(stop)
	wg.Wait()
	_ = s.Close()

	opts.FS = crashed
	return openTest(t, opts)
}

// TestCrashKeepsAcknowledged: every write acknowledged before a crash in
// the middle of concurrent writes is there after recovery, with the seq
// it was given.
func TestCrashKeepsAcknowledged(t *testing.T) {
	opts := testOptions(t, "/data")
	opts.EZMaxQueue = 100000
	s, before := crashWritingTicks(t, opts)

	r := mustRead(t, s, "u-ch", nil, 0)
	got := map[string]uint64{}
	for _, m := range r.Messages {
		got[string(m.Tick)] = m.Seq
	}
	for tick, seq := range before {
		if got[tick] != seq {
			t.Fatalf("acknowledged %s (seq %d) lost in the crash (got seq %d); %d acked, %d recovered",
				tick, seq, got[tick], len(before), len(got))
		}
	}
	t.Logf("%d acknowledged before the crash, %d recovered", len(before), len(got))
}

// crashWritingTicks is crashDuringWrites with writes to u-ch whose
// ticks are their bodies; before maps each tick acknowledged before the
// crash to its seq.
func crashWritingTicks(t *testing.T, opts Options) (s *Store, before map[string]uint64) {
	acked := map[string]uint64{}
	before = map[string]uint64{}
	s = crashDuringWrites(t, opts, func(s *Store, w, i int) func() {
		tick := fmt.Sprint(w, "-", i)
		r := write(t, s, msg("u-ch", tick, tick))
		if r.Err != nil {
			t.Error(r.Err)
			return nil
		}
		return func() { acked[tick] = r.Msg.Seq }
	}, func() { maps.Copy(before, acked) })
	return s, before
}

// TestCrashKeepsGeneratedTicks: the same for writes whose ticks the
// Store generates (gentick.go): after recovery each acknowledged tick
// names its message, for a resume and for a re-send.
func TestCrashKeepsGeneratedTicks(t *testing.T) {
	opts := testOptions(t, "/data")
	opts.EZMaxQueue = 100000
	type ack struct {
		tick string
		seq  uint64
	}
	acked, before := map[string]ack{}, map[string]ack{}
	s := crashDuringWrites(t, opts, func(s *Store, w, i int) func() {
		body := fmt.Sprint(w, "-", i)
		r := write(t, s, EZWrite{QName: "u-ch", Tick: make([]byte, genTickLen), Body: []byte(body), NewTick: true})
		if r.Err != nil {
			t.Error(r.Err)
			return nil
		}
		return func() { acked[body] = ack{string(r.Msg.Tick), r.Msg.Seq} }
	}, func() { maps.Copy(before, acked) })

	last := s.EZLastSeq("u-ch")
	for body, a := range before {
		r := mustRead(t, s, "u-ch", []byte(a.tick), 1)
		if a.seq < last && (len(r.Messages) != 1 || r.Messages[0].Seq != a.seq+1) || a.seq == last && r.Cursor != a.seq {
			t.Fatalf("resume from acknowledged %s (seq %d) after the crash: %+v", a.tick, a.seq, r)
		}
		if w := write(t, s, msg("u-ch", a.tick, body)); !w.Duplicate || w.Msg.Seq != a.seq {
			t.Fatalf("re-send of acknowledged %s (seq %d) after the crash: %+v", a.tick, a.seq, w)
		}
	}
	t.Logf("%d acknowledged before the crash, last seq %d", len(before), last)
}

// TestCFCrashKeepsAcknowledged: the same for Cometify pushes, interleaved
// with EZ writes in the same batches; the last id survives too.
func TestCFCrashKeepsAcknowledged(t *testing.T) {
	acked, before := map[uint64]string{}, map[uint64]string{}
	var maxID, beforeMax uint64
	s := crashDuringWrites(t, testOptions(t, "/data"), func(s *Store, w, i int) func() {
		text := fmt.Sprint(w, "-", i)
		if i%3 == 0 {
			write(t, s, msg("u-ch", text, text))
		}
		r := push(t, s, cfAuto("u/a", text))
		if r.Err != nil {
			t.Error(r.Err)
			return nil
		}
		return func() { acked[r.Msg.ID] = text; maxID = max(maxID, r.Msg.ID) }
	}, func() { maps.Copy(before, acked); beforeMax = maxID })

	got := map[uint64]string{}
	for _, p := range mustCFRead(t, s, "u/a", 0, 0, 0).Pushes {
		got[p.ID] = string(p.Text)
	}
	for id, text := range before {
		if got[id] != text {
			t.Fatalf("acknowledged push %d %q lost in the crash (got %q); %d acked, %d recovered",
				id, text, got[id], len(before), len(got))
		}
	}
	if last := s.CFLast([]byte("u/a")); last < beforeMax {
		t.Fatalf("CFLast %d after the crash, %d was acknowledged", last, beforeMax)
	}
	t.Logf("%d acknowledged before the crash, %d recovered", len(before), len(got))
}
