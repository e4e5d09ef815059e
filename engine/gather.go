package engine

import "time"

// Gathered output. A fan-out task sends one frame to each of many
// connections; when the loop runs several such tasks in one wake-up
// (messages arrived faster than it delivers them) each connection would
// get one write syscall per frame, and on loopback that syscall is nearly
// all of a delivery's cost. So while a batch of posted tasks runs, Send
// copies its bytes into one per-loop buffer, chained per connection, and
// the batch's end writes each connection's frames with one write(v).
// Replies of a batch (deferred answers, held polls up to maxFlat) are
// gathered too; other replies, the sweep's pings and heartbeats, control
// frames and closes write at once, after the connection's gathered
// bytes, so order is kept.
//
// A batch's end writes in turns. Deferred answers gathered by a task
// (a committed group's acknowledgements) are written before anything
// else the task sends or replies after them (the group's deliveries),
// and at the latest when the task ends. The other connections are
// written at once unless that takes longer than Server.turnsAfter
// (2 ms); a flush that has lasted that long goes on Server.flushTurn
// (64) connections at a time: after each turn the loop serves what else
// is ready (reads, pings, /healthz, new tasks) and goes on where it
// stopped. A fan-out to 10,000 subscribers costs one CPU ~50 ms here;
// without turns every other connection of the loop, and the answers of
// the writes behind it, waited that long. A flush that has gone on for
// schedAfter also lets the goroutines that share the loop's P (the
// committer, the store's) run between turns. Any connection's
// gathered bytes may be written at any time (a chain holds them in
// order, and a direct write sends them first), so the order of the
// turns is free. The buffer starts over only when every connection is
// written; fan-out arriving faster than it leaves keeps a flush in
// turns until the buffer would pass maxGather, and then the whole of it
// is written at once.

// pendSeg is one Send's bytes in loop.pend.
type pendSeg struct {
	off, n int32
	next   int32 // index+1 of the connection's next piece; 0 for its last
}

// maxGather bounds loop.pend: past it the batch flushes early, so a huge
// batch cannot hold unbounded memory.
const maxGather = 16 << 20

// maxFlat is the most gathered bytes of one connection copied into one
// buffer for a plain write; more go out with writev.
const maxFlat = 64 << 10

// maxIov is the most iovecs one writev takes (Linux UIO_MAXIOV).
const maxIov = 1024

// defaultFlushTurn is how many connections a turn of a flush writes
// (Server.flushTurn), ~0.1–0.35 ms of writes here. Measured at 10,000
// subscribers and 20 messages a second (one loop): a publish's answer
// waited 35–84 ms (p50) with no turns, ~20 ms with turns of 1,024
// connections, ~10 ms with 64.
const defaultFlushTurn = 64

// defaultTurnsAfter is how long a flush goes before it is cut in turns
// (Server.turnsAfter). Shorter flushes go at once as before turns: at
// 1,000 subscribers and 500 messages a second (flushes of ~2 ms) turns
// bought nothing and their wake-ups cost ~1% of the CPU.
const defaultTurnsAfter = 2 * time.Millisecond

// schedAfter is how long a flush goes on before its turns give the P to
// the loop's process's other goroutines. The loop's own wake-up is ready
// at once, so it would keep its P to the end of the flush, and the
// committer and the store (the answers of the writes read between the
// turns) would wait for the scheduler to preempt it: at 10,000
// subscribers a publish's answer then waited ~4 ms (p50) instead of
// ~10, and deliveries' p99 fell from ~120 to ~90 ms. Short flushes keep
// the P: at 1,000 subscribers and 500 messages a second (flushes of
// ~2 ms), yielding at every turn lengthened the deliveries' tail (p99
// 13–20 ms against 10–13), as the store's goroutine can take the P into
// a sync and keep it until the runtime takes it back.
const schedAfter = 10 * time.Millisecond

func (lp *loop) gather(c *conn, b []byte) {
	if len(lp.pend)+len(b) > maxGather {
		lp.flushTurn(0)
	}
	off := len(lp.pend)
	lp.pend = append(lp.pend, b...)
	lp.segs = append(lp.segs, pendSeg{off: int32(off), n: int32(len(b))})
	i := int32(len(lp.segs))
	if c.pendLast == 0 {
		c.pendFirst = i
		lp.dirty = append(lp.dirty, c)
	} else {
		lp.segs[c.pendLast-1].next = i
	}
	c.pendLast = i
	c.pendBytes += int32(len(b))
}

// flushUrgent writes the connections with gathered answers.
func (lp *loop) flushUrgent() {
	for i, c := range lp.urgent {
		c.flushGathered()
		lp.urgent[i] = nil
	}
	lp.urgent = lp.urgent[:0]
}

// flushTurn writes gathered bytes: the answers, then up to turn other
// connections (0: all of them). When it stops short it sets lp.flushing,
// and the loop wakes itself to take the next turn; when everything is
// written it empties the buffer.
func (lp *loop) flushTurn(turn int) {
	lp.flushUrgent()
	if !lp.flushing {
		lp.flushStart = lp.now
	}
	n := 0
	for ; lp.dirtyAt < len(lp.dirty); lp.dirtyAt++ {
		c := lp.dirty[lp.dirtyAt]
		if c.pendFirst != 0 {
			if n == turn && turn > 0 {
				if lp.s.turnsAfter <= 0 || int64(time.Since(lp.s.start))-lp.flushStart >= int64(lp.s.turnsAfter) {
					lp.flushing = true
					return
				}
				n = 0
			}
			c.flushGathered()
			n++
		}
		lp.dirty[lp.dirtyAt] = nil
	}
	lp.flushing = false
	lp.dirtyAt = 0
	lp.dirty = shrunk(lp.dirty)
	lp.segs = shrunk(lp.segs)
	if cap(lp.pend) > maxGather {
		lp.pend = nil // a rare huge batch: do not keep its buffer
	}
	lp.pend = shrunk(lp.pend)
}

// keepGather is what a gather slice keeps of its capacity whatever the
// batches (bytes of the buffer; entries of the lists).
const keepGather = 64 << 10

// shrunk empties s, and lets it go when a burst grew it far beyond the
// batch it just held (under an eighth): a fan-out that gathers a
// megabyte each message keeps its buffer, but one burst (a node's
// connections all answered at once) does not hold its peak for the
// loop's life, as memory every idle connection would seem to cost.
func shrunk[T any](s []T) []T {
	if cap(s) > keepGather && len(s) < cap(s)/8 {
		return nil
	}
	return s[:0]
}

// flushGathered writes c's gathered bytes, in one syscall when gnet's
// outbound buffer is empty.
func (c *conn) flushGathered() {
	lp := c.lp
	first, n := c.pendFirst, int64(c.pendBytes)
	c.pendFirst, c.pendLast, c.pendBytes = 0, 0, 0
	if first == 0 || c.state == stClosed {
		return
	}
	lp.stats.bytesOut.Add(n)
	if s := lp.segs[first-1]; s.next == 0 {
		_, _ = c.gc.Write(lp.pend[s.off : s.off+s.n])
		return
	}
	if n <= maxFlat {
		// Copy into one buffer: x/sys's Writev allocates its iovecs on
		// every call, and a few small frames copy faster than that.
		flat := lp.flat[:0]
		for i := first; i != 0; i = lp.segs[i-1].next {
			s := lp.segs[i-1]
			flat = append(flat, lp.pend[s.off:s.off+s.n]...)
		}
		lp.flat = flat
		_, _ = c.gc.Write(flat)
		return
	}
	all := lp.iovs[:0]
	for i := first; i != 0; i = lp.segs[i-1].next {
		s := lp.segs[i-1]
		all = append(all, lp.pend[s.off:s.off+s.n])
	}
	for bs := all; len(bs) > 0 && c.state != stClosed; {
		k := min(len(bs), maxIov)
		_, _ = c.gc.Writev(bs[:k])
		bs = bs[k:]
	}
	clear(all)
	lp.iovs = all[:0]
}
