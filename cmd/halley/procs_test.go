package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestProcsFor: --loops N gives Go N threads unless the environment
// says otherwise; one loop per CPU (0) keeps Go's default.
//
// Why (2 cores, `halley serve --loops 1`, bench write 6 s, alternated,
// 2026-12-07): GOMAXPROCS 2 against 1, 16 closed-loop publishers 37.5,
// 41.9, 38.5 against 32.7, 30.7, 31.9 µs of server CPU per publish and
// 1.63-1.68 against 0.85-0.98 context switches; 256 publishers 19.1,
// 17.8, 17.6 against 18.0, 15.3, 14.5 µs; fanout-1k p99 22.4 against
// 16.5 ms (medians of 2).
func TestProcsFor(t *testing.T) {
	for _, c := range []struct {
		loops int
		env   string
		want  int
	}{
		{1, "", 1},
		{4, "", 4},
		{0, "", 0},  // one loop per CPU: Go's default
		{1, "3", 0}, // the environment wins
		{-1, "", 0},
	} {
		if got := procsFor(c.loops, c.env); got != c.want {
			t.Errorf("procsFor(%d, %q) = %d, want %d", c.loops, c.env, got, c.want)
		}
	}
}

// TestServeLoopsSetsProcs: the real binary with --loops 1 runs Go on one
// thread, and GOMAXPROCS in its environment still wins.
func TestServeLoopsSetsProcs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary; skipped in -short mode")
	}
	bin := buildHalley(t, "")
	for _, c := range []struct {
		env  []string
		want string
	}{
		{nil, "go_sched_gomaxprocs_threads 1\n"},
		{[]string{"GOMAXPROCS=3"}, "go_sched_gomaxprocs_threads 3\n"},
	} {
		srv := startInternal(t, bin, c.env, "--loops", "1")
		client := &http.Client{Timeout: 10 * time.Second}
		r, err := client.Get("http://" + srv.internal + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if !strings.Contains(string(body), c.want) {
			i := strings.Index(string(body), "\ngo_sched_gomaxprocs_threads ")
			t.Errorf("env %v, --loops 1: want %q in /metrics, got %.40q", c.env, c.want, string(body[max(i, 0):]))
		}
	}
}
