package protocol

import (
	"strings"
	"testing"
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
		if n := len(f2.api.state[0].free.cfSubs); n != 0 {
			t.Errorf("%d listeners left in the free list, want 0", n)
		}
	})
	if n := cfGone.numReplies(); n != 0 {
		t.Fatalf("closed Cometify poll answered %d times", n)
	}
}
