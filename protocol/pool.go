package protocol

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
// entries: what a burst freed beyond that goes to the collector.

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
}

// sub returns a recycled reader, or a new one; newSub sets every field.
func (f *freeLists) sub() *ezSub { return f.subs.get() }

// putSub recycles s, which has left the index and its connection,
// unless a read for it is in flight or it is recycled already.
func (f *freeLists) putSub(s *ezSub) {
	if !s.reading && s.idx == -1 && f.subs.put(s) {
		s.idx = pooledIdx
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
	}
}

// read returns a recycled read job, or a new one.
func (f *freeLists) read() *ezRead { return f.reads.get() }

// putRead recycles j, whose result ran (or which was never queued).
func (f *freeLists) putRead(j *ezRead) {
	*j = ezRead{}
	f.reads.put(j)
}

// cfRead returns a recycled Cometify read job, or a new one.
func (f *freeLists) cfRead() *cfRead { return f.cfReads.get() }

// putCFRead recycles j as putRead does.
func (f *freeLists) putCFRead(j *cfRead) {
	*j = cfRead{}
	f.cfReads.put(j)
}

// freeList is a stack of recycled Ts.
type freeList[T any] []*T

// get takes the last one, or a new one.
func (l *freeList[T]) get() *T {
	n := len(*l)
	if n == 0 {
		return new(T)
	}
	x := (*l)[n-1]
	(*l)[n-1] = nil
	*l = (*l)[:n-1]
	return x
}

// put adds x unless the list holds maxFree already.
func (l *freeList[T]) put(x *T) bool {
	if len(*l) >= maxFree {
		return false
	}
	*l = append(*l, x)
	return true
}
