package persist

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestStorageMetrics: after synced writes the figures say so (WAL bytes,
// fsyncs counted in the histogram, disk in use), and after Close the
// Store refuses to ask Pebble.
func TestStorageMetrics(t *testing.T) {
	s := openTest(t, testOptions(t, t.TempDir()))
	for i := range 5 {
		mustAppend(t, s, "c", fmt.Sprint(i), "body")
	}
	m, err := s.StorageMetrics()
	if err != nil {
		t.Fatal(err)
	}
	var syncs uint64
	for _, n := range m.WALSync {
		syncs += n
	}
	if syncs == 0 || m.WALSyncSum <= 0 {
		t.Errorf("WAL fsyncs: %d counted, %gs in all; want some after synced writes", syncs, m.WALSyncSum)
	}
	if m.WALBytesWritten == 0 || m.WALFiles == 0 || m.DiskUsage == 0 || m.MemTableSize == 0 || m.MemTables == 0 {
		t.Errorf("figures after writes: %+v", m)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StorageMetrics(); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}

// TestRebucket: every bound of WALSyncBounds is one of Pebble's, so each
// observation lands in the bucket a Prometheus query would expect.
func TestRebucket(t *testing.T) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: pebble.FsyncLatencyBuckets})
	obs := []time.Duration{50 * time.Microsecond, 150 * time.Microsecond, 3 * time.Millisecond, 3 * time.Millisecond, 20 * time.Millisecond, 20 * time.Second}
	for _, d := range obs {
		h.Observe(float64(d)) // Pebble observes nanoseconds
	}
	var d dto.Metric
	if err := h.Write(&d); err != nil {
		t.Fatal(err)
	}
	counts, sum := rebucket(d.GetHistogram())
	bucketOf := func(d time.Duration) int {
		for i, b := range WALSyncBounds {
			if d.Seconds() <= b {
				return i
			}
		}
		return len(WALSyncBounds)
	}
	var want [len(WALSyncBounds) + 1]uint64
	var wantSum float64
	for _, d := range obs {
		want[bucketOf(d)]++
		wantSum += d.Seconds()
	}
	if counts != want {
		t.Errorf("counts %v, want %v (bounds %v)", counts, want, WALSyncBounds)
	}
	if diff := sum - wantSum; diff > 1e-9 || diff < -1e-9 {
		t.Errorf("sum %g, want %g", sum, wantSum)
	}
}
