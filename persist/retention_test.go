package persist

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
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

// Count retention single-deletes what it drops (committer.dropTo): a
// message and its single delete vanish together when the memtable that
// holds both is flushed, so the tables keep no tombstone for them,
// where plain deletes are carried down to the last level. After a
// restart the first chunk takes a plain deletion (what an earlier run
// left below first is not known), and Pebble reports no misuse through
// any of it, also when a full compaction meets every table.
func TestRetentionSingleDeletesVanishAtFlush(t *testing.T) {
	const keep, writes = 64, 64 * 20
	opts := testOptions(t, "")
	opts.Sync = SyncNone
	opts.EZMaxQueue = keep
	s := openTest(t, opts)
	// A table under the channel's keys first, as other channels' make it
	// in a server's life: a flush drops a tombstone that nothing below it
	// overlaps, plain or single.
	appendMany(t, s, "u-c", "z", keep)
	appendMany(t, s, "u-d", "z", 1)
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	appendMany(t, s, "u-c", "a", writes)
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	// The first keep messages are in the first table: their single
	// deletes stay until a compaction meets them. With plain deletes the
	// second flush writes writes-keep tombstones.
	if n := tombstones(t, s); n > 2*keep {
		t.Fatalf("after %d writes at a queue of %d and a flush: %d tombstones in the tables, want at most %d", keep+writes, keep, n, 2*keep)
	}
	checkNewest(t, s, "u-c", "a", writes, keep)

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, opts)
	appendMany(t, s, "u-c", "b", 3*keep)
	compactAll(t, s)
	checkNewest(t, s, "u-c", "b", 3*keep, keep)
	if m, err := s.StorageMetrics(); err != nil || m.APIMisuse != 0 {
		t.Fatalf("Pebble reported %d possible API misuses (err %v), want none", m.APIMisuse, err)
	}
}

// The misuse count TestRetentionSingleDeletesVanishAtFlush asserts is 0
// sees a single delete that met two writes of its key.
func TestSingleDeleteMisuseReported(t *testing.T) {
	opts := testOptions(t, "")
	opts.Sync = SyncNone
	s := openTest(t, opts)
	k := queueKey(nil, "u-c", 1)
	for _, v := range []string{"one", "two"} {
		if err := s.db.Set(k, []byte(v), pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.db.SingleDelete(k, pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if m, err := s.StorageMetrics(); err != nil || m.APIMisuse == 0 {
		t.Fatalf("a single delete over two writes: %d misuses reported (err %v), want at least 1", m.APIMisuse, err)
	}
}

// appendMany writes n messages to qname (ticks prefix0..), 256 in flight
// at a time.
func appendMany(t *testing.T, s *Store, qname, prefix string, n int) {
	t.Helper()
	errs := make(chan error, n)
	for i := 0; i < n; i += 256 {
		var wg sync.WaitGroup
		for j := i; j < min(i+256, n); j++ {
			wg.Add(1)
			s.EZWrite(msg(qname, fmt.Sprint(prefix, j), fmt.Sprint("body", j)), func(r EZWriteResult) {
				if r.Err != nil || r.Duplicate {
					errs <- fmt.Errorf("write %d: %+v", j, r)
				}
				wg.Done()
			})
		}
		wg.Wait()
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// checkNewest checks that qname holds the newest keep of the n messages
// appendMany wrote with prefix.
func checkNewest(t *testing.T, s *Store, qname, prefix string, n, keep int) {
	t.Helper()
	r := mustRead(t, s, qname, nil, 0)
	if len(r.Messages) != keep {
		t.Fatalf("%d messages queued, want %d", len(r.Messages), keep)
	}
	for i, m := range r.Messages {
		j := n - keep + i
		if string(m.Tick) != fmt.Sprint(prefix, j) || string(m.Body) != fmt.Sprint("body", j) {
			t.Fatalf("message %d of the queue is %s %q, want %s%d %q", i, m.Tick, m.Body, prefix, j, fmt.Sprint("body", j))
		}
	}
}

// tombstones counts the deletions the Store's tables hold, from their
// properties (Pebble's own count in Metrics is collected in the
// background).
func tombstones(t *testing.T, s *Store) uint64 {
	t.Helper()
	levels, err := s.db.SSTables(pebble.WithProperties())
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, level := range levels {
		for _, table := range level {
			n += table.Properties.NumDeletions
		}
	}
	return n
}

// compactAll flushes the Store's memtables and compacts every key to the
// last level (DB.Compact flushes the memtables its range overlaps).
func compactAll(t *testing.T, s *Store) {
	t.Helper()
	if err := s.db.Compact(context.Background(), []byte{0}, []byte{0xff}, false); err != nil {
		t.Fatal(err)
	}
}
