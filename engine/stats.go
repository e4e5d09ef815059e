package engine

// Stats is a snapshot of the engine's counters. Gauges (OpenConns,
// HeldPolls, WebSockets, Streams) are current values; the rest are totals
// since the server started.
type Stats struct {
	OpenConns        int64 // connections open now
	AcceptedTotal    int64 // connections accepted
	HeldPolls        int64 // requests parked by Conn.Hold now
	WebSockets       int64 // open WebSocket connections
	Streams          int64 // open streams (SSE)
	RequestsTotal    int64 // complete requests handed to Handler.Serve
	BytesIn          int64 // bytes read from clients
	BytesOut         int64 // bytes handed to the kernel or gnet's buffers
	SlowConsumerCuts int64 // connections cut over Options.MaxOutbound
	DeadlineCloses   int64 // connections closed by a header, idle or pong deadline
	ParseErrors      int64 // requests or frames refused as malformed or too large
	Panics           int64 // Handler or posted-function panics recovered
	Refused          int64 // connections closed at accept: over MaxConns
	RefusedPerIP     int64 // connections refused a 429: over MaxConnsPerIP (C-12)
	ReadPauses       int64 // times a connection's reads were paused (C-08)
	Pipelines        int64 // connections with deferred answers outstanding now (Conn.Defer)
}

// Stats sums the loops' counters. Safe from any goroutine; the sum is not
// an atomic snapshot across loops.
func (s *Server) Stats() Stats {
	var st Stats
	for _, lp := range s.loops {
		c := &lp.stats
		st.OpenConns += c.open.Load()
		st.AcceptedTotal += c.accepted.Load()
		st.HeldPolls += c.held.Load()
		st.WebSockets += c.websockets.Load()
		st.Streams += c.streams.Load()
		st.RequestsTotal += c.requests.Load()
		st.BytesIn += c.bytesIn.Load()
		st.BytesOut += c.bytesOut.Load()
		st.SlowConsumerCuts += c.slowCuts.Load()
		st.DeadlineCloses += c.deadlineCloses.Load()
		st.ParseErrors += c.parseErrors.Load()
		st.Panics += c.panics.Load()
		st.Refused += c.refused.Load()
		st.RefusedPerIP += c.refusedPerIP.Load()
		st.ReadPauses += c.readPauses.Load()
		st.Pipelines += c.pipelines.Load()
	}
	return st
}
