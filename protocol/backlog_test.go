package protocol

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/halleypush/halley/persist"
)

// received decodes what an EZComet reader was sent, in order: the tick of
// each message, "GAP" for a gap signal (SSE's opening comment is skipped).
func received(t *testing.T, c *fakeConn) []string {
	t.Helper()
	var out []string
	if c.upgraded {
		for _, fr := range frames(t, c) {
			if fr == `{"gap":true}` {
				out = append(out, "GAP")
				continue
			}
			var pair []string
			if err := json.Unmarshal([]byte(fr), &pair); err != nil || len(pair) != 2 {
				t.Fatalf("frame %q", fr)
			}
			out = append(out, pair[0])
		}
		return out
	}
	for _, ev := range strings.SplitAfter(strings.Join(c.sentCopy(), ""), "\n\n") {
		switch {
		case ev == "" || ev == ":\n\n":
		case strings.HasPrefix(ev, "event: gap\n"):
			out = append(out, "GAP")
		case strings.HasPrefix(ev, "id: "):
			out = append(out, ev[4:strings.IndexByte(ev, '\n')])
		default:
			t.Fatalf("event %q", ev)
		}
	}
	return out
}

func ticks(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("t%d", i))
	}
	return out
}

// drainAll drains c until the API asks for no more, at most n times.
func (f *fixture) drainAll(c *fakeConn, n int) int {
	f.t.Helper()
	for i := range n {
		if !f.drain(c) {
			return i
		}
	}
	f.t.Fatalf("still draining after %d rounds", n)
	return n
}

// TestEZBacklogGoesOutAsTheSocketDrains: a WebSocket or SSE reader whose
// backlog outgrows its socket gets it in parts, one per Drained, is never
// cut, and ends with every message once, in order: those written before
// it connected, those written while it was paused (deliveries pass it by,
// the store has them) and the live ones after it caught up (C-08,
// EZ-R-10).
func TestEZBacklogGoesOutAsTheSocketDrains(t *testing.T) {
	for _, tc := range []struct {
		path string
		pace int
	}{{"/read/ws", 5}, {"/read/sse", 5}, {"/read/sse", 1}} {
		// pace 1: the SSE opening comment fills the socket, so the reader
		// pauses before its first message.
		path := tc.path
		t.Run(fmt.Sprintf("%s/%d", path, tc.pace), func(t *testing.T) {
			f := newFixture(t, persist.Options{}, Options{ReadBatch: 7})
			for i := 1; i <= 40; i++ {
				f.write(fmt.Sprintf("qname=john-big&msg=m%d&tick=t%d", i, i))
			}
			c := newFakeConn()
			c.pace = tc.pace
			f.serveOn(c, "GET", path, "qname=john-big", "", nil)
			if !c.drainAsked || c.closed {
				t.Fatalf("a backlogged reader must wait for Drained: asked=%v closed=%v", c.drainAsked, c.closed)
			}
			first := len(received(t, c))
			for i := 41; i <= 50; i++ {
				f.write(fmt.Sprintf("qname=john-big&msg=m%d&tick=t%d", i, i))
			}
			f.loop.sync()
			if n := len(received(t, c)); n != first {
				t.Fatalf("a paused reader was sent %d live messages", n-first)
			}
			rounds := f.drainAll(c, 100)
			for i := 51; i <= 53; i++ {
				f.write(fmt.Sprintf("qname=john-big&msg=m%d&tick=t%d", i, i))
			}
			f.loop.sync()
			if got, want := strings.Join(received(t, c), ","), strings.Join(ticks(1, 53), ","); got != want {
				t.Fatalf("got\n%s\nwant\n%s", got, want)
			}
			if rounds < 50/tc.pace-1 {
				t.Fatalf("backlog of 50 at %d per drain went out in %d rounds", tc.pace, rounds)
			}
			if c.closed {
				t.Fatal("the reader was closed")
			}
		})
	}
}

// TestEZDeliveryRacesCatchUp: a message the store has but whose delivery
// has not run on the loop yet is read by the catch-up; its delivery, when
// it comes, finds the reader past it. A message stored after the catch-up
// read reaches the reader by its delivery. Nothing twice, nothing lost.
func TestEZDeliveryRacesCatchUp(t *testing.T) {
	f := newFixture(t, persist.Options{}, Options{})
	for i := 1; i <= 4; i++ {
		f.write(fmt.Sprintf("qname=john-race&msg=m%d&tick=t%d", i, i))
	}
	c := newFakeConn()
	c.pace = 2
	f.serveOn(c, "GET", "/read/ws", "qname=john-race", "", nil)
	// Stored, not yet delivered: the committer's answer is held back.
	stored := func(tick string) persist.Message {
		ch := make(chan persist.EZWriteResult, 1)
		f.store.EZWrite(persist.EZWrite{QName: "john-race", Tick: []byte(tick), Body: []byte("x")}, func(r persist.EZWriteResult) { ch <- r })
		r := <-ch
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		return r.Msg
	}
	m5 := stored("t5")
	c.pace = 0 // the socket keeps up from now on
	f.drainAll(c, 10)
	m6 := stored("t6")
	f.loop.do(func() {
		ls := f.api.state[0]
		ls.deliver(newDelivery("john-race", m5)) // the catch-up read it
		ls.deliver(newDelivery("john-race", m6)) // stored after the read
		ls.deliver(newDelivery("john-race", m6)) // a repeat finds it past
	})
	f.settle()
	if got := strings.Join(received(t, c), ","); got != strings.Join(ticks(1, 6), ",") {
		t.Fatalf("got %s", got)
	}
}

// TestEZGapWhilePaused: retention that drops messages after a paused
// reader's cursor is a real gap, told before what follows it.
func TestEZGapWhilePaused(t *testing.T) {
	f := newFixture(t, persist.Options{EZMaxQueue: 5}, Options{})
	for i := 1; i <= 5; i++ {
		f.write(fmt.Sprintf("qname=john-g&msg=m%d&tick=t%d", i, i))
	}
	c := newFakeConn()
	c.pace = 2
	f.serveOn(c, "GET", "/read/ws", "qname=john-g", "", nil)
	for i := 6; i <= 12; i++ {
		f.write(fmt.Sprintf("qname=john-g&msg=m%d&tick=t%d", i, i))
	}
	c.pace = 0
	f.drainAll(c, 10)
	want := "t1,t2,GAP," + strings.Join(ticks(8, 12), ",")
	if got := strings.Join(received(t, c), ","); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}
