package conformance

import (
	"math/rand/v2"
	"net/netip"
	"net/url"
)

// The suite chooses its client IPs by binding sockets to addresses of
// 127.0.0.0/8, which all reach a loopback target on Linux. Each case gets
// its own (runCase), and per-IP cases take more (newAddr), so every
// per-IP count a case checks is its own.

// loopbackTarget reports whether Target is an IPv4 loopback address: only
// then can the suite pick its source addresses.
func (c *Config) loopbackTarget() bool {
	u, err := url.Parse(c.Target)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(u.Hostname())
	return err == nil && a.Is4() && a.IsLoopback()
}

// trusted reports whether a lies inside one of the server's
// --trusted-proxy CIDRs.
func (c *Config) trusted(a netip.Addr) bool {
	for _, s := range c.TrustedProxies {
		if p, err := netip.ParsePrefix(s); err == nil && p.Contains(a) {
			return true
		}
	}
	return false
}

// proxyAddr is a loopback address inside a trusted CIDR that the suite can
// bind to and so act as a trusted proxy; ok is false when there is none.
func (c *Config) proxyAddr() (netip.Addr, bool) {
	if !c.loopbackTarget() {
		return netip.Addr{}, false
	}
	home := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	for _, s := range c.TrustedProxies {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() {
			continue
		}
		if p.Contains(home) {
			return home, true
		}
		base := p.Masked().Addr()
		if !base.IsLoopback() {
			continue
		}
		if p.Bits() < 32 {
			base = base.Next()
		}
		return base, true
	}
	return netip.Addr{}, false
}

// sourceAddr hands out a loopback address no other case of this run uses
// and no --trusted-proxy CIDR holds (127.0.1.2 and up, from a random
// start), or the zero Addr when the target is not IPv4 loopback.
func (s *runState) sourceAddr(cfg *Config) netip.Addr {
	if !cfg.loopbackTarget() {
		return netip.Addr{}
	}
	s.addrMu.Lock()
	defer s.addrMu.Unlock()
	if s.addrNext == 0 {
		s.addrNext = 250 + rand.IntN(200000)
	}
	for range 1 << 16 {
		s.addrNext++
		n := s.addrNext % (250 * 250 * 250)
		a := netip.AddrFrom4([4]byte{127, byte(n / (250 * 250)), byte(n / 250 % 250), byte(n%250 + 2)})
		if n >= 250 && !cfg.trusted(a) {
			return a
		}
	}
	return netip.Addr{}
}

// newAddr is one more client IP of the case's own; a case that needs one
// is skipped when the suite cannot choose its addresses.
func (t *caseT) newAddr() netip.Addr {
	a := t.shared.sourceAddr(t.cfg)
	if !a.IsValid() {
		t.Skipf("per-IP checks need an IPv4 loopback --target (the suite binds 127.x.y.z source addresses) outside every --trusted-proxy CIDR")
	}
	return a
}

// fresh is a view of the case from a new client IP of its own.
func (t *caseT) fresh() *caseT { return t.from(t.newAddr()) }

// freshOrSame is fresh when the suite can choose its addresses, else the
// case itself with ok false (its client IP is then shared with every case).
func (t *caseT) freshOrSame() (view *caseT, ok bool) {
	a := t.shared.sourceAddr(t.cfg)
	if !a.IsValid() {
		return t, false
	}
	return t.from(a), true
}
