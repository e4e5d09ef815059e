package protocol

import (
	"bytes"
	"errors"
	"time"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// serveWrite handles GET|POST /write (SPEC EZ-W-01..09). Checks run in
// C-04's order: 405, 401, 400, 413, 403; 409 comes from the store.
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
	acct, ok := a.store.AccountByKey(key)
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

	// The form buffer is reused by the next request on this loop: the
	// write owns copies of what it keeps.
	w := persist.EZWrite{QName: string(qname), Flush: flush}
	if !flush {
		// Tick and body share one allocation.
		tickLen := uuidLen
		if hasTick {
			tickLen = len(tick)
		}
		buf := make([]byte, tickLen+len(msg))
		if hasTick {
			copy(buf, tick)
		} else {
			putUUID(buf[:uuidLen])
			w.NewTick = true
		}
		copy(buf[tickLen:], msg)
		w.Tick, w.Body = buf[:tickLen:tickLen], buf[tickLen:]
	}
	start := time.Now()
	a.store.EZWrite(w, func(res persist.EZWriteResult) {
		a.writeDone(c, w, res, start)
	})
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

// writeDone runs on persist's committer goroutine once the write is
// durable (or failed). It encodes the answer and the delivery once, then
// hands them to the loops; it must not block.
func (a *API) writeDone(c engine.Conn, w persist.EZWrite, res persist.EZWriteResult, start time.Time) {
	a.stats.writeLatency.observe(time.Since(start))
	var e *apiError
	switch {
	case errors.Is(res.Err, persist.ErrTickConflict):
		e = errTickConflict
	case res.Err != nil:
		a.opts.Log.Error("write failed", "qname", w.QName, "err", res.Err)
		e = errStorage
	}
	if e != nil {
		a.stats.writesFailed.Add(1)
		a.loops.Post(c.Loop(), func() { a.replyError(c, nil, e) })
		return
	}
	a.stats.writesOK.Add(1)
	switch {
	case w.Flush:
		a.loops.Post(c.Loop(), func() { c.Reply(200, ctJSON, hdrAPI, bodyOK) })
	case res.Duplicate:
		ack := appendAck(make([]byte, 0, 24+len(w.Tick)), w.Tick)
		a.loops.Post(c.Loop(), func() { c.Reply(200, ctJSON, hdrAPI, ack) })
	default:
		d := newDelivery(w.QName, res.Msg)
		a.loops.Post(c.Loop(), func() { c.Reply(200, ctJSON, hdrAPI, d.ack) })
		a.loops.Broadcast(func(loop int) { a.state[loop].deliver(d) })
	}
}
