package persist

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

func mustCFRead(t testing.TB, s *Store, topic string, after uint64, notBefore int64, limit int) CFReadResult {
	t.Helper()
	return mustCFReadLim(t, s, topic, after, notBefore, ReadLimit{Messages: limit})
}

func mustCFReadLim(t testing.TB, s *Store, topic string, after uint64, notBefore int64, lim ReadLimit) CFReadResult {
	t.Helper()
	r, err := s.CFRead([]byte(topic), after, notBefore, lim)
	if err != nil {
		t.Fatalf("CFRead(%s, %d): %v", topic, after, err)
	}
	return r
}

// cfIDs renders a read as "1,2|cursor=N last=M gap more" for compact
// asserts.
func cfIDs(r CFReadResult) string {
	var b bytes.Buffer
	for i, m := range r.Pushes {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, m.ID)
	}
	fmt.Fprintf(&b, "|cursor=%d last=%d", r.Cursor, r.Last)
	if r.Gap {
		b.WriteString(" gap")
	}
	if r.More {
		b.WriteString(" more")
	}
	return b.String()
}

// countKeys counts the keys of one kind on disk.
func countKeys(t *testing.T, s *Store, kind byte) int {
	t.Helper()
	lo, hi := kindBounds(kind)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCFReadWindows(t *testing.T) {
	clock := newFakeClock()
	t0 := clock.Now().UnixNano()
	opts := testOptions(t, "")
	opts.Now = clock.Now
	s := openTest(t, opts)
	for i, p := range []CFPush{
		cfAuto("u/a", "p1"),
		{Topic: "u/a", Secret: true, Text: []byte("p2")},
		cfAuto("u/a", "p3"),
		cfGiven("u/a", 5, "p5"), // 4 never exists
		cfAuto("u/a", ""),
	} {
		if i > 0 {
			clock.Advance(time.Minute)
		}
		mustPush(t, s, p)
	}
	m := int64(time.Minute)
	for _, tc := range []struct {
		after     uint64
		notBefore int64
		limit     int
		want      string
	}{
		{0, 0, 0, "1,2,3,5,6|cursor=6 last=6"},
		{2, 0, 0, "3,5,6|cursor=6 last=6"},
		{3, 0, 0, "5,6|cursor=6 last=6"}, // 4 was never accepted: no gap
		{4, 0, 0, "5,6|cursor=6 last=6"},
		{6, 0, 0, "|cursor=6 last=6"},
		{9, 0, 0, "|cursor=9 last=6"},
		{0, 0, 2, "1,2|cursor=2 last=6 more"},
		{2, 0, 2, "3,5|cursor=5 last=6 more"},
		{3, 0, 2, "5,6|cursor=6 last=6"},
		{0, 0, -1, "1,2,3,5,6|cursor=6 last=6"},
		{0, t0 + m, 0, "2,3,5,6|cursor=6 last=6 gap"},
		{1, t0 + m, 0, "2,3,5,6|cursor=6 last=6"},
		{0, t0 + 2*m + m/2, 1, "5|cursor=5 last=6 gap more"},
		{0, t0 + 10*m, 0, "|cursor=0 last=6 gap"},
		{3, t0 + 10*m, 0, "|cursor=3 last=6 gap"},
		{6, t0 + 10*m, 0, "|cursor=6 last=6"},
	} {
		if got := cfIDs(mustCFRead(t, s, "u/a", tc.after, tc.notBefore, tc.limit)); got != tc.want {
			t.Errorf("CFRead(after %d, notBefore t0%+v, limit %d) = %s, want %s",
				tc.after, time.Duration(tc.notBefore-t0), tc.limit, got, tc.want)
		}
	}
	if got := cfIDs(mustCFRead(t, s, "u/none", 3, 0, 0)); got != "|cursor=3 last=0" {
		t.Errorf("unknown topic %s", got)
	}

	r := mustCFRead(t, s, "u/a", 0, 0, 0)
	if len(r.Pushes) != 5 {
		t.Fatalf("read %s", cfIDs(r))
	}
	for i, want := range []struct {
		text   string
		secret bool
	}{{"p1", false}, {"p2", true}, {"p3", false}, {"p5", false}, {"", false}} {
		p := r.Pushes[i]
		if string(p.Text) != want.text || p.Secret != want.secret || p.Time != t0+int64(i)*m {
			t.Fatalf("push %d = %+v", i, p)
		}
	}
	// The caller owns the result: scribbling on it changes nothing stored.
	r.Pushes[0].Text[0] = 'X'
	r.Pushes[0].Text = append(r.Pushes[0].Text, "tail"...)
	if again := mustCFRead(t, s, "u/a", 0, 0, 2); string(again.Pushes[0].Text) != "p1" || string(again.Pushes[1].Text) != "p2" {
		t.Fatalf("stored texts changed: %q %q", again.Pushes[0].Text, again.Pushes[1].Text)
	}

	// Pushes older than CFRetain are gone for readers before any sweep.
	clock.Advance(6*time.Minute + 1) // p1 is 10 min + 1 ns old, p2 exactly 10 min
	if got := cfIDs(mustCFRead(t, s, "u/a", 0, 0, 0)); got != "2,3,5,6|cursor=6 last=6 gap" {
		t.Errorf("after p1 expired %s", got)
	}
	if got := cfIDs(mustCFRead(t, s, "u/a", 1, 0, 0)); got != "2,3,5,6|cursor=6 last=6" {
		t.Errorf("after p1 expired, from 1: %s", got)
	}
}

// TestCFRetentionSweep: the sweeper deletes expired pushes, and both the
// highest dropped id (for Gap) and the last id survive reopening, even
// once every push is gone.
func TestCFRetentionSweep(t *testing.T) {
	opts, clock := clockedOptions(t)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	mustPush(t, s, cfAuto("u/a", "one"))
	mustPush(t, s, cfAuto("u/a", "two"))
	mustPush(t, s, cfAuto("u/b", "b one"))
	clock.Advance(6 * time.Minute)
	mustPush(t, s, cfAuto("u/a", "three"))
	clock.Advance(5 * time.Minute) // one, two and b one are 11 min old

	if got := cfIDs(mustCFRead(t, s, "u/a", 0, 0, 0)); got != "3|cursor=3 last=3 gap" {
		t.Fatalf("before sweep %s", got)
	}
	s.sweep()
	if st := s.Stats(); st.CFDropped != 3 {
		t.Fatalf("CFDropped = %d, want 3", st.CFDropped)
	}
	if n := countKeys(t, s, kindCFPush); n != 1 {
		t.Fatalf("%d push keys after sweep, want 1", n)
	}
	check := func(when string) {
		t.Helper()
		for _, tc := range []struct {
			topic string
			after uint64
			want  string
		}{
			{"u/a", 0, "3|cursor=3 last=3 gap"},
			{"u/a", 1, "3|cursor=3 last=3 gap"},
			{"u/a", 2, "3|cursor=3 last=3"},
			{"u/b", 0, "|cursor=0 last=1 gap"},
			{"u/b", 1, "|cursor=1 last=1"},
		} {
			if got := cfIDs(mustCFRead(t, s, tc.topic, tc.after, 0, 0)); got != tc.want {
				t.Errorf("%s: %s after %d = %s, want %s", when, tc.topic, tc.after, got, tc.want)
			}
		}
		if got := describeCF(push(t, s, cfGiven("u/a", 2, "two"))); got != "conflict" {
			t.Errorf("%s: re-send of a dropped push %s", when, got)
		}
	}
	check("after sweep")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	check("after reopen")

	clock.Advance(10 * time.Minute) // three expires too
	s.sweep()
	if n := countKeys(t, s, kindCFPush); n != 0 {
		t.Fatalf("%d push keys after the last sweep", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, opts)
	if s.CFLast([]byte("u/a")) != 3 || s.CFLast([]byte("u/b")) != 1 {
		t.Fatalf("last after every push expired: a=%d b=%d", s.CFLast([]byte("u/a")), s.CFLast([]byte("u/b")))
	}
	if got := describeCF(push(t, s, cfAuto("u/a", "four"))); got != "id 4" {
		t.Fatalf("id after every push expired %s: ids must never be reused", got)
	}
	if got := cfIDs(mustCFRead(t, s, "u/a", 2, 0, 0)); got != "4|cursor=4 last=4 gap" {
		t.Fatalf("final read %s", got)
	}
	if got := cfIDs(mustCFRead(t, s, "u/a", 3, 0, 0)); got != "4|cursor=4 last=4" {
		t.Fatalf("final read from 3 %s", got)
	}
}

// TestCFSweeperGoroutine: the sweeper deletes expired pushes on its own.
func TestCFSweeperGoroutine(t *testing.T) {
	opts, clock := clockedOptions(t)
	opts.SweepInterval = time.Millisecond
	s := openTest(t, opts)
	mustPush(t, s, cfAuto("u/a", "one"))
	clock.Advance(DefaultCFRetain + time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().CFDropped != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the sweeper never dropped the expired push")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCFReadAllocs: a read costs the result (Pushes slice and one chunk
// of texts) and nothing per push; reading nothing costs nothing.
func TestCFReadAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool is randomised under -race")
	}
	s := openTest(t, testOptions(t, ""))
	for range 100 {
		mustPush(t, s, cfAuto("u/a", "a push text"))
	}
	topic := []byte("u/a")
	n := testing.AllocsPerRun(200, func() {
		if r, err := s.CFRead(topic, 80, 0, ReadLimit{}); err != nil || len(r.Pushes) != 20 {
			t.Fatalf("read %v %d", err, len(r.Pushes))
		}
	})
	if n > 2 {
		t.Fatalf("CFRead of 20 pushes: %v allocs, budget 2", n)
	}
	n = testing.AllocsPerRun(200, func() {
		if r, err := s.CFRead(topic, 100, 0, ReadLimit{}); err != nil || len(r.Pushes) != 0 {
			t.Fatalf("read %v %d", err, len(r.Pushes))
		}
		if r, err := s.CFRead([]byte("u/none"), 0, 0, ReadLimit{}); err != nil || len(r.Pushes) != 0 {
			t.Fatalf("read %v %d", err, len(r.Pushes))
		}
	})
	if n != 0 {
		t.Fatalf("CFRead of nothing: %v allocs", n)
	}
}
