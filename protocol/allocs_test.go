package protocol

import (
	"net/netip"
	"testing"
	"unsafe"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// TestSubscriberSizes: an idle connection costs its engine state plus one
// of these (P1: about 775 B each in all); each fills one allocator size
// class, so a field more moves every idle reader to the next one.
func TestSubscriberSizes(t *testing.T) {
	if n := unsafe.Sizeof(ezSub{}); n > 96 {
		t.Errorf("ezSub is %d bytes, budget 96", n)
	}
	if n := unsafe.Sizeof(cfSub{}); n > 112 {
		t.Errorf("cfSub is %d bytes, budget 112", n)
	}
	if n := unsafe.Sizeof(cfWatch{}); n > 40 {
		t.Errorf("cfWatch is %d bytes, budget 40", n)
	}
}

var netipLoopback = netip.MustParseAddr("127.0.0.1")

// TestDeliveryAllocs is P5's budget on every transport: delivering one
// message or push to N subscribers allocates nothing per subscriber. The
// polls, answered by each delivery, are put back (on the same
// connections and slots, from the loop's free lists) before the next; one stream on each channel keeps the index
// entries alive, as in a real fan-out.
func TestDeliveryAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation budgets are checked without -race")
	}
	const n = 100
	f := newCFFixture(t, Options{})
	if err := f.store.SetMaxListenersPerIP("john", 1000); err != nil {
		t.Fatal(err)
	}
	ls := f.api.state[0]
	open := func(kind, path, query string) []*fakeConn {
		conns := make([]*fakeConn, n)
		for i := range conns {
			c := newFakeConn()
			c.countOnly = true
			c.replied = make(chan struct{}, 1000)
			f.serveOn(c, "GET", path, query, "", nil)
			conns[i] = c
		}
		return conns
	}
	key := "/" + f.acct.CFAPIKey
	// A stream on the channel and one on the topic keep their index
	// entries alive while every poll is answered.
	open("ws", "/read/ws", "qname=john-fan")
	open("ws", key+"/listen", "identifiers=fan")
	cases := []struct {
		name  string
		conns []*fakeConn
		poll  bool
	}{
		{"ez ws", open("ws", "/read/ws", "qname=john-fan"), false},
		{"ez sse", open("sse", "/read/sse", "qname=john-fan"), false},
		{"ez poll", open("poll", "/read", "qname=john-fan&timeout=60"), true},
		{"cf ws", open("ws", key+"/listen", "identifiers=fan"), false},
		{"cf sse", open("sse", key+"/sse", "identifiers=fan"), false},
		{"cf poll", open("poll", key+"/poll", "identifiers=fan&timeout=60"), true},
	}
	ez := newDelivery("john-fan", persist.Message{Seq: 0, Tick: []byte("t"), Body: []byte("hello")})
	cf := &cfDelivery{topic: "john/fan", name: "fan", id: 1, text: []byte("hello")}
	cf.reserve(nil)
	// An answered EZComet poll's reader is recycled (pool.go): the
	// next poll on its connection takes one from the free list.
	type ezPoll struct {
		c      engine.Conn
		qname  string
		acctID uint64
	}
	var ezPolls []ezPoll
	var cfPolls []cfSub // each answered poll's listener as it was admitted
	for _, tc := range cases {
		for _, c := range tc.conns {
			if c.numReplies() > 0 || c.Tag() == nil {
				t.Fatalf("%s: not waiting", tc.name)
			}
			switch s := c.Tag().(type) {
			case *ezSub:
				if tc.poll {
					ezPolls = append(ezPolls, ezPoll{c, s.qname, s.acctID})
				}
			case *cfSub:
				if tc.poll {
					cfPolls = append(cfPolls, *s)
				}
			}
		}
	}
	// rearm puts the answered polls back, as new ones would come.
	rearm := func() {
		for _, p := range ezPolls {
			if p.c.Tag() == nil {
				k := newCapKey(p.acctID, netipLoopback)
				f.api.cap.Acquire(k, 1<<20)
				s := ls.newSub(p.c, p.qname, subPoll, ez.seq, k.ip)
				s.acctID = p.acctID
				ls.add(s)
			}
		}
		for _, p := range cfPolls {
			if p.conn.Tag() == nil {
				k := newCapKey(p.acctID, netipLoopback)
				f.api.cap.Acquire(k, 1<<20)
				s := ls.free.cfSub()
				w := append(s.watches, p.watches...)
				*s = p
				s.watches, s.slotIP = w, k.ip
				for i := range w {
					w[i].idx, w[i].cursor = -1, cf.id
				}
				s.conn.SetTag(s)
				ls.addCF(s)
			}
		}
	}
	var allocs float64
	f.loop.do(func() {
		allocs = testing.AllocsPerRun(20, func() {
			rearm()
			ez.seq++
			ls.deliver(ez)
			cf.id++
			ls.cfDeliver(cf)
		})
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per delivery to %d subscribers on each of 6 transports, want 0", allocs, n)
	}
	for _, tc := range cases {
		for _, c := range tc.conns {
			// The warm-up run and 20 measured ones, each delivered.
			if tc.poll && len(c.replied) != 21 || !tc.poll && c.sentBytes < 21*len(`["t","hello"]`) {
				t.Fatalf("%s: %d answers, %d bytes sent, want 21 deliveries", tc.name, len(c.replied), c.sentBytes)
			}
		}
	}
}
