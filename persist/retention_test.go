package persist

import (
	"fmt"
	"testing"
)

// Count retention (EZ-W-09) drops the oldest message for readers with
// the write that overflows the queue, and from disk a chunk at a time:
// never more than a chunk of dropped messages stays on disk, also across
// a restart (the first chunk after Open deletes what the last run left).
func TestCountRetentionDeletesInChunks(t *testing.T) {
	const keep = 64 // chunk = keep/16 = 4
	chunk := min(retentionChunk, keep/16)
	dir := t.TempDir()
	opts := testOptions(t, dir)
	opts.EZMaxQueue = keep
	s := openTest(t, opts)
	for i := range 3 * keep {
		mustAppend(t, s, "u-c", fmt.Sprint("t", i), "b")
		read, err := s.EZRead("u-c", nil, ReadLimit{})
		if err != nil {
			t.Fatal(err)
		}
		if want := min(i+1, keep); len(read.Messages) != want || read.Messages[0].Seq != uint64(i+2-want) {
			t.Fatalf("after %d writes: %d messages from seq %d, want %d", i+1, len(read.Messages), read.Messages[0].Seq, want)
		}
		if n := countKeys(t, s, kindQueue); n > keep+chunk-1 {
			t.Fatalf("after %d writes: %d messages on disk, want at most %d", i+1, n, keep+chunk-1)
		}
	}
	if r := write(t, s, msg("u-c", "t0", "b")); r.Err != nil || r.Duplicate {
		t.Fatalf("tick of a message dropped but still on disk: %+v, want a new append", r)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, opts)
	before := countKeys(t, s, kindQueue)
	for i := range chunk {
		mustAppend(t, s, "u-c", fmt.Sprint("r", i), "b")
	}
	if n := countKeys(t, s, kindQueue); n > keep+chunk-1 || before <= keep {
		t.Fatalf("after reopening: %d messages on disk before, %d after %d writes; want more than %d before, at most %d after", before, n, chunk, keep, keep+chunk-1)
	}
	// A flush deletes everything, dropped or not.
	if r := write(t, s, EZWrite{QName: "u-c", Flush: true}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if n := countKeys(t, s, kindQueue); n != 0 {
		t.Fatalf("after a flush: %d messages on disk", n)
	}
}
