package bench

import (
	"fmt"
	"os"
	"time"
)

// syncResult is the fdatasync latency of a small append on this machine.
type syncResult struct {
	Dir   string  `json:"dir"`
	N     int     `json:"n"`
	P50us float64 `json:"p50_us"`
	P99us float64 `json:"p99_us"`
}

// measureSync appends size bytes to a fresh file in dir and fdatasyncs
// it, n times, and reports the latency of write + fdatasync: what one
// group commit of a small batch costs on the disk the server writes to.
func measureSync(dir string, n, size int) (syncResult, error) {
	res := syncResult{Dir: dir, N: n}
	f, err := os.CreateTemp(dir, "halley-bench-fsync-")
	if err != nil {
		return res, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	b := make([]byte, size)
	for i := range b {
		b[i] = 'x'
	}
	var h Histogram
	for range n {
		t0 := time.Now()
		if _, err := f.Write(b); err != nil {
			return res, err
		}
		if err := fdatasync(f); err != nil {
			return res, fmt.Errorf("fdatasync: %v", err)
		}
		h.RecordDuration(time.Since(t0))
	}
	res.P50us, res.P99us = float64(h.Percentile(0.5))/1e3, float64(h.Percentile(0.99))/1e3
	return res, nil
}

// p4Target is PERF.md P4's figure for conns closed-loop publishers with
// fsync on: 0.6 × conns / (fdatasync p50 + 50 µs), in requests/s; the
// commit pipeline, not the CPU, should be the bound.
func p4Target(conns int, syncP50us float64) float64 {
	return 0.6 * float64(conns) / ((syncP50us + 50) / 1e6)
}
