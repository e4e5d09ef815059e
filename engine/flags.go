package engine

import (
	"flag"
	"fmt"
	"net/netip"
	"strings"
)

// RegisterFlags declares on fs a flag for every Options field an operator
// sets, each bound to its field and starting from the field's documented
// default (the Default* constants), so that `halley serve --help`, its
// environment variables, its config file and `halley config print` all
// show the one default EnsureDefaults would fill in. Fields a flag leaves
// at zero (Loops) keep EnsureDefaults' meaning of zero. The repeatable
// flags (--listen, --trusted-proxy) also take a comma-separated list; the
// first value given replaces the default.
func (o *Options) RegisterFlags(fs *flag.FlagSet) {
	o.Listen = []string{DefaultListen}
	fs.Var(&listenList{dst: &o.Listen}, "listen", "address to serve, repeatable or comma-separated")
	fs.Var((*prefixList)(&o.TrustedProxies), "trusted-proxy", "CIDR or address whose X-Forwarded-For is believed, repeatable or comma-separated (C-07)")
	fs.IntVar(&o.Loops, "loops", 0, "event loops (0: number of CPUs); with N, the process runs Go code on N threads (GOMAXPROCS), unless GOMAXPROCS is set in the environment")
	fs.BoolVar(&o.ReusePort, "reuseport", false, "set SO_REUSEPORT on listeners (several nodes on one port)")
	fs.IntVar(&o.MaxConnsPerIP, "max-conns-per-ip", DefaultMaxConnsPerIP, "open connections per client IP (IPv6 per /64); trusted proxies are counted by forwarded address")
	fs.IntVar(&o.MaxHeaderBytes, "max-header-bytes", DefaultMaxHeaderBytes, "request line + headers cap (431)")
	fs.IntVar(&o.MaxBodyBytes, "max-body-bytes", DefaultMaxBodyBytes, "request body cap (413)")
	fs.DurationVar(&o.HeaderTimeout, "header-timeout", DefaultHeaderTimeout, "time to receive a whole request")
	fs.DurationVar(&o.IdleTimeout, "idle-timeout", DefaultIdleTimeout, "idle keep-alive timeout")
	fs.IntVar(&o.MaxFrameBytes, "max-frame-bytes", DefaultMaxFrameBytes, "WebSocket frame cap from clients (close 1009)")
	fs.IntVar(&o.MaxOutbound, "max-outbound", DefaultMaxOutbound, "unsent output per connection before a slow consumer is cut")
	fs.IntVar(&o.MaxPipelined, "max-pipelined", DefaultMaxPipelined, "last safety net where socket reads cannot be paused: pipelined bytes a connection may send while a request of it is pending (past it: 429, close)")
	fs.DurationVar(&o.PingInterval, "ping-interval", DefaultPingInterval, "WebSocket ping interval")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", DefaultDrainTimeout, "graceful stop bound")
}

// splitList splits a flag value on commas, so that an environment
// variable or one flag can carry a whole list; empty items are dropped.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// listenList is --listen: the first Set replaces the default address.
type listenList struct {
	dst *[]string
	set bool
}

func (l *listenList) String() string {
	if l.dst == nil { // flag.PrintDefaults' zero value
		return ""
	}
	return strings.Join(*l.dst, ",")
}

func (l *listenList) Set(v string) error {
	if !l.set {
		*l.dst = nil
		l.set = true
	}
	*l.dst = append(*l.dst, splitList(v)...)
	return nil
}

// Get returns the addresses as a []string (flag.Getter).
func (l *listenList) Get() any { return *l.dst }

// prefixList is --trusted-proxy: CIDRs, or addresses meaning a single host.
type prefixList []netip.Prefix

func (p *prefixList) String() string {
	if p == nil {
		return ""
	}
	s := make([]string, len(*p))
	for i, x := range *p {
		s[i] = x.String()
	}
	return strings.Join(s, ",")
}

func (p *prefixList) Set(v string) error {
	for _, item := range splitList(v) {
		pfx, err := netip.ParsePrefix(item)
		if err != nil {
			addr, aerr := netip.ParseAddr(item)
			if aerr != nil {
				return fmt.Errorf("%q is neither a CIDR nor an address", item)
			}
			pfx = netip.PrefixFrom(addr, addr.BitLen())
		}
		*p = append(*p, pfx)
	}
	return nil
}

// Get returns the prefixes as a []string (flag.Getter).
func (p *prefixList) Get() any {
	s := make([]string, len(*p))
	for i, x := range *p {
		s[i] = x.String()
	}
	return s
}
