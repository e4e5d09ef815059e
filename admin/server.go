package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
)

// Server is a running internal listener. A nil *Server (the listener is
// off, or its default address was taken) answers Addr with nil and Close
// with nil, so that callers need not tell the cases apart.
type Server struct {
	opts    Options
	ln      net.Listener
	srv     *http.Server
	runtime *prometheus.Registry
	served  chan struct{} // closed when Serve has returned
}

// Start binds opts.Listen and serves it on its own goroutine until
// Close. It returns nil and no error when the listener is off, or when
// Listen was empty and DefaultListen could not be bound (logged as a
// warning); an explicit address that cannot be bound is an error.
func Start(opts Options) (*Server, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	addr, required := opts.Listen, true
	switch addr {
	case Off:
		return nil, nil
	case "":
		addr, required = DefaultListen, false
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if required {
			return nil, fmt.Errorf("admin: listen %s: %w", addr, err)
		}
		opts.Log.Warn("internal listener not started: its default address is taken (another server on this machine?); give --admin-listen another address, 127.0.0.1:0 for any free port, or off",
			"addr", addr, "err", err)
		return nil, nil
	}
	s := &Server{opts: opts, ln: ln, runtime: prometheus.NewRegistry(), served: make(chan struct{})}
	s.runtime.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.srv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// No WriteTimeout: a CPU profile or a trace answers only after
		// the ?seconds= it was asked for.
		ErrorLog: slog.NewLogLogger(opts.Log.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			opts.Log.Error("internal listener stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil && !ap.Addr().Unmap().IsLoopback() {
		opts.Log.Warn("the internal listener is not on loopback: whoever reaches it can read metrics and CPU and memory profiles; keep it behind a firewall",
			"addr", ln.Addr().String())
	}
	opts.Log.Info("internal listener", "addr", ln.Addr().String())
	return s, nil
}

// Addr is the bound address (the port chosen for port 0), nil for a nil
// Server.
func (s *Server) Addr() net.Addr {
	if s == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close stops the listener: requests in flight get a second to finish
// (a long profile is cut), then every connection is closed. It returns
// once the Options' functions are no longer called, so that what they
// read (the store) may be closed next.
func (s *Server) Close() error {
	if s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = s.srv.Close()
	}
	<-s.served
	if err != nil {
		return fmt.Errorf("admin: close %s: %w", s.ln.Addr(), err)
	}
	return nil
}

// routes is the listener's own mux; nothing is served from
// http.DefaultServeMux (net/http/pprof's init registers there too).
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.serveIndex)
	mux.HandleFunc("GET /metrics", s.serveMetrics)
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.HandleFunc("GET /readyz", s.serveReady)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

const index = `Halley internal listener
/metrics        Prometheus metrics (Halley, Pebble, Go runtime, process)
/healthz        200 while the store accepts writes and no graceful stop has begun
/readyz         200 while every readiness check passes
/debug/pprof/   profiles (net/http/pprof)
`

func (s *Server) serveIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(index))
}

// serveMetrics answers Halley's series, then the runtime's and the
// process's; the families never share a name (halley_ against go_ and
// process_), which the tests check.
func (s *Server) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	var buf bytes.Buffer
	if s.opts.Metrics != nil {
		buf.Write(s.opts.Metrics(nil))
	}
	fams, err := s.runtime.Gather()
	if err != nil {
		// A collector failed to read (e.g. /proc): serve what was
		// gathered; the error says which.
		s.opts.Log.Warn("runtime metrics incomplete", "err", err)
	}
	for _, mf := range fams {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			http.Error(w, "encoding metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

// serveHealth answers as the public /healthz does (C-10).
func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	if err := s.opts.Health(); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"code": "error", "msg": err.Error(), "status": http.StatusServiceUnavailable})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"code": "ok"})
}

// serveReady answers 200 when every check passes, else 503 naming the
// first that failed.
func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	for _, c := range s.opts.Ready {
		if err := c.Err(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"code": "not_ready", "check": c.Name, "msg": err.Error(), "status": http.StatusServiceUnavailable})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"code": "ok"})
}

func writeJSON(w http.ResponseWriter, status int, v map[string]any) {
	body, _ := json.Marshal(v) // maps of strings and ints always encode
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
