package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
	"github.com/halleypush/halley/promtext/promcheck"
)

func start(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	if s == nil {
		t.Fatal("Start returned no server")
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// get answers a GET on the listener: status and body.
func get(t *testing.T, s *Server, path string) (int, []byte) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second}
	r, err := c.Get("http://" + s.Addr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return r.StatusCode, body
}

func openStore(t *testing.T) *persist.Store {
	t.Helper()
	st, err := persist.Open(persist.Options{Dir: t.TempDir(), SweepInterval: -1, Logf: t.Logf, StallTimeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// TestMetricsParse: /metrics over a real listener, with the engine's,
// a real store's and Pebble's series and the runtime's, parses with
// Prometheus's parser; every family has HELP and TYPE once, names are
// snake case, counters end in _total, ours start with halley_.
func TestMetricsParse(t *testing.T) {
	store := openStore(t)
	s := start(t, Options{Metrics: func(dst []byte) []byte {
		dst = appendEngine(dst, engine.Stats{OpenConns: 3})
		dst = AppendSystem(dst, nil, store)
		m, err := store.StorageMetrics()
		if err != nil {
			t.Error(err)
		}
		return AppendStorage(dst, m)
	}})
	code, body := get(t, s, "/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	fams, err := promcheck.Parse(body)
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	for _, name := range []string{
		"halley_connections_open", "halley_store_healthy", "halley_store_sync_seconds",
		"halley_pebble_disk_usage_bytes", "halley_pebble_compaction_debt_bytes", "halley_pebble_memtable_bytes",
		"halley_pebble_block_cache_hits_total", "halley_pebble_wal_fsync_seconds", "halley_pebble_level_tables",
		"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
	} {
		if fams[name] == nil {
			t.Errorf("family %s missing", name)
		}
	}
	if v := fams["halley_connections_open"].GetMetric()[0].GetGauge().GetValue(); v != 3 {
		t.Errorf("halley_connections_open = %v, want 3", v)
	}
	if n := len(fams["halley_pebble_level_tables"].GetMetric()); n != 7 {
		t.Errorf("halley_pebble_level_tables has %d levels, want 7", n)
	}
}

// TestReadyz: /readyz is 503 naming the failing check until every check
// passes; a store that turns unhealthy makes it and /healthz 503 again.
func TestReadyz(t *testing.T) {
	var engineReady atomic.Bool
	var storeErr atomic.Pointer[error]
	storeHealthy := func() error {
		if p := storeErr.Load(); p != nil {
			return *p
		}
		return nil
	}
	s := start(t, Options{
		Health: storeHealthy,
		Ready: []Check{
			{Name: "store", Err: storeHealthy},
			{Name: "engine", Err: func() error {
				if !engineReady.Load() {
					return errors.New("starting")
				}
				return nil
			}},
		},
	})
	ready := func() (int, string) {
		code, body := get(t, s, "/readyz")
		var v struct{ Code, Check string }
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("/readyz %d: %q: %v", code, body, err)
		}
		return code, v.Check
	}
	if code, check := ready(); code != 503 || check != "engine" {
		t.Errorf("before the engine is ready: %d %q, want 503 engine", code, check)
	}
	if code, _ := get(t, s, "/healthz"); code != 200 {
		t.Errorf("/healthz while starting with a healthy store: %d, want 200", code)
	}
	engineReady.Store(true)
	if code, check := ready(); code != 200 {
		t.Errorf("once ready: %d %q, want 200", code, check)
	}
	failed := errors.New("persist: storage error: sync failed")
	storeErr.Store(&failed)
	if code, check := ready(); code != 503 || check != "store" {
		t.Errorf("store unhealthy: %d %q, want 503 store", code, check)
	}
	if code, body := get(t, s, "/healthz"); code != 503 || !bytes.Contains(body, []byte("sync failed")) {
		t.Errorf("/healthz with the store unhealthy: %d %s, want 503 with the reason", code, body)
	}
}

// TestPprof: the profiles are served on the listener's own mux.
func TestPprof(t *testing.T) {
	s := start(t, Options{})
	code, body := get(t, s, "/debug/pprof/")
	if code != 200 || !bytes.Contains(body, []byte("goroutine")) {
		t.Fatalf("GET /debug/pprof/: %d %.200s", code, body)
	}
	code, body = get(t, s, "/debug/pprof/goroutine?debug=1")
	if code != 200 || !bytes.Contains(body, []byte("goroutine profile:")) {
		t.Fatalf("GET /debug/pprof/goroutine: %d %.200s", code, body)
	}
	if code, _ := get(t, s, "/nothing"); code != 404 {
		t.Errorf("unknown path: %d, want 404", code)
	}
}

// TestListenAddresses: off starts nothing; the default address taken is
// a warning (the server runs without the listener); an explicit address
// taken is an error.
func TestListenAddresses(t *testing.T) {
	if s, err := Start(Options{Listen: Off}); s != nil || err != nil {
		t.Fatalf("off: %v %v, want nothing", s, err)
	}
	var nilServer *Server
	if nilServer.Addr() != nil || nilServer.Close() != nil {
		t.Fatal("a nil Server must answer nil")
	}
	// Hold the default address (or find it held already: taken either way).
	if l, err := net.Listen("tcp", DefaultListen); err == nil {
		defer l.Close()
	}
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&logged, nil))
	s, err := Start(Options{Log: log})
	if s != nil || err != nil {
		t.Fatalf("default address taken: %v %v, want no server and no error", s, err)
	}
	if !strings.Contains(logged.String(), "level=WARN") || !strings.Contains(logged.String(), DefaultListen) {
		t.Errorf("default address taken: want a warning naming it, logged %q", logged.String())
	}
	if s, err := Start(Options{Listen: DefaultListen, Log: log}); s != nil || err == nil {
		t.Fatalf("explicit address taken: %v %v, want an error", s, err)
	}
	if _, err := Start(Options{Listen: "nonsense", Log: log}); err == nil {
		t.Fatal("malformed address: want an error")
	}
}

// The public /metrics writes the engine's and the store's series on an
// event loop: into a buffer with room, that allocates nothing.
func TestAppendSystemAllocs(t *testing.T) {
	store := openStore(t)
	buf := make([]byte, 0, 64<<10)
	if n := testing.AllocsPerRun(50, func() {
		buf = appendEngine(buf[:0], engine.Stats{})
		buf = AppendSystem(buf, nil, store)
	}); n != 0 {
		t.Fatalf("%v allocations per run, want 0", n)
	}
}
