package persist

import (
	"fmt"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"
	dto "github.com/prometheus/client_model/go"
)

// StorageMetrics are Pebble's own figures, for the internal listener's
// /metrics (package admin). Sizes are in bytes; counters run since Open.
type StorageMetrics struct {
	// DiskUsage is the space the database takes on disk: live and
	// obsolete tables, WAL files, manifest and options files.
	DiskUsage uint64
	// CompactionDebt is Pebble's estimate of the bytes compactions must
	// rewrite for the tree to reach its target shape; a debt that keeps
	// growing means compactions cannot keep up with the writes.
	CompactionDebt uint64
	// Compactions counts finished compactions; CompactionsRunning those
	// running now; CompactionTime is the time spent in all of them.
	Compactions        int64
	CompactionsRunning int64
	CompactionTime     time.Duration
	// Flushes counts memtable flushes to L0.
	Flushes int64
	// MemTableSize is what the memtables (and large batches queued as
	// memtables) hold; MemTables is how many there are, the mutable one
	// included. Pebble stalls writes when too many wait for a flush.
	MemTableSize uint64
	MemTables    int64
	// ReadAmp is the read amplification: L0 sublevels plus non-empty
	// levels below L0. A read may consult this many tables.
	ReadAmp int
	// Levels are the tables of each LSM level, L0 first.
	Levels [7]LevelFigures
	// BlockCache is the shared block cache: bytes held, hits and misses
	// (hit rate = hits / (hits + misses) over an interval).
	BlockCacheSize   int64
	BlockCacheHits   int64
	BlockCacheMisses int64
	// WALFiles and WALBytes are the live WAL files and the bytes in them;
	// WALBytesWritten counts every byte written to the WAL since Open.
	WALFiles        int64
	WALBytes        uint64
	WALBytesWritten uint64
	// WALSync is the latency of every WAL fsync Pebble made (none with
	// SyncNone): non-cumulative counts per bound of WALSyncBounds plus a
	// last one for slower syncs, and their sum in seconds.
	WALSync    [len(WALSyncBounds) + 1]uint64
	WALSyncSum float64
	// APIMisuse counts Pebble's reports of a possible API misuse since
	// Open: a single delete that met no single write of its key. Each is
	// a bug in Halley (the log names the key); 0 is the only right value.
	APIMisuse uint64
}

// LevelFigures are one LSM level's tables.
type LevelFigures struct {
	Tables int64
	Bytes  int64
}

// WALSyncBounds are the upper bounds, in seconds, of StorageMetrics.WALSync.
// Pebble keeps the WAL fsync latency in a histogram of 100 buckets in
// nanoseconds (pebble.FsyncLatencyBuckets); these are 15 of its bounds,
// so that the counts are exact: round values below 5 ms (its linear
// part), then every fifth of its exponential part (×2.17 each) up to
// 10 s, shown rounded to three significant digits (0.0109 for Pebble's
// 0.010859…).
var WALSyncBounds, walSyncNanos = walSyncBounds()

// walSyncBounds picks Pebble's bounds (in nanoseconds, to match its
// buckets exactly) and their rounded values in seconds.
func walSyncBounds() (seconds, nanos [15]float64) {
	lin := pebble.FsyncLatencyBuckets[:50] // 0 to 4.9 ms by 100 µs
	exp := pebble.FsyncLatencyBuckets[50:] // 5 ms to 10 s, 50 bounds
	copy(nanos[:], []float64{lin[1], lin[2], lin[5], lin[10], lin[20]})
	for i := 0; i < 9; i++ {
		nanos[5+i] = exp[5*i]
	}
	nanos[14] = exp[len(exp)-1]
	for i, n := range nanos {
		seconds[i], _ = strconv.ParseFloat(strconv.FormatFloat(n/1e9, 'g', 3, 64), 64)
	}
	return seconds, nanos
}

// StorageMetrics reads Pebble's metrics. Safe from any goroutine while
// the Store is open (it takes Pebble's lock for a moment); ErrClosed once
// Close has begun, as Pebble must not be asked after its Close.
func (s *Store) StorageMetrics() (StorageMetrics, error) {
	if s.closed.Load() {
		return StorageMetrics{}, ErrClosed
	}
	m := s.db.Metrics()
	sm := StorageMetrics{
		DiskUsage:          m.DiskSpaceUsage(),
		CompactionDebt:     m.Compact.EstimatedDebt,
		Compactions:        m.Compact.Count,
		CompactionsRunning: m.Compact.NumInProgress,
		CompactionTime:     m.Compact.Duration,
		Flushes:            m.Flush.Count,
		MemTableSize:       m.MemTable.Size,
		MemTables:          m.MemTable.Count,
		ReadAmp:            m.ReadAmp(),
		BlockCacheSize:     m.BlockCache.Size,
		BlockCacheHits:     m.BlockCache.Hits,
		BlockCacheMisses:   m.BlockCache.Misses,
		WALFiles:           m.WAL.Files,
		WALBytes:           m.WAL.Size,
		WALBytesWritten:    m.WAL.BytesWritten,
		APIMisuse:          s.misuse.Load(),
	}
	for i := range sm.Levels {
		sm.Levels[i] = LevelFigures{Tables: m.Levels[i].TablesCount, Bytes: m.Levels[i].TablesSize}
	}
	if h := m.LogWriter.FsyncLatency; h != nil {
		var d dto.Metric
		if err := h.Write(&d); err != nil {
			return sm, fmt.Errorf("persist: read WAL fsync histogram: %w", err)
		}
		sm.WALSync, sm.WALSyncSum = rebucket(d.GetHistogram())
	}
	return sm, nil
}

// rebucket turns Pebble's cumulative nanosecond buckets into
// non-cumulative counts over WALSyncBounds and the sum in seconds.
func rebucket(h *dto.Histogram) (counts [len(WALSyncBounds) + 1]uint64, sum float64) {
	var prev uint64
	j := 0
	for _, b := range h.GetBucket() {
		if j == len(walSyncNanos) {
			break
		}
		if b.GetUpperBound() == walSyncNanos[j] {
			counts[j] = b.GetCumulativeCount() - prev
			prev = b.GetCumulativeCount()
			j++
		}
	}
	counts[len(WALSyncBounds)] = h.GetSampleCount() - prev
	return counts, h.GetSampleSum() / 1e9
}
