package protocol

import (
	"errors"
	"time"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

type subKind uint8

const (
	subPoll subKind = iota // a waiting long-poll (EZ-R-01)
	subWS                  // a WebSocket reader (EZ-R-08)
	subSSE                 // a Server-Sent Events reader (EZ-R-09)
)

// ezSub is one reader waiting on one channel. It is the connection's Tag
// while it waits (poll) or streams (ws, sse), and lives in its loop's
// subscriber index. Owned by its loop goroutine. Every idle reader costs
// one: keep it small (96 bytes, one size class; TestSubscriberSizes).
type ezSub struct {
	conn     engine.Conn
	ls       *loopState
	qname    string
	cursor   uint64   // the seq this reader stands after
	callback []byte   // poll: JSONP callback, or nil
	slot     *capSlot // its per-IP listener slot (C-12), nil when none
	acctID   uint64   // the incarnation of the account that admitted it
	idx      int32    // position in the channel's subscriber list; -1 when out
	kind     subKind
	gap      bool // poll: a gap to report in the answer
	// paused: a stream whose socket is backlogged (C-08). Deliveries pass
	// it by; Drained reads on from cursor.
	paused bool
}

// readPrelude parses a read's query into f and answers what every read
// transport refuses first: a bad JSONP callback (read first, so that every
// later error is JSONP too), a method other than GET, a draining server.
// It returns the poll's callback (nil for streams) and whether to go on.
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

// pollTimeout is a poll's wait (EZ-R-05): the timeout parameter, or the
// default; streams take none. ok is false for a bad value (a 400).
func (a *API) pollTimeout(f *form, kind subKind) (time.Duration, bool) {
	v, given := f.get("timeout")
	if !given || kind != subPoll {
		return a.opts.DefaultTimeout, true
	}
	n, ok := parseTimeout(v, int(a.opts.MaxTimeout/time.Second))
	return time.Duration(n) * time.Second, ok
}

// serveRead handles /read, /read/ws and /read/sse (SPEC EZ-R-01..10).
// Checks run in C-04's order, then the per-IP listener cap (C-12: 429),
// all before any upgrade.
func (a *API) serveRead(ls *loopState, c engine.Conn, r *engine.Request, kind subKind) {
	f := &ls.form
	callback, ok := a.readPrelude(f, c, r, kind)
	if !ok {
		return
	}
	qname, user, e := formQName(f)
	if e != nil {
		a.replyError(c, callback, e)
		return
	}
	timeout, ok := a.pollTimeout(f, kind)
	if !ok {
		a.replyError(c, callback, errBadTimeout)
		return
	}
	acct, ok := a.store.AccountByName(user)
	if !ok {
		a.replyError(c, callback, errUnknownUser)
		return
	}
	// A reader is a listener of its channel's account (C-12): a stream
	// from its first byte, a poll while it waits. Take a stream's slot
	// before reading, so a burst over the cap costs no store read.
	key, limit := newCapKey(acct.Username, r.ClientIP), listenerLimit(&acct)
	var slot *capSlot
	if kind != subPoll {
		if slot = a.cap.acquire(key, limit); slot == nil {
			a.stats.ezRefused.Add(1)
			a.replyError(c, nil, errTooManyListeners)
			return
		}
	}
	tick, _ := f.get("tick")
	if kind == subSSE && r.Header != nil {
		if id := r.Header.Peek("Last-Event-ID"); len(id) > 0 {
			tick = id
		}
	}
	if isNullTick(tick) {
		tick = nil
	}
	lim := a.readLimit()
	if kind == subPoll {
		lim = a.pollFirst()
	}
	res, err := a.store.EZRead(string(qname), tick, lim)
	if err != nil {
		a.opts.Log.Error("read failed", "qname", string(qname), "err", err)
		a.cap.releaseIfHeld(slot)
		a.replyError(c, callback, errStorage)
		return
	}

	switch kind {
	case subPoll:
		if len(res.Messages) > 0 || timeout == 0 {
			ls.out = ls.appendPollAnswer(ls.out[:0], string(qname), res, res.Gap)
			a.reply(c, callback, ls.out)
			return
		}
		if slot = a.cap.acquire(key, limit); slot == nil {
			a.stats.ezRefused.Add(1)
			a.replyError(c, callback, errTooManyListeners)
			return
		}
		s := ls.newSub(c, string(qname), kind, res.Cursor, slot)
		s.acctID, s.gap = acct.ID, res.Gap
		if callback != nil {
			s.callback = append([]byte(nil), callback...)
		}
		ls.add(s)
		a.stats.pollsWaiting.Add(1)
		c.Hold(timeout)
	case subWS, subSSE:
		if kind == subWS {
			if err := c.UpgradeWebSocket(r, hdrAPI); err != nil {
				a.cap.release(slot)
				a.replyUpgradeError(c, err)
				return
			}
		} else {
			c.StartStream(ctSSE, hdrSSE)
		}
		if !c.Alive() {
			// The peer went during the upgrade: gnet closed the conn
			// before it had a tag, so no Closed will free the slot.
			a.cap.release(slot)
			return
		}
		s := ls.newSub(c, string(qname), kind, streamStart(res), slot)
		s.acctID = acct.ID
		if kind == subWS {
			a.stats.wsReaders.Add(1)
			c.Beacon() // the JS client's liveness check; see serveListen
			if res.Gap {
				c.Send(frameGap)
			}
		} else {
			a.stats.sseReaders.Add(1)
			// A comment first: some browsers and proxies surface a stream
			// only once body bytes arrive, and an empty channel has none yet.
			c.Send(sseOpen)
			if res.Gap {
				c.Send(sseGap)
			}
		}
		// Indexed before its backlog goes out: if the socket backlogs, the
		// reader waits paused in the index, and deliveries meanwhile find
		// it there and pass it by.
		ls.add(s)
		ls.stream(s, res)
	}
}

// streamStart is where a stream stands before res goes out: just before
// its first message (a read may stop at a backlogged socket and go on
// from there), or where the read left it when it returned none.
func streamStart(res persist.ReadResult) uint64 {
	if len(res.Messages) > 0 {
		return res.Messages[0].Seq - 1
	}
	return res.Cursor
}

// hdrUpgradeVersion is C-13's 426 header block: the version the server
// speaks.
var hdrUpgradeVersion = append(append([]byte(nil), hdrAPI...), "Sec-WebSocket-Version: 13\r\n"...)

// replyUpgradeError answers a refused WebSocket upgrade (C-13): 426 with
// the version the server speaks when the client asked for another one,
// else 400. The caller has given back any slot it took.
func (a *API) replyUpgradeError(c engine.Conn, err error) {
	if errors.Is(err, engine.ErrUpgradeVersion) {
		a.stats.errors.Add(1)
		c.Reply(errUpgradeVersion.status, ctJSON, hdrUpgradeVersion, errUpgradeVersion.body)
		return
	}
	a.replyError(c, nil, errBadUpgrade)
}

var (
	frameGap = engine.AppendTextFrame(nil, []byte(`{"gap":true}`))
	sseGap   = []byte("event: gap\ndata: {\"gap\":true}\n\n")
	sseOpen  = []byte(":\n\n")
)

// appendMessagesBody renders a long-poll answer (EZ-R-01, X-01, X-02)
// holding msgs' first messages: as many as keep the answer within
// maxBytes, and at least one. The reader goes on from the last tick it
// got (EZ-R-06), so a cut loses nothing.
func appendMessagesBody(dst []byte, msgs []persist.Message, gap bool, retryMillis int64, maxBytes int) []byte {
	b := openMessagesBody(dst, gap, retryMillis, maxBytes)
	b.add(msgs)
	return b.close()
}

// messagesBody is a long-poll answer being rendered: its messages come
// in one or more parts (add), as many as keep it within max bytes, and
// at least one.
type messagesBody struct {
	dst   []byte
	start int // where the answer starts in dst
	max   int
	n     int  // messages in it
	full  bool // a message was left out for max
}

func openMessagesBody(dst []byte, gap bool, retryMillis int64, maxBytes int) messagesBody {
	b := messagesBody{start: len(dst), max: maxBytes}
	dst = append(dst, `{"code":"ok",`...)
	if gap {
		dst = append(dst, `"gap":true,`...)
	}
	if retryMillis > 0 {
		dst = append(dst, `"retry_ms":`...)
		dst = appendInt(dst, retryMillis)
		dst = append(dst, ',')
	}
	b.dst = append(dst, `"messages":[`...)
	return b
}

// add appends msgs' first messages while they fit.
func (b *messagesBody) add(msgs []persist.Message) {
	for _, m := range msgs {
		if b.full {
			return
		}
		mark := len(b.dst)
		if b.n > 0 {
			b.dst = append(b.dst, ',')
		}
		b.dst = appendPair(b.dst, m.Tick, m.Body)
		if b.n > 0 && len(b.dst)-b.start+len("]}") > b.max {
			b.dst, b.full = b.dst[:mark], true
			return
		}
		b.n++
	}
}

func (b *messagesBody) close() []byte { return append(b.dst, "]}"...) }

// appendPollAnswer renders a long-poll answer from res, the first read
// after the reader's resume point (pollFirst), and from further reads
// after it while the answer has room and more messages are queued. The
// first read holds a quarter of ReadBatchBytes, each further one what
// the answer has room for (stored bytes encode to at least as many): a
// poll reads little more than it sends however its messages encode (a
// control byte takes six in JSON), rather than a whole answer's worth of
// copies most of which the bound would drop. A later read that finds
// messages dropped after the last one given (retention or a flush
// meanwhile) ends the answer before them: the reader's next poll, from
// the last tick it got, is told the gap.
func (ls *loopState) appendPollAnswer(dst []byte, qname string, res persist.ReadResult, gap bool) []byte {
	a := ls.api
	b := openMessagesBody(dst, gap, 0, a.opts.ReadBatchBytes)
	for {
		b.add(res.Messages)
		if b.full || !res.More || b.n >= a.opts.ReadBatch {
			return b.close()
		}
		room := b.max - (len(b.dst) - b.start) - len("]}")
		var err error
		res, err = a.store.EZReadAfter(qname, res.Cursor, persist.ReadLimit{Messages: a.opts.ReadBatch - b.n, Bytes: max(room, 1)})
		if err != nil {
			a.opts.Log.Error("read failed", "qname", qname, "err", err)
			return b.close() // what it has; the next poll reads on
		}
		if res.Gap {
			return b.close()
		}
	}
}

// pollFirst bounds the first store read behind a long-poll answer (see
// appendPollAnswer).
func (a *API) pollFirst() persist.ReadLimit {
	return persist.ReadLimit{Messages: a.opts.ReadBatch, Bytes: max(a.opts.ReadBatchBytes/4, 1)}
}

func appendInt(dst []byte, n int64) []byte {
	if n < 0 {
		return appendUint(append(dst, '-'), uint64(-n))
	}
	return appendUint(dst, uint64(n))
}

// appendPair renders one message as EZ-R-01's ["<tick>","<msg>"].
func appendPair(dst, tick, body []byte) []byte {
	dst = append(dst, '[')
	dst = appendJSONString(dst, tick)
	dst = append(dst, ',')
	dst = appendJSONString(dst, body)
	return append(dst, ']')
}

// appendSSEEvent renders one message as an SSE event (EZ-R-09): id is the
// tick, and the body is split into data: lines at every line ending, as
// the EventSource parser will join them with "\n".
func appendSSEEvent(dst, tick, body []byte) []byte {
	dst = append(dst, "id: "...)
	dst = append(dst, tick...)
	dst = append(dst, "\ndata: "...)
	for i := 0; i < len(body); i++ {
		switch c := body[i]; c {
		case '\r':
			if i+1 < len(body) && body[i+1] == '\n' {
				i++
			}
			dst = append(dst, "\ndata: "...)
		case '\n':
			dst = append(dst, "\ndata: "...)
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, "\n\n"...)
}
