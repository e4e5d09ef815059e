package bench

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"time"
)

// readerConfig is how a client process holds its connections once open:
// a few epoll readers (epollSubs, Linux) or a goroutine per connection.
type readerConfig struct {
	// Readers are the epoll reader goroutines of a client process: in a
	// client process 0 is GOMAXPROCS and the flag's default is 1; in a
	// parent 0 passes nothing (the clients' default). -1: a goroutine
	// per connection (the old client; the only one off Linux).
	Readers int
	// Coalesce: after a wake-up with few sockets ready, a reader sleeps
	// this long (≤ 0 in a client: never; in a parent 0 passes nothing).
	Coalesce time.Duration
}

// clientFlags are a client process's --readers and --coalesce.
func (r *readerConfig) clientFlags(fs *flag.FlagSet) {
	fs.IntVar(&r.Readers, "readers", 1, "epoll reader goroutines holding the connections (0: GOMAXPROCS; -1: a goroutine per connection)")
	fs.DurationVar(&r.Coalesce, "coalesce", time.Millisecond, "epoll readers: after a wake-up with few sockets ready (< 32), sleep this long (≤ 0: never)")
}

// parentFlags are the same passed on by a command that forks clients.
func (r *readerConfig) parentFlags(fs *flag.FlagSet) {
	fs.IntVar(&r.Readers, "client-readers", 0, "epoll reader goroutines per client process (0: the clients' default, 1; -1: a goroutine per connection, the old client)")
	fs.DurationVar(&r.Coalesce, "client-coalesce", 0, "epoll readers: after a wake-up with few sockets ready (< 32), sleep this long (0: the clients' default, 1ms; < 0: never)")
}

// args are the client process flags a parent passes on.
func (r readerConfig) args() []string {
	var a []string
	if r.Readers != 0 {
		a = append(a, "--readers", strconv.Itoa(r.Readers))
	}
	if r.Coalesce != 0 {
		a = append(a, "--coalesce", r.Coalesce.String())
	}
	return a
}

// epoll returns the epoll readers a client process holds its connections
// with (nil: a goroutine each, as asked or because epoll is missing; the
// reason then goes to stderr).
func (r readerConfig) epoll(o epollOptions, st *clientStats, stderr io.Writer) *epollSubs {
	if r.Readers < 0 || !epollAvailable {
		return nil
	}
	o.Readers, o.Coalesce = r.Readers, r.Coalesce
	if o.Readers == 0 {
		o.Readers = runtime.GOMAXPROCS(0)
	}
	e, err := newEpollSubs(o, st)
	if err != nil {
		fmt.Fprintln(stderr, "bench: epoll readers:", err, "(a goroutine per connection instead)")
		return nil
	}
	return e
}

// epollOptions say how an epollSubs reads its connections.
type epollOptions struct {
	Readers  int           // reader goroutines (≥ 1)
	Coalesce time.Duration // after a wake-up with few sockets ready, sleep this long (≤ 0: never)
	// OnData takes one complete WebSocket data message p of c (fragments
	// joined), read at now (UnixNano), and returns the deliveries to add
	// to st.msgs. It runs on c's reader goroutine; p is valid only during
	// the call.
	OnData func(c *epConn, p []byte, now int64) int64
	// Poll, when set, makes the connections long-polls: their answers
	// are parsed as HTTP responses, counted, and the next poll is sent
	// from the reader.
	Poll *lpPoll
	// OnLost, when set, is asked about each held connection that ended:
	// true means the caller opens it again, so it does not count as
	// closed.
	OnLost func(idx int) bool
}

// epConn is one connection held by an epoll reader. Only fd and idx are
// set before it is handed over; the rest belongs to its reader goroutine.
type epConn struct {
	fd  int
	idx int   // the caller's number for it: fanState.subs, an idle client's connection number
	had int64 // deliveries so far (idle WebSocket)
	ws  wsStream
	lp  *lpConn // nil for a WebSocket
}

// lpConn is the state of a long-poll held by an epoll reader.
type lpConn struct {
	resp respStream
	lpProgress
}

// lpPoll is how the long-polls of an epollSubs are asked for: connection
// idx's request is the poll of connection number idx.
type lpPoll struct {
	c    *clientConfig
	host string
}

// lpProgress is a long-poll subscriber between two polls: where the next
// one goes on from and the deliveries so far.
type lpProgress struct {
	resume, lastMod, etag string
	had                   int64
}

// answered takes the answer r to the poll: a delivery is counted in st
// (reached at nowUs, UnixMicro; st.msgs is the caller's, the count is
// returned), and where the next poll goes on from is kept. An error (a
// refusal, or the server closing) ends the connection.
func (p *lpProgress) answered(r *response, k serverKind, st *clientStats, nowUs int64) (int64, error) {
	var n int64
	switch {
	case r.status == 200:
		next, msgs := k.pollAnswer(r.body)
		if next != "" {
			p.resume = next
		}
		if msgs {
			n = 1
			st.reached(p.had, n, nowUs)
			p.had += n
		}
	case r.status == 304 || r.status == 408:
	default:
		return n, fmt.Errorf("long-poll: status %d", r.status)
	}
	if r.lastModified != "" {
		p.lastMod = r.lastModified
	}
	if r.etag != "" {
		p.etag = r.etag
	}
	if r.close {
		return n, io.EOF
	}
	return n, nil
}

// request appends the next poll of connection g to dst.
func (p *lpProgress) request(dst []byte, c *clientConfig, host string, g int) []byte {
	return appendLPRequest(dst, c, host, g, p.resume, p.lastMod, p.etag)
}

// frameDeliveries counts the deliveries kind k reads in one data message
// (not a resume point, a gap signal; a frame may hold several).
func frameDeliveries(k serverKind, frame []byte) int64 {
	var n int64
	for frame != nil {
		p, _, ignore, rest := k.next(frame)
		if p != nil && !ignore {
			n++
		}
		frame = rest
	}
	return n
}

// idleWSData is an idle client's epollOptions.OnData: it counts the
// deliveries as wsHoldDeliveries does.
func idleWSData(k serverKind, st *clientStats) func(c *epConn, p []byte, now int64) int64 {
	return func(c *epConn, p []byte, now int64) int64 {
		n := frameDeliveries(k, p)
		st.reached(c.had, n, now/1000)
		c.had += n
		return n
	}
}
