package bench

import (
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
	Reopened  int   `json:"reopened"`    // re-opens of failed or lost connections so far (--reopen)
	ServerRSS int64 `json:"server_rss"`  // bytes, pid and its direct children
	TCPMem    int64 `json:"tcp_mem"`     // bytes, /proc/net/sockstat TCP mem (whole machine)
	SlabBytes int64 `json:"socket_slab"` // bytes, socket slab caches (whole machine)
	ClientRSS int64 `json:"client_rss"`  // bytes, all client processes
}

// idleResult is what an idle measurement found; per-connection figures are
// slopes between the first and last step, on the counts actually held.
type idleResult struct {
	Kind               string      `json:"kind"`
	Mode               string      `json:"mode"`
	Procs              int         `json:"client_procs"`
	Steps              []idleStep  `json:"steps"`
	BytesPerConn       float64     `json:"bytes_per_conn"`
	KernelBytesPerConn float64     `json:"kernel_tcp_bytes_per_conn"`  // client and server sockets both
	SlabBytesPerConn   float64     `json:"kernel_slab_bytes_per_conn"` // client and server sockets both
	ClientBytesPerConn float64     `json:"client_bytes_per_conn"`
	ServerProcs        int         `json:"server_procs"`     // processes in the server's tree at the top count
	ServerFDsMin       int         `json:"server_fds_min"`   // open files of the server process holding the fewest, at the top count
	ServerFDsMax       int         `json:"server_fds_max"`   // and of the one holding the most (the limit is 20,000 each)
	Kernel             *kernelMem  `json:"kernel,omitempty"` // at the top count
	Short              bool        `json:"stopped_short"`    // fewer held than asked at the top count
	Push               *pushResult `json:"push,omitempty"`   // bench idle-cluster: the push that must reach every connection
	Warnings           []string    `json:"warnings,omitempty"`
}

type clientProc struct {
	failMsg string // the first "fail …" line: why a connection was never established
	lossMsg string // the first "lost …" line: why an established one ended
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	mu      sync.Mutex
	target  int
	stat    map[string]int
	exited  bool
	ready   chan struct{}
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
// after each settle, and stops the clients: runIdleMix with one group.
func runIdle(ctx context.Context, c idleConfig, log io.Writer) (idleResult, error) {
	if err := c.validate(); err != nil {
		return idleResult{Kind: c.Kind, Mode: c.Mode}, err
	}
	res, err := runIdleMix(ctx, mixConfig{idleConfig: c, Groups: []idleGroup{{Kind: c.Kind, Mode: c.Mode, QName: c.QName, Key: c.Key}}}, log)
	res.Kind, res.Mode = c.Kind, c.Mode
	return res, err
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
	reopenFlag(fs, &c.Reopen, 3)
	c.readerConfig.parentFlags(fs)
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
