package protocol

import (
	"errors"
	"time"

	"github.com/halleypush/halley/engine"
)

// The subscriber side shared by both APIs: how a reader (EZComet) or a
// listener (Cometify) is admitted and written to, per transport. The
// halves say what to send; the transport's writer says how it goes out,
// so neither switches on the transport where it sends.

// subKind is a subscriber's transport.
type subKind uint8

const (
	subPoll subKind = iota // a waiting long-poll (EZ-R-01, CF-L-02), answered once
	subWS                  // a WebSocket stream (EZ-R-08, CF-L-01)
	subSSE                 // a Server-Sent Events stream (EZ-R-09, CF-L-03)
)

// transport opens and ends one kind of subscriber connection.
type transport interface {
	// open turns the request r into the subscriber's connection once its
	// checks passed: the WebSocket upgrade (then the JS client's beacon)
	// or the SSE head; a poll opens nothing (it is answered later). It
	// reports false when c was answered with a refusal or went meanwhile.
	open(a *API, c engine.Conn, r *engine.Request) bool
	// drain ends c on a graceful stop, c already out of the
	// index; a poll is answered by its API (with its own empty body).
	drain(a *API, ls *loopState, c engine.Conn)
	// revoked ends c when its credential no longer admits it: a
	// poll gets answer, a WebSocket close 1008, an SSE stream its end.
	revoked(a *API, c engine.Conn, callback []byte, answer *apiError)
	// failed ends c when the store could not serve it: a poll is answered
	// 503 "storage unavailable" (C-10), a stream closes (it resumes from
	// where it stood when it reconnects).
	failed(a *API, c engine.Conn, callback []byte)
}

// streamWriter writes the events of a stream (WebSocket or SSE). obj
// arguments are JSON objects; a live delivery's bytes are built once per
// transport and shared (encoding.go), a replayed message's are rendered
// into the loop's scratch.
type streamWriter interface {
	transport
	// gap sends X-01's signal, obj being its JSON.
	gap(ls *loopState, c engine.Conn, obj []byte)
	// message sends an EZComet message read from the store.
	message(ls *loopState, c engine.Conn, tick, body []byte) bool
	// ezLive is an EZComet delivery's shared bytes for this transport.
	ezLive(d *delivery) []byte
	// push sends s a Cometify push read from the store, given as its SSE
	// event tail (appendPushEvent).
	push(ls *loopState, s *cfSub, tail []byte) bool
	// cfLive sends s a Cometify delivery's shared bytes.
	cfLive(ls *loopState, s *cfSub, d *cfDelivery) bool
	// since sends s its resume point.
	since(ls *loopState, s *cfSub)
}

var (
	transports = [...]transport{subPoll: pollTransport{}, subWS: wsTransport{}, subSSE: sseTransport{}}
	streams    = [...]streamWriter{subWS: wsTransport{}, subSSE: sseTransport{}}
)

func (k subKind) transport() transport { return transports[k] }

// stream is k's event writer; k is subWS or subSSE.
func (k subKind) stream() streamWriter { return streams[k] }

type (
	pollTransport struct{}
	wsTransport   struct{}
	sseTransport  struct{}
)

func (pollTransport) open(*API, engine.Conn, *engine.Request) bool { return true }
func (pollTransport) drain(*API, *loopState, engine.Conn)          {}
func (pollTransport) revoked(a *API, c engine.Conn, callback []byte, answer *apiError) {
	a.replyError(c, callback, answer)
}
func (pollTransport) failed(a *API, c engine.Conn, callback []byte) {
	a.replyError(c, callback, errStorage)
}

func (wsTransport) open(a *API, c engine.Conn, r *engine.Request) bool {
	if err := c.UpgradeWebSocket(r, hdrAPI); err != nil {
		a.replyUpgradeError(c, err)
		return false
	}
	if !c.Alive() {
		return false // the peer went during the upgrade
	}
	// Browsers see no WebSocket pings: the JS client sends "ping" and
	// gets {"pong":true} (a frame without data, X-04), so it can tell a
	// quiet stream from a dead one.
	c.Beacon()
	return true
}

func (wsTransport) drain(_ *API, _ *loopState, c engine.Conn) { c.CloseWebSocket(1001, "restart") }
func (wsTransport) revoked(_ *API, c engine.Conn, _ []byte, _ *apiError) {
	c.CloseWebSocket(1008, "revoked")
}
func (wsTransport) failed(_ *API, c engine.Conn, _ []byte) { c.Close() }

func (wsTransport) gap(ls *loopState, c engine.Conn, obj []byte) {
	ls.frame = engine.AppendTextFrame(ls.frame[:0], obj)
	c.Send(ls.frame)
}

func (wsTransport) message(ls *loopState, c engine.Conn, tick, body []byte) bool {
	ls.out = appendPair(ls.out[:0], tick, body)
	ls.frame = engine.AppendTextFrame(ls.frame[:0], ls.out)
	return c.Send(ls.frame)
}

func (wsTransport) ezLive(d *delivery) []byte { return d.wsFrame() }

func (wsTransport) push(ls *loopState, s *cfSub, tail []byte) bool {
	ls.frame = engine.AppendTextFrame(ls.frame[:0], eventObject(tail))
	return s.conn.Send(ls.frame)
}

func (wsTransport) cfLive(_ *loopState, s *cfSub, d *cfDelivery) bool {
	return s.conn.Send(d.wsFrame())
}

func (wsTransport) since(ls *loopState, s *cfSub) {
	ls.out = append(ls.out[:0], `{"since":"`...)
	ls.out = appendSince(ls.out, s)
	ls.out = append(ls.out, `"}`...)
	ls.frame = engine.AppendTextFrame(ls.frame[:0], ls.out)
	s.conn.Send(ls.frame)
}

func (sseTransport) open(_ *API, c engine.Conn, _ *engine.Request) bool {
	c.StartStream(ctSSE, hdrSSE)
	return c.Alive()
}

// drain ends an SSE stream with a jittered "retry:", so that
// clients of a stopping node do not all come back in the same instant.
func (sseTransport) drain(a *API, ls *loopState, c engine.Conn) {
	ls.out = append(ls.out[:0], "retry: "...)
	ls.out = appendInt(ls.out, a.retryMillis())
	ls.out = append(ls.out, "\n\n"...)
	c.Send(ls.out)
	c.Close()
}

func (sseTransport) revoked(_ *API, c engine.Conn, _ []byte, _ *apiError) { c.Close() }
func (sseTransport) failed(_ *API, c engine.Conn, _ []byte)               { c.Close() }

func (sseTransport) gap(ls *loopState, c engine.Conn, obj []byte) {
	ls.frame = append(append(ls.frame[:0], "event: gap\ndata: "...), obj...)
	c.Send(append(ls.frame, "\n\n"...))
}

func (sseTransport) message(ls *loopState, c engine.Conn, tick, body []byte) bool {
	ls.out = appendSSEEvent(ls.out[:0], tick, body)
	return c.Send(ls.out)
}

func (sseTransport) ezLive(d *delivery) []byte { return d.sseEvent() }

// push sends the event with the listener's own resume point as its id
// only that prefix is the listener's, the tail is shared.
func (sseTransport) push(ls *loopState, s *cfSub, tail []byte) bool {
	ls.out = append(ls.out[:0], "id: "...)
	ls.out = appendSince(ls.out, s)
	ls.out = append(ls.out, tail...)
	return s.conn.Send(ls.out)
}

func (t sseTransport) cfLive(ls *loopState, s *cfSub, d *cfDelivery) bool {
	return t.push(ls, s, d.sseTail())
}

func (sseTransport) since(ls *loopState, s *cfSub) {
	ls.out = append(ls.out[:0], "id: "...)
	ls.out = appendSince(ls.out, s)
	ls.out = append(ls.out, "\n\n"...)
	s.conn.Send(ls.out)
}

// readPrelude parses a subscribing request's query into f and answers
// what every transport refuses first: a bad JSONP callback (read first,
// so that every later error is JSONP too), a method other than GET, a
// draining server. It returns the poll's callback (nil for streams) and
// whether to go on.
func (a *API) readPrelude(f *form, c engine.Conn, r *engine.Request, kind subKind) ([]byte, bool) {
	f.parse(r.Query, nil, false)
	var callback []byte
	if kind == subPoll {
		if cb, ok := f.get("callback"); ok {
			if !validCallback(cb) {
				a.replyError(c, nil, errBadCallback)
				return nil, false
			}
			callback = cb
		}
	}
	if !isGet(r) {
		a.replyError(c, callback, errMethod)
		return nil, false
	}
	if a.draining.Load() {
		a.replyError(c, callback, errShuttingDown)
		return nil, false
	}
	return callback, true
}

// pollTimeout is a poll's wait (EZ-R-05, CF-L-02): the timeout
// parameter, or the default; streams take none. ok is false for a bad
// value (a 400).
func (a *API) pollTimeout(f *form, kind subKind) (time.Duration, bool) {
	v, given := f.get("timeout")
	if !given || kind != subPoll {
		return a.opts.DefaultTimeout, true
	}
	n, ok := parseTimeout(v, int(a.opts.MaxTimeout/time.Second))
	return time.Duration(n) * time.Second, ok
}

// hdrUpgradeVersion is C-13's 426 header block: the version the server
// speaks.
var hdrUpgradeVersion = append(append([]byte(nil), hdrAPI...), "Sec-WebSocket-Version: 13\r\n"...)

// replyUpgradeError answers a refused WebSocket upgrade (C-13): 426 with
// the version the server speaks when the client asked for another one,
// else 400.
func (a *API) replyUpgradeError(c engine.Conn, err error) {
	if errors.Is(err, engine.ErrUpgradeVersion) {
		a.stats.errors.Add(1)
		c.Reply(errUpgradeVersion.status, ctJSON, hdrUpgradeVersion, errUpgradeVersion.body)
		return
	}
	a.replyError(c, nil, errBadUpgrade)
}
