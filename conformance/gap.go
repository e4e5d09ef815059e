package conformance

import (
	"fmt"
	"time"
)

// gapCases are the gap-signal rules, EZComet and Cometify.
func gapCases() []ruleCase {
	return []ruleCase{{
		rule: "X-01",
		what: "gap signal before the backlog on every transport: EZComet after flush and retention, none for an unknown tick; " +
			"Cometify per identifier past --cf-resume-window, none for id 0 or when nothing was missed",
		run: func(t *caseT) {
			t.parallel(func() { checkEZGap(t) }, func() { checkCFGap(t) })
		},
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
	w := t.watchEZ(q)
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

	w.quiet()
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

// checkCFGap is X-01 for Cometify: x2 leaves the resume window, so a
// listener from x:1 has missed it; y has missed nothing.
func checkCFGap(t *caseT) {
	rw, pw := t.cfg.CFResumeWindow, t.cfg.CFReplayWindow
	x, y := ident(), ident()
	w := t.watchCF(x)
	t.pushID(x, "x1", 1)
	t.pushID(x, "x2", 2)
	t.pushID(y, "y1", 1)
	t0 := time.Now()
	timed := rw+2*time.Second <= t.cfg.MaxWait
	if timed {
		t.sleep(rw + time.Second)
	} else {
		t.Notef("Cometify gap past --cf-resume-window %v (longer than %v; start the server with a shorter one and pass it)", rw, t.cfg.MaxWait)
	}
	t.pushID(x, "x3", 3)
	t.pushID(y, "y2", 2)
	fresh := []cfItem{pushed(x, 3, "x3"), pushed(y, 2, "y2")}
	t.forEachTransport(func(via string) {
		if timed {
			from := idList(x, 1, y, 1)
			opens := []cfOpen{{}}
			if via == viaSSE {
				opens = append(opens, cfOpen{lastEventID: from})
			}
			for _, o := range opens {
				list, ctx := from, "resume from "+from+" with x2 past the resume window"
				if o.lastEventID != "" {
					list, ctx = x+","+y, "Last-Event-ID "+from+" with x2 past the resume window"
				}
				s := t.openCF(via, list, o)
				s.expectSince(from, ctx+" (the resume point comes first)")
				it, ok := s.nextData(atOnce)
				if !ok || it != (cfItem{kind: cfGap, ident: x}) {
					t.Fatalf("%s over %s: want one gap signal for %s right after the resume point, got %v (ok=%v)", ctx, via, x, it, ok)
				}
				s.expect(atOnce, fresh, ctx+", after the gap signal")
				s.expectNothing(300*time.Millisecond, ctx+", after the backlog")
				s.close()
			}
		}
		for _, c := range []struct {
			list string
			want []cfItem
		}{
			{idList(x, 2, y, 1), fresh},
			{idList(x, 3, y, 2), nil},
		} {
			s := t.openCF(via, c.list, cfOpen{})
			s.expect(atOnce, c.want, "no gap from "+c.list)
			s.expectNothing(300*time.Millisecond, "no gap from "+c.list+", after the backlog")
			s.close()
		}
		if time.Since(t0) < pw-time.Second {
			s := t.openCF(via, idList(x, 0, y, 0), cfOpen{})
			s.expect(atOnce, []cfItem{pushed(x, 1, "x1"), pushed(x, 2, "x2"), pushed(x, 3, "x3"), pushed(y, 1, "y1"), pushed(y, 2, "y2")}, "id 0 (a window, never a gap)")
			s.expectNothing(300*time.Millisecond, "id 0, after the backlog")
			s.close()
		}
	})
	w.quiet()
}
