package protocol

import (
	"net/netip"
	"testing"

	"github.com/halleypush/halley/engine"
)

func TestClientIP(t *testing.T) {
	a := &API{opts: Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	cases := []struct {
		peer, xff, want string
	}{
		{"192.0.2.1", "203.0.113.9", "192.0.2.1"},                // untrusted peer: XFF ignored
		{"10.0.0.1", "203.0.113.9", "203.0.113.9"},               // trusted peer
		{"10.0.0.1", "198.51.100.7, 203.0.113.9", "203.0.113.9"}, // right-most untrusted
		{"10.0.0.1", "203.0.113.9, 10.1.1.1", "203.0.113.9"},     // skips trusted hops
		{"10.0.0.1", "", "10.0.0.1"},                             // no header
		{"10.0.0.1", "garbage", "10.0.0.1"},                      // unparsable: the peer
		{"::ffff:192.0.2.1", "", "192.0.2.1"},                    // v4-mapped
	}
	for _, tc := range cases {
		h := header{}
		if tc.xff != "" {
			h["X-Forwarded-For"] = tc.xff
		}
		r := &engine.Request{PeerAddr: netip.MustParseAddr(tc.peer), Header: h}
		if got := a.clientIP(r); got.String() != tc.want {
			t.Errorf("peer %s xff %q: %s, want %s", tc.peer, tc.xff, got, tc.want)
		}
	}
}
