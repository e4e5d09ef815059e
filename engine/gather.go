package engine

// Gathered output. A fan-out task sends one frame to each of many
// connections; when the loop runs several such tasks in one wake-up
// (messages arrived faster than it delivers them) each connection would
// get one write syscall per frame, and on loopback that syscall is nearly
// all of a delivery's cost. So while a batch of posted tasks runs, Send
// copies its bytes into one per-loop buffer, chained per connection, and
// the batch's end writes each connection's frames with one write(v).
// Replies, control frames and closes write at once, after the
// connection's gathered bytes, so order is kept.

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

func (lp *loop) gather(c *conn, b []byte) {
	if len(lp.pend)+len(b) > maxGather {
		lp.flushGathered()
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

// flushGathered writes every connection's gathered bytes and empties the
// buffer.
func (lp *loop) flushGathered() {
	for i, c := range lp.dirty {
		c.flushGathered()
		lp.dirty[i] = nil
	}
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
