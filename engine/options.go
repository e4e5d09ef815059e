package engine

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Defaults of the Options fields an operator sets (flags.go declares a
// flag for each with these values); EnsureDefaults fills zero fields with
// them.
const (
	DefaultListen         = "127.0.0.1:8080"
	DefaultMaxHeaderBytes = 8 << 10
	DefaultMaxBodyBytes   = 256 << 10
	DefaultHeaderTimeout  = 10 * time.Second
	DefaultIdleTimeout    = 120 * time.Second
	DefaultMaxFrameBytes  = 64 << 10
	DefaultMaxOutbound    = 4 << 20
	DefaultMaxConnsPerIP  = 1000
	// DefaultMaxPipelined is MaxPipelined's floor when it is unset (see
	// MaxPipelined) and the flag's default.
	DefaultMaxPipelined = 4 << 20
	DefaultPingInterval = 25 * time.Second
	DefaultDrainTimeout = 5 * time.Second
)

// Options configures a Server. The zero value of every field means its
// documented default; call EnsureDefaults before Validate.
type Options struct {
	// Listen holds the TCP addresses to serve, all with the same handler
	// (C-01). Default ["127.0.0.1:8080"].
	Listen []string
	// Loops is the number of event loops. Default: runtime.NumCPU().
	Loops int
	// ReusePort sets SO_REUSEPORT on the listeners. Default false.
	ReusePort bool

	// MaxHeaderBytes caps request line + headers (431 beyond). Default 8 KiB.
	MaxHeaderBytes int
	// MaxBodyBytes caps a request body (413 beyond). Default 256 KiB.
	MaxBodyBytes int
	// HeaderTimeout is how long a request may take from its first byte to
	// its last header byte (and body) before the connection is closed
	// (a JSON 408 first). Default 10 s.
	HeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection with no request in
	// progress after this long. Default 120 s.
	IdleTimeout time.Duration
	// MaxFrameBytes caps one WebSocket frame from a client (close 1009).
	// Default 64 KiB.
	MaxFrameBytes int
	// MaxOutbound caps unsent output per connection (C-08): a stream or
	// WebSocket Send over it cuts the connection as a slow consumer; an
	// HTTP connection over an eighth of it parses no further pipelined
	// request until its output is down to a sixteenth, so that the memory
	// its queued answers take stays within it (flow_control.go), and
	// closes when the output does not shrink for IdleTimeout. Default
	// 4 MiB.
	MaxOutbound int
	// BacklogBytes is the unsent output at which Conn.Backlogged turns
	// true; Handler.Drained follows at half of it. Default MaxOutbound/4.
	BacklogBytes int
	// MaxConnsPerIP caps open connections per client IP (C-12, IPv6 per
	// /64); one more gets a JSON 429 and is closed. Peers inside
	// TrustedProxies are exempt at accept and counted per request by
	// Request.ClientIP. Default 1000.
	MaxConnsPerIP int
	// TrustedProxies are the peers whose X-Forwarded-For / Forwarded is
	// believed for Request.ClientIP (C-07). Such a proxy must set the
	// header it forwards and strip the other: when both are present,
	// X-Forwarded-For is read. Default none.
	TrustedProxies []netip.Prefix
	// MaxPipelined is a last safety net for where reads cannot be paused
	// (a platform other than Linux, gnet's poll_opt build, a gnet whose
	// layout is unknown): the pipelined bytes a connection may send while
	// one of its requests is being answered. Past it they are dropped:
	// the pending request is answered, the next gets a JSON 429 and the
	// connection closes. Where reads pause (Linux), the engine stops
	// reading at about one request (MaxHeaderBytes + MaxBodyBytes)
	// instead and never cuts. Default 4 MiB (when unset, never below
	// 4 × (MaxHeaderBytes + MaxBodyBytes)).
	MaxPipelined int
	// PingInterval is how often a WebSocket gets a ping. Default 25 s.
	PingInterval time.Duration
	// StreamHeartbeatInterval is how often a stream (SSE) gets
	// StreamHeartbeat bytes. Default 15 s.
	StreamHeartbeatInterval time.Duration
	// StreamHeartbeat is the bytes sent as a stream heartbeat. Default
	// ": hb\n\n" (an SSE comment).
	StreamHeartbeat []byte
	// WSBeacon is the whole frame answering a client's text "ping" on a
	// connection that asked for a Beacon. Default a text frame holding
	// {"pong":true}.
	WSBeacon []byte
	// SweepInterval is the granularity of the per-loop deadline sweep.
	// Default 250 ms.
	SweepInterval time.Duration
	// DrainTimeout bounds a graceful stop: connections still open after it
	// are closed hard. Default 5 s.
	DrainTimeout time.Duration
	// MaxConns caps open client connections; one more is closed as soon
	// as it is accepted. Default (0): the soft RLIMIT_NOFILE when Run
	// starts, less 256 descriptors kept for storage and the runtime. It
	// exists because gnet v2.10 stops the whole engine when accept(2)
	// fails with EMFILE: the process must never reach its file limit
	// through client connections.
	MaxConns int
}

// EnsureDefaults fills zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if len(o.Listen) == 0 {
		o.Listen = []string{DefaultListen}
	}
	if o.Loops <= 0 {
		o.Loops = defaultLoops()
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.HeaderTimeout <= 0 {
		o.HeaderTimeout = DefaultHeaderTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxFrameBytes <= 0 {
		o.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if o.MaxPipelined <= 0 {
		o.MaxPipelined = max(DefaultMaxPipelined, 4*(o.MaxHeaderBytes+o.MaxBodyBytes))
	}
	if o.MaxOutbound <= 0 {
		o.MaxOutbound = DefaultMaxOutbound
	}
	if o.BacklogBytes <= 0 {
		o.BacklogBytes = o.MaxOutbound / 4
	}
	if o.MaxConnsPerIP <= 0 {
		o.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.StreamHeartbeatInterval <= 0 {
		o.StreamHeartbeatInterval = 15 * time.Second
	}
	if o.WSBeacon == nil {
		o.WSBeacon = AppendTextFrame(nil, []byte(`{"pong":true}`))
	}
	if o.StreamHeartbeat == nil {
		o.StreamHeartbeat = []byte(": hb\n\n")
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = 250 * time.Millisecond
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
}

// Validate reports options that cannot work together.
func (o *Options) Validate() error {
	if o.MaxHeaderBytes < 256 {
		return fmt.Errorf("engine: MaxHeaderBytes %d is below 256", o.MaxHeaderBytes)
	}
	if o.SweepInterval > o.PingInterval {
		return errors.New("engine: SweepInterval must not exceed PingInterval")
	}
	return nil
}
