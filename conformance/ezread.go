package conformance

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gobwas/ws"
)

// atOnce is how soon (before TimeoutScale) an answer that must not wait
// has to arrive.
const atOnce = 2 * time.Second

// ezReadCases are the EZComet read rules; each tick rule is checked on all
// three transports.
func ezReadCases() []ruleCase {
	return []ruleCase{
		{rule: "EZ-R-01", what: "GET /read answers {\"code\":\"ok\",\"messages\":[[tick,msg],…]} oldest first", run: checkReadAnswer},
		{rule: "EZ-R-02", what: "tick absent, empty, null or unknown: every queued message at once; empty queue waits (all transports)", run: checkReadFromStart},
		{rule: "EZ-R-03", what: "tick found and not newest: the messages after it at once (all transports)", run: checkReadAfterTick},
		{rule: "EZ-R-04", what: "tick is the newest: wait for the next message (all transports)", run: checkReadWaitNewest},
		{rule: "EZ-R-05", what: "timeout: 0..120 decimal seconds, answers [] when it ends; otherwise 400", run: checkReadTimeout},
		{rule: "EZ-R-06", what: "at most --read-batch messages per long-poll answer; continue from the last tick", run: checkReadBatch, timeout: 90 * time.Second},
		{rule: "EZ-R-07", what: "unknown user 404 before any upgrade; never-written channel waits (all transports)", run: checkReadUnknownUser},
		{rule: "EZ-R-08", what: "/read/ws: backlog then live, one text frame [tick,msg] each; server pings; pong and close replies", run: checkReadWebSocket},
		{rule: "EZ-R-09", what: "/read/sse: id is the tick, multi-line data, Last-Event-ID overrides tick, heartbeat comments", run: checkReadSSE},
		{rule: "EZ-R-10", what: "resume with the last tick seen: every later message once, in order, on any transport", run: checkReadResume},
	}
}

// expectAtOnce reads the given messages, each within atOnce: a long-poll
// that waited instead would answer [] and fail here.
func (s *ezStream) expectAtOnce(msgs, ticks []string, ctx string) {
	start := time.Now()
	s.expect(atOnce, msgs, ticks, ctx)
	if took := time.Since(start); took > s.t.cfg.scaled(atOnce) {
		s.t.Fatalf("%s over %s: answered after %v, want at once", ctx, s.via, took.Round(time.Millisecond))
	}
}

func checkReadAnswer(t *caseT) {
	q := t.qname()
	w := t.watchEZ(q)
	msgs := append([]string{"first", `quote " backslash \ newline` + "\n" + `tab` + "\t</script>", "ünï😀", ""}, multiLine...)
	var ticks []string
	for i := range msgs {
		ticks = append(ticks, fmt.Sprint("r", i+1))
	}
	for i := range msgs {
		t.writeMsg(q, msgs[i], ticks[i])
	}
	a := t.poll(q, "", 5)
	if err := sameItems(a.messages, msgs, ticks); err != nil {
		t.Fatalf("GET /read: %v", err)
	}
	if a.took > t.cfg.scaled(atOnce) {
		t.Fatalf("GET /read of a non-empty queue took %v", a.took)
	}
	for k := range a.fields {
		if k != "code" && k != "messages" && k != "gap" {
			t.Fatalf("GET /read: unexpected field %q in %s", k, a.raw)
		}
	}
	if a.gap {
		t.Fatalf("GET /read without tick reported a gap: %s", a.raw)
	}
	w.quiet()
}

func checkReadFromStart(t *caseT) {
	q := t.qname()
	w := t.watchEZ(q)
	t.writeMsg(q, "one", "s1")
	t.writeMsg(q, "two", "s2")
	msgs, ticks := []string{"one", "two"}, []string{"s1", "s2"}
	t.forEachTransport(func(via string) {
		for _, tick := range []string{"", tickEmpty, "null", "never-seen-" + randHex(8)} {
			s := t.openEZ(via, q, tick, "")
			s.expectAtOnce(msgs, ticks, fmt.Sprintf("tick %q", strings.ReplaceAll(tick, tickEmpty, "")))
			s.close()
		}
		// An empty queue waits, whatever the tick.
		e := t.qname()
		t.writeMsg(e, "x", "gone")
		t.flush(e)
		for _, tick := range []string{"", "unknown-" + randHex(6)} {
			s := t.openEZ(via, e, tick, "")
			s.expectNothing(time.Second, "empty queue")
			s.close()
		}
	})
	w.quiet()
}

func checkReadAfterTick(t *caseT) {
	q := t.qname()
	w := t.watchEZ(q)
	msgs, ticks := seqTicks("a", 1, 4)
	for i := range msgs {
		t.writeMsg(q, msgs[i], ticks[i])
	}
	t.forEachTransport(func(via string) {
		s := t.openEZ(via, q, ticks[1], "")
		s.expectAtOnce(msgs[2:], ticks[2:], "tick of message 2 of 4")
		s.expectNothing(time.Second, "after the backlog")
		s.close()
		s = t.openEZ(via, q, ticks[0], "")
		s.expectAtOnce(msgs[1:], ticks[1:], "tick of the oldest")
		s.close()
	})
	w.quiet()
}

func checkReadWaitNewest(t *caseT) {
	q := t.qname()
	w := t.watchEZ(q)
	t.writeMsg(q, "old", "n0")
	t.forEachTransport(func(via string) {
		s := t.openEZ(via, q, "n0", "")
		tick := "n-" + via[:2]
		start := time.Now()
		t.parallel(func() {
			t.sleep(time.Second)
			t.writeMsg(q, "new "+via, tick)
		}, func() {
			// The other transports write too: skip their messages.
			for {
				it, ok := s.next(10 * time.Second)
				if !ok {
					t.Fatalf("%s from the newest tick: nothing arrived within 10s of a write", via)
				}
				if it.gap || !strings.HasPrefix(it.tick, "n-") {
					t.Fatalf("%s from the newest tick: got %v, want only messages written after it", via, it)
				}
				if it.tick != tick {
					continue
				}
				if took := time.Since(start); took < 800*time.Millisecond {
					t.Fatalf("%s from the newest tick: got %v %v after opening, before it was written", via, it, took.Round(time.Millisecond))
				}
				return
			}
		})
		s.close()
	})
	w.quiet()
}

func checkReadTimeout(t *caseT) {
	q := t.qname()
	t.writeMsg(q, "x", "t0")
	t.flush(q)
	timed := func(timeout int, lo, hi time.Duration) {
		a := t.poll(q, "", timeout)
		if len(a.messages) != 0 {
			t.Fatalf("timeout=%d on an empty queue: got %v", timeout, a.messages)
		}
		if a.took < lo || a.took > lo+t.cfg.scaled(hi) {
			t.Fatalf("timeout=%d answered after %v, want %v to %v", timeout, a.took.Round(time.Millisecond), lo, lo+t.cfg.scaled(hi))
		}
	}
	t.parallel(
		func() { timed(0, 0, time.Second) },
		func() { timed(1, 900*time.Millisecond, 2*time.Second) },
		func() { timed(2, 1900*time.Millisecond, 2*time.Second) },
		func() {
			// Default 30 s: still waiting after 2 s.
			w := t.dial()
			w.send(t.request("GET", readPath("/read", q, "", -1), ""))
			if closed, got := w.closedWithin(2 * time.Second); closed || len(got) > 0 {
				t.Fatalf("without timeout the poll answered within 2s: %q", clip(got))
			}
		},
		func() {
			for _, bad := range []string{"121", "-1", "abc", "1.5", "1e1", "0x10", "99999999999999999999"} {
				t.wantError(t.do("GET", "/read?"+form("qname", q, "timeout", bad), ""), 400, "timeout="+bad)
			}
		},
	)
	p := t.qname()
	t.writeMsg(p, "here", "h1")
	a := t.poll(p, "", 120)
	if err := sameItems(a.messages, []string{"here"}, []string{"h1"}); err != nil || a.took > t.cfg.scaled(atOnce) {
		t.Fatalf("timeout=120 on a non-empty queue: want the message at once, got %v after %v", a.messages, a.took)
	}
}

func checkReadBatch(t *caseT) {
	batch, maxQ := t.cfg.ReadBatch, t.cfg.EZMaxQueue
	if batch > 5000 {
		t.Skipf("--read-batch %d needs too many writes", batch)
	}
	n := batch + 3
	retained := min(n, maxQ)
	if retained <= batch {
		t.Notef("an answer over the cap: --ez-max-queue %d keeps no more than --read-batch %d, so the whole queue fits one answer", maxQ, batch)
	}
	q := t.qname()
	w := t.watchEZ(q)
	msgs, ticks := seqTicks("b", 0, n)
	since := t.writeMany(q, msgs, ticks)
	msgs, ticks = msgs[n-retained:], ticks[n-retained:]
	first := min(batch, retained)
	a := t.poll(q, "", 0)
	if err := sameItems(a.messages, msgs[:first], ticks[:first]); err != nil {
		t.skipIfAged(since, fmt.Errorf("first answer with --read-batch %d: %w", batch, err))
	}
	a = t.poll(q, ticks[first-1], 0)
	if err := sameItems(a.messages, msgs[first:], ticks[first:]); err != nil {
		t.skipIfAged(since, fmt.Errorf("continuing from the last tick: %w", err))
	}
	// Streams are not batched: the whole backlog arrives.
	t.parallel(func() {
		s := t.openEZ(viaWS, q, "", "")
		s.expect(5*time.Second, msgs, ticks, "whole backlog")
	}, func() {
		s := t.openEZ(viaSSE, q, "", "")
		s.expect(5*time.Second, msgs, ticks, "whole backlog")
	})
	w.quiet()
}

func checkReadUnknownUser(t *caseT) {
	unknown := "zz" + randHex(10) + "-chan"
	user := t.cfg.Account.User
	start := time.Now()
	t.wantError(t.doWithin(5*time.Second, "GET", readPath("/read", unknown, "", 30), ""), 404, "long-poll of an unknown user")
	if took := time.Since(start); took > t.cfg.scaled(atOnce) {
		t.Fatalf("long-poll of an unknown user answered after %v, want at once", took)
	}
	for _, bad := range []struct {
		q      string
		status int
	}{{unknown, 404}, {"", 400}, {user + "-bad!chan", 400}} {
		if c, r := t.openWS(readPath("/read/ws", bad.q, "", -1)); c != nil {
			t.Fatalf("/read/ws qname %q upgraded; want %d before the upgrade", bad.q, bad.status)
		} else {
			t.wantError(r, bad.status, fmt.Sprintf("/read/ws qname %q", bad.q))
		}
		if c, r := t.openSSE(readPath("/read/sse", bad.q, "", -1)); c != nil {
			t.Fatalf("/read/sse qname %q opened a stream; want %d", bad.q, bad.status)
		} else {
			t.wantError(r, bad.status, fmt.Sprintf("/read/sse qname %q", bad.q))
		}
		if bad.q != unknown {
			t.wantError(t.do("GET", readPath("/read", bad.q, "", 0), ""), bad.status, fmt.Sprintf("/read qname %q", bad.q))
		}
	}
	t.wantError(t.do("GET", "/read?timeout=0", ""), 400, "/read without qname")

	// Every transport waits on a never-written channel, then gets its
	// first message.
	q := t.qname()
	w := t.watchEZ(q)
	ready := make(chan struct{}, len(ezTransports))
	var fns []func()
	for _, via := range ezTransports {
		fns = append(fns, func() {
			s := t.openEZ(via, q, "", "")
			defer s.close()
			s.expectNothing(time.Second, "never-written channel")
			ready <- struct{}{}
			s.expect(10*time.Second, []string{"hello"}, []string{"first"}, "first write to a waited-on channel")
		})
	}
	fns = append(fns, func() {
		for range ezTransports {
			select {
			case <-ready:
			case <-t.ctx.Done():
				return
			}
		}
		t.writeMsg(q, "hello", "first")
	})
	t.parallel(fns...)
	w.quiet()
}

func checkReadWebSocket(t *caseT) {
	q := t.qname()
	w := t.watchEZ(q)
	t.writeMsg(q, "backlog", "ws1")
	s := t.openEZ(viaWS, q, "", "")
	s.expect(atOnce, []string{"backlog"}, []string{"ws1"}, "backlog")
	odd := "quote \" newline \n\x01 ünï cr \r crlf \r\n"
	t.writeMsg(q, odd, "ws2")
	t.writeMsg(q, "", "ws3")
	s.expect(5*time.Second, []string{odd, ""}, []string{"ws2", "ws3"}, "live")
	for i, m := range multiLine {
		t.writeMsg(q, m, fmt.Sprint("ml", i))
		s.expect(5*time.Second, []string{m}, []string{fmt.Sprint("ml", i)}, "a multi-line message (CR, LF, CRLF)")
	}
	// RFC 6455: a ping is answered with a pong carrying its payload, a
	// close with a close.
	if err := s.ws.writeFrame(ws.NewPingFrame([]byte("conf"))); err != nil {
		t.Fatalf("sending a ping: %v", err)
	}
	s.expectNothing(500*time.Millisecond, "after a client ping")
	if pongs := s.ws.pongPayloads(); len(pongs) == 0 || string(pongs[0]) != "conf" {
		t.Fatalf("a client ping with payload \"conf\" got pongs %q", pongs)
	}
	if pi := t.cfg.PingInterval; pi > t.cfg.MaxWait {
		t.Notef("server pings: --ping-interval %v is longer than %v", pi, t.cfg.MaxWait)
	} else {
		start := time.Now()
		s.expectNothing(pi+t.slack(), "waiting for a ping")
		pings := s.ws.pingTimes()
		if len(pings) == 0 || pings[len(pings)-1].Before(start) {
			t.Fatalf("no ping within %v (--ping-interval %v)", pi+t.slack(), pi)
		}
	}
	if err := s.ws.writeFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye"))); err != nil {
		t.Fatalf("sending a close: %v", err)
	}
	f, ok := s.ws.next(3 * time.Second)
	if !ok || f.op != ws.OpClose {
		t.Fatalf("a client close frame was not answered with a close frame within 3s (got %+v)", f)
	}
	w.quiet()
}

func checkReadSSE(t *caseT) {
	q := t.qname()
	w := t.watchEZ(q)
	msgs, ticks := seqTicks("e", 1, 3)
	for i := range msgs {
		t.writeMsg(q, msgs[i], ticks[i])
	}
	s := t.openEZ(viaSSE, q, "", "")
	if ct := s.sse.resp.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type %q", ct)
	}
	s.expect(atOnce, msgs, ticks, "backlog")
	// Multi-line messages: CR, LF and CRLF each end a data: line (a
	// client reads each as a line end, so a bare CR must be split too).
	var mmsgs, mticks []string
	for i, m := range append([]string{"line1\nline2\n\nline4\n"}, multiLine...) {
		tick := fmt.Sprint("m", i)
		t.writeMsg(q, m, tick)
		mmsgs, mticks = append(mmsgs, m), append(mticks, tick)
		s.expect(5*time.Second, []string{m}, []string{tick}, fmt.Sprintf("multi-line message %q, split into data: lines and reassembled", m))
	}

	l := t.openEZ(viaSSE, q, ticks[0], ticks[1])
	l.expect(atOnce, append([]string{msgs[2]}, mmsgs...), append([]string{ticks[2]}, mticks...), "Last-Event-ID e2 over query tick e1")
	l.close()
	l = t.openEZ(viaSSE, q, "", "never-"+randHex(6))
	l.expect(atOnce, slices.Concat(msgs, mmsgs), slices.Concat(ticks, mticks), "unknown Last-Event-ID")
	l.close()
	w.quiet()

	hb := t.cfg.SSEHeartbeat
	if hb > t.cfg.MaxWait+time.Second {
		t.Notef("heartbeat: --sse-heartbeat %v is longer than %v", hb, t.cfg.MaxWait)
		return
	}
	start := time.Now()
	for {
		e, ok := s.sse.next(time.Until(start.Add(hb+t.slack())) + time.Millisecond)
		if !ok {
			t.Fatalf("no comment heartbeat within %v (--sse-heartbeat %v)", hb+t.slack(), hb)
		}
		if e.err != nil {
			t.Fatalf("stream ended while waiting for a heartbeat: %v", e.err)
		}
		if e.comment {
			return
		}
	}
}

func checkReadResume(t *caseT) {
	for i, first := range ezTransports {
		then := ezTransports[(i+1)%len(ezTransports)]
		t.parallel(func() { resumeAcross(t, first, first) }, func() { resumeAcross(t, first, then) })
	}
}

// resumeAcross reads two messages over first, drops, and resumes over then
// with the last tick it saw.
func resumeAcross(t *caseT, first, then string) {
	q := t.qname()
	w := t.watchEZ(q)
	msgs, ticks := seqTicks("z", 1, 8)
	for i := range 5 {
		t.writeMsg(q, msgs[i], ticks[i])
	}
	s := t.openEZ(first, q, "", "")
	s.expect(atOnce, msgs[:2], ticks[:2], "before the drop")
	s.close()
	for i := 5; i < 8; i++ {
		t.writeMsg(q, msgs[i], ticks[i])
	}
	var r *ezStream
	if then == viaSSE {
		r = t.openEZ(then, q, "", ticks[1]) // a browser resumes with Last-Event-ID
	} else {
		r = t.openEZ(then, q, ticks[1], "")
	}
	defer r.close()
	r.expect(atOnce, msgs[2:], ticks[2:], fmt.Sprintf("resume after reading over %s", first))
	r.expectNothing(500*time.Millisecond, "after the resumed backlog")
	t.writeMsg(q, "live", "z-live")
	r.expect(5*time.Second, []string{"live"}, []string{"z-live"}, "live after the resume")
	w.quiet()
}
