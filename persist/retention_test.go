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

// An append writes no metadata key (only creating a channel, a flush or
// a chunk deleted from disk does): Open finds last from the messages and
// first from last and EZMaxQueue, also after a crash in the middle of
// writes at a full queue.
func TestOpenFindsRangeWithoutMetaPerAppend(t *testing.T) {
	const keep = 64 // chunk 4
	opts := testOptions(t, "")
	opts.EZMaxQueue = keep
	s := openTest(t, opts)
	for i := range keep + 6 { // the metadata key says (4, 67)
		mustAppend(t, s, "u-c", fmt.Sprint("t", i), "b")
	}
	mustAppend(t, s, "u-d", "t", "b")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, opts)
	r := mustRead(t, s, "u-c", nil, 0)
	if len(r.Messages) != keep || r.Messages[0].Seq != 7 || r.Cursor != 70 || s.EZQueued("u-d") != 1 {
		t.Fatalf("after reopening: %d messages from seq %d to %d, u-d %d queued; want %d from 7 to 70, 1", len(r.Messages), r.Messages[0].Seq, r.Cursor, s.EZQueued("u-d"), keep)
	}
	if seq := mustAppend(t, s, "u-c", "next", "b"); seq != 71 {
		t.Fatalf("next append got seq %d, want 71", seq)
	}
}

// TestCrashAtFullQueue: after a crash in the middle of writes that
// each drop the oldest message, the channel holds the newest keep
// messages up to the newest on disk, every acknowledged one among them.
func TestCrashAtFullQueue(t *testing.T) {
	const keep = 64
	opts := testOptions(t, "/data")
	opts.EZMaxQueue = keep
	s, ticks := crashWritingTicks(t, opts)
	before := map[uint64]string{}
	for tick, seq := range ticks {
		before[seq] = tick
	}

	r := mustRead(t, s, "u-ch", nil, 0)
	last := s.EZLastSeq("u-ch")
	if len(r.Messages) != keep || r.Messages[0].Seq != last-keep+1 || r.Cursor != last {
		t.Fatalf("after the crash: %d messages from seq %d to %d, last %d; want the newest %d", len(r.Messages), r.Messages[0].Seq, r.Cursor, last, keep)
	}
	for _, m := range r.Messages {
		if tick, ok := before[m.Seq]; ok && tick != string(m.Tick) {
			t.Fatalf("seq %d is %s after the crash, %s was acknowledged", m.Seq, m.Tick, tick)
		}
	}
	for seq := range before {
		if seq > last {
			t.Fatalf("acknowledged seq %d lost in the crash: last is %d", seq, last)
		}
	}
	t.Logf("%d acknowledged before the crash, last seq %d", len(before), last)
}

// A push writes no topic metadata key after the topic's first: Open
// finds the topic's last id from its newest push.
func TestOpenFindsTopicLastWithoutMetaPerPush(t *testing.T) {
	opts := testOptions(t, "")
	s := openTest(t, opts)
	for i := range 3 {
		if r := push(t, s, cfAuto("u/a", fmt.Sprint("p", i))); r.Err != nil || r.Msg.ID != uint64(i+1) {
			t.Fatalf("push %d: %+v", i, r)
		}
	}
	if n := countKeys(t, s, kindCFMeta); n != 1 {
		t.Fatalf("%d topic metadata keys", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, opts)
	if last := s.CFLast([]byte("u/a")); last != 3 {
		t.Fatalf("CFLast after reopening: %d, want 3", last)
	}
	if r := push(t, s, cfAuto("u/a", "next")); r.Err != nil || r.Msg.ID != 4 {
		t.Fatalf("next push after reopening: %+v, want id 4", r)
	}
}
