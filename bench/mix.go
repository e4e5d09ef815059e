package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// idleGroup is one kind of idle connection of a mixed run: an API, a
// transport, its channel prefix and key. Its connections all subscribe
// to the group's channel 0 when the run has one channel (idle-cluster:
// one push must reach them all).
type idleGroup struct {
	Kind, Mode string
	QName, Key string
	Chan       string    // the channel a push for this group goes to ("": none)
	Pub        publisher // who pushes to it
}

// mixConfig is an idle run over several groups: each count is split
// evenly over the groups, and each client process holds connections of
// one group only.
type mixConfig struct {
	idleConfig
	Groups []idleGroup
	// PushWait, when > 0, sends one push per distinct Chan after the last
	// sample and waits at most this long for every held connection to get
	// it.
	PushWait time.Duration
}

// pushResult is what the push of an idle-cluster run reached.
type pushResult struct {
	Pushes    []string `json:"pushes"`    // what was pushed: "<kind> <channel>", in order
	Accepted  int      `json:"accepted"`  // pushes the server accepted
	Expected  int      `json:"expected"`  // connections held when the push was sent
	Delivered int      `json:"delivered"` // of those, connections that got a delivery
	Extra     int64    `json:"extra"`     // deliveries beyond one per connection (duplicates, or a group pushed twice)
	Lost      int      `json:"lost"`      // connections that ended between the push and the end of the wait
	// LastMs is the time from the first push sent to the last delivery
	// (the client processes' clock, the same machine's), ms; -1 when
	// nothing arrived.
	LastMs float64 `json:"last_ms"`
	// AnsweredMs is the time from the first push sent to the last
	// push's answer, ms.
	AnsweredMs float64 `json:"answered_ms"`
	// ClientCPUms and ServerCPUms are the CPU time (user+system) the
	// client processes and the server's processes spent from just before
	// the push until every connection was seen reached (or the wait
	// ended), ms: on a box whose cores the clients share with the
	// server, what the push's latency was made of.
	ClientCPUms float64     `json:"client_cpu_ms"`
	ServerCPUms float64     `json:"server_cpu_ms"`
	Groups      []groupPush `json:"groups"` // per group of connections
	Errors      []string    `json:"errors,omitempty"`
}

// groupTargets splits count over n groups: the first count mod n get one
// more.
func groupTargets(count, n int) []int {
	t := make([]int, n)
	for i := range t {
		t[i] = count / n
		if i < count%n {
			t[i]++
		}
	}
	return t
}

// mixProc is one client process of a mixed run and its group.
type mixProc struct {
	*clientProc
	group, nth int // its group, and which of the group's processes it is
}

func (c *mixConfig) validate() error {
	if len(c.Groups) == 0 {
		return fmt.Errorf("no connection groups")
	}
	for _, g := range c.Groups {
		cc := c.clientConfig
		cc.Kind, cc.Mode, cc.QName, cc.Key = g.Kind, g.Mode, g.QName, g.Key
		if err := cc.validate(); err != nil {
			return fmt.Errorf("%s %s: %v", g.Kind, g.Mode, err)
		}
		if !mustKind(g.Kind).supports(g.Mode) {
			return fmt.Errorf("--kind %s has no %s", g.Kind, g.Mode)
		}
	}
	c.Kind, c.Mode, c.QName = c.Groups[0].Kind, c.Groups[0].Mode, c.Groups[0].QName
	return c.idleConfig.validate()
}

// startClient forks one client process for group g, its first connection
// being global index first (its source addresses follow from it).
func startClient(c *mixConfig, g idleGroup, first int, log io.Writer) (*clientProc, error) {
	exe, pre, env, err := clientCommand()
	if err != nil {
		return nil, err
	}
	args := append(append([]string{}, pre...),
		"--target", c.Target, "--kind", g.Kind, "--mode", g.Mode, "--qname", g.QName, "--key", g.Key,
		"--per-ip", strconv.Itoa(c.PerIP), "--channels", strconv.Itoa(c.Channels),
		"--dial-conc", strconv.Itoa(c.DialConc), "--max-life", c.MaxLife.String(),
		"--lp-timeout", strconv.Itoa(c.Timeout), "--reopen", strconv.Itoa(c.Reopen),
		"--first-index", strconv.Itoa(first))
	args = append(args, c.readerConfig.args()...)
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = log
	p := &clientProc{cmd: cmd, stat: map[string]int{}, ready: make(chan struct{})}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go p.readReports(out)
	return p, nil
}

// readReports follows a client process's stdout: "ready", "stat …" and
// "fail …" lines.
func (p *clientProc) readReports(out io.Reader) {
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
		if msg, ok := strings.CutPrefix(line, "fail "); ok {
			p.mu.Lock()
			if p.failMsg == "" {
				p.failMsg = msg
			}
			p.mu.Unlock()
		}
		if msg, ok := strings.CutPrefix(line, "lost "); ok {
			p.mu.Lock()
			if p.lossMsg == "" {
				p.lossMsg = msg
			}
			p.mu.Unlock()
		}
	}
	p.mu.Lock()
	p.exited = true
	p.mu.Unlock()
	if !readyOnce {
		close(p.ready)
	}
}

// runIdleMix starts the client processes of every group, grows through
// the counts, samples after each settle, pushes when asked, and stops the
// clients.
func runIdleMix(ctx context.Context, c mixConfig, log io.Writer) (idleResult, error) {
	var res idleResult
	log = &syncWriter{w: log}
	if err := c.validate(); err != nil {
		return res, err
	}
	if _, err := readRSS(c.PID); err != nil {
		return res, fmt.Errorf("server pid %d: %v", c.PID, err)
	}
	top := groupTargets(c.Counts[len(c.Counts)-1], len(c.Groups))
	var procs []*mixProc
	defer func() {
		cp := make([]*clientProc, len(procs))
		for i, p := range procs {
			cp[i] = p.clientProc
		}
		stopClients(cp)
	}()
	for gi, g := range c.Groups {
		n := (top[gi] + c.PerProcess - 1) / c.PerProcess
		for j := 0; j < n; j++ {
			// Every process has its own block of source indexes, so no
			// address carries more than --per-ip connections of the run.
			p, err := startClient(&c, g, len(procs)*c.PerProcess, log)
			if err != nil {
				return res, err
			}
			procs = append(procs, &mixProc{p, gi, j})
		}
	}
	res.Procs = len(procs)
	for i, p := range procs {
		if err := p.awaitStart(i); err != nil {
			return res, err
		}
	}
	for _, count := range c.Counts {
		gt := groupTargets(count, len(c.Groups))
		per := map[int][]int{}
		for gi := range c.Groups {
			n := (top[gi] + c.PerProcess - 1) / c.PerProcess
			per[gi] = procTargets(gt[gi], c.PerProcess, n)
		}
		for i, p := range procs {
			p.target = per[p.group][p.nth]
			if _, err := fmt.Fprintf(p.stdin, "open %d\n", p.target); err != nil {
				return res, fmt.Errorf("client process %d: %v", i, err)
			}
		}
		fmt.Fprintf(log, "idle %s: opening %d connections (%d client processes)\n", groupNames(c.Groups), count, len(procs))
		opening := time.Now()
		if err := waitOpen(ctx, procs, c.OpenTimeout, count, &res); err != nil {
			return res, err
		}
		fmt.Fprintf(log, "idle %s: reached %d in %.1f s\n", groupNames(c.Groups), count, time.Since(opening).Seconds())
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
			s.Reopened += p.get("reopened")
			if r, err := readRSS(p.cmd.Process.Pid); err == nil {
				s.ClientRSS += r
			}
		}
		var err error
		if s.ServerRSS, res.ServerProcs, err = treeRSSAt(procRoot, c.PID); err != nil {
			return res, fmt.Errorf("server RSS: %v", err)
		}
		s.TCPMem, _ = readTCPMemBytes()
		s.SlabBytes = readSocketSlabBytes()
		if s.Failed > 0 || s.Closed > 0 || s.Reopened > 0 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("at %d: %d failed, %d closed, %d re-opens (a connection that failed to open or was lost, opened again)", count, s.Failed, s.Closed, s.Reopened))
		}
		fmt.Fprintf(log, "idle %s: %d open (%d failed, %d closed, %d re-opens), server RSS %d KiB in %d processes, TCP mem %d KiB, clients RSS %d KiB\n",
			groupNames(c.Groups), s.Open, s.Failed, s.Closed, s.Reopened, s.ServerRSS>>10, res.ServerProcs, s.TCPMem>>10, s.ClientRSS>>10)
		res.Steps = append(res.Steps, s)
	}
	last := res.Steps[len(res.Steps)-1]
	k := readKernelMem(procRoot)
	res.Kernel = &k
	res.ServerFDsMin, res.ServerFDsMax = treeFDs(procRoot, c.PID)
	res.Short = last.Open < last.Target
	if res.Short {
		res.Warnings = append(res.Warnings, k.lines(last.Open)...)
	}
	a, b := res.Steps[0], last
	var err error
	if res.BytesPerConn, err = slope(a.ServerRSS, b.ServerRSS, a.Open, b.Open); err != nil {
		return res, fmt.Errorf("no growth between counts: %v", err)
	}
	res.KernelBytesPerConn, _ = slope(a.TCPMem, b.TCPMem, a.Open, b.Open)
	res.SlabBytesPerConn, _ = slope(a.SlabBytes, b.SlabBytes, a.Open, b.Open)
	res.ClientBytesPerConn, _ = slope(a.ClientRSS, b.ClientRSS, a.Open, b.Open)
	if c.PushWait > 0 {
		// From here a lost connection stays lost: the push's figures are
		// of the connections held when it was sent.
		for i, p := range procs {
			if _, err := fmt.Fprintln(p.stdin, "freeze"); err != nil {
				return res, fmt.Errorf("client process %d: %v", i, err)
			}
		}
		time.Sleep(300 * time.Millisecond) // the freeze taken, the last stat lines in
		pr := pushAll(ctx, &c, procs, log)
		res.Push = &pr
		for _, e := range pr.Errors {
			res.Warnings = append(res.Warnings, "push: "+e)
		}
		if pr.Delivered < pr.Expected {
			res.Warnings = append(res.Warnings, fmt.Sprintf("push: reached %d of %d connections within %v", pr.Delivered, pr.Expected, c.PushWait))
		}
		if pr.Lost > 0 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("push: %d connections ended after it", pr.Lost))
		}
	}
	for i, p := range procs {
		p.mu.Lock()
		if p.failMsg != "" {
			res.Warnings = append(res.Warnings, fmt.Sprintf("client process %d (%s %s): first failure: %s",
				i, c.Groups[p.group].Kind, c.Groups[p.group].Mode, p.failMsg))
		}
		if p.lossMsg != "" {
			res.Warnings = append(res.Warnings, fmt.Sprintf("client process %d (%s %s): first connection lost: %s",
				i, c.Groups[p.group].Kind, c.Groups[p.group].Mode, p.lossMsg))
		}
		p.mu.Unlock()
	}

	return res, nil
}

// groupNames is how the log names the groups: "halley/ws+cometify/longpoll".
func groupNames(gs []idleGroup) string {
	n := make([]string, len(gs))
	for i, g := range gs {
		n[i] = g.Kind + "/" + g.Mode
	}
	return strings.Join(n, "+")
}

// waitOpen waits (bounded by timeout) until every client process has
// opened or failed its target.
func waitOpen(ctx context.Context, procs []*mixProc, timeout time.Duration, count int, res *idleResult) error {
	deadline := time.Now().Add(timeout)
	for {
		done := true
		for i, p := range procs {
			if p.gone() {
				return fmt.Errorf("client process %d exited", i)
			}
			if p.get("open")+p.get("failed")+p.get("closed") < p.target || p.get("target") < p.target {
				done = false
			}
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			res.Warnings = append(res.Warnings, fmt.Sprintf("count %d not reached in %v", count, timeout))
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// groupPush is what the push reached in one group of connections.
type groupPush struct {
	Group     string  `json:"group"` // "<kind>/<mode>"
	Expected  int     `json:"expected"`
	Delivered int     `json:"delivered"`
	LastMs    float64 `json:"last_ms"` // first push sent → this group's last delivery; -1: none
}

// pushAll publishes one message to each distinct channel of the groups,
// pipelined over one keep-alive connection (the requests are written
// back to back, then the answers read: no push waits for another's
// commit), then waits until every connection held got a delivery (or
// PushWait passed) and reads from the client processes when the last one
// arrived.
func pushAll(ctx context.Context, c *mixConfig, procs []*mixProc, log io.Writer) pushResult {
	var pr pushResult
	before, closed0 := 0, 0
	var msgs0 int64
	groups := make([]groupPush, len(c.Groups))
	for gi, g := range c.Groups {
		groups[gi].Group = g.Kind + "/" + g.Mode
	}
	for _, p := range procs {
		// Expected is what was held when pushing: a long-poll the server
		// answers may be closed and re-dialled afterwards.
		groups[p.group].Expected += p.get("open")
		pr.Expected += p.get("open")
		before += p.get("got")
		msgs0 += int64(p.get("msgs"))
		closed0 += p.get("closed")
	}
	if before > 0 {
		pr.Errors = append(pr.Errors, fmt.Sprintf("%d connections had a delivery before the push", before))
	}
	addr, host, _ := hostPort(c.Target)
	type sent struct {
		k  serverKind
		ch string
	}
	var reqs []byte
	var order []sent
	seen := map[string]bool{}
	for _, g := range c.Groups {
		if g.Chan == "" || seen[g.Kind+" "+g.Chan] {
			continue
		}
		seen[g.Kind+" "+g.Chan] = true
		k := mustKind(g.Kind)
		pr.Pushes = append(pr.Pushes, g.Kind+" "+g.Chan)
		reqs = append(reqs, k.publish(g.Pub, host, g.Chan, []byte("p."+strconv.FormatInt(time.Now().UnixNano(), 10)))...)
		order = append(order, sent{k, g.Chan})
	}
	cpu := func() (clients, server float64) {
		for _, p := range procs {
			if t, err := treeCPU(p.cmd.Process.Pid); err == nil {
				clients += t
			}
		}
		server, _ = treeCPU(c.PID)
		return clients, server
	}
	// The CPU samples first: on a saturated machine walking /proc for
	// every process tree takes long, and the push's deadline must not run
	// out before its write (the first 1M run's push failed so, at once).
	cpuC0, cpuS0 := cpu()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		pr.Errors = append(pr.Errors, err.Error())
		pr.LastMs = -1
		return pr
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	t0 := time.Now()
	if _, err := conn.Write(reqs); err != nil {
		pr.Errors = append(pr.Errors, err.Error())
	} else {
		br := bufio.NewReader(conn)
		for _, x := range order {
			var r response
			if err := readResponse(br, &r, 4096, false); err != nil {
				pr.Errors = append(pr.Errors, err.Error())
				break
			}
			if !x.k.published(&r) {
				pr.Errors = append(pr.Errors, fmt.Sprintf("%s push to %s refused: %d %.200s", x.k.name(), x.ch, r.status, r.body))
				continue
			}
			pr.Accepted++
		}
	}
	pr.AnsweredMs = float64(time.Since(t0).Microseconds()) / 1000
	fmt.Fprintf(log, "idle push: %d of %d accepted in %.1f ms; waiting for %d connections\n", pr.Accepted, len(pr.Pushes), pr.AnsweredMs, pr.Expected)
	deadline := time.Now().Add(c.PushWait)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		got := 0
		for _, p := range procs {
			got += p.get("got")
		}
		if got-before >= pr.Expected {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	cpuC1, cpuS1 := cpu()
	pr.ClientCPUms, pr.ServerCPUms = (cpuC1-cpuC0)*1000, (cpuS1-cpuS0)*1000
	time.Sleep(300 * time.Millisecond) // the last stat lines
	var msgs int64
	lastUs := make([]int64, len(c.Groups))
	for _, p := range procs {
		gp := &groups[p.group]
		gp.Delivered += p.get("got")
		msgs += int64(p.get("msgs"))
		pr.Lost += p.get("closed")
		lastUs[p.group] = max(lastUs[p.group], int64(p.get("last")))
	}
	var all int64
	for gi := range groups {
		groups[gi].LastMs = pushLatency(t0, lastUs[gi])
		pr.Delivered += groups[gi].Delivered
		all = max(all, lastUs[gi])
	}
	pr.Groups = groups
	pr.Delivered -= before
	pr.Lost -= closed0
	pr.Extra = msgs - msgs0 - int64(pr.Delivered)
	pr.LastMs = pushLatency(t0, all)
	fmt.Fprintf(log, "idle push: %d of %d connections reached, the last %.1f ms after the push (%+v); CPU meanwhile: clients %.0f ms, server %.0f ms\n",
		pr.Delivered, pr.Expected, pr.LastMs, groups, pr.ClientCPUms, pr.ServerCPUms)
	return pr
}

// pushLatency is the time from the push sent (t0) to the last delivery
// (UnixMicro; 0: none), ms; -1 when nothing arrived after t0.
func pushLatency(t0 time.Time, lastUs int64) float64 {
	if lastUs == 0 || lastUs < t0.UnixMicro() {
		return -1
	}
	return float64(lastUs-t0.UnixMicro()) / 1000
}
