package bench

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clientCommand returns the program and leading arguments that start a
// client process; tests replace it (their binary is not halley).
var clientCommand = func() (string, []string, []string, error) {
	exe, err := os.Executable()
	return exe, []string{"bench", "client"}, nil, err
}

// idleConfig describes one idle-memory measurement.
type idleConfig struct {
	clientConfig
	PID         int
	Counts      []int
	Settle      time.Duration
	OpenTimeout time.Duration
	PerProcess  int
}

// idleStep is one sample, taken after the connections settled.
type idleStep struct {
	Target    int   `json:"target"`
	Open      int   `json:"open"` // connections held when sampled
	Failed    int   `json:"failed"`
	Closed    int   `json:"closed"`
	ServerRSS int64 `json:"server_rss"`  // bytes, pid and its direct children
	TCPMem    int64 `json:"tcp_mem"`     // bytes, /proc/net/sockstat TCP mem (whole machine)
	SlabBytes int64 `json:"socket_slab"` // bytes, socket slab caches (whole machine)
	ClientRSS int64 `json:"client_rss"`  // bytes, all client processes
}

// idleResult is what an idle measurement found; per-connection figures are
// slopes between the first and last step, on the counts actually held.
type idleResult struct {
	Kind               string     `json:"kind"`
	Mode               string     `json:"mode"`
	Procs              int        `json:"client_procs"`
	Steps              []idleStep `json:"steps"`
	BytesPerConn       float64    `json:"bytes_per_conn"`
	KernelBytesPerConn float64    `json:"kernel_tcp_bytes_per_conn"`  // client and server sockets both
	SlabBytesPerConn   float64    `json:"kernel_slab_bytes_per_conn"` // client and server sockets both
	ClientBytesPerConn float64    `json:"client_bytes_per_conn"`
	Warnings           []string   `json:"warnings,omitempty"`
}

type clientProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	mu     sync.Mutex
	target int
	stat   map[string]int
	exited bool
	ready  chan struct{}
}

func (p *clientProc) get(k string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stat[k]
}

func (p *clientProc) gone() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

// awaitStart waits (bounded) for client process i to report ready, and
// fails if it did not start or exited at once.
func (p *clientProc) awaitStart(i int) error {
	select {
	case <-p.ready:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("client process %d did not start", i)
	}
	if p.gone() {
		return fmt.Errorf("client process %d exited at start", i)
	}
	return nil
}

// parseStatLine parses "stat k=v k=v ...".
func parseStatLine(line string) (map[string]int, bool) {
	rest, ok := strings.CutPrefix(line, "stat ")
	if !ok {
		return nil, false
	}
	m := map[string]int{}
	for _, f := range strings.Fields(rest) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			continue
		}
		m[k] = n
	}
	return m, true
}

// procTargets splits count over processes of at most per connections each,
// filling them in order.
func procTargets(count, per, procs int) []int {
	t := make([]int, procs)
	for i := range t {
		t[i] = min(max(count-i*per, 0), per)
	}
	return t
}

func (c *idleConfig) validate() error {
	if err := c.clientConfig.validate(); err != nil {
		return err
	}
	if c.PID <= 0 {
		return fmt.Errorf("--pid of the server is required")
	}
	if len(c.Counts) < 2 {
		return fmt.Errorf("--counts needs at least two counts")
	}
	if c.PerProcess < 1 || c.PerProcess > 19000 {
		return fmt.Errorf("--per-process must be 1..19000 (fd limit 20000 per process)")
	}
	return nil
}

// runIdle starts the client processes, grows through the counts, samples
// after each settle, and stops the clients.
func runIdle(ctx context.Context, c idleConfig, log io.Writer) (idleResult, error) {
	res := idleResult{Kind: c.Kind, Mode: c.Mode}
	log = &syncWriter{w: log}
	if err := c.validate(); err != nil {
		return res, err
	}
	if _, err := readRSS(c.PID); err != nil {
		return res, fmt.Errorf("server pid %d: %v", c.PID, err)
	}
	last := c.Counts[len(c.Counts)-1]
	nproc := (last + c.PerProcess - 1) / c.PerProcess
	res.Procs = nproc
	exe, pre, env, err := clientCommand()
	if err != nil {
		return res, err
	}
	procs := make([]*clientProc, nproc)
	defer stopClients(procs)
	for i := range procs {
		args := append(append([]string{}, pre...),
			"--target", c.Target, "--kind", c.Kind, "--mode", c.Mode, "--qname", c.QName, "--key", c.Key,
			"--per-ip", strconv.Itoa(c.PerIP), "--channels", strconv.Itoa(c.Channels),
			"--dial-conc", strconv.Itoa(c.DialConc), "--max-life", c.MaxLife.String(),
			"--lp-timeout", strconv.Itoa(c.Timeout),
			"--first-index", strconv.Itoa(i*c.PerProcess))
		cmd := exec.Command(exe, args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stderr = log
		p := &clientProc{cmd: cmd, stat: map[string]int{}, ready: make(chan struct{})}
		p.stdin, err = cmd.StdinPipe()
		if err != nil {
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
			sc := bufio.NewScanner(out)
			readyOnce := false
			for sc.Scan() {
				line := sc.Text()
				if line == "ready" && !readyOnce {
					readyOnce = true
					close(p.ready)
				}
				if m, ok := parseStatLine(line); ok {
					p.mu.Lock()
					p.stat = m
					p.mu.Unlock()
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
	for _, count := range c.Counts {
		targets := procTargets(count, c.PerProcess, nproc)
		for i, p := range procs {
			p.target = targets[i]
			if _, err := fmt.Fprintf(p.stdin, "open %d\n", targets[i]); err != nil {
				return res, fmt.Errorf("client process %d: %v", i, err)
			}
		}
		fmt.Fprintf(log, "idle %s %s: opening %d connections\n", c.Kind, c.Mode, count)
		deadline := time.Now().Add(c.OpenTimeout)
		for {
			done := true
			for i, p := range procs {
				if p.gone() {
					return res, fmt.Errorf("client process %d exited", i)
				}
				if p.get("open")+p.get("failed")+p.get("closed") < p.target || p.get("target") < p.target {
					done = false
				}
			}
			if done {
				break
			}
			if time.Now().After(deadline) {
				res.Warnings = append(res.Warnings, fmt.Sprintf("count %d not reached in %v", count, c.OpenTimeout))
				break
			}
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(c.Settle):
		}
		s := idleStep{Target: count}
		time.Sleep(300 * time.Millisecond) // let the last stat line arrive
		for _, p := range procs {
			s.Open += p.get("open")
			s.Failed += p.get("failed")
			s.Closed += p.get("closed")
			if r, err := readRSS(p.cmd.Process.Pid); err == nil {
				s.ClientRSS += r
			}
		}
		if s.ServerRSS, err = treeRSS(c.PID); err != nil {
			return res, fmt.Errorf("server RSS: %v", err)
		}
		s.TCPMem, _ = readTCPMemBytes()
		s.SlabBytes = readSocketSlabBytes()
		if s.Failed > 0 || s.Closed > 0 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("at %d: %d failed, %d closed", count, s.Failed, s.Closed))
		}
		fmt.Fprintf(log, "idle %s %s: %d open (%d failed, %d closed), server RSS %d KiB, TCP mem %d KiB, clients RSS %d KiB\n",
			c.Kind, c.Mode, s.Open, s.Failed, s.Closed, s.ServerRSS>>10, s.TCPMem>>10, s.ClientRSS>>10)
		res.Steps = append(res.Steps, s)
	}
	a, b := res.Steps[0], res.Steps[len(res.Steps)-1]
	if res.BytesPerConn, err = slope(a.ServerRSS, b.ServerRSS, a.Open, b.Open); err != nil {
		return res, fmt.Errorf("no growth between counts: %v", err)
	}
	res.KernelBytesPerConn, _ = slope(a.TCPMem, b.TCPMem, a.Open, b.Open)
	res.SlabBytesPerConn, _ = slope(a.SlabBytes, b.SlabBytes, a.Open, b.Open)
	res.ClientBytesPerConn, _ = slope(a.ClientRSS, b.ClientRSS, a.Open, b.Open)
	return res, nil
}

// stopClients asks every client to quit, then kills those still running
// after a few seconds (each by its own pid).
func stopClients(procs []*clientProc) {
	for _, p := range procs {
		if p != nil {
			fmt.Fprintln(p.stdin, "quit")
			p.stdin.Close()
		}
	}
	for _, p := range procs {
		if p == nil {
			continue
		}
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
	}
}

// cmdIdle is "bench idle".
func cmdIdle(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench idle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c idleConfig
	clientFlags(fs, &c.clientConfig)
	c.QName = ""
	fs.IntVar(&c.PID, "pid", 0, "server pid: RSS of it and its direct children (nginx master + workers)")
	counts := fs.String("counts", "2000,18000", "connection counts to sample (slope between first and last)")
	fs.DurationVar(&c.Settle, "settle", 10*time.Second, "idle time before each sample")
	fs.DurationVar(&c.OpenTimeout, "open-timeout", 2*time.Minute, "time allowed to reach each count")
	fs.IntVar(&c.PerProcess, "per-process", 18000, "connections per client process (fd limit 20000)")
	user := fs.String("user", "demo", "Halley username; the default --qname is <user>-bench<fresh>")
	jsonOut := fs.Bool("json", false, "print the result as one JSON line")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	var err error
	if c.Counts, err = parseCounts(*counts); err != nil {
		fmt.Fprintln(stderr, "bench idle:", err)
		return 2
	}
	if !flagSet(fs, "qname") {
		c.QName = *user + "-" + freshPrefix() + "c"
	}
	res, err := runIdle(context.Background(), c, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "bench idle:", err)
		return 1
	}
	if *jsonOut {
		printJSON(stdout, res)
	} else {
		printIdle(stdout, &c, &res)
	}
	return 0
}

func printIdle(w io.Writer, c *idleConfig, res *idleResult) {
	fmt.Fprintf(w, "idle %s %s %s (server pid %d, %d client process(es)):\n", c.Kind, c.Mode, c.Target, c.PID, res.Procs)
	for _, s := range res.Steps {
		fmt.Fprintf(w, "  %6d open  server RSS %9d KiB  kernel TCP %7d KiB  slabs %7d KiB  clients RSS %9d KiB\n",
			s.Open, s.ServerRSS>>10, s.TCPMem>>10, s.SlabBytes>>10, s.ClientRSS>>10)
	}
	fmt.Fprintf(w, "  server  %.0f B/conn (RSS slope)\n", res.BytesPerConn)
	fmt.Fprintf(w, "  kernel  %.0f B/conn TCP buffers + %.0f B/conn socket slabs (client and server sockets together)\n",
		res.KernelBytesPerConn, res.SlabBytesPerConn)
	fmt.Fprintf(w, "  clients %.0f B/conn\n", res.ClientBytesPerConn)
	for _, x := range res.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", x)
	}
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

// syncWriter serialises writes from the client processes' stderr copiers.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
