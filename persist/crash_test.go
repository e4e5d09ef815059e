package persist

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestCrashKeepsAcknowledged simulates a machine crash (only synced bytes
// survive, via vfs.MemFS.CrashClone) in the middle of concurrent writes:
// every write acknowledged before the crash is there after recovery, with
// the seq it was given.
func TestCrashKeepsAcknowledged(t *testing.T) {
	if faultAckFirst {
		t.Skip("the ack-first fault loses acknowledged writes by design")
	}
	mem := vfs.NewCrashableMem()
	opts := testOptions(t, "/data")
	opts.fs = mem
	opts.EZMaxQueue = 100000
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[string]uint64{}
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
				tick := fmt.Sprint(w, "-", i)
				r := write(t, s, msg("u-ch", tick, tick))
				if r.Err != nil {
					t.Error(r.Err)
					return
				}
				mu.Lock()
				acked[tick] = r.Msg.Seq
				mu.Unlock()
			}
		}()
	}
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 500 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	before := make(map[string]uint64, len(acked))
	for k, v := range acked {
		before[k] = v
	}
	crashed := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	mu.Unlock()
	close(stop)
	wg.Wait()
	_ = s.Close()

	opts.fs = crashed
	s = openTest(t, opts)
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
