package protocol

import (
	"sync"
	"sync/atomic"
)

// Fan-out from the store to the loops: one task per committed group per
// loop, not one per message.
//
// The store runs the completions of one committed group one after another
// on its syncer goroutine, then calls AfterBatch. Each completion
// gathers its work into the current group: the writer's or pusher's
// answer under its connection's loop, and its delivery (when it has one)
// once for every loop. AfterBatch posts the group: one task to each loop
// with anything to do, which answers that loop's writers in completion
// order and then runs the group's deliveries in commit order. A waking
// loop costs the engine a wake-up and a queue entry; a group of 500
// writes costs one per loop instead of 1000.
//
// Answers to one connection go out in completion order (the store's
// acceptance order), since they share a group's list or sit in groups
// posted one after the other; deliveries run in commit order on every
// loop for the same reason. Groups are reused once every loop has run
// them, so steady-state fan-out allocates nothing here.

// answerer is a completed write or push: its answer, run on its
// connection's loop.
type answerer interface{ answer(ls *loopState) }

// recycler is an answerer that is reused once its group was run by
// every loop (writeOp).
type recycler interface{ recycle() }

// fanout is a durable message: run on every loop, it wakes that loop's
// subscribers of its channel or topic.
type fanout interface{ deliverTo(ls *loopState) }

// group is one committed group's work, posted to each loop as its run.
type group struct {
	api        *API
	runs       []groupRun // one per loop
	deliveries []fanout   // commit order, shared read-only by every loop
	pending    atomic.Int32
}

// groupRun is a group's task on one loop.
type groupRun struct {
	g       *group
	answers []answerer
}

// Run implements engine.Task.
func (r *groupRun) Run(loop int) {
	g := r.g
	ls := g.api.state[loop]
	for _, a := range r.answers {
		a.answer(ls)
	}
	for _, d := range g.deliveries {
		d.deliverTo(ls)
	}
	if g.pending.Add(-1) == 0 {
		g.api.fan.recycle(g)
	}
}

// fanOut gathers completions into groups and posts them.
type fanOut struct {
	// hooked is set by the first AfterBatch: from then on the store is
	// known to call it after every group. Until then every completion is
	// posted at once, so a store opened without the hook still delivers.
	hooked atomic.Bool

	// mu serializes gathering and posting: completions run on the
	// syncer goroutine, except refusals, which run on the refused
	// request's loop (see gather).
	mu   sync.Mutex
	cur  *group // being gathered; nil when empty
	post []int  // scratch: the loops cur is posted to

	freeMu sync.Mutex // the free list is refilled from the loops
	free   []*group
}

// AfterBatch posts the work gathered from a committed group's
// completions. Install it as persist.Options.AfterBatch of the store
// passed as Options.Store: the store calls it on its syncer goroutine
// after each group. Without it, each completion is posted on its own (one
// task per message, as before).
func (a *API) AfterBatch() {
	f := &a.fan
	if !f.hooked.Load() {
		f.hooked.Store(true)
	}
	f.mu.Lock()
	a.flushLocked()
	f.mu.Unlock()
}

// gather adds one completion's answer (on loop) and delivery (nil when
// there is none) to the current group. A refusal (failed) is posted at
// once with everything gathered before it: a write or push refused before
// it was queued completes on the caller's goroutine and no AfterBatch
// follows it, and refusals are too rare to batch.
func (a *API) gather(loop int, ans answerer, d fanout, failed bool) {
	f := &a.fan
	f.mu.Lock()
	g := f.cur
	if g == nil {
		g = f.get(a)
		f.cur = g
	}
	g.runs[loop].answers = append(g.runs[loop].answers, ans)
	if d != nil {
		g.deliveries = append(g.deliveries, d)
	}
	if failed || !f.hooked.Load() {
		a.flushLocked()
	}
	f.mu.Unlock()
}

// flushLocked posts the current group to every loop with work in it:
// each loop with answers, and, when it holds deliveries, every loop with
// subscribers. A loop skipped for having none misses nothing: a
// subscriber it indexes afterwards reads the store after this group's
// completions ran, so its read has the group's messages. Posting never
// blocks (the engine queues the task), so mu is held
// throughout, which keeps two flushes' tasks in the order of their
// groups.
func (a *API) flushLocked() {
	f := &a.fan
	g := f.cur
	if g == nil {
		return
	}
	f.cur = nil
	f.post = f.post[:0]
	for i := range g.runs {
		if len(g.runs[i].answers) > 0 || len(g.deliveries) > 0 && a.state[i].entries.Load() > 0 {
			f.post = append(f.post, i)
		}
	}
	// Counted before the first post: a loop may run its part, and the
	// last one recycle g, while the others are still being posted.
	g.pending.Store(int32(len(f.post)))
	for _, i := range f.post {
		a.loops.PostTask(i, &g.runs[i])
	}
}

// get returns a free group, or a new one.
func (f *fanOut) get(a *API) *group {
	f.freeMu.Lock()
	if n := len(f.free); n > 0 {
		g := f.free[n-1]
		f.free[n-1] = nil
		f.free = f.free[:n-1]
		f.freeMu.Unlock()
		return g
	}
	f.freeMu.Unlock()
	g := &group{api: a, runs: make([]groupRun, a.loops.NumLoops())}
	for i := range g.runs {
		g.runs[i].g = g
	}
	return g
}

// recycle empties g, keeping its lists' room, and frees it; called by
// the last loop to run it. No loop refers to g's answers and deliveries
// any more, so the ops that can be reused are.
func (f *fanOut) recycle(g *group) {
	for i := range g.runs {
		for _, a := range g.runs[i].answers {
			if r, ok := a.(recycler); ok {
				r.recycle()
			}
		}
		clear(g.runs[i].answers) // drop the other ops: their buffers go
		g.runs[i].answers = g.runs[i].answers[:0]
	}
	clear(g.deliveries)
	g.deliveries = g.deliveries[:0]
	f.freeMu.Lock()
	f.free = append(f.free, g)
	f.freeMu.Unlock()
}
