package conformance

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
)

// checkClientIP is C-07, seen through the per-IP listener cap (CF-L-08):
// the cap counts per TCP peer, and per X-Forwarded-For client only behind
// a trusted proxy; IPv6 clients count per /64.
func checkClientIP(t *caseT) {
	limit := t.cfg.MaxListenersPerIP
	if limit > 300 {
		t.Skipf("--max-listeners-per-ip %d needs too many sockets", limit)
	}
	a := t.cfg.Account
	x := ident()
	xff := func(addr string) string { return "X-Forwarded-For: " + addr }

	// An untrusted peer's X-Forwarded-For is ignored.
	p := t.fresh()
	p.holdMany(limit, a, x, "from one untrusted peer, each with another X-Forwarded-For", func(int) string { return xff(t.outsideAddr()) })
	p.wantOver(a, x, fmt.Sprintf("%d listeners from untrusted %v with other X-Forwarded-For values", limit, p.src), xff(t.outsideAddr()))

	proxy, ok := t.cfg.proxyAddr()
	if !ok {
		if len(t.cfg.TrustedProxies) == 0 {
			t.Notef("X-Forwarded-For from a trusted proxy and IPv6 /64 counting (pass the server's --trusted-proxy CIDRs)")
		} else {
			t.Notef("X-Forwarded-For from a trusted proxy: no --trusted-proxy CIDR holds a loopback address the suite can send from")
		}
		return
	}
	px := t.from(proxy)
	v := t.outsideAddr()
	px.holdMany(limit, a, x, "through trusted proxy "+proxy.String()+" for client "+v, func(int) string { return xff(v) })
	px.wantOver(a, x, fmt.Sprintf("%d listeners of client %s through the proxy", limit, v), xff(v))
	px.wantOver(a, x, "the right-most X-Forwarded-For entry is the client", xff(t.outsideAddr()+", "+v))
	px.wantOver(a, x, "trusted entries are skipped from the right", xff(v+", "+proxy.String()))
	px.hold(viaWS, a, x, "another client through the proxy", xff(t.outsideAddr())).close()
	px.hold(viaWS, a, x, "another client right-most", xff(v+", "+t.outsideAddr())).close()
	px.hold(viaWS, a, x, "the proxy's own connections are not the client's").close()

	// IPv6 clients count per /64.
	net64 := fmt.Sprintf("2001:db8:%x:%x", rand.IntN(1<<16), rand.IntN(1<<16))
	px.holdMany(limit, a, x, "through the proxy from one IPv6 /64", func(i int) string { return xff(fmt.Sprintf("%s::%x", net64, i+1)) })
	px.wantOver(a, x, fmt.Sprintf("%d listeners from %s::/64", limit, net64), xff(net64+":ffff:ffff:ffff:ffff"))
	px.hold(viaWS, a, x, "another /64", xff(fmt.Sprintf("2001:db8:%x:%x::1", rand.IntN(1<<16), rand.IntN(1<<16)))).close()
}

// outsideAddr is a random address of 198.18.0.0/15 (benchmarking, never a
// real client) outside every --trusted-proxy CIDR, for X-Forwarded-For.
func (t *caseT) outsideAddr() string {
	for range 100 {
		a := netip.AddrFrom4([4]byte{198, byte(18 + rand.IntN(2)), byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
		if !t.cfg.trusted(a) {
			return a.String()
		}
	}
	t.Skipf("every address of 198.18.0.0/15 is inside a --trusted-proxy CIDR")
	return ""
}
