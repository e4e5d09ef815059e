package conformance

import (
	"fmt"
	"time"
)

// gapCases are the gap-signal rules (X-01; the Cometify half arrives with
// the CF rules).
func gapCases() []ruleCase {
	return []ruleCase{{
		rule:    "X-01",
		what:    "EZComet gap signal before the backlog (long-poll \"gap\":true, WebSocket {\"gap\":true}, SSE event: gap) after flush and retention; none for an unknown tick",
		run:     checkEZGap,
		timeout: 90 * time.Second,
	}}
}

// expectGapThen reads a gap signal followed by the given messages.
func (s *ezStream) expectGapThen(msgs, ticks []string, ctx string) {
	it, ok := s.next(atOnce)
	if !ok {
		s.t.Fatalf("%s over %s: nothing within %v", ctx, s.via, s.t.cfg.scaled(atOnce))
	}
	if !it.gap {
		s.t.Fatalf("%s over %s: want a gap signal before the backlog, got %v", ctx, s.via, it)
	}
	s.expect(atOnce, msgs, ticks, ctx+", after the gap signal")
}

func checkEZGap(t *caseT) {
	// Flush: b is gone, so a reader resuming after a has missed it.
	q := t.qname()
	t.writeMsg(q, "a", "ga")
	t.writeMsg(q, "b", "gb")
	t.flush(q)
	t.writeMsg(q, "c", "gc")
	t.forEachTransport(func(via string) {
		s := t.openEZ(via, q, "ga", "")
		s.expectGapThen([]string{"c"}, []string{"gc"}, "resume from a flushed tick")
		s.close()
		if via == viaSSE {
			s = t.openEZ(via, q, "", "ga")
			s.expectGapThen([]string{"c"}, []string{"gc"}, "Last-Event-ID of a flushed tick")
			s.close()
		}
		for _, tick := range []string{"", "never-seen-" + randHex(6), "gc"} {
			s = t.openEZ(via, q, tick, "")
			if tick == "gc" {
				s.expectNothing(500*time.Millisecond, "resume from the newest tick")
			} else {
				s.expectAtOnce([]string{"c"}, []string{"gc"}, fmt.Sprintf("no gap for tick %q", tick))
			}
			s.close()
		}
	})

	maxQ := t.cfg.EZMaxQueue
	if maxQ > 5000 {
		t.Notef("gap by retention: --ez-max-queue %d needs too many writes", maxQ)
		return
	}
	// Retention: r-0 and r-1 drop. After r-0, r-1 was missed: a gap. After
	// r-1, nothing retained was missed: no gap.
	r := t.qname()
	msgs, ticks := seqTicks("r", 0, maxQ+2)
	since := t.writeMany(r, msgs, ticks)
	if got, _ := t.readAll(r, ""); sameItems(got, msgs[2:], ticks[2:]) != nil {
		t.skipIfAged(since, fmt.Errorf("after %d writes with --ez-max-queue %d: %w", maxQ+2, maxQ, sameItems(got, msgs[2:], ticks[2:])))
	}
	first := min(maxQ, t.cfg.ReadBatch, 3)
	t.forEachTransport(func(via string) {
		s := t.openEZ(via, r, ticks[0], "")
		s.expectGapThen(msgs[2:2+first], ticks[2:2+first], "resume from a tick dropped by retention")
		s.close()
		s = t.openEZ(via, r, ticks[1], "")
		s.expectAtOnce(msgs[2:2+first], ticks[2:2+first], "resume from the last dropped tick (nothing missed, no gap)")
		s.close()
	})
}
