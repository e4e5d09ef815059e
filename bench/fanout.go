package bench

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// fanoutConfig describes one fan-out measurement: Subs WebSocket
// subscribers on one fresh channel, Msgs messages published at Rate/s.
type fanoutConfig struct {
	Target       string
	Kind         string // a serverKind name
	Subs         int
	Msgs         int
	Rate         float64
	Size         int
	Key, User    string // Halley (EZComet) api_key and username; Cometify: Key is the apiKey
	Secret       string // Cometify api secret: pushes are signed (CF-P-03)
	Chan         string // fresh channel prefix; the channel (identifier) is <Chan>0
	PID          int
	PerProcess   int
	PerIP        int
	DialConc     int
	OpenTimeout  time.Duration
	Grace        time.Duration // "rate kept" needs every delivery within this of the last publish
	Drain        time.Duration // how long to wait for stragglers after the publishing ended
	Quiet        time.Duration // stop waiting sooner when no frame arrived for this long (0: wait Drain)
	MaxLife      time.Duration
	readerConfig               // how the client processes hold their subscribers (0s: their defaults)
	StormAt      time.Duration // bench storm: reset every subscriber this long after publishing started (0: no storm)
	StormWait    time.Duration // give up waiting for the reconnections and the catching up after this
	sent         *atomic.Int64 // messages sent so far (publishPaced)
}

// fanoutResult is what a fan-out measurement found.
type fanoutResult struct {
	Kind          string       `json:"kind"`
	Subs          int          `json:"subs"`
	Open          int          `json:"open"` // subscribers held when publishing started
	Msgs          int          `json:"msgs"`
	Published     int          `json:"published"` // accepted by the server
	PubErrors     int          `json:"publish_errors"`
	AskedRate     float64      `json:"asked_rate"`
	PubRate       float64      `json:"publish_rate"` // achieved, (n-1)/(last send − first send)
	Deliveries    int64        `json:"deliveries"`   // distinct (subscriber, message) pairs received
	Expected      int64        `json:"expected"`     // open × published
	Missing       int64        `json:"missing"`
	Duplicates    int64        `json:"duplicates"`
	OutOfOrder    int64        `json:"out_of_order"`             // deliveries not after the subscriber's previous one (seq, and push id for Cometify)
	MissedMsgs    int          `json:"missed_msgs"`              // messages that at least one open subscriber never got
	MissBySeq     []uint64     `json:"missing_by_msg,omitempty"` // per message: open subscribers that never got it
	ListenerMin   int64        `json:"listener_min"`             // fewest distinct messages one open subscriber got
	ListenerMax   int64        `json:"listener_max"`             // most
	Bad           int64        `json:"bad_frames"`               // data frames that were neither ours nor ignorable
	DeliveriesSec float64      `json:"deliveries_per_sec"`
	DeliveredMsgs float64      `json:"delivered_msgs_per_sec"` // deliveries/s ÷ open subscribers
	LastAfterPub  float64      `json:"last_delivery_after_last_publish_ms"`
	RateKept      bool         `json:"rate_kept"`
	P50ms         float64      `json:"p50_ms"`
	P90ms         float64      `json:"p90_ms"`
	P99ms         float64      `json:"p99_ms"`
	MaxMs         float64      `json:"max_ms"`
	AckP50ms      float64      `json:"publish_ack_p50_ms"` // a publish's send → its answer
	AckP99ms      float64      `json:"publish_ack_p99_ms"`
	CPUus         float64      `json:"server_cpu_us_per_delivery"` // with --pid
	Warnings      []string     `json:"warnings,omitempty"`
	hist          *Histogram   // every delivery's latency
	Storm         *stormResult `json:"storm,omitempty"`
}

// stormResult is what bench storm adds to a fan-out result.
type stormResult struct {
	SentBefore  int     `json:"sent_before"`  // messages sent before the reset
	Dropped     int     `json:"dropped"`      // subscribers reset
	Reconnected int     `json:"reconnected"`  // of those, open again
	GaveUp      int     `json:"gave_up"`      // could not reconnect (100 tries)
	Retries     int     `json:"retries"`      // reconnect attempts that failed and were retried
	ReconnectMs float64 `json:"reconnect_ms"` // reset sent → every subscriber open again (-1: not within the wait)
	CatchMsgs   int     `json:"catch_msgs"`   // messages sent when all were open again
	CaughtMs    float64 `json:"caught_ms"`    // reset sent → every subscriber has all of those (-1: not within the wait)
}

// fanProc is one fan-out client process as the parent sees it.
type fanProc struct {
	clientProc
	report *fanReport
	rdone  chan struct{}
}

func (c *fanoutConfig) validate() error {
	k, err := kindOf(c.Kind)
	if err != nil {
		return err
	}
	if err := k.checkPublisher(c.publisher()); err != nil {
		return err
	}
	if c.Chan != "" {
		sub := clientConfig{Kind: c.Kind, Mode: "ws", QName: c.qname(), Key: c.Key}
		if err := k.checkClient(&sub); err != nil {
			return err
		}
	}
	if c.Subs < 1 || c.Msgs < 1 || c.Rate <= 0 || c.Size < 0 {
		return fmt.Errorf("--subs, --msgs must be ≥ 1, --rate > 0, --size ≥ 0")
	}
	if c.PerProcess < 1 || c.PerProcess > 19000 || c.PerIP < 1 || c.DialConc < 1 {
		return fmt.Errorf("--per-process must be 1..19000, --per-ip and --dial-conc ≥ 1")
	}
	_, _, err = hostPort(c.Target)
	return err
}

// kind is the API of --kind (validate has checked it).
func (c *fanoutConfig) kind() serverKind { return mustKind(c.Kind) }

func (c *fanoutConfig) publisher() publisher {
	return publisher{Key: c.Key, User: c.User, Secret: c.Secret}
}

// qname is the client processes' --qname (prefix; the channel is "<qname>0").
func (c *fanoutConfig) qname() string { return c.kind().qname(c.User, c.Chan) }

// channel is the one channel the subscribers are on.
func (c *fanoutConfig) channel() string { return c.kind().channel(c.User, c.Chan, 0) }

// pubRequest is the publish request of one message.
func (c *fanoutConfig) pubRequest(host string, payload []byte) []byte {
	return c.kind().publish(c.publisher(), host, c.channel(), payload)
}

// runFanout opens the subscribers from client processes, publishes, waits
// for the deliveries, and collects the clients' accounting.
func runFanout(ctx context.Context, c fanoutConfig, log io.Writer) (fanoutResult, error) {
	res := fanoutResult{Kind: c.Kind, Subs: c.Subs, Msgs: c.Msgs, AskedRate: c.Rate}
	log = &syncWriter{w: log}
	if c.Chan == "" {
		c.Chan = freshPrefix() + "f"
	}
	if err := c.validate(); err != nil {
		return res, err
	}
	addr, host, _ := hostPort(c.Target)
	pub, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return res, err
	}
	pubUsed := false
	defer func() {
		if !pubUsed {
			pub.Close()
		}
	}()
	exe, pre, env, err := clientCommand()
	if err != nil {
		return res, err
	}
	pre = append(append([]string{}, pre[:len(pre)-1]...), "fanclient")
	nproc := (c.Subs + c.PerProcess - 1) / c.PerProcess
	targets := procTargets(c.Subs, c.PerProcess, nproc)
	procs := make([]*fanProc, nproc)
	defer func() {
		cp := make([]*clientProc, 0, nproc)
		for _, p := range procs {
			if p != nil {
				cp = append(cp, &p.clientProc)
			}
		}
		stopClients(cp)
	}()
	for i := range procs {
		args := append(append([]string{}, pre...),
			"--target", c.Target, "--kind", c.Kind, "--qname", c.qname(),
			"--per-ip", strconv.Itoa(c.PerIP), "--dial-conc", strconv.Itoa(c.DialConc),
			"--max-life", c.MaxLife.String(), "--first-index", strconv.Itoa(i*c.PerProcess),
			"--open", strconv.Itoa(targets[i]), "--msgs", strconv.Itoa(c.Msgs))
		if c.Key != "" {
			args = append(args, "--key", c.Key)
		}
		args = append(args, c.readerConfig.args()...)
		cmd := exec.Command(exe, args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stderr = log
		p := &fanProc{clientProc: clientProc{cmd: cmd, stat: map[string]int{}, ready: make(chan struct{}), target: targets[i]},
			rdone: make(chan struct{})}
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			return res, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return res, err
		}
		if err := cmd.Start(); err != nil {
			return res, err
		}
		procs[i] = p
		go func() {
			defer close(p.rdone)
			sc := bufio.NewScanner(out)
			sc.Buffer(make([]byte, 64<<10), 4<<20)
			readyOnce := false
			var rep fanReport
			haveRep := false
			for sc.Scan() {
				line := sc.Text()
				switch {
				case line == "ready" && !readyOnce:
					readyOnce = true
					close(p.ready)
				case strings.HasPrefix(line, "fan "):
					rep, haveRep = parseFanLine(line)
				case strings.HasPrefix(line, "mseq ") && haveRep:
					rep.MissBySeq = make([]uint64, c.Msgs)
					if _, err := decodeCounts(line[5:], rep.MissBySeq); err != nil {
						fmt.Fprintf(log, "fanout: client %d: missing by message: %v\n", p.cmd.Process.Pid, err)
					}
				case strings.HasPrefix(line, "hist ") && haveRep:
					if h, err := decodeHist(line[5:]); err == nil {
						rep.Hist = h
						p.mu.Lock()
						p.report = &rep
						p.mu.Unlock()
					} else {
						fmt.Fprintf(log, "fanout: client %d: %v\n", p.cmd.Process.Pid, err)
					}
				default:
					if m, ok := parseStatLine(line); ok {
						p.mu.Lock()
						p.stat = m
						p.mu.Unlock()
					}
				}
			}
			p.mu.Lock()
			p.exited = true
			p.mu.Unlock()
			if !readyOnce {
				close(p.ready)
			}
		}()
	}
	for i, p := range procs {
		if err := p.awaitStart(i); err != nil {
			return res, err
		}
	}
	fmt.Fprintf(log, "fanout %s: opening %d subscribers on %s\n", c.Kind, c.Subs, c.channel())
	deadline := time.Now().Add(c.OpenTimeout)
	for {
		done := true
		res.Open = 0
		for i, p := range procs {
			if p.gone() {
				return res, fmt.Errorf("client process %d exited", i)
			}
			res.Open += p.get("open")
			if p.get("open")+p.get("failed")+p.get("closed") < p.target {
				done = false
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			res.Warnings = append(res.Warnings, fmt.Sprintf("only %d of %d subscribers open after %v", res.Open, c.Subs, c.OpenTimeout))
			break
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if res.Open < c.Subs {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d of %d subscribers open", res.Open, c.Subs))
	}
	if res.Open == 0 {
		return res, errors.New("no subscriber open")
	}
	time.Sleep(200 * time.Millisecond) // subscriptions registered server-side
	fmt.Fprintf(log, "fanout %s: %d subscribers open; publishing %d msgs at %g/s\n", c.Kind, res.Open, c.Msgs, c.Rate)

	var cpu0 float64
	if c.PID > 0 {
		if cpu0, err = treeCPU(c.PID); err != nil {
			return res, fmt.Errorf("server pid %d: %v", c.PID, err)
		}
	}
	pubUsed = true
	c.sent = new(atomic.Int64)
	// A long run says how far it is every 5 s.
	expected := int64(res.Open) * int64(c.Msgs)
	stopProgress := every(5*time.Second, func(d time.Duration) {
		var n int64
		for _, p := range procs {
			n += int64(p.get("msgs"))
		}
		fmt.Fprintf(log, "fanout %s: %.0f s: %d of %d msgs sent, %d of %d deliveries counted\n",
			c.Kind, d.Seconds(), c.sent.Load(), c.Msgs, n, expected)
	})
	defer stopProgress()
	stormDone := make(chan struct{})
	if c.StormAt > 0 {
		res.Storm = &stormResult{ReconnectMs: -1, CaughtMs: -1}
		go func() {
			defer close(stormDone)
			runStorm(ctx, &c, procs, res.Open, res.Storm, log)
		}()
	} else {
		close(stormDone)
	}
	sends, acks, firstErr := publishPaced(ctx, &c, pub, host)
	res.AckP50ms, res.AckP99ms = float64(acks.Percentile(0.50))/1e6, float64(acks.Percentile(0.99))/1e6
	<-stormDone
	if len(sends) == 0 {
		return res, fmt.Errorf("nothing published: %v", firstErr)
	}
	res.Published = len(sends)
	res.PubErrors = c.Msgs - len(sends)
	if firstErr != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d publish errors, first: %v", res.PubErrors, firstErr))
	}
	firstPub, lastPub := sends[0], sends[len(sends)-1]
	if len(sends) > 1 {
		res.PubRate = float64(len(sends)-1) / lastPub.Sub(firstPub).Seconds()
	}
	res.Expected = int64(res.Open) * int64(res.Published)
	// Wait for every delivery (frames counted by the clients' stat lines),
	// at most Drain after the publishing ended, that is after the last
	// answer: Nchan answers a publish once it has written it to its
	// subscribers, Halley once it is on disk, and both get the same wait.
	var seen progress
	for end := time.Now().Add(c.Drain); time.Now().Before(end); {
		var n int64
		for _, p := range procs {
			n += int64(p.get("msgs"))
		}
		if seen.done(n, res.Expected, time.Now(), c.Quiet) {
			break
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	var cpu1 float64
	if c.PID > 0 {
		cpu1, _ = treeCPU(c.PID)
	}
	for _, p := range procs {
		fmt.Fprintln(p.stdin, "quit")
	}
	var h Histogram
	var lastDel int64
	res.ListenerMin = -1
	for i, p := range procs {
		select {
		case <-p.rdone:
		case <-time.After(10 * time.Second):
			return res, fmt.Errorf("client process %d did not report", i)
		}
		p.mu.Lock()
		r := p.report
		p.mu.Unlock()
		if r == nil {
			return res, fmt.Errorf("client process %d ended without a report", i)
		}
		h.Merge(r.Hist)
		res.Deliveries += r.Got
		res.Duplicates += r.Dup
		res.Bad += r.Bad
		res.OutOfOrder += r.Order
		if len(r.MissBySeq) == c.Msgs {
			if res.MissBySeq == nil {
				res.MissBySeq = make([]uint64, c.Msgs)
			}
			for q, n := range r.MissBySeq {
				res.MissBySeq[q] += n
			}
		}
		if r.Opened > 0 {
			if res.ListenerMin < 0 || r.ListenerMin < res.ListenerMin {
				res.ListenerMin = r.ListenerMin
			}
			res.ListenerMax = max(res.ListenerMax, r.ListenerMax)
		}
		lastDel = max(lastDel, r.Last)
		if r.Closed > 0 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("client %d: %d subscribers closed", i, r.Closed))
		}
	}
	// Missing counts against what was accepted and what was held open:
	// subscribers that never opened or messages that failed to publish are
	// reported separately (warnings, publish_errors).
	res.Missing = max(res.Expected-res.Deliveries, 0)
	res.ListenerMin = max(res.ListenerMin, 0)
	for _, n := range res.MissBySeq {
		if n > 0 {
			res.MissedMsgs++
		}
	}
	if res.MissedMsgs == 0 {
		res.MissBySeq = nil
	}
	if lastDel > 0 {
		span := time.Duration(lastDel - firstPub.UnixNano())
		if span > 0 {
			res.DeliveriesSec = float64(res.Deliveries) / span.Seconds()
			res.DeliveredMsgs = res.DeliveriesSec / float64(res.Open)
		}
		res.LastAfterPub = float64(lastDel-lastPub.UnixNano()) / 1e6
	}
	res.RateKept = res.PubErrors == 0 && res.Missing == 0 && res.OutOfOrder == 0 && res.PubRate >= 0.95*c.Rate &&
		res.LastAfterPub <= float64(c.Grace)/1e6
	if c.Msgs == 1 {
		res.RateKept = res.PubErrors == 0 && res.Missing == 0 && res.OutOfOrder == 0 && res.LastAfterPub <= float64(c.Grace)/1e6
	}
	if c.PID > 0 && res.Deliveries > 0 {
		res.CPUus = (cpu1 - cpu0) * 1e6 / float64(res.Deliveries)
	}
	ms := func(v int64) float64 { return float64(v) / 1e6 }
	res.P50ms, res.P90ms, res.P99ms, res.MaxMs = ms(h.Percentile(0.50)), ms(h.Percentile(0.90)), ms(h.Percentile(0.99)), ms(h.Max())
	res.hist = &h
	return res, nil
}

// every calls f with the time elapsed every period until the returned
// stop is called.
func every(period time.Duration, f func(time.Duration)) (stop func()) {
	done := make(chan struct{})
	t0 := time.Now()
	go func() {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				f(time.Since(t0))
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
}

// runStorm waits StormAt, tells every client process to reset all its
// subscribers and reconnect them at once, and times how long until all are
// open again, then until all have every message sent by then.
func runStorm(ctx context.Context, c *fanoutConfig, procs []*fanProc, open int, r *stormResult, log io.Writer) {
	select {
	case <-time.After(c.StormAt):
	case <-ctx.Done():
		return
	}
	r.SentBefore = int(c.sent.Load())
	t0 := time.Now()
	for _, p := range procs {
		fmt.Fprintln(p.stdin, "storm")
	}
	fmt.Fprintf(log, "storm: reset sent to %d subscribers after %d messages\n", open, r.SentBefore)
	sum := func(k string) int {
		n := 0
		for _, p := range procs {
			n += p.get(k)
		}
		return n
	}
	wait := func(done func() bool) float64 {
		for end := t0.Add(c.StormWait); time.Now().Before(end) && ctx.Err() == nil; time.Sleep(10 * time.Millisecond) {
			if done() {
				return float64(time.Since(t0)) / 1e6
			}
		}
		return -1
	}
	r.ReconnectMs = wait(func() bool {
		for _, p := range procs {
			p.mu.Lock()
			_, ok := p.stat["dropped"]
			p.mu.Unlock()
			if !ok && !p.gone() {
				return false // not reset yet
			}
		}
		d := sum("dropped")
		return d > 0 && sum("reconnected")+sum("gaveup") >= d
	})
	r.Dropped, r.Reconnected, r.GaveUp, r.Retries = sum("dropped"), sum("reconnected"), sum("gaveup"), sum("retries")
	r.CatchMsgs = int(c.sent.Load())
	for _, p := range procs {
		fmt.Fprintln(p.stdin, "catch", r.CatchMsgs)
	}
	fmt.Fprintf(log, "storm: %d of %d reconnected after %.0f ms (%d retries); waiting for all to have the first %d messages\n",
		r.Reconnected, r.Dropped, r.ReconnectMs, r.Retries, r.CatchMsgs)
	r.CaughtMs = wait(func() bool {
		n := 0
		for _, p := range procs {
			if p.get("caught") < 0 {
				return false
			}
			n += p.get("caught")
		}
		return n >= r.Reconnected
	})
	r.Retries = sum("retries")
	fmt.Fprintf(log, "storm: caught up after %.0f ms\n", r.CaughtMs)
}

// progress tells when waiting for deliveries can stop: all expected frames
// arrived, or none for quiet (0: never) since the count last moved.
type progress struct {
	n     int64
	moved time.Time
}

func (p *progress) done(n, expected int64, now time.Time, quiet time.Duration) bool {
	if n >= expected {
		return true
	}
	if p.moved.IsZero() || n != p.n {
		p.n, p.moved = n, now
		return false
	}
	return quiet > 0 && now.Sub(p.moved) >= quiet
}

// publishPaced sends c.Msgs messages over one keep-alive connection, message
// i due at start + i/Rate (a schedule, so a late wake-up catches up instead
// of dropping a tick), pipelined: the writer does not wait for answers
// (open loop), a reader takes them in order. It returns the send time of
// every accepted message, how long each waited for its answer, and the
// first error; a broken connection ends the publishing (the rest count as
// publish errors). conn is closed on return.
func publishPaced(ctx context.Context, c *fanoutConfig, conn net.Conn, host string) ([]time.Time, *Histogram, error) {
	defer conn.Close()
	inflight := make(chan time.Time, c.Msgs)
	var sends []time.Time
	acks := new(Histogram)
	var rerr error
	rdone := make(chan struct{})
	go func() {
		defer close(rdone)
		br := bufio.NewReaderSize(conn, 4096)
		var r response
		for t := range inflight {
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			err := readResponse(br, &r, 256, false)
			if err == nil && !c.kind().published(&r) {
				err = fmt.Errorf("status %d body %q", r.status, r.body)
			}
			if err == nil && r.close && len(sends)+1 < c.Msgs {
				err = errors.New("server closed the publish connection")
			}
			if err != nil {
				if rerr == nil {
					rerr = err
				}
				if r.status == 0 || r.close {
					conn.Close() // unblock the writer
					return
				}
				continue
			}
			sends = append(sends, t)
			acks.RecordDuration(time.Since(t))
		}
	}()
	interval := float64(time.Second) / c.Rate
	start := time.Now()
	timer := time.NewTimer(time.Hour)
	timer.Stop() // unfired: Reset below starts it clean
	defer timer.Stop()
	var werr error
loop:
	for seq := 0; seq < c.Msgs; seq++ {
		// Message seq is due at start + seq/Rate; a late one is sent at
		// once (catching up), not dropped.
		if wait := time.Until(start.Add(time.Duration(float64(seq) * interval))); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				werr = ctx.Err()
				break loop
			case <-rdone:
				break loop
			case <-timer.C:
			}
		}
		t := time.Now()
		conn.SetWriteDeadline(t.Add(10 * time.Second))
		if _, err := conn.Write(c.pubRequest(host, fanPayload(seq, t.UnixNano(), c.Size))); err != nil {
			werr = err
			break
		}
		inflight <- t
		if c.sent != nil {
			c.sent.Add(1)
		}
	}
	close(inflight)
	<-rdone
	if rerr == nil {
		rerr = werr
	}
	return sends, acks, rerr
}

// missSummary names the messages most subscribers missed ("seq 17: 4000
// subscribers, …", at most 5), and the first and last message missed: a
// tail cut by the drain looks different from pushes lost in the middle.
func missSummary(bySeq []uint64) string {
	var seqs []int
	for q, n := range bySeq {
		if n > 0 {
			seqs = append(seqs, q)
		}
	}
	if len(seqs) == 0 {
		return "none"
	}
	first, last := seqs[0], seqs[len(seqs)-1]
	sort.SliceStable(seqs, func(i, j int) bool { return bySeq[seqs[i]] > bySeq[seqs[j]] })
	var b strings.Builder
	for i, q := range seqs[:min(5, len(seqs))] {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "seq %d: %d subscribers", q, bySeq[q])
	}
	fmt.Fprintf(&b, " (first seq missed %d, last %d, of 0..%d)", first, last, len(bySeq)-1)
	return b.String()
}

// cmdFanout is "bench fanout".
func cmdFanout(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench fanout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := fanoutConfig{}
	fs.StringVar(&c.Target, "target", "http://127.0.0.1:8080", "server base URL")
	fs.StringVar(&c.Kind, "kind", "halley", kindHelp)
	fs.IntVar(&c.Subs, "subs", 10000, "WebSocket subscribers on the one channel")
	fs.IntVar(&c.Msgs, "msgs", 200, "messages to publish")
	fs.Float64Var(&c.Rate, "rate", 20, "publish rate asked, messages/s (open loop)")
	fs.IntVar(&c.Size, "size", 100, "message bytes")
	fs.StringVar(&c.Key, "key", "", "Halley api_key (EZComet and Cometify)")
	fs.StringVar(&c.Secret, "secret", "", "Cometify api secret, to sign the pushes")
	fs.StringVar(&c.User, "user", "demo", "Halley username (qname <user>-<chan>0)")
	fs.StringVar(&c.Chan, "chan", "", "channel prefix (default: fresh per run)")
	fs.IntVar(&c.PID, "pid", 0, "server pid (optional): its CPU time per delivery (it and its direct children)")
	fs.IntVar(&c.PerProcess, "per-process", 18000, "subscribers per client process (fd limit 20000)")
	fs.IntVar(&c.PerIP, "per-ip", 20, "connections per loopback source address")
	fs.IntVar(&c.DialConc, "dial-conc", 64, "connections being opened at once per client process")
	fs.DurationVar(&c.OpenTimeout, "open-timeout", 2*time.Minute, "time allowed to open the subscribers")
	fs.DurationVar(&c.Grace, "grace", 2*time.Second, "rate kept: all delivered within this after the last publish")
	fs.DurationVar(&c.Drain, "drain", time.Minute, "wait at most this for deliveries after the publishing ended (last answer)")
	fs.DurationVar(&c.Quiet, "quiet", 5*time.Second, "stop waiting sooner when no frame arrived for this long (0: wait --drain)")
	fs.DurationVar(&c.MaxLife, "max-life", 10*time.Minute, "client processes exit by themselves after this")
	c.readerConfig.parentFlags(fs)
	jsonOut := fs.Bool("json", false, "print the result as one JSON line")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	res, err := runFanout(context.Background(), c, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "bench fanout:", err)
		return 1
	}
	if *jsonOut {
		printJSON(stdout, res)
	} else {
		printFanout(stdout, &c, &res)
	}
	if res.Missing > 0 || res.Duplicates > 0 || res.OutOfOrder > 0 || res.PubErrors > 0 {
		return 1
	}
	return 0
}

func printFanout(w io.Writer, c *fanoutConfig, res *fanoutResult) {
	fmt.Fprintf(w, "fanout %s %s: %d/%d subs open, %d msgs of %d B asked at %g/s\n", c.Kind, c.Target, res.Open, res.Subs, res.Msgs, c.Size, c.Rate)
	fmt.Fprintf(w, "  published %d (%d errors) at %.1f/s; rate kept: %v (last delivery %.0f ms after the last publish)\n",
		res.Published, res.PubErrors, res.PubRate, res.RateKept, res.LastAfterPub)
	fmt.Fprintf(w, "  %d deliveries, %.0f deliveries/s (%.1f msg/s per subscriber); missing %d, duplicates %d, out of order %d, bad frames %d\n",
		res.Deliveries, res.DeliveriesSec, res.DeliveredMsgs, res.Missing, res.Duplicates, res.OutOfOrder, res.Bad)
	fmt.Fprintf(w, "  per subscriber: %d to %d distinct messages\n", res.ListenerMin, res.ListenerMax)
	if res.MissedMsgs > 0 {
		fmt.Fprintf(w, "  missed by someone: %d messages; %s\n", res.MissedMsgs, missSummary(res.MissBySeq))
	}
	fmt.Fprintf(w, "  latency p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n", res.P50ms, res.P90ms, res.P99ms, res.MaxMs)
	fmt.Fprintf(w, "  publish answered after p50 %.2f ms  p99 %.2f ms\n", res.AckP50ms, res.AckP99ms)
	if c.PID > 0 {
		fmt.Fprintf(w, "  server CPU %.2f µs/delivery\n", res.CPUus)
	}
	if r := res.Storm; r != nil {
		fmt.Fprintf(w, "  storm after %d msgs: %d subscribers reset, %d reconnected (%d gave up, %d retries) in %.0f ms; all had the first %d msgs after %.0f ms (-1: not within the wait)\n",
			r.SentBefore, r.Dropped, r.Reconnected, r.GaveUp, r.Retries, r.ReconnectMs, r.CatchMsgs, r.CaughtMs)
	}
	for _, x := range res.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", x)
	}
}
