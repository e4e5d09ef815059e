package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/halleypush/halley/promtext/promcheck"
)

// The internal listener of the real binary, started as an operator's
// test would: `halley serve --admin-listen 127.0.0.1:0`, its address read
// from stdout. After one write, /readyz is 200, and both /metrics answers
// parse with Prometheus's parser and pass promcheck; the internal one
// carries every family of the public one, Pebble's (the WAL fsync
// histogram counting the write's sync), the Go runtime's and the
// process's; pprof answers.
func TestInternalListener(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary; skipped in -short mode")
	}
	srv := startInternal(t, buildHalley(t, ""), nil)
	internal, public, key, cmd, exited := srv.internal, srv.public, srv.key, srv.cmd, srv.exited
	client := &http.Client{Timeout: 20 * time.Second}
	get := func(base, path string) (int, []byte) {
		t.Helper()
		r, err := client.Get("http://" + base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		return r.StatusCode, b
	}
	r, err := client.PostForm("http://"+public+"/write", url.Values{"api_key": {key}, "qname": {"demo-metrics"}, "msg": {"m1"}})
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 200 {
		t.Fatalf("write: %d", r.StatusCode)
	}

	if code, body := get(internal, "/readyz"); code != 200 {
		t.Errorf("/readyz of a serving server: %d %s", code, body)
	}
	if code, body := get(internal, "/healthz"); code != 200 || !strings.Contains(string(body), `"ok"`) {
		t.Errorf("/healthz: %d %s", code, body)
	}
	code, pubText := get(public, "/metrics")
	if code != 200 {
		t.Fatalf("public /metrics: %d", code)
	}
	pub, err := promcheck.Parse(pubText)
	if err != nil {
		t.Fatalf("public /metrics: %v\n%s", err, pubText)
	}
	code, intText := get(internal, "/metrics")
	if code != 200 {
		t.Fatalf("internal /metrics: %d", code)
	}
	in, err := promcheck.Parse(intText)
	if err != nil {
		t.Fatalf("internal /metrics: %v\n%s", err, intText)
	}
	for name := range pub {
		if in[name] == nil {
			t.Errorf("internal /metrics lacks the public family %s", name)
		}
	}
	for _, name := range []string{"halley_connections_open", "halley_store_sync_seconds", "halley_pebble_disk_usage_bytes",
		"halley_pebble_compaction_debt_bytes", "halley_pebble_memtable_bytes", "halley_pebble_block_cache_misses_total",
		"go_goroutines", "process_resident_memory_bytes"} {
		if in[name] == nil {
			t.Errorf("internal /metrics lacks %s", name)
		}
	}
	if n := in["halley_ez_writes_total"].GetMetric()[0].GetCounter().GetValue(); n != 1 {
		t.Errorf("halley_ez_writes_total = %v, want 1", n)
	}
	if h := in["halley_pebble_wal_fsync_seconds"]; h == nil || h.GetMetric()[0].GetHistogram().GetSampleCount() == 0 {
		t.Errorf("halley_pebble_wal_fsync_seconds counts no fsync after a synced write: %v", h)
	}
	if code, body := get(internal, "/debug/pprof/"); code != 200 || !strings.Contains(string(body), "heap") {
		t.Errorf("/debug/pprof/: %d %.200s", code, body)
	}

	// A graceful stop ends with status 0: the listener closes before the
	// store without errors.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit 30 s after SIGTERM")
	}
}

// internalServer is a `halley serve --admin-listen 127.0.0.1:0` process.
type internalServer struct {
	internal, public, key string
	cmd                   *exec.Cmd
	exited                chan error
}

// startInternal starts bin with env added to the environment and reads
// its internal listener's address and the demo api_key from stdout.
func startInternal(t *testing.T, bin string, env []string, args ...string) *internalServer {
	t.Helper()
	s := &internalServer{public: freePort(t), exited: make(chan error, 1)}
	s.cmd = exec.Command(bin, append([]string{"serve", "--data", filepath.Join(t.TempDir(), "db"), "--listen", s.public, "--admin-listen", "127.0.0.1:0"}, args...)...)
	s.cmd.Env = append(os.Environ(), env...)
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = io.Discard
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.cmd.Process.Kill(); <-s.exited })
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		line := lines.Text()
		if rest, ok := strings.CutPrefix(line, "halley internal listener http://"); ok {
			s.internal, _, _ = strings.Cut(rest, "/")
		}
		if _, rest, ok := strings.Cut(line, " api_key="); ok {
			s.key = strings.Fields(rest)[0]
		}
		if strings.HasPrefix(line, "demo page:") {
			break
		}
	}
	go func() { _, _ = bufioDrain(lines); s.exited <- s.cmd.Wait() }()
	if s.internal == "" || s.key == "" {
		t.Fatalf("no internal listener address (%q) or api_key (%q) on stdout", s.internal, s.key)
	}
	return s
}

// /readyz follows the store's health in the real binary: a WAL sync
// stalled past --storage-stall-timeout (test build halley_faultfs) makes
// it 503 naming the store, and /healthz 503; once the disk returns both
// are 200 again. It runs one loop, so Go code has one thread
// (GOMAXPROCS 1, setProcs): the stalled sync must not take it.
func TestInternalListenerStoreStall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary; skipped in -short mode")
	}
	ctl := t.TempDir()
	srv := startInternal(t, buildHalley(t, "halley_faultfs"), []string{"HALLEY_FAULTFS=" + ctl}, "--storage-stall-timeout", "400ms", "--loops", "1")
	client := &http.Client{Timeout: 20 * time.Second}
	// waitFor polls path until it answers status with want in its body.
	waitFor := func(path string, status int, want string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			r, err := client.Get("http://" + srv.internal + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(r.Body)
			r.Body.Close()
			if r.StatusCode == status && strings.Contains(string(body), want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: want %d %q, got %d %s", path, status, want, r.StatusCode, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("/readyz", 200, `"ok"`)
	stall := filepath.Join(ctl, "stall")
	if err := os.WriteFile(stall, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	pending := make(chan error, 1)
	go func() { // a write whose sync stalls
		r, err := client.PostForm("http://"+srv.public+"/write", url.Values{"api_key": {srv.key}, "qname": {"demo-stall"}, "msg": {"m"}})
		if err == nil {
			r.Body.Close()
		}
		pending <- err
	}()
	waitFor("/readyz", 503, `"check":"store"`)
	waitFor("/healthz", 503, "stall")
	if err := os.Remove(stall); err != nil {
		t.Fatal(err)
	}
	if err := <-pending; err != nil {
		t.Fatalf("the stalled write: %v", err)
	}
	waitFor("/readyz", 200, `"ok"`)
	waitFor("/healthz", 200, `"ok"`)
}

// An --admin-listen address given explicitly that cannot be bound stops
// the server at start, with a message naming it.
func TestInternalListenerTaken(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary; skipped in -short mode")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	bin := buildHalley(t, "")
	cmd := exec.Command(bin, "serve", "--data", filepath.Join(t.TempDir(), "db"), "--listen", freePort(t), "--admin-listen", l.Addr().String())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), l.Addr().String()) {
		t.Fatalf("want exit 1 naming %s, got %v:\n%s", l.Addr(), err, stderr.String())
	}
}
