package engine

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// task is one unit of work posted to a loop: exactly one field is set.
// Broadcast and the sweep use their own fields so that posting them
// allocates no closure.
type task struct {
	fn    func()
	each  func(loop int)
	t     Task
	sweep bool // the deadline sweep
	scan  bool // a look at the waiting connections (drainPoll)
}

// loop is the engine's state for one gnet event loop. Fields below the
// mutex are touched only on the loop's goroutine.
type loop struct {
	s   *Server
	idx int

	// Cross-goroutine part: the posted-task queue.
	mu          sync.Mutex
	handle      gnet.EventLoop // nil until discovered
	tasks       []task
	wakePending bool
	runTasks    gnet.RunnableFunc // bound once, so a wake-up allocates less
	// wakeConn is the engine's end of the loop's waker (waker.go), nil
	// until discovery finds one; wakeFD is its descriptor, -1 without.
	wakeConn net.Conn
	wakeFD   int

	stats   loopStats
	waiting atomic.Int64 // len(waiters), for the ticker goroutine

	// Loop-goroutine part.
	running []task // tasks being run, swapped with tasks
	parser  *requestParser
	failReq Request   // the request of a Fail with nothing parsed
	out     []byte    // scratch for response heads and control frames
	iov     [2][]byte // scratch for Writev
	date    dateCache
	now     int64 // nanoseconds since Server.start, refreshed per entry
	wheel   timerWheel
	all     *conn // every open connection, for Drain
	depth   int   // nesting of entries; queues are drained at depth 0
	// traffic is the connection whose gnet callback (OnOpen, OnTraffic)
	// is running: closing it is left to the callback's return.
	traffic *conn

	// pollFD is the loop's epoll descriptor for pausing reads, -1 when
	// pausing is not possible (readpause_*.go); pollChecked once known.
	pollFD      int
	pollChecked bool
	pauseAt     int // inbound bytes at which a connection that cannot parse stops reading

	// Sends gathered while a batch of posted tasks runs (see gather):
	// every connection's frames leave in one write at the batch's end.
	batching   bool
	pend       []byte    // the gathered bytes of every connection
	segs       []pendSeg // pieces of pend, chained per connection
	dirty      []*conn   // connections with gathered bytes, from dirtyAt on
	dirtyAt    int       // dirty[:dirtyAt] are written (a flush in turns)
	urgent     []*conn   // connections with gathered answers, written first
	flushing   bool      // a flush stopped at its turn's end: wake again
	flushStart int64     // when the flush began (lp.now)
	iovs       [][]byte  // scratch for a connection's Writev
	flat       []byte    // scratch: a connection's gathered pieces, joined

	// resume holds connections to look at again when the entry ends:
	// replied late with pipelined bytes waiting, output unblocked, reads
	// to resume.
	resume    []*conn
	closed    []*conn // Handler.Closed still to call
	flushWait []*conn // closing once their output is flushed
	expired   []*conn // scratch for the sweep

	// Pipelines of connections with deferred answers (pipeline.go), a
	// pool of free ones, the last deferred slot's number, and the size of
	// the request being served (what a Defer of it weighs).
	pipes    map[*conn]*pipeline
	pipeFree []*pipeline
	deferSeq uint64
	serving  int

	// Connections waiting for their unsent output to shrink (see
	// flow_control.go), and the last time they were looked at.
	waiters  []*conn
	drained  []*conn // scratch: Handler.Drained to call
	lastScan int64
	scanNow  bool // a scan task or sweep asked for a look at the end of this entry
}

type loopStats struct {
	open, accepted, held, websockets, streams, requests atomic.Int64
	bytesIn, bytesOut, slowCuts, deadlineCloses         atomic.Int64
	parseErrors, panics, refused, refusedPerIP          atomic.Int64
	readPauses, pipelines                               atomic.Int64
}

func newLoop(s *Server, i int) *loop {
	lp := &loop{s: s, idx: i, pollFD: -1, wakeFD: -1}
	lp.pauseAt = s.opts.MaxHeaderBytes + s.opts.MaxBodyBytes
	lp.runTasks = lp.drainTasks
	lp.parser = newRequestParser(s.opts.MaxHeaderBytes, s.opts.MaxBodyBytes)
	lp.wheel.init(s.opts.SweepInterval)
	return lp
}

// attach records the gnet handle of the loop and starts running what was
// posted before it was known.
func (lp *loop) attach(el gnet.EventLoop) {
	lp.mu.Lock()
	lp.handle = el
	wake := len(lp.tasks) > 0 && !lp.wakePending
	if wake {
		lp.wakePending = true
		wake = !lp.wakeLocked()
	}
	lp.mu.Unlock()
	if wake {
		lp.wake(el)
	}
}

func (lp *loop) attached() bool {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return lp.handle != nil
}

func (lp *loop) post(t task) {
	lp.mu.Lock()
	lp.tasks = append(lp.tasks, t)
	el := lp.handle
	wake := el != nil && !lp.wakePending
	if wake {
		lp.wakePending = true
		wake = !lp.wakeLocked()
	}
	lp.mu.Unlock()
	if wake {
		lp.wake(el)
	}
}

func (lp *loop) wake(el gnet.EventLoop) {
	if err := el.Execute(context.Background(), lp.runTasks); err != nil {
		// The engine is shutting down: nothing will run these.
		lp.mu.Lock()
		clear(lp.tasks)
		lp.tasks = lp.tasks[:0]
		lp.wakePending = false
		lp.mu.Unlock()
	}
}

// drainTasks runs on the loop: the tasks queued when it starts, in order,
// then a turn of the gathered output (gather.go). Tasks posted meanwhile,
// and the flush's next turn, run in a later wake-up, after gnet has
// served I/O, so neither a busy poster nor a large fan-out can starve
// the loop's connections.
func (lp *loop) drainTasks(context.Context) error {
	lp.enter()
	lp.mu.Lock()
	lp.tasks, lp.running = lp.running[:0], lp.tasks
	lp.mu.Unlock()
	lp.batching = !lp.s.noGather
	for i := range lp.running {
		lp.runTask(&lp.running[i])
		if len(lp.urgent) > 0 {
			// Answers leave before the tasks after them (a committed
			// group's fan-out) write anything.
			lp.flushUrgent()
		}
	}
	lp.batching = false
	lp.flushTurn(lp.s.flushTurn)
	clear(lp.running)
	lp.exit()
	lp.mu.Lock()
	turning := lp.flushing
	more := len(lp.tasks) > 0 || turning
	if !more {
		lp.wakePending = false
	} else if lp.wakeLocked() {
		more = false
	}
	el := lp.handle
	lp.mu.Unlock()
	if more {
		lp.wake(el)
	}
	if turning && lp.now-lp.flushStart >= int64(schedAfter) {
		runtime.Gosched() // see schedAfter
	}
	return nil
}

func (lp *loop) runTask(t *task) {
	defer lp.recoverTask()
	switch {
	case t.fn != nil:
		t.fn()
	case t.each != nil:
		t.each(lp.idx)
	case t.t != nil:
		t.t.Run(lp.idx)
	case t.sweep:
		lp.sweep()
	case t.scan:
		lp.scanNow = true
	}
}

func (lp *loop) recoverTask() {
	if v := recover(); v != nil {
		lp.stats.panics.Add(1)
		lp.s.log.Error("engine: panic in posted function", "loop", lp.idx, "panic", v)
	}
}

// enter and exit bracket every entry into the loop (gnet callback or
// task). At the outermost exit, the work that must not run re-entrantly
// inside handler code runs: Handler.Closed notifications, parsing of
// pipelined requests after a late Reply, reads resumed, and the look at
// connections waiting for their output to drain (Handler.Drained).
func (lp *loop) enter() {
	if lp.depth == 0 {
		lp.now = int64(time.Since(lp.s.start))
	}
	lp.depth++
}

func (lp *loop) exit() {
	if lp.depth > 1 {
		lp.depth--
		return
	}
	scanned := false
	for {
		for i := 0; i < len(lp.resume); i++ {
			c := lp.resume[i]
			lp.resume[i] = nil
			if c.state == stClosed {
				continue
			}
			lp.process(c)
			if c.state != stClosed {
				lp.syncReads(c)
				if c.state != stClosed {
					c.leftIn = int32(c.gc.InboundBuffered())
				}
			}
		}
		lp.resume = lp.resume[:0]
		for i := 0; i < len(lp.closed); i++ {
			c := lp.closed[i]
			lp.closed[i] = nil
			lp.callClosed(c)
		}
		lp.closed = lp.closed[:0]
		if !scanned && lp.scanDue() {
			scanned = true
			lp.scanWaiters()
			continue
		}
		if len(lp.resume) == 0 && len(lp.closed) == 0 {
			break
		}
	}
	lp.depth = 0
}

func (lp *loop) onOpen(gc gnet.Conn) gnet.Action {
	s := lp.s
	if s.draining.Load() {
		return gnet.Close
	}
	if s.open.Add(1) > s.maxConns {
		s.open.Add(-1)
		lp.stats.refused.Add(1)
		s.refused(refusedMaxConns)
		return gnet.Close
	}
	lp.enter()
	c := &conn{
		gc: gc,
		lp: lp,
		id: s.nextConnID.Add(1),
	}
	if ta, ok := gc.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			c.peer = a.As16()
		}
	}
	if !lp.pollChecked {
		lp.pollChecked = true
		if fd, ok := pollerFD(gc); ok && !s.noPause {
			lp.pollFD = fd
		} else if !s.noPause {
			s.log.Warn("engine: cannot pause reads on this platform or gnet version; --max-pipelined cuts instead", "loop", lp.idx)
		}
	}
	gc.SetContext(c)
	lp.linkAll(c)
	lp.stats.open.Add(1)
	lp.stats.accepted.Add(1)
	c.state = stIdle
	lp.wheel.schedule(c, lp.now+int64(s.opts.IdleTimeout))
	// C-12: a trusted proxy is counted per request, by the client it
	// forwards (process); any other peer now.
	if peer := c.peerAddr(); isTrusted(peer, s.opts.TrustedProxies) {
		c.flags |= fTrustedPeer
	} else if k := ClientKeyOf(peer); s.perIP.Acquire(k, s.opts.MaxConnsPerIP) {
		c.flags |= fCounted
		c.ipKey = k
	} else {
		lp.stats.refusedPerIP.Add(1)
		s.refused(refusedConnsPerIP)
		lp.traffic = c
		lp.failConn(c, nil, 429, FailTooManyConns)
	}
	lp.exit()
	lp.traffic = nil
	if c.closeReq {
		return gnet.Close
	}
	return gnet.None
}

func (lp *loop) onTraffic(c *conn) gnet.Action {
	lp.enter()
	lp.traffic = c
	n := c.gc.InboundBuffered()
	lp.stats.bytesIn.Add(int64(n - int(c.leftIn)))
	// Bytes came, so reads are on: gnet turned them back on behind a
	// pause (readpause_linux.go). syncReads pauses again if need be.
	c.flags &^= fPaused
	switch c.state {
	case stIdle, stReading:
		lp.process(c)
	case stWS:
		c.lastRecv = lp.now
		lp.processWS(c)
	case stServing, stHeld:
		// Pipelined bytes wait until the reply (syncReads bounds them).
	default:
		// Streams and closing connections: the peer has nothing to say.
		_, _ = c.gc.Discard(-1)
	}
	// Deferred work runs while c is still marked as in OnTraffic, so that
	// closing c from there is left to gnet too.
	lp.exit()
	if !c.closeReq && c.state != stClosed {
		lp.syncReads(c)
	}
	lp.traffic = nil
	closeNow := c.closeReq
	if !closeNow && c.state != stClosed {
		c.leftIn = int32(c.gc.InboundBuffered())
	}
	if closeNow {
		return gnet.Close
	}
	return gnet.None
}

// onClose is the one place a connection's life ends, whatever closed it.
func (lp *loop) onClose(c *conn) {
	lp.enter()
	c.setState(stClosed)
	lp.wheel.remove(c)
	lp.unlinkAll(c)
	c.gc.SetContext(nil)
	lp.pipeRelease(c) // answers still to come go nowhere
	lp.stats.open.Add(-1)
	lp.s.open.Add(-1)
	if c.flags&fCounted != 0 {
		c.flags &^= fCounted
		lp.s.perIP.Release(c.ipKey)
	}
	c.queueClosed()
	lp.exit()
}

// failConn hands c's current request (r, or an empty one when nil) to
// Handler.Fail and closes c after the answer, or at once when the
// handler gives none.
func (lp *loop) failConn(c *conn, r *Request, status int, msg string) {
	c.setState(stServing)
	c.flags = c.flags&^fRequest | fFail
	if r == nil {
		// Not the parser's request: Fail can come from inside a Reply
		// made during Serve, whose request must stay as it was.
		peer := c.peerAddr()
		lp.failReq = Request{PeerAddr: peer, ClientIP: peer, Header: emptyHeader{}}
		r = &lp.failReq
	}
	lp.callFail(c, r, status, msg)
	if c.state == stServing {
		lp.closeHard(c) // the handler did not answer
	}
}

// attribute counts c for client (C-12), moving the count from the client
// it counted for; false, counting nothing new, when client is at the cap.
func (lp *loop) attribute(c *conn, client netip.Addr) bool {
	k := ClientKeyOf(client)
	if c.flags&fCounted != 0 && c.ipKey == k {
		return true
	}
	if !lp.s.perIP.Acquire(k, lp.s.opts.MaxConnsPerIP) {
		return false
	}
	if c.flags&fCounted != 0 {
		lp.s.perIP.Release(c.ipKey)
	}
	c.flags |= fCounted
	c.ipKey = k
	return true
}

func (lp *loop) linkAll(c *conn) {
	c.anext = lp.all
	if lp.all != nil {
		lp.all.aprev = c
	}
	lp.all = c
}

func (lp *loop) unlinkAll(c *conn) {
	if c.aprev != nil {
		c.aprev.anext = c.anext
	} else if lp.all == c {
		lp.all = c.anext
	}
	if c.anext != nil {
		c.anext.aprev = c.aprev
	}
	c.anext, c.aprev = nil, nil
}

// closeHard closes c now, dropping unsent output beyond what the kernel
// takes at once.
func (lp *loop) closeHard(c *conn) {
	if c.state == stClosed {
		return
	}
	c.setState(stClosed)
	lp.wheel.remove(c)
	if lp.traffic == c {
		c.closeReq = true // gnet closes it when OnTraffic returns
		return
	}
	// Synchronous: OnClose runs now and only queues Handler.Closed.
	_ = c.gc.EventLoop().Close(c.gc)
}

// closeAfterFlush closes c once its output has reached the kernel, or
// after a bounded wait for a peer that does not read.
func (lp *loop) closeAfterFlush(c *conn) {
	if c.state >= stFlushing {
		return
	}
	if c.pendFirst != 0 {
		c.flushGathered()
		if c.state == stClosed {
			return
		}
	}
	if c.gc.OutboundBuffered() == 0 {
		lp.flushed(c)
		return
	}
	c.setState(stFlushing)
	lp.wheel.schedule(c, lp.now+int64(lp.s.opts.DrainTimeout))
	lp.flushWait = append(lp.flushWait, c)
}

// lingerTimeout bounds how long a half-closed connection waits for the
// peer to close its side.
const lingerTimeout = 2 * time.Second

// flushed ends a connection whose output has all reached the kernel.
func (lp *loop) flushed(c *conn) {
	if c.flags&fLinger == 0 {
		lp.closeHard(c)
		return
	}
	if err := halfClose(c.gc.Fd()); err != nil {
		lp.closeHard(c)
		return
	}
	c.setState(stLinger)
	lp.wheel.schedule(c, lp.now+int64(lingerTimeout))
}

// sweep runs every SweepInterval on the loop: deadlines that passed, and
// closing connections whose output drained.
func (lp *loop) sweep() {
	lp.scanNow = true
	j := 0
	for _, c := range lp.flushWait {
		if c.state != stFlushing {
			continue
		}
		if c.gc.OutboundBuffered() == 0 {
			lp.flushed(c)
			continue
		}
		lp.flushWait[j] = c
		j++
	}
	clear(lp.flushWait[j:])
	lp.flushWait = lp.flushWait[:j]

	lp.expired = lp.wheel.advance(lp.now, lp.expired[:0])
	for i, c := range lp.expired {
		lp.expired[i] = nil
		lp.fire(c)
	}
	lp.expired = lp.expired[:0]
}

// fire handles a connection whose deadline passed; what the deadline
// meant follows from the state.
func (lp *loop) fire(c *conn) {
	o := &lp.s.opts
	switch c.state {
	case stIdle:
		if c.flags&fPiped != 0 {
			// Waiting for the handler's answers, not for the client: as
			// a request being served, it has no deadline meanwhile.
			lp.wheel.schedule(c, lp.now+int64(o.IdleTimeout))
			return
		}
		if c.flags&fOutBlocked != 0 {
			// Parsing stopped for output that does not shrink: the
			// input waiting behind it does not count (C-08).
			if lp.outputProgressed(c) {
				return
			}
		} else if c.inputOnItsWay() {
			// A request came in while the loop was busy elsewhere.
			lp.wheel.schedule(c, lp.now+int64(o.IdleTimeout))
			return
		}
		lp.stats.deadlineCloses.Add(1)
		lp.closeHard(c)
	case stReading:
		lp.stats.deadlineCloses.Add(1)
		lp.stats.parseErrors.Add(1)
		lp.failConn(c, nil, 408, "request header timeout")
	case stHeld:
		c.setState(stServing)
		lp.callExpired(c)
	case stWS:
		// The deadline was set one interval after the last ping (or after
		// the upgrade, when lastRecv was set). Silent since that ping: the
		// peer is gone. Judged by the ping, not the clock alone, so a loop
		// that runs late never closes a peer it has not pinged yet, nor
		// one whose answer waits in the socket, unread by a busy loop.
		if pingedAt := c.deadline - int64(o.PingInterval); c.lastRecv < pingedAt && lp.now-c.lastRecv >= 2*int64(o.PingInterval) &&
			!c.inputOnItsWay() {
			lp.stats.deadlineCloses.Add(1)
			lp.closeHard(c)
			return
		}
		if c.sendNow(pingFrame) {
			lp.wheel.schedule(c, lp.now+int64(o.PingInterval))
		}
	case stStream:
		if c.sendNow(o.StreamHeartbeat) {
			lp.wheel.schedule(c, lp.now+int64(o.StreamHeartbeatInterval))
		}
	case stFlushing, stLinger:
		lp.closeHard(c)
	}
}

// drainAll runs on the loop when a graceful stop starts.
func (lp *loop) drainAll() {
	// Handlers may close other connections meanwhile: walk a copy.
	var conns []*conn
	for c := lp.all; c != nil; c = c.anext {
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.flags |= fDrain
		if c.tag != nil && c.state != stClosed {
			lp.callDrain(c)
		}
		switch c.state {
		case stIdle, stReading:
			if c.flags&fPiped != 0 {
				lp.pipeClose(c) // C-11: answers outstanding still go out
				continue
			}
			lp.closeAfterFlush(c)
		case stWS, stStream:
			lp.closeAfterFlush(c)
		}
	}
}

// emptyHeader is the Header of a request that failed before its headers
// were parsed.
type emptyHeader struct{}

func (emptyHeader) Peek(string) []byte      { return nil }
func (emptyHeader) PeekAll(string) [][]byte { return nil }
