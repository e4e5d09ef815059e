package engine

import (
	"net/netip"
	"testing"
	"unsafe"
)

// TestConnSize: a conn is allocated for every connection, so its size
// class is memory per idle connection (PERF P1). At 176 B it fills Go's
// 176-byte class; a field more moves every connection to 192 (the peer
// kept as a netip.Addr did).
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(conn{}); n > 176 {
		t.Errorf("conn is %d B, over the 176-byte size class", n)
	}
}

// TestPeerAddr: the peer kept as 16 bytes gives back the address it was
// given, IPv4 unmapped, and no address for none.
func TestPeerAddr(t *testing.T) {
	for _, s := range []string{"127.0.0.1", "10.1.2.3", "::1", "2001:db8::7", "fe80::1"} {
		a := netip.MustParseAddr(s)
		c := conn{peer: a.As16()}
		if got := c.peerAddr(); got != a {
			t.Errorf("%s: peerAddr %v", s, got)
		}
		m := netip.AddrFrom16(a.As16()) // the IPv4-mapped form a dual-stack socket reports
		if c := (conn{peer: m.Unmap().As16()}); c.peerAddr() != a {
			t.Errorf("%s mapped: peerAddr %v", s, c.peerAddr())
		}
	}
	if a := (&conn{}).peerAddr(); a.IsValid() {
		t.Errorf("no peer: peerAddr %v, want the zero Addr", a)
	}
}
