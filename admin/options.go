package admin

import (
	"errors"
	"flag"
	"log/slog"
	"net"
)

// DefaultListen is the internal listener's address when none is given:
// loopback, so that profiles and metrics stay on the machine, on a port
// next to nothing Halley or Prometheus uses by default.
const DefaultListen = "127.0.0.1:9188"

// Off, as the listen address, disables the internal listener.
const Off = "off"

// Options configures the internal listener. Zero fields take their
// documented defaults.
type Options struct {
	// Listen is the address to serve. Empty means DefaultListen, best
	// effort: if it cannot be bound (another server on this machine has
	// it, as when tests or `halley cluster` run several side by side) a
	// warning is logged and the server runs without it. Any address given
	// explicitly, DefaultListen included, must be bound or Start fails.
	// Off disables the listener; port 0 picks a free port (Server.Addr).
	Listen string
	// Health is what /healthz checks, as the public one does (C-10): nil
	// means healthy, an error makes it answer 503 with the error's text.
	// Called on a listener goroutine for each request: it must be safe
	// from any goroutine and not block. Default: always healthy.
	Health func() error
	// Ready are the checks /readyz runs in order; the first that fails
	// makes it answer 503 naming it. Append a check before Start (a
	// cluster node adds "NATS connected"). Same contract as Health.
	Ready []Check
	// Metrics appends Halley's series (the public /metrics answer, and
	// Pebble's) in the Prometheus text format; /metrics adds the Go
	// runtime's and the process's. Called on a listener goroutine.
	// Default: none of Halley's.
	Metrics func(dst []byte) []byte
	// Log receives the listener's errors and warnings. Default
	// slog.Default().
	Log *slog.Logger
}

// Check is one condition of readiness.
type Check struct {
	// Name says what is not ready in /readyz's answer ("store", "nats").
	Name string
	// Err returns nil when ready, else why not.
	Err func() error
}

// RegisterFlags declares --admin-listen on fs, filling o.Listen.
func (o *Options) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Listen, "admin-listen", o.Listen,
		"internal HTTP listener for /metrics, /healthz, /readyz and /debug/pprof/; \"off\" disables it (default "+DefaultListen+", skipped with a warning when taken)")
}

// EnsureDefaults fills zero fields; Listen stays empty, as empty (best
// effort) and DefaultListen (required) differ.
func (o *Options) EnsureDefaults() *Options {
	if o.Health == nil {
		o.Health = func() error { return nil }
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return o
}

// Validate checks the listen address's form.
func (o *Options) Validate() error {
	if o.Listen == "" || o.Listen == Off {
		return nil
	}
	if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		return errors.New("admin: --admin-listen " + o.Listen + ": want host:port or off")
	}
	for _, c := range o.Ready {
		if c.Name == "" || c.Err == nil {
			return errors.New("admin: a readiness check needs a name and a function")
		}
	}
	return nil
}
