package main

import (
	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
	"github.com/halleypush/halley/protocol"
)

// appendSystemMetrics appends the engine's and the store's series to the
// protocol's /metrics answer. srv may be nil while the server starts.
func appendSystemMetrics(dst []byte, srv *engine.Server, store *persist.Store) []byte {
	if srv != nil {
		dst = appendEngineMetrics(dst, srv.Stats())
	}
	st := store.Stats()
	p := protocol.AppendProm
	dst = p(dst, "halley_store_writes_committed_total", "counter", "Writes acknowledged by the store.", float64(st.WritesCommitted))
	dst = p(dst, "halley_store_appended_total", "counter", "Messages appended to queues.", float64(st.Appended))
	dst = p(dst, "halley_store_duplicates_total", "counter", "Idempotent re-sends (EZ-W-07).", float64(st.Duplicates))
	dst = p(dst, "halley_store_conflicts_total", "counter", "Tick conflicts (409).", float64(st.Conflicts))
	dst = p(dst, "halley_store_cf_pushes_total", "counter", "Cometify pushes appended.", float64(st.CFPushes))
	dst = p(dst, "halley_store_cf_duplicates_total", "counter", "Re-sent push_ids answered as duplicates (CF-P-06).", float64(st.CFDuplicates))
	dst = p(dst, "halley_store_cf_conflicts_total", "counter", "push_id conflicts (409).", float64(st.CFConflicts))
	dst = p(dst, "halley_store_cf_dropped_total", "counter", "Cometify pushes deleted by retention (CF-P-08).", float64(st.CFDropped))
	dst = p(dst, "halley_store_flushes_total", "counter", "Channel flushes.", float64(st.Flushes))
	dst = p(dst, "halley_store_batches_total", "counter", "Group commits.", float64(st.Batches))
	dst = p(dst, "halley_store_batch_writes_total", "counter", "Writes over all group commits (mean batch = this / batches).", float64(st.BatchSizeSum))
	dst = p(dst, "halley_store_dropped_total", "counter", "Messages dropped by retention.", float64(st.DroppedByRetention))
	dst = p(dst, "halley_store_flushed_total", "counter", "Messages deleted by flushes.", float64(st.DroppedByFlush))
	dst = p(dst, "halley_store_errors_total", "counter", "Writes answered with a storage error.", float64(st.Errors))
	dst = p(dst, "halley_store_refused_total", "counter", "Writes and pushes refused before queueing: store failed, commit stalled or queue full (503).", float64(st.Refused))
	dst = p(dst, "halley_store_revoked_total", "counter", "Writes and pushes whose account was removed while they waited (401, A-04).", float64(st.Revoked))
	dst = p(dst, "halley_store_cf_secret_replays_total", "counter", "Pushes refused for re-sending a secret push's secure in the clear (403, CF-P-09).", float64(st.CFSecretReplays))
	dst = p(dst, "halley_store_cf_nonces_reused_total", "counter", "Signed pushes refused for a nonce already used (403, CF-P-10).", float64(st.CFNoncesReused))
	healthy := 1.0
	if store.Healthy() != nil {
		healthy = 0
	}
	dst = p(dst, "halley_store_healthy", "gauge", "1 while the store accepts writes; 0 after a failed commit (restart to recover) or during a stalled one (C-10).", healthy)

	bounds := make([]float64, len(persist.SyncLatencyBounds))
	for i, b := range persist.SyncLatencyBounds {
		bounds[i] = b.Seconds()
	}
	return protocol.AppendPromHistogram(dst, "halley_store_sync_seconds", "Time of a synced group commit.",
		bounds, st.SyncLatency[:], float64(st.SyncNanosSum)/1e9)
}

// appendEngineMetrics appends the event loops' connection counters.
func appendEngineMetrics(dst []byte, s engine.Stats) []byte {
	p := protocol.AppendProm
	dst = p(dst, "halley_connections_open", "gauge", "Open client connections.", float64(s.OpenConns))
	dst = p(dst, "halley_connections_accepted_total", "counter", "Connections accepted.", float64(s.AcceptedTotal))
	dst = p(dst, "halley_connections_refused_total", "counter", "Connections refused over the connection cap or while draining.", float64(s.Refused))
	dst = p(dst, "halley_connections_refused_per_ip_total", "counter", "Connections answered 429 over --max-conns-per-ip (C-12).", float64(s.RefusedPerIP))
	dst = p(dst, "halley_read_pauses_total", "counter", "Times a connection's socket reads were paused while its request was pending or its output over the bound (C-08).", float64(s.ReadPauses))
	dst = p(dst, "halley_polls_held", "gauge", "Long-poll requests held by the engine.", float64(s.HeldPolls))
	dst = p(dst, "halley_websockets_open", "gauge", "Open WebSocket connections.", float64(s.WebSockets))
	dst = p(dst, "halley_streams_open", "gauge", "Open SSE streams.", float64(s.Streams))
	dst = p(dst, "halley_requests_total", "counter", "HTTP requests parsed.", float64(s.RequestsTotal))
	dst = p(dst, "halley_bytes_in_total", "counter", "Bytes read from clients.", float64(s.BytesIn))
	dst = p(dst, "halley_bytes_out_total", "counter", "Bytes written to clients.", float64(s.BytesOut))
	dst = p(dst, "halley_slow_consumer_cuts_total", "counter", "Connections cut for unsent output over the cap.", float64(s.SlowConsumerCuts))
	dst = p(dst, "halley_deadline_closes_total", "counter", "Connections closed by a deadline.", float64(s.DeadlineCloses))
	dst = p(dst, "halley_parse_errors_total", "counter", "Requests that could not be parsed.", float64(s.ParseErrors))
	return p(dst, "halley_panics_total", "counter", "Handler panics recovered.", float64(s.Panics))
}
