package protocol

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// readFrom opens an EZComet reader (path /read, /read/ws or /read/sse)
// whose client address is ip.
func (f *fixture) readFrom(path, query, ip string) *fakeConn {
	c := newFakeConn()
	r := &engine.Request{
		Method: []byte("GET"), Path: []byte(path), Query: []byte(query), Header: header{},
		PeerAddr: netip.MustParseAddr(ip), ClientIP: netip.MustParseAddr(ip),
	}
	f.loop.do(func() { f.api.Serve(c, r) })
	f.settle()
	return c
}

func (f *fixture) slotsHeld() int {
	var n int
	f.loop.do(func() { n = f.api.cap.held() })
	return n
}

// TestEZReadersShareTheListenerCap: EZComet readers take a slot in their
// account's per-IP bucket, the one its Cometify listeners use (C-12): a
// WebSocket or SSE reader for its life, a poll while it waits. Over the
// cap a reader gets a JSON 429 before any upgrade (JSONP for a poll);
// every way of leaving gives the slot back.
func TestEZReadersShareTheListenerCap(t *testing.T) {
	f := newCFFixture(t, Options{})
	const ip = "10.7.0.1"
	var open []*fakeConn
	for i := range 5 {
		open = append(open, f.listen([]string{"listen", "sse", "poll"}[i%3], "identifiers=chat", ip, nil))
	}
	paths := []string{"/read/ws", "/read/sse", "/read"}
	for i := range 25 {
		c := f.readFrom(paths[i%3], "qname=john-room&timeout=60", ip)
		if c.numReplies() > 0 {
			t.Fatalf("reader %d refused: %s", i, c.lastReply(t).body)
		}
		open = append(open, c)
	}
	if n := f.slotsHeld(); n != 30 {
		t.Fatalf("%d slots held, want 30", n)
	}
	for _, p := range paths {
		c := f.readFrom(p, "qname=john-room&timeout=60", ip)
		r := c.lastReply(t)
		if r.status != 429 || decode(t, r.body)["status"] != float64(429) || c.upgraded || c.streaming || c.Tag() != nil {
			t.Fatalf("31st %s: %d %s upgraded=%v streaming=%v", p, r.status, r.body, c.upgraded, c.streaming)
		}
	}
	if c := f.listen("listen", "identifiers=chat", ip, nil); c.upgraded || c.lastReply(t).status != 429 {
		t.Fatal("a Cometify listener got past a cap the EZComet readers filled")
	}
	r := f.readFrom("/read", "qname=john-room&timeout=60&callback=cb", ip).lastReply(t)
	if r.status != 429 || !strings.HasPrefix(r.body, "cb({") {
		t.Fatalf("refused JSONP poll: %d %s", r.status, r.body)
	}
	// Another IP has its own bucket; a poll answered at once needs none.
	if c := f.readFrom("/read/ws", "qname=john-room", "10.7.0.2"); !c.upgraded {
		t.Fatal("another IP refused")
	}
	f.write("qname=john-other&msg=x")
	if c := f.readFrom("/read", "qname=john-other", ip); c.lastReply(t).status != 200 {
		t.Fatal("a poll answered at once was refused")
	}
	// A write answers the waiting polls: their slots come back.
	f.write("qname=john-room&msg=wake")
	f.await("polls answered", func() bool { return f.api.cap.held() == 30-8+1 })
	f.loop.do(func() {
		for _, c := range open {
			f.api.Closed(c)
		}
	})
	if n := f.slotsHeld(); n != 1 {
		t.Fatalf("%d slots held after every reader of 10.7.0.1 closed, want 1", n)
	}
}

// TestEZSlotFreedWhenPeerGoesDuringUpgrade: a reader whose peer goes while
// its 101 or stream head is written never gets a Closed, so its slot must
// be given back right there.
func TestEZSlotFreedWhenPeerGoesDuringUpgrade(t *testing.T) {
	f := newFixture(t, persist.Options{}, Options{})
	for _, path := range []string{"/read/ws", "/read/sse"} {
		c := newFakeConn()
		c.dieOnOpen = true
		r := &engine.Request{Method: []byte("GET"), Path: []byte(path), Query: []byte("qname=john-c"), Header: header{},
			PeerAddr: netip.MustParseAddr("10.9.0.2"), ClientIP: netip.MustParseAddr("10.9.0.2")}
		f.loop.do(func() { f.api.Serve(c, r) })
		f.settle()
	}
	if n := f.slotsHeld(); n != 0 {
		t.Fatalf("%d slots held by readers whose peer went during the upgrade", n)
	}
}
