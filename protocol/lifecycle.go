package protocol

import (
	"math/rand/v2"

	"github.com/halleypush/halley/engine"
)

// The handler's lifecycle callbacks for connections that read: a poll's
// wait ending, a connection going, a graceful stop, a socket drained.

// Expired implements engine.Handler: a long-poll's wait ended empty.
func (a *API) Expired(c engine.Conn) {
	switch s := c.Tag().(type) {
	case *ezSub:
		s.ls.answerEmpty(s, 0)
	case *cfSub:
		s.ls.answerCFPoll(s, 0)
	}
}

// Closed implements engine.Handler.
func (a *API) Closed(c engine.Conn) {
	switch s := c.Tag().(type) {
	case *ezSub:
		s.ls.remove(s)
	case *cfSub:
		s.ls.removeCF(s)
	}
}

// Drain implements engine.Handler: X-02's hints on a graceful stop. A
// waiting poll answers with retry_ms, a stream ends with its transport's
// hint (WebSocket close 1001 "restart", SSE "retry:").
func (a *API) Drain(c engine.Conn) {
	a.draining.Store(true)
	switch s := c.Tag().(type) {
	case *ezSub:
		if s.kind == subPoll {
			s.ls.answerEmpty(s, a.retryMillis())
			return
		}
		ls, kind := s.ls, s.kind
		ls.remove(s)
		kind.transport().drain(a, ls, c)
	case *cfSub:
		if s.kind == subPoll {
			s.ls.answerCFPoll(s, a.retryMillis())
			return
		}
		ls, kind := s.ls, s.kind
		ls.removeCF(s)
		kind.transport().drain(a, ls, c)
	}
}

// retryMillis is DrainRetry with full jitter (0.5x..1.5x), so clients of
// a stopping node do not all reconnect in the same instant.
func (a *API) retryMillis() int64 {
	base := a.opts.DrainRetry.Milliseconds()
	return base/2 + rand.Int64N(base+1)
}

// Drained implements engine.Handler: the socket of a paused stream
// drained, so its backlog goes on from where it stopped (C-08).
func (a *API) Drained(c engine.Conn) {
	switch s := c.Tag().(type) {
	case *ezSub:
		if s.paused {
			s.paused = false
			s.ls.readFor(s)
		}
	case *cfSub:
		if s.paused {
			s.paused = false
			s.ls.cfReadFor(s, nil)
		}
	}
}
