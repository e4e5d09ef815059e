package protocol

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// gatedStore holds the store reads of one channel or topic: each is
// read, then waits at the gate before it returns, as a read stuck on a
// slow disk would (its snapshot taken before what is stored meanwhile).
type gatedStore struct {
	*persist.Store
	name    string        // the qname or topic whose reads wait
	entered chan struct{} // one send per read that reached the gate
	gate    chan struct{} // closed: reads go on
	once    sync.Once
	sick    atomic.Pointer[error] // set: Healthy reports it
}

func (g *gatedStore) Healthy() error {
	if p := g.sick.Load(); p != nil {
		return *p
	}
	return g.Store.Healthy()
}

func newGatedStore(s *persist.Store, name string) *gatedStore {
	return &gatedStore{Store: s, name: name, entered: make(chan struct{}, 64), gate: make(chan struct{})}
}

func (g *gatedStore) wait(name string) {
	if name == g.name {
		g.entered <- struct{}{}
		<-g.gate
	}
}

func (g *gatedStore) open() { g.once.Do(func() { close(g.gate) }) }

func (g *gatedStore) EZRead(q string, tick []byte, lim persist.ReadLimit) (persist.ReadResult, error) {
	r, err := g.Store.EZRead(q, tick, lim)
	g.wait(q)
	return r, err
}

func (g *gatedStore) EZReadAfter(q string, after uint64, lim persist.ReadLimit) (persist.ReadResult, error) {
	r, err := g.Store.EZReadAfter(q, after, lim)
	g.wait(q)
	return r, err
}

func (g *gatedStore) CFRead(topic []byte, after uint64, notBefore int64, lim persist.ReadLimit) (persist.CFReadResult, error) {
	r, err := g.Store.CFRead(topic, after, notBefore, lim)
	g.wait(string(topic))
	return r, err
}

// newGatedFixture is newCFFixture over a gatedStore holding name's reads.
func newGatedFixture(t *testing.T, name string, ao Options) (*cfFixture, *gatedStore) {
	t.Helper()
	f := newCFFixture(t, Options{})
	g := newGatedStore(f.store, name)
	t.Cleanup(g.open) // before the store closes: no reader stays stuck
	ao.Store, ao.Now = g, f.clk.now
	api, err := New(ao)
	if err != nil {
		t.Fatal(err)
	}
	api.Attach(f.loop)
	t.Cleanup(api.Close)
	f.api = api
	f.readsHeld = true
	return f, g
}

func (g *gatedStore) awaitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no read reached the gate")
	}
}

// TestStalledReadLeavesLoopServing: a read stuck on the disk holds no
// loop: /healthz, writes and another channel's reads are answered while
// it waits; a read that finds the pool's queue full waits for room while
// the store reports itself healthy (a burst of re-polls is served late,
// never refused), and is answered 503 "storage unavailable" at once while
// it does not (C-10); and once the disk answers, the stuck and waiting
// reads are answered.
func TestStalledReadLeavesLoopServing(t *testing.T) {
	f, g := newGatedFixture(t, "john-slow", Options{Readers: 2, ReadQueue: 1})
	f.write("qname=john-slow&msg=held&tick=s1")
	slow1 := f.serve("GET", "/read", "qname=john-slow&timeout=0", "", nil)
	g.awaitEntered(t)
	if r := f.serve("GET", "/healthz", "", "", nil).lastReply(t); r.status != 200 {
		t.Fatalf("/healthz while a read is stuck: %d", r.status)
	}
	if r := f.write("qname=john-fast&msg=quick&tick=f1"); r.status != 200 {
		t.Fatalf("write while a read is stuck: %d", r.status)
	}
	fast := f.serve("GET", "/read", "qname=john-fast&timeout=0", "", nil)
	f.await("the other channel's read", func() bool { return fast.numReplies() > 0 })
	if r := fast.lastReply(t); r.status != 200 || !strings.Contains(r.body, "quick") {
		t.Fatalf("other channel's read: %d %s", r.status, r.body)
	}

	// Both readers stuck, one read queued: the next waits past the queue
	// while the store is healthy, and is refused at once while it is not.
	slow2 := f.serve("GET", "/read", "qname=john-slow&timeout=0", "", nil)
	g.awaitEntered(t)
	slow3 := f.serve("GET", "/read", "qname=john-slow&timeout=0", "", nil)
	waiting := f.serve("GET", "/read", "qname=john-slow&timeout=0", "", nil)
	if n := waiting.numReplies(); n != 0 {
		t.Fatalf("read past the queue of a healthy store: answered (%d replies), want it to wait", n)
	}
	sick := error(persist.ErrStorage)
	g.sick.Store(&sick)
	full := f.serve("GET", "/read", "qname=john-fast&timeout=0&callback=cb", "", nil)
	if r := full.lastReply(t); r.status != 503 || !strings.Contains(r.body, "storage unavailable") || r.ctype != ctJS {
		t.Fatalf("read past the queue: %d %s %s", r.status, r.ctype, r.body)
	}
	ws := f.serve("GET", "/read/ws", "qname=john-fast", "", nil)
	if r := ws.lastReply(t); r.status != 503 || ws.upgraded {
		t.Fatalf("stream past the queue: %d upgraded=%v", r.status, ws.upgraded)
	}
	if f.api.cap.held() != 0 {
		t.Fatalf("%d listener slots held after refusals", f.api.cap.held())
	}
	g.sick.Store(nil)
	g.open()
	for i, c := range []*fakeConn{slow1, slow2, slow3, waiting} {
		f.await("a stuck read answered", func() bool { return c.numReplies() > 0 })
		if r := c.lastReply(t); r.status != 200 || !strings.Contains(r.body, "held") {
			t.Fatalf("stuck read %d: %d %s", i, r.status, r.body)
		}
	}
}

// TestDeliveryDuringReadNotLost: a message stored and delivered while a
// subscriber's read is in flight, after the read's snapshot, reaches it
// all the same, once: the delivery passes the reading subscriber by, and
// the subscriber reads on when its read is back.
func TestDeliveryDuringReadNotLost(t *testing.T) {
	cases := []struct {
		name, path, query string
		cf                bool
		want              string // in what the subscriber got
	}{
		{"ez poll", "/read", "qname=john-race&timeout=60", false, `"late"`},
		{"ez ws", "/read/ws", "qname=john-race", false, `"late"`},
		{"ez sse", "/read/sse", "qname=john-race", false, "data: late"},
		{"cf poll", "/poll", "identifiers=race:0&timeout=60", true, `"data":"late"`},
		{"cf ws", "/listen", "identifiers=race:0", true, `"data":"late"`},
		{"cf sse", "/sse", "identifiers=race:0", true, `"data":"late"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := "john-race"
			if tc.cf {
				name = "john/race"
			}
			f, g := newGatedFixture(t, name, Options{})
			path := tc.path
			if tc.cf {
				path = "/" + f.acct.CFAPIKey + path
			}
			c := f.serve("GET", path, tc.query, "", nil)
			g.awaitEntered(t) // read: nothing yet; held
			if tc.cf {
				f.push("race", "late", false, "")
			} else if r := f.write("qname=john-race&msg=late&tick=l1"); r.status != 200 {
				t.Fatal(r.status)
			}
			g.open()
			got := func() string {
				s := strings.Join(c.sentCopy(), "")
				if c.numReplies() > 0 {
					s += c.lastReply(t).body
				}
				return s
			}
			f.await("the message delivered while reading", func() bool { return strings.Contains(got(), tc.want) })
			f.readsHeld = false
			f.settle()
			if n := strings.Count(got(), tc.want); n != 1 {
				t.Fatalf("got it %d times: %s", n, got())
			}
		})
	}
}

// TestGoneWhileReading: a subscriber that closes, or is revoked, while
// its read is in flight is answered once (revoked: its 404), gets
// nothing when the read is back, and holds no listener slot.
func TestGoneWhileReading(t *testing.T) {
	f, g := newGatedFixture(t, "john-gone", Options{})
	f.write("qname=john-gone&msg=m&tick=g1")
	ws := f.serve("GET", "/read/ws", "qname=john-gone", "", nil)
	g.awaitEntered(t)
	poll := f.serve("GET", "/read", "qname=john-gone&tick=g1&timeout=60", "", nil)
	g.awaitEntered(t)
	f.loop.do(func() { f.api.Closed(ws) })
	if err := f.store.RemoveAccount("john"); err != nil {
		t.Fatal(err)
	}
	f.api.AccountChanged("john")
	f.loop.sync()
	if r := poll.lastReply(t); r.status != 404 {
		t.Fatalf("revoked poll: %d %s", r.status, r.body)
	}
	g.open()
	f.readsHeld = false
	f.settle()
	if n := poll.numReplies(); n != 1 {
		t.Fatalf("revoked poll answered %d times", n)
	}
	if sent := ws.sentCopy(); len(sent) != 0 {
		t.Fatalf("closed stream was sent %q", sent)
	}
	if n := f.api.cap.held(); n != 0 {
		t.Fatalf("%d listener slots held", n)
	}
}

// TestStalledReadRealEngine: on the real engine, with one loop, a
// reader whose store read is stuck holds nothing up: a WebSocket ping on
// another connection is answered, /healthz is answered, and a poll of
// another channel gets its message, all while the read waits.
func TestStalledReadRealEngine(t *testing.T) {
	var g *gatedStore
	rs := startRealServerOver(t, persist.Options{SweepInterval: -1}, engine.Options{Loops: 1}, func(s *persist.Store) Store {
		g = newGatedStore(s, "john-slow")
		return g
	})
	t.Cleanup(g.open) // runs before the server stops: no reader stays stuck
	if _, err := rs.store.AddAccount("john"); err != nil {
		t.Fatal(err)
	}
	rs.write("john-fast", "f1", "quick")
	stuck, _, st := rs.openWS("127.0.0.1", "/read/ws?qname=john-slow")
	if st != 101 {
		t.Fatalf("stuck reader: %d", st)
	}
	defer stuck.Close()
	g.awaitEntered(t)

	other, br, st := rs.openWS("127.0.0.1", "/read/ws?qname=john-other")
	if st != 101 {
		t.Fatalf("other reader: %d", st)
	}
	defer other.Close()
	if err := ws.WriteFrame(other, ws.MaskFrame(ws.NewPingFrame([]byte("hi")))); err != nil {
		t.Fatal(err)
	}
	_ = other.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, err := ws.ReadHeader(br)
	if err != nil || h.OpCode != ws.OpPong || h.Length != 2 {
		t.Fatalf("ping while a read is stuck: %v %+v", err, h)
	}
	if st := statusOf(t, rs.openHTTP("127.0.0.1", "/healthz")); st != 200 {
		t.Fatalf("/healthz while a read is stuck: %d", st)
	}
	c := rs.openHTTP("127.0.0.1", "/read?qname=john-fast&timeout=0")
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "quick") {
		t.Fatalf("other channel's poll while a read is stuck: %d %s", resp.StatusCode, body)
	}
}
