package engine

import (
	"net/netip"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// connState is where a connection is in its life; it also says what its
// one deadline means (see loop.fire).
type connState uint8

const (
	stIdle     connState = iota // keep-alive, no request bytes: idle deadline
	stReading                   // request in progress: header deadline
	stServing                   // complete request handed to the Handler, no deadline
	stHeld                      // long-poll: hold deadline, then Handler.Expired
	stWS                        // WebSocket: next ping
	stStream                    // stream: next heartbeat
	stFlushing                  // closing once output is flushed: hard-close deadline
	stLinger                    // write side shut, reading until the peer's FIN: hard-close deadline
	stClosed                    // gone: every method is a no-op
)

// Connection flags. The first four describe the request being answered
// and are cleared when it ends (fRequest); the others last as long as
// the connection, so code that resets the request's flags must keep them.
const (
	fKeepAlive    uint32 = 1 << iota // current request allows keep-alive
	fHead                            // current request is HEAD: no body in the reply
	fFail                            // current request went to Handler.Fail: close after reply
	fContinueSent                    // 100 Continue written for the current request
	fInServe                         // Handler.Serve for this connection is on the stack
	fDrain                           // graceful stop: close after the next reply
	fLinger                          // after the flush, half-close and read until the peer closes
	fFlood                           // pipelined bytes past MaxPipelined were dropped: 429, then close
	fBeacon                          // answer a client's text "ping" (Conn.Beacon)
	fTrustedPeer                     // the peer is inside TrustedProxies (C-07, C-12)
	fCounted                         // ipKey holds one of perIP's counts (C-12)
	fPaused                          // reads paused (epoll interest off, readpause_*.go)
	fNoPause                         // pausing failed: MaxPipelined applies instead
	fOutBlocked                      // parsing stopped: unsent output over parseStopAt (C-08)
	fWantDrain                       // Conn.WhenDrained asked for Handler.Drained
	fWaiting                         // in loop.waiters (fOutBlocked or fWantDrain)
	fClosedQueued                    // Handler.Closed is queued or done: the connection is closing
	fPiped                           // deferred answers outstanding: loop.pipes holds its pipeline (pipeline.go)
	fPipeWait                        // parse nothing until the pipeline is empty (pipeline.go)
)

// fRequest are the flags of the request being answered.
const fRequest = fKeepAlive | fHead | fFail | fContinueSent

// conn is the engine's per-connection state, the Conn given to the
// Handler. It is what an idle connection costs beyond gnet's own: keep it
// small (no buffers; all scratch space is per loop). A conn is never
// reused, so a stale handle held by the protocol only sees stClosed.
type conn struct {
	gc  gnet.Conn
	lp  *loop
	id  uint64
	tag any
	// peer is the client's address as As16 (IPv4 mapped), all zeros when
	// unknown (no TCP peer is ::); peerAddr gives it back. A netip.Addr
	// would add its zone pointer: 8 bytes that put a conn in Go's next
	// size class (192 B instead of 176), memory per idle connection.
	peer   [16]byte
	tnext  *conn // timer wheel list
	tprev  *conn
	anext  *conn // loop's list of all connections
	aprev  *conn
	slot   int32 // timer wheel slot + 1; 0 when no deadline
	leftIn int32 // inbound bytes left buffered after the last callback
	need   int32 // inbound bytes needed before parsing again (0: unknown)

	state    connState
	closeReq bool       // close when the current OnTraffic returns
	ws       wsMsgState // WebSocket: the client's message in progress
	flags    uint32
	// outMark is, while fOutBlocked, the unsent output when progress was
	// last seen: the no-progress deadline closes a connection whose
	// output has not shrunk below it for IdleTimeout.
	outMark int32

	deadline int64 // loop clock, ns
	lastRecv int64 // WebSocket: loop clock of the last inbound bytes

	// Output gathered during a task batch (loop.gather): a chain of
	// loop.segs, index+1, 0 when none.
	pendFirst, pendLast int32
	pendBytes           int32

	chunk chunkScan // stReading: progress of a chunked body
	ipKey ClientKey // fCounted: the client address this connection counts for
}

var _ Conn = (*conn)(nil)

// peerAddr is the client's address (IPv4 unmapped), the zero Addr when
// unknown.
func (c *conn) peerAddr() netip.Addr {
	if c.peer == ([16]byte{}) {
		return netip.Addr{}
	}
	return netip.AddrFrom16(c.peer).Unmap()
}

func (c *conn) setState(s connState) {
	if c.state == s {
		return
	}
	st := &c.lp.stats
	switch c.state {
	case stHeld:
		st.held.Add(-1)
	case stWS:
		st.websockets.Add(-1)
	case stStream:
		st.streams.Add(-1)
	}
	switch s {
	case stHeld:
		st.held.Add(1)
	case stWS:
		st.websockets.Add(1)
	case stStream:
		st.streams.Add(1)
	case stFlushing, stLinger:
		// Closing: what the connection held in the Handler (a listener
		// slot) ends now, not when the peer gets round to its FIN, which
		// a lingering close may wait for up to lingerTimeout.
		c.queueClosed()
	}
	c.state = s
}

// queueClosed queues Handler.Closed for c once, if it has a tag; it runs
// when the current loop entry unwinds.
func (c *conn) queueClosed() {
	if c.tag == nil || c.flags&fClosedQueued != 0 {
		return
	}
	c.flags |= fClosedQueued
	c.lp.closed = append(c.lp.closed, c)
}

// write hands b to gnet (written now or appended to its outbound buffer),
// after whatever was gathered for c, so bytes keep their order.
func (c *conn) write(b []byte) {
	if c.pendFirst != 0 {
		c.flushGathered()
	}
	c.lp.stats.bytesOut.Add(int64(len(b)))
	_, _ = c.gc.Write(b)
}

func (c *conn) Reply(status int, contentType string, extraHeaders, body []byte) {
	if c.state != stServing && c.state != stHeld {
		return
	}
	lp := c.lp
	lp.wheel.remove(c)
	keep := c.keepAlive()
	head := lp.appendHead(lp.out[:0], status, contentType, len(body), keep, extraHeaders)
	lp.out = head
	if c.flags&fHead != 0 || status == 204 || status == 304 {
		body = nil
	}
	if c.flags&fPiped != 0 {
		// Earlier answers are outstanding: this one waits its turn.
		lp.holdReply(c, head, body)
	} else if lp.batching && len(head)+len(body) <= maxFlat {
		// A held poll answered by a task (a fan-out, the sweep): gathered
		// with the batch's other output, so that it leaves in the
		// flush's turns (gather.go) rather than holding the loop.
		lp.gather(c, head)
		if len(body) > 0 {
			lp.gather(c, body)
		}
	} else {
		if len(lp.urgent) > 0 {
			lp.flushUrgent() // answers before deliveries (gather.go)
		}
		c.writeAnswer(head, body)
	}
	if c.state == stClosed { // the write failed and gnet closed it
		return
	}
	c.setState(stIdle)
	c.flags &^= fRequest
	if c.flags&fFlood != 0 && keep {
		// The request after this one was dropped with the flood: it gets
		// its JSON error (C-03), and the connection closes after it.
		lp.failConn(c, nil, 429, msgFlood)
		return
	}
	if !keep && c.flags&fPiped != 0 {
		// Nothing after this request is served; the connection closes
		// once the answers before it and its own are written.
		lp.pipeClose(c)
		return
	}
	if !keep {
		// Unread pipelined bytes or the rest of a refused body would make
		// the kernel reset the connection, and the peer could lose this
		// reply: half-close and drain instead (RFC 9112 9.6).
		c.flags |= fLinger
		lp.closeAfterFlush(c)
		lp.readsChanged(c)
		return
	}
	if c.flags&fInServe != 0 {
		return // the parsing loop on the stack goes on
	}
	if c.gc.InboundBuffered() > 0 {
		lp.resume = append(lp.resume, c)
	} else {
		lp.wheel.schedule(c, lp.now+int64(lp.s.opts.IdleTimeout))
	}
}

func (c *conn) Hold(d time.Duration) {
	if c.state != stServing {
		return
	}
	c.setState(stHeld)
	c.lp.wheel.schedule(c, c.lp.now+int64(d))
}

func (c *conn) UpgradeWebSocket(r *Request, extraHeaders []byte) error {
	if c.state != stServing || c.flags&fPiped != 0 { // see Pipeliner
		return errNotServing
	}
	return c.lp.upgrade(c, r, extraHeaders)
}

func (c *conn) StartStream(contentType string, extraHeaders []byte) {
	if c.state != stServing {
		return
	}
	if c.flags&fPiped != 0 {
		// A stream cannot follow answers still outstanding (Pipeliner).
		c.lp.closeHard(c)
		return
	}
	lp := c.lp
	lp.out = lp.appendHead(lp.out[:0], 200, contentType, -1, false, extraHeaders)
	if c.flags&fHead != 0 {
		c.write(lp.out)
		lp.closeAfterFlush(c)
		lp.readsChanged(c)
		return
	}
	c.write(lp.out)
	if c.state == stClosed {
		return
	}
	c.setState(stStream)
	lp.wheel.schedule(c, lp.now+int64(lp.s.opts.StreamHeartbeatInterval))
	lp.readsChanged(c)
}

func (c *conn) Send(b []byte) bool {
	if c.state != stWS && c.state != stStream {
		return false
	}
	return c.send(b)
}

// send writes b unless that would put the connection over MaxOutbound,
// in which case the connection is cut as a slow consumer.
func (c *conn) send(b []byte) bool {
	return c.sendAt(b, c.lp.batching)
}

// sendNow is send, written at once even while a batch runs (after the
// connection's gathered bytes): the sweep's pings, whose deadline counts
// from the moment they are sent, must not wait for the turns of a long
// flush (on a saturated loop a round of turns can take seconds).
func (c *conn) sendNow(b []byte) bool {
	return c.sendAt(b, false)
}

func (c *conn) sendAt(b []byte, gather bool) bool {
	if c.gc.OutboundBuffered()+int(c.pendBytes)+len(b) > c.lp.s.opts.MaxOutbound {
		c.lp.stats.slowCuts.Add(1)
		c.lp.closeHard(c)
		return false
	}
	if lp := c.lp; gather {
		if len(lp.urgent) > 0 {
			lp.flushUrgent() // answers before deliveries (gather.go)
		}
		lp.gather(c, b)
		return true
	}
	c.write(b)
	return c.state != stClosed
}

func (c *conn) CloseWebSocket(code uint16, reason string) {
	if c.state != stWS {
		return
	}
	lp := c.lp
	lp.out = AppendCloseFrame(lp.out[:0], code, reason)
	c.write(lp.out)
	lp.closeAfterFlush(c)
}

func (c *conn) Close() {
	switch c.state {
	case stClosed, stFlushing, stLinger:
		return
	}
	if c.flags&fPiped != 0 {
		c.lp.pipeClose(c) // after the answers outstanding
		return
	}
	c.lp.closeAfterFlush(c)
}

func (c *conn) Beacon() {
	if c.state == stWS {
		c.flags |= fBeacon
	}
}

func (c *conn) Loop() int    { return c.lp.idx }
func (c *conn) ID() uint64   { return c.id }
func (c *conn) Tag() any     { return c.tag }
func (c *conn) SetTag(t any) { c.tag = t }
func (c *conn) Alive() bool  { return c.state < stFlushing }

// inputOnItsWay reports whether bytes from the peer wait in the socket
// for a read event the loop has yet to serve (none do behind paused
// reads: no event comes for them). A deadline that would judge the peer
// silent, or idle, must not: on a busy loop the sweep can run first.
func (c *conn) inputOnItsWay() bool {
	return c.flags&fPaused == 0 && unreadInput(c.gc.Fd())
}
