package protocol

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halleypush/halley/persist"
)

// TestDeliverCommittedAndInterest: a loop's first reader of a channel and
// first listener of a topic are told to Options.Interest, and their last
// leaving too; messages committed elsewhere (DeliverEZ, DeliverCF) reach
// them on every transport as a local group's do, once: a repeat finds the
// cursor past it.
func TestDeliverCommittedAndInterest(t *testing.T) {
	var mu sync.Mutex
	var interest []string
	f := newFixture(t, persist.Options{}, Options{Interest: func(cf bool, name string, on bool) {
		mu.Lock()
		interest = append(interest, fmt.Sprintf("%v %s %v", cf, name, on))
		mu.Unlock()
	}})
	key := "/" + f.acct.CFAPIKey
	ws := f.serve("GET", "/read/ws", "qname=john-c", "", nil)
	ws2 := f.serve("GET", "/read/ws", "qname=john-c", "", nil)
	cf := f.serve("GET", key+"/listen", "identifiers=Room", "", nil)
	poll := f.serve("GET", "/read", "qname=john-c&timeout=60", "", nil)

	f.api.DeliverEZ("john-c", 1, []byte("t1"), []byte("m1"))
	f.api.DeliverEZ("john-c", 1, []byte("t1"), []byte("m1")) // a repeat
	f.api.DeliverCF("john/room", 4, false, []byte("hi"))
	f.api.AfterBatch()
	f.settle()

	for _, c := range []*fakeConn{ws, ws2} {
		if got := c.sentCopy(); len(got) != 1 || !strings.Contains(got[0], `["t1","m1"]`) {
			t.Errorf("EZ WebSocket got %q, want m1 once", got)
		}
	}
	if r := poll.lastReply(t); !strings.Contains(string(r.body), `["t1","m1"]`) {
		t.Errorf("EZ poll answered %s", r.body)
	}
	if got := cf.sentCopy(); len(got) != 2 || !strings.Contains(got[1], `"id":4,"data":"hi"`) {
		t.Errorf("CF WebSocket got %q, want its since frame and the push", got)
	}
	f.loop.do(func() { f.api.Closed(ws); f.api.Closed(ws2); f.api.Closed(cf) })
	// The emptied entries linger (index.go): the first sweep marks
	// them, the second drops them, and only then is Interest told.
	got := func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprint(interest)
	}
	const on = "[false john-c true true john/room true"
	f.loop.do(func() { f.api.state[0].sweep() })
	if g := got(); g != on+"]" {
		t.Errorf("interest after the first sweep %q\nwant     %q", g, on+"]")
	}
	f.loop.do(func() { f.api.state[0].sweep() })
	if want := on + " false john-c false true john/room false]"; got() != want {
		t.Errorf("interest after the second sweep %q\nwant     %q", got(), want)
	}
}

// TestIndexEntryLingers: a channel read only by long-polls keeps its
// index entry (and Interest) from one poll to the next, an entry filled
// again before the second sweep stays, and an account change drops the
// emptied entries of its channels and topics at once.
func TestIndexEntryLingers(t *testing.T) {
	var mu sync.Mutex
	var interest []string
	f := newFixture(t, persist.Options{}, Options{IndexSweep: -1, Interest: func(cf bool, name string, on bool) {
		mu.Lock()
		interest = append(interest, fmt.Sprintf("%v %s %v", cf, name, on))
		mu.Unlock()
	}})
	got := func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprint(interest)
	}
	key := "/" + f.acct.CFAPIKey
	sweep := func() { f.loop.do(func() { f.api.state[0].sweep() }) }
	f.write("qname=john-c&msg=m&tick=t0")
	for seq := 1; seq <= 3; seq++ {
		poll := f.serve("GET", "/read", fmt.Sprintf("qname=john-c&timeout=60&tick=t%d", seq-1), "", nil)
		f.settle()
		f.write(fmt.Sprintf("qname=john-c&msg=m&tick=t%d", seq))
		f.await("poll answer", func() bool { return poll.numReplies() > 0 })
		if r := poll.lastReply(t); !strings.Contains(string(r.body), fmt.Sprintf(`["t%d","m"]`, seq)) {
			t.Fatalf("poll %d answered %s", seq, r.body)
		}
		sweep() // one sweep between polls: marked, not dropped
	}
	if want := "[false john-c true]"; got() != want {
		t.Errorf("interest over three poll cycles %q, want %q (one entry, kept)", got(), want)
	}
	f.loop.do(func() {
		if cs := f.api.state[0].subs["john-c"]; cs == nil || cs.last != 4 {
			t.Errorf("lingering entry %+v, want last 4 (the fourth message's seq)", cs)
		}
	})
	sweep()
	if want := "[false john-c true false john-c false]"; got() != want {
		t.Errorf("interest after two empty sweeps %q, want %q", got(), want)
	}

	// An account change drops emptied entries at once.
	poll := f.serve("GET", "/read", "qname=john-c&timeout=60&tick=t3", "", nil)
	cf := f.serve("GET", key+"/listen", "identifiers=Room", "", nil)
	f.settle()
	f.loop.do(func() { f.api.Closed(poll); f.api.Closed(cf) })
	f.api.AccountChanged("john")
	f.loop.sync()
	want := "[false john-c true false john-c false false john-c true true john/room true false john-c false true john/room false]"
	if got() != want {
		t.Errorf("interest after an account change %q\nwant %q", got(), want)
	}
	f.loop.do(func() {
		if n, m := len(f.api.state[0].subs), len(f.api.state[0].cfTopics); n+m != 0 {
			t.Errorf("%d channels and %d topics indexed after the account change", n, m)
		}
	})
}

// TestSweeperDropsEmptiedEntries: the API's own sweeper (not a test's
// direct sweep) drops an entry that stayed empty, and tells Interest.
func TestSweeperDropsEmptiedEntries(t *testing.T) {
	var off atomic.Bool
	f := newFixture(t, persist.Options{}, Options{IndexSweep: 5 * time.Millisecond, Interest: func(cf bool, name string, on bool) {
		if !on && name == "john-c" {
			off.Store(true)
		}
	}})
	ws := f.serve("GET", "/read/ws", "qname=john-c", "", nil)
	f.settle()
	f.loop.do(func() { f.api.Closed(ws) })
	f.await("the emptied entry dropped", func() bool { return off.Load() && f.api.state[0].subs["john-c"] == nil })
	f.loop.do(func() {
		if f.api.state[0].toSweep.Load() {
			t.Error("toSweep still set with nothing left to sweep")
		}
	})
}
