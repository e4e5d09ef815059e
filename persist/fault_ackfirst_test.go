//go:build halley_fault_ackfirst

package persist

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestFaultAckFirst proves the planted fault is active: the completion
// runs before its message is applied.
func TestFaultAckFirst(t *testing.T) {
	s := openTest(t, testOptions(t, ""))
	ch := make(chan uint64, 1)
	s.EZWrite(msg("u-ch", "t1", "x"), func(r EZWriteResult) { ch <- s.EZLastSeq("u-ch") })
	if last := <-ch; last != 0 {
		t.Fatalf("ack-first fault: message already applied (last seq %d) when acknowledged", last)
	}
}

// TestFaultAckFirstCF: the fault covers Cometify pushes too.
func TestFaultAckFirstCF(t *testing.T) {
	s := openTest(t, testOptions(t, ""))
	ch := make(chan uint64, 1)
	s.CFPushTo(cfAuto("u/a", "x"), cfDoneFunc(func(r CFPushResult) { ch <- s.CFLast([]byte("u/a")) }))
	if last := <-ch; last != 0 {
		t.Fatalf("ack-first fault: push already applied (last id %d) when acknowledged", last)
	}
}

// TestFaultAckFirstLosesOnCrash: with the fault, a write acknowledged just
// before a crash is gone after it.
func TestFaultAckFirstLosesOnCrash(t *testing.T) {
	mem := vfs.NewCrashableMem()
	opts := testOptions(t, "/data")
	opts.FS = mem
	s := openTest(t, opts)
	ch := make(chan EZWriteResult, 1)
	s.EZWrite(msg("u-ch", "t1", "x"), func(r EZWriteResult) { ch <- r })
	if r := <-ch; r.Err != nil {
		t.Fatal(r.Err)
	}
	crashed := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	opts.FS = crashed
	s2 := openTest(t, opts)
	if s2.EZLastSeq("u-ch") != 0 {
		t.Fatal("acknowledged write survived: the planted fault is not active")
	}
}
