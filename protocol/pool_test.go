package protocol

import (
	"fmt"
	"strings"
	"testing"

	"github.com/halleypush/halley/persist"
)

// TestRecycledOnlyAfterItsRead: a reader that leaves while its store read
// is in flight is not handed to the next poll (that poll would then see
// the stale read's result, or the stale read its answer); once the read
// is back it is recycled, and the poll that takes it waits and is
// answered as any other. The same for a Cometify listener.
func TestRecycledOnlyAfterItsRead(t *testing.T) {
	f, g := newGatedFixture(t, "john-gated", Options{IndexSweep: -1})

	gone := f.serve("GET", "/read", "qname=john-gated&timeout=60", "", nil)
	g.awaitEntered(t)
	var goneSub *ezSub
	f.loop.do(func() { goneSub = gone.Tag().(*ezSub); f.api.Closed(gone) })

	p1 := f.serve("GET", "/read", "qname=john-free&timeout=60", "", nil)
	f.settle()
	f.loop.do(func() {
		if p1.Tag() == goneSub {
			t.Fatal("a reader whose read is in flight served the next poll")
		}
	})

	g.open()
	f.readsHeld = false
	f.settle()
	if n := gone.numReplies(); n != 0 {
		t.Fatalf("closed poll answered %d times", n)
	}
	p2 := f.serve("GET", "/read", "qname=john-free&timeout=60", "", nil)
	f.settle()
	f.loop.do(func() {
		if p2.Tag() != goneSub {
			t.Error("the reader was not recycled once its read was back")
		}
	})
	f.write("qname=john-free&msg=hello&tick=f1")
	f.await("poll answers", func() bool { return p1.numReplies() > 0 && p2.numReplies() > 0 })
	for _, p := range []*fakeConn{p1, p2} {
		if r := p.lastReply(t); !strings.Contains(r.body, `["f1","hello"]`) {
			t.Errorf("poll answered %s", r.body)
		}
	}

	// Cometify: a listener whose replay read is in flight.
	f2, g2 := newGatedFixture(t, "john/gated", Options{IndexSweep: -1})
	key := "/" + f2.acct.CFAPIKey
	cfGone := f2.serve("GET", key+"/poll", "identifiers=gated:0&timeout=60", "", nil)
	g2.awaitEntered(t)
	var cfGoneSub *cfSub
	f2.loop.do(func() { cfGoneSub = cfGone.Tag().(*cfSub); f2.api.Closed(cfGone) })
	c1 := f2.serve("GET", key+"/poll", "identifiers=free&timeout=60", "", nil)
	f2.settle()
	f2.loop.do(func() {
		if c1.Tag() == cfGoneSub {
			t.Fatal("a listener whose read is in flight served the next poll")
		}
	})
	g2.open()
	f2.readsHeld = false
	f2.settle()
	c2 := f2.serve("GET", key+"/poll", "identifiers=free&timeout=60", "", nil)
	f2.settle()
	f2.loop.do(func() {
		if c2.Tag() != cfGoneSub {
			t.Error("the listener was not recycled once its read was back")
		}
		if n := len(f2.api.state[0].free.cfSubs.items); n != 0 {
			t.Errorf("%d listeners left in the free list, want 0", n)
		}
	})
	if n := cfGone.numReplies(); n != 0 {
		t.Fatalf("closed Cometify poll answered %d times", n)
	}
}

// TestNoReadForAReaderThatLeft: a stream whose connection goes while its
// first result is sent (gnet closes a socket whose write fails, and
// Closed runs at once) reads nothing more, though a delivery passed it
// by during its read: a read for a reader that left would run on a
// recycled one, which the next request may already have taken.
func TestNoReadForAReaderThatLeft(t *testing.T) {
	f, g := newGatedFixture(t, "john/gated", Options{IndexSweep: -1})
	key := "/" + f.acct.CFAPIKey
	c := newFakeConn()
	c.onSend = func() { c.closed = true; f.api.Closed(c) }
	f.serveOn(c, "GET", key+"/listen", "identifiers=gated:0", "", nil)
	g.awaitEntered(t)
	// Delivered while the listener reads: it is passed by, and would
	// read again once its first read is back.
	f.push("gated", "p1", false, "")
	g.open()
	f.readsHeld = false
	f.settle()
	if !c.closed {
		t.Fatal("the stream did not go on its first send")
	}
	if n := len(g.entered); n != 0 {
		t.Errorf("%d more store reads for a listener that left", n)
	}

	// EZComet: the gap signal is the stream's first send (its tick was
	// flushed away, and its read finds nothing after it).
	f2, g2 := newGatedFixture(t, "john-gated", Options{IndexSweep: -1})
	for i := range 3 {
		f2.write(fmt.Sprintf("qname=john-gated&msg=m&tick=g%d", i))
	}
	f2.write("qname=john-gated&flush=1")
	c2 := newFakeConn()
	c2.onSend = func() { c2.closed = true; f2.api.Closed(c2) }
	f2.serveOn(c2, "GET", "/read/ws", "qname=john-gated&tick=g1", "", nil)
	g2.awaitEntered(t)
	f2.write("qname=john-gated&msg=m&tick=g3")
	g2.open()
	f2.readsHeld = false
	f2.settle()
	if !c2.closed {
		t.Fatal("the EZComet stream did not go on its first send")
	}
	if n := len(g2.entered); n != 0 {
		t.Errorf("%d more store reads for a reader that left", n)
	}
}

// TestFreeListsTrimmedWhenIdle: what answered polls gave back is kept
// while polls keep taking it, and let go by the sweep once nothing has
// been taken since the sweep before (idle connections must not keep a
// burst's leftovers, PERF P1).
func TestFreeListsTrimmedWhenIdle(t *testing.T) {
	f := newFixture(t, persist.Options{}, Options{IndexSweep: -1})
	const n = 5
	polls := make([]*fakeConn, n)
	for i := range polls {
		polls[i] = f.serve("GET", "/read", "qname=john-trim&timeout=60", "", nil)
	}
	f.settle()
	f.write("qname=john-trim&msg=m&tick=t1")
	f.await("poll answers", func() bool {
		for _, p := range polls {
			if p.numReplies() == 0 {
				return false
			}
		}
		return true
	})
	ls := f.api.state[0]
	held := func() (subs, reads int) {
		f.loop.do(func() { subs, reads = len(ls.free.subs.items), len(ls.free.reads.items) })
		return
	}
	if subs, reads := held(); subs != n || reads < 1 {
		t.Fatalf("after %d answers the free lists hold %d readers and %d reads", n, subs, reads)
	}
	f.loop.do(ls.sweep) // the polls took from the lists since the start
	if subs, _ := held(); subs != n {
		t.Fatalf("the first sweep after the polls kept %d readers, want %d", subs, n)
	}
	f.loop.do(ls.sweep) // nothing taken since
	if subs, reads := held(); subs+reads != 0 {
		t.Errorf("an idle sweep kept %d readers and %d reads", subs, reads)
	}
	f.loop.do(ls.sweep) // the emptied channel entry goes too
	f.loop.do(func() {
		if ls.toSweep.Load() {
			t.Error("toSweep set with nothing left to sweep")
		}
	})
}
