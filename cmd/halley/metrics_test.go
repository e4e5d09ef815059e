package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
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
	bin := buildHalley(t, "")
	public := freePort(t)
	cmd := exec.Command(bin, "serve", "--data", filepath.Join(t.TempDir(), "db"), "--listen", public, "--admin-listen", "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	var internal, key string
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		line := lines.Text()
		if rest, ok := strings.CutPrefix(line, "halley internal listener http://"); ok {
			internal, _, _ = strings.Cut(rest, "/")
		}
		if _, rest, ok := strings.Cut(line, " api_key="); ok {
			key = strings.Fields(rest)[0]
		}
		if strings.HasPrefix(line, "demo page:") {
			break
		}
	}
	go func() { _, _ = bufioDrain(lines); exited <- cmd.Wait() }()
	if internal == "" || key == "" {
		t.Fatalf("no internal listener address (%q) or api_key (%q) on stdout", internal, key)
	}

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
