package persist

import "testing"

// A write whose tick the server generated skips the idempotence lookup,
// but its tick is still indexed: a client that re-sends the answer's
// tick gets EZ-W-07's idempotent ok, and a different body a conflict.
func TestNewTickIsIndexed(t *testing.T) {
	s := openTest(t, Options{Dir: t.TempDir()})
	w := msg("u-c", "3f1c9a52-6a0e-4d1b-9a43-0d6f1c2b7e11", "hello")
	w.NewTick = true
	if r := write(t, s, w); r.Err != nil || r.Duplicate || r.Msg.Seq != 1 {
		t.Fatalf("generated-tick write: %+v", r)
	}
	if r := write(t, s, msg("u-c", string(w.Tick), "hello")); r.Err != nil || !r.Duplicate {
		t.Fatalf("re-send of a generated tick: %+v, want duplicate", r)
	}
	if r := write(t, s, msg("u-c", string(w.Tick), "other")); r.Err != ErrTickConflict {
		t.Fatalf("conflicting re-send: %+v, want ErrTickConflict", r)
	}
}
