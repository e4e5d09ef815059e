package protocol

import "sync/atomic"

// Each loop recycles its readers and listeners and their store reads,
// so that a long-poll cycle (the answer, then the client's next poll)
// allocates nothing in steady state (PERF P5): the next poll takes the
// reader (listener) and the read job the answered one gave back.
//
// A reader is recycled when it leaves (remove, removeCF), unless a read
// for it is in flight: that read's result still looks at it (Run, which
// finds the connection's Tag changed and drops the result) and recycles
// it then, so no read ever sees its reader serve another request. A
// recycled reader keeps its fields until it is taken again, which only a
// new request's Serve does, never a call that was under way when it
// left: code that still holds it after remove sees what it saw before.
// A read job is recycled once its result ran on the loop; nothing holds
// it after that.
//
// Only the loop goroutine touches its lists. Each holds at most maxFree
// entries: what a burst freed beyond that goes to the collector. The
// loop's sweep (index.go, every Options.IndexSweep) trims each list to
// what was taken from it since the sweep before, so that what a burst
// left is not kept while nothing asks for it: idle connections cost what
// they cost without recycling (PERF P1), and a steady long-poll load
// keeps its lists.

// maxFree bounds each free list of a loop.
const maxFree = 4096

// maxKeptWatches is the most watches whose array a recycled listener
// passes on to the next: a listener of many identifiers is rare, and its
// array would stay with a listener of one for the rest of its life.
const maxKeptWatches = 4

// pooledIdx is an ezSub's idx while it waits in a free list.
const pooledIdx = -2

// freeLists are one loop's recycled readers, listeners and reads.
type freeLists struct {
	subs    freeList[ezSub]
	reads   freeList[ezRead]
	cfSubs  freeList[cfSub]
	cfReads freeList[cfRead]
	// toSweep is the loop's flag (loopState.toSweep): set once a list
	// holds something, for the sweeper to trim it.
	toSweep *atomic.Bool
}

// held notes that a list holds something.
func (f *freeLists) held() {
	if !f.toSweep.Load() {
		f.toSweep.Store(true)
	}
}

// trim trims every list (see above) and reports whether any still holds
// something.
func (f *freeLists) trim() bool {
	n := f.subs.trim() + f.reads.trim() + f.cfSubs.trim() + f.cfReads.trim()
	return n > 0
}

// sub returns a recycled reader, or a new one; newSub sets every field.
func (f *freeLists) sub() *ezSub { return f.subs.get() }

// putSub recycles s, which has left the index and its connection,
// unless a read for it is in flight or it is recycled already.
func (f *freeLists) putSub(s *ezSub) {
	if !s.reading && s.idx == -1 && f.subs.put(s) {
		s.idx = pooledIdx
		f.held()
	}
}

// cfSub returns a recycled listener, or a new one, with every field
// zero but the room of its watches.
func (f *freeLists) cfSub() *cfSub {
	s := f.cfSubs.get()
	w := s.watches[:0]
	if cap(w) > maxKeptWatches {
		w = nil
	}
	*s = cfSub{watches: w}
	return s
}

// putCFSub recycles s as putSub does a reader.
func (f *freeLists) putCFSub(s *cfSub) {
	indexed := len(s.watches) > 0 && s.watches[0].idx >= 0
	if !s.reading && !s.pooled && !indexed && f.cfSubs.put(s) {
		s.pooled = true
		f.held()
	}
}

// read returns a recycled read job, or a new one.
func (f *freeLists) read() *ezRead { return f.reads.get() }

// putRead recycles j, whose result ran (or which was never queued).
func (f *freeLists) putRead(j *ezRead) {
	*j = ezRead{}
	if f.reads.put(j) {
		f.held()
	}
}

// cfRead returns a recycled Cometify read job, or a new one.
func (f *freeLists) cfRead() *cfRead { return f.cfReads.get() }

// putCFRead recycles j as putRead does.
func (f *freeLists) putCFRead(j *cfRead) {
	*j = cfRead{}
	if f.cfReads.put(j) {
		f.held()
	}
}

// freeList is a stack of recycled Ts.
type freeList[T any] struct {
	items []*T
	taken int // gets since the last trim
}

// get takes the last one, or a new one.
func (l *freeList[T]) get() *T {
	l.taken++
	n := len(l.items)
	if n == 0 {
		return new(T)
	}
	x := l.items[n-1]
	l.items[n-1] = nil
	l.items = l.items[:n-1]
	return x
}

// put adds x unless the list holds maxFree already.
func (l *freeList[T]) put(x *T) bool {
	if len(l.items) >= maxFree {
		return false
	}
	l.items = append(l.items, x)
	return true
}

// trim keeps no more than were taken since the last trim, and returns
// how many it kept.
func (l *freeList[T]) trim() int {
	keep := min(len(l.items), l.taken)
	clear(l.items[keep:])
	l.items, l.taken = l.items[:keep], 0
	if keep == 0 && cap(l.items) > 64 {
		l.items = nil // the room a burst grew
	}
	return keep
}
