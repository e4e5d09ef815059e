package conformance

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
)

// checkClientIP is C-07, seen through the per-IP listener cap (CF-L-08):
// the cap counts per TCP peer, and per forwarded client (X-Forwarded-For
// or Forwarded: for=) only behind a trusted proxy; IPv6 clients count per
// /64.
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
	p.wantRefused(a, x, "an untrusted peer's X-Forwarded-For over two lines", xff(t.outsideAddr()), xff(t.outsideAddr()))
	p.wantRefused(a, x, "an untrusted peer's Forwarded: for=", "Forwarded: for="+t.outsideAddr())

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
	forwardedForms(t, px, v)

	// IPv6 clients count per /64.
	net64 := fmt.Sprintf("2001:db8:%x:%x", rand.IntN(1<<16), rand.IntN(1<<16))
	px.holdMany(limit, a, x, "through the proxy from one IPv6 /64", func(i int) string { return xff(fmt.Sprintf("%s::%x", net64, i+1)) })
	px.wantOver(a, x, fmt.Sprintf("%d listeners from %s::/64", limit, net64), xff(net64+":ffff:ffff:ffff:ffff"))
	px.hold(viaWS, a, x, "another /64", xff(fmt.Sprintf("2001:db8:%x:%x::1", rand.IntN(1<<16), rand.IntN(1<<16)))).close()
	px.wantRefused(a, x, "X-Forwarded-For: [v6]:port in a /64 at the cap", xff("["+net64+"::beef]:443"))
	px.wantRefused(a, x, `Forwarded: for="[v6]:port" in a /64 at the cap`, `Forwarded: for="[`+net64+`::beef]:443"`)
	px.wantRefused(a, x, `Forwarded: for="[v6]" in a /64 at the cap`, `Forwarded: for="[`+net64+`::beef]"`)
	px.hold(viaWS, a, x, `Forwarded: for="[v6]:port" of another /64`, fmt.Sprintf(`Forwarded: for="[2001:db8:%x:%x::1]:80"`, rand.IntN(1<<16), rand.IntN(1<<16))).close()
}

// forwardedForms checks, through a trusted proxy px, the forms of
// X-Forwarded-For and Forwarded that must name client v, whose listeners
// are at the cap: every X-Forwarded-For line is one list, entries may
// carry a port, and RFC 7239 Forwarded: for= is read the same way (quoted,
// several elements, several lines, trusted hops skipped from the right).
// Each over-the-cap form has a twin naming another client that is served,
// so a server that reads no header at all cannot pass.
func forwardedForms(t, px *caseT, v string) {
	a, x := t.cfg.Account, ident()
	xff := func(addr string) string { return "X-Forwarded-For: " + addr }
	proxy := px.src.String()
	over := []struct {
		what    string
		headers []string
	}{
		{"X-Forwarded-For over two lines, the client on the second", []string{xff(t.outsideAddr()), xff(v)}},
		{"X-Forwarded-For over two lines, the proxy on the second", []string{xff(v), xff(proxy)}},
		{"X-Forwarded-For over three lines", []string{xff(t.outsideAddr()), xff(t.outsideAddr() + ", " + v), xff(proxy)}},
		{"X-Forwarded-For ip:port", []string{xff(v + ":5555")}},
		{"X-Forwarded-For ip:port after another entry", []string{xff(t.outsideAddr() + ":1, " + v + ":2")}},
		{"Forwarded: for=ip", []string{"Forwarded: for=" + v}},
		{`Forwarded: for="ip:port"`, []string{`Forwarded: for="` + v + `:4711"`}},
		{"Forwarded: for= with other parameters", []string{"Forwarded: proto=https;for=" + v + ";by=" + proxy}},
		{"Forwarded with several elements", []string{"Forwarded: for=" + t.outsideAddr() + ", for=" + v}},
		{"Forwarded over two lines", []string{"Forwarded: for=" + t.outsideAddr(), "Forwarded: for=" + v}},
		{"Forwarded with the proxy right-most", []string{"Forwarded: for=" + v + ", for=" + proxy}},
	}
	for _, o := range over {
		px.wantRefused(a, x, o.what+" naming a client at the cap", o.headers...)
	}
	w := t.outsideAddr()
	served := []struct {
		what    string
		headers []string
	}{
		{"X-Forwarded-For over two lines, another client on the second", []string{xff(v), xff(w)}},
		{"X-Forwarded-For ip:port of another client", []string{xff(w + ":5555")}},
		{`Forwarded: for="ip:port" of another client`, []string{`Forwarded: for="` + w + `:4711"`}},
		{"Forwarded with several elements, another client right-most", []string{"Forwarded: for=" + v + ", for=" + w}},
		{"Forwarded over two lines, another client on the second", []string{"Forwarded: for=" + v, "Forwarded: for=" + w}},
	}
	for _, s := range served {
		px.hold(viaWS, a, x, s.what, s.headers...).close()
	}
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

// wantRefused checks that one more listener from this case's address, on
// every transport, gets a JSON 429; a listener served instead fails the
// case with what in the detail.
func (t *caseT) wantRefused(a Account, list, what string, headers ...string) {
	for _, via := range ezTransports {
		w, r := t.tryHold(via, a, list, headers...)
		if w != nil {
			w.close()
			t.Fatalf("%s: a %s listener was served; want a JSON 429, the client is at the cap", what, via)
		}
		t.wantError(r, 429, fmt.Sprintf("%s: one more %s listener", what, via))
	}
}
