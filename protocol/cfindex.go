package protocol

import (
	"unsafe"

	"github.com/halleypush/halley/engine"
)

// cfDelivery is one durable Cometify push, encoded once and shared
// read-only by every loop (it is the engine.Task fan-out broadcasts).
type cfDelivery struct {
	api     *API
	topic   string
	name    string // the identifier, lowercased (a suffix of topic)
	id      uint64
	secret  bool
	text    []byte
	wsFrame []byte // a whole WebSocket text frame holding the push object
}

// Run implements engine.Task: hand the push to loop's listeners.
func (d *cfDelivery) Run(loop int) { d.api.state[loop].cfDeliver(d) }

// topicSubs lists the listeners of one topic on one loop.
type topicSubs struct {
	key  string
	list []cfRef
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
		}
		w.idx = len(ts.list)
		ts.list = append(ts.list, cfRef{s: s, w: i})
	}
}

// removeCF takes s out of the index, frees its listener slot and clears
// the conn's tag. Idempotent: a listener leaves once, however it goes.
func (ls *loopState) removeCF(s *cfSub) {
	if s.conn.Tag() == s {
		s.conn.SetTag(nil)
		switch s.kind {
		case subPoll:
			ls.api.stats.cfPolls.Add(-1)
		case subWS:
			ls.api.stats.cfWS.Add(-1)
		case subSSE:
			ls.api.stats.cfSSE.Add(-1)
		}
	}
	s.release()
	for i := range s.watches {
		w := &s.watches[i]
		if w.idx < 0 {
			continue
		}
		ts := ls.cfTopics[w.topic]
		ts.list = swapRemove(ts.list, w.idx, func(m cfRef, i int) { m.s.watches[m.w].idx = i })
		w.idx = -1
		if len(ts.list) == 0 {
			delete(ls.cfTopics, w.topic)
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
	sent := 0
	// Backwards: an answered poll leaves the list, and removal moves the
	// last entry into its place.
	for i := len(ts.list) - 1; i >= 0; i-- {
		if i >= len(ts.list) {
			continue
		}
		ref := ts.list[i]
		s, w := ref.s, &ref.s.watches[ref.w]
		if s.paused || w.cursor >= d.id {
			continue // paused: Drained reads d from the store
		}
		w.cursor = d.id
		if d.secret && !s.secure {
			continue
		}
		sent++
		if s.kind != subPoll {
			ls.sendPush(s, d.name, d.id, d.text, d.wsFrame)
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

// encode appends d's push object, then the WebSocket frame holding it, to
// buf, and points d.wsFrame at the frame.
func (d *cfDelivery) encode(buf []byte) []byte {
	start := len(buf)
	buf = appendPushObject(buf, d.name, d.id, d.text)
	obj := buf[start:len(buf):len(buf)]
	start = len(buf)
	buf = engine.AppendTextFrame(buf, obj)
	d.wsFrame = buf[start:len(buf):len(buf)]
	return buf
}
