package cluster

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATSOptions configures an EmbeddedNATS. Zero fields take their
// documented defaults.
type NATSOptions struct {
	// Host is the address to listen on. Default "127.0.0.1": the embedded
	// server joins the nodes of one machine and has no authentication, so
	// it must not be reachable from elsewhere.
	Host string
	// Port is the client port. Default 0: a free port chosen by the
	// kernel (read it back with URL).
	Port int
	// MaxPayload caps one NATS message. Default 256 KiB: one Cometify
	// text (64 KiB) with its headers fits with room to spare, and so does
	// a read answer (Link caps those to fit).
	MaxPayload int32
	// StartTimeout bounds the wait for the server to accept clients.
	// Default 10 s.
	StartTimeout time.Duration
	// Logf, if set, receives the server's notices, warnings and errors
	// (never debug or trace lines). Default: silent.
	Logf func(format string, args ...any)
}

// DefaultMaxPayload is NATSOptions.MaxPayload's default.
const DefaultMaxPayload = 256 << 10

// EnsureDefaults fills zero fields with their defaults.
func (o *NATSOptions) EnsureDefaults() {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.MaxPayload == 0 {
		o.MaxPayload = DefaultMaxPayload
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 10 * time.Second
	}
}

// Validate reports options that cannot work.
func (o *NATSOptions) Validate() error {
	switch {
	case o.Port < 0 || o.Port > 65535:
		return fmt.Errorf("cluster: nats port %d out of range", o.Port)
	case o.MaxPayload < 64<<10+4<<10:
		return fmt.Errorf("cluster: nats max payload %d is below one 64 KiB push and its headers", o.MaxPayload)
	case o.StartTimeout < 0:
		return errors.New("cluster: negative nats start timeout")
	}
	return nil
}

// EmbeddedNATS is a nats-server running inside this process.
type EmbeddedNATS struct {
	srv *server.Server
	url string
}

// StartNATS starts an embedded nats-server and waits until it accepts
// clients. Core NATS only: the design keeps durable state in the store
// node's Pebble, so no JetStream (docs/cluster.md says why).
func StartNATS(o NATSOptions) (*EmbeddedNATS, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	port := o.Port
	if port == 0 {
		port = server.RANDOM_PORT // nats-server reads 0 as its default 4222
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "halley",
		Host:       o.Host,
		Port:       port,
		MaxPayload: o.MaxPayload,
		NoSigs:     true, // signals belong to the Halley process
		NoLog:      o.Logf == nil,
		// No monitoring port, no cluster, gateway or leaf ports: only
		// the client port listens.
		HTTPPort: 0,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: configure nats-server: %w", err)
	}
	if o.Logf != nil {
		srv.SetLogger(natsLogger{o.Logf}, false, false)
	}
	srv.Start()
	if !srv.ReadyForConnections(o.StartTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("cluster: nats-server on %s:%d not ready after %s", o.Host, o.Port, o.StartTimeout)
	}
	addr, ok := srv.Addr().(*net.TCPAddr)
	if !ok {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("cluster: nats-server listens on %v, not TCP", srv.Addr())
	}
	url := "nats://" + net.JoinHostPort(o.Host, strconv.Itoa(addr.Port))
	return &EmbeddedNATS{srv: srv, url: url}, nil
}

// URL is the address clients connect to, e.g. nats://127.0.0.1:40123.
func (e *EmbeddedNATS) URL() string { return e.url }

// Port is the client port the server listens on.
func (e *EmbeddedNATS) Port() int { return e.srv.Addr().(*net.TCPAddr).Port }

// Close stops the server, closing its client connections, and waits until
// it is down. Safe to call more than once.
func (e *EmbeddedNATS) Close() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// natsLogger passes nats-server's notices, warnings, errors and fatals to
// a Logf; debug and trace are never enabled.
type natsLogger struct{ logf func(string, ...any) }

func (l natsLogger) Noticef(format string, v ...any) { l.logf("nats: "+format, v...) }
func (l natsLogger) Warnf(format string, v ...any)   { l.logf("nats: warning: "+format, v...) }
func (l natsLogger) Errorf(format string, v ...any)  { l.logf("nats: error: "+format, v...) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.logf("nats: fatal: "+format, v...) }
func (l natsLogger) Debugf(string, ...any)           {}
func (l natsLogger) Tracef(string, ...any)           {}
