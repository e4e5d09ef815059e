package engine

import (
	"math"
	"time"
)

// Flow control (C-08): what a connection may cost in memory whatever its
// client does, without cutting a client that reads.
//
//   - Inbound: while a request is being answered (stServing, stHeld), or
//     while parsing is stopped for output (below), pipelined bytes wait in
//     gnet's inbound buffer; past about one request (loop.pauseAt) the
//     engine stops reading the socket (readpause_*.go) and resumes when
//     the request is answered. The client's own socket buffer then fills
//     and its writes wait: a pipeline of well-formed requests is never
//     cut. Only where reads cannot be paused, Options.MaxPipelined cuts
//     instead (429, close).
//   - Outbound, HTTP: after a reply, while the unsent output (gnet's
//     outbound buffer plus gathered bytes) is over MaxOutbound/8, no
//     further pipelined request is parsed; parsing resumes at
//     MaxOutbound/16. A client that pipelines requests and reads nothing
//     costs at most MaxOutbound/8 plus one answer, and gnet keeps
//     queued output in buffers of powers of two, up to twice its size:
//     so the memory held stays within MaxOutbound, with room for the
//     garbage each answer leaves until the next GC, as long as an answer
//     is at most a quarter of it (the protocol's are 1 MiB of 4).
//     Deferred answers (pipeline.go) count too: held ones by their bytes,
//     outstanding ones by their request's size plus slotWeight, so a
//     client that pipelines writes cannot grow memory past the bound
//     either, as long as a deferred answer is small (a write's ack). A
//     connection whose unsent output does not shrink for IdleTimeout is
//     closed. A client that reads is not slowed: the kernel's socket
//     buffer and what is left at resumption keep its socket busy until
//     the next look (drainPoll).
//   - Outbound, streams: a live Send over MaxOutbound cuts the connection
//     (a slow consumer); a backlog is sent as the socket drains, through
//     Conn.Backlogged, Conn.WhenDrained and Handler.Drained.
//
// gnet reports no "output drained" event, so connections that wait for
// their output to shrink (fOutBlocked, fWantDrain) sit in loop.waiters,
// looked at when an entry into the loop ends (at most every waitScanGap)
// and, while any waits, by a tick every drainPoll (Server.onTick).

// drainPoll is the tick while some connection waits for its output to
// drain (gnet's tick is one for the whole engine).
const drainPoll = 10 * time.Millisecond

// waitScanGap is the least time between two looks at loop.waiters when
// loop entries end: the look costs one load per waiting connection, and
// a busy loop ends many entries per millisecond.
const waitScanGap = int64(time.Millisecond)

// unsent is c's output not yet handed to the kernel, counting what its
// pipeline of deferred answers weighs (pipeline.go).
func (c *conn) unsent() int {
	return c.gc.OutboundBuffered() + int(c.pendBytes) + c.pipeWeight()
}

func (c *conn) Backlogged() bool {
	return c.state < stFlushing && c.unsent() >= c.lp.s.opts.BacklogBytes
}

func (c *conn) WhenDrained() {
	if c.state >= stFlushing {
		return
	}
	c.flags |= fWantDrain
	c.lp.wait(c)
}

// wait puts c in the loop's waiting list (once).
func (lp *loop) wait(c *conn) {
	if c.flags&fWaiting != 0 {
		return
	}
	c.flags |= fWaiting
	lp.waiters = append(lp.waiters, c)
	lp.waiting.Add(1)
}

// scanWaiters looks at the waiting connections: those whose output fell
// enough resume parsing (loop.resume) or get their Handler.Drained, the
// others stay. Runs at the end of an outermost loop entry, so Drained is
// never called from inside another Handler call. A Drained that asks
// again (WhenDrained) is looked at by a later scan, so a handler cannot
// keep the loop here.
func (lp *loop) scanWaiters() {
	lp.lastScan, lp.scanNow = lp.now, false
	o := &lp.s.opts
	j := 0
	for _, c := range lp.waiters {
		if c.state < stFlushing {
			out := c.unsent()
			if c.flags&fOutBlocked != 0 && out <= parseResumeAt(o) {
				c.flags &^= fOutBlocked
				lp.resume = append(lp.resume, c)
			}
			if c.flags&fWantDrain != 0 && out <= o.BacklogBytes/2 {
				c.flags &^= fWantDrain
				lp.drained = append(lp.drained, c)
			}
			if c.flags&(fOutBlocked|fWantDrain) != 0 {
				lp.waiters[j] = c
				j++
				continue
			}
		}
		c.flags &^= fWaiting | fOutBlocked | fWantDrain
		lp.waiting.Add(-1)
	}
	clear(lp.waiters[j:])
	lp.waiters = lp.waiters[:j]
	for i, c := range lp.drained {
		lp.drained[i] = nil
		if c.state < stFlushing {
			lp.callDrained(c)
		}
	}
	lp.drained = lp.drained[:0]
}

// scanDue reports whether exit should look at the waiters now.
func (lp *loop) scanDue() bool {
	return len(lp.waiters) > 0 && (lp.scanNow || lp.now-lp.lastScan >= waitScanGap)
}

// parseStopAt is the unsent output over which an HTTP connection parses
// no further pipelined request (C-08), and parseResumeAt where it starts
// again (see the top of this file).
func parseStopAt(o *Options) int   { return o.MaxOutbound / 8 }
func parseResumeAt(o *Options) int { return o.MaxOutbound / 16 }

// outputRoom reports whether c, idle between pipelined requests, may
// parse the next one: not while its unsent output is over parseStopAt,
// and, once stopped, not until it is down to parseResumeAt. A stopped
// connection waits in loop.waiters with the no-progress deadline
// (loop.fire).
func (lp *loop) outputRoom(c *conn) bool {
	o := &lp.s.opts
	out := c.unsent()
	if c.flags&fOutBlocked != 0 {
		if out > parseResumeAt(o) {
			return false
		}
		c.flags &^= fOutBlocked // its waiters entry goes at the next scan
		return true
	}
	if out <= parseStopAt(o) {
		return true
	}
	c.flags |= fOutBlocked
	c.outMark = int32(min(out, math.MaxInt32))
	lp.wheel.schedule(c, lp.now+int64(o.IdleTimeout))
	lp.wait(c)
	return false
}

// outputProgressed is the no-progress deadline of a connection stopped
// for output: true (and a new deadline) when its unsent output shrank
// since the last one.
func (lp *loop) outputProgressed(c *conn) bool {
	out := c.unsent()
	if out >= int(c.outMark) {
		return false
	}
	c.outMark = int32(out)
	lp.wheel.schedule(c, lp.now+int64(lp.s.opts.IdleTimeout))
	return true
}

// parseHeld reports whether c cannot parse what it has buffered: a
// request of it is being answered, or its output is over the bound.
func parseHeld(c *conn) bool {
	switch c.state {
	case stServing, stHeld:
		return true
	case stIdle:
		return c.flags&(fOutBlocked|fPipeWait) != 0
	}
	return false
}

// canPause reports whether c's reads can be paused.
func (lp *loop) canPause(c *conn) bool {
	return lp.pollFD >= 0 && c.flags&fNoPause == 0
}

// syncReads pauses or resumes c's reads after a callback that may have
// changed what they should be: paused while c cannot parse and about one
// request (pauseAt) is already buffered. Where pausing is not possible,
// pipelined bytes past MaxPipelined are dropped instead, and the
// connection gets a 429 and closes once it may parse again (fFlood).
func (lp *loop) syncReads(c *conn) {
	held := parseHeld(c)
	hold := held && c.gc.InboundBuffered() >= lp.pauseAt
	switch {
	case hold && c.flags&fPaused == 0 && lp.canPause(c):
		if err := pauseReads(lp.pollFD, c.gc); err != nil {
			c.flags |= fNoPause
			break
		}
		c.flags |= fPaused
		lp.stats.readPauses.Add(1)
	case !hold && c.flags&fPaused != 0:
		c.flags &^= fPaused
		if err := resumeReads(lp.pollFD, c.gc); err != nil {
			// It could never be read again.
			lp.s.log.Error("engine: resume reads", "conn", c.id, "err", err)
			lp.closeHard(c)
			return
		}
	}
	if held && !lp.canPause(c) && (c.flags&fFlood != 0 || c.gc.InboundBuffered() > lp.s.opts.MaxPipelined) {
		if c.flags&fFlood == 0 {
			lp.stats.parseErrors.Add(1)
			lp.s.refused(refusedFlood)
		}
		c.flags |= fFlood
		_, _ = c.gc.Discard(-1)
	}
}

// readsChanged queues c for syncReads at the end of the loop entry, after
// a change of state that may let a paused connection read again.
func (lp *loop) readsChanged(c *conn) {
	if c.flags&fPaused != 0 {
		lp.resume = append(lp.resume, c)
	}
}
