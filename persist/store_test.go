package persist

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is an injectable Options.Now.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// clockedOptions are testOptions in a fresh directory whose time is the
// returned fake clock.
func clockedOptions(t testing.TB) (Options, *fakeClock) {
	clock := newFakeClock()
	opts := testOptions(t, "")
	opts.Now = clock.Now
	return opts, clock
}

func testOptions(t testing.TB, dir string) Options {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	return Options{
		Dir:           dir,
		SweepInterval: -1,
		Logf:          t.Logf,
		// A loaded test machine may take seconds for an fsync: only the
		// stall tests, with their own clock, expect writes refused.
		StallTimeout: 10 * time.Minute,
	}
}

func openTest(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// write performs one EZWrite and waits for its completion.
func write(t testing.TB, s *Store, w EZWrite) EZWriteResult {
	t.Helper()
	ch := make(chan EZWriteResult, 1)
	s.EZWrite(w, func(r EZWriteResult) { ch <- r })
	return <-ch
}

func msg(qname, tick, body string) EZWrite {
	return EZWrite{QName: qname, Tick: []byte(tick), Body: []byte(body)}
}

func mustAppend(t testing.TB, s *Store, qname, tick, body string) uint64 {
	t.Helper()
	r := write(t, s, msg(qname, tick, body))
	if r.Err != nil || r.Duplicate {
		t.Fatalf("write %s/%s: %+v", qname, tick, r)
	}
	return r.Msg.Seq
}

func mustRead(t testing.TB, s *Store, qname string, tick []byte, limit int) ReadResult {
	t.Helper()
	r, err := s.EZRead(qname, tick, ReadLimit{Messages: limit})
	if err != nil {
		t.Fatalf("EZRead(%s, %q): %v", qname, tick, err)
	}
	return r
}

// ticks renders a read as "t1,t2|cursor=N gap more" for compact asserts.
func ticks(r ReadResult) string {
	var b bytes.Buffer
	for i, m := range r.Messages {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(m.Tick)
	}
	fmt.Fprintf(&b, "|cursor=%d", r.Cursor)
	if r.Gap {
		b.WriteString(" gap")
	}
	if r.More {
		b.WriteString(" more")
	}
	return b.String()
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		ok   bool
	}{
		{"defaults", Options{Dir: "x"}, true},
		{"no dir", Options{}, false},
		{"bad sync", Options{Dir: "x", Sync: 7}, false},
		{"negative queue", Options{Dir: "x", EZMaxQueue: -1}, false},
		{"negative age", Options{Dir: "x", EZMaxAge: -time.Second}, false},
		{"negative batch", Options{Dir: "x", MaxBatch: -1}, false},
		{"negative CF retention", Options{Dir: "x", CFRetain: -time.Second}, false},
		{"negative stall timeout", Options{Dir: "x", StallTimeout: -time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.EnsureDefaults().Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	o := (&Options{Dir: "x"}).EnsureDefaults()
	if o.EZMaxQueue != 1000 || o.EZMaxAge != 24*time.Hour || o.TickMemory != 7*24*time.Hour || o.MaxBatch != 4096 || o.CFRetain != 10*time.Minute || o.StallTimeout != 5*time.Second {
		t.Fatalf("defaults: %+v", o)
	}
}

func TestSeqOrderConcurrentWriters(t *testing.T) {
	opts := testOptions(t, "")
	opts.EZMaxQueue = 10000
	s := openTest(t, opts)
	const writers, perWriter = 8, 200
	type got struct {
		seq  uint64
		tick string
	}
	results := make([][]got, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				tick := fmt.Sprintf("w%d-%d", w, i)
				r := write(t, s, msg("u-ch", tick, tick))
				if r.Err != nil {
					t.Errorf("write: %v", r.Err)
					return
				}
				results[w] = append(results[w], got{r.Msg.Seq, tick})
			}
		}()
	}
	wg.Wait()
	seen := make(map[uint64]string)
	for w := range results {
		for i, g := range results[w] {
			if i > 0 && g.seq <= results[w][i-1].seq {
				t.Fatalf("writer %d: seq %d after %d", w, g.seq, results[w][i-1].seq)
			}
			if prev, dup := seen[g.seq]; dup {
				t.Fatalf("seq %d given to %s and %s", g.seq, prev, g.tick)
			}
			seen[g.seq] = g.tick
		}
	}
	if n := uint64(writers * perWriter); s.EZLastSeq("u-ch") != n || len(seen) != int(n) {
		t.Fatalf("last seq %d, distinct %d, want %d", s.EZLastSeq("u-ch"), len(seen), n)
	}
	r := mustRead(t, s, "u-ch", nil, 0)
	for i, m := range r.Messages {
		if m.Seq != uint64(i+1) || string(m.Tick) != seen[m.Seq] || !bytes.Equal(m.Tick, m.Body) {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
}

// TestGroupCommit: concurrent writers share commits.
func TestGroupCommit(t *testing.T) {
	s := openTest(t, testOptions(t, ""))
	const n = 2000
	var wg sync.WaitGroup
	before := s.Stats()
	for i := range n {
		wg.Add(1)
		s.EZWrite(msg(fmt.Sprintf("u-c%d", i%10), fmt.Sprint(i), "x"), func(r EZWriteResult) {
			if r.Err != nil {
				t.Errorf("write: %v", r.Err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	st := s.Stats()
	batches := st.Batches - before.Batches
	if st.WritesCommitted-before.WritesCommitted != n || st.BatchSizeSum-before.BatchSizeSum != n {
		t.Fatalf("stats %+v", st)
	}
	if batches >= n {
		t.Fatalf("%d writes took %d batches: no group commit", n, batches)
	}
	if st.SyncCount == 0 || st.SyncNanosSum == 0 {
		t.Fatalf("no sync recorded: %+v", st)
	}
	var hist uint64
	for _, c := range st.SyncLatency {
		hist += c
	}
	if hist != st.SyncCount {
		t.Fatalf("histogram counts %d, syncs %d", hist, st.SyncCount)
	}
	t.Logf("%d writes in %d batches", n, batches)
}

// holdCommitter makes the committer block once it has applied the group
// of one write, until the returned release is called, so that writes
// issued meanwhile land in one later group. It returns once that write
// is completed (the syncer completes it while the committer is held).
func holdCommitter(t *testing.T, s *Store) (release func()) {
	t.Helper()
	entered, hold, done := make(chan struct{}), make(chan struct{}), make(chan EZWriteResult, 1)
	s.testHold.Store(&holdHook{qname: "hold-ch", wait: func() {
		close(entered)
		<-hold
	}})
	s.EZWrite(msg("hold-ch", fmt.Sprint(time.Now().UnixNano()), ""), func(r EZWriteResult) { done <- r })
	<-entered
	if r := <-done; r.Err != nil {
		t.Fatalf("the write holding the committer: %v", r.Err)
	}
	return func() { close(hold) }
}

// batchWrites issues ws while the committer is held, so they share one
// batch, and returns their results in order.
func batchWrites(t *testing.T, s *Store, ws ...EZWrite) []EZWriteResult {
	t.Helper()
	res := make([]EZWriteResult, len(ws))
	inOneBatch(t, s, func(wg *sync.WaitGroup) {
		for i, w := range ws {
			wg.Add(1)
			s.EZWrite(w, func(r EZWriteResult) { res[i] = r; wg.Done() })
		}
	})
	return res
}

// inOneBatch runs issue while the committer is held, so that everything
// it queues shares one batch, waits for wg and checks that one batch it
// was.
func inOneBatch(t *testing.T, s *Store, issue func(wg *sync.WaitGroup)) {
	t.Helper()
	release := holdCommitter(t, s)
	before := s.Stats().Batches
	var wg sync.WaitGroup
	issue(&wg)
	release()
	wg.Wait()
	if got := s.Stats().Batches - before; got != 1 {
		t.Fatalf("writes took %d batches, want 1", got)
	}
}

func TestIdempotence(t *testing.T) {
	opts := testOptions(t, "")
	opts.EZMaxQueue = 3
	s := openTest(t, opts)

	var lastAtDone uint64
	ch := make(chan EZWriteResult, 1)
	s.EZWrite(msg("u-ch", "t1", "hello"), func(r EZWriteResult) { lastAtDone = s.EZLastSeq("u-ch"); ch <- r })
	a := <-ch
	if lastAtDone != a.Msg.Seq {
		t.Fatalf("at completion EZLastSeq = %d, want %d: not yet visible", lastAtDone, a.Msg.Seq)
	}
	if a.Err != nil || a.Duplicate || a.Msg.Seq != 1 {
		t.Fatalf("first write %+v", a)
	}
	dup := write(t, s, msg("u-ch", "t1", "hello"))
	if dup.Err != nil || !dup.Duplicate || dup.Msg.Seq != 1 || string(dup.Msg.Body) != "hello" || dup.Msg.Time != a.Msg.Time {
		t.Fatalf("re-send %+v", dup)
	}
	if c := write(t, s, msg("u-ch", "t1", "other")); !errors.Is(c.Err, ErrTickConflict) {
		t.Fatalf("conflict %+v", c)
	}
	if s.EZLastSeq("u-ch") != 1 {
		t.Fatalf("last seq %d after duplicate and conflict", s.EZLastSeq("u-ch"))
	}
	// Push t1 out by count: a re-send is then a new message.
	for _, tick := range []string{"t2", "t3", "t4"} {
		mustAppend(t, s, "u-ch", tick, "x")
	}
	again := write(t, s, msg("u-ch", "t1", "other"))
	if again.Err != nil || again.Duplicate || again.Msg.Seq != 5 {
		t.Fatalf("re-send after drop %+v", again)
	}
	if dup := write(t, s, msg("u-ch", "t1", "other")); !dup.Duplicate || dup.Msg.Seq != 5 {
		t.Fatalf("re-send of re-sent tick %+v", dup)
	}
	// After a flush, too.
	write(t, s, EZWrite{QName: "u-ch", Flush: true})
	if r := write(t, s, msg("u-ch", "t1", "third")); r.Duplicate || r.Msg.Seq != 6 {
		t.Fatalf("re-send after flush %+v", r)
	}
	st := s.Stats()
	if st.Duplicates != 2 || st.Conflicts != 1 || st.Flushes != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSameTickInOneBatch(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxQueue int
		ws       []EZWrite
		want     []string // per write: "seq N", "dup N", "conflict"
	}{
		{"duplicate", 10, []EZWrite{msg("u-a", "t", "x"), msg("u-a", "t", "x")}, []string{"seq 1", "dup 1"}},
		{"conflict", 10, []EZWrite{msg("u-a", "t", "x"), msg("u-a", "t", "y")}, []string{"seq 1", "conflict"}},
		{"other channel", 10, []EZWrite{msg("u-a", "t", "x"), msg("u-b", "t", "y")}, []string{"seq 1", "seq 1"}},
		{"flush between", 10, []EZWrite{msg("u-a", "t", "x"), {QName: "u-a", Flush: true}, msg("u-a", "t", "x")}, []string{"seq 1", "flush", "seq 2"}},
		{"dropped by count in batch", 1, []EZWrite{msg("u-a", "t", "x"), msg("u-a", "s", "x"), msg("u-a", "t", "x")}, []string{"seq 1", "seq 2", "seq 3"}},
		{"many ticks (map index)", 100, func() []EZWrite {
			var ws []EZWrite
			for i := range 20 {
				ws = append(ws, msg("u-a", fmt.Sprint(i), "x"))
			}
			return append(ws, msg("u-a", "3", "x"), msg("u-a", "17", "y"))
		}(), func() []string {
			var want []string
			for i := range 20 {
				want = append(want, fmt.Sprint("seq ", i+1))
			}
			return append(want, "dup 4", "conflict")
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions(t, "")
			opts.EZMaxQueue = tc.maxQueue
			s := openTest(t, opts)
			res := batchWrites(t, s, tc.ws...)
			for i, r := range res {
				var got string
				switch {
				case errors.Is(r.Err, ErrTickConflict):
					got = "conflict"
				case r.Err != nil:
					got = r.Err.Error()
				case tc.ws[i].Flush:
					got = "flush"
				case r.Duplicate:
					got = fmt.Sprint("dup ", r.Msg.Seq)
				default:
					got = fmt.Sprint("seq ", r.Msg.Seq)
				}
				if got != tc.want[i] {
					t.Errorf("write %d: %s, want %s", i, got, tc.want[i])
				}
			}
		})
	}
}

func TestFlushKeepsSeq(t *testing.T) {
	s := openTest(t, testOptions(t, ""))
	for i := range 3 {
		mustAppend(t, s, "u-ch", fmt.Sprint(i), "x")
	}
	if r := write(t, s, EZWrite{QName: "u-ch", Flush: true}); r.Err != nil || r.Msg.Seq != 0 {
		t.Fatalf("flush %+v", r)
	}
	if s.EZQueued("u-ch") != 0 || s.EZLastSeq("u-ch") != 3 {
		t.Fatalf("after flush queued %d last %d", s.EZQueued("u-ch"), s.EZLastSeq("u-ch"))
	}
	if got := ticks(mustRead(t, s, "u-ch", nil, 0)); got != "|cursor=3" {
		t.Fatalf("read after flush %s", got)
	}
	if seq := mustAppend(t, s, "u-ch", "next", "x"); seq != 4 {
		t.Fatalf("seq after flush %d", seq)
	}
	// Flushing a channel never written creates it empty.
	if r := write(t, s, EZWrite{QName: "u-new", Flush: true}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if s.EZLastSeq("u-new") != 0 || s.EZQueued("u-new") != 0 {
		t.Fatal("flush of new channel")
	}
	if st := s.Stats(); st.DroppedByFlush != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRetentionByCount(t *testing.T) {
	opts := testOptions(t, "")
	opts.EZMaxQueue = 3
	s := openTest(t, opts)
	for i := 1; i <= 5; i++ {
		mustAppend(t, s, "u-ch", fmt.Sprint("t", i), "x")
	}
	if got := ticks(mustRead(t, s, "u-ch", nil, 0)); got != "t3,t4,t5|cursor=5" {
		t.Fatalf("read %s", got)
	}
	if s.EZQueued("u-ch") != 3 || s.Stats().DroppedByRetention != 2 {
		t.Fatalf("queued %d stats %+v", s.EZQueued("u-ch"), s.Stats())
	}
	// One batch appending more than the cap keeps only the newest.
	var ws []EZWrite
	for i := 6; i <= 12; i++ {
		ws = append(ws, msg("u-ch", fmt.Sprint("t", i), "x"))
	}
	batchWrites(t, s, ws...)
	if got := ticks(mustRead(t, s, "u-ch", nil, 0)); got != "t10,t11,t12|cursor=12" {
		t.Fatalf("read %s", got)
	}
}

func TestRetentionByAge(t *testing.T) {
	clock := newFakeClock()
	opts := testOptions(t, "")
	opts.EZMaxAge = time.Hour
	opts.TickMemory = 3 * time.Hour
	opts.Now = clock.Now
	s := openTest(t, opts)

	mustAppend(t, s, "u-ch", "old1", "x")
	mustAppend(t, s, "u-ch", "old2", "x")
	clock.Advance(30 * time.Minute)
	mustAppend(t, s, "u-ch", "new", "x")
	clock.Advance(45 * time.Minute) // old* are 75 min old, new 45

	// Hidden at read time before any sweep.
	if got := ticks(mustRead(t, s, "u-ch", nil, 0)); got != "new|cursor=3" {
		t.Fatalf("read before sweep %s", got)
	}
	if got := ticks(mustRead(t, s, "u-ch", []byte("old1"), 0)); got != "new|cursor=3 gap" {
		t.Fatalf("read from expired tick %s", got)
	}
	if got := ticks(mustRead(t, s, "u-ch", []byte("old2"), 0)); got != "new|cursor=3" {
		t.Fatalf("read from expired tick right before the first kept %s", got)
	}
	// An expired tick is no longer queued: a re-send appends.
	if r := write(t, s, msg("u-ch", "old1", "x")); r.Duplicate || r.Msg.Seq != 4 {
		t.Fatalf("re-send of expired %+v", r)
	}
	s.sweep()
	if s.EZQueued("u-ch") != 2 || s.Stats().DroppedByRetention != 2 {
		t.Fatalf("after sweep queued %d stats %+v", s.EZQueued("u-ch"), s.Stats())
	}
	if got := ticks(mustRead(t, s, "u-ch", []byte("old2"), 0)); got != "new,old1|cursor=4" {
		t.Fatalf("read after sweep %s", got)
	}
	// Everything expires; ticks are remembered until TickMemory.
	clock.Advance(2 * time.Hour)
	s.sweep()
	if s.EZQueued("u-ch") != 0 || s.EZLastSeq("u-ch") != 4 {
		t.Fatalf("queued %d last %d", s.EZQueued("u-ch"), s.EZLastSeq("u-ch"))
	}
	if got := ticks(mustRead(t, s, "u-ch", []byte("new"), 0)); got != "|cursor=4 gap" {
		t.Fatalf("remembered tick %s", got)
	}
	clock.Advance(2 * time.Hour) // "new" written 5h15 ago > TickMemory
	if got := ticks(mustRead(t, s, "u-ch", []byte("new"), 0)); got != "|cursor=4" {
		t.Fatalf("forgotten tick at read time %s", got)
	}
	s.sweep()
	// old2 was forgotten by the previous sweep (written 3h15 before it),
	// new and old1 (its memory rewritten by the re-send) by this one.
	if got := s.Stats().TicksForgotten; got != 3 {
		t.Fatalf("ticks forgotten %d, want 3", got)
	}
	if got := ticks(mustRead(t, s, "u-ch", []byte("old1"), 0)); got != "|cursor=4" {
		t.Fatalf("old1 after tick sweep %s", got)
	}
	if seq := mustAppend(t, s, "u-ch", "new", "y"); seq != 5 {
		t.Fatalf("seq after everything expired %d", seq)
	}
}

func TestReadRules(t *testing.T) {
	s := openTest(t, testOptions(t, ""))
	for i := 1; i <= 5; i++ {
		mustAppend(t, s, "u-ch", fmt.Sprint("t", i), fmt.Sprint("body", i))
	}
	mustAppend(t, s, "u-ch", "null", "tick named null")
	for _, tc := range []struct {
		name  string
		tick  []byte
		limit int
		want  string
	}{
		{"nil tick", nil, 0, "t1,t2,t3,t4,t5,null|cursor=6"},
		{"empty tick", []byte{}, 0, "t1,t2,t3,t4,t5,null|cursor=6"},
		{"null means none", []byte("null"), 0, "t1,t2,t3,t4,t5,null|cursor=6"},
		{"unknown tick", []byte("nope"), 0, "t1,t2,t3,t4,t5,null|cursor=6"},
		{"found tick", []byte("t2"), 0, "t3,t4,t5,null|cursor=6"},
		{"newest tick", []byte("t5"), 0, "null|cursor=6"},
		{"limit", nil, 2, "t1,t2|cursor=2 more"},
		{"limit after tick", []byte("t2"), 3, "t3,t4,t5|cursor=5 more"},
		{"limit exactly rest", []byte("t3"), 3, "t4,t5,null|cursor=6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ticks(mustRead(t, s, "u-ch", tc.tick, tc.limit)); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
	// Body, seq and ownership of the result.
	r := mustRead(t, s, "u-ch", []byte("t4"), 1)
	if len(r.Messages) != 1 || string(r.Messages[0].Body) != "body5" || r.Messages[0].Seq != 5 || r.Messages[0].Time == 0 {
		t.Fatalf("message %+v", r.Messages)
	}
	r.Messages[0].Tick = append(r.Messages[0].Tick, "!"...) // must not clobber Body
	if string(r.Messages[0].Body) != "body5" {
		t.Fatal("Tick and Body overlap")
	}
	r = mustRead(t, s, "u-ch", []byte("t1"), 0)
	r.Messages[0].Body = append(r.Messages[0].Body, "!!!!"...) // must not clobber the next message
	if string(r.Messages[1].Tick) != "t3" || string(r.Messages[1].Body) != "body3" {
		t.Fatalf("messages overlap: %q %q", r.Messages[1].Tick, r.Messages[1].Body)
	}
	// Newest tick: nothing yet, Cursor is the tick's seq.
	if got := ticks(mustRead(t, s, "u-ch", []byte("null-but-not"), 0)); got != "t1,t2,t3,t4,t5,null|cursor=6" {
		t.Fatal(got)
	}
	mustAppend(t, s, "u-ch", "t7", "x")
	if got := ticks(mustRead(t, s, "u-ch", []byte("t7"), 0)); got != "|cursor=7" {
		t.Fatalf("newest %s", got)
	}
	// Never written channel.
	if got := ticks(mustRead(t, s, "u-none", []byte("t1"), 0)); got != "|cursor=0" {
		t.Fatalf("unknown channel %s", got)
	}
	// Seq cursors.
	for _, tc := range []struct {
		after uint64
		limit int
		want  string
	}{
		{0, 0, "t1,t2,t3,t4,t5,null,t7|cursor=7"},
		{5, 0, "null,t7|cursor=7"},
		{7, 0, "|cursor=7"},
		{99, 0, "|cursor=7"},
		{1, 2, "t2,t3|cursor=3 more"},
	} {
		r, err := s.EZReadAfter("u-ch", tc.after, ReadLimit{Messages: tc.limit})
		if err != nil {
			t.Fatal(err)
		}
		if got := ticks(r); got != tc.want {
			t.Errorf("EZReadAfter(%d, %d) = %s, want %s", tc.after, tc.limit, got, tc.want)
		}
	}
}

func TestGap(t *testing.T) {
	opts := testOptions(t, "")
	opts.EZMaxQueue = 3
	s := openTest(t, opts)
	for i := 1; i <= 5; i++ {
		mustAppend(t, s, "u-ch", fmt.Sprint("t", i), "x")
	}
	// Queued: t3 t4 t5. Dropped: t1 t2.
	for _, tc := range []struct {
		name string
		tick string
		want string
	}{
		{"dropped tick, later message dropped too", "t1", "t3,t4,t5|cursor=5 gap"},
		{"dropped tick right before the oldest kept", "t2", "t3,t4,t5|cursor=5"},
		{"unknown tick never gaps", "zzz", "t3,t4,t5|cursor=5"},
		{"queued tick", "t3", "t4,t5|cursor=5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ticks(mustRead(t, s, "u-ch", []byte(tc.tick), 0)); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		after uint64
		want  string
	}{
		{1, "t3,t4,t5|cursor=5 gap"},
		{2, "t3,t4,t5|cursor=5"},
		{0, "t3,t4,t5|cursor=5"}, // cursor 0 asks for everything: no gap
	} {
		r, _ := s.EZReadAfter("u-ch", tc.after, ReadLimit{})
		if got := ticks(r); got != tc.want {
			t.Errorf("EZReadAfter(%d) = %s, want %s", tc.after, got, tc.want)
		}
	}
	write(t, s, EZWrite{QName: "u-ch", Flush: true})
	for _, tc := range []struct{ tick, want string }{
		{"t5", "|cursor=5"}, // the newest was flushed: nothing after it was lost
		{"t4", "|cursor=5 gap"},
		{"zzz", "|cursor=5"},
	} {
		if got := ticks(mustRead(t, s, "u-ch", []byte(tc.tick), 0)); got != tc.want {
			t.Errorf("after flush, tick %s: %s, want %s", tc.tick, got, tc.want)
		}
	}
	mustAppend(t, s, "u-ch", "t6", "x")
	if got := ticks(mustRead(t, s, "u-ch", []byte("t4"), 0)); got != "t6|cursor=6 gap" {
		t.Errorf("flushed t4 then t6: %s", got)
	}
	if got := ticks(mustRead(t, s, "u-ch", []byte("t5"), 0)); got != "t6|cursor=6" {
		t.Errorf("flushed t5 then t6: %s", got)
	}
}

func TestReopen(t *testing.T) {
	clock := newFakeClock()
	opts := testOptions(t, "")
	opts.EZMaxQueue = 3
	opts.Now = clock.Now
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := s.AddAccount("alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetMaxListenersPerIP("alice", 7); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		mustAppend(t, s, "alice-ch", fmt.Sprint("t", i), fmt.Sprint("b", i))
	}
	mustAppend(t, s, "alice-flushed", "f1", "x")
	write(t, s, EZWrite{QName: "alice-flushed", Flush: true})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if r := write(t, s, msg("alice-ch", "late", "x")); !errors.Is(r.Err, ErrClosed) {
		t.Fatalf("write after close: %+v", r)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}

	s = openTest(t, opts)
	a, ok := s.AccountByName([]byte("alice"))
	acct.MaxListenersPerIP = 7
	if !ok || a != acct {
		t.Fatalf("account after reopen %+v, want %+v", a, acct)
	}
	if b, ok := s.AccountByAPIKey([]byte(acct.APIKey)); !ok || b != acct {
		t.Fatal("lookup by key after reopen")
	}
	if got := ticks(mustRead(t, s, "alice-ch", []byte("t1"), 0)); got != "t3,t4,t5|cursor=5 gap" {
		t.Fatalf("read after reopen %s", got)
	}
	if r := write(t, s, msg("alice-ch", "t4", "b4")); !r.Duplicate || r.Msg.Seq != 4 {
		t.Fatalf("duplicate after reopen %+v", r)
	}
	if seq := mustAppend(t, s, "alice-ch", "t6", "x"); seq != 6 {
		t.Fatalf("seq after reopen %d", seq)
	}
	if s.EZLastSeq("alice-flushed") != 1 || s.EZQueued("alice-flushed") != 0 {
		t.Fatal("flushed channel after reopen")
	}
	if got := ticks(mustRead(t, s, "alice-flushed", []byte("f1"), 0)); got != "|cursor=1" {
		t.Fatalf("flushed newest tick after reopen %s", got)
	}
	want := []ChannelStat{{"alice-ch", 3, 6}, {"alice-flushed", 0, 1}}
	if got := s.EZChannels("alice"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("EZChannels = %v, want %v", got, want)
	}
	if got := s.EZChannels("ali"); len(got) != 0 {
		t.Fatalf("EZChannels of a prefix user = %v", got)
	}
}

// TestReadAllocs: a read costs the result (Messages slice and one chunk
// of bytes) and nothing per message.
func TestReadAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool is randomised under -race")
	}
	s := openTest(t, testOptions(t, ""))
	for i := range 100 {
		mustAppend(t, s, "u-ch", fmt.Sprint("t", i), "a message body")
	}
	tick := []byte("t79")
	n := testing.AllocsPerRun(200, func() {
		if r, err := s.EZRead("u-ch", tick, ReadLimit{}); err != nil || len(r.Messages) != 20 {
			t.Fatalf("read %v %d", err, len(r.Messages))
		}
	})
	if n > 2 {
		t.Fatalf("EZRead of 20 messages: %v allocs, budget 2", n)
	}
}

func TestWriteValidation(t *testing.T) {
	s := openTest(t, testOptions(t, ""))
	for _, w := range []EZWrite{
		{QName: "", Tick: []byte("t")},
		{QName: "u-a\x00b", Tick: []byte("t")},
		{QName: "u-a", Tick: nil},
		{QName: "u-a", Tick: bytes.Repeat([]byte("t"), 256)},
	} {
		if r := write(t, s, w); r.Err == nil {
			t.Errorf("write %+v accepted", w)
		}
	}
}

// TestCloseWithWritesInFlight: every write gets exactly one completion,
// either committed or ErrClosed, and the committed ones survive a reopen.
func TestCloseWithWritesInFlight(t *testing.T) {
	opts := testOptions(t, "")
	opts.EZMaxQueue = 100000
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	const writers, perWriter = 4, 300
	var committed, closed atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				var calls atomic.Int32
				var inner sync.WaitGroup
				inner.Add(1)
				s.EZWrite(msg("u-ch", fmt.Sprint(w, "-", i), "x"), func(r EZWriteResult) {
					if calls.Add(1) != 1 {
						t.Error("completion called twice")
					}
					switch {
					case r.Err == nil:
						committed.Add(1)
					case errors.Is(r.Err, ErrClosed):
						closed.Add(1)
					default:
						t.Errorf("write: %v", r.Err)
					}
					inner.Done()
				})
				inner.Wait()
			}
		}()
	}
	for s.Stats().WritesCommitted < 100 {
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if committed.Load()+closed.Load() != writers*perWriter {
		t.Fatalf("committed %d + closed %d != %d", committed.Load(), closed.Load(), writers*perWriter)
	}
	s = openTest(t, opts)
	if got := s.EZLastSeq("u-ch"); got != uint64(committed.Load()) {
		t.Fatalf("after reopen last seq %d, committed %d", got, committed.Load())
	}
	s.sweep() // a no-op store is fine; after Close it must not block
	_ = s.Close()
	s.sweep()
}

// TestSyncNoneCloseSyncs: with SyncNone, Close still syncs what was
// acknowledged.
func TestSyncNoneCloseSyncs(t *testing.T) {
	opts := testOptions(t, "")
	opts.Sync = SyncNone
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	if s.SyncMode() != SyncNone {
		t.Fatal("SyncMode")
	}
	for i := range 50 {
		mustAppend(t, s, "u-ch", fmt.Sprint(i), "x")
	}
	if st := s.Stats(); st.SyncCount != 0 {
		t.Fatalf("SyncNone synced %d commits", st.SyncCount)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, opts)
	if s.EZLastSeq("u-ch") != 50 || s.EZQueued("u-ch") != 50 {
		t.Fatalf("after reopen last %d queued %d", s.EZLastSeq("u-ch"), s.EZQueued("u-ch"))
	}
}

// TestAfterBatchFollowsEachGroup: AfterBatch runs once per committed
// group, after every completion of that group and before any of the next;
// a write refused before it was queued is followed by none.
func TestAfterBatchFollowsEachGroup(t *testing.T) {
	opts := testOptions(t, "")
	var mu sync.Mutex
	var events []string // "w" per completion, "|" per AfterBatch
	opts.AfterBatch = func() {
		mu.Lock()
		events = append(events, "|")
		mu.Unlock()
	}
	s := openTest(t, opts)
	release := holdCommitter(t, s)
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		s.EZWrite(msg("after-c", fmt.Sprint(i), "x"), func(r EZWriteResult) {
			if r.Err != nil {
				t.Errorf("write: %v", r.Err)
			}
			mu.Lock()
			events = append(events, "w")
			mu.Unlock()
			wg.Done()
		})
	}
	release()
	wg.Wait()
	write(t, s, msg("after-c", "last", "x"))
	s.EZWrite(EZWrite{QName: ""}, func(EZWriteResult) {}) // refused at once
	var got string
	for range 500 { // "last"'s AfterBatch may follow write's return
		mu.Lock()
		got = strings.Join(events, "")
		mu.Unlock()
		if strings.Count(got, "|") >= 3 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // room for a wrong extra call to show
	mu.Lock()
	got = strings.Join(events, "")
	mu.Unlock()
	// The held write's group ends first ("|"); the 50 writes queued while
	// it was held share one group; "last" is a group of its own (its
	// completion is not recorded, write waits for it on a channel).
	if want := "|" + strings.Repeat("w", n) + "||"; got != want {
		t.Fatalf("completions and AfterBatch calls %q, want %q", got, want)
	}
}
