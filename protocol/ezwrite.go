package protocol

import (
	"bytes"
	"time"
	"unsafe"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// serveWrite handles GET|POST /write (SPEC EZ-W-01..09). Checks run in
// C-04's order: 405, 401, 400, 413, 403; 409, and 401 for an account
// removed while the write waited (persist.ErrRevoked), come from the
// store.
func (a *API) serveWrite(ls *loopState, c engine.Conn, r *engine.Request) {
	method := string(r.Method)
	if method != "GET" && method != "POST" {
		a.replyError(c, nil, errMethod)
		return
	}
	if a.draining.Load() {
		a.replyError(c, nil, errShuttingDown)
		return
	}
	f := &ls.form
	f.parse(r.Query, r.Body, method == "POST" && isFormBody(r))

	key, _ := f.get("api_key")
	if len(key) == 0 {
		a.replyError(c, nil, errMissingKey)
		return
	}
	acct, ok := a.store.AccountByAPIKey(key) // the private key only (EZ-W-01)
	if !ok {
		a.replyError(c, nil, errUnknownKey)
		return
	}
	qname, user, e := formQName(f)
	if e != nil {
		a.replyError(c, nil, e)
		return
	}
	flagFlush, _ := f.get("flush")
	flush := string(flagFlush) == "1"
	msg, hasMsg := f.get("msg")
	if !flush && !hasMsg {
		a.replyError(c, nil, errMissingMsg)
		return
	}
	tick, hasTick := f.get("tick")
	if !flush && hasTick && !validTick(tick) {
		a.replyError(c, nil, errBadTick)
		return
	}
	if !flush && len(msg) > maxMsg {
		a.replyError(c, nil, errMsgTooLarge)
		return
	}
	if string(user) != acct.Username {
		a.replyError(c, nil, errNotOwner)
		return
	}

	a.store.EZWriteTo(newWriteOp(a, c, acct.ID, qname, tick, hasTick, msg, flush))
}

// writeOp is one /write from its acceptance to its answer: the store's
// completion, the answer run on the writer's loop and (through d) the
// delivery every loop runs. buf holds the qname, tick and body, and the
// rooms of the message's encodings (built later, only for the transports
// that have subscribers). Nothing in it but those lazy encodings changes
// after WriteDone gathers it. Ops are recycled (API.writeOps) once every
// loop has run the group that holds them (fanout.go), buffer and all, so
// that a publish allocates nothing in the steady state (P5).
type writeOp struct {
	conn   engine.Conn
	def    engine.Deferred // the answer, in the connection's request order
	api    *API
	w      persist.EZWrite
	start  time.Time
	failed *apiError // the answer when the store refused the write
	d      delivery
	buf    []byte // what w, d and the rooms point into; kept across uses
}

// maxPooledWriteBuf bounds the buffer a recycled op keeps: one that grew
// past it for a large message is dropped, so a burst of large writes
// leaves no large buffers behind in the pool.
const maxPooledWriteBuf = 4 << 10

// newWriteOp copies what the write keeps out of the loop's form buffer
// (reused by the next request), and defers the request's answer: the
// engine serves the connection's next pipelined writes while this one
// waits for its commit (issue 16), so they reach the store together.
// Called during Serve, just before the write is handed to the store.
func newWriteOp(a *API, c engine.Conn, accountID uint64, qname, tick []byte, hasTick bool, msg []byte, flush bool) (persist.EZWrite, *writeOp) {
	op, _ := a.writeOps.Get().(*writeOp)
	if op == nil {
		op = new(writeOp)
	}
	buf := op.buf
	*op = writeOp{api: a, conn: c, def: c.Defer(), start: time.Now()}
	op.w.AccountID = accountID
	tickLen := 0
	if !flush {
		tickLen = uuidLen
		if hasTick {
			tickLen = len(tick)
		}
	} else {
		msg = nil
	}
	n := len(qname) + tickLen + len(msg)
	spare := 0
	if !flush {
		spare = ezRooms(tickLen + len(msg))
	}
	if cap(buf) < n+spare {
		buf = make([]byte, n, n+spare)
	}
	buf = buf[:n] // copied over below; the rooms are carved empty
	op.buf = buf
	copy(buf, qname)
	t := buf[len(qname) : len(qname)+tickLen : len(qname)+tickLen]
	if hasTick {
		copy(t, tick)
	} else if !flush {
		// Room for the tick the store generates (persist/gentick.go),
		// filled by the time the write completes.
		op.w.NewTick = true
	}
	body := buf[len(qname)+tickLen : n : n]
	copy(body, msg)
	// The qname's bytes never change once copied, so the string can
	// share them (as fasthttp's b2s does) instead of copying again.
	op.w.QName = unsafe.String(&buf[0], len(qname))
	op.w.Flush = flush
	op.d = delivery{qname: op.w.QName}
	if !flush {
		op.w.Tick, op.w.Body = t, body
		op.d.tick, op.d.body = t, body
		op.d.reserve(buf)
	}
	return op.w, op
}

// WriteDone implements persist.WriteCompletion. It runs on the committer
// goroutine once the write is durable (or failed), or on the writer's
// loop when the store refused it before queueing, and gathers the answer
// and the delivery for the loops (fanout.go); it must not block.
func (op *writeOp) WriteDone(res persist.EZWriteResult) {
	a := op.api
	answer, refusal := refusalOf(res.Err, writeRefusals)
	op.failed = a.stats.writes.done(a, time.Since(op.start), res.Err, refusal, answer, "write", op.w.QName)
	if op.failed != nil {
		a.gather(op.conn.Loop(), op, nil, true)
		return
	}
	op.d.seq = res.Msg.Seq
	if op.w.NewTick {
		op.takeTick(res.Msg.Tick)
	}
	var d fanout
	if !op.w.Flush && !res.Duplicate {
		d = &op.d
	}
	a.gather(op.conn.Loop(), op, d, false)
}

// recycle implements recycler: every loop has run the group holding op,
// and the store let go of its bytes when it completed it.
func (op *writeOp) recycle() {
	a := op.api
	*op = writeOp{buf: keptBuf(op.buf)}
	a.writeOps.Put(op)
}

// keptBuf is what a recycled op keeps of its buffer: all of it, emptied,
// unless it grew past maxPooledWriteBuf.
func keptBuf(buf []byte) []byte {
	if cap(buf) > maxPooledWriteBuf {
		return nil
	}
	return buf[:0]
}

// takeTick puts the tick the store generated into the write's room for
// it, where the answer and the delivery read it. A local Store wrote it
// there already (tick is that room); a remote one sent it back (cluster);
// a store that sent none gets a random UUID in its place.
func (op *writeOp) takeTick(tick []byte) {
	room := op.w.Tick
	switch {
	case len(tick) == len(room) && &tick[0] == &room[0]:
	case len(tick) == len(room):
		copy(room, tick)
	default:
		putUUID(room)
	}
}

// answer implements answerer: the writer's answer, on its loop (EZ-W-05:
// {"code":"ok","tick":"<tick>"}, or {"code":"ok"} for a flush).
func (op *writeOp) answer(ls *loopState) {
	switch {
	case op.failed != nil:
		op.api.replyDeferredError(op.def, op.failed)
	case op.w.Flush:
		op.def.Reply(200, ctJSON, hdrAPI, bodyOK)
	default:
		ls.out = appendAck(ls.out[:0], op.w.Tick)
		op.def.Reply(200, ctJSON, hdrAPI, ls.out)
	}
}

// appendAck renders EZ-W-05's answer {"code":"ok","tick":"<tick>"}.
func appendAck(dst, tick []byte) []byte {
	dst = append(dst, `{"code":"ok","tick":`...)
	dst = appendJSONString(dst, tick)
	return append(dst, '}')
}

// isFormBody: a POST body is decoded as a form when it says it is one,
// or says nothing (PHP's and curl's defaults).
func isFormBody(r *engine.Request) bool {
	if r.Header == nil {
		return true
	}
	ct := r.Header.Peek("Content-Type")
	if len(ct) == 0 {
		return true
	}
	const form = "application/x-www-form-urlencoded"
	return len(ct) >= len(form) && bytes.EqualFold(ct[:len(form)], []byte(form))
}
