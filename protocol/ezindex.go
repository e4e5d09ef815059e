package protocol

import (
	"bytes"
	"sync/atomic"
	"time"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// delivery is one accepted message, shared read-only by all loops
// (fanout.go); each transport's bytes are built once, by the first loop
// that has a subscriber of that transport (encoding.go).
type delivery struct {
	qname string
	seq   uint64
	tick  []byte
	body  []byte
	poll  encoding // {"code":"ok","messages":[["tick","msg"]]}
	ws    encoding // a whole WebSocket text frame holding ["tick","msg"]
	sse   encoding // "id: …\ndata: …\n\n"
}

// deliverTo implements fanout: wake ls's readers of the channel.
func (d *delivery) deliverTo(ls *loopState) { ls.deliver(d) }

// newDelivery is a stored message's delivery with rooms of its own
// (tests); a write's lives in its writeOp's buffer (newWriteOp).
func newDelivery(qname string, m persist.Message) *delivery {
	d := &delivery{qname: qname, seq: m.Seq, tick: m.Tick, body: m.Body}
	d.reserve(nil)
	return d
}

// reserve carves d's encoding rooms from buf's spare capacity, which
// holds ezRooms(len(tick)+len(body)) bytes, or from a new buffer when buf
// is nil.
func (d *delivery) reserve(buf []byte) {
	size := encodingRoom(len(d.tick) + len(d.body))
	if buf == nil {
		buf = make([]byte, 0, ezRooms(len(d.tick)+len(d.body)))
	}
	carve(buf, size, &d.poll.b, &d.ws.b, &d.sse.b)
}

// ezRooms is the spare capacity a delivery of n stored bytes reserves.
func ezRooms(n int) int { return 3*encodingRoom(n) + 7 }

// pollHead is what a poll answer holds before its message.
const pollHead = `{"code":"ok","messages":[`

func (d *delivery) pollBody() []byte { return d.poll.get(d.appendPollBody) }
func (d *delivery) wsFrame() []byte  { return d.ws.get(d.appendWSFrame) }
func (d *delivery) sseEvent() []byte { return d.sse.get(d.appendSSEEvent) }

func (d *delivery) appendPollBody(b []byte) []byte {
	b = append(b, pollHead...)
	b = appendPair(b, d.tick, d.body)
	return append(b, "]}"...)
}

// appendWSFrame frames the poll answer's message: the JSON escaping is
// done once for both.
func (d *delivery) appendWSFrame(b []byte) []byte {
	p := d.pollBody()
	return engine.AppendTextFrame(b, p[len(pollHead):len(p)-len("]}")])
}

func (d *delivery) appendSSEEvent(b []byte) []byte { return appendSSEEvent(b, d.tick, d.body) }

// channelSubs lists the readers of one channel on one loop.
type channelSubs struct {
	key  string // the qname, shared by the readers' ezSub.qname
	list []*ezSub
	// last is the highest seq delivered on this loop while the channel
	// had readers here, or lingered (index.go): a reader that let
	// deliveries pass (reading, paused) reads on while it stands before
	// it.
	last uint64
	// tick is last's tick and at when its delivery ran here (API.clock),
	// kept for a reader resuming from it (atTail); empty until this
	// entry saw a delivery.
	tick []byte
	at   int64
	linger
}

// loopState is everything the protocol keeps per event loop: the
// subscriber index (channel → readers) and scratch buffers. Only its loop
// goroutine touches it, so nothing here is locked.
type loopState struct {
	api *API
	// entries counts this loop's index entries, channels and topics,
	// with readers or lingering (index.go); read by the committer side
	// (fanout.go), which skips waking a loop with none for a group that
	// holds no answer of its own. So an entry sees every delivery of its
	// channel from its first on, which atTail relies on.
	entries atomic.Int64
	subs    map[string]*channelSubs
	form    form
	out     []byte // scratch for answers; the engine copies what it sends
	frame   []byte // scratch for WebSocket frames
	ev      []byte // scratch for a replayed push's event tail
	jsonp   []byte // scratch for JSONP wrapping; never the buffer holding the body

	// emptied lists the index entries that emptied since they were
	// last swept (index.go); toSweep, read by the sweeper goroutine, says
	// whether it holds any, or the free lists anything.
	emptied []emptiedEntry
	toSweep atomic.Bool
	// free holds the readers and reads this loop recycles (pool.go).
	free freeLists

	// Cometify: topic ("<user>/<identifier>") → listeners, and scratch.
	cfTopics   map[string]*topicSubs
	items      []listItem
	leid       []listItem
	sig        []byte
	topicBytes []byte
	pollHead   []byte // a Cometify poll answer's head, rendered after its pushes
}

func newLoopState(a *API) *loopState {
	ls := &loopState{api: a, subs: make(map[string]*channelSubs), cfTopics: make(map[string]*topicSubs)}
	ls.free.toSweep = &ls.toSweep
	return ls
}

// qnameKey returns qname as a string: the index's own when the loop
// already indexes that channel, so that its readers share one string
// (one allocation less per reader, and its bytes once per loop).
func (ls *loopState) qnameKey(qname []byte) string {
	if cs, ok := ls.subs[string(qname)]; ok {
		return cs.key
	}
	return string(qname)
}

// newSub makes c's reader, its Tag from now on, and counts it; remove
// uncounts it.
func (ls *loopState) newSub(c engine.Conn, qname string, kind subKind, cursor uint64, slotIP engine.ClientKey) *ezSub {
	s := ls.free.sub()
	*s = ezSub{conn: c, ls: ls, qname: qname, kind: kind, cursor: cursor, slotIP: slotIP, idx: -1}
	c.SetTag(s)
	ls.api.stats.subscribers[ezAPI][kind].Add(1)
	return s
}

func (ls *loopState) add(s *ezSub) {
	cs := ls.subs[s.qname]
	if cs == nil {
		cs = &channelSubs{key: s.qname}
		ls.subs[s.qname] = cs
		ls.entries.Add(1)
		if f := ls.api.opts.Interest; f != nil {
			f(false, cs.key, true)
		}
	}
	cs.swept = false // a reader came since the last sweep
	s.idx = int32(len(cs.list))
	cs.list = append(cs.list, s)
}

// remove takes s out of the index, frees its listener slot, clears the
// conn's tag and uncounts it, and recycles s unless a read for it is in
// flight (the read's result does, pool.go). Call it once per reader:
// the next request served on this loop may take s.
func (ls *loopState) remove(s *ezSub) {
	ls.api.cap.releaseHeld(s.acctID, &s.slotIP)
	if s.conn.Tag() == s {
		s.conn.SetTag(nil)
		ls.api.stats.subscribers[ezAPI][s.kind].Add(-1)
	}
	defer ls.free.putSub(s)
	if s.idx < 0 {
		return
	}
	cs := ls.subs[s.qname]
	cs.list = swapRemove(cs.list, int(s.idx), func(m *ezSub, i int) { m.idx = int32(i) })
	s.idx = -1
	if len(cs.list) == 0 {
		ls.queueEmptied(&cs.linger, false, cs.key)
	}
}

// deliver wakes this loop's readers of d's channel. Readers that stand
// exactly before d get its shared bytes; a reader that is further behind
// (it missed a message between its read and its registration) reads
// what it missed from the store, so nothing is lost or repeated. A
// paused or reading reader is passed by: d is in the store, and the
// reader reads on from its cursor while it stands before cs.last (the
// store has every message before its delivery runs, so a read never
// misses one whose delivery already passed, and a delivery the read
// already covered finds the cursor past it).
func (ls *loopState) deliver(d *delivery) {
	cs := ls.subs[d.qname]
	if cs == nil {
		return
	}
	if d.seq > cs.last {
		cs.last = d.seq
		cs.tick = append(cs.tick[:0], d.tick...)
		cs.at = ls.api.clock()
	}
	// Backwards, because a reader may leave the list (answered poll, cut
	// slow consumer) and removal moves the last entry into its place.
	sent := 0
	for i := len(cs.list) - 1; i >= 0; i-- {
		if i >= len(cs.list) {
			continue
		}
		s := cs.list[i]
		switch {
		case s.paused || s.reading || s.cursor >= d.seq:
		case s.cursor+1 == d.seq:
			ls.sendOne(s, d)
			sent++
		default:
			ls.readFor(s)
		}
	}
	// One shared-counter update per loop and message, not per reader.
	ls.api.stats.deliveries.Add(uint64(sent))
}

func (ls *loopState) sendOne(s *ezSub, d *delivery) {
	s.cursor = d.seq
	if s.kind != subPoll {
		s.conn.Send(s.kind.stream().ezLive(d))
		return
	}
	c, gap, cb := s.conn, s.gap, s.callback
	ls.remove(s)
	if gap {
		ls.out = append(ls.out[:0], `{"code":"ok","gap":true,`...)
		ls.out = append(ls.out, d.pollBody()[len(`{"code":"ok",`):]...)
		ls.api.reply(c, cb, ls.out)
		return
	}
	ls.api.reply(c, cb, d.pollBody())
}

// resumeWindow bounds how long after the delivery of a channel's last
// message a reader resuming from its tick is placed without a read
// (atTail). The store's answer to that read is "nothing after it, no
// gap" only while it still knows the tick: for the store's TickMemory
// (a week; persist.DefaultTickMemory) after the message was written.
const resumeWindow = 5 * time.Second

// atTail returns the index entry of qname when a reader resuming from
// tick stands at its channel's end on this loop: tick is the tick of the
// last message delivered here, within resumeWindow, and this entry has
// seen every delivery of its channel since it was made (fanout.go wakes
// every loop with entries), nor had its end cleared by an account change
// since (revoke.go).
// The store would answer that reader's read with no message, no gap and
// cursor last, whatever retention dropped since (persist.Store.EZRead):
// the reader is placed at last without it, which is what a long-poll's
// next poll, after each answer, asks for (issue 17: at P7 scale every
// re-poll of a light node was a store read over NATS). A message
// committed meanwhile whose delivery has not run here yet reaches the
// reader as a delivery, as it would have after its read.
func (ls *loopState) atTail(qname, tick []byte) *channelSubs {
	cs := ls.subs[string(qname)]
	if cs == nil || len(cs.tick) == 0 || !bytes.Equal(cs.tick, tick) || ls.api.clock()-cs.at > int64(resumeWindow) {
		return nil
	}
	return cs
}

// behind reports whether a delivery of s's channel passed s by on this
// loop that s has not had: it must read on before it is live.
func (ls *loopState) behind(s *ezSub) bool {
	cs := ls.subs[s.qname]
	return cs != nil && cs.last > s.cursor
}

// submit hands j, a read for s, to the reader pool; s is reading until
// the result is back. False when the pool's queue is full.
func (ls *loopState) submit(s *ezSub, j storeRead) bool {
	s.reading = true
	if ls.api.submitRead(j) {
		return true
	}
	s.reading = false
	return false
}

// readFor reads what s missed from the store, off the loop (readers.go),
// and sends it: to a stream as far as its socket keeps up (the rest when
// it drains), to a waiting poll as its answer. When the pool is full a
// poll is answered 503 and a stream pauses and tries again once drained.
func (ls *loopState) readFor(s *ezSub) {
	if s.conn.Tag() != s {
		// It left meanwhile (a send closed its connection, and Closed ran
		// at once): it may be recycled (pool.go), and a read for it would
		// run on whoever took it.
		return
	}
	a := ls.api
	j := ls.free.read()
	*j = ezRead{s: s, after: s.cursor, lim: a.streamLimit(), gap: s.gap}
	if s.kind == subPoll {
		j.lim = a.pollFirst()
	}
	if ls.submit(s, j) {
		return
	}
	ls.free.putRead(j)
	if s.kind == subPoll {
		c, cb := s.conn, s.callback
		ls.remove(s)
		subPoll.transport().failed(a, c, cb)
		return
	}
	s.paused = true
	s.conn.WhenDrained()
}

// sendGap tells a stream that messages after its cursor were dropped
//
func (ls *loopState) sendGap(s *ezSub) { s.kind.stream().gap(ls, s.conn, gapObject) }

// stream sends res's messages to a WebSocket or SSE reader, advancing
// its cursor, while the socket keeps up (C-08), then reads on when more
// are queued or a delivery passed it by. When the socket is backlogged it
// stops before the next message and pauses the reader until
// Handler.Drained, which goes on from the cursor with a fresh read: the
// reader is never cut for the size of its backlog, and the backlog never
// waits in memory. A reader cut as a slow consumer is closed (Closed
// removes it).
func (ls *loopState) stream(s *ezSub, res persist.ReadResult) {
	w := s.kind.stream()
	for _, m := range res.Messages {
		if s.conn.Backlogged() {
			s.paused = true
			s.conn.WhenDrained()
			return
		}
		if !w.message(ls, s.conn, m.Tick, m.Body) {
			return
		}
		s.cursor = m.Seq
	}
	if len(res.Messages) > 0 && res.More || ls.behind(s) {
		ls.readFor(s)
	}
}

// readLimit bounds the store read behind one answer (C-08): ReadBatch
// messages, and ReadBatchBytes of stored bytes, which encode to at least
// as many, so the store reads little more than the answer can carry.
func (a *API) readLimit() persist.ReadLimit {
	return persist.ReadLimit{Messages: a.opts.ReadBatch, Bytes: a.opts.ReadBatchBytes}
}

// streamLimit bounds a stream's later backlog reads (after the first,
// and after every pause): a socket that just drained takes about Conn's
// BacklogBytes/2 before it backlogs again, so reading a whole ReadBatch
// (up to 4 MB of 4 KB messages) each time would read and allocate most
// of a backlog several times over.
func (a *API) streamLimit() persist.ReadLimit {
	return persist.ReadLimit{Messages: min(a.opts.ReadBatch, 256), Bytes: a.opts.ReadBatchBytes}
}

// answerEmpty ends a waiting poll with no message: its timeout passed, or
// the server drains (retryMillis > 0, X-02).
func (ls *loopState) answerEmpty(s *ezSub, retryMillis int64) {
	c, gap, cb := s.conn, s.gap, s.callback
	ls.remove(s)
	ls.out = appendMessagesBody(ls.out[:0], nil, gap, retryMillis, 0)
	ls.api.reply(c, cb, ls.out)
}

// swapRemove removes list[i] in O(1) by moving the last element into its
// place (order does not matter in a subscriber list); moved is told the
// moved element's new index. The freed slot is zeroed so the list holds
// no stale pointer.
func swapRemove[T any](list []T, i int, moved func(T, int)) []T {
	last := len(list) - 1
	list[i] = list[last]
	moved(list[i], i)
	var zero T
	list[last] = zero
	return list[:last]
}
