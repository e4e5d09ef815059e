package protocol

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/halleypush/halley/engine"
)

// listenVia opens a Cometify listener whose TCP peer is peer and whose
// C-07 client address, as the engine computed it, is client.
func (f *cfFixture) listenVia(kind, query, peer, client string) *fakeConn {
	c := newFakeConn()
	r := &engine.Request{
		Method: []byte("GET"), Path: []byte("/" + f.acct.CFAPIKey + "/" + kind), Query: []byte(query),
		Header: header{}, PeerAddr: netip.MustParseAddr(peer), ClientIP: netip.MustParseAddr(client),
	}
	f.loop.do(func() { f.api.Serve(c, r) })
	f.settle()
	return c
}

// TestListenerCapCountsClientIP: the per-IP cap counts the client
// address the engine computed (C-07), not the TCP peer: clients behind one
// trusted proxy are apart, and one client reaching the server through
// several proxies is one.
func TestListenerCapCountsClientIP(t *testing.T) {
	f := newCFFixture(t, Options{})
	for i := range 40 {
		c := f.listenVia("listen", "identifiers=chat", "10.0.0.1", fmt.Sprintf("203.0.113.%d", i+1))
		if !c.upgraded {
			t.Fatalf("client %d behind the proxy refused: %s", i, c.lastReply(t).body)
		}
	}
	for i := range 30 {
		if c := f.listenVia("sse", "identifiers=chat", fmt.Sprintf("10.0.1.%d", i+1), "198.51.100.7"); !c.streaming {
			t.Fatalf("listener %d refused", i)
		}
	}
	if c := f.listenVia("sse", "identifiers=chat", "10.0.2.1", "198.51.100.7"); c.streaming || c.lastReply(t).status != 429 {
		t.Fatal("the 31st listener of one client through another proxy was not refused")
	}
}
