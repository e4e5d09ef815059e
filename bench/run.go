package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// runConfig is "bench run": every case Runs times, Halley on a fresh server
// each run, Nchan (when asked) restarted each run, medians side by side.
type runConfig struct {
	HalleyCmd     string
	HalleyURL     string
	Key, User     string
	Secret        string // Cometify: the account's api_secret
	CFKey         string // Cometify: the account's public cf_api_key
	Note          string // written beside every case's results
	Nchan         bool
	NchanDir      string
	NchanURL      string
	Runs          int
	Cases         []string
	Out           string
	Counts        []int
	Settle        time.Duration
	PerProcess    int
	WriteDuration time.Duration
	WriteConns    int
	Channels      int
	Size          int
	RunTimeout    time.Duration
}

// allCases run by default. A "cf-" in a name is the same case on Halley's
// Cometify API instead of EZComet; its Nchan side is the EZComet case's.
var allCases = []string{"idle-ws", "idle-longpoll", "idle-cf-ws", "idle-cf-longpoll", "write-synced", "write-nosync", "publish-nchan"}

// extraCases run only when named in --cases: each run of them opens up to
// 10,000 subscribers and lasts ~30 s, which would make "make bench" long.
var extraCases = []string{"fanout-10k", "fanout-1k", "cf-fanout-10k", "storm-cf"}

// stormMetrics are the rows of storm-cf (PERF.md P6; Halley only: Nchan
// has no resume by push id in this form).
var stormMetrics = []metric{
	{"reconnect_ms", "reset → all listeners open again, ms"},
	{"caught_ms", "reset → all have every push sent by then, ms"},
	{"dropped", "listeners reset"},
	{"reconnected", "listeners reconnected"},
	{"gave_up", "listeners that could not reconnect"},
	{"retries", "reconnect attempts refused and retried"},
	{"missing", "lost pushes (all listeners)"},
	{"duplicates", "repeated pushes (all listeners)"},
	{"out_of_order", "out-of-order pushes (push id)"},
	{"listener_min", "fewest pushes one listener got"},
	{"listener_max", "most pushes one listener got"},
	{"p99_ms", "p99 latency, ms (the resumed pushes included)"},
	{"server_cpu_us", "server CPU, µs/delivery"},
}

// fanoutCases are the fan-out cases: subscribers, messages, rate (PERF.md P2, P3).
var fanoutCases = map[string]struct {
	subs, msgs int
	rate       float64
}{
	"fanout-10k":    {10000, 200, 20},
	"fanout-1k":     {1000, 2000, 500},
	"cf-fanout-10k": {10000, 200, 20},
}

var fanoutMetrics = []metric{
	{"deliveries_per_sec", "deliveries/s"},
	{"delivered_msgs_per_sec", "deliveries/s per subscriber (msg/s kept up)"},
	{"rate_kept", "rate kept (1 = yes)"},
	{"publish_rate", "publish rate achieved, msg/s"},
	{"p50_ms", "p50 latency, ms"},
	{"p90_ms", "p90 latency, ms"},
	{"p99_ms", "p99 latency, ms"},
	{"max_ms", "max latency, ms"},
	{"last_after_pub_ms", "last delivery after last publish, ms"},
	{"server_cpu_us", "server CPU, µs/delivery"},
	{"missing", "missing deliveries"},
	{"duplicates", "duplicate deliveries"},
	{"out_of_order", "out-of-order deliveries (seq, Cometify push id)"},
	{"missed_msgs", "messages some subscriber missed"},
	{"listener_min", "fewest messages one subscriber got"},
	{"listener_max", "most messages one subscriber got"},
	{"open", "subscribers open"},
}

// metric is one row of a case's table.
type metric struct {
	key, label string
}

var idleMetrics = []metric{
	{"bytes_per_conn", "server RSS slope, B/conn"},
	{"kernel_tcp_bytes_per_conn", "kernel TCP buffers, B/conn (client+server)"},
	{"kernel_slab_bytes_per_conn", "kernel socket slabs, B/conn (client+server)"},
	{"client_bytes_per_conn", "bench client RSS, B/conn"},
	{"open", "connections held at the top count"},
}

var writeMetrics = []metric{
	{"req_per_sec", "req/s"},
	{"p50_ms", "p50 latency, ms"},
	{"p90_ms", "p90 latency, ms"},
	{"p99_ms", "p99 latency, ms"},
	{"max_ms", "max latency, ms"},
	{"server_cpu_us", "server CPU, µs/request"},
	{"errors", "errors (non-2xx, bad answer, broken conn)"},
}

// side is one server's runs of one case.
type side struct {
	Runs   []map[string]float64 `json:"runs"`
	Median map[string]float64   `json:"median"`
	Errors []string             `json:"errors,omitempty"`
}

func (s *side) add(m map[string]float64, err error) {
	if err != nil {
		s.Errors = append(s.Errors, err.Error())
		return
	}
	s.Runs = append(s.Runs, m)
}

func (s *side) finish(ms []metric) {
	s.Median = map[string]float64{}
	for _, m := range ms {
		var v []float64
		for _, r := range s.Runs {
			if x, ok := r[m.key]; ok {
				v = append(v, x)
			}
		}
		if len(v) > 0 {
			s.Median[m.key] = median(v)
		}
	}
}

// median of the values (mean of the middle two for an even count).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// caseResult is one case: the JSON line and the Markdown table.
type caseResult struct {
	Case      string             `json:"case"`
	Time      string             `json:"time"`
	Command   string             `json:"command"` // the harness command, repeatable by hand
	HalleyCmd string             `json:"halley_cmd,omitempty"`
	NchanCmd  string             `json:"nchan_cmd,omitempty"`
	Halley    *side              `json:"halley,omitempty"`
	Nchan     *side              `json:"nchan,omitempty"`
	Ratio     map[string]float64 `json:"ratio_halley_over_nchan,omitempty"`
	Machine   string             `json:"machine,omitempty"` // CPUs and load average at the start and end of the case
	Note      string             `json:"note,omitempty"`    // --note: what the numbers need beside them
	metrics   []metric
}

// machineLoad is "N CPUs, load average A B C": the machine is shared, and
// a case's numbers mean little without what else was running.
func machineLoad() string {
	s := fmt.Sprintf("%d CPUs", runtime.NumCPU())
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			s += ", load average " + strings.Join(f[:3], " ")
		}
	}
	return s
}

func (c *caseResult) finish() {
	if c.Halley != nil {
		c.Halley.finish(c.metrics)
	}
	if c.Nchan != nil {
		c.Nchan.finish(c.metrics)
	}
	if c.Halley != nil && c.Nchan != nil {
		c.Ratio = map[string]float64{}
		for k, h := range c.Halley.Median {
			// Only where both are positive: a ratio of machine-wide noise
			// around zero (kernel figures) means nothing.
			if n, ok := c.Nchan.Median[k]; ok && n > 0 && h > 0 {
				c.Ratio[k] = h / n
			}
		}
	}
}

func fmtNum(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100 || v <= -100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1 || v <= -1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// markdown renders the case as a table, Halley and Nchan side by side.
func (c *caseResult) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n%s. Harness: `%s`\n\n", c.Case, c.Time, c.Command)
	if c.HalleyCmd != "" {
		fmt.Fprintf(&b, "Halley: `%s` (fresh server and data directory each run)\n\n", c.HalleyCmd)
	}
	if c.NchanCmd != "" {
		fmt.Fprintf(&b, "Nchan: `%s` (restarted each run)\n\n", c.NchanCmd)
	}
	if c.Machine != "" {
		fmt.Fprintf(&b, "Machine: %s (client and server share the CPUs).\n\n", c.Machine)
	}
	if c.Note != "" {
		fmt.Fprintf(&b, "Note: %s\n\n", c.Note)
	}
	cols := []string{"metric"}
	var sides []*side
	if c.Halley != nil {
		cols = append(cols, fmt.Sprintf("Halley (median of %d)", len(c.Halley.Runs)))
		sides = append(sides, c.Halley)
	}
	if c.Nchan != nil {
		cols = append(cols, fmt.Sprintf("Nchan (median of %d)", len(c.Nchan.Runs)))
		sides = append(sides, c.Nchan)
	}
	if c.Ratio != nil {
		cols = append(cols, "Halley / Nchan")
	}
	fmt.Fprintf(&b, "| %s |\n|%s\n", strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
	for _, m := range c.metrics {
		row := []string{m.label}
		for _, s := range sides {
			if v, ok := s.Median[m.key]; ok {
				row = append(row, fmtNum(v))
			} else {
				row = append(row, "–")
			}
		}
		if c.Ratio != nil {
			if v, ok := c.Ratio[m.key]; ok {
				row = append(row, fmt.Sprintf("%.2f×", v))
			} else {
				row = append(row, "–")
			}
		}
		fmt.Fprintf(&b, "| %s |\n", strings.Join(row, " | "))
	}
	for _, x := range []struct {
		name string
		s    *side
	}{{"Halley", c.Halley}, {"Nchan", c.Nchan}} {
		if x.s == nil {
			continue
		}
		fmt.Fprintf(&b, "\n%s runs:", x.name)
		for _, r := range x.s.Runs {
			fmt.Fprintf(&b, " %s;", fmtNum(r[c.metrics[0].key]))
		}
		fmt.Fprintf(&b, " (%s)\n", c.metrics[0].label)
		for _, e := range x.s.Errors {
			fmt.Fprintf(&b, "\n- %s run failed: %s\n", x.name, strings.ReplaceAll(e, "\n", " "))
		}
	}
	return b.String()
}

// syncBuffer keeps the first max bytes of a server's output.
type syncBuffer struct {
	mu  sync.Mutex
	b   bytes.Buffer
	max int
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if room := s.max - s.b.Len(); room > 0 {
		s.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// halleyServer is one started Halley.
type halleyServer struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	tmp  string
	done chan struct{}
}

// listenURL finds --listen ADDR (or --listen=ADDR) in a command line.
func listenURL(args []string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--listen="); ok {
			return "http://" + v
		}
		if (a == "--listen" || a == "-listen") && i+1 < len(args) {
			return "http://" + args[i+1]
		}
	}
	return "http://127.0.0.1:8080"
}

// halleyArgs splits the command line, puts a fresh directory in place of
// {tmp}, and appends extra flags.
func halleyArgs(cmdline, tmp string, extra []string) []string {
	f := strings.Fields(cmdline)
	for i := range f {
		f[i] = strings.ReplaceAll(f[i], "{tmp}", tmp)
	}
	return append(f, extra...)
}

var keyRE = regexp.MustCompile(`\b[0-9a-f]{32}\b`)

// startHalley starts the server and waits for /healthz.
func startHalley(cmdline string, extra []string, url string) (*halleyServer, error) {
	tmp, err := os.MkdirTemp("", "halley-bench-")
	if err != nil {
		return nil, err
	}
	args := halleyArgs(cmdline, tmp, extra)
	if len(args) == 0 {
		return nil, fmt.Errorf("empty --halley-cmd")
	}
	s := &halleyServer{cmd: exec.Command(args[0], args[1:]...), out: &syncBuffer{max: 64 << 10}, tmp: tmp, done: make(chan struct{})}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	cl := http.Client{Timeout: time.Second}
	for {
		select {
		case <-s.done:
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("halley exited at start: %s", lastLines(s.out.String(), 5))
		default:
		}
		resp, err := cl.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("halley not healthy at %s/healthz after 30s: %s", url, lastLines(s.out.String(), 5))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}

// stop sends SIGTERM, then SIGKILL after 10 s, to this server's own pid.
func (s *halleyServer) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	os.RemoveAll(s.tmp)
}

const nchanPidFile = "/tmp/nchan-run/nginx.pid"

// startNchan runs start.sh and returns the master pid once the port answers.
func startNchan(dir, url string) (int, error) {
	out, err := exec.Command("sh", filepath.Join(dir, "start.sh")).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("nchan start.sh: %v: %s", err, bytes.TrimSpace(out))
	}
	b, err := os.ReadFile(nchanPidFile)
	if err != nil {
		return 0, err
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil {
		return 0, fmt.Errorf("nchan pid file: %v", err)
	}
	addr, _, _ := hostPort(url)
	for i := 0; i < 100; i++ {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return pid, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopNchan(dir)
	return 0, fmt.Errorf("nchan not answering at %s", url)
}

func stopNchan(dir string) {
	exec.Command("sh", filepath.Join(dir, "stop.sh")).Run()
}

// runner runs the cases.
type runner struct {
	c   runConfig
	log io.Writer
	// peers are Nchan's runs by the case that measured them ("idle-ws",
	// "fanout-10k", "publish-nchan"): a Cometify case has the same Nchan
	// side as its EZComet twin, and the write cases share publish-nchan,
	// so Nchan is measured once per invocation for each.
	peers map[string]peerRuns
}

// peerRuns is one Nchan measurement and the case that made it.
type peerRuns struct {
	caseName string
	s        *side
}

// credentials are what a fresh Halley prints for its demo account: the
// private api_key (EZComet writes), the public cf_api_key (Cometify paths
// and signatures) and the secret.
type credentials struct {
	key, cfKey, secret string
}

// keyFor is the key a case of kind puts in its requests.
func (c credentials) keyFor(kind string) string {
	if kind == "cometify" {
		return c.cfKey
	}
	return c.key
}

// caseAPI splits a case name into the Halley API it measures and the
// EZComet case it mirrors: "idle-cf-ws" → cometify, "idle-ws";
// "fanout-10k" → halley, "fanout-10k". The Nchan side of a case is that of
// its mirror.
func caseAPI(name string) (kind, mirror string) {
	if m := strings.Replace(name, "cf-", "", 1); m != name {
		return "cometify", m
	}
	return "halley", name
}

func (r *runner) idleOnce(ctx context.Context, kind, mode string, pid int, target string, cred credentials) (map[string]float64, error) {
	qname := r.c.User + "-" + freshPrefix() + "c"
	switch kind {
	case "cometify":
		if cred.cfKey == "" {
			return nil, fmt.Errorf("no cf_api_key: pass --cf-key (none found in the server's output)")
		}
		qname = freshPrefix() + "c"
	case "nchan":
		qname = "nchan-" + freshPrefix() + "c"
	}
	ic := idleConfig{
		clientConfig: clientConfig{Target: target, Kind: kind, Mode: mode, QName: qname, Key: cred.keyFor(kind), PerIP: 20,
			Channels: r.c.Channels, DialConc: 64, MaxLife: r.c.RunTimeout + 30*time.Second, Timeout: 120},
		PID: pid, Counts: r.c.Counts, Settle: r.c.Settle, OpenTimeout: 2 * time.Minute, PerProcess: r.c.PerProcess,
	}
	res, err := runIdle(ctx, ic, r.log)
	if err != nil {
		return nil, err
	}
	last := res.Steps[len(res.Steps)-1]
	m := map[string]float64{
		"bytes_per_conn":             res.BytesPerConn,
		"kernel_tcp_bytes_per_conn":  res.KernelBytesPerConn,
		"kernel_slab_bytes_per_conn": res.SlabBytesPerConn,
		"client_bytes_per_conn":      res.ClientBytesPerConn,
		"open":                       float64(last.Open),
	}
	if last.Open < last.Target*99/100 {
		return m, fmt.Errorf("only %d of %d connections held (%v)", last.Open, last.Target, res.Warnings)
	}
	return m, nil
}

func (r *runner) writeOnce(ctx context.Context, kind, target string, pid int, key, user string) (map[string]float64, error) {
	wc := writeConfig{Target: target, Kind: kind, Conns: r.c.WriteConns, Duration: r.c.WriteDuration,
		Channels: r.c.Channels, Size: r.c.Size, Key: key, User: user, ChanPrefix: freshPrefix(), PID: pid}
	res, err := runWrite(ctx, wc)
	if err != nil {
		return nil, err
	}
	m := map[string]float64{"req_per_sec": res.ReqPerSec, "p50_ms": res.P50ms, "p90_ms": res.P90ms,
		"p99_ms": res.P99ms, "max_ms": res.MaxMs, "errors": float64(res.Errors + res.IOErrors), "server_cpu_us": res.CPUus}
	if res.Errors > 0 {
		return m, fmt.Errorf("%d errors, first: %s", res.Errors, res.FirstErr)
	}
	return m, nil
}

// stormOnce is one run of storm-cf on Halley's Cometify API.
func (r *runner) stormOnce(ctx context.Context, pid int, cred credentials) (map[string]float64, error) {
	if cred.cfKey == "" || cred.secret == "" {
		return nil, fmt.Errorf("no cf_api_key and api_secret: pass --cf-key and --secret (not found in the server's output)")
	}
	c := stormDefaults()
	c.Target, c.Key, c.Secret, c.PID, c.Size = r.c.HalleyURL, cred.cfKey, cred.secret, pid, r.c.Size
	c.MaxLife = r.c.RunTimeout + 30*time.Second
	res, err := runFanout(ctx, c, r.log)
	if err != nil {
		return nil, err
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(r.log, "storm: warning: %s\n", w)
	}
	s := res.Storm
	m := map[string]float64{"reconnect_ms": s.ReconnectMs, "caught_ms": s.CaughtMs, "dropped": float64(s.Dropped),
		"reconnected": float64(s.Reconnected), "gave_up": float64(s.GaveUp), "retries": float64(s.Retries),
		"missing": float64(res.Missing), "duplicates": float64(res.Duplicates), "out_of_order": float64(res.OutOfOrder),
		"listener_min": float64(res.ListenerMin), "listener_max": float64(res.ListenerMax), "p99_ms": res.P99ms,
		"server_cpu_us": res.CPUus}
	if !stormOK(&res) {
		return m, fmt.Errorf("storm not recovered: %+v, missing %d, duplicates %d, out of order %d, publish errors %d",
			*s, res.Missing, res.Duplicates, res.OutOfOrder, res.PubErrors)
	}
	return m, nil
}

func (r *runner) fanoutOnce(ctx context.Context, name, kind, target string, pid int, cred credentials) (map[string]float64, error) {
	fc := fanoutCases[name]
	c := fanoutConfig{Target: target, Kind: kind, Subs: fc.subs, Msgs: fc.msgs, Rate: fc.rate, Size: r.c.Size,
		Key: cred.keyFor(kind), Secret: cred.secret, User: r.c.User, PID: pid, PerProcess: r.c.PerProcess, PerIP: 20, DialConc: 64,
		OpenTimeout: 2 * time.Minute, Grace: 2 * time.Second, Drain: time.Minute, Quiet: 5 * time.Second, MaxLife: r.c.RunTimeout + 30*time.Second}
	switch {
	case kind == "halley" && c.Key == "":
		return nil, fmt.Errorf("no api_key: pass --key (none found in the server's output)")
	case kind == "cometify" && (c.Key == "" || c.Secret == ""):
		return nil, fmt.Errorf("no cf_api_key and api_secret: pass --cf-key and --secret (not found in the server's output)")
	}
	res, err := runFanout(ctx, c, r.log)
	if err != nil {
		return nil, err
	}
	kept := 0.0
	if res.RateKept {
		kept = 1
	}
	m := map[string]float64{"deliveries_per_sec": res.DeliveriesSec, "delivered_msgs_per_sec": res.DeliveredMsgs,
		"rate_kept": kept, "publish_rate": res.PubRate, "p50_ms": res.P50ms, "p90_ms": res.P90ms, "p99_ms": res.P99ms,
		"max_ms": res.MaxMs, "last_after_pub_ms": res.LastAfterPub, "server_cpu_us": res.CPUus,
		"missing": float64(res.Missing), "duplicates": float64(res.Duplicates), "out_of_order": float64(res.OutOfOrder),
		"listener_min": float64(res.ListenerMin), "listener_max": float64(res.ListenerMax), "open": float64(res.Open),
		"missed_msgs": float64(res.MissedMsgs)}
	for _, w := range res.Warnings {
		fmt.Fprintf(r.log, "fanout %s: warning: %s\n", kind, w)
	}
	if res.MissedMsgs > 0 {
		fmt.Fprintf(r.log, "fanout %s: missed by someone: %s\n", kind, missSummary(res.MissBySeq))
	}
	if res.PubErrors > 0 {
		return m, fmt.Errorf("%d publish errors (%v)", res.PubErrors, res.Warnings)
	}
	if res.Open < c.Subs*99/100 {
		return m, fmt.Errorf("only %d of %d subscribers open (%v)", res.Open, c.Subs, res.Warnings)
	}
	return m, nil
}

var (
	secretRE = regexp.MustCompile(`api_secret[=: ]+([A-Za-z0-9_-]{8,})`)
	cfKeyRE  = regexp.MustCompile(`cf_api_key[=: ]+([0-9a-f]{32})`)
)

// serverCredentials are --key/--cf-key/--secret, else the demo account's
// as a fresh server prints them ("created account demo: api_key=…
// cf_api_key=… api_secret=…").
func (r *runner) serverCredentials(out string) credentials {
	cr := credentials{key: r.c.Key, cfKey: r.c.CFKey, secret: r.c.Secret}
	if cr.key == "" {
		cr.key = keyRE.FindString(out)
	}
	if m := cfKeyRE.FindStringSubmatch(out); cr.cfKey == "" && m != nil {
		cr.cfKey = m[1]
	}
	if m := secretRE.FindStringSubmatch(out); cr.secret == "" && m != nil {
		cr.secret = m[1]
	}
	return cr
}

// halleyRun starts a fresh Halley, runs f against it, and stops it.
func (r *runner) halleyRun(ctx context.Context, extra []string, f func(ctx context.Context, pid int, cred credentials) (map[string]float64, error)) (map[string]float64, error) {
	if r.c.HalleyCmd == "" {
		return nil, fmt.Errorf("no --halley-cmd")
	}
	s, err := startHalley(r.c.HalleyCmd, extra, r.c.HalleyURL)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	ctx, cancel := context.WithTimeout(ctx, r.c.RunTimeout)
	defer cancel()
	return f(ctx, s.cmd.Process.Pid, r.serverCredentials(s.out.String()))
}

// nchanRun restarts Nchan, runs f against it, and stops it.
func (r *runner) nchanRun(ctx context.Context, f func(ctx context.Context, pid int) (map[string]float64, error)) (map[string]float64, error) {
	pid, err := startNchan(r.c.NchanDir, r.c.NchanURL)
	if err != nil {
		return nil, err
	}
	defer stopNchan(r.c.NchanDir)
	ctx, cancel := context.WithTimeout(ctx, r.c.RunTimeout)
	defer cancel()
	return f(ctx, pid)
}

func (r *runner) harnessCmd(name string) string {
	c := r.c
	kind, mirror := caseAPI(name)
	halley := "--key K --user U"
	if kind == "cometify" {
		halley = "--kind cometify --key K --secret S"
	}
	switch mirror {
	case "idle-ws", "idle-longpoll":
		counts := make([]string, len(c.Counts))
		for i, n := range c.Counts {
			counts[i] = fmt.Sprint(n)
		}
		if kind == "cometify" {
			halley = "--kind cometify --key K"
		} else {
			halley = "--user U"
		}
		return fmt.Sprintf("halley bench idle --mode %s --counts %s --settle %v --per-process %d --channels %d --target URL --pid PID [%s | --kind nchan]",
			strings.TrimPrefix(mirror, "idle-"), strings.Join(counts, ","), c.Settle, c.PerProcess, c.Channels, halley)
	case "storm-cf":
		d := stormDefaults()
		return fmt.Sprintf("halley bench storm --subs %d --msgs %d --rate %g --at %v --size %d --per-process %d --dial-conc %d --target URL --pid PID --key K --secret S",
			d.Subs, d.Msgs, d.Rate, d.StormAt, c.Size, d.PerProcess, d.DialConc)
	case "fanout-10k", "fanout-1k":
		fc := fanoutCases[name]
		return fmt.Sprintf("halley bench fanout --subs %d --msgs %d --rate %g --size %d --per-process %d --target URL --pid PID [%s | --kind nchan]",
			fc.subs, fc.msgs, fc.rate, c.Size, c.PerProcess, halley)
	default:
		return fmt.Sprintf("halley bench write --conns %d --duration %v --channels %d --size %d --target URL --pid PID [--key K --user U | --kind nchan]",
			c.WriteConns, c.WriteDuration, c.Channels, c.Size)
	}
}

// sideBySide runs a case's Halley and Nchan sides in turn, Runs times:
// Halley fresh for every run, Nchan restarted for every run. The Nchan side
// is the peer runs of mirror: measured here unless an earlier case of this
// invocation measured them already.
func (r *runner) sideBySide(ctx context.Context, cr *caseResult, mirror string,
	halley func(ctx context.Context, pid int, cred credentials) (map[string]float64, error),
	nchan func(ctx context.Context, pid int) (map[string]float64, error)) {
	c := &r.c
	nchanCmd := filepath.Join(c.NchanDir, "start.sh") + " (1 worker), " + c.NchanURL
	if c.HalleyCmd != "" {
		cr.HalleyCmd, cr.Halley = c.HalleyCmd, &side{}
	}
	measureNchan := false
	if c.Nchan {
		if p, ok := r.peers[mirror]; ok {
			cr.NchanCmd, cr.Nchan = nchanCmd+" — the Nchan runs of "+p.caseName+" in this invocation", p.s
		} else {
			cr.NchanCmd, cr.Nchan, measureNchan = nchanCmd, &side{}, true
		}
	}
	for i := 0; i < c.Runs && ctx.Err() == nil; i++ {
		if cr.Halley != nil {
			fmt.Fprintf(r.log, "== %s run %d/%d: halley\n", cr.Case, i+1, c.Runs)
			cr.Halley.add(r.halleyRun(ctx, nil, halley))
		}
		if measureNchan {
			fmt.Fprintf(r.log, "== %s run %d/%d: nchan\n", cr.Case, i+1, c.Runs)
			cr.Nchan.add(r.nchanRun(ctx, nchan))
		}
	}
	if measureNchan {
		r.peers[mirror] = peerRuns{cr.Case, cr.Nchan}
	}
}

func (r *runner) runCase(ctx context.Context, name string) (*caseResult, error) {
	c := &r.c
	cr := &caseResult{Case: name, Time: time.Now().UTC().Format(time.RFC3339), Command: r.harnessCmd(name),
		Machine: "at start " + machineLoad(), Note: r.c.Note}
	nchanCmd := filepath.Join(c.NchanDir, "start.sh") + " (1 worker), " + c.NchanURL
	halleyCmd := c.HalleyCmd
	kind, mirror := caseAPI(name)
	switch mirror {
	case "idle-ws", "idle-longpoll":
		mode := strings.TrimPrefix(mirror, "idle-")
		cr.metrics = idleMetrics
		r.sideBySide(ctx, cr, mirror,
			func(ctx context.Context, pid int, cred credentials) (map[string]float64, error) {
				return r.idleOnce(ctx, kind, mode, pid, c.HalleyURL, cred)
			},
			func(ctx context.Context, pid int) (map[string]float64, error) {
				return r.idleOnce(ctx, "nchan", mode, pid, c.NchanURL, credentials{})
			})
	case "write-synced", "write-nosync":
		cr.metrics = writeMetrics
		var extra []string
		if name == "write-nosync" {
			extra = []string{"--sync=none"}
			halleyCmd += " --sync=none"
		}
		cr.HalleyCmd, cr.Halley = halleyCmd, &side{}
		for i := 0; i < c.Runs && ctx.Err() == nil; i++ {
			fmt.Fprintf(r.log, "== %s run %d/%d: halley\n", name, i+1, c.Runs)
			cr.Halley.add(r.halleyRun(ctx, extra, func(ctx context.Context, pid int, cred credentials) (map[string]float64, error) {
				if cred.key == "" {
					return nil, fmt.Errorf("no api_key: pass --key (none found in the server's output)")
				}
				return r.writeOnce(ctx, "halley", c.HalleyURL, pid, cred.key, c.User)
			}))
		}
		if c.Nchan {
			cr.NchanCmd, cr.Nchan = nchanCmd+" — the publish-nchan runs of this invocation", r.publishNchan(ctx)
		}
	case "fanout-10k", "fanout-1k":
		cr.metrics = fanoutMetrics
		r.sideBySide(ctx, cr, mirror,
			func(ctx context.Context, pid int, cred credentials) (map[string]float64, error) {
				return r.fanoutOnce(ctx, name, kind, c.HalleyURL, pid, cred)
			},
			func(ctx context.Context, pid int) (map[string]float64, error) {
				return r.fanoutOnce(ctx, name, "nchan", c.NchanURL, pid, credentials{})
			})
	case "storm-cf":
		cr.metrics = stormMetrics
		cr.HalleyCmd, cr.Halley = halleyCmd, &side{}
		for i := 0; i < c.Runs && ctx.Err() == nil; i++ {
			fmt.Fprintf(r.log, "== %s run %d/%d: halley\n", name, i+1, c.Runs)
			cr.Halley.add(r.halleyRun(ctx, nil, func(ctx context.Context, pid int, cred credentials) (map[string]float64, error) {
				return r.stormOnce(ctx, pid, cred)
			}))
		}
	case "publish-nchan":
		if !c.Nchan {
			return nil, nil
		}
		cr.metrics = writeMetrics
		cr.NchanCmd, cr.Nchan = nchanCmd, r.publishNchan(ctx)
	default:
		return nil, fmt.Errorf("unknown case %q (cases: %s)", name, strings.Join(append(allCases, extraCases...), ","))
	}
	cr.Machine += "; at end " + machineLoad()
	cr.finish()
	return cr, nil
}

// publishNchan measures the Nchan publish case once per invocation.
func (r *runner) publishNchan(ctx context.Context) *side {
	if p, ok := r.peers["publish-nchan"]; ok {
		return p.s
	}
	s := &side{}
	for i := 0; i < r.c.Runs && ctx.Err() == nil; i++ {
		fmt.Fprintf(r.log, "== publish-nchan run %d/%d\n", i+1, r.c.Runs)
		s.add(r.nchanRun(ctx, func(ctx context.Context, pid int) (map[string]float64, error) {
			return r.writeOnce(ctx, "nchan", r.c.NchanURL, pid, "", "")
		}))
	}
	s.finish(writeMetrics)
	r.peers["publish-nchan"] = peerRuns{"publish-nchan", s}
	return s
}

func (r *runner) save(cr *caseResult) error {
	if err := os.MkdirAll(r.c.Out, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.c.Out, cr.Case+".md"), []byte(cr.markdown()), 0o644); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(r.c.Out, "results.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(cr)
	_, err = fmt.Fprintf(f, "%s\n", b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func parseRunArgs(args []string, stderr io.Writer) (runConfig, error) {
	fs := flag.NewFlagSet("bench run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c runConfig
	fs.StringVar(&c.HalleyCmd, "halley-cmd", "", `server command, e.g. "bin/halley serve --data {tmp} --listen 127.0.0.1:18080" ({tmp}: a fresh directory per run)`)
	fs.StringVar(&c.HalleyURL, "halley-url", "", "Halley base URL (default: from --listen in --halley-cmd)")
	fs.StringVar(&c.Key, "key", "", "Halley api_key for the write cases (default: the first 32-hex token the server prints)")
	fs.StringVar(&c.CFKey, "cf-key", "", "Halley cf_api_key for the Cometify cases (default: cf_api_key=… as the server prints it)")
	fs.StringVar(&c.User, "user", "demo", "Halley username owning the key")
	fs.StringVar(&c.Secret, "secret", "", "api_secret of the key, to sign Cometify pushes (default: api_secret=… as the server prints it)")
	fs.BoolVar(&c.Nchan, "nchan", false, "also measure the Nchan peer, side by side")
	fs.StringVar(&c.NchanDir, "nchan-dir", "../shared/peers/nchan", "directory of Nchan's start.sh and stop.sh")
	fs.StringVar(&c.NchanURL, "nchan-url", "http://127.0.0.1:9080", "Nchan base URL")
	fs.IntVar(&c.Runs, "runs", 3, "runs per case (medians reported)")
	fs.StringVar(&c.Note, "note", "", "a note written beside every case's results (e.g. what else loaded the machine, which build)")
	cases := fs.String("cases", strings.Join(allCases, ","), "cases to run (also: "+strings.Join(extraCases, ",")+", not run by default)")
	fs.StringVar(&c.Out, "out", "bench/results", "directory for <case>.md and results.jsonl")
	counts := fs.String("counts", "2000,18000", "idle connection counts")
	fs.DurationVar(&c.Settle, "settle", 10*time.Second, "idle settle time before each sample")
	fs.IntVar(&c.PerProcess, "per-process", 18000, "connections per client process")
	fs.DurationVar(&c.WriteDuration, "duration", 10*time.Second, "write measuring time")
	fs.IntVar(&c.WriteConns, "conns", 16, "write connections")
	fs.IntVar(&c.Channels, "channels", 100, "channels")
	fs.IntVar(&c.Size, "size", 100, "message bytes")
	fs.DurationVar(&c.RunTimeout, "run-timeout", 6*time.Minute, "bound on one run of one case")
	if err := parseFlags(fs, args); err != nil {
		return c, err
	}
	var err error
	if c.Counts, err = parseCounts(*counts); err != nil {
		return c, err
	}
	for _, n := range strings.Split(*cases, ",") {
		n = strings.TrimSpace(n)
		known := false
		for _, k := range append(allCases, extraCases...) {
			known = known || k == n
		}
		if !known {
			return c, fmt.Errorf("unknown case %q (cases: %s)", n, strings.Join(append(allCases, extraCases...), ","))
		}
		c.Cases = append(c.Cases, n)
	}
	if c.Runs < 1 {
		return c, fmt.Errorf("--runs must be ≥ 1")
	}
	if c.HalleyCmd == "" && !c.Nchan {
		return c, fmt.Errorf("nothing to measure: give --halley-cmd and/or --nchan")
	}
	if c.HalleyURL == "" {
		c.HalleyURL = listenURL(strings.Fields(c.HalleyCmd))
	}
	return c, nil
}

// cmdRun is "bench run".
func cmdRun(args []string, stdout, stderr io.Writer) int {
	c, err := parseRunArgs(args, stderr)
	if err != nil {
		if err != flag.ErrHelp {
			fmt.Fprintln(stderr, "bench run:", err)
		}
		return 2
	}
	// SIGINT/SIGTERM end the run in progress (its servers and clients are
	// stopped by the usual defers) and save nothing more.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := &runner{c: c, log: stderr, peers: map[string]peerRuns{}}
	return r.runCases(ctx, stdout)
}

// runCases runs and saves every case of r.c.Cases; it stops, saving
// nothing of the case in progress, when ctx ends.
func (r *runner) runCases(ctx context.Context, stdout io.Writer) int {
	code := 0
	for _, name := range r.c.Cases {
		if r.c.HalleyCmd == "" && strings.HasPrefix(name, "write-") {
			continue // the Nchan side of these is publish-nchan
		}
		cr, err := r.runCase(ctx, name)
		if ctx.Err() != nil {
			fmt.Fprintf(r.log, "bench run: interrupted in %s: %v; its runs are not saved\n", name, ctx.Err())
			return 1
		}
		if err != nil {
			fmt.Fprintln(r.log, "bench run:", err)
			code = 1
			continue
		}
		if cr == nil {
			continue
		}
		if err := r.save(cr); err != nil {
			fmt.Fprintln(r.log, "bench run:", err)
			code = 1
		}
		fmt.Fprintln(stdout, cr.markdown())
		for _, s := range []*side{cr.Halley, cr.Nchan} {
			if s != nil && len(s.Errors) > 0 {
				code = 1
			}
		}
	}
	return code
}
