package protocol

import (
	"slices"
	"strings"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// cfSub is one Cometify listener (CF-L-01..03): a WebSocket or SSE stream
// for its whole life, or a long-poll while it waits. It is the
// connection's Tag, holds one of its client IP's listener slots (CF-L-08)
// and sits in its loop's topic index once per identifier. Owned by its
// loop goroutine. Every idle listener costs one: keep it small (112
// bytes, one size class; TestSubscriberSizes).
type cfSub struct {
	conn     engine.Conn
	ls       *loopState
	slot     *capSlot // the per-IP listener slot it holds, nil when none
	callback []byte   // poll: JSONP callback, or nil
	watches  []cfWatch
	// What admitted it: the account's incarnation and credential
	// generations. A change of either closes it (revoke.go).
	acctID            uint64
	keyGen, secretGen uint32
	// start is when the listener was admitted (Unix ns, Options.Now): its
	// replay windows stay anchored there while its backlog goes out in
	// parts, so a later read neither invents a gap nor drops a push
	// because the clock moved on.
	start  int64
	kind   subKind
	secure bool // a valid secureKey: secret pushes reach it (CF-L-07)
	// paused: a stream whose socket is backlogged (C-08). Deliveries pass
	// it by; Drained reads on from its cursors.
	paused bool
}

// cfWatch is one identifier of a listener.
type cfWatch struct {
	topic  string // "<username>/<identifier lowercased>", shared with the index key
	cursor uint64 // the highest push id this listener has, or stands after
	idx    int    // position in the topic's subscriber list; -1 when out
	// gap: a poll reports this identifier in gap_identifiers; a
	// stream has told its gap and sent no push of it since, so reading
	// again from the same cursor does not tell it twice.
	gap  bool
	wide bool // asked from id 0: replays CFReplayWindow (CF-L-05)
}

// name is the identifier, lowercased.
func (w *cfWatch) name() string { return w.topic[strings.IndexByte(w.topic, '/')+1:] }

// serveListen handles /{apiKey}/listen, /poll and /sse (SPEC CF-L-01..09,
// Checks run in C-04's order: 405, 401, 400, 403, then the
// per-IP cap (429), all before any upgrade.
func (a *API) serveListen(ls *loopState, c engine.Conn, r *engine.Request, key []byte, kind subKind) {
	f := &ls.form
	callback, ok := a.readPrelude(f, c, r, kind)
	if !ok {
		return
	}
	acct, known := a.store.AccountByCFKey(key)
	if !known {
		a.replyError(c, callback, errUnknownKey)
		return
	}
	if f.err != nil {
		a.replyError(c, callback, f.err)
		return
	}
	list, _ := f.get("identifiers")
	items, e := parseList(ls.items, list, a.opts.MaxIdentifiers)
	ls.items = items
	if e != nil {
		a.replyError(c, callback, e)
		return
	}
	timeout, ok := a.pollTimeout(f, kind)
	if !ok {
		a.replyError(c, callback, errBadTimeout)
		return
	}
	secure := false
	if sk, _ := f.get("secureKey"); len(sk) > 0 {
		ls.sig = secureKeySignature(ls.sig[:0], acct.CFAPIKey, acct.APISecret, items)
		if !matchMD5Hex(sk, ls.sig) {
			a.replyError(c, callback, errBadSecureKey)
			return
		}
		secure = true
	}
	if kind == subSSE && r.Header != nil {
		if leid := r.Header.Peek("Last-Event-ID"); len(leid) > 0 {
			ls.leid = applyLastEventID(items, ls.leid, leid, a.opts.MaxIdentifiers)
		}
	}
	slot, limit := newCapKey(acct.Username, r.ClientIP), listenerLimit(&acct)
	// A stream is a listener from its first byte: take the slot before
	// reading anything, so a burst over the cap costs no store read.
	s := &cfSub{conn: c, ls: ls, kind: kind, secure: secure, start: a.opts.Now().UnixNano(),
		acctID: acct.ID, keyGen: acct.CFKeyGen, secretGen: acct.SecretGen}
	if kind != subPoll {
		if s.slot = a.cap.acquire(slot, limit); s.slot == nil {
			a.stats.cfRefused.Add(1)
			a.replyError(c, nil, errTooManyListeners)
			return
		}
	}
	s.watches = make([]cfWatch, len(items))
	for i, it := range items {
		w := &s.watches[i]
		w.topic, w.idx = ls.topicKey(acct.Username, it.name), -1
		if it.hasID {
			w.cursor, w.wide = it.id, it.id == 0
		} else {
			w.cursor = a.store.CFLast(ls.topicBytes)
		}
	}
	defer ls.forgetReads()
	reads, err := ls.cfReadAll(s, items)
	if err != nil {
		a.opts.Log.Error("cometify read failed", "err", err)
		s.release()
		a.replyError(c, callback, errStorage)
		return
	}

	switch kind {
	case subPoll:
		if err := ls.readPastHidden(s, reads); err != nil {
			a.opts.Log.Error("cometify read failed", "err", err)
			a.replyError(c, callback, errStorage)
			return
		}
		if pushes := ls.countPushes(s, reads); pushes > 0 || timeout == 0 {
			ls.out = ls.appendPollBody(ls.out[:0], s, reads, nil, 0)
			a.reply(c, callback, ls.out)
			return
		}
		if s.slot = a.cap.acquire(slot, limit); s.slot == nil {
			a.stats.cfRefused.Add(1)
			a.replyError(c, callback, errTooManyListeners)
			return
		}
		for i := range s.watches {
			s.watches[i].gap = s.watches[i].gap || reads[i].Gap
			ls.advance(s, i, reads[i])
		}
		if callback != nil {
			s.callback = append([]byte(nil), callback...)
		}
		c.SetTag(s)
		ls.addCF(s)
		a.stats.cfPolls.Add(1)
		c.Hold(timeout)
	case subWS, subSSE:
		if kind == subWS {
			if err := c.UpgradeWebSocket(r, hdrAPI); err != nil {
				s.release()
				a.replyUpgradeError(c, err)
				return
			}
		} else {
			c.StartStream(ctSSE, hdrSSE)
		}
		if !c.Alive() {
			// The peer went during the upgrade: gnet closed the conn
			// before it had a tag, so no Closed will free the slot.
			s.release()
			return
		}
		if kind == subWS {
			a.stats.cfWS.Add(1)
		} else {
			a.stats.cfSSE.Add(1)
		}
		c.SetTag(s)
		// Browsers see no WebSocket pings: the JS client sends "ping" and
		// gets {"pong":true} (a frame without data, X-04), so it can tell
		// a quiet listener from a dead one.
		c.Beacon()
		// Indexed before its replay goes out: if the socket backlogs, the
		// listener waits paused in the index, and deliveries meanwhile
		// find it there and pass it by.
		ls.addCF(s)
		ls.startStream(s, reads)
	}
}

// cfReadAll reads, for each id-form watch of s, its replay (CF-L-05): a
// push id above the given one from the resume window, or for id 0 every
// push of the replay window. The results are in ls.cfReads, one per watch
// (empty for plain-form watches). The reads share one answer's bytes
// (readLimit): a watch reads what the ones before it left, one push at
// least, so a listener of many identifiers costs one answer's reads.
func (ls *loopState) cfReadAll(s *cfSub, items []listItem) ([]persist.CFReadResult, error) {
	a := ls.api
	reads := ls.cfReads[:0]
	lim := a.readLimit()
	for i, it := range items {
		if !it.hasID {
			reads = append(reads, persist.CFReadResult{Cursor: s.watches[i].cursor, Last: s.watches[i].cursor})
			continue
		}
		res, err := a.cfRead(&s.watches[i], s.start, lim)
		if err != nil {
			return nil, err
		}
		reads = append(reads, res)
		for _, p := range res.Pushes {
			lim.Bytes -= len(p.Text)
		}
		lim.Bytes = max(lim.Bytes, 1) // 0 would mean no bound
	}
	ls.cfReads = reads
	return reads, nil
}

// forgetReads drops the pushes cfReadAll read once they are answered or
// sent: ls.cfReads is scratch, and would keep up to an answer's bytes
// alive until the loop's next listener.
func (ls *loopState) forgetReads() { clear(ls.cfReads) }

// readPastHidden reads on for a poll whose reads hold no push it may see
// but were cut: every push they hold is secret and s has no valid
// secureKey (CF-L-07). Such a poll must not wait while later pushes are
// stored, since deliveries bring only new ones. Each further read goes on
// from past what the last one skipped, one read at a time.
func (ls *loopState) readPastHidden(s *cfSub, reads []persist.CFReadResult) error {
	for ls.countPushes(s, reads) == 0 {
		i := slices.IndexFunc(reads, func(r persist.CFReadResult) bool { return r.More })
		if i < 0 {
			return nil
		}
		w := &s.watches[i]
		w.gap = w.gap || reads[i].Gap
		ls.advance(s, i, reads[i])
		res, err := ls.api.cfRead(w, s.start, ls.api.readLimit())
		if err != nil {
			return err
		}
		reads[i] = res
	}
	return nil
}

// cfRead reads w's pushes after its cursor, within its window measured
// from start (the listener's admission): CFReplayWindow for a watch asked
// from id 0, else CFResumeWindow (CF-L-05). Reading from 0 never has a
// gap (X-01: it asks for a window, not a point).
func (a *API) cfRead(w *cfWatch, start int64, lim persist.ReadLimit) (persist.CFReadResult, error) {
	window := a.opts.CFResumeWindow
	if w.wide {
		window = a.opts.CFReplayWindow
	}
	res, err := a.store.CFRead(strBytes(w.topic), w.cursor, start-int64(window), lim)
	if w.cursor == 0 {
		res.Gap = false
	}
	return res, err
}

// advance moves watch i of s past res: to the last push it returned, or,
// when nothing more is retained for it, to the highest id the topic had at
// the read. Pushes accepted after that read reach the loop as deliveries.
func (ls *loopState) advance(s *cfSub, i int, res persist.CFReadResult) {
	w := &s.watches[i]
	w.cursor = max(w.cursor, res.Cursor)
	if !res.More {
		w.cursor = max(w.cursor, res.Last)
	}
}

// countPushes counts the pushes of reads that s may receive.
func (ls *loopState) countPushes(s *cfSub, reads []persist.CFReadResult) int {
	n := 0
	for _, res := range reads {
		for _, p := range res.Pushes {
			if !p.Secret || s.secure {
				n++
			}
		}
	}
	return n
}

// appendPollBody renders a Cometify poll answer (CF-L-02) from reads (nil
// when there is none) and live, a push delivered to the waiting poll (or
// nil), and advances s's cursors past what it holds:
// {"code":"ok","gap":true,"gap_identifiers":[…],"retry_ms":N,"pushes":[…],"since":"…"}.
// The answer stays within Options.ReadBatchBytes (C-08), at least one
// push always going out; where the bound cuts, since stands on the last
// push given, so passing it back loses nothing, and the gap of an
// identifier none of whose pushes made it is told by the next answer.
//
// The pushes are rendered first, in place (the head depends on them),
// and moved behind the head once it is known: no second buffer of an
// answer's size.
func (ls *loopState) appendPollBody(dst []byte, s *cfSub, reads []persist.CFReadResult, live *cfDelivery, retryMillis int64) []byte {
	start := len(dst)
	pushes := dst
	n, full, budget := 0, false, 0
	if len(reads) > 0 {
		budget = ls.api.opts.ReadBatchBytes - pollOverhead(s)
	}
	for i := 0; i < len(reads) && !full; i++ {
		w, res := &s.watches[i], &reads[i]
		given := 0 // pushes of w this answer accounts for, secret ones skipped included
		for _, p := range res.Pushes {
			if p.Secret && !s.secure {
				w.cursor = p.ID
				given++
				continue
			}
			mark := len(pushes)
			if n > 0 {
				pushes = append(pushes, ',')
			}
			pushes = appendPushObject(pushes, w.name(), p.ID, p.Text)
			if n > 0 && len(pushes)-start > budget {
				pushes, full = pushes[:mark], true
				break
			}
			w.cursor = p.ID
			given++
			n++
		}
		if res.Gap && (!full || given > 0) {
			w.gap = true
		}
		if !full {
			ls.advance(s, i, *res)
		}
	}
	size := len(pushes) - start

	head := append(ls.pollHead[:0], `{"code":"ok",`...)
	gaps := 0
	for i := range s.watches {
		if !s.watches[i].gap {
			continue
		}
		if gaps == 0 {
			head = append(head, `"gap":true,"gap_identifiers":[`...)
		} else {
			head = append(head, ',')
		}
		head = append(head, '"')
		head = append(head, s.watches[i].name()...)
		head = append(head, '"')
		gaps++
	}
	if gaps > 0 {
		head = append(head, "],"...)
	}
	if retryMillis > 0 {
		head = append(head, `"retry_ms":`...)
		head = appendInt(head, retryMillis)
		head = append(head, ',')
	}
	head = append(head, `"pushes":[`...)
	ls.pollHead = head
	dst = append(pushes, head...) // room for the head
	copy(dst[start+len(head):], dst[start:start+size])
	copy(dst[start:], head)
	if live != nil {
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = appendPushObject(dst, live.name, live.id, live.text)
	}
	dst = append(dst, `],"since":"`...)
	dst = appendSince(dst, s)
	return append(dst, `"}`...)
}

// pollOverhead bounds the bytes of a poll answer of s that are not its
// pushes: the head, every identifier in gap_identifiers, retry_ms, and
// since with 19-digit ids.
func pollOverhead(s *cfSub) int {
	n := len(`{"code":"ok","gap":true,"gap_identifiers":[],"retry_ms":9223372036854775807,"pushes":[],"since":""}`)
	for i := range s.watches {
		n += 2*len(s.watches[i].name()) + len(`"",:9223372036854775807,`)
	}
	return n
}

// startStream sends a new WebSocket or SSE listener its resume point
// one gap signal per identifier that has one, then its
// replay, id order per identifier (CF-L-05), as far as its socket keeps
// up (C-08).
func (ls *loopState) startStream(s *cfSub, reads []persist.CFReadResult) {
	c := s.conn
	if s.kind == subWS {
		ls.out = append(ls.out[:0], `{"since":"`...)
		ls.out = appendSince(ls.out, s)
		ls.out = append(ls.out, `"}`...)
		ls.frame = engine.AppendTextFrame(ls.frame[:0], ls.out)
		c.Send(ls.frame)
	} else {
		ls.out = append(ls.out[:0], "id: "...)
		ls.out = appendSince(ls.out, s)
		ls.out = append(ls.out, "\n\n"...)
		c.Send(ls.out)
	}
	for i := range reads {
		if reads[i].Gap {
			ls.sendCFGap(s, i)
		}
	}
	for i := range reads {
		if !ls.replay(s, i, reads[i]) {
			return
		}
	}
}

// resumeCF goes on with a paused listener's replay once its socket
// drained: every watch reads again from its cursor (a watch already live
// reads what deliveries passed by while it was paused).
func (ls *loopState) resumeCF(s *cfSub) {
	for i := range s.watches {
		res, err := ls.api.cfRead(&s.watches[i], s.start, ls.api.streamLimit())
		if err != nil {
			ls.api.opts.Log.Error("cometify replay read failed", "err", err)
			s.conn.Close()
			return
		}
		if !ls.replay(s, i, res) {
			return
		}
	}
}

// replay sends watch i's pushes from res, and from further reads, while
// the socket keeps up; once nothing more is retained the watch stands at
// the topic's highest id and is live. It reports false when it stopped
// early: the socket is backlogged (s pauses until Handler.Drained, and
// its cursor is on the last push sent) or s is gone.
func (ls *loopState) replay(s *cfSub, i int, res persist.CFReadResult) bool {
	w := &s.watches[i]
	for {
		if res.Gap && !w.gap {
			ls.sendCFGap(s, i)
		}
		for _, p := range res.Pushes {
			if p.Secret && !s.secure {
				w.cursor, w.gap = p.ID, false
				continue
			}
			if s.conn.Backlogged() {
				s.paused = true
				s.conn.WhenDrained()
				return false
			}
			w.cursor, w.gap = p.ID, false
			if !ls.sendPush(s, w.name(), p.ID, p.Text, nil) {
				return false
			}
		}
		if !res.More || len(res.Pushes) == 0 {
			w.cursor, w.gap = max(w.cursor, res.Last), false
			return true
		}
		var err error
		if res, err = ls.api.cfRead(w, s.start, ls.api.streamLimit()); err != nil {
			ls.api.opts.Log.Error("cometify replay read failed", "err", err)
			s.conn.Close()
			return false
		}
	}
}

// sendCFGap tells a stream that pushes of watch i after its cursor will
// never reach it: {"gap":true,"identifier":"…"}.
func (ls *loopState) sendCFGap(s *cfSub, i int) {
	s.watches[i].gap = true
	ls.out = append(ls.out[:0], `{"gap":true,"identifier":"`...)
	ls.out = append(ls.out, s.watches[i].name()...)
	ls.out = append(ls.out, `"}`...)
	if s.kind == subWS {
		ls.frame = engine.AppendTextFrame(ls.frame[:0], ls.out)
		s.conn.Send(ls.frame)
	} else {
		ls.frame = append(append(ls.frame[:0], "event: gap\ndata: "...), ls.out...)
		s.conn.Send(append(ls.frame, "\n\n"...))
	}
}

// sendPush sends one push to a streaming listener; frame, when not nil, is
// the push's shared WebSocket frame. The SSE event carries the listener's
// own resume point as its id, so only its data line is shared.
func (ls *loopState) sendPush(s *cfSub, name string, id uint64, text, frame []byte) bool {
	if s.kind == subWS {
		if frame == nil {
			ls.out = appendPushObject(ls.out[:0], name, id, text)
			ls.frame = engine.AppendTextFrame(ls.frame[:0], ls.out)
			frame = ls.frame
		}
		return s.conn.Send(frame)
	}
	ls.out = append(ls.out[:0], "id: "...)
	ls.out = appendSince(ls.out, s)
	ls.out = append(ls.out, "\ndata: "...)
	ls.out = appendPushObject(ls.out, name, id, text)
	ls.out = append(ls.out, "\n\n"...)
	return s.conn.Send(ls.out)
}

// appendPushObject renders CF-L-01's {"identifier":"…","id":N,"data":"…"}.
func appendPushObject(dst []byte, name string, id uint64, text []byte) []byte {
	dst = append(dst, `{"identifier":"`...)
	dst = append(dst, name...)
	dst = append(dst, `","id":`...)
	dst = appendUint(dst, id)
	dst = append(dst, `,"data":`...)
	dst = appendJSONString(dst, text)
	return append(dst, '}')
}

// appendSince renders s's resume point as an id-form LIST (CF-L-02, X-04).
func appendSince(dst []byte, s *cfSub) []byte {
	for i := range s.watches {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, s.watches[i].name()...)
		dst = append(dst, ':')
		dst = appendUint(dst, s.watches[i].cursor)
	}
	return dst
}

// release gives back s's listener slot, once.
func (s *cfSub) release() {
	if s.slot != nil {
		s.ls.api.cap.release(s.slot)
		s.slot = nil
	}
}

// answerCFPoll ends a waiting poll with nothing delivered: its timeout
// passed, or the server drains (retryMillis > 0, X-02).
func (ls *loopState) answerCFPoll(s *cfSub, retryMillis int64) {
	c, cb := s.conn, s.callback
	ls.removeCF(s)
	ls.out = ls.appendPollBody(ls.out[:0], s, nil, nil, retryMillis)
	ls.api.reply(c, cb, ls.out)
}
