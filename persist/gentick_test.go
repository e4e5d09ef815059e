package persist

import (
	"bytes"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

var canonicalUUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestGenTickFormat(t *testing.T) {
	now := time.Date(2026, 12, 7, 6, 0, 0, 123456789, time.UTC).UnixNano()
	for _, seq := range []uint64{1, 2, 1000, 1<<36 - 1, 1 << 36, genSeqMax} {
		out := make([]byte, genTickLen)
		if !putGenTick(out, "u-ch", seq, now) {
			t.Fatalf("seq %d: not made", seq)
		}
		if !canonicalUUID.Match(out) || out[14] != '8' {
			t.Fatalf("seq %d: %q is not a lowercase canonical version 8 UUID", seq, out)
		}
		gseq, gtime, ok := parseGenTick("u-ch", out)
		if !ok || gseq != seq || gtime != now/1e6*1e6 {
			t.Fatalf("seq %d: %q parses as %d %d %v", seq, out, gseq, gtime, ok)
		}
		if _, _, ok := parseGenTick("u-ch2", out); ok {
			t.Fatalf("seq %d: %q passes for another channel's", seq, out)
		}
		up := bytes.ToUpper(out)
		if _, _, ok := parseGenTick("u-ch", up); ok {
			t.Fatalf("%q passes for a generated tick", up)
		}
	}
	out := make([]byte, genTickLen)
	for _, bad := range []struct {
		seq uint64
		now int64
	}{{0, now}, {genSeqMax + 1, now}, {1, -1}} {
		if putGenTick(out, "u-ch", bad.seq, bad.now) {
			t.Fatalf("seq %d at %d: made %q", bad.seq, bad.now, out)
		}
	}
	putRandomTick(out)
	if _, _, ok := parseGenTick("u-ch", out); ok || !canonicalUUID.Match(out) || out[14] != '4' {
		t.Fatalf("random tick %q", out)
	}
}

// FuzzParseGenTick: no input panics parseGenTick, and whatever it
// accepts is exactly the tick putGenTick makes of what it returns.
func FuzzParseGenTick(f *testing.F) {
	out := make([]byte, genTickLen)
	putGenTick(out, "u-ch", 42, time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC).UnixNano())
	f.Add("u-ch", string(out))
	f.Add("u-ch", "3f1c9a52-6a0e-4d1b-9a43-0d6f1c2b7e11")
	f.Add("u-ch", "ffffffff-ffff-8fff-bfff-ffffffffffff")
	f.Fuzz(func(t *testing.T, qname, tick string) {
		seq, unixNano, ok := parseGenTick(qname, []byte(tick))
		if !ok {
			return
		}
		again := make([]byte, genTickLen)
		if !putGenTick(again, qname, seq, unixNano) || string(again) != tick {
			t.Fatalf("%q parses as seq %d at %d, which makes %q", tick, seq, unixNano, again)
		}
	})
}

// genWrite writes body to qname with a tick the Store generates.
func genWrite(t *testing.T, s *Store, qname, body string) EZWriteResult {
	t.Helper()
	r := write(t, s, EZWrite{QName: qname, Tick: make([]byte, genTickLen), Body: []byte(body), NewTick: true})
	if r.Err != nil || r.Duplicate {
		t.Fatalf("generated-tick write to %s: %+v", qname, r)
	}
	return r
}

// bodies renders a read as "b1,b2|cursor=N gap more".
func bodies(r ReadResult) string {
	for i := range r.Messages {
		r.Messages[i].Tick = r.Messages[i].Body
	}
	return ticks(r)
}

// A tick the Store generates (gentick.go) behaves as a client-given one
// (TestRetentionByAge) with no tick memory key: a re-send is EZ-W-07's
// idempotent ok or a conflict, a read resumes after it, an expired or
// dropped one is remembered for TickMemory (X-01's gap), and it is
// unknown on another channel; the same after a restart.
func TestGeneratedTicks(t *testing.T) {
	opts, clock := clockedOptions(t)
	opts.EZMaxAge = time.Hour
	opts.TickMemory = 3 * time.Hour
	s := openTest(t, opts)

	old1 := genWrite(t, s, "u-ch", "old1").Msg.Tick
	old2 := genWrite(t, s, "u-ch", "old2").Msg.Tick
	clock.Advance(30 * time.Minute)
	nw := genWrite(t, s, "u-ch", "new")
	if !canonicalUUID.Match(nw.Msg.Tick) || nw.Msg.Seq != 3 || bytes.Equal(old1, old2) {
		t.Fatalf("generated ticks %q %q %q (seq %d)", old1, old2, nw.Msg.Tick, nw.Msg.Seq)
	}
	if n := countKeys(t, s, kindTick); n != 0 {
		t.Fatalf("%d tick memory keys for generated ticks, want 0", n)
	}
	if r := write(t, s, msg("u-ch", string(nw.Msg.Tick), "new")); r.Err != nil || !r.Duplicate || r.Msg.Seq != 3 {
		t.Fatalf("re-send of a generated tick: %+v, want a duplicate of seq 3", r)
	}
	if r := write(t, s, msg("u-ch", string(nw.Msg.Tick), "other")); r.Err != ErrTickConflict {
		t.Fatalf("conflicting re-send: %+v, want ErrTickConflict", r)
	}
	if got := bodies(mustRead(t, s, "u-ch", old1, 0)); got != "old2,new|cursor=3" {
		t.Fatalf("read from a queued generated tick: %s", got)
	}
	if got := bodies(mustRead(t, s, "u-ch2", old1, 0)); got != "|cursor=0" {
		t.Fatalf("read of another channel from it: %s", got)
	}
	mustAppend(t, s, "u-ch2", "x", "x")
	if got := bodies(mustRead(t, s, "u-ch2", old1, 0)); got != "x|cursor=1" {
		t.Fatalf("read of another channel from it: %s", got)
	}

	clock.Advance(45 * time.Minute) // old* are 75 min old, new 45
	if got := bodies(mustRead(t, s, "u-ch", old1, 0)); got != "new|cursor=3 gap" {
		t.Fatalf("read from an expired generated tick: %s", got)
	}
	if got := bodies(mustRead(t, s, "u-ch", old2, 0)); got != "new|cursor=3" {
		t.Fatalf("read from the expired tick right before the first kept: %s", got)
	}
	// Expired, it is no longer queued: a client re-sending it appends,
	// and from then on the tick names the new message.
	if r := write(t, s, msg("u-ch", string(old1), "old1")); r.Err != nil || r.Duplicate || r.Msg.Seq != 4 {
		t.Fatalf("re-send of an expired generated tick: %+v", r)
	}
	if got := bodies(mustRead(t, s, "u-ch", old1, 0)); got != "|cursor=4" {
		t.Fatalf("read from a generated tick a client wrote again: %s", got)
	}

	// Restart: nothing of it was in memory.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, opts)
	s.sweep()
	if got := bodies(mustRead(t, s, "u-ch", old2, 0)); got != "new,old1|cursor=4" {
		t.Fatalf("read from a swept generated tick: %s", got)
	}
	if got := bodies(mustRead(t, s, "u-ch", []byte("3f1c9a52-6a0e-4d1b-9a43-0d6f1c2b7e11"), 0)); got != "new,old1|cursor=4" {
		t.Fatalf("read from an unknown tick: %s", got)
	}
	if r := write(t, s, msg("u-ch", string(nw.Msg.Tick), "new")); !r.Duplicate {
		t.Fatalf("re-send after a restart: %+v, want a duplicate", r)
	}
	clock.Advance(2 * time.Hour) // everything expired; old2 written 3h15 ago
	s.sweep()
	if got := bodies(mustRead(t, s, "u-ch", nw.Msg.Tick, 0)); got != "|cursor=4 gap" {
		t.Fatalf("remembered generated tick: %s", got)
	}
	if got := bodies(mustRead(t, s, "u-ch", old2, 0)); got != "|cursor=4" {
		t.Fatalf("generated tick past TickMemory: %s", got)
	}
	// A flush drops everything: still remembered, with a gap.
	genWrite(t, s, "u-ch", "last")
	if r := write(t, s, EZWrite{QName: "u-ch", Flush: true}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if got := bodies(mustRead(t, s, "u-ch", nw.Msg.Tick, 0)); got != "|cursor=5 gap" {
		t.Fatalf("generated tick after a flush: %s", got)
	}
}

// A data directory written before generated ticks were (random version 4
// UUIDs, each with a tick memory key, laid out as keys.go says) still
// reads: a resume from such a tick, its re-send, its memory once dropped.
func TestOldFormatTicks(t *testing.T) {
	opts, clock := clockedOptions(t)
	opts.EZMaxQueue = 2
	db, err := pebble.Open(opts.Dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now().UnixNano()
	oldTicks := []string{"3f1c9a52-6a0e-4d1b-9a43-0d6f1c2b7e11", "9b2e44c1-0c7d-4e55-8a31-5f0e2d7c6b10"}
	b := db.NewBatch()
	for i, tick := range oldTicks {
		seq := uint64(i + 1)
		_ = b.Set(queueKey(nil, "u-ch", seq), encodeMessage(nil, now, []byte(tick), []byte(fmt.Sprint("m", seq))), nil)
		_ = b.Set(tickKey(nil, "u-ch", []byte(tick)), encodeTick(nil, seq, now), nil)
	}
	_ = b.Set(metaKey(nil, "u-ch"), encodeMeta(nil, 1, 2), nil)
	if err := db.Apply(b, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openTest(t, opts)
	if got := bodies(mustRead(t, s, "u-ch", []byte(oldTicks[0]), 0)); got != "m2|cursor=2" {
		t.Fatalf("read from an old tick: %s", got)
	}
	if r := write(t, s, msg("u-ch", oldTicks[1], "m2")); !r.Duplicate || r.Msg.Seq != 2 {
		t.Fatalf("re-send of an old tick: %+v, want a duplicate of seq 2", r)
	}
	genWrite(t, s, "u-ch", "m3") // drops m1 and m2 (EZMaxQueue 2)
	genWrite(t, s, "u-ch", "m4")
	if got := bodies(mustRead(t, s, "u-ch", []byte(oldTicks[0]), 0)); got != "m3,m4|cursor=4 gap" {
		t.Fatalf("read from a dropped old tick: %s", got)
	}
}
