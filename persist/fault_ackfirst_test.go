//go:build halley_fault_ackfirst

package persist

import "testing"

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
