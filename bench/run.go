package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
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
	Centrifuge    bool
	CentrifugeDir string
	CentrifugeURL string
	Runs          int
	Cases         []string
	Out           string
	Counts        []int
	Settle        time.Duration
	PerProcess    int
	PerIP         int // idle cases: connections per loopback source address
	Reopen        int // idle cases: re-opens per failed or lost connection before the samples and push
	WriteDuration time.Duration
	WriteConns    int
	Channels      int
	Size          int
	RunTimeout    time.Duration
	FloorSocks    int // sockets of the floor case
	// ClusterCmd starts Halley as many nodes behind one port ({nodes}:
	// Nodes; {tmp}: a fresh directory): the cluster column of
	// idle-cluster and fanout-cluster, beside --halley-cmd's single node.
	ClusterCmd    string
	Nodes         int
	ClusterCounts []int         // idle-cluster: the cluster's connection counts (the single node takes Counts)
	ClusterAPIs   []string      // idle-cluster: the APIs held, "ez" and/or "cf" (half WebSocket, half long-poll each)
	OpenTimeout   time.Duration // idle cases: time allowed to reach each count
	PushWait      time.Duration // idle-cluster: how long the push may take to reach every connection
	SyncDir       string        // where the fdatasync latency is measured: the file system of the server's data directory
	Clients       readerConfig  // how every case's client processes hold their connections (0s: their defaults)
}

// allCases run by default. A "cf-" in a name is the same case on Halley's
// Cometify API instead of EZComet; its peer sides are the EZComet case's.
// publish-<peer> is a peer's publish case alone (the peer column of the
// write cases).
var allCases = []string{"idle-ws", "idle-longpoll", "idle-cf-ws", "idle-cf-longpoll", "write-synced", "write-cf-synced", "write-nosync", "publish-256", "publish-nchan", "publish-centrifuge"}

// publish256Conns are publish-256's keep-alive publishers (PERF.md P4).
const publish256Conns = 256

// syncMetrics are the rows write-synced adds: the disk's fdatasync
// latency measured in the same run, and P4's target from it.
var syncMetrics = []metric{
	{"fdatasync_p50_us", "fdatasync p50 of a 100-byte append, µs (this machine, before each run)"},
	{"p4_target", "P4 target: 0.6 × conns / (fdatasync p50 + 50 µs), req/s"},
	{"over_p4_target", "req/s ÷ P4 target (P4: ≥ 1)"},
}

// extraCases run only when named in --cases: each run of them opens up to
// 10,000 subscribers and lasts ~30 s, which would make "make bench" long.
var extraCases = []string{"fanout-10k", "fanout-1k", "cf-fanout-10k", "storm-cf", "floor", "idle-cluster", "fanout-cluster"}

// clusterIdleMetrics are the rows of idle-cluster (PERF.md P7).
var clusterIdleMetrics = []metric{
	{"bytes_per_conn", "server RSS slope, B/conn (every process of the server)"},
	{"kernel_tcp_bytes_per_conn", "kernel TCP buffers, B/conn (client+server, slope)"},
	{"kernel_slab_bytes_per_conn", "kernel socket slabs, B/conn (client+server, slope)"},
	{"client_bytes_per_conn", "bench client RSS, B/conn"},
	{"open", "connections held at the top count"},
	{"failed", "connections failed or lost at the top count"},
	{"reopened", "re-opens of failed or lost connections by the top count (--reopen)"},
	{"server_rss_mib", "server RSS at the top count, MiB (all its processes)"},
	{"server_procs", "processes in the server's tree"},
	{"server_fds_max", "open files of the fullest server process (limit 20,000)"},
	{"server_fds_min", "open files of the emptiest server process (a cluster's supervisor counts)"},
	{"push_last_ms", "push sent → last delivery, ms (P7: ≤ 5,000)"},
	{"push_delivered", "connections the push reached"},
	{"push_expected", "connections held when pushed"},
	{"push_extra", "deliveries beyond one per connection"},
	{"push_lost", "connections that ended after the push"},
	{"push_client_cpu_ms", "CPU of the client processes from the push until all were reached, ms"},
	{"push_server_cpu_ms", "CPU of the server from the push until all were reached, ms"},
	{"push_ms_halley_ws", "push → last delivery, EZComet WebSocket, ms"},
	{"push_ms_halley_longpoll", "push → last delivery, EZComet long-poll, ms"},
	{"push_ms_cometify_ws", "push → last delivery, Cometify WebSocket, ms"},
	{"push_ms_cometify_longpoll", "push → last delivery, Cometify long-poll, ms"},
	{"kernel_tcp_mem_top", "kernel TCP mem (sockstat pages) at the top count ÷ connections, B"},
	{"kernel_slab_top", "socket slabs at the top count ÷ connections, B"},
}

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
	"fanout-10k": {10000, 200, 20},
	// fanout-cluster: fanout-10k on --cluster-cmd beside --halley-cmd;
	// the subscribers spread over the nodes (SO_REUSEPORT), the one
	// publishing connection lands on one node.
	"fanout-cluster": {10000, 200, 20},
	"fanout-1k":      {1000, 2000, 500},
	"cf-fanout-10k":  {10000, 200, 20},
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

// runner runs the cases.
type runner struct {
	c   runConfig
	log io.Writer
	// peers are a peer's runs by the peer and the case that measured them
	// ("nchan idle-ws", "nchan fanout-10k", "nchan publish-16"): a
	// Cometify case has the same peer side as its EZComet twin, and the
	// write cases share the publish runs, so each peer is measured once
	// per invocation for each.
	peers map[string]peerRuns
	// floor is the floor case's runs in this invocation (measured by the
	// first case that needs it: every fan-out table states its server CPU
	// per delivery against the floor of the same run).
	floor *side
}

// peerRuns is one peer measurement and the case that made it.
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

// publisher is what kind k publishes with.
func (c credentials) publisher(k serverKind, user string) publisher { return k.publisherOf(c, user) }

// caseAPI splits a case name into the Halley API it measures and the
// EZComet case it mirrors: "idle-cf-ws" → cometify, "idle-ws";
// "fanout-10k" → halley, "fanout-10k". The peer sides of a case are those
// of its mirror.
func caseAPI(name string) (k serverKind, mirror string) {
	if m := strings.Replace(name, "cf-", "", 1); m != name {
		return cfKind{}, m
	}
	return ezKind{}, name
}

// peerKinds are the peers asked for (--nchan …), in column order.
func (c *runConfig) peerKinds() []peerKind {
	var p []peerKind
	if c.Nchan {
		p = append(p, nchanKind{})
	}
	if c.Centrifuge {
		p = append(p, centrifugeKind{})
	}
	return p
}

// peerCommand is how a table names a peer's server.
func (c *runConfig) peerCommand(k peerKind) string { return k.peer(c).command() }

func (r *runner) idleOnce(ctx context.Context, k serverKind, mode string, inst *instance, cred credentials) (outcome, error) {
	p := cred.publisher(k, r.c.User)
	prefix := freshPrefix() + "c"
	if isPeer(k) {
		prefix = k.name() + "-" + prefix
	}
	ic := idleConfig{
		clientConfig: clientConfig{Target: inst.url, Kind: k.name(), Mode: mode, QName: k.qname(r.c.User, prefix), Key: p.Key, PerIP: r.c.PerIP,
			Channels: r.c.Channels, DialConc: 64, MaxLife: r.c.RunTimeout + 30*time.Second, Timeout: 120, Reopen: r.c.Reopen, readerConfig: r.c.Clients},
		PID: inst.pid, Counts: r.c.Counts, Settle: r.c.Settle, OpenTimeout: 2 * time.Minute, PerProcess: r.c.PerProcess,
	}
	res, err := runIdle(ctx, ic, r.log)
	if err != nil {
		return outcome{}, err
	}
	last := res.Steps[len(res.Steps)-1]
	m := map[string]float64{
		"bytes_per_conn":             res.BytesPerConn,
		"kernel_tcp_bytes_per_conn":  res.KernelBytesPerConn,
		"kernel_slab_bytes_per_conn": res.SlabBytesPerConn,
		"client_bytes_per_conn":      res.ClientBytesPerConn,
		"open":                       float64(last.Open),
	}
	o := outcome{m: m, curve: idleCurve(res.Steps)}
	if last.Open < last.Target*99/100 {
		return o, fmt.Errorf("only %d of %d connections held (%v)", last.Open, last.Target, res.Warnings)
	}
	return o, nil
}

func (r *runner) writeOnce(ctx context.Context, k serverKind, inst *instance, p publisher, conns int) (outcome, error) {
	wc := writeConfig{Target: inst.url, Kind: k.name(), Conns: conns, Duration: r.c.WriteDuration,
		Channels: r.c.Channels, Size: r.c.Size, Key: p.Key, User: p.User, Secret: p.Secret, ChanPrefix: freshPrefix(), PID: inst.pid}
	if err := k.checkPublisher(p); err != nil {
		return outcome{}, fmt.Errorf("%v (none found in the server's output)", err)
	}
	res, err := runWrite(ctx, wc, r.log)
	if err != nil {
		return outcome{}, err
	}
	m := map[string]float64{"req_per_sec": res.ReqPerSec, "p50_ms": res.P50ms, "p90_ms": res.P90ms,
		"p99_ms": res.P99ms, "max_ms": res.MaxMs, "errors": float64(res.Errors + res.IOErrors), "server_cpu_us": res.CPUus}
	o := outcome{m: m, hist: res.hist}
	if res.Errors > 0 {
		return o, fmt.Errorf("%d errors, first: %s", res.Errors, res.FirstErr)
	}
	return o, nil
}

// idleCurve is server RSS (MiB) against the connections held, one point
// per count.
func idleCurve(steps []idleStep) [][2]float64 {
	var c [][2]float64
	for _, st := range steps {
		c = append(c, [2]float64{float64(st.Open), float64(st.ServerRSS) / (1 << 20)})
	}
	return c
}

// stormOnce is one run of storm-cf on Halley's Cometify API.
func (r *runner) stormOnce(ctx context.Context, inst *instance, cred credentials) (outcome, error) {
	if cred.cfKey == "" || cred.secret == "" {
		return outcome{}, fmt.Errorf("no cf_api_key and api_secret: pass --cf-key and --secret (not found in the server's output)")
	}
	c := stormDefaults()
	c.Target, c.Key, c.Secret, c.PID, c.Size = inst.url, cred.cfKey, cred.secret, inst.pid, r.c.Size
	c.readerConfig = r.c.Clients
	c.MaxLife = r.c.RunTimeout + 30*time.Second
	res, err := runFanout(ctx, c, r.log)
	if err != nil {
		return outcome{}, err
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
	o := outcome{m: m, hist: res.hist}
	if !stormOK(&res) {
		return o, fmt.Errorf("storm not recovered: %+v, missing %d, duplicates %d, out of order %d, publish errors %d",
			*s, res.Missing, res.Duplicates, res.OutOfOrder, res.PubErrors)
	}
	return o, nil
}

func (r *runner) fanoutOnce(ctx context.Context, name string, k serverKind, inst *instance, cred credentials) (outcome, error) {
	fc := fanoutCases[name]
	p := cred.publisher(k, r.c.User)
	c := fanoutConfig{Target: inst.url, Kind: k.name(), Subs: fc.subs, Msgs: fc.msgs, Rate: fc.rate, Size: r.c.Size,
		Key: p.Key, Secret: p.Secret, User: p.User, PID: inst.pid, PerProcess: r.c.PerProcess, PerIP: 20, DialConc: 64,
		OpenTimeout: 2 * time.Minute, Grace: 2 * time.Second, Drain: time.Minute, Quiet: 5 * time.Second, MaxLife: r.c.RunTimeout + 30*time.Second,
		readerConfig: r.c.Clients}
	if err := k.checkPublisher(p); err != nil {
		return outcome{}, fmt.Errorf("%v: pass --key, --cf-key, --secret (not found in the server's output)", err)
	}
	res, err := runFanout(ctx, c, r.log)
	if err != nil {
		return outcome{}, err
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
		"missed_msgs": float64(res.MissedMsgs), "publish_ack_p50_ms": res.AckP50ms, "publish_ack_p99_ms": res.AckP99ms}
	o := outcome{m: m, hist: res.hist}
	for _, w := range res.Warnings {
		fmt.Fprintf(r.log, "fanout %s: warning: %s\n", k.name(), w)
	}
	if res.MissedMsgs > 0 {
		fmt.Fprintf(r.log, "fanout %s: missed by someone: %s\n", k.name(), missSummary(res.MissBySeq))
	}
	if res.PubErrors > 0 {
		return o, fmt.Errorf("%d publish errors (%v)", res.PubErrors, res.Warnings)
	}
	if res.Open < c.Subs*99/100 {
		return o, fmt.Errorf("only %d of %d subscribers open (%v)", res.Open, c.Subs, res.Warnings)
	}
	return o, nil
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

// add records one run of a server in its side and says on the log what
// it found (the case's first row), so that a long invocation shows its
// progress run by run.
func (r *runner) add(s *side, who string, ms []metric, o outcome, err error) {
	s.add(o, err)
	switch v, ok := o.m[ms[0].key]; {
	case err != nil:
		fmt.Fprintf(r.log, "== %s: run failed: %v\n", who, err)
	case ok:
		fmt.Fprintf(r.log, "== %s: %s %s\n", who, ms[0].label, fmtNum(v))
	}
}

// measure is one run of a case against a started server.
type measure func(ctx context.Context, k serverKind, inst *instance, cred credentials) (outcome, error)

// once starts kind k's server fresh (extra: more server flags), runs f
// against it within --run-timeout, and stops it.
func (r *runner) once(ctx context.Context, k serverKind, extra []string, f measure) (outcome, error) {
	inst, err := k.start(&r.c, extra)
	if err != nil {
		return outcome{}, err
	}
	defer inst.stop()
	ctx, cancel := context.WithTimeout(ctx, r.c.RunTimeout)
	defer cancel()
	var cred credentials
	if !isPeer(k) {
		cred = r.serverCredentials(inst.out())
	}
	return f(ctx, k, inst, cred)
}

// kindFlags is how the harness command of a case selects each server.
func (r *runner) kindFlags(k serverKind, mode string) string {
	alt := ""
	for _, p := range kindList {
		if isPeer(p) && (mode == "publish" || p.supports(mode)) {
			alt += " | " + p.flags(mode == "publish")
		}
	}
	return "[" + k.flags(mode == "publish") + alt + "]"
}

// harnessCmd is the harness command a case's table names: the one that
// measures the same alone.
func (r *runner) harnessCmd(name string) string {
	cmd := r.caseCmd(name)
	if !strings.HasPrefix(cmd, "halley bench write") && !strings.HasPrefix(cmd, "halley bench floor") {
		// The cases whose client processes hold connections.
		for _, a := range r.c.Clients.args() {
			if strings.HasPrefix(a, "--") {
				a = "--client-" + a[2:]
			}
			cmd += " " + a
		}
	}
	return cmd
}

func (r *runner) caseCmd(name string) string {
	c := r.c
	k, mirror := caseAPI(name)
	switch mirror {
	case "idle-ws", "idle-longpoll":
		counts := make([]string, len(c.Counts))
		for i, n := range c.Counts {
			counts[i] = fmt.Sprint(n)
		}
		mode := strings.TrimPrefix(mirror, "idle-")
		return fmt.Sprintf("halley bench idle --mode %s --counts %s --settle %v --per-process %d --per-ip %d --reopen %d --channels %d --target URL --pid PID %s",
			mode, strings.Join(counts, ","), c.Settle, c.PerProcess, c.PerIP, c.Reopen, c.Channels, r.kindFlags(k, mode))
	case "floor":
		d := floorDefaults()
		return fmt.Sprintf("halley bench floor --socks %d --rounds %d --size %d --per-write 1,4,16", c.FloorSocks, d.Rounds, c.Size)
	case "storm-cf":
		d := stormDefaults()
		return fmt.Sprintf("halley bench storm --subs %d --msgs %d --rate %g --at %v --size %d --per-process %d --dial-conc %d --target URL --pid PID --key K --secret S",
			d.Subs, d.Msgs, d.Rate, d.StormAt, c.Size, d.PerProcess, d.DialConc)
	case "idle-cluster":
		return fmt.Sprintf("halley bench run --cases idle-cluster --nodes %d --cluster-counts %s --counts %s --apis %s --settle %v --per-process %d --per-ip %d --reopen %d --push-wait %v",
			c.Nodes, joinInts(c.ClusterCounts), joinInts(c.Counts), strings.Join(c.ClusterAPIs, ","), c.Settle, c.PerProcess, c.PerIP, c.Reopen, c.PushWait)
	case "fanout-10k", "fanout-1k", "fanout-cluster":
		fc := fanoutCases[name]
		return fmt.Sprintf("halley bench fanout --subs %d --msgs %d --rate %g --size %d --per-process %d --target URL --pid PID %s",
			fc.subs, fc.msgs, fc.rate, c.Size, c.PerProcess, r.kindFlags(k, "publish"))
	default:
		conns := c.WriteConns
		if name == "publish-256" {
			conns = publish256Conns
		}
		return fmt.Sprintf("halley bench write --conns %d --duration %v --channels %d --size %d --target URL --pid PID %s",
			conns, c.WriteDuration, c.Channels, c.Size, r.kindFlags(k, "publish"))
	}
}

// sideBySide runs a case on Halley (API k) and on every peer asked for
// that supports mode, in turn, Runs times, each server fresh for every
// run. A peer's side is the peer runs of mirror: measured here unless an
// earlier case of this invocation measured them already.
func (r *runner) sideBySide(ctx context.Context, cr *caseResult, mirror, mode string, k serverKind, f measure) {
	c := &r.c
	type column struct {
		k     serverKind
		s     *side
		fresh bool
	}
	var cols []column
	if c.HalleyCmd != "" {
		cr.HalleyCmd, cr.Halley = c.HalleyCmd, &side{}
		cols = append(cols, column{k, cr.Halley, true})
	}
	for _, p := range c.peerKinds() {
		if !p.supports(mode) {
			continue
		}
		s, cmd := cr.slot(p.column())
		*cmd = c.peerCommand(p)
		if prior, ok := r.peers[p.name()+" "+mirror]; ok {
			*s = prior.s
			*cmd += " — the " + columnLabel(p.column()) + " runs of " + prior.caseName + " in this invocation"
			continue
		}
		*s = &side{}
		cols = append(cols, column{p, *s, false})
	}
	for i := 0; i < c.Runs && ctx.Err() == nil; i++ {
		for _, col := range cols {
			fmt.Fprintf(r.log, "== %s run %d/%d: %s\n", cr.Case, i+1, c.Runs, col.k.name())
			o, err := r.once(ctx, col.k, nil, f)
			r.add(col.s, col.k.name(), cr.metrics, o, err)
		}
	}
	for _, col := range cols {
		if isPeer(col.k) {
			r.peers[col.k.name()+" "+mirror] = peerRuns{cr.Case, col.s}
		}
	}
}

// floorRuns measures the floor once per invocation.
func (r *runner) floorRuns(ctx context.Context) *side {
	if r.floor != nil {
		return r.floor
	}
	s := &side{}
	c := floorDefaults()
	c.Socks, c.Size = r.c.FloorSocks, r.c.Size
	for i := 0; i < r.c.Runs && ctx.Err() == nil; i++ {
		fmt.Fprintf(r.log, "== floor run %d/%d\n", i+1, r.c.Runs)
		res, err := runFloor(ctx, c, r.log)
		o := outcome{m: floorMetricsOf(res)}
		for _, x := range res {
			o.curve = append(o.curve, [2]float64{float64(x.PerWrite), x.CPUus})
		}
		r.add(s, "floor", floorMetrics, o, err)
	}
	s.finish(floorMetrics)
	r.floor = s
	return s
}

// againstFloor adds to a fan-out case each server's CPU per delivery
// over the single-frame floor of this invocation (PERF.md P2b), and a
// line saying what the floor was.
func (r *runner) againstFloor(ctx context.Context, cr *caseResult) {
	fl := r.floorRuns(ctx)
	one, ok := fl.Median["cpu_us_1"]
	if !ok || one <= 0 {
		cr.Lines = append(cr.Lines, "The floor could not be measured in this run: "+strings.Join(fl.Errors, "; "))
		return
	}
	cr.metrics = append(append([]metric(nil), cr.metrics...), metric{"cpu_over_floor", "server CPU per delivery ÷ single-frame floor (P2b: ≤ 1.25)"})
	for _, col := range columns {
		s, _ := cr.slot(col.key)
		if *s == nil || col.key == "floor" {
			continue
		}
		for _, run := range (*s).Runs {
			if v, ok := run["server_cpu_us"]; ok && v > 0 {
				run["cpu_over_floor"] = v / one
			}
		}
	}
	cr.Lines = append(cr.Lines, fmt.Sprintf("Floor of this invocation (median of %d, one thread writing a %d-byte frame to %d loopback sockets, no server): "+
		"%.2f µs CPU per frame at 1 frame per write, %.2f at 4, %.2f at 16. P2b asks ≤ 1.25 × %.2f = %.2f µs of server CPU per delivery.",
		len(fl.Runs), r.c.Size+2, r.c.FloorSocks, one, fl.Median["cpu_us_4"], fl.Median["cpu_us_16"], one, 1.25*one))
}

// peerPublish measures the publish case of peer p with conns connections
// once per invocation: the peer column of every write case.
func (r *runner) peerPublish(ctx context.Context, p serverKind, conns int) *side {
	key := fmt.Sprintf("%s publish-%d", p.name(), conns)
	if prior, ok := r.peers[key]; ok {
		return prior.s
	}
	s := &side{}
	for i := 0; i < r.c.Runs && ctx.Err() == nil; i++ {
		fmt.Fprintf(r.log, "== publish-%s (%d conns) run %d/%d\n", p.name(), conns, i+1, r.c.Runs)
		o, err := r.once(ctx, p, nil, func(ctx context.Context, k serverKind, inst *instance, _ credentials) (outcome, error) {
			return r.writeOnce(ctx, k, inst, publisher{}, conns)
		})
		r.add(s, p.name(), writeMetrics, o, err)
	}
	s.finish(writeMetrics)
	caseName := "publish-" + p.name()
	if conns != r.c.WriteConns {
		caseName = fmt.Sprintf("publish-%d (%s)", conns, p.name())
	}
	r.peers[key] = peerRuns{caseName, s}
	return s
}

// peerPublishSides fills the peer columns of a write case.
func (r *runner) peerPublishSides(ctx context.Context, cr *caseResult, conns int) {
	for _, p := range r.c.peerKinds() {
		s, cmd := cr.slot(p.column())
		*s = r.peerPublish(ctx, p, conns)
		*cmd = r.c.peerCommand(p) + " — the " + r.peers[fmt.Sprintf("%s publish-%d", p.name(), conns)].caseName + " runs of this invocation"
	}
}

func (r *runner) runCase(ctx context.Context, name string) (*caseResult, error) {
	c := &r.c
	cr := &caseResult{Case: name, Time: time.Now().UTC().Format(time.RFC3339), Command: r.harnessCmd(name),
		Machine: "at start " + machineLoad(), Note: r.c.Note}
	k, mirror := caseAPI(name)
	switch {
	case mirror == "idle-ws" || mirror == "idle-longpoll":
		mode := strings.TrimPrefix(mirror, "idle-")
		cr.metrics = idleMetrics
		r.sideBySide(ctx, cr, mirror, mode, k, func(ctx context.Context, k serverKind, inst *instance, cred credentials) (outcome, error) {
			return r.idleOnce(ctx, k, mode, inst, cred)
		})
	case mirror == "write-synced" || mirror == "write-nosync" || mirror == "publish-256":
		cr.metrics = writeMetrics
		var extra []string
		conns := c.WriteConns
		if c.HalleyCmd != "" {
			cr.HalleyCmd, cr.Halley = c.HalleyCmd, &side{}
		}
		switch mirror {
		case "write-nosync":
			extra = []string{"--sync=none"}
			cr.HalleyCmd += " --sync=none"
		case "write-synced":
			cr.metrics = append(append([]metric(nil), writeMetrics...), syncMetrics...)
		case "publish-256":
			conns = publish256Conns
		}
		for i := 0; i < c.Runs && ctx.Err() == nil && cr.Halley != nil; i++ {
			var sync syncResult
			if mirror == "write-synced" {
				var err error
				if sync, err = measureSync(c.SyncDir, 2000, 100); err != nil {
					cr.Halley.add(outcome{}, fmt.Errorf("fdatasync in %s: %v", c.SyncDir, err))
					continue
				}
				fmt.Fprintf(r.log, "== %s run %d/%d: fdatasync of a 100-byte append in %s: p50 %.0f µs, p99 %.0f µs\n",
					name, i+1, c.Runs, c.SyncDir, sync.P50us, sync.P99us)
			}
			fmt.Fprintf(r.log, "== %s run %d/%d: halley, %d conns\n", name, i+1, c.Runs, conns)
			o, err := r.once(ctx, k, extra, func(ctx context.Context, k serverKind, inst *instance, cred credentials) (outcome, error) {
				return r.writeOnce(ctx, k, inst, cred.publisher(k, c.User), conns)
			})
			if m := o.m; m != nil && mirror == "write-synced" {
				m["fdatasync_p50_us"] = sync.P50us
				m["p4_target"] = p4Target(conns, sync.P50us)
				m["over_p4_target"] = m["req_per_sec"] / m["p4_target"]
			}
			r.add(cr.Halley, k.name(), cr.metrics, o, err)
		}
		r.peerPublishSides(ctx, cr, conns)
		if mirror == "write-synced" {
			cr.Lines = append(cr.Lines, fmt.Sprintf("P4 (16 closed-loop publishers, fsync on): ≥ 0.6 × %d / (fdatasync p50 + 50 µs), "+
				"with the fdatasync p50 of a 100-byte append measured in %s (the file system of the server's data directory) before each Halley run.", conns, c.SyncDir))
		}
	case mirror == "fanout-10k" || mirror == "fanout-1k":
		cr.metrics = fanoutMetrics
		r.sideBySide(ctx, cr, mirror, "ws", k, func(ctx context.Context, k serverKind, inst *instance, cred credentials) (outcome, error) {
			return r.fanoutOnce(ctx, name, k, inst, cred)
		})
		r.againstFloor(ctx, cr)
	case name == "idle-cluster" || name == "fanout-cluster":
		r.clusterCase(ctx, cr)
	case name == "floor":
		cr.metrics = floorMetrics
		cr.Floor = r.floorRuns(ctx)
		cr.Lines = append(cr.Lines, fmt.Sprintf("One thread writes the same %d-byte WebSocket frame to %d loopback sockets, no server logic; "+
			"a reader drains the other ends as a fan-out client does; CPU is the writer thread's own (getrusage).", r.c.Size+2, r.c.FloorSocks))
	case name == "storm-cf":
		cr.metrics = stormMetrics
		cr.HalleyCmd, cr.Halley = c.HalleyCmd, &side{}
		for i := 0; i < c.Runs && ctx.Err() == nil; i++ {
			fmt.Fprintf(r.log, "== %s run %d/%d: halley\n", name, i+1, c.Runs)
			o, err := r.once(ctx, cfKind{}, nil, func(ctx context.Context, _ serverKind, inst *instance, cred credentials) (outcome, error) {
				return r.stormOnce(ctx, inst, cred)
			})
			r.add(cr.Halley, "halley", cr.metrics, o, err)
		}
	case strings.HasPrefix(name, "publish-"):
		i := slices.IndexFunc(c.peerKinds(), func(k peerKind) bool { return "publish-"+k.name() == name })
		if i < 0 {
			return nil, nil // that peer was not asked for
		}
		p := c.peerKinds()[i]
		cr.metrics = writeMetrics
		s, cmd := cr.slot(p.column())
		*cmd, *s = c.peerCommand(p), r.peerPublish(ctx, p, c.WriteConns)
	default:
		return nil, fmt.Errorf("unknown case %q (cases: %s)", name, strings.Join(append(allCases, extraCases...), ","))
	}
	cr.Machine += "; at end " + machineLoad()
	cr.finish()
	return cr, nil
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
	fs.BoolVar(&c.Centrifuge, "centrifuge", false, "also measure the Centrifuge peer, side by side")
	fs.StringVar(&c.CentrifugeDir, "centrifuge-dir", "../shared/peers/centrifuge", "directory of the Centrifuge peer's start.sh and stop.sh")
	fs.StringVar(&c.CentrifugeURL, "centrifuge-url", "http://127.0.0.1:9180", "Centrifuge peer base URL")
	fs.IntVar(&c.Runs, "runs", 3, "runs per case (medians reported)")
	fs.StringVar(&c.Note, "note", "", "a note written beside every case's results (e.g. what else loaded the machine, which build)")
	cases := fs.String("cases", strings.Join(allCases, ","), "cases to run (also: "+strings.Join(extraCases, ",")+", not run by default)")
	fs.StringVar(&c.Out, "out", "bench/results", "directory for <case>.md and results.jsonl")
	counts := fs.String("counts", "2000,18000", "idle connection counts")
	fs.DurationVar(&c.Settle, "settle", 10*time.Second, "idle settle time before each sample")
	fs.IntVar(&c.PerProcess, "per-process", 18000, "connections per client process")
	reopenFlag(fs, &c.Reopen, 3)
	fs.IntVar(&c.PerIP, "per-ip", 20, "idle cases: connections per loopback source address (a node of a cluster sees each address's connections spread over the nodes)")
	fs.DurationVar(&c.WriteDuration, "duration", 10*time.Second, "write measuring time")
	fs.IntVar(&c.WriteConns, "conns", 16, "write connections")
	fs.IntVar(&c.Channels, "channels", 100, "channels")
	fs.IntVar(&c.Size, "size", 100, "message bytes")
	fs.DurationVar(&c.RunTimeout, "run-timeout", 6*time.Minute, "bound on one run of one case")
	fs.StringVar(&c.SyncDir, "sync-dir", os.TempDir(), "directory on the file system of the server's data directory ({tmp}), for the fdatasync latency of write-synced")
	fs.IntVar(&c.FloorSocks, "floor-socks", floorDefaults().Socks, "loopback sockets of the floor (also measured before the first fan-out case)")
	fs.StringVar(&c.ClusterCmd, "cluster-cmd", "", `many-node server for idle-cluster, fanout-cluster, e.g. "bin/halley cluster --nodes {nodes} --listen 127.0.0.1:18080 --data {tmp}"`)
	fs.IntVar(&c.Nodes, "nodes", 3, "nodes of --cluster-cmd ({nodes})")
	clusterCounts := fs.String("cluster-counts", "2000,20000", "idle-cluster: the cluster's connection counts (the single node takes --counts)")
	apis := fs.String("apis", "ez,cf", "idle-cluster: APIs held, ez (EZComet) and/or cf (Cometify); each half WebSocket, half long-poll")
	fs.DurationVar(&c.OpenTimeout, "open-timeout", 2*time.Minute, "idle cases: time allowed to reach each count")
	fs.DurationVar(&c.PushWait, "push-wait", 30*time.Second, "idle-cluster: time allowed for the push to reach every connection")
	c.Clients.parentFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return c, err
	}
	var err error
	if c.Counts, err = parseCounts(*counts); err != nil {
		return c, err
	}
	if c.ClusterCounts, err = parseCounts(*clusterCounts); err != nil {
		return c, fmt.Errorf("--cluster-counts: %v", err)
	}
	if c.ClusterAPIs, err = parseAPIs(*apis); err != nil {
		return c, err
	}
	if c.Nodes < 1 {
		return c, fmt.Errorf("--nodes must be ≥ 1")
	}
	for _, n := range strings.Split(*cases, ",") {
		n = strings.TrimSpace(n)
		if !slices.Contains(allCases, n) && !slices.Contains(extraCases, n) {
			return c, fmt.Errorf("unknown case %q (cases: %s)", n, strings.Join(append(allCases, extraCases...), ","))
		}
		c.Cases = append(c.Cases, n)
	}
	if c.Runs < 1 {
		return c, fmt.Errorf("--runs must be ≥ 1")
	}
	clusterOnly := c.ClusterCmd != "" && !slices.ContainsFunc(c.Cases, func(n string) bool { return !strings.HasSuffix(n, "-cluster") })
	if c.HalleyCmd == "" && len(c.peerKinds()) == 0 && !clusterOnly && slices.ContainsFunc(c.Cases, func(n string) bool { return n != "floor" }) {
		return c, fmt.Errorf("nothing to measure: give --halley-cmd and/or --nchan, --centrifuge")
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
	var fanouts []*caseResult
	defer func() {
		if len(fanouts) == 0 {
			return
		}
		if f, err := plotFanoutRates(r.c.Out, fanouts); err != nil {
			fmt.Fprintln(r.log, "bench run: fan-out plot:", err)
		} else if f != "" {
			fmt.Fprintf(r.log, "bench run: deliveries/s against subscribers in %s\n", filepath.Join(r.c.Out, f))
		}
	}()
	for _, name := range r.c.Cases {
		if r.c.HalleyCmd == "" && strings.HasPrefix(name, "write-") {
			continue // the peer side of these is publish-<peer>
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
		if err := cr.save(r.c.Out); err != nil {
			fmt.Fprintln(r.log, "bench run:", err)
			code = 1
		}
		fmt.Fprintln(stdout, cr.markdown())
		if _, ok := fanoutCases[cr.Case]; ok {
			fanouts = append(fanouts, cr)
		}
		for _, col := range columns {
			if s, _ := cr.slot(col.key); *s != nil && len((*s).Errors) > 0 {
				code = 1
			}
		}
	}
	return code
}
