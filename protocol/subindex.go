package protocol

import (
	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// delivery is one accepted message, encoded once for every transport
// and then shared read-only by all loops (it is the engine.Task that
// fan-out broadcasts). All its encodings, and the writer's answer, live in
// one buffer.
type delivery struct {
	api      *API
	qname    string
	seq      uint64
	wsFrame  []byte // a whole WebSocket text frame holding ["tick","msg"]
	sseEvent []byte // "id: …\ndata: …\n\n"
	pollBody []byte // {"code":"ok","messages":[["tick","msg"]]}
	ack      []byte // the writer's answer, {"code":"ok","tick":"…"}
}

// Run implements engine.Task: wake loop's readers of the channel.
func (d *delivery) Run(loop int) { d.api.state[loop].deliver(d) }

// newDelivery encodes a stored message on its own (tests, catch-up tools).
func newDelivery(a *API, qname string, m persist.Message) *delivery {
	d := &delivery{api: a, qname: qname, seq: m.Seq}
	d.encode(make([]byte, 0, 4*(len(m.Tick)+len(m.Body)+8)+len(m.Tick)+96), m.Tick, m.Body)
	return d
}

// encode appends every encoding of (tick, body) to buf and points d's
// fields at them. buf should have room for them all; when escapes make it
// grow, slices taken earlier stay valid (they keep the old array).
func (d *delivery) encode(buf, tick, body []byte) {
	buf = appendPair(buf, tick, body)
	pair := buf[:len(buf):len(buf)]
	buf, d.wsFrame = appendPart(buf, func(b []byte) []byte { return engine.AppendTextFrame(b, pair) })
	buf, d.sseEvent = appendPart(buf, func(b []byte) []byte { return appendSSEEvent(b, tick, body) })
	buf, d.pollBody = appendPart(buf, func(b []byte) []byte {
		b = append(b, `{"code":"ok","messages":[`...)
		b = append(b, pair...)
		return append(b, "]}"...)
	})
	_, d.ack = appendPart(buf, func(b []byte) []byte { return appendAck(b, tick) })
}

// appendPart appends enc's output to buf and returns buf and that part.
func appendPart(buf []byte, enc func([]byte) []byte) ([]byte, []byte) {
	start := len(buf)
	buf = enc(buf)
	return buf, buf[start:len(buf):len(buf)]
}

// channelSubs lists the readers of one channel on one loop.
type channelSubs struct {
	list []*ezSub
}

// loopState is everything the protocol keeps per event loop: the
// subscriber index (channel → readers) and scratch buffers. Only its loop
// goroutine touches it, so nothing here is locked.
type loopState struct {
	api   *API
	subs  map[string]*channelSubs
	form  form
	out   []byte // scratch for answers; the engine copies what it sends
	frame []byte // scratch for WebSocket frames
	jsonp []byte // scratch for JSONP wrapping; never the buffer holding the body

	// Cometify: topic ("<user>/<identifier>") → listeners, and scratch.
	cfTopics   map[string]*topicSubs
	items      []listItem
	leid       []listItem
	sig        []byte
	topicBytes []byte
	cfReads    []persist.CFReadResult // emptied after use (forgetReads)
	pollHead   []byte                 // a Cometify poll answer's head, rendered after its pushes
}

func newLoopState(a *API) *loopState {
	return &loopState{api: a, subs: make(map[string]*channelSubs), cfTopics: make(map[string]*topicSubs)}
}

func (ls *loopState) newSub(c engine.Conn, qname string, kind subKind, cursor uint64, slot *capSlot) *ezSub {
	s := &ezSub{conn: c, ls: ls, qname: qname, kind: kind, cursor: cursor, slot: slot, idx: -1}
	c.SetTag(s)
	return s
}

func (ls *loopState) add(s *ezSub) {
	cs := ls.subs[s.qname]
	if cs == nil {
		cs = &channelSubs{}
		ls.subs[s.qname] = cs
	}
	s.idx = int32(len(cs.list))
	cs.list = append(cs.list, s)
}

// remove takes s out of the index, frees its listener slot and clears the
// conn's tag. Idempotent: a reader leaves once, however it goes.
func (ls *loopState) remove(s *ezSub) {
	if s.slot != nil {
		ls.api.cap.release(s.slot)
		s.slot = nil
	}
	if s.conn.Tag() == s {
		s.conn.SetTag(nil)
		switch s.kind {
		case subPoll:
			ls.api.stats.pollsWaiting.Add(-1)
		case subWS:
			ls.api.stats.wsReaders.Add(-1)
		case subSSE:
			ls.api.stats.sseReaders.Add(-1)
		}
	}
	if s.idx < 0 {
		return
	}
	cs := ls.subs[s.qname]
	cs.list = swapRemove(cs.list, int(s.idx), func(m *ezSub, i int) { m.idx = int32(i) })
	s.idx = -1
	if len(cs.list) == 0 {
		delete(ls.subs, s.qname)
	}
}

// deliver wakes this loop's readers of d's channel. Readers that stand
// exactly before d get the pre-encoded bytes; a reader that is further
// behind (it missed a message between its read and its registration)
// catches up from the store, so nothing is lost or repeated. A paused
// reader is passed by: d is in the store, where Drained will read it
// (the store has every message before its delivery runs, so a read never
// misses one whose delivery already passed, and a delivery the read
// already covered finds the cursor past it).
func (ls *loopState) deliver(d *delivery) {
	cs := ls.subs[d.qname]
	if cs == nil {
		return
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
		case s.paused || s.cursor >= d.seq:
		case s.cursor+1 == d.seq:
			ls.sendOne(s, d)
			sent++
		default:
			ls.catchUp(s)
			sent++
		}
	}
	// One shared-counter update per loop and message, not per reader.
	ls.api.stats.deliveries.Add(uint64(sent))
}

func (ls *loopState) sendOne(s *ezSub, d *delivery) {
	s.cursor = d.seq
	switch s.kind {
	case subWS:
		s.conn.Send(d.wsFrame)
	case subSSE:
		s.conn.Send(d.sseEvent)
	case subPoll:
		c, gap, cb := s.conn, s.gap, s.callback
		ls.remove(s)
		if gap {
			ls.out = append(ls.out[:0], `{"code":"ok","gap":true,`...)
			ls.out = append(ls.out, d.pollBody[len(`{"code":"ok",`):]...)
			ls.api.reply(c, cb, ls.out)
			return
		}
		ls.api.reply(c, cb, d.pollBody)
	}
}

// catchUp reads what s missed from the store and sends it: to a stream
// as far as its socket keeps up (the rest when it drains), to a waiting
// poll as its answer.
func (ls *loopState) catchUp(s *ezSub) {
	limit := ls.api.pollFirst()
	if s.kind != subPoll {
		limit = ls.api.streamLimit()
	}
	res, err := ls.api.store.EZReadAfter(s.qname, s.cursor, limit)
	if err != nil {
		ls.api.opts.Log.Error("catch-up read failed", "qname", s.qname, "err", err)
		ls.remove(s)
		s.conn.Close()
		return
	}
	if s.kind != subPoll {
		if res.Gap {
			ls.sendGap(s)
		}
		ls.stream(s, res)
		return
	}
	if len(res.Messages) == 0 {
		s.gap = s.gap || res.Gap
		return
	}
	c, cb := s.conn, s.callback
	ls.remove(s)
	ls.out = ls.appendPollAnswer(ls.out[:0], s.qname, res, s.gap || res.Gap)
	ls.api.reply(c, cb, ls.out)
}

// sendGap tells a stream that messages after its cursor were dropped
//
func (ls *loopState) sendGap(s *ezSub) {
	if s.kind == subWS {
		s.conn.Send(frameGap)
	} else {
		s.conn.Send(sseGap)
	}
}

// stream sends res's messages, and further batches from the store, to a
// WebSocket or SSE reader, advancing its cursor, while the socket keeps
// up (C-08). When the socket is backlogged it stops before the next
// message and pauses the reader until Handler.Drained, which goes on from
// the cursor with a fresh read: the reader is never cut for the size of
// its backlog, and the backlog never waits in memory. A reader cut as a
// slow consumer or whose read failed is closed (Closed removes it).
func (ls *loopState) stream(s *ezSub, res persist.ReadResult) {
	for {
		for _, m := range res.Messages {
			if s.conn.Backlogged() {
				s.paused = true
				s.conn.WhenDrained()
				return
			}
			if s.kind == subWS {
				ls.out = appendPair(ls.out[:0], m.Tick, m.Body)
				ls.frame = engine.AppendTextFrame(ls.frame[:0], ls.out)
				if !s.conn.Send(ls.frame) {
					return
				}
			} else {
				ls.out = appendSSEEvent(ls.out[:0], m.Tick, m.Body)
				if !s.conn.Send(ls.out) {
					return
				}
			}
			s.cursor = m.Seq
		}
		if len(res.Messages) == 0 || !res.More {
			return
		}
		var err error
		res, err = ls.api.store.EZReadAfter(s.qname, s.cursor, ls.api.streamLimit())
		if err != nil {
			ls.api.opts.Log.Error("backlog read failed", "qname", s.qname, "err", err)
			s.conn.Close()
			return
		}
		if res.Gap {
			ls.sendGap(s)
		}
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
