package protocol

import (
	"slices"
	"strings"
	"time"

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
	slotIP   engine.ClientKey // with acctID, the per-IP listener slot it holds; engine.NoClientKey when none
	callback []byte           // poll: JSONP callback, or nil
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
	// reading: a store read for it is in flight (readers.go). Deliveries
	// pass it by; the read's result goes on from its cursors.
	reading bool
	pooled  bool // in its loop's free list (pool.go)
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
	// now: given without an id, the watch stands at the topic's last id
	// which its first read takes on a reader (store.go): a
	// cluster light node asks the store node for it.
	now bool
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
	slot, limit := newCapKey(acct.ID, r.ClientIP), listenerLimit(&acct)
	// A stream is a listener from its first byte: take the slot before
	// reading anything, so a burst over the cap costs no store read.
	slotIP := engine.NoClientKey
	if kind != subPoll {
		if !a.cap.Acquire(slot, limit) {
			a.stats.cfRefused.Add(1)
			a.replyError(c, nil, errTooManyListeners)
			return
		}
		// A stream's reads end after its upgrade, when a 503 can no
		// longer be answered: a store known to fail refuses it now.
		if a.store.Healthy() != nil {
			a.cap.Release(slot)
			a.replyError(c, nil, errStorage)
			return
		}
		slotIP = slot.ip
	}
	s := ls.free.cfSub()
	s.conn, s.ls, s.slotIP, s.kind, s.secure, s.start = c, ls, slotIP, kind, secure, a.opts.Now().UnixNano()
	s.acctID, s.keyGen, s.secretGen = acct.ID, acct.CFKeyGen, acct.SecretGen
	s.watches = slices.Grow(s.watches, len(items))[:len(items)]
	for i, it := range items {
		w := &s.watches[i]
		*w = cfWatch{topic: ls.topicKey(acct.Username, it.name), idx: -1}
		if it.hasID {
			w.cursor, w.wide = it.id, it.id == 0
		} else {
			w.now = true
		}
	}
	if callback != nil {
		s.callback = append([]byte(nil), callback...)
	}
	if timeout != 0 && ls.cfAtTail(s) && a.store.Healthy() == nil { // as serveRead
		ls.admitCF(s)
		if kind == subPoll {
			if ls.admitCFPoll(s, slot, limit, timeout) {
				a.stats.cfPlacedUnread.Add(1)
			}
			return
		}
		// A stream's first read would bring no push and no gap: its
		// first frame is all it is sent before the next push.
		a.stats.cfPlacedUnread.Add(1)
		if !kind.transport().open(a, c, r) {
			ls.removeCF(s)
			return
		}
		kind.stream().since(ls, s)
		return
	}
	// The replay (CF-L-05) of each id-form watch is read off the loop
	// (readers.go); meanwhile the listener waits in the index, so that
	// the deliveries it lets pass are known. The reads share one
	// answer's bytes (readLimit): a listener of many identifiers costs
	// one answer's reads.
	j := ls.newCFRead(s, nil, a.readLimit(), true)
	for i, it := range items {
		j.want[i] = it.hasID
	}
	j.first, j.answerNow, j.timeout, j.key, j.limit = true, timeout == 0, timeout, slot, limit
	ls.admitCF(s)
	if !ls.submitCF(s, j) {
		ls.free.putCFRead(j)
		ls.removeCF(s)
		a.replyError(c, callback, errStorage)
		return
	}
	if kind == subPoll {
		return // answered, or held, when its reads are back
	}
	if !kind.transport().open(a, c, r) {
		ls.removeCF(s)
	}
}

// cfAtTail reports whether every watch of s, a listener being admitted,
// resumes from the last push of its topic delivered on this loop, within
// resumeWindow, by an entry that has seen every delivery of its topic
// since it was made (as atTail for EZComet). The store would answer
// each watch's read with no push, no gap, and Last at that id
// (persist.Store.CFRead): a poll waits, a stream opens, without it. A
// watch given no id (its topic's last, X-04) or id 0 (the replay
// window) reads.
func (ls *loopState) cfAtTail(s *cfSub) bool {
	now := ls.api.clock()
	for i := range s.watches {
		w := &s.watches[i]
		if w.now || w.wide {
			return false
		}
		ts := ls.cfTopics[w.topic]
		if ts == nil || !ts.known || ts.last != w.cursor || now-ts.at > int64(resumeWindow) {
			return false
		}
	}
	return len(s.watches) > 0
}

// admitCF makes s its conn's Tag, indexes it and counts it; removeCF
// undoes all three.
func (ls *loopState) admitCF(s *cfSub) {
	s.conn.SetTag(s)
	ls.addCF(s)
	ls.api.stats.subscribers[cfAPI][s.kind].Add(1)
}

// cfRead is one round of store reads for a Cometify listener (readers.go):
// every watch in want reads from its cursor. The reader works on copies
// of the watches (the loop keeps the originals); Run copies back the
// cursors and gaps it moved.
type cfRead struct {
	s       *cfSub
	watches []cfWatch // copies
	want    []bool
	reads   []persist.CFReadResult // one per watch; {Cursor, Last} at the cursor for one not read
	lim     persist.ReadLimit
	shared  bool // the watches share lim's bytes, each reading one push at least
	start   int64
	secure  bool
	// first: the request's reads; a poll is then admitted (its per-IP
	// slot, its hold) or answered at once (answerNow: timeout 0).
	first     bool
	answerNow bool
	timeout   time.Duration
	key       capKey
	limit     int

	err error

	// Room for a listener of one identifier, the common case: its read
	// is then one allocation.
	watch1 [1]cfWatch
	want1  [1]bool
	read1  [1]persist.CFReadResult
}

// newCFRead prepares a read of s's watches: those in more, or all when
// more is nil.
func (ls *loopState) newCFRead(s *cfSub, more []bool, lim persist.ReadLimit, shared bool) *cfRead {
	n := len(s.watches)
	j := ls.free.cfRead()
	*j = cfRead{s: s, lim: lim, shared: shared, start: s.start, secure: s.secure}
	if n == 1 {
		j.watches, j.want, j.reads = j.watch1[:], j.want1[:], j.read1[:]
	} else {
		j.watches, j.want, j.reads = make([]cfWatch, n), make([]bool, n), make([]persist.CFReadResult, n)
	}
	copy(j.watches, s.watches)
	for i := range j.want {
		j.want[i] = more == nil || more[i]
	}
	return j
}

func (j *cfRead) loop() int { return j.s.conn.Loop() }

// read runs on a reader. A poll's reads go on past pushes it may not
// see (readPastHidden).
func (j *cfRead) read() {
	a := j.s.ls.api
	lim := j.lim
	for i := range j.watches {
		w := &j.watches[i]
		if !j.want[i] {
			if w.now {
				if w.cursor, j.err = a.cfLast(w.topic); j.err != nil {
					return
				}
				w.now = false
			}
			j.reads[i] = persist.CFReadResult{Cursor: w.cursor, Last: w.cursor}
			continue
		}
		if j.reads[i], j.err = a.cfRead(w, j.start, lim); j.err != nil {
			return
		}
		if j.shared {
			for _, p := range j.reads[i].Pushes {
				lim.Bytes -= len(p.Text)
			}
			lim.Bytes = max(lim.Bytes, 1) // 0 would mean no bound
		}
	}
	if j.s.kind == subPoll {
		j.err = a.readPastHidden(j.watches, j.secure, j.start, j.reads)
	}
}

// Run implements engine.Task: the reads are back on the listener's loop.
// Nothing holds j after it, nor s once it left (pool.go).
func (j *cfRead) Run(int) {
	s := j.s
	ls := s.ls
	if s.conn.Tag() != s {
		// Closed, revoked or answered meanwhile: out of the index, and
		// kept for this result only.
		s.reading = false
		ls.free.putCFSub(s)
	} else {
		j.run(s, ls)
	}
	ls.free.putCFRead(j)
}

func (j *cfRead) run(s *cfSub, ls *loopState) {
	a := ls.api
	s.reading = false
	if j.err != nil {
		a.opts.Log.Error("cometify read failed", "err", j.err)
		c, cb, kind := s.conn, s.callback, s.kind
		ls.removeCF(s)
		kind.transport().failed(a, c, cb)
		return
	}
	for i := range s.watches {
		s.watches[i].cursor, s.watches[i].gap = j.watches[i].cursor, j.watches[i].gap
		s.watches[i].now = j.watches[i].now
	}
	switch {
	case s.kind == subPoll:
		ls.cfPollRead(s, j)
	case j.first:
		ls.startStream(s, j.reads)
	default:
		ls.replayReads(s, j.reads)
	}
}

// cfPollRead answers a poll from its reads, or lets it wait: admitted
// after its first reads, and reading on if a delivery passed it by.
func (ls *loopState) cfPollRead(s *cfSub, j *cfRead) {
	a := ls.api
	c, cb := s.conn, s.callback
	if countPushes(s.secure, j.reads) > 0 || j.answerNow {
		ls.out = ls.appendPollBody(ls.out[:0], s, j.reads, nil, 0)
		ls.removeCF(s)
		a.reply(c, cb, ls.out)
		return
	}
	if j.first && !ls.admitCFPoll(s, j.key, j.limit, j.timeout) {
		return
	}
	for i := range s.watches {
		s.watches[i].gap = s.watches[i].gap || j.reads[i].Gap
		advance(&s.watches[i], j.reads[i])
	}
	if ls.cfBehind(s) {
		ls.cfReadFor(s, nil)
	}
}

// admitCFPoll admits a poll that waits, as admitPoll does for EZComet.
func (ls *loopState) admitCFPoll(s *cfSub, key capKey, limit int, timeout time.Duration) bool {
	a := ls.api
	if !a.cap.Acquire(key, limit) {
		a.stats.cfRefused.Add(1)
		c, cb := s.conn, s.callback
		ls.removeCF(s)
		a.replyError(c, cb, errTooManyListeners)
		return false
	}
	s.slotIP = key.ip
	s.conn.Hold(timeout)
	return true
}

// submitCF hands j, a read for s, to the reader pool; s is reading until
// the result is back. False when the pool's queue is full.
func (ls *loopState) submitCF(s *cfSub, j *cfRead) bool {
	s.reading = true
	if ls.api.submitRead(j) {
		return true
	}
	s.reading = false
	return false
}

// cfReadFor reads on for s off the loop: the watches in more (all when
// nil) and those a delivery passed by. A stream reads each watch's next
// part; a waiting poll, one answer's worth. When the pool is full a poll
// is answered 503 and a stream pauses and tries again once drained.
func (ls *loopState) cfReadFor(s *cfSub, more []bool) {
	if s.conn.Tag() != s {
		return // it left meanwhile (see readFor)
	}
	a := ls.api
	var j *cfRead
	if s.kind == subPoll {
		j = ls.newCFRead(s, more, a.readLimit(), true)
	} else {
		j = ls.newCFRead(s, more, a.streamLimit(), false)
	}
	for i := range s.watches {
		j.want[i] = j.want[i] || ls.watchBehind(&s.watches[i])
	}
	if ls.submitCF(s, j) {
		return
	}
	ls.free.putCFRead(j)
	if s.kind == subPoll {
		c, cb := s.conn, s.callback
		ls.removeCF(s)
		subPoll.transport().failed(a, c, cb)
		return
	}
	s.paused = true
	s.conn.WhenDrained()
}

// watchBehind reports whether a delivery of w's topic passed w by on
// this loop that w has not had.
func (ls *loopState) watchBehind(w *cfWatch) bool {
	ts := ls.cfTopics[w.topic]
	return ts != nil && ts.last > w.cursor
}

// cfBehind reports whether any watch of s is behind (watchBehind).
func (ls *loopState) cfBehind(s *cfSub) bool {
	for i := range s.watches {
		if ls.watchBehind(&s.watches[i]) {
			return true
		}
	}
	return false
}

// readPastHidden reads on for a poll whose reads hold no push it may see
// but were cut: every push they hold is secret and the poll has no valid
// secureKey (CF-L-07). Such a poll must not wait while later pushes are
// stored, since deliveries bring only new ones. Each further read goes on
// from past what the last one skipped, one read at a time. It runs on a
// reader, on the read's copies of the watches.
func (a *API) readPastHidden(watches []cfWatch, secure bool, start int64, reads []persist.CFReadResult) error {
	for countPushes(secure, reads) == 0 {
		i := slices.IndexFunc(reads, func(r persist.CFReadResult) bool { return r.More })
		if i < 0 {
			return nil
		}
		w := &watches[i]
		w.gap = w.gap || reads[i].Gap
		advance(w, reads[i])
		res, err := a.cfRead(w, start, a.readLimit())
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
// gap (X-01: it asks for a window, not a point). It runs on a reader.
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

// advance moves w past res: to the last push it returned, or, when
// nothing more is retained for it, to the highest id the topic had at the
// read. Pushes accepted after that read reach the loop as deliveries.
func advance(w *cfWatch, res persist.CFReadResult) {
	w.cursor = max(w.cursor, res.Cursor)
	if !res.More {
		w.cursor = max(w.cursor, res.Last)
	}
}

// countPushes counts the pushes of reads that a listener may receive
// (secure: it gave a valid secureKey, CF-L-07).
func countPushes(secure bool, reads []persist.CFReadResult) int {
	n := 0
	for _, res := range reads {
		for _, p := range res.Pushes {
			if !p.Secret || secure {
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
			advance(w, *res)
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
		dst = append(dst, live.object()...)
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
	s.kind.stream().since(ls, s)
	for i := range reads {
		if reads[i].Gap {
			ls.sendCFGap(s, i)
		}
	}
	ls.replayReads(s, reads)
}

// replayReads sends each watch's pushes from reads, in watch order, while
// the socket keeps up, then reads on for the watches that have more
// queued or that a delivery passed by. Once nothing more is retained for
// a watch it stands at the topic's highest id and is live. When the
// socket is backlogged s pauses until Handler.Drained, which reads every
// watch again from its cursor.
func (ls *loopState) replayReads(s *cfSub, reads []persist.CFReadResult) {
	var more []bool
	for i := range reads {
		ok, m := ls.replay(s, i, reads[i])
		if !ok {
			return
		}
		if m {
			if more == nil {
				more = make([]bool, len(reads))
			}
			more[i] = true
		}
	}
	if more != nil || ls.cfBehind(s) {
		if more == nil {
			more = make([]bool, len(reads))
		}
		ls.cfReadFor(s, more)
	}
}

// replay sends watch i's pushes from res while the socket keeps up. ok
// is false when it stopped early: the socket is backlogged (s pauses, its
// cursor on the last push sent) or s is gone; more is true when further
// pushes are queued after the ones res held.
func (ls *loopState) replay(s *cfSub, i int, res persist.CFReadResult) (ok, more bool) {
	w := &s.watches[i]
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
			return false, false
		}
		w.cursor, w.gap = p.ID, false
		if !ls.sendPush(s, w.name(), p.ID, p.Text) {
			return false, false
		}
	}
	if !res.More || len(res.Pushes) == 0 {
		w.cursor, w.gap = max(w.cursor, res.Last), false
		return true, false
	}
	return true, true
}

// sendCFGap tells a stream that pushes of watch i after its cursor will
// never reach it: {"gap":true,"identifier":"…"}.
func (ls *loopState) sendCFGap(s *cfSub, i int) {
	s.watches[i].gap = true
	ls.out = append(ls.out[:0], `{"gap":true,"identifier":"`...)
	ls.out = append(ls.out, s.watches[i].name()...)
	ls.out = append(ls.out, `"}`...)
	s.kind.stream().gap(ls, s.conn, ls.out)
}

// sendPush sends one push read from the store (a replay) to a streaming
// listener.
func (ls *loopState) sendPush(s *cfSub, name string, id uint64, text []byte) bool {
	ls.ev = appendPushEvent(ls.ev[:0], name, id, text)
	return s.kind.stream().push(ls, s, ls.ev)
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

// answerCFPoll ends a waiting poll with nothing delivered: its timeout
// passed, or the server drains (retryMillis > 0, X-02).
func (ls *loopState) answerCFPoll(s *cfSub, retryMillis int64) {
	c, cb := s.conn, s.callback
	ls.out = ls.appendPollBody(ls.out[:0], s, nil, nil, retryMillis)
	ls.removeCF(s)
	ls.api.reply(c, cb, ls.out)
}
