package protocol

import (
	"time"
	"unsafe"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// servePush handles POST /{apiKey}/push/{identifier} (SPEC CF-P-01..10).
// Checks run in C-04's order: 405, 401, 400, 413, 403; the store answers
// 409, and CF-P-09's and CF-P-10's replays (403).
func (a *API) servePush(ls *loopState, c engine.Conn, r *engine.Request, key, pathIdent []byte) {
	if string(r.Method) != "POST" {
		a.replyError(c, nil, errMethod)
		return
	}
	if a.draining.Load() {
		a.replyError(c, nil, errShuttingDown)
		return
	}
	f := &ls.form
	f.parse(r.Query, r.Body, isFormBody(r))
	acct, ok := a.store.AccountByCFKey(key) // the public key only (CF-P-07)
	if !ok {
		a.replyError(c, nil, errUnknownKey)
		return
	}
	if !validIdentifier(pathIdent) {
		a.replyError(c, nil, errBadIdentifier)
		return
	}
	if f.err != nil {
		a.replyError(c, nil, f.err)
		return
	}
	var pf pushFields
	pf.ident, ok = f.get("identifier")
	if !ok {
		a.replyError(c, nil, errMissingIdentifier)
		return
	}
	if !equalFoldASCII(pf.ident, pathIdent) {
		a.replyError(c, nil, errIdentifierMismatch)
		return
	}
	pf.secret, _ = f.get("secret")
	if string(pf.secret) != "0" && string(pf.secret) != "1" {
		a.replyError(c, nil, errBadSecret)
		return
	}
	pf.text, ok = f.get("text")
	if !ok {
		a.replyError(c, nil, errMissingText)
		return
	}
	auth, e := parsePushAuth(f)
	if e != nil {
		a.replyError(c, nil, e)
		return
	}
	var pushID uint64
	idRaw, hasID := f.get("push_id")
	if hasID {
		if pushID, ok = parsePushID(idRaw); !ok {
			a.replyError(c, nil, errBadPushID)
			return
		}
	}
	pf.pushID = idRaw
	if len(pf.text) > maxCFText {
		a.replyError(c, nil, errTextTooLarge)
		return
	}
	digest, e := a.verifyPush(ls, a.signers[c.Loop()], &acct, &auth, &pf)
	if e != nil {
		a.replyError(c, nil, e)
		return
	}
	p := persist.CFPush{
		ID: pushID, HasID: hasID, Secret: string(pf.secret) == "1",
		AccountID: acct.ID, Secure: digest, HasSecure: auth.hasSecure,
	}
	a.store.CFPushTo(newPushOp(a, c, p, acct.Username, pathIdent, pf.text, auth.nonce))
}

// pushOp is one push from its acceptance to its answer: the store's
// completion, the answer run on the pusher's loop and (through d) the
// delivery every loop runs. Recycled with its buffer as writeOp is.
type pushOp struct {
	api    *API
	conn   engine.Conn
	def    engine.Deferred // the answer, in the connection's request order
	p      persist.CFPush
	start  time.Time
	failed *apiError
	d      cfDelivery
	buf    []byte // what p, d and the rooms point into; kept across uses
}

// newPushOp completes p with what the push keeps out of the loop's
// buffers (reused by the next request), copied into one allocation: the
// topic, the text and the CF-P-10 nonce, and the rooms of the push's
// encodings (built later, only for the transports that have listeners).
// It defers the request's answer, as newWriteOp does.
func newPushOp(a *API, c engine.Conn, p persist.CFPush, user string, ident, text, nonce []byte) (persist.CFPush, *pushOp) {
	op, _ := a.pushOps.Get().(*pushOp)
	if op == nil {
		op = new(pushOp)
	}
	buf := op.buf[:0]
	*op = pushOp{api: a, conn: c, def: c.Defer(), start: time.Now()}
	n := len(user) + 1 + len(ident)
	if size := n + len(text) + len(nonce) + cfRooms(len(ident)+len(text)); cap(buf) < size {
		buf = make([]byte, 0, size)
	}
	buf = append(buf, user...)
	buf = append(buf, '/')
	buf = appendLower(buf, ident)
	buf = append(buf, text...)
	buf = append(buf, nonce...)
	// The buffer is not modified again until the op is recycled, so
	// strings may share it; a store that keeps Topic or Nonce past done
	// clones it (the op's next push reuses the bytes).
	p.Topic = unsafe.String(&buf[0], n)
	p.Text = buf[n : n+len(text) : n+len(text)]
	if len(nonce) > 0 {
		p.Nonce = unsafe.String(&buf[n+len(text)], len(nonce))
	}
	op.p, op.buf = p, buf
	op.d = cfDelivery{topic: p.Topic, name: p.Topic[len(user)+1:], secret: p.Secret, text: p.Text}
	op.d.reserve(buf)
	return op.p, op
}

// CFPushDone implements persist.CFCompletion. It runs on the committer
// goroutine once the push is durable (or failed), or on the pusher's loop
// when the store refused it before queueing: it encodes the push (its id
// is known only now) and gathers the answer and the delivery for the
// loops (fanout.go), in acceptance order, so every loop sees a topic's
// pushes in id order.
func (op *pushOp) CFPushDone(res persist.CFPushResult) {
	a := op.api
	answer, refusal := refusalOf(res.Err, pushRefusals)
	op.failed = a.stats.pushes.done(a, time.Since(op.start), res.Err, refusal, answer, "push", op.p.Topic)
	if op.failed != nil {
		a.gather(op.conn.Loop(), op, nil, true)
		return
	}
	op.d.id = res.Msg.ID
	var d fanout
	if !res.Duplicate {
		d = &op.d
	}
	a.gather(op.conn.Loop(), op, d, false)
}

// recycle implements recycler, as writeOp's.
func (op *pushOp) recycle() {
	a := op.api
	*op = pushOp{buf: keptBuf(op.buf)}
	a.pushOps.Put(op)
}

// answer implements answerer: the pusher's answer, on its loop
// (CF-P-05: {"code":"ok","push_id":N}).
func (op *pushOp) answer(ls *loopState) {
	if op.failed != nil {
		op.api.replyDeferredError(op.def, op.failed)
		return
	}
	ls.out = append(ls.out[:0], `{"code":"ok","push_id":`...)
	ls.out = appendUint(ls.out, op.d.id)
	ls.out = append(ls.out, '}')
	op.def.Reply(200, ctJSON, hdrAPI, ls.out)
}
