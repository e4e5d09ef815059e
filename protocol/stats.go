package protocol

import (
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/halleypush/halley/promtext"
)

// apiStats are the protocol's counters, updated atomically from loops and
// the committer, read by /metrics.
type apiStats struct {
	// subscribers counts the readers (ezAPI) and listeners (cfAPI) per
	// transport: polls waiting, WebSocket and SSE streams.
	subscribers [2][3]atomic.Int64

	writes     ackCounters
	errors     atomic.Uint64
	deliveries atomic.Uint64
	ezRefused  atomic.Uint64 // readers refused by the per-IP cap (C-12)
	// ezPlacedUnread and cfPlacedUnread count readers and listeners
	// placed at their channel's or topics' end with no store read
	// (atTail, cfAtTail).
	ezPlacedUnread, cfPlacedUnread atomic.Uint64
	revoked                        atomic.Uint64 // readers and listeners closed by A-04
	readsRefused                   atomic.Uint64 // store reads refused: the reader pool's queue was full

	pushes       ackCounters
	cfDeliveries atomic.Uint64
	cfRefused    atomic.Uint64 // listeners refused by the per-IP cap
}

// The two APIs, indexing apiStats.subscribers.
const (
	ezAPI = iota
	cfAPI
)

// done counts one store answer that arrived after elapsed and returns
// what the client is answered when it failed: conflictAnswer for the
// conflict error, errStorage (logged) for any other error, nil on success.
func (c *ackCounters) done(a *API, elapsed time.Duration, err, conflict error, conflictAnswer *apiError, what, name string) *apiError {
	c.latency.observe(elapsed)
	var failed *apiError
	switch {
	case err == nil:
		c.ok.Add(1)
		return nil
	case errors.Is(err, conflict):
		failed = conflictAnswer
	default:
		a.opts.Log.Error(what+" failed", "name", strings.Clone(name), "err", err) // name is the op's, reused
		failed = errStorage
	}
	c.failed.Add(1)
	return failed
}

// ackCounters follow one kind of durable operation (EZComet writes,
// Cometify pushes) from acceptance to the store's answer.
type ackCounters struct {
	ok, failed atomic.Uint64
	latency    histogram
}

// histogram is a fixed-bucket latency histogram in Prometheus' shape.
type histogram struct {
	counts [len(latencyBounds) + 1]atomic.Uint64
	sumNs  atomic.Uint64
}

// latencyBounds are the bucket upper bounds, in seconds.
var latencyBounds = [...]float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(latencyBounds) && s > latencyBounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(d.Nanoseconds()))
}

func (h *histogram) appendProm(dst []byte, name, help string) []byte {
	var counts [len(latencyBounds) + 1]uint64
	for i := range counts {
		counts[i] = h.counts[i].Load()
	}
	return promtext.Histogram(dst, name, help, latencyBounds[:], counts[:], float64(h.sumNs.Load())/1e9)
}

// AppendMetrics appends the protocol's series and then those of
// Options.Metrics to dst, in the Prometheus text format: the public
// /metrics answer (C-10), which the internal listener (package admin)
// serves too. Safe from any goroutine: it reads atomic counters and the
// per-IP cap's shards under their locks.
func (a *API) AppendMetrics(dst []byte) []byte {
	s := &a.stats
	dst = promtext.Counter(dst, "halley_ez_writes_total", "EZComet writes acknowledged.", float64(s.writes.ok.Load()))
	dst = promtext.Counter(dst, "halley_ez_writes_failed_total", "EZComet writes refused by the store (conflict or storage error).", float64(s.writes.failed.Load()))
	dst = promtext.Counter(dst, "halley_api_errors_total", "API error answers.", float64(s.errors.Load()))
	dst = promtext.Counter(dst, "halley_deliveries_total", "Messages handed to subscribers.", float64(s.deliveries.Load()))
	dst = promtext.Gauge(dst, "halley_polls_waiting", "Long-polls waiting for a message.", float64(s.subscribers[ezAPI][subPoll].Load()))
	dst = promtext.Gauge(dst, "halley_ws_subscribers", "WebSocket readers.", float64(s.subscribers[ezAPI][subWS].Load()))
	dst = promtext.Gauge(dst, "halley_sse_subscribers", "Server-Sent Events readers.", float64(s.subscribers[ezAPI][subSSE].Load()))
	dst = promtext.Counter(dst, "halley_ez_readers_refused_total", "EZComet readers refused by the per-IP listener cap.", float64(s.ezRefused.Load()))
	dst = promtext.Counter(dst, "halley_cf_listeners_placed_unread_total", "Cometify listeners resuming from the last push of each identifier delivered on their loop, placed with no store read.", float64(s.cfPlacedUnread.Load()))
	dst = promtext.Counter(dst, "halley_ez_readers_placed_unread_total", "EZComet readers resuming from the last message delivered on their loop, placed with no store read.", float64(s.ezPlacedUnread.Load()))
	dst = s.writes.latency.appendProm(dst, "halley_write_ack_seconds", "Time from a write's acceptance to its durable acknowledgement.")
	dst = promtext.Counter(dst, "halley_cf_pushes_total", "Cometify pushes acknowledged.", float64(s.pushes.ok.Load()))
	dst = promtext.Counter(dst, "halley_cf_pushes_failed_total", "Cometify pushes refused by the store (conflict or storage error).", float64(s.pushes.failed.Load()))
	dst = promtext.Counter(dst, "halley_cf_deliveries_total", "Cometify pushes handed to live listeners.", float64(s.cfDeliveries.Load()))
	dst = promtext.Counter(dst, "halley_cf_listeners_refused_total", "Cometify listeners refused by the per-IP cap.", float64(s.cfRefused.Load()))
	dst = promtext.Gauge(dst, "halley_cf_polls_waiting", "Cometify long-polls waiting.", float64(s.subscribers[cfAPI][subPoll].Load()))
	dst = promtext.Gauge(dst, "halley_cf_ws_listeners", "Cometify WebSocket listeners.", float64(s.subscribers[cfAPI][subWS].Load()))
	dst = promtext.Gauge(dst, "halley_cf_sse_listeners", "Cometify Server-Sent Events listeners.", float64(s.subscribers[cfAPI][subSSE].Load()))
	dst = promtext.Counter(dst, "halley_listeners_revoked_total", "EZComet readers and Cometify listeners closed because their credential was revoked (A-04).", float64(s.revoked.Load()))
	dst = promtext.Counter(dst, "halley_reads_refused_total", "Store reads refused because the reader pool's queue was full.", float64(s.readsRefused.Load()))
	dst = promtext.Gauge(dst, "halley_cf_listener_slots", "Per-IP listener slots held by Cometify listeners and EZComet readers (CF-L-08, C-12).", float64(a.cap.held()))
	dst = s.pushes.latency.appendProm(dst, "halley_cf_push_ack_seconds", "Time from a push's acceptance to its durable acknowledgement.")
	if a.opts.Metrics != nil {
		dst = a.opts.Metrics(dst)
	}
	return dst
}

// Draining reports whether a graceful stop has begun (Drain was called):
// the public /healthz answers 503 from then on, and so do the internal
// listener's /healthz and /readyz. Safe from any goroutine.
func (a *API) Draining() bool { return a.draining.Load() }
