package engine

import "errors"

var errNotServing = errors.New("engine: no request is being served on this connection")

// msgFlood is the 429 of a connection whose pipelined bytes were dropped
// (MaxPipelined, where reads cannot be paused).
const msgFlood = "too many pipelined bytes while a request was pending"

// process parses and serves the requests buffered on c, in order, until
// one is unanswered, the bytes run out, the output is over its bound, or
// the connection changes protocol. Runs on c's loop.
func (lp *loop) process(c *conn) {
	for {
		switch c.state {
		case stIdle, stReading:
		case stWS:
			lp.processWS(c)
			return
		case stStream:
			_, _ = c.gc.Discard(-1)
			return
		default:
			return
		}
		if c.flags&fPipeWait != 0 {
			return // until the pipeline is empty (pipeline.go)
		}
		if c.state == stIdle && c.flags&fFlood != 0 {
			// Pipelined bytes were dropped (syncReads): the request they
			// held gets its JSON error (C-03), and the connection closes.
			lp.failConn(c, nil, 429, msgFlood)
			return
		}
		n := c.gc.InboundBuffered()
		if n == 0 {
			if c.state == stIdle && c.slot == 0 {
				lp.wheel.schedule(c, lp.now+int64(lp.s.opts.IdleTimeout))
			}
			return
		}
		if c.state == stIdle {
			if !lp.outputRoom(c) {
				return
			}
			c.setState(stReading)
			c.need = 0
			c.chunk = chunkScan{}
			lp.wheel.schedule(c, lp.now+int64(lp.s.opts.HeaderTimeout))
		}
		if int(c.need) > n {
			return
		}
		buf, err := c.gc.Peek(-1)
		if err != nil {
			return
		}
		res := lp.parser.parse(buf, c.peerAddr(), &c.chunk)
		switch res.kind {
		case parseNeedMore:
			c.need = int32(res.need)
			if res.expectContinue && c.flags&fContinueSent == 0 {
				c.flags |= fContinueSent
				c.write(continueResponse)
			}
			return
		case parseFail:
			lp.stats.parseErrors.Add(1)
			lp.s.refused(refusalClassOf(res.status))
			lp.wheel.remove(c)
			lp.failConn(c, &lp.parser.req, res.status, res.msg)
			return
		}
		lp.wheel.remove(c)
		c.need = 0
		r := &lp.parser.req
		if c.flags&fPiped != 0 && !lp.pipelinable(c, r) {
			if c.state == stClosed {
				return
			}
			// Served once every earlier answer is written, parsed
			// again then.
			c.setState(stIdle)
			c.flags |= fPipeWait
			return
		}
		lp.stats.requests.Add(1)
		if c.flags&fTrustedPeer != 0 {
			// C-07, then C-12 by the forwarded client.
			r.ClientIP = clientIP(c.peerAddr(), r.Header, lp.s.opts.TrustedProxies)
			r.ViaTrustedProxy = true
			if !lp.attribute(c, r.ClientIP) {
				lp.stats.refusedPerIP.Add(1)
				lp.s.refused(refusedConnsPerIP)
				lp.failConn(c, r, 429, FailTooManyConns)
				return
			}
		}
		c.setState(stServing)
		c.flags = c.flags&^fRequest | fInServe
		if res.keepAlive {
			c.flags |= fKeepAlive
		}
		if res.head {
			c.flags |= fHead
		}
		lp.serving = res.consumed
		lp.callServe(c, r)
		c.flags &^= fInServe
		if c.state == stClosed {
			return
		}
		_, _ = c.gc.Discard(res.consumed)
	}
}

// The call* methods run Handler code on the loop. A panic there is the
// Handler's bug: it is logged, that connection is closed, the loop goes
// on.

func (lp *loop) callServe(c *conn, r *Request) {
	defer lp.recoverConn(c, "Serve")
	lp.s.h.Serve(c, r)
}

func (lp *loop) callFail(c *conn, r *Request, status int, msg string) {
	defer lp.recoverConn(c, "Fail")
	lp.s.h.Fail(c, r, status, msg)
}

func (lp *loop) callExpired(c *conn) {
	defer lp.recoverConn(c, "Expired")
	lp.s.h.Expired(c)
}

func (lp *loop) callDrained(c *conn) {
	defer lp.recoverConn(c, "Drained")
	lp.s.h.Drained(c)
}

func (lp *loop) callDrain(c *conn) {
	defer lp.recoverConn(c, "Drain")
	lp.s.h.Drain(c)
}

func (lp *loop) callClosed(c *conn) {
	defer lp.recoverConn(nil, "Closed")
	lp.s.h.Closed(c)
}

func (lp *loop) recoverConn(c *conn, where string) {
	v := recover()
	if v == nil {
		return
	}
	lp.stats.panics.Add(1)
	var id uint64
	if c != nil {
		id = c.id
		c.flags &^= fInServe
		lp.closeHard(c)
	}
	lp.s.log.Error("engine: handler panic", "in", where, "conn", id, "panic", v)
}
