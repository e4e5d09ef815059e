package conformance

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/gobwas/ws"
)

// The three EZComet read transports (EZ-R-01, EZ-R-08, EZ-R-09).
const (
	viaPoll = "long-poll"
	viaWS   = "WebSocket"
	viaSSE  = "SSE"
)

var ezTransports = []string{viaPoll, viaWS, viaSSE}

// ezStream reads one EZComet channel over one transport with a common
// interface, so that the tick rules are checked the same way on all three.
// A long-poll stream is a loop of polls that follows the last tick.
type ezStream struct {
	t     *caseT
	via   string
	qname string
	tick  string // long-poll cursor
	buf   []ezItem
	ws    *wsConn
	sse   *sseConn
}

// openEZ starts reading qname after tick ("" for none) over via. For SSE,
// lastEventID (if non-empty) is sent as the Last-Event-ID header.
func (t *caseT) openEZ(via, qname, tick, lastEventID string) *ezStream {
	s := &ezStream{t: t, via: via, qname: qname, tick: tick}
	switch via {
	case viaWS:
		s.ws = t.mustWS(readPath("/read/ws", qname, tick, -1))
	case viaSSE:
		var hs []string
		if lastEventID != "" {
			hs = append(hs, "Last-Event-ID: "+lastEventID)
		}
		s.sse = t.mustSSE(readPath("/read/sse", qname, tick, -1), hs...)
	}
	return s
}

func (s *ezStream) close() {
	switch {
	case s.ws != nil:
		s.ws.close()
	case s.sse != nil:
		s.sse.close()
	}
}

// next returns the next message or gap signal within d; ok is false when
// none came. A long-poll waits with timeout=ceil(d) seconds.
func (s *ezStream) next(d time.Duration) (ezItem, bool) {
	t := s.t
	switch s.via {
	case viaPoll:
		if len(s.buf) == 0 {
			secs := int((d + time.Second - 1) / time.Second)
			a := t.poll(s.qname, s.tick, min(secs, 120))
			if a.gap {
				s.buf = append(s.buf, ezItem{gap: true})
			}
			s.buf = append(s.buf, a.messages...)
			if n := len(a.messages); n > 0 {
				s.tick = a.messages[n-1].tick
			}
		}
		if len(s.buf) == 0 {
			return ezItem{}, false
		}
		it := s.buf[0]
		s.buf = s.buf[1:]
		return it, true
	case viaWS:
		f, ok := s.ws.next(d)
		if !ok {
			return ezItem{}, false
		}
		if f.err != nil {
			t.Fatalf("%s %s: stream ended: %v", s.via, s.qname, f.err)
		}
		if f.op == ws.OpClose {
			t.Fatalf("%s %s: server closed with %d %q", s.via, s.qname, f.code, f.reason)
		}
		if f.op != ws.OpText {
			t.Fatalf("%s %s: want text frames, got opcode %v", s.via, s.qname, f.op)
		}
		return t.decodeEZFrame(s.via, f.payload), true
	default:
		for {
			e, ok := s.sse.nextEvent(d)
			if !ok {
				return ezItem{}, false
			}
			if e.err != nil {
				t.Fatalf("%s %s: stream ended: %v", s.via, s.qname, e.err)
			}
			if e.event == "gap" {
				if it := t.decodeEZFrame(s.via+" gap event", []byte(e.data)); !it.gap {
					t.Fatalf(`%s %s: event: gap must carry {"gap":true}, got %s`, s.via, s.qname, e.describe())
				}
				return ezItem{gap: true}, true
			}
			if !e.hasData {
				continue // an id-only event moves lastEventId, nothing else
			}
			if e.event != "" && e.event != "message" {
				t.Fatalf("%s %s: unexpected event type: %s", s.via, s.qname, e.describe())
			}
			if !e.hasID {
				t.Fatalf("%s %s: message event without id: %s", s.via, s.qname, e.describe())
			}
			return ezItem{tick: e.id, msg: e.data}, true
		}
	}
}

// decodeEZFrame reads a WebSocket text frame (or SSE gap data): either
// ["<tick>","<msg>"] or {"gap":true}.
func (t *caseT) decodeEZFrame(via string, p []byte) ezItem {
	p = bytes.TrimSpace(p)
	if len(p) > 0 && p[0] == '{' {
		var m map[string]any
		if err := json.Unmarshal(p, &m); err != nil || m["gap"] != true {
			t.Fatalf(`%s: an object frame must be {"gap":true}, got %q`, via, clip(p))
		}
		return ezItem{gap: true}
	}
	var pair []string
	if err := json.Unmarshal(p, &pair); err != nil || len(pair) != 2 {
		t.Fatalf(`%s: want a ["<tick>","<msg>"] frame, got %q`, via, clip(p))
	}
	return ezItem{tick: pair[0], msg: pair[1]}
}

// expect reads exactly the given messages, each within d, in order. Over
// SSE a message arrives as sseText makes it.
func (s *ezStream) expect(d time.Duration, msgs, ticks []string, ctx string) {
	for i := range ticks {
		it, ok := s.next(d)
		if !ok {
			s.t.Fatalf("%s over %s: message %d of %d (%q) did not arrive within %v", ctx, s.via, i+1, len(ticks), ticks[i], s.t.cfg.scaled(d))
		}
		want := msgs[i]
		if s.via == viaSSE {
			want = sseText(want)
		}
		if it.gap || it.tick != ticks[i] || it.msg != want {
			s.t.Fatalf("%s over %s: message %d is %v, want [%q,%q]", ctx, s.via, i+1, it, ticks[i], want)
		}
	}
}

// expectNothing fails if any message arrives within d.
func (s *ezStream) expectNothing(d time.Duration, ctx string) {
	if it, ok := s.next(d); ok {
		s.t.Fatalf("%s over %s: want nothing yet, got %v", ctx, s.via, it)
	}
}

// forEachTransport runs fn once per read transport, concurrently.
func (t *caseT) forEachTransport(fn func(via string)) {
	var fns []func()
	for _, via := range ezTransports {
		fns = append(fns, func() { fn(via) })
	}
	t.parallel(fns...)
}
