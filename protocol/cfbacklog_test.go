package protocol

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/halleypush/halley/persist"
)

// cfReceived decodes what a Cometify stream was sent, in order:
// "name:id" per push, "GAP:name" per gap signal; resume points are
// skipped.
func cfReceived(t *testing.T, c *fakeConn) []string {
	t.Helper()
	var objs []string
	if c.upgraded {
		objs = frames(t, c)
	} else {
		for _, ev := range strings.SplitAfter(strings.Join(c.sentCopy(), ""), "\n\n") {
			if i := strings.Index(ev, "data: "); i >= 0 {
				objs = append(objs, strings.TrimSuffix(ev[i+len("data: "):], "\n\n"))
			}
		}
	}
	var out []string
	for _, o := range objs {
		var v struct {
			Identifier string
			ID         *uint64
			Data       *string
			Gap        bool
			Since      *string
		}
		if err := json.Unmarshal([]byte(o), &v); err != nil {
			t.Fatalf("%q: %v", o, err)
		}
		switch {
		case v.Gap:
			out = append(out, "GAP:"+v.Identifier)
		case v.Data != nil:
			out = append(out, fmt.Sprintf("%s:%d", v.Identifier, *v.ID))
		case v.Since == nil:
			t.Fatalf("unknown object %q", o)
		}
	}
	return out
}

// ids lists "name:from".."name:to".
func ids(name string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s:%d", name, i))
	}
	return out
}

// only keeps the entries of name (its pushes and gaps), in order.
func only(got []string, name string) string {
	var out []string
	for _, g := range got {
		if strings.HasPrefix(g, name+":") || g == "GAP:"+name {
			out = append(out, g)
		}
	}
	return strings.Join(out, ",")
}

func (f *cfFixture) listenPaced(kind, query string, pace int) *fakeConn {
	c := newFakeConn()
	c.pace = pace
	f.serveOn(c, "GET", "/"+f.acct.CFAPIKey+"/"+kind, query, "", nil)
	return c
}

// TestCFReplayGoesOutAsTheSocketDrains: a WebSocket or SSE listener whose
// replay outgrows its socket gets it in parts, one per Drained, is never
// cut, and gets every push of each identifier once, in id order: the
// replay, those pushed while it was paused, and the live ones after
// (C-08, CF-L-05).
func TestCFReplayGoesOutAsTheSocketDrains(t *testing.T) {
	for _, kind := range []string{"listen", "sse"} {
		for _, pace := range []int{1, 4} {
			t.Run(fmt.Sprintf("%s/%d", kind, pace), func(t *testing.T) {
				f := newCFFixture(t, Options{ReadBatch: 3})
				for i := range 12 {
					f.push("chat", fmt.Sprint("c", i), false, "")
					f.push("news", fmt.Sprint("n", i), false, "")
				}
				c := f.listenPaced(kind, "identifiers=chat:0,news:2", pace)
				if !c.drainAsked || c.closed {
					t.Fatalf("a backlogged listener must wait for Drained: asked=%v closed=%v", c.drainAsked, c.closed)
				}
				before := len(cfReceived(t, c))
				for i := 12; i < 16; i++ {
					f.push("chat", fmt.Sprint("c", i), false, "")
					f.push("news", fmt.Sprint("n", i), false, "")
				}
				f.loop.sync()
				if n := len(cfReceived(t, c)); n != before {
					t.Fatalf("a paused listener was sent %d live pushes", n-before)
				}
				f.drainAll(c, 100)
				f.push("chat", "live", false, "")
				f.push("news", "live", false, "")
				f.loop.sync()
				got := cfReceived(t, c)
				if g, w := only(got, "chat"), strings.Join(ids("chat", 1, 17), ","); g != w {
					t.Fatalf("chat:\n%s\nwant\n%s", g, w)
				}
				if g, w := only(got, "news"), strings.Join(ids("news", 3, 17), ","); g != w {
					t.Fatalf("news:\n%s\nwant\n%s", g, w)
				}
				if c.closed {
					t.Fatal("the listener was closed")
				}
			})
		}
	}
}

// TestCFPausedReplayKeepsItsWindow: a replay that pauses is measured from
// the listener's start, not from the time it goes on: an id-0 replay
// loses nothing and an id > 0 resume invents no gap because the clock
// moved while the socket was backlogged (CF-L-05, X-01).
func TestCFPausedReplayKeepsItsWindow(t *testing.T) {
	for _, tc := range []struct {
		list     string
		age, lag time.Duration // the pushes' age at the start; the pause
	}{
		{"chat:0", 8 * time.Minute, 5 * time.Minute}, // replay window 10 min
		{"chat:1", 2 * time.Minute, 2 * time.Minute}, // resume window 3 min
	} {
		t.Run(tc.list, func(t *testing.T) {
			clk := &clock{t: time.Unix(1_700_000_000, 0)}
			f := &cfFixture{fixture: newFixture(t, persist.Options{Now: clk.now, SweepInterval: -1, CFRetain: time.Hour},
				Options{Now: clk.now, ReadBatch: 2}), clk: clk}
			for i := range 6 {
				f.push("chat", fmt.Sprint("c", i), false, "")
			}
			clk.add(tc.age)
			c := f.listenPaced("listen", "identifiers="+tc.list, 2)
			clk.add(tc.lag)
			f.drainAll(c, 100)
			from := 1
			if tc.list == "chat:1" {
				from = 2
			}
			if got, want := strings.Join(cfReceived(t, c), ","), strings.Join(ids("chat", from, 6), ","); got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
		})
	}
}

// TestCFRetentionGapWhilePaused: pushes that retention drops while a
// listener is paused, after its cursor, are a real gap: told once, before
// the pushes that follow.
func TestCFRetentionGapWhilePaused(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	f := &cfFixture{fixture: newFixture(t, persist.Options{Now: clk.now, SweepInterval: -1, CFRetain: 10 * time.Minute},
		Options{Now: clk.now}), clk: clk}
	for i := range 4 {
		f.push("chat", fmt.Sprint("c", i), false, "")
	}
	c := f.listenPaced("listen", "identifiers=chat:0", 2) // since, chat:1, then paused
	clk.add(11 * time.Minute)
	f.push("chat", "after", false, "") // id 5, retained
	f.drainAll(c, 10)
	f.push("chat", "live", false, "")
	f.loop.sync()
	if got, want := strings.Join(cfReceived(t, c), ","), "chat:1,GAP:chat,chat:5,chat:6"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	// A gap told once is not told again by the next read from the same
	// cursor: resume point 1 of "old" is outside the resume window.
	f.push("old", "o1", false, "")
	f.push("old", "o2", false, "")
	clk.add(4 * time.Minute)
	f.push("old", "o3", false, "")
	f.push("old", "o4", false, "")
	c = f.listenPaced("sse", "identifiers=old:1", 2) // id line, gap event, then paused
	f.drainAll(c, 10)
	if got, want := strings.Join(cfReceived(t, c), ","), "GAP:old,old:3,old:4"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// TestCFDeliveryRacesReplay: a push the store has but whose delivery has
// not run yet is read by the paused listener's replay, and its delivery
// then finds the listener past it; one stored after that read comes by
// its delivery. Nothing twice, nothing lost.
func TestCFDeliveryRacesReplay(t *testing.T) {
	f := newCFFixture(t, Options{})
	for i := range 3 {
		f.push("chat", fmt.Sprint("c", i), false, "")
	}
	c := f.listenPaced("listen", "identifiers=chat:0", 2)
	stored := func(text string) *cfDelivery {
		ch := make(chan persist.CFPushResult, 1)
		f.store.CFPushTo(persist.CFPush{Topic: "john/chat", Text: []byte(text)}, cfDone(func(r persist.CFPushResult) { ch <- r }))
		r := <-ch
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		d := &cfDelivery{topic: "john/chat", name: "chat", id: r.Msg.ID, text: r.Msg.Text}
		d.reserve(nil)
		return d
	}
	d4 := stored("c3")
	c.pace = 0
	f.drainAll(c, 10)
	d5 := stored("c4")
	f.loop.do(func() {
		ls := f.api.state[0]
		ls.cfDeliver(d4)
		ls.cfDeliver(d5)
		ls.cfDeliver(d5)
	})
	if got, want := strings.Join(cfReceived(t, c), ","), strings.Join(ids("chat", 1, 5), ","); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

type cfDone func(persist.CFPushResult)

func (f cfDone) CFPushDone(r persist.CFPushResult) { f(r) }
