package conformance

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Account is one server account the suite writes with.
type Account struct {
	User   string // username, the first part of a qname
	Key    string // api_key: private, EZComet /write only
	CFKey  string // cf_api_key: public, every Cometify path and md5 formula
	Secret string // api_secret
}

// Config tells the suite where the server is and how it was configured. The
// suite never assumes a server default: every limit a case depends on is a
// field here, so a server started with other settings can still be judged.
type Config struct {
	// Target is the server's base URL, e.g. http://127.0.0.1:8080.
	Target string
	// Also lists other addresses the same server listens on (C-01).
	Also []string
	// Account is required; Account2 is optional (cases note what they could
	// not check without it).
	Account, Account2 Account
	// Demo is what the server printed of its demo account on an empty
	// data directory; any field may be empty, and what is missing
	// is left unchecked.
	Demo Account
	// DemoPushPath and DemoWritePath are the demo-only endpoints,
	// e.g. /demo/push; empty leaves their loopback check unchecked.
	DemoPushPath, DemoWritePath string
	// Rules selects cases whose rule id starts with one of these prefixes;
	// empty selects every case.
	Rules []string

	EZMaxQueue     int           // --ez-max-queue, default 1000
	EZMaxAge       time.Duration // --ez-max-age, default 24h
	ReadBatch      int           // --read-batch, default 1000
	MaxHeaderBytes int           // request line + headers, default 8192
	MaxBodyBytes   int           // request body, default 262144
	HeaderTimeout  time.Duration // default 10s
	IdleTimeout    time.Duration // idle keep-alive, default 120s
	MaxFrameBytes  int           // WebSocket frame from a client, default 65536
	MaxUnsentBytes int           // per-connection unsent output, default 4 MiB
	PingInterval   time.Duration // upper bound on WebSocket ping spacing, default 30s
	SSEHeartbeat   time.Duration // upper bound on SSE comment spacing, default 15s
	// Cometify settings (CF rules, C-07, X-01, X-03, X-04).
	CFReplayWindow    time.Duration // --cf-replay-window, default 10m
	CFResumeWindow    time.Duration // --cf-resume-window, default 3m
	MaxIdentifiers    int           // --max-identifiers, default 100
	MaxListenersPerIP int           // the account's listeners per client IP, default 30
	// TrustedProxies are the server's --trusted-proxy CIDRs; empty leaves
	// C-07's X-Forwarded-For part unchecked.
	TrustedProxies []string
	// TimeoutScale multiplies every deadline and slack of the suite (not the
	// server's settings above); raise it for slow or -race builds.
	TimeoutScale float64
	// AccountCmd is a command prefix such as "halley account --data DIR";
	// A-02 runs `<prefix> add NAME --json` and friends. Empty skips A-02.
	AccountCmd []string
	// PID is the server's process id; only when set is C-11 run (last), and
	// it stops the server.
	PID int
	// Parallel bounds how many cases run at once (default 8).
	Parallel int
	// MaxWait is the longest a single check may wait on a server timer; a
	// check that needs longer is skipped with its reason (default 15s).
	MaxWait time.Duration

	// wire hardening (issue 15)
	Wire WireConfig
}

// EnsureDefaults fills every zero field with the spec's default.
func (c *Config) EnsureDefaults() {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defD := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.EZMaxQueue, 1000)
	defD(&c.EZMaxAge, 24*time.Hour)
	def(&c.ReadBatch, 1000)
	def(&c.MaxHeaderBytes, 8192)
	def(&c.MaxBodyBytes, 262144)
	defD(&c.HeaderTimeout, 10*time.Second)
	defD(&c.IdleTimeout, 120*time.Second)
	def(&c.MaxFrameBytes, 65536)
	def(&c.MaxUnsentBytes, 4<<20)
	defD(&c.PingInterval, 30*time.Second)
	defD(&c.SSEHeartbeat, 15*time.Second)
	defD(&c.CFReplayWindow, 10*time.Minute)
	defD(&c.CFResumeWindow, 3*time.Minute)
	def(&c.MaxIdentifiers, 100)
	def(&c.MaxListenersPerIP, 30)
	if c.TimeoutScale == 0 {
		c.TimeoutScale = 1
	}
	def(&c.Parallel, 8)
	defD(&c.MaxWait, 15*time.Second)
	c.Wire.ensureDefaults()
}

// Validate reports a configuration the suite cannot run with.
func (c *Config) Validate() error {
	if c.Target == "" {
		return errors.New("--target is required")
	}
	u, err := url.Parse(c.Target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("--target %q: want http://host:port", c.Target)
	}
	for _, a := range c.Also {
		if u, err := url.Parse(a); err != nil || u.Scheme != "http" || u.Host == "" {
			return fmt.Errorf("--also %q: want http://host:port", a)
		}
	}
	if c.Account.User == "" || c.Account.Key == "" || c.Account.CFKey == "" || c.Account.Secret == "" {
		return errors.New("--user, --key, --cf-key and --secret are required")
	}
	if (c.Account2.User == "") != (c.Account2.Key == "") || (c.Account2.Key == "") != (c.Account2.CFKey == "") {
		return errors.New("--user2, --key2 and --cf-key2 go together")
	}
	for _, p := range []string{c.DemoPushPath, c.DemoWritePath} {
		if p != "" && !strings.HasPrefix(p, "/") {
			return fmt.Errorf("demo endpoint %q: want a path such as /demo/push", p)
		}
	}
	if c.TimeoutScale <= 0 {
		return errors.New("--timeout-scale must be positive")
	}
	for _, cidr := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			return fmt.Errorf("--trusted-proxy %q: want a CIDR such as 127.0.0.1/32", cidr)
		}
	}
	for _, n := range []int{c.EZMaxQueue, c.ReadBatch, c.MaxHeaderBytes, c.MaxBodyBytes, c.MaxFrameBytes, c.MaxUnsentBytes, c.Parallel, c.MaxIdentifiers, c.MaxListenersPerIP} {
		if n < 0 {
			return errors.New("limits must not be negative")
		}
	}
	return c.Wire.validate()
}

// hostPort is the dial address of Target.
func (c *Config) hostPort() string {
	u, _ := url.Parse(c.Target)
	if u.Port() == "" {
		return u.Host + ":80"
	}
	return u.Host
}

// host is the Host header value for Target.
func (c *Config) host() string {
	u, _ := url.Parse(c.Target)
	return u.Host
}

// scaled stretches a suite-side deadline by TimeoutScale.
func (c *Config) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * c.TimeoutScale)
}

// selected reports whether a rule id is chosen by Rules.
func (c *Config) selected(rule string) bool {
	if len(c.Rules) == 0 {
		return true
	}
	for _, p := range c.Rules {
		if strings.HasPrefix(rule, p) {
			return true
		}
	}
	return false
}

// wire hardening (issue 15)

// WireConfig holds the server settings the wire-hardening cases need
// (C-08, C-12, C-14), with the flags that set them.
type WireConfig struct {
	// ReadBatchBytes is the server's --read-batch-bytes: the most bytes of
	// encoded answer one /read returns (C-08), default 1 MiB.
	ReadBatchBytes int
	// MaxConnsPerIP is the server's --max-conns-per-ip (C-12), default
	// 1000.
	MaxConnsPerIP int
	// DataDir is the server's --data directory on this host (C-14); empty
	// skips C-14.
	DataDir string
}

// wireFlags declares the flags of WireConfig on fs.
func wireFlags(fs *flag.FlagSet, w *WireConfig) {
	fs.IntVar(&w.ReadBatchBytes, "read-batch-bytes", 1<<20, "the server's --read-batch-bytes (bytes of one /read answer)")
	fs.IntVar(&w.MaxConnsPerIP, "max-conns-per-ip", 1000, "the server's --max-conns-per-ip (C-12)")
	fs.StringVar(&w.DataDir, "data", "", "the server's data directory, on this host (enables C-14)")
}

func (w *WireConfig) ensureDefaults() {
	if w.ReadBatchBytes == 0 {
		w.ReadBatchBytes = 1 << 20
	}
	if w.MaxConnsPerIP == 0 {
		w.MaxConnsPerIP = 1000
	}
}

func (w *WireConfig) validate() error {
	if w.ReadBatchBytes < 0 || w.MaxConnsPerIP < 0 {
		return errors.New("limits must not be negative")
	}
	return nil
}
