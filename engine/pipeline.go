package engine

import "sort"

// Deferred answers and pipelining (issue 16). A handler that hands a
// request to slow work (a write waiting for its fsync) calls Conn.Defer
// and answers later through the Deferred; meanwhile the engine parses
// and serves the connection's next pipelined requests, so that writes
// pipelined on one connection reach the store together instead of one
// per commit.
//
// Answers still leave in request order. While a connection has a
// deferred answer outstanding it has a pipeline: a queue of its
// unanswered or unwritten answers, oldest first. An answer to the oldest
// is written at once, followed by every answer behind it that is ready;
// an answer that is ready before an older one is copied into the
// pipeline's held bytes until its turn. The pipeline lives in a per-loop
// map and pool, not in conn: an idle connection costs nothing more.
//
// What a pipeline may cost is bounded with the output (C-08): held bytes,
// and for each deferred answer outstanding the size of its request plus
// slotWeight, count as unsent output (conn.unsent), so past parseStopAt
// no further request is parsed until answers have been written and read.
//
// Only requests the Handler calls pipelinable (Pipeliner) are served
// while answers are outstanding; any other (a long-poll, an upgrade) and
// everything behind it waits until the pipeline is empty (fPipeWait), so
// it is served exactly as without pipelining. A request whose answer
// closes the connection (Connection: close, HTTP/1.0, a Fail) ends the
// pipeline: nothing after it is served, and the connection closes once
// every answer is written. So do Conn.Close and a graceful stop (C-11):
// answers outstanding are still written before the connection closes.

// Pipeliner is an optional interface of the Handler: Pipelinable says
// whether r may be served while earlier requests of its connection still
// have deferred answers outstanding (Conn.Defer). A request it refuses
// waits until they are all written. Without it, no request is served
// while an answer is deferred. r is valid only during the call; called
// on the connection's loop.
type Pipeliner interface {
	Pipelinable(r *Request) bool
}

// Deferred is a request's answer promised for later (Conn.Defer). It is a
// small value (no allocation) and may be kept anywhere; Reply must run on
// the connection's loop, once.
type Deferred struct {
	c   Conn
	seq uint64 // the pipeline slot's sequence number; 0: c.Reply itself
}

// NotDeferred returns a Deferred whose Reply is c.Reply, for a Conn that
// has no pipeline of its own: a Conn implemented outside the engine (a
// test double, a proxy) answers Defer with it.
func NotDeferred(c Conn) Deferred { return Deferred{c: c} }

// Reply answers the deferred request, as Conn.Reply does: written now
// when every earlier answer of the connection has been, else held (a
// copy) until they are. A no-op when the connection has gone (its
// pipeline went with it) or for the zero Deferred.
func (d Deferred) Reply(status int, contentType string, extraHeaders, body []byte) {
	if c, ok := d.c.(*conn); ok && d.seq != 0 {
		c.replyDeferred(d.seq, status, contentType, extraHeaders, body)
		return
	}
	if d.c != nil {
		d.c.Reply(status, contentType, extraHeaders, body)
	}
}

// slotWeight is what an outstanding deferred answer counts toward the
// output bound beyond its request's bytes: the handler's state for it (a
// store operation) and its answer to come. With the default MaxOutbound
// it lets a few thousand small writes be in flight on one connection.
const slotWeight = 256

// pipeSlot is one answer in a pipeline, in request order.
type pipeSlot struct {
	seq    uint64 // what Deferred.seq names; increasing along the queue
	weight int32  // while deferred: what it counts toward the output bound
	off, n int32  // once ready: its bytes in pipeline.held
	ready  bool
	keep   bool // the request allowed keep-alive
	head   bool // the request was HEAD: no body
}

// pipeline is a connection's queue of answers (see the top of the file).
type pipeline struct {
	slots []pipeSlot // slots[h:] are queued, oldest first
	h     int
	held  []byte // bytes of ready slots, in the order they became ready
	live  int    // bytes of held not yet written
	// weight is what the pipeline counts as unsent output: len(held)
	// (written bytes included until held is reset) plus the weights of
	// the deferred slots.
	weight int
	// closeAfter: nothing after the last slot is served; the connection
	// closes once every answer is written.
	closeAfter bool
}

// pipeOf returns c's pipeline, creating one (from the loop's pool) when
// c has none.
func (lp *loop) pipeOf(c *conn) *pipeline {
	if c.flags&fPiped != 0 {
		return lp.pipes[c]
	}
	var p *pipeline
	if n := len(lp.pipeFree); n > 0 {
		p = lp.pipeFree[n-1]
		lp.pipeFree[n-1] = nil
		lp.pipeFree = lp.pipeFree[:n-1]
	} else {
		p = &pipeline{}
	}
	if lp.pipes == nil {
		lp.pipes = make(map[*conn]*pipeline)
	}
	lp.pipes[c] = p
	c.flags |= fPiped
	lp.stats.pipelines.Add(1)
	return p
}

// maxPooledHeld bounds the held buffer a pooled pipeline keeps.
const maxPooledHeld = 64 << 10

// pipeRelease drops c's pipeline (empty, or c is closing) into the pool.
func (lp *loop) pipeRelease(c *conn) {
	if c.flags&fPiped == 0 {
		return
	}
	p := lp.pipes[c]
	delete(lp.pipes, c)
	c.flags &^= fPiped
	lp.stats.pipelines.Add(-1)
	p.slots = p.slots[:0]
	p.h, p.live, p.weight, p.closeAfter = 0, 0, 0, false
	if cap(p.held) > maxPooledHeld {
		p.held = nil
	}
	p.held = p.held[:0]
	if len(lp.pipeFree) < 64 {
		lp.pipeFree = append(lp.pipeFree, p)
	}
}

// pipeWeight is what c's pipeline counts toward its unsent output.
func (c *conn) pipeWeight() int {
	if c.flags&fPiped == 0 {
		return 0
	}
	return c.lp.pipes[c].weight
}

// pipelinable asks the Handler whether r may be served behind deferred
// answers.
func (lp *loop) pipelinable(c *conn, r *Request) (ok bool) {
	pl := lp.s.pipeliner
	if pl == nil {
		return false
	}
	defer lp.recoverConn(c, "Pipelinable") // then c is closed
	return pl.Pipelinable(r)
}

// Defer implements Conn.
func (c *conn) Defer() Deferred {
	if c.state != stServing || c.flags&fInServe == 0 {
		return Deferred{}
	}
	lp := c.lp
	keep := c.keepAlive()
	p := lp.pipeOf(c)
	lp.deferSeq++
	w := int32(min(lp.serving, 1<<30)) + slotWeight
	p.slots = append(p.slots, pipeSlot{seq: lp.deferSeq, weight: w, keep: keep, head: c.flags&fHead != 0})
	p.weight += int(w)
	c.setState(stIdle)
	c.flags &^= fRequest
	if !keep {
		p.closeAfter = true
		c.flags |= fPipeWait
	}
	return Deferred{c: c, seq: lp.deferSeq}
}

// keepAlive reports whether the answer to the current request keeps the
// connection open.
func (c *conn) keepAlive() bool {
	return c.flags&(fKeepAlive|fFail|fDrain) == fKeepAlive && !c.lp.s.draining.Load()
}

// holdReply queues a rendered answer (a Conn.Reply made while earlier
// answers are outstanding) behind them; b is copied.
func (lp *loop) holdReply(c *conn, head, body []byte) {
	p := lp.pipes[c]
	lp.deferSeq++
	s := pipeSlot{seq: lp.deferSeq, ready: true}
	s.off, s.n = p.hold(head, body)
	p.slots = append(p.slots, s)
}

// hold copies an answer into the held bytes.
func (p *pipeline) hold(head, body []byte) (off, n int32) {
	o := len(p.held)
	p.held = append(p.held, head...)
	p.held = append(p.held, body...)
	k := len(p.held) - o
	p.live += k
	p.weight += k
	return int32(o), int32(k)
}

// replyDeferred answers c's deferred slot seq.
func (c *conn) replyDeferred(seq uint64, status int, contentType string, extraHeaders, body []byte) {
	if c.state == stClosed || c.flags&fPiped == 0 {
		return
	}
	lp := c.lp
	p := lp.pipes[c]
	// Slots are numbered in increasing order (held ones too).
	q := p.slots[p.h:]
	i := p.h + sort.Search(len(q), func(k int) bool { return q[k].seq >= seq })
	if i == len(p.slots) || p.slots[i].seq != seq || p.slots[i].ready {
		return // answered already
	}
	s := &p.slots[i]
	keep := s.keep && !lp.s.draining.Load()
	head := lp.appendHead(lp.out[:0], status, contentType, len(body), keep, extraHeaders)
	lp.out = head
	if s.head || status == 204 || status == 304 {
		body = nil
	}
	p.weight -= int(s.weight)
	if i > p.h {
		s.off, s.n = p.hold(head, body)
		s.ready = true
		return
	}
	p.h++
	if c.emit(head, body); c.state == stClosed {
		return
	}
	lp.pipeAdvance(c, p)
}

// emit writes one answer: gathered with the loop's other output while a
// batch of tasks runs (a committed group's answers to one connection
// leave in one write), else at once.
func (c *conn) emit(head, body []byte) {
	lp := c.lp
	if lp.batching {
		lp.gather(c, head)
		if len(body) > 0 {
			lp.gather(c, body)
		}
		lp.urgent = append(lp.urgent, c)
		return
	}
	c.writeAnswer(head, body)
}

// writeAnswer writes an answer's head (in lp.out) and body at once: one
// writev for a large body, else one write.
func (c *conn) writeAnswer(head, body []byte) {
	lp := c.lp
	if len(body) > 1024 {
		if c.pendFirst != 0 {
			c.flushGathered()
		}
		lp.iov[0], lp.iov[1] = head, body
		lp.stats.bytesOut.Add(int64(len(head) + len(body)))
		_, _ = c.gc.Writev(lp.iov[:])
		lp.iov[0], lp.iov[1] = nil, nil
		return
	}
	lp.out = append(head, body...)
	c.write(lp.out)
}

// pipeAdvance writes the ready answers at the front of c's pipeline and,
// when it is empty, ends it: the connection closes (closeAfter) or goes
// on parsing.
func (lp *loop) pipeAdvance(c *conn, p *pipeline) {
	for p.h < len(p.slots) && p.slots[p.h].ready {
		s := p.slots[p.h]
		p.h++
		p.live -= int(s.n)
		if c.emit(p.held[s.off:s.off+s.n], nil); c.state == stClosed {
			return
		}
	}
	if p.live == 0 {
		p.weight -= len(p.held)
		p.held = p.held[:0]
	}
	if p.h < len(p.slots) {
		if p.h > 32 && p.h*2 > len(p.slots) {
			n := copy(p.slots, p.slots[p.h:])
			p.slots = p.slots[:n]
			p.h = 0
		}
		return
	}
	closeAfter := p.closeAfter
	lp.pipeRelease(c)
	c.flags &^= fPipeWait
	if closeAfter {
		// As Reply without keep-alive: half-close and drain (RFC 9112 9.6).
		c.flags |= fLinger
		lp.closeAfterFlush(c)
		lp.readsChanged(c)
		return
	}
	if c.state == stIdle {
		// Requests that waited for the pipeline, and reads paused meanwhile.
		lp.resume = append(lp.resume, c)
	}
}

// pipeClose ends c's pipeline where it stands: nothing more is served,
// and the connection closes once the outstanding answers are written
// (Conn.Close, a graceful stop).
func (lp *loop) pipeClose(c *conn) {
	p := lp.pipes[c]
	p.closeAfter = true
	c.flags |= fPipeWait
	if c.state == stReading {
		lp.wheel.remove(c)
		c.setState(stIdle)
	}
}
