package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clusterCmdline is --cluster-cmd with {nodes} replaced by the node count
// ({tmp} is replaced per run, as in --halley-cmd).
func clusterCmdline(cmd string, nodes int) string {
	return strings.ReplaceAll(cmd, "{nodes}", strconv.Itoa(nodes))
}

// startCluster starts a fresh many-node server from --cluster-cmd (e.g.
// "halley cluster --nodes {nodes} --listen ADDR --data {tmp}") and waits
// for /healthz, then for its process tree to stop growing: a node still
// starting is not yet in the SO_REUSEPORT group, and connections opened
// before it joins would all land on the others. Its RSS and CPU are those
// of the whole tree of the started pid; node pids are never assumed.
func startCluster(c *runConfig) (*instance, error) {
	if c.ClusterCmd == "" {
		return nil, fmt.Errorf("no --cluster-cmd")
	}
	cmd := clusterCmdline(c.ClusterCmd, c.Nodes)
	url := listenURL(strings.Fields(cmd))
	s, err := startHalleyCmd(cmd, nil, url)
	if err != nil {
		return nil, err
	}
	pid := s.cmd.Process.Pid
	n := settleTree(pid, c.Nodes, time.Minute)
	return &instance{pid: pid, url: url, out: s.out.String, stop: s.stop, procs: n}, nil
}

// settleTree waits (at most bound) until pid's process tree holds at
// least least processes (however the server arranges its nodes, N nodes
// are N processes) and has had the same size for a second, and returns
// that size.
func settleTree(pid, least int, bound time.Duration) int {
	deadline := time.Now().Add(bound)
	n, since := len(treePIDs(procRoot, pid)), time.Now()
	for time.Now().Before(deadline) && (n < least || time.Since(since) < time.Second) {
		time.Sleep(100 * time.Millisecond)
		if m := len(treePIDs(procRoot, pid)); m != n {
			n, since = m, time.Now()
		}
	}
	return n
}

// cmdStandin is the hidden "bench standin --nodes N -- CMD ARGS…": it
// starts N copies of CMD ({i} in an argument becomes the node number
// 0…N-1), e.g. N independent `halley serve --reuseport` on one port, and
// waits. It stands in for `halley cluster` where that is not built: the
// same process shape (one started pid, the nodes under it) for the idle
// and RSS parts of idle-cluster; the nodes are not one service, so a push
// reaches only the listeners of the node that took it. SIGTERM/SIGINT are
// passed on to every node; a node that dies ends the others; the nodes
// get SIGTERM if this process dies.
func cmdStandin(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench standin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nodes := fs.Int("nodes", 2, "copies of the command to start")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	argv := fs.Args()
	if len(argv) == 0 || *nodes < 1 {
		fmt.Fprintln(stderr, "bench standin: usage: --nodes N -- CMD ARGS… ({i}: the node number)")
		return 2
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	w := &syncWriter{w: stdout}
	runtime.LockOSThread() // Pdeathsig is the forking thread's
	defer runtime.UnlockOSThread()
	cmds := make([]*exec.Cmd, 0, *nodes)
	exited := make(chan int, *nodes)
	stopAll := func(s os.Signal) {
		for _, c := range cmds {
			c.Process.Signal(s)
		}
	}
	for i := 0; i < *nodes; i++ {
		a := make([]string, len(argv))
		for j, x := range argv {
			a[j] = strings.ReplaceAll(x, "{i}", strconv.Itoa(i))
		}
		c := exec.Command(a[0], a[1:]...)
		c.Stdout, c.Stderr = w, w
		dieWithParent(c, syscall.SIGTERM)
		if err := c.Start(); err != nil {
			fmt.Fprintf(stderr, "bench standin: node %d: %v\n", i, err)
			stopAll(syscall.SIGTERM)
			for range cmds {
				<-exited
			}
			return 1
		}
		cmds = append(cmds, c)
		go func(i int) { c.Wait(); exited <- i }(i)
	}
	code := 0
	left := len(cmds)
	select {
	case s := <-sig:
		stopAll(s)
	case i := <-exited:
		left--
		fmt.Fprintf(stderr, "bench standin: node %d exited: %v; stopping the others\n", i, cmds[i].ProcessState)
		code = 1
		stopAll(syscall.SIGTERM)
	}
	kill := time.After(10 * time.Second)
	for left > 0 {
		select {
		case <-exited:
			left--
		case <-kill:
			stopAll(syscall.SIGKILL)
			kill = nil
		}
	}
	return code
}

// apiKinds are idle-cluster's --apis values and the kind each names.
var apiKinds = map[string]serverKind{"ez": ezKind{}, "cf": cfKind{}}

// parseAPIs parses --apis: "ez", "cf" or both, comma-separated.
func parseAPIs(s string) ([]string, error) {
	var out []string
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if _, ok := apiKinds[a]; !ok || slices.Contains(out, a) {
			return nil, fmt.Errorf("--apis: %q is not ez or cf, or is given twice", a)
		}
		out = append(out, a)
	}
	return out, nil
}

// joinInts is "2000,18000".
func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// clusterGroups are idle-cluster's connection groups: for each API, half
// WebSocket and half long-poll, all on one fresh channel (identifier) per
// API, so that one push per API reaches every connection.
func clusterGroups(apis []string, user string, cred credentials) []idleGroup {
	var gs []idleGroup
	for _, a := range apis {
		k := apiKinds[a]
		prefix := freshPrefix() + a
		p := cred.publisher(k, user)
		for _, mode := range []string{"ws", "longpoll"} {
			gs = append(gs, idleGroup{Kind: k.name(), Mode: mode, QName: k.qname(user, prefix), Key: p.Key,
				Chan: k.channel(user, prefix, 0), Pub: p})
		}
	}
	return gs
}

// idleClusterOnce is one run of idle-cluster against a started server
// (the single node or the cluster) up to counts.
func (r *runner) idleClusterOnce(ctx context.Context, inst *instance, cred credentials, counts []int) (outcome, []string, error) {
	c := mixConfig{
		idleConfig: idleConfig{
			clientConfig: clientConfig{Target: inst.url, PerIP: r.c.PerIP, Channels: 1, DialConc: 64,
				MaxLife: r.c.RunTimeout + 30*time.Second, Timeout: 120, Reopen: r.c.Reopen, readerConfig: r.c.Clients},
			PID: inst.pid, Counts: counts, Settle: r.c.Settle, OpenTimeout: r.c.OpenTimeout, PerProcess: r.c.PerProcess,
		},
		Groups:   clusterGroups(r.c.ClusterAPIs, r.c.User, cred),
		PushWait: r.c.PushWait,
	}
	res, err := runIdleMix(ctx, c, r.log)
	for _, w := range res.Warnings {
		fmt.Fprintf(r.log, "idle-cluster: warning: %s\n", w)
	}
	if err != nil {
		return outcome{}, res.Warnings, err
	}
	o := outcome{m: idleClusterMetrics(&res), curve: idleCurve(res.Steps)}
	last := res.Steps[len(res.Steps)-1]
	if last.Open < last.Target*99/100 {
		return o, res.Warnings, fmt.Errorf("only %d of %d connections held", last.Open, last.Target)
	}
	return o, res.Warnings, nil
}

// idleClusterMetrics are the table values of one idle-cluster run.
func idleClusterMetrics(res *idleResult) map[string]float64 {
	last := res.Steps[len(res.Steps)-1]
	m := map[string]float64{
		"bytes_per_conn":             res.BytesPerConn,
		"kernel_tcp_bytes_per_conn":  res.KernelBytesPerConn,
		"kernel_slab_bytes_per_conn": res.SlabBytesPerConn,
		"client_bytes_per_conn":      res.ClientBytesPerConn,
		"open":                       float64(last.Open),
		"failed":                     float64(last.Failed + last.Closed),
		"reopened":                   float64(last.Reopened),
		"server_rss_mib":             float64(last.ServerRSS) / (1 << 20),
		"server_procs":               float64(res.ServerProcs),
		"server_fds_max":             float64(res.ServerFDsMax),
		"server_fds_min":             float64(res.ServerFDsMin),
	}
	if res.Kernel != nil {
		m["kernel_tcp_mem_top"], m["kernel_slab_top"] = res.Kernel.perConn(last.Open)
	}
	if p := res.Push; p != nil {
		m["push_last_ms"] = p.LastMs
		m["push_delivered"] = float64(p.Delivered)
		m["push_expected"] = float64(p.Expected)
		m["push_extra"] = float64(p.Extra)
		m["push_lost"] = float64(p.Lost)
		m["push_client_cpu_ms"] = p.ClientCPUms
		m["push_server_cpu_ms"] = p.ServerCPUms
		for _, g := range p.Groups {
			m["push_ms_"+strings.ReplaceAll(g.Group, "/", "_")] = g.LastMs
		}
	}
	return m
}

// clusterCase runs idle-cluster or fanout-cluster: the single node
// (--halley-cmd) and the cluster (--cluster-cmd) in turn, each fresh per
// run, side by side.
func (r *runner) clusterCase(ctx context.Context, cr *caseResult) {
	c := &r.c
	type column struct {
		s      *side
		who    string
		start  func() (*instance, error)
		counts []int
	}
	var cols []column
	if c.HalleyCmd != "" {
		cr.HalleyCmd, cr.Halley = c.HalleyCmd, &side{}
		cols = append(cols, column{cr.Halley, "single node", func() (*instance, error) { return startHalley(c, nil) }, c.Counts})
	}
	if c.ClusterCmd != "" {
		cr.ClusterCmd, cr.Cluster = clusterCmdline(c.ClusterCmd, c.Nodes), &side{}
		cols = append(cols, column{cr.Cluster, fmt.Sprintf("cluster of %d", c.Nodes), func() (*instance, error) { return startCluster(c) }, c.ClusterCounts})
	}
	if cr.Case == "idle-cluster" {
		cr.metrics = clusterIdleMetrics
		cr.Lines = append(cr.Lines, fmt.Sprintf("Connections: %s, each API half WebSocket and half long-poll on one fresh channel (Cometify: identifier), "+
			"from client processes of ≤ %d sockets, 20 per source address in 127.0.0.0/8. The push: one per API, pipelined on one connection "+
			"(EZComet POST /write, Cometify signed POST /K/push), timed from the first sent to the last delivery read by any client. "+
			"RSS and CPU: every process under the started pid.", strings.Join(c.ClusterAPIs, " and "), c.PerProcess))
	} else {
		cr.metrics = fanoutMetrics
	}
	for i := 0; i < c.Runs && ctx.Err() == nil; i++ {
		for _, col := range cols {
			fmt.Fprintf(r.log, "== %s run %d/%d: %s\n", cr.Case, i+1, c.Runs, col.who)
			o, warn, err := r.clusterOnce(ctx, cr.Case, col.start, col.counts)
			r.add(col.s, col.who, cr.metrics, o, err)
			// What went wrong stands beside the table: the push's
			// misses, the clients' first failures, the kernel's state
			// when the run stopped short.
			for _, w := range warn {
				cr.Lines = append(cr.Lines, fmt.Sprintf("%s, run %d: %s", col.who, i+1, w))
			}
		}
	}
}

// clusterOnce starts a server, measures one run of the case, stops it.
func (r *runner) clusterOnce(ctx context.Context, name string, start func() (*instance, error), counts []int) (outcome, []string, error) {
	inst, err := start()
	if err != nil {
		return outcome{}, nil, err
	}
	defer inst.stop()
	ctx, cancel := context.WithTimeout(ctx, r.c.RunTimeout)
	defer cancel()
	cred := r.serverCredentials(inst.out())
	if name == "fanout-cluster" {
		o, err := r.fanoutOnce(ctx, name, ezKind{}, inst, cred)
		return o, nil, err
	}
	return r.idleClusterOnce(ctx, inst, cred, counts)
}
