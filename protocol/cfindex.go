package protocol

import (
	"unsafe"

	"github.com/halleypush/halley/engine"
)

// cfDelivery is one durable Cometify push, shared read-only by every loop
// (fanout.go); each transport's bytes are built once, by the first loop
// that has a listener of that transport (encoding.go). A listener's own
// bytes (its SSE id: line, a poll answer's head and since) are copied
// around the shared ones: the text is JSON-escaped once per push.
type cfDelivery struct {
	topic  string
	name   string // the identifier, lowercased (a suffix of topic)
	id     uint64
	secret bool
	text   []byte
	event  encoding // "\ndata: <push object>\n\n": an SSE event's tail, and the poll item within it
	ws     encoding // a whole WebSocket text frame holding the push object
}

// deliverTo implements fanout: hand the push to ls's listeners.
func (d *cfDelivery) deliverTo(ls *loopState) { ls.cfDeliver(d) }

// reserve carves d's encoding rooms from buf's spare capacity, which
// holds cfRooms(len(d.name)+len(d.text)) bytes, or from a new buffer when
// buf is nil.
func (d *cfDelivery) reserve(buf []byte) {
	n := len(d.name) + len(d.text)
	if buf == nil {
		buf = make([]byte, 0, cfRooms(n))
	}
	carve(buf, encodingRoom(n), &d.event.b, &d.ws.b)
}

// cfRooms is the spare capacity a push of n bytes of identifier and text
// reserves for its encodings.
func cfRooms(n int) int { return 2*encodingRoom(n) + 7 }

// sseData starts an SSE data line; the event tail is sseData, the push
// object, then the blank line that ends the event.
const sseData = "\ndata: "

func (d *cfDelivery) sseTail() []byte { return d.event.get(d.appendEvent) }
func (d *cfDelivery) wsFrame() []byte { return d.ws.get(d.appendWSFrame) }

// object is the push object, CF-L-01's {"identifier":…,"id":…,"data":…}.
func (d *cfDelivery) object() []byte { return eventObject(d.sseTail()) }

func (d *cfDelivery) appendEvent(b []byte) []byte { return appendPushEvent(b, d.name, d.id, d.text) }

func (d *cfDelivery) appendWSFrame(b []byte) []byte {
	return engine.AppendTextFrame(b, d.object())
}

// appendPushEvent renders an SSE event's tail holding a push object.
func appendPushEvent(dst []byte, name string, id uint64, text []byte) []byte {
	dst = append(dst, sseData...)
	dst = appendPushObject(dst, name, id, text)
	return append(dst, "\n\n"...)
}

// eventObject is the push object inside an event tail.
func eventObject(ev []byte) []byte { return ev[len(sseData) : len(ev)-len("\n\n")] }

// topicSubs lists the listeners of one topic on one loop.
type topicSubs struct {
	key  string
	list []cfRef
	// last is the highest push id delivered on this loop while the topic
	// had listeners here: a watch that let deliveries pass (reading,
	// paused) reads on while it stands before it. It outlives the
	// listeners while the entry lingers (index.go).
	last uint64
	// known: last is the last push delivered here since this entry was
	// made, at at (API.clock); cfAtTail places a poll resuming from it
	// with no read. Cleared by an account change.
	known bool
	at    int64
	linger
}

// cfRef is one listener's watch of a topic: watches[w] of s.
type cfRef struct {
	s *cfSub
	w int
}

// topicKey builds "<user>/<name lowercased>" into ls.topicBytes and
// returns it as a string, the index's own when the loop already indexes
// that topic, so that listeners of one topic share one string.
func (ls *loopState) topicKey(user string, name []byte) string {
	ls.topicBytes = append(ls.topicBytes[:0], user...)
	ls.topicBytes = append(ls.topicBytes, '/')
	ls.topicBytes = appendLower(ls.topicBytes, name)
	if ts, ok := ls.cfTopics[string(ls.topicBytes)]; ok {
		return ts.key
	}
	return string(ls.topicBytes)
}

// addCF puts every watch of s into the topic index.
func (ls *loopState) addCF(s *cfSub) {
	for i := range s.watches {
		w := &s.watches[i]
		ts := ls.cfTopics[w.topic]
		if ts == nil {
			ts = &topicSubs{key: w.topic}
			ls.cfTopics[w.topic] = ts
			ls.entries.Add(1)
			if f := ls.api.opts.Interest; f != nil {
				f(true, ts.key, true)
			}
		}
		ts.swept = false // a listener came since the last sweep
		w.idx = len(ts.list)
		ts.list = append(ts.list, cfRef{s: s, w: i})
	}
}

// removeCF takes s out of the index, frees its listener slot, clears the
// conn's tag and uncounts it, and recycles s unless a read for it is in
// flight (pool.go). Call it once per listener.
func (ls *loopState) removeCF(s *cfSub) {
	if s.conn.Tag() == s {
		s.conn.SetTag(nil)
		ls.api.stats.subscribers[cfAPI][s.kind].Add(-1)
	}
	ls.api.cap.releaseHeld(s.acctID, &s.slotIP)
	defer ls.free.putCFSub(s)
	for i := range s.watches {
		w := &s.watches[i]
		if w.idx < 0 {
			continue
		}
		ts := ls.cfTopics[w.topic]
		ts.list = swapRemove(ts.list, w.idx, func(m cfRef, i int) { m.s.watches[m.w].idx = i })
		w.idx = -1
		if len(ts.list) == 0 {
			ls.queueEmptied(&ts.linger, true, ts.key)
		}
	}
}

// cfDeliver hands d to this loop's listeners of its topic. A listener
// that already has d (its replay read saw it) skips it, so nothing is
// repeated; one without a valid secureKey skips a secret push (CF-L-07)
// but stands after it all the same. A paused listener (C-08) is passed
// by: the store has d before its delivery runs, so Drained's read from
// the cursor finds it.
func (ls *loopState) cfDeliver(d *cfDelivery) {
	ts := ls.cfTopics[d.topic]
	if ts == nil {
		return
	}
	if d.id > ts.last {
		ts.last, ts.known, ts.at = d.id, true, ls.api.clock()
	}
	sent := 0
	// Backwards: an answered poll leaves the list, and removal moves the
	// last entry into its place.
	for i := len(ts.list) - 1; i >= 0; i-- {
		if i >= len(ts.list) {
			continue
		}
		ref := ts.list[i]
		s, w := ref.s, &ref.s.watches[ref.w]
		if s.paused || s.reading || w.cursor >= d.id {
			continue // paused or reading: it reads d from the store
		}
		w.cursor = d.id
		if d.secret && !s.secure {
			continue
		}
		sent++
		if s.kind != subPoll {
			s.kind.stream().cfLive(ls, s, d)
			continue
		}
		c, cb := s.conn, s.callback
		ls.out = ls.appendPollBody(ls.out[:0], s, nil, d, 0)
		ls.removeCF(s)
		ls.api.reply(c, cb, ls.out)
	}
	ls.api.stats.cfDeliveries.Add(uint64(sent))
}

// strBytes views s's bytes without copying; the callee must not keep or
// modify them.
func strBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
