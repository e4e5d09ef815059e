package protocol

import (
	"errors"
	"strconv"
	"sync/atomic"
	"time"
)

// apiStats are the protocol's counters, updated atomically from loops and
// the committer, read by /metrics.
type apiStats struct {
	// subscribers counts the readers (ezAPI) and listeners (cfAPI) per
	// transport: polls waiting, WebSocket and SSE streams.
	subscribers [2][3]atomic.Int64

	writes       ackCounters
	errors       atomic.Uint64
	deliveries   atomic.Uint64
	ezRefused    atomic.Uint64 // readers refused by the per-IP cap (C-12)
	revoked      atomic.Uint64 // readers and listeners closed by A-04
	readsRefused atomic.Uint64 // store reads refused: the reader pool's queue was full

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
		a.opts.Log.Error(what+" failed", "name", name, "err", err)
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
	return AppendPromHistogram(dst, name, help, latencyBounds[:], counts[:], float64(h.sumNs.Load())/1e9)
}

// AppendPromHistogram appends a Prometheus histogram. counts holds one
// non-cumulative count per bound plus a last one for +Inf; sum is in the
// bounds' unit.
func AppendPromHistogram(dst []byte, name, help string, bounds []float64, counts []uint64, sum float64) []byte {
	dst = append(dst, "# HELP "+name+" "+help+"\n# TYPE "+name+" histogram\n"...)
	var cum uint64
	for i, b := range bounds {
		cum += counts[i]
		dst = append(dst, name+`_bucket{le="`...)
		dst = strconv.AppendFloat(dst, b, 'g', -1, 64)
		dst = append(dst, `"} `...)
		dst = strconv.AppendUint(dst, cum, 10)
		dst = append(dst, '\n')
	}
	cum += counts[len(bounds)]
	dst = append(dst, name+`_bucket{le="+Inf"} `...)
	dst = strconv.AppendUint(dst, cum, 10)
	dst = append(dst, "\n"+name+"_sum "...)
	dst = strconv.AppendFloat(dst, sum, 'g', -1, 64)
	dst = append(dst, "\n"+name+"_count "...)
	dst = strconv.AppendUint(dst, cum, 10)
	return append(dst, '\n')
}

// AppendProm appends one Prometheus sample with its HELP and TYPE lines;
// cmd uses it for the engine's and the store's series so /metrics speaks
// with one voice.
func AppendProm(dst []byte, name, typ, help string, v float64) []byte {
	dst = append(dst, "# HELP "+name+" "+help+"\n# TYPE "+name+" "+typ+"\n"+name+" "...)
	dst = strconv.AppendFloat(dst, v, 'g', -1, 64)
	return append(dst, '\n')
}

func (a *API) appendMetrics(dst []byte) []byte {
	s := &a.stats
	dst = AppendProm(dst, "halley_ez_writes_total", "counter", "EZComet writes acknowledged.", float64(s.writes.ok.Load()))
	dst = AppendProm(dst, "halley_ez_writes_failed_total", "counter", "EZComet writes refused by the store (conflict or storage error).", float64(s.writes.failed.Load()))
	dst = AppendProm(dst, "halley_api_errors_total", "counter", "API error answers.", float64(s.errors.Load()))
	dst = AppendProm(dst, "halley_deliveries_total", "counter", "Messages handed to subscribers.", float64(s.deliveries.Load()))
	dst = AppendProm(dst, "halley_polls_waiting", "gauge", "Long-polls waiting for a message.", float64(s.subscribers[ezAPI][subPoll].Load()))
	dst = AppendProm(dst, "halley_ws_subscribers", "gauge", "WebSocket readers.", float64(s.subscribers[ezAPI][subWS].Load()))
	dst = AppendProm(dst, "halley_sse_subscribers", "gauge", "Server-Sent Events readers.", float64(s.subscribers[ezAPI][subSSE].Load()))
	dst = AppendProm(dst, "halley_ez_readers_refused_total", "counter", "EZComet readers refused by the per-IP listener cap.", float64(s.ezRefused.Load()))
	dst = s.writes.latency.appendProm(dst, "halley_write_ack_seconds", "Time from a write's acceptance to its durable acknowledgement.")
	dst = AppendProm(dst, "halley_cf_pushes_total", "counter", "Cometify pushes acknowledged.", float64(s.pushes.ok.Load()))
	dst = AppendProm(dst, "halley_cf_pushes_failed_total", "counter", "Cometify pushes refused by the store (conflict or storage error).", float64(s.pushes.failed.Load()))
	dst = AppendProm(dst, "halley_cf_deliveries_total", "counter", "Cometify pushes handed to live listeners.", float64(s.cfDeliveries.Load()))
	dst = AppendProm(dst, "halley_cf_listeners_refused_total", "counter", "Cometify listeners refused by the per-IP cap.", float64(s.cfRefused.Load()))
	dst = AppendProm(dst, "halley_cf_polls_waiting", "gauge", "Cometify long-polls waiting.", float64(s.subscribers[cfAPI][subPoll].Load()))
	dst = AppendProm(dst, "halley_cf_ws_listeners", "gauge", "Cometify WebSocket listeners.", float64(s.subscribers[cfAPI][subWS].Load()))
	dst = AppendProm(dst, "halley_cf_sse_listeners", "gauge", "Cometify Server-Sent Events listeners.", float64(s.subscribers[cfAPI][subSSE].Load()))
	dst = AppendProm(dst, "halley_listeners_revoked_total", "counter", "EZComet readers and Cometify listeners closed because their credential was revoked (A-04).", float64(s.revoked.Load()))
	dst = AppendProm(dst, "halley_reads_refused_total", "counter", "Store reads refused because the reader pool's queue was full.", float64(s.readsRefused.Load()))
	dst = AppendProm(dst, "halley_cf_listener_slots", "gauge", "Per-IP listener slots held by Cometify listeners and EZComet readers (CF-L-08, C-12).", float64(a.cap.held()))
	dst = s.pushes.latency.appendProm(dst, "halley_cf_push_ack_seconds", "Time from a push's acceptance to its durable acknowledgement.")
	if a.opts.Metrics != nil {
		dst = a.opts.Metrics(dst)
	}
	return dst
}
