package admin

import (
	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
	"github.com/halleypush/halley/promtext"
)

// AppendSystem appends the engine's and the store's series, which both
// listeners serve (the public one through protocol.Options.Metrics).
// srv may be nil while the server starts. Safe from any goroutine.
func AppendSystem(dst []byte, srv *engine.Server, store *persist.Store) []byte {
	if srv != nil {
		dst = appendEngine(dst, srv.Stats())
	}
	return appendStore(dst, store.Stats(), store.Healthy())
}

// AppendEngine appends the engine's series alone: a light node of a
// service has no store. srv may be nil while the server starts.
func AppendEngine(dst []byte, srv *engine.Server) []byte {
	if srv == nil {
		return dst
	}
	return appendEngine(dst, srv.Stats())
}

// appendEngine appends the event loops' connection counters.
func appendEngine(dst []byte, s engine.Stats) []byte {
	c, g := promtext.Counter, promtext.Gauge
	dst = g(dst, "halley_connections_open", "Open client connections.", float64(s.OpenConns))
	dst = c(dst, "halley_connections_accepted_total", "Connections accepted.", float64(s.AcceptedTotal))
	dst = c(dst, "halley_connections_refused_total", "Connections refused over the connection cap or while draining.", float64(s.Refused))
	dst = c(dst, "halley_connections_refused_per_ip_total", "Connections answered 429 over --max-conns-per-ip (C-12).", float64(s.RefusedPerIP))
	dst = c(dst, "halley_read_pauses_total", "Times a connection's socket reads were paused while its request was pending or its output over the bound (C-08).", float64(s.ReadPauses))
	dst = g(dst, "halley_polls_held", "Long-poll requests held by the engine.", float64(s.HeldPolls))
	dst = g(dst, "halley_websockets_open", "Open WebSocket connections.", float64(s.WebSockets))
	dst = g(dst, "halley_streams_open", "Open SSE streams.", float64(s.Streams))
	dst = g(dst, "halley_pipelines", "Connections with pipelined writes or pushes whose answers are outstanding (answered in request order).", float64(s.Pipelines))
	dst = c(dst, "halley_requests_total", "HTTP requests parsed.", float64(s.RequestsTotal))
	dst = c(dst, "halley_bytes_in_total", "Bytes read from clients.", float64(s.BytesIn))
	dst = c(dst, "halley_bytes_out_total", "Bytes written to clients.", float64(s.BytesOut))
	dst = c(dst, "halley_slow_consumer_cuts_total", "Connections cut for unsent output over the cap.", float64(s.SlowConsumerCuts))
	dst = c(dst, "halley_deadline_closes_total", "Connections closed by a deadline.", float64(s.DeadlineCloses))
	dst = c(dst, "halley_parse_errors_total", "Requests that could not be parsed.", float64(s.ParseErrors))
	return c(dst, "halley_panics_total", "Handler panics recovered.", float64(s.Panics))
}

// appendStore appends the store's counters, its health and its commit
// latency.
func appendStore(dst []byte, st persist.StoreStats, health error) []byte {
	c := promtext.Counter
	dst = c(dst, "halley_store_writes_committed_total", "Writes acknowledged by the store.", float64(st.WritesCommitted))
	dst = c(dst, "halley_store_appended_total", "Messages appended to queues.", float64(st.Appended))
	dst = c(dst, "halley_store_duplicates_total", "Idempotent re-sends (EZ-W-07).", float64(st.Duplicates))
	dst = c(dst, "halley_store_conflicts_total", "Tick conflicts (409).", float64(st.Conflicts))
	dst = c(dst, "halley_store_cf_pushes_total", "Cometify pushes appended.", float64(st.CFPushes))
	dst = c(dst, "halley_store_cf_duplicates_total", "Re-sent push_ids answered as duplicates (CF-P-06).", float64(st.CFDuplicates))
	dst = c(dst, "halley_store_cf_conflicts_total", "push_id conflicts (409).", float64(st.CFConflicts))
	dst = c(dst, "halley_store_cf_dropped_total", "Cometify pushes deleted by retention (CF-P-08).", float64(st.CFDropped))
	dst = c(dst, "halley_store_flushes_total", "Channel flushes.", float64(st.Flushes))
	dst = c(dst, "halley_store_batches_total", "Group commits.", float64(st.Batches))
	dst = c(dst, "halley_store_batch_writes_total", "Writes over all group commits (mean batch = this / batches).", float64(st.BatchSizeSum))
	dst = c(dst, "halley_store_dropped_total", "Messages dropped by retention.", float64(st.DroppedByRetention))
	dst = c(dst, "halley_store_flushed_total", "Messages deleted by flushes.", float64(st.DroppedByFlush))
	dst = c(dst, "halley_store_errors_total", "Writes answered with a storage error.", float64(st.Errors))
	dst = c(dst, "halley_store_refused_total", "Writes and pushes refused before queueing: store failed, commit stalled or queue full (503).", float64(st.Refused))
	dst = c(dst, "halley_store_revoked_total", "Writes and pushes whose account was removed while they waited (401, A-04).", float64(st.Revoked))
	dst = c(dst, "halley_store_cf_secret_replays_total", "Pushes refused for re-sending a secret push's secure in the clear (403, CF-P-09).", float64(st.CFSecretReplays))
	dst = c(dst, "halley_store_cf_nonces_reused_total", "Signed pushes refused for a nonce already used (403, CF-P-10).", float64(st.CFNoncesReused))
	healthy := 1.0
	if health != nil {
		healthy = 0
	}
	dst = promtext.Gauge(dst, "halley_store_healthy", "1 while the store accepts writes; 0 after a failed commit (restart to recover) or during a stalled one (C-10).", healthy)
	var bounds [len(persist.SyncLatencyBounds)]float64
	for i, b := range persist.SyncLatencyBounds {
		bounds[i] = b.Seconds()
	}
	return promtext.Histogram(dst, "halley_store_sync_seconds", "Time of a synced group commit.",
		bounds[:], st.SyncLatency[:], float64(st.SyncNanosSum)/1e9)
}

// levels are the label values of the per-level Pebble series.
var levels = [len(persist.StorageMetrics{}.Levels)]string{"0", "1", "2", "3", "4", "5", "6"}

// AppendStorage appends Pebble's series (internal listener only: reading
// them takes Pebble's lock, which the event loops should not wait for).
func AppendStorage(dst []byte, m persist.StorageMetrics) []byte {
	c, g := promtext.Counter, promtext.Gauge
	dst = g(dst, "halley_pebble_disk_usage_bytes", "Disk space the database takes: tables, WAL, manifest, obsolete files not yet deleted.", float64(m.DiskUsage))
	dst = g(dst, "halley_pebble_compaction_debt_bytes", "Pebble's estimate of the bytes compactions must rewrite to reach the LSM's target shape; steady growth means compactions cannot keep up.", float64(m.CompactionDebt))
	dst = c(dst, "halley_pebble_compactions_total", "Compactions finished.", float64(m.Compactions))
	dst = g(dst, "halley_pebble_compactions_running", "Compactions in progress.", float64(m.CompactionsRunning))
	dst = c(dst, "halley_pebble_compaction_seconds_total", "Time spent compacting.", m.CompactionTime.Seconds())
	dst = c(dst, "halley_pebble_flushes_total", "Memtable flushes to L0.", float64(m.Flushes))
	dst = c(dst, "halley_pebble_api_misuse_total", "Pebble's reports of a possible API misuse (a single delete that met no single write of its key): each is a bug in Halley, and the log names the key.", float64(m.APIMisuse))
	dst = g(dst, "halley_pebble_memtable_bytes", "Bytes held by memtables, queued ones included.", float64(m.MemTableSize))
	dst = g(dst, "halley_pebble_memtables", "Memtables, the mutable one included; Pebble stalls writes when too many wait for a flush.", float64(m.MemTables))
	dst = g(dst, "halley_pebble_read_amplification", "L0 sublevels plus non-empty levels below L0: tables a read may consult.", float64(m.ReadAmp))
	dst = promtext.Header(dst, "halley_pebble_level_tables", promtext.TypeGauge, "Tables in each LSM level.")
	for i, l := range m.Levels {
		dst = promtext.Sample(dst, "halley_pebble_level_tables", "level", levels[i], float64(l.Tables))
	}
	dst = promtext.Header(dst, "halley_pebble_level_bytes", promtext.TypeGauge, "Bytes of the tables in each LSM level.")
	for i, l := range m.Levels {
		dst = promtext.Sample(dst, "halley_pebble_level_bytes", "level", levels[i], float64(l.Bytes))
	}
	dst = g(dst, "halley_pebble_block_cache_bytes", "Bytes held by the block cache.", float64(m.BlockCacheSize))
	dst = c(dst, "halley_pebble_block_cache_hits_total", "Block cache hits (hit rate: rate of this / rate of hits + misses).", float64(m.BlockCacheHits))
	dst = c(dst, "halley_pebble_block_cache_misses_total", "Block cache misses.", float64(m.BlockCacheMisses))
	dst = g(dst, "halley_pebble_wal_files", "Live WAL files.", float64(m.WALFiles))
	dst = g(dst, "halley_pebble_wal_bytes", "Bytes of live data in the WAL files.", float64(m.WALBytes))
	dst = c(dst, "halley_pebble_wal_written_bytes_total", "Bytes written to the WAL.", float64(m.WALBytesWritten))
	return promtext.Histogram(dst, "halley_pebble_wal_fsync_seconds", "Latency of each WAL fsync Pebble made (none with --sync=none).",
		persist.WALSyncBounds[:], m.WALSync[:], m.WALSyncSum)
}
