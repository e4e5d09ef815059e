package bench

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// writeConfig describes one publish load.
type writeConfig struct {
	Target     string        // base URL, http://host:port
	Kind       string        // a serverKind name
	Conns      int           // keep-alive connections, one request in flight each
	Duration   time.Duration // measuring time
	Channels   int
	Size       int    // message bytes
	Key        string // Halley api_key (Cometify: the cf_api_key)
	Secret     string // Cometify: the api secret pushes are signed with
	User       string // Halley user (qname prefix)
	ChanPrefix string // channel names are ChanPrefix + N
	PID        int    // when set, the server's CPU time per request is reported
}

// writeResult is what a publish load measured.
type writeResult struct {
	Kind      string           `json:"kind"`
	Conns     int              `json:"conns"`
	Seconds   float64          `json:"seconds"`
	Requests  uint64           `json:"requests"`
	Errors    uint64           `json:"errors"`    // non-2xx or unexpected answer
	IOErrors  uint64           `json:"io_errors"` // broken connections (reconnected)
	ReqPerSec float64          `json:"req_per_sec"`
	P50ms     float64          `json:"p50_ms"`
	P90ms     float64          `json:"p90_ms"`
	P99ms     float64          `json:"p99_ms"`
	MaxMs     float64          `json:"max_ms"`
	CPUus     float64          `json:"server_cpu_us_per_req"` // with --pid, else 0
	Statuses  map[string]int64 `json:"statuses"`
	FirstErr  string           `json:"first_error,omitempty"`
	hist      *Histogram       // every request's latency
}

func (c *writeConfig) validate() error {
	k, err := kindOf(c.Kind)
	if err != nil {
		return err
	}
	if err := k.checkPublisher(publisher{Key: c.Key, User: c.User, Secret: c.Secret}); err != nil {
		return err
	}
	if c.Conns < 1 || c.Channels < 1 || c.Size < 0 || c.Duration <= 0 {
		return fmt.Errorf("--conns, --channels must be ≥ 1, --size ≥ 0, --duration > 0")
	}
	if _, _, err := hostPort(c.Target); err != nil {
		return err
	}
	return nil
}

// nchanID keeps only \w characters (Nchan's channel ids are \w+).
func nchanID(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') {
			return r
		}
		return -1
	}, s)
}

// buildWriteRequests returns one complete request per channel.
func buildWriteRequests(c *writeConfig, host string) [][]byte {
	k := mustKind(c.Kind)
	p := publisher{Key: c.Key, User: c.User, Secret: c.Secret}
	msg := []byte(strings.Repeat("x", c.Size))
	reqs := make([][]byte, c.Channels)
	for n := range reqs {
		reqs[n] = k.publish(p, host, k.channel(c.User, c.ChanPrefix, n), msg)
	}
	return reqs
}

type writeWorker struct {
	hist     Histogram
	requests uint64
	errors   uint64
	ioerrs   uint64
	statuses map[int]int64
	firstErr string
}

// runWrite runs the closed-loop publish load: Conns connections, each sends a
// request, waits for its answer, and sends the next (no pipelining). With
// log, it says how far it is every 5 s.
func runWrite(ctx context.Context, c writeConfig, log io.Writer) (writeResult, error) {
	if err := c.validate(); err != nil {
		return writeResult{}, err
	}
	addr, host, _ := hostPort(c.Target)
	reqs := buildWriteRequests(&c, host)
	// One connection first, to fail fast when nothing listens.
	probe, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return writeResult{}, err
	}
	probe.Close()

	ctx, cancel := context.WithTimeout(ctx, c.Duration)
	defer cancel()
	workers := make([]*writeWorker, c.Conns)
	var wg sync.WaitGroup
	var cpu0 float64
	if c.PID > 0 {
		if cpu0, err = treeCPU(c.PID); err != nil {
			return writeResult{}, fmt.Errorf("server pid %d: %v", c.PID, err)
		}
	}
	start := time.Now()
	for i := range workers {
		w := &writeWorker{statuses: map[int]int64{}}
		workers[i] = w
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			w.loop(ctx, &c, addr, reqs, i)
		}(i)
	}
	if log != nil {
		stop := every(5*time.Second, func(d time.Duration) {
			fmt.Fprintf(log, "write %s: %.0f s of %v, %d conns\n", c.Kind, d.Seconds(), c.Duration, c.Conns)
		})
		defer stop()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var cpu1 float64
	if c.PID > 0 {
		cpu1, _ = treeCPU(c.PID)
	}

	var h Histogram
	res := writeResult{Kind: c.Kind, Conns: c.Conns, Seconds: elapsed.Seconds(), Statuses: map[string]int64{}}
	for _, w := range workers {
		h.Merge(&w.hist)
		res.Requests += w.requests
		res.Errors += w.errors
		res.IOErrors += w.ioerrs
		for k, v := range w.statuses {
			res.Statuses[strconv.Itoa(k)] += v
		}
		if res.FirstErr == "" {
			res.FirstErr = w.firstErr
		}
	}
	res.ReqPerSec = float64(res.Requests) / elapsed.Seconds()
	if c.PID > 0 && res.Requests > 0 {
		res.CPUus = (cpu1 - cpu0) * 1e6 / float64(res.Requests)
	}
	ms := func(v int64) float64 { return float64(v) / 1e6 }
	res.P50ms, res.P90ms, res.P99ms, res.MaxMs = ms(h.Percentile(0.50)), ms(h.Percentile(0.90)), ms(h.Percentile(0.99)), ms(h.Max())
	res.hist = &h
	return res, nil
}

func (w *writeWorker) fail(format string, a ...any) {
	if w.firstErr == "" {
		w.firstErr = fmt.Sprintf(format, a...)
	}
}

func (w *writeWorker) loop(ctx context.Context, c *writeConfig, addr string, reqs [][]byte, i int) {
	var conn net.Conn
	var br *bufio.Reader
	var r response
	deadline, _ := ctx.Deadline()
	k := mustKind(c.Kind)
	n := i
	for ctx.Err() == nil {
		if conn == nil {
			var err error
			d := net.Dialer{Timeout: 5 * time.Second}
			conn, err = d.DialContext(ctx, "tcp", addr)
			if err != nil {
				if ctx.Err() == nil {
					w.ioerrs++
					w.fail("dial: %v", err)
					time.Sleep(100 * time.Millisecond)
				}
				conn = nil
				continue
			}
			conn.SetDeadline(deadline.Add(2 * time.Second))
			br = bufio.NewReaderSize(conn, 4096)
		}
		req := reqs[n%len(reqs)]
		n += c.Conns
		t0 := time.Now()
		if _, err := conn.Write(req); err != nil {
			w.broken(ctx, &conn, err)
			continue
		}
		if err := readResponse(br, &r, 256, false); err != nil {
			w.broken(ctx, &conn, err)
			continue
		}
		dt := time.Since(t0)
		if t0.After(deadline) {
			break
		}
		w.requests++
		w.hist.RecordDuration(dt)
		w.statuses[r.status]++
		if !k.published(&r) {
			w.errors++
			w.fail("status %d body %q", r.status, r.body)
		}
		if r.close {
			conn.Close()
			conn = nil
		}
	}
	if conn != nil {
		conn.Close()
	}
}

func (w *writeWorker) broken(ctx context.Context, conn *net.Conn, err error) {
	(*conn).Close()
	*conn = nil
	if ctx.Err() == nil && !isTimeout(err) {
		w.ioerrs++
		w.fail("io: %v", err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// cmdWrite is "bench write".
func cmdWrite(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench write", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := writeConfig{}
	fs.StringVar(&c.Target, "target", "http://127.0.0.1:8080", "server base URL")
	fs.StringVar(&c.Kind, "kind", "halley", kindHelp)
	fs.StringVar(&c.Secret, "secret", "", "Cometify api secret, to sign the pushes")
	fs.IntVar(&c.Conns, "conns", 16, "keep-alive connections, one request in flight each")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "how long to measure")
	fs.IntVar(&c.Channels, "channels", 100, "channels written round-robin")
	fs.IntVar(&c.Size, "size", 100, "message bytes")
	fs.StringVar(&c.Key, "key", "", "Halley api_key")
	fs.StringVar(&c.User, "user", "demo", "Halley username (qname is <user>-<prefix><N>)")
	fs.StringVar(&c.ChanPrefix, "chan-prefix", "", "channel name prefix (default: fresh per run)")
	fs.IntVar(&c.PID, "pid", 0, "server pid (optional): report its CPU time per request (it and its direct children)")
	jsonOut := fs.Bool("json", false, "print the result as one JSON line")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if c.ChanPrefix == "" {
		c.ChanPrefix = freshPrefix()
	}
	res, err := runWrite(context.Background(), c, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "bench write:", err)
		return 1
	}
	if *jsonOut {
		printJSON(stdout, res)
	} else {
		fmt.Fprintf(stdout, "write %s %s: %d conns, %d channels, %d B, %.1fs\n", c.Kind, c.Target, c.Conns, c.Channels, c.Size, res.Seconds)
		fmt.Fprintf(stdout, "  %.0f req/s  (%d requests, %d errors, %d io errors)\n", res.ReqPerSec, res.Requests, res.Errors, res.IOErrors)
		fmt.Fprintf(stdout, "  latency p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms\n", res.P50ms, res.P90ms, res.P99ms, res.MaxMs)
		if c.PID > 0 {
			fmt.Fprintf(stdout, "  server CPU %.1f µs/request\n", res.CPUus)
		}
		fmt.Fprintf(stdout, "  statuses %v\n", res.Statuses)
		if res.FirstErr != "" {
			fmt.Fprintf(stdout, "  first error: %s\n", res.FirstErr)
		}
	}
	if res.Requests == 0 || res.Errors > 0 {
		return 1
	}
	return 0
}
