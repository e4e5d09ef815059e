package cluster

import "github.com/halleypush/halley/promtext"

// AppendMetrics appends l's counters and state to a /metrics answer
// (Prometheus text), as halley_cluster_* series: what an operator
// watches to see a light node losing deliveries to NATS (dropped,
// gaps), its outbox overflowing, or its connection flapping.
func AppendMetrics(dst []byte, l *Link) []byte {
	s := l.Stats()
	c, g := promtext.Counter, promtext.Gauge
	dst = c(dst, "halley_cluster_deliveries_total", "Deliveries received over NATS and handed to the event loops, in order.", float64(s.Delivered))
	dst = c(dst, "halley_cluster_duplicates_total", "Deliveries received at or below their channel's last seq, ignored.", float64(s.Duplicates))
	dst = c(dst, "halley_cluster_gaps_total", "Missed deliveries detected (a seq or id gap, a reconnect, a resync notice), each repaired by a read from the store node.", float64(s.Gaps))
	dst = c(dst, "halley_cluster_slow_consumer_total", "Episodes of NATS dropping deliveries because this node's delivery queue was full.", float64(s.Dropped))
	dst = c(dst, "halley_cluster_reconnects_total", "Reconnections to NATS.", float64(s.Reconnects))
	dst = c(dst, "halley_cluster_bad_frames_total", "Deliveries that did not decode.", float64(s.BadFrames))
	dst = c(dst, "halley_cluster_out_dropped_total", "Outgoing messages (deliveries, answers, forwarded writes) dropped: outbox full or refused by NATS.", float64(s.OutDropped))
	dst = c(dst, "halley_cluster_reads_joined_total", "Reads of the store node answered by an identical read's request made at the same time, not one of their own.", float64(s.JoinedReads))
	connected := 0.0
	if l.Connected() {
		connected = 1
	}
	dst = g(dst, "halley_cluster_nats_connected", "1 while the NATS connection is up, else 0.", connected)
	return g(dst, "halley_cluster_followed", "EZComet channels and Cometify topics this node follows on NATS.", float64(l.Followed()))
}

// Followed is how many channels and topics l follows (Subscribe calls
// not yet undone, one per name).
func (l *Link) Followed() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.follow {
		n += len(m)
	}
	return n
}

// AppendMetrics appends a light node's series: its Link's (AppendMetrics)
// and the reads it made again after a timeout.
func (s *LightStore) AppendMetrics(dst []byte) []byte {
	dst = AppendMetrics(dst, s.link)
	return promtext.Counter(dst, "halley_cluster_reads_retried_total", "Reads of the store node made again after it let one time out while it still answered pings.", float64(s.RetriedReads()))
}
