package persist

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// cfDoneFunc adapts a function to CFCompletion for tests.
type cfDoneFunc func(CFPushResult)

func (f cfDoneFunc) CFPushDone(r CFPushResult) { f(r) }

// push performs one CFPushTo and waits for its completion.
func push(t testing.TB, s *Store, p CFPush) CFPushResult {
	t.Helper()
	ch := make(chan CFPushResult, 1)
	s.CFPushTo(p, cfDoneFunc(func(r CFPushResult) { ch <- r }))
	return <-ch
}

// cfAuto is a push that lets the store assign its id.
func cfAuto(topic, text string) CFPush {
	return CFPush{Topic: topic, Text: []byte(text)}
}

// cfGiven is a push with a push_id.
func cfGiven(topic string, id uint64, text string) CFPush {
	return CFPush{Topic: topic, ID: id, HasID: true, Text: []byte(text)}
}

// describeCF renders a push outcome as "id N", "dup N", "conflict",
// "secret replay", "nonce reused", "revoked" or the error, for compact
// asserts.
func describeCF(r CFPushResult) string {
	switch {
	case errors.Is(r.Err, ErrPushConflict):
		return "conflict"
	case errors.Is(r.Err, ErrSecretReplay):
		return "secret replay"
	case errors.Is(r.Err, ErrNonceReused):
		return "nonce reused"
	case errors.Is(r.Err, ErrRevoked):
		return "revoked"
	case r.Err != nil:
		return r.Err.Error()
	case r.Duplicate:
		return fmt.Sprint("dup ", r.Msg.ID)
	}
	return fmt.Sprint("id ", r.Msg.ID)
}

func mustPush(t testing.TB, s *Store, p CFPush) uint64 {
	t.Helper()
	r := push(t, s, p)
	if r.Err != nil || r.Duplicate {
		t.Fatalf("push %+v: %s", p, describeCF(r))
	}
	return r.Msg.ID
}

// batchMixed issues ops (EZWrite or CFPush values) while the committer is
// held, so that they share one batch, and describes each outcome.
func batchMixed(t *testing.T, s *Store, ops ...any) []string {
	t.Helper()
	out := make([]string, len(ops))
	inOneBatch(t, s, func(wg *sync.WaitGroup) {
		for i, op := range ops {
			wg.Add(1)
			switch op := op.(type) {
			case EZWrite:
				s.EZWrite(op, func(r EZWriteResult) { out[i] = "ez " + describe(r, op); wg.Done() })
			case CFPush:
				s.CFPushTo(op, cfDoneFunc(func(r CFPushResult) { out[i] = describeCF(r); wg.Done() }))
			default:
				t.Fatalf("op %T", op)
			}
		}
	})
	return out
}

func TestCFAssignedIDs(t *testing.T) {
	s := openTest(t, testOptions(t, ""))
	if s.CFLast([]byte("u/a")) != 0 {
		t.Fatal("CFLast of a new topic")
	}
	var lastAtDone uint64
	ch := make(chan CFPushResult, 1)
	s.CFPushTo(cfAuto("u/a", "one"), cfDoneFunc(func(r CFPushResult) { lastAtDone = s.CFLast([]byte("u/a")); ch <- r }))
	first := <-ch
	if first.Err != nil || first.Duplicate || first.Msg.ID != 1 || string(first.Msg.Text) != "one" || first.Msg.Time == 0 {
		t.Fatalf("first push %+v", first)
	}
	if lastAtDone != 1 {
		t.Fatalf("at completion CFLast = %d: not yet published", lastAtDone)
	}
	var got []string
	for _, p := range []CFPush{
		cfAuto("u/a", "two"),
		cfGiven("u/a", 10, "ten"),
		cfAuto("u/a", "eleven"),
		cfAuto("u/b", "other topic"),
		cfGiven("u/b", 2, "given next"),
	} {
		got = append(got, describeCF(push(t, s, p)))
	}
	if want := "id 2,id 10,id 11,id 1,id 2"; strings.Join(got, ",") != want {
		t.Fatalf("ids %s, want %s", strings.Join(got, ","), want)
	}
	if s.CFLast([]byte("u/a")) != 11 || s.CFLast([]byte("u/b")) != 2 || s.CFLast([]byte("u/c")) != 0 {
		t.Fatalf("CFLast a=%d b=%d", s.CFLast([]byte("u/a")), s.CFLast([]byte("u/b")))
	}
	if st := s.Stats(); st.CFPushes != 6 || st.CFDuplicates != 0 || st.CFConflicts != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCFGivenIDRules walks CF-P-04/06 on one topic, one push at a time.
func TestCFGivenIDRules(t *testing.T) {
	opts, clock := clockedOptions(t)
	s := openTest(t, opts)
	for i, step := range []struct {
		advance time.Duration
		p       CFPush
		want    string
	}{
		{0, cfGiven("u/a", 0, "zero"), "conflict"}, // 0 is never above last
		{0, cfGiven("u/a", 5, "five"), "id 5"},
		{0, cfGiven("u/a", 5, "five"), "dup 5"},
		{0, cfGiven("u/a", 5, "FIVE"), "conflict"},
		{0, cfGiven("u/a", 4, "four"), "conflict"}, // below last, never accepted
		{0, cfGiven("u/a", 0, "zero"), "conflict"},
		{0, cfAuto("u/a", "six"), "id 6"},
		{0, cfGiven("u/a", 6, "six"), "dup 6"},
		{0, cfGiven("u/a", 7, "seven"), "id 7"},
		{9 * time.Minute, cfGiven("u/a", 5, "five"), "dup 5"}, // still retained
		{0, cfGiven("u/a", 20, "twenty"), "id 20"},
		{time.Minute + time.Second, cfGiven("u/a", 5, "five"), "conflict"}, // older than 10 min: no longer retained
		{0, cfGiven("u/a", 7, "seven"), "conflict"},                        // nor 7
		{0, cfGiven("u/a", 20, "twenty"), "dup 20"},                        // 1 min old
		{0, cfGiven("u/a", 1<<64-1, "max"), "conflict"},
		{0, cfGiven("u/a", 1<<63, "above"), "conflict"}, // CF-P-04: ids are 1..2^63-1
		{0, cfGiven("u/a", 1<<63-1, "max"), "id 9223372036854775807"},
		{0, cfAuto("u/a", "overflow"), "conflict"}, // no id left to assign
	} {
		clock.Advance(step.advance)
		r := push(t, s, step.p)
		if got := describeCF(r); got != step.want {
			t.Fatalf("step %d: push %d %q = %s, want %s", i, step.p.ID, step.p.Text, got, step.want)
		}
		if r.Duplicate && (string(r.Msg.Text) != string(step.p.Text) || &r.Msg.Text[0] == &step.p.Text[0]) {
			t.Fatalf("step %d: duplicate text %q must be a fresh copy of the retained one", i, r.Msg.Text)
		}
		if r.Err == nil && !r.Duplicate && &r.Msg.Text[0] != &step.p.Text[0] {
			t.Fatalf("step %d: an accepted push's Text is the caller's slice", i)
		}
	}
	if st := s.Stats(); st.CFPushes != 5 || st.CFDuplicates != 4 || st.CFConflicts != 9 {
		t.Fatalf("stats pushes %d dups %d conflicts %d", st.CFPushes, st.CFDuplicates, st.CFConflicts)
	}
}

// TestCFDuplicateKeepsRetainedMessage: a duplicate answers the retained
// push's time and secret flag, and appends nothing.
func TestCFDuplicateKeepsRetainedMessage(t *testing.T) {
	opts, clock := clockedOptions(t)
	s := openTest(t, opts)
	orig := push(t, s, CFPush{Topic: "u/a", ID: 3, HasID: true, Secret: true, Text: []byte("x")})
	clock.Advance(time.Second)
	dup := push(t, s, CFPush{Topic: "u/a", ID: 3, HasID: true, Text: []byte("x")})
	if !dup.Duplicate || dup.Msg.Time != orig.Msg.Time || !dup.Msg.Secret || dup.Msg.ID != 3 {
		t.Fatalf("duplicate %+v, original %+v", dup, orig)
	}
	if got := cfIDs(mustCFRead(t, s, "u/a", 0, 0, 0)); got != "3|cursor=3 last=3" {
		t.Fatalf("after duplicate %s", got)
	}
}

func TestCFPushValidation(t *testing.T) {
	s := openTest(t, testOptions(t, ""))
	for _, topic := range []string{"", "u/a\x00b", strings.Repeat("x", 256)} {
		r := push(t, s, cfAuto(topic, "x"))
		if r.Err == nil || errors.Is(r.Err, ErrPushConflict) {
			t.Errorf("topic %q: %+v", topic, r)
		}
	}
	if st := s.Stats(); st.Batches != 0 {
		t.Fatalf("invalid pushes reached the committer: %+v", st)
	}
	_ = s.Close()
	if r := push(t, s, cfAuto("u/a", "x")); !errors.Is(r.Err, ErrClosed) {
		t.Fatalf("push after close %+v", r)
	}
}

// TestCFSameIDInOneBatch: a push sees the pushes before it in its own
// batch, EZ writes and CF pushes share that batch and its order.
func TestCFSameIDInOneBatch(t *testing.T) {
	opts, clock := clockedOptions(t)
	s := openTest(t, opts)
	mustPush(t, s, cfGiven("u/a", 3, "three"))
	mustPush(t, s, cfGiven("u/old", 1, "old"))
	clock.Advance(DefaultCFRetain + time.Second) // u/old 1 and u/a 3 expire
	got := batchMixed(t, s,
		cfGiven("u/a", 7, "x"),
		msg("u-ch", "t1", "ez"),
		cfGiven("u/a", 7, "x"),
		cfGiven("u/a", 7, "y"),
		cfAuto("u/a", "eight"),
		cfGiven("u/a", 6, "never"),
		cfGiven("u/a", 3, "three"), // on disk but expired
		cfGiven("u/new", 2, "two"),
		cfGiven("u/new", 2, "two"),
		cfAuto("u/new", "three"),
		cfGiven("u/new", 1, "one"),
		msg("u-ch", "t1", "ez"),
		cfGiven("u/old", 1, "old"),
		cfAuto("u/old", "two"),
	)
	want := []string{"id 7", "ez seq 1", "dup 7", "conflict", "id 8", "conflict", "conflict",
		"id 2", "dup 2", "id 3", "conflict", "ez dup 1", "conflict", "id 2"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("batch\n got %s\nwant %s", strings.Join(got, ","), strings.Join(want, ","))
	}
	if s.CFLast([]byte("u/a")) != 8 || s.CFLast([]byte("u/new")) != 3 || s.CFLast([]byte("u/old")) != 2 || s.EZLastSeq("u-ch") != 1 {
		t.Fatal("published state after the batch")
	}
	if got := cfIDs(mustCFRead(t, s, "u/a", 0, 0, 0)); got != "7,8|cursor=8 last=8 gap" {
		t.Fatalf("u/a after batch %s", got)
	}
}

// TestCFLastSurvivesReopen: last, pushes and duplicates survive a restart.
func TestCFLastSurvivesReopen(t *testing.T) {
	opts := testOptions(t, "")
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	mustPush(t, s, cfAuto("u/a", "one"))
	mustPush(t, s, cfGiven("u/a", 40, "forty"))
	mustPush(t, s, cfAuto("u/b", "b"))
	push(t, s, cfGiven("u/c", 0, "only a conflict"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, opts)
	if s.CFLast([]byte("u/a")) != 40 || s.CFLast([]byte("u/b")) != 1 || s.CFLast([]byte("u/c")) != 0 {
		t.Fatalf("after reopen a=%d b=%d c=%d", s.CFLast([]byte("u/a")), s.CFLast([]byte("u/b")), s.CFLast([]byte("u/c")))
	}
	if got := describeCF(push(t, s, cfGiven("u/a", 40, "forty"))); got != "dup 40" {
		t.Fatalf("re-send after reopen %s", got)
	}
	if got := describeCF(push(t, s, cfAuto("u/a", "next"))); got != "id 41" {
		t.Fatalf("assigned after reopen %s", got)
	}
	if got := cfIDs(mustCFRead(t, s, "u/a", 0, 0, 0)); got != "1,40,41|cursor=41 last=41" {
		t.Fatalf("read after reopen %s", got)
	}
}

// TestCFPushAllocs: inside persist an accepted push to an existing topic
// allocates nothing, and an EZ write still allocates what it did.
func TestCFPushAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool is randomised under -race")
	}
	opts := testOptions(t, "")
	opts.Sync = SyncNone // the allocation count, not the disk, is measured
	s := openTest(t, opts)
	mustPush(t, s, cfAuto("u/a", "warm"))
	p := cfAuto("u/a", "a push of some length")
	if n := cfPushAllocs(t, s, func() CFPush { return p }); n > 0 {
		t.Fatalf("CF push: %v allocs, budget 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = s.CFLast([]byte("u/a")) }); n != 0 {
		t.Fatalf("CFLast: %v allocs", n)
	}
}

// TestCFIDCeiling: CF-P-04's ids end at 2^63-1. Once it was accepted, a
// push without push_id is a conflict and nothing else about the topic
// changes: the retained push re-sent is still a duplicate, reads and the
// last id are as before, across a reopen too. An id above the ceiling is
// a conflict even when the topic is far below it.
func TestCFIDCeiling(t *testing.T) {
	opts := testOptions(t, "")
	s := openTest(t, opts)
	if got := describeCF(push(t, s, cfGiven("u/b", MaxPushID+1, "above"))); got != "conflict" {
		t.Fatalf("id 2^63 on an empty topic: %s", got)
	}
	if s.CFLast([]byte("u/b")) != 0 {
		t.Fatal("a refused id moved last")
	}
	mustPush(t, s, cfAuto("u/a", "one"))
	if got := describeCF(push(t, s, cfGiven("u/a", MaxPushID, "max"))); got != "id 9223372036854775807" {
		t.Fatalf("id 2^63-1: %s", got)
	}
	check := func(when string) {
		t.Helper()
		for _, tc := range []struct {
			p    CFPush
			want string
		}{
			{cfAuto("u/a", "next"), "conflict"},
			{cfGiven("u/a", MaxPushID+1, "next"), "conflict"},
			{cfGiven("u/a", MaxPushID, "max"), "dup 9223372036854775807"},
			{cfGiven("u/a", MaxPushID, "other"), "conflict"},
		} {
			if got := describeCF(push(t, s, tc.p)); got != tc.want {
				t.Errorf("%s: push %d %q = %s, want %s", when, tc.p.ID, tc.p.Text, got, tc.want)
			}
		}
		if got := cfIDs(mustCFRead(t, s, "u/a", 0, 0, 0)); got != "1,9223372036854775807|cursor=9223372036854775807 last=9223372036854775807" {
			t.Errorf("%s: read %s", when, got)
		}
		if got := cfIDs(mustCFRead(t, s, "u/a", MaxPushID, 0, 0)); got != "|cursor=9223372036854775807 last=9223372036854775807" {
			t.Errorf("%s: read after the last id %s", when, got)
		}
	}
	check("open")
	if got := batchMixed(t, s, cfAuto("u/a", "x"), cfGiven("u/a", MaxPushID, "max"), cfAuto("u/a", "y")); strings.Join(got, ",") != "conflict,dup 9223372036854775807,conflict" {
		t.Fatalf("in one batch: %v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, opts)
	check("reopened")
}

// cfPushAllocs is the allocations per accepted push of next(), measured
// over 500 pushes.
func cfPushAllocs(t *testing.T, s *Store, next func() CFPush) float64 {
	t.Helper()
	done := make(chan CFPushResult, 1)
	var comp CFCompletion = cfDoneFunc(func(r CFPushResult) { done <- r })
	return testing.AllocsPerRun(500, func() {
		s.CFPushTo(next(), comp)
		if r := <-done; r.Err != nil {
			t.Fatal(r.Err)
		}
	})
}
