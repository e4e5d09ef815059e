package protocol

import (
	"time"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// ezSub is one reader waiting on one channel. It is the connection's Tag
// while it waits (poll) or streams (ws, sse), and lives in its loop's
// subscriber index. Owned by its loop goroutine. Every idle reader costs
// one: keep it small (96 bytes, one size class; TestSubscriberSizes).
type ezSub struct {
	conn     engine.Conn
	ls       *loopState
	qname    string
	cursor   uint64           // the seq this reader stands after
	callback []byte           // poll: JSONP callback, or nil
	slotIP   engine.ClientKey // with acctID, the listener slot it holds (C-12); engine.NoClientKey when none
	acctID   uint64           // the incarnation of the account that admitted it
	idx      int32            // position in the channel's subscriber list; -1 when out
	kind     subKind
	gap      bool // poll: a gap to report in the answer
	// paused: a stream whose socket is backlogged (C-08). Deliveries pass
	// it by; Drained reads on from cursor.
	paused bool
	// reading: a store read for it is in flight (readers.go). Deliveries
	// pass it by; the read's result goes on from cursor.
	reading bool
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
	key, limit := newCapKey(acct.ID, r.ClientIP), listenerLimit(&acct)
	slotIP := engine.NoClientKey
	if kind != subPoll {
		if !a.cap.Acquire(key, limit) {
			a.stats.ezRefused.Add(1)
			a.replyError(c, nil, errTooManyListeners)
			return
		}
		// A stream's read ends after its upgrade, when a 503 can no
		// longer be answered: a store known to fail refuses it now.
		if a.store.Healthy() != nil {
			a.cap.Release(key)
			a.replyError(c, nil, errStorage)
			return
		}
		slotIP = key.ip
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
	// A store that refuses (failed, stalled, out of reach) gets the read
	// it would answer 503 or serve as before.
	if tick != nil && timeout != 0 && a.store.Healthy() == nil {
		if cs := ls.atTail(qname, tick); cs != nil {
			a.placeAtTail(ls, c, r, cs, kind, acct.ID, key, limit, slotIP, callback, timeout)
			return
		}
	}
	// The reader waits in the index while its first read is in flight
	// (readers.go), so that the deliveries it lets pass are known.
	s := ls.newSub(c, ls.qnameKey(qname), kind, 0, slotIP)
	s.acctID = acct.ID
	if callback != nil {
		s.callback = append([]byte(nil), callback...)
	}
	j := ls.free.read()
	*j = ezRead{s: s, first: true, lim: a.readLimit(),
		answerNow: timeout == 0, timeout: timeout, key: key, limit: limit}
	if tick != nil {
		j.tick = append(j.tick1[:0], tick...) // a longer tick moves to its own array
	}
	if kind == subPoll {
		j.lim = a.pollFirst()
	}
	ls.add(s)
	if !ls.submit(s, j) {
		ls.free.putRead(j)
		ls.remove(s)
		a.replyError(c, callback, errStorage)
		return
	}
	if kind == subPoll {
		return // answered, or held, when its read is back
	}
	a.openStream(ls, c, r, s)
}

// placeAtTail admits a reader that resumes from the tick of its
// channel's last message delivered on this loop (atTail): at that
// message, with no store read. A poll waits (its listener slot taken
// now, as pollRead takes it after a read); a stream opens.
func (a *API) placeAtTail(ls *loopState, c engine.Conn, r *engine.Request, cs *channelSubs, kind subKind, acctID uint64, key capKey, limit int, slotIP engine.ClientKey, callback []byte, timeout time.Duration) {
	s := ls.newSub(c, cs.key, kind, cs.last, slotIP)
	s.acctID = acctID
	if callback != nil {
		s.callback = append([]byte(nil), callback...)
	}
	ls.add(s)
	if kind == subPoll {
		if ls.admitPoll(s, key, limit, timeout) {
			a.stats.ezPlacedUnread.Add(1)
		}
		return
	}
	a.stats.ezPlacedUnread.Add(1)
	a.openStream(ls, c, r, s)
}

// ezRead is one store read for an EZComet reader (readers.go): its first
// read, from its tick, or a catch-up from its cursor.
type ezRead struct {
	s         *ezSub
	first     bool   // the request's read: from tick; then the reader is admitted
	tick      []byte // first: the resume tick (nil: from the oldest message)
	after     uint64 // a later read: the cursor
	lim       persist.ReadLimit
	gap       bool // poll: a gap to report in its answer
	answerNow bool // poll: answer even with no message (timeout 0)
	// The first read's request, for admitting a poll that waits: its
	// timeout, and its per-IP listener key and cap (C-12).
	timeout time.Duration
	key     capKey
	limit   int

	res  persist.ReadResult // in buf until Run ends
	err  error
	buf  *readBufs // res's and body's memory, from the API's pool
	body []byte    // poll: its answer, rendered off the loop; nil when it waits on

	tick1 [uuidLen]byte // room for the resume tick: a generated one fits
}

func (j *ezRead) loop() int { return j.s.conn.Loop() }

// read runs on a reader: the read, and for a poll that has its answer,
// the answer's further reads and rendering.
func (j *ezRead) read() {
	s := j.s
	a := s.ls.api
	j.buf = a.readBufs.Get().(*readBufs)
	j.lim.Buf = &j.buf.res
	if j.first {
		j.res, j.err = a.store.EZRead(s.qname, j.tick, j.lim)
	} else {
		j.res, j.err = a.store.EZReadAfter(s.qname, j.after, j.lim)
	}
	if j.err == nil && s.kind == subPoll && (len(j.res.Messages) > 0 || j.answerNow) {
		j.body = a.appendPollAnswer(j.buf.body[:0], s.qname, j.res, j.gap || j.res.Gap, j.lim.Buf)
		j.buf.body = j.body
	}
}

// Run implements engine.Task: the read is back on the reader's loop.
// Nothing holds j after it, nor s once it left (pool.go), nor the read's
// buffers, which go back to the API's pool.
func (j *ezRead) Run(int) {
	s := j.s
	ls := s.ls
	if s.conn.Tag() != s {
		// Closed, revoked or answered meanwhile: out of the index, and
		// kept for this result only.
		s.reading = false
		ls.free.putSub(s)
	} else {
		j.run(s, ls)
	}
	if j.buf != nil {
		ls.api.readBufs.Put(j.buf)
	}
	ls.free.putRead(j)
}

func (j *ezRead) run(s *ezSub, ls *loopState) {
	a := ls.api
	s.reading = false
	if j.err != nil {
		a.opts.Log.Error("read failed", "qname", s.qname, "err", j.err)
		c, cb, kind := s.conn, s.callback, s.kind
		ls.remove(s)
		kind.transport().failed(a, c, cb)
		return
	}
	if s.kind == subPoll {
		ls.pollRead(s, j)
		return
	}
	if j.first {
		s.cursor = streamStart(j.res)
	}
	if j.res.Gap {
		ls.sendGap(s)
	}
	ls.stream(s, j.res)
}

// pollRead answers a poll from its read, or lets it wait: admitted (its
// listener slot, its hold) after its first read, and reading on if a
// delivery passed it by meanwhile.
func (ls *loopState) pollRead(s *ezSub, j *ezRead) {
	a := ls.api
	c, cb := s.conn, s.callback
	if j.body != nil {
		ls.remove(s)
		a.reply(c, cb, j.body)
		return
	}
	s.cursor = j.res.Cursor
	s.gap = s.gap || j.res.Gap
	if j.first && !ls.admitPoll(s, j.key, j.limit, j.timeout) {
		return
	}
	if ls.behind(s) {
		ls.readFor(s)
	}
}

// admitPoll admits a poll that waits: it takes its listener slot
// (C-12) and holds its connection for timeout; refused, the poll is
// answered 429 and leaves.
func (ls *loopState) admitPoll(s *ezSub, key capKey, limit int, timeout time.Duration) bool {
	a := ls.api
	if !a.cap.Acquire(key, limit) {
		a.stats.ezRefused.Add(1)
		c, cb := s.conn, s.callback
		ls.remove(s)
		a.replyError(c, cb, errTooManyListeners)
		return false
	}
	s.slotIP = key.ip
	s.conn.Hold(timeout)
	return true
}

// openStream upgrades a stream reader's connection to its transport, or
// takes the reader out when that fails.
func (a *API) openStream(ls *loopState, c engine.Conn, r *engine.Request, s *ezSub) {
	if !s.kind.transport().open(a, c, r) {
		ls.remove(s)
		return
	}
	if s.kind == subSSE {
		// A comment first: some browsers and proxies surface a stream
		// only once body bytes arrive, and an empty channel has none yet.
		c.Send(sseOpen)
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

var (
	gapObject = []byte(`{"gap":true}`) // X-01's signal on an EZComet stream
	sseOpen   = []byte(":\n\n")
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
//
// It runs on a reader (readers.go), never on a loop.
func (a *API) appendPollAnswer(dst []byte, qname string, res persist.ReadResult, gap bool, buf *persist.ReadBuf) []byte {
	b := openMessagesBody(dst, gap, 0, a.opts.ReadBatchBytes)
	for {
		b.add(res.Messages)
		if b.full || !res.More || b.n >= a.opts.ReadBatch {
			return b.close()
		}
		room := b.max - (len(b.dst) - b.start) - len("]}")
		var err error
		// res is rendered: its buffer holds the next part.
		res, err = a.store.EZReadAfter(qname, res.Cursor, persist.ReadLimit{Messages: a.opts.ReadBatch - b.n, Bytes: max(room, 1), Buf: buf})
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
