package protocol

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// heldLoops records what is posted to each of n loops and runs it when
// the test says, so a test sees how many tasks each loop gets.
type heldLoops struct {
	mu    sync.Mutex
	tasks [][]engine.Task
}

func newHeldLoops(n int) *heldLoops { return &heldLoops{tasks: make([][]engine.Task, n)} }

func (l *heldLoops) NumLoops() int { return len(l.tasks) }
func (l *heldLoops) Post(i int, fn func()) {
	l.PostTask(i, taskFunc(func(int) { fn() }))
}
func (l *heldLoops) Broadcast(fn func(int)) {
	for i := range l.tasks {
		l.PostTask(i, taskFunc(fn))
	}
}
func (l *heldLoops) PostTask(i int, t engine.Task) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tasks[i] = append(l.tasks[i], t)
}
func (l *heldLoops) BroadcastTask(t engine.Task) {
	for i := range l.tasks {
		l.PostTask(i, t)
	}
}

// run runs and forgets what every loop was posted; it returns how many
// tasks each loop had.
func (l *heldLoops) run() []int {
	l.mu.Lock()
	tasks := l.tasks
	l.tasks = make([][]engine.Task, len(tasks))
	l.mu.Unlock()
	counts := make([]int, len(tasks))
	for i, ts := range tasks {
		counts[i] = len(ts)
		for _, t := range ts {
			t.Run(i)
		}
	}
	return counts
}

type taskFunc func(int)

func (f taskFunc) Run(loop int) { f(loop) }

// fanFixture is an API on two held loops with one WebSocket reader of
// john-fan on each, and writes completed by hand as the committer would.
type fanFixture struct {
	t       *testing.T
	api     *API
	loops   *heldLoops
	readers []*fakeConn
}

func newFanFixture(t *testing.T) *fanFixture {
	store, err := persist.Open(persist.Options{Dir: t.TempDir(), SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	acct, err := store.AddAccount("john")
	if err != nil {
		t.Fatal(err)
	}
	api, err := New(Options{Store: store, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), IndexSweep: -1})
	if err != nil {
		t.Fatal(err)
	}
	f := &fanFixture{t: t, api: api, loops: newHeldLoops(2)}
	api.Attach(f.loops)
	t.Cleanup(api.Close)
	for i := range 2 {
		c := newFakeConn()
		c.loop = i
		ls := api.state[i]
		s := ls.newSub(c, "john-fan", subWS, 0, engine.NoClientKey)
		s.acctID = acct.ID
		ls.add(s)
		f.readers = append(f.readers, c)
	}
	return f
}

// write makes a write from a connection on loop, as serveWrite would.
func (f *fanFixture) write(loop int, tick string) (*writeOp, *fakeConn) {
	c := newFakeConn()
	c.loop = loop
	_, op := newWriteOp(f.api, c, 1, []byte("john-fan"), []byte(tick), true, []byte("m"+tick), false)
	return op, c
}

// TestOneTaskPerGroupPerLoop: the completions of one committed group
// reach each loop as one task, which answers that loop's writers in
// order and delivers the group's messages in commit order.
func TestOneTaskPerGroupPerLoop(t *testing.T) {
	f := newFanFixture(t)
	f.api.AfterBatch() // the store calls it after every group
	var conns []*fakeConn
	for i := range 6 {
		op, c := f.write(i%2, fmt.Sprint("t", i))
		conns = append(conns, c)
		op.WriteDone(persist.EZWriteResult{Msg: persist.Message{Seq: uint64(i + 1)}})
	}
	// A duplicate is answered and not delivered.
	dup, dupConn := f.write(1, "t0")
	dup.WriteDone(persist.EZWriteResult{Msg: persist.Message{Seq: 1}, Duplicate: true})
	if got := f.loops.run(); got[0] != 0 || got[1] != 0 {
		t.Fatalf("tasks before AfterBatch: %v, want none", got)
	}
	f.api.AfterBatch()
	if got := f.loops.run(); got[0] != 1 || got[1] != 1 {
		t.Fatalf("tasks per loop for one group: %v, want [1 1]", got)
	}
	for i, c := range append(conns, dupConn) {
		if c.numReplies() != 1 || c.lastReply(t).status != 200 {
			t.Fatalf("writer %d: %d answers", i, c.numReplies())
		}
	}
	for i, r := range f.readers {
		got := strings.Join(r.sentCopy(), "")
		for j := range 6 {
			want := fmt.Sprintf(`["t%d","mt%d"]`, j, j)
			k := strings.Index(got, want)
			if k < 0 {
				t.Fatalf("reader on loop %d: %q lacks %s", i, got, want)
			}
			got = got[k+len(want):] // the next one comes after it
		}
	}
	// Every loop ran the group: it is free, and the next group reuses it.
	if n := len(f.api.fan.free); n != 1 {
		t.Fatalf("%d free groups, want 1", n)
	}
	op, _ := f.write(0, "t9")
	op.WriteDone(persist.EZWriteResult{Msg: persist.Message{Seq: 7}})
	if len(f.api.fan.free) != 0 {
		t.Fatal("the next group did not reuse the free one")
	}
}

// TestRefusalPostedAtOnce: a refusal is not left waiting for an
// AfterBatch (one refused before queueing gets none), and goes out after
// the answers gathered before it, in order.
func TestRefusalPostedAtOnce(t *testing.T) {
	f := newFanFixture(t)
	f.api.AfterBatch()
	ok, c := f.write(0, "a")
	ok.WriteDone(persist.EZWriteResult{Msg: persist.Message{Seq: 1}})
	bad, _ := f.write(0, "b")
	bad.conn, bad.def = c, engine.NotDeferred(c) // the same connection, pipelined
	bad.WriteDone(persist.EZWriteResult{Err: fmt.Errorf("%w: queue full", persist.ErrStorage)})
	if got := f.loops.run(); got[0] != 1 || got[1] != 1 {
		t.Fatalf("tasks per loop: %v, want [1 1] without AfterBatch", got)
	}
	if c.numReplies() != 2 || c.replies[0].status != 200 || c.replies[1].status != 503 {
		t.Fatalf("answers %+v, want 200 then 503", c.replies)
	}
}

// TestUnhookedStorePostsEach: before the store has called AfterBatch
// (a store opened without the hook), each completion is posted at once,
// so nothing waits for a call that never comes.
func TestUnhookedStorePostsEach(t *testing.T) {
	f := newFanFixture(t)
	for i := range 3 {
		op, c := f.write(0, fmt.Sprint("t", i))
		op.WriteDone(persist.EZWriteResult{Msg: persist.Message{Seq: uint64(i + 1)}})
		if got := f.loops.run(); got[0] != 1 || got[1] != 1 {
			t.Fatalf("write %d: tasks per loop %v, want [1 1]", i, got)
		}
		if c.numReplies() != 1 {
			t.Fatalf("write %d not answered", i)
		}
	}
}

// TestIdleLoopNotWoken: a loop with no index entry is not woken for a
// group's deliveries (only for its own writers' answers); one whose
// entry lingers after its last reader left is (index.go: the entry keeps
// its channel's last delivery, for a returning reader).
func TestIdleLoopNotWoken(t *testing.T) {
	f := newFanFixture(t)
	f.api.AfterBatch()
	ls := f.api.state[1]
	ls.remove(f.readers[1].Tag().(*ezSub))
	op, _ := f.write(0, "t0")
	op.WriteDone(persist.EZWriteResult{Msg: persist.Message{Seq: 1}})
	f.api.AfterBatch()
	if got := f.loops.run(); got[0] != 1 || got[1] != 1 {
		t.Fatalf("entry lingering on loop 1: tasks per loop %v, want [1 1]", got)
	}
	ls.sweep()
	ls.sweep() // empty from one sweep to the next: dropped
	if n := ls.entries.Load(); n != 0 {
		t.Fatalf("%d entries after the sweeps, want 0", n)
	}
	op, _ = f.write(0, "t1")
	op.WriteDone(persist.EZWriteResult{Msg: persist.Message{Seq: 2}})
	f.api.AfterBatch()
	if got := f.loops.run(); got[0] != 1 || got[1] != 0 {
		t.Fatalf("tasks per loop %v, want [1 0]", got)
	}
	if len(f.readers[0].sentCopy()) != 2 {
		t.Fatal("the reader on loop 0 missed a message")
	}
}
