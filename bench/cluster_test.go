package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeProc writes a /proc with the given processes: pid → ppid, comm,
// VmRSS kB (< 0: no VmRSS line, as a zombie), utime+stime split.
func fakeProc(t *testing.T, procs map[int]struct {
	ppid   int
	comm   string
	rssKB  int
	ut, st int
}) string {
	d := t.TempDir()
	for pid, p := range procs {
		dir := filepath.Join(d, fmt.Sprint(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
		stat := fmt.Sprintf("%d (%s) S %d 1 1 0 -1 0 0 0 0 0 %d %d 0 0 20 0 1 0\n", pid, p.comm, p.ppid, p.ut, p.st)
		status := "Name:\t" + p.comm + "\n"
		if p.rssKB >= 0 {
			status += fmt.Sprintf("VmRSS:\t%d kB\n", p.rssKB)
		}
		os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644)
		os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644)
	}
	os.MkdirAll(filepath.Join(d, "self"), 0o755) // not a pid: ignored
	return d
}

// TestTreeRSS: the server's RSS and CPU are summed over its whole tree
// (children and grandchildren, found by ppid links, whatever their pids),
// and nothing outside it.
func TestTreeRSS(t *testing.T) {
	type P = struct {
		ppid   int
		comm   string
		rssKB  int
		ut, st int
	}
	d := fakeProc(t, map[int]P{
		1:   {0, "init", 5000, 1, 1},
		100: {1, "halley", 1000, 10, 20},         // the started pid: the store node
		205: {100, "halley node", 200, 1, 2},     // a light node (a space in comm)
		90:  {100, "x) S 1 (y", 300, 3, 4},       // parentheses in comm; a lower pid than its parent
		301: {205, "helper", 40, 5, 5},           // a grandchild
		302: {205, "zombie", -1, 1, 0},           // no VmRSS: skipped for RSS, its CPU counted
		400: {1, "bench client", 9000, 100, 100}, // not the server's
		401: {400, "bench client 2", 9000, 9, 9}, // nor under it
	})
	got := treePIDs(d, 100)
	slices.Sort(got)
	if want := []int{90, 100, 205, 301, 302}; !slices.Equal(got, want) {
		t.Fatalf("tree of 100: %v, want %v", got, want)
	}
	rss, n, err := treeRSSAt(d, 100)
	if err != nil || rss != (1000+200+300+40)*1024 || n != 4 {
		t.Fatalf("treeRSSAt = %d, %d, %v; want %d bytes in 4 processes", rss, n, err, (1000+200+300+40)*1024)
	}
	cpu, err := treeCPUAt(d, 100)
	if want := float64(10+20+1+2+3+4+5+5+1) / clockTicks; err != nil || cpu != want {
		t.Fatalf("treeCPUAt = %v, %v; want %v", cpu, err, want)
	}
	for pid, n := range map[int]int{100: 3, 205: 7, 90: 1} {
		dir := filepath.Join(d, fmt.Sprint(pid), "fd")
		os.MkdirAll(dir, 0o755)
		for i := 0; i < n; i++ {
			os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), nil, 0o644)
		}
	}
	if least, most := treeFDs(d, 100); least != 1 || most != 7 {
		t.Fatalf("treeFDs = %d, %d; want 1, 7 (301 and 302 have no fd directory)", least, most)
	}
	if _, _, err := treeRSSAt(d, 555); err == nil {
		t.Fatal("a missing root pid gave no error")
	}
	if rss, n, _ := treeRSSAt(d, 301); rss != 40*1024 || n != 1 {
		t.Fatalf("a leaf: %d in %d", rss, n)
	}
}

// TestTreeRSSOfProcesses: on the real /proc the tree of this test holds a
// child it started.
func TestTreeRSSOfProcesses(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if !slices.Contains(treePIDs(procRoot, os.Getpid()), cmd.Process.Pid) {
		t.Fatalf("child %d not in the tree of %d", cmd.Process.Pid, os.Getpid())
	}
}

func TestKernelMem(t *testing.T) {
	d := t.TempDir()
	os.MkdirAll(filepath.Join(d, "net"), 0o755)
	os.WriteFile(filepath.Join(d, "net", "sockstat"), []byte("sockets: used 400015\nTCP: inuse 400001 orphan 0 tw 12 alloc 400003 mem 1000\nUDP: inuse 0 mem 0\n"), 0o644)
	os.WriteFile(filepath.Join(d, "slabinfo"), []byte(`slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>
TCP               400000 400010   2432   13    8 : tunables    0    0    0 : slabdata  30770  30770      0
TCPv6                 26     26   2560   13    8 : tunables    0    0    0 : slabdata      2      2      0
sock_inode_cache  400100 400200    832   19    4 : tunables    0    0    0 : slabdata  21063  21063      0
dentry            500000 500000    192   21    1 : tunables    0    0    0 : slabdata  23810  23810      0
kmalloc-64          1000   1000     64   64    1 : tunables    0    0    0 : slabdata     16     16      0
`), 0o644)
	os.WriteFile(filepath.Join(d, "meminfo"), []byte("MemTotal:       24000000 kB\nMemAvailable:   10000000 kB\nSUnreclaim:      2000000 kB\n"), 0o644)
	k := readKernelMem(d)
	if k.TCPInuse != 400001 || k.TCPAlloc != 400003 || k.TCPMemPages != 1000 || k.MemAvail != 10000000*1024 || k.SUnreclaim != 2000000*1024 {
		t.Fatalf("%+v", k)
	}
	names := []string{}
	for _, s := range k.Slabs {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, []string{"TCP", "sock_inode_cache", "dentry"}) {
		t.Fatalf("slabs %v", names)
	}
	want := int64(400000*2432 + 400100*832 + 500000*192)
	if k.SlabTotal != want {
		t.Fatalf("slab total %d, want %d", k.SlabTotal, want)
	}
	k.PageSize = 4096
	tcp, slab := k.perConn(200000)
	if tcp != 1000*4096/200000.0 || slab != float64(want)/200000 {
		t.Fatalf("per conn %v %v", tcp, slab)
	}
	if a, b := k.perConn(0); a != 0 || b != 0 {
		t.Fatal("per conn of 0 connections")
	}
	l := strings.Join(k.lines(200000), "\n")
	for _, s := range []string{"inuse 400001", "slab TCP: 400000 objs × 2432 B", "sockstat: sockets: used 400015; TCP:", "MemAvailable 9765 MiB"} {
		if !strings.Contains(l, s) {
			t.Errorf("lines lack %q:\n%s", s, l)
		}
	}
	if _, _, _, err := parseSockstat([]byte("TCP: inuse x mem 3\n")); err == nil {
		t.Error("a bad number passed")
	}
	if _, _, _, err := parseSockstat([]byte("UDP: inuse 1 mem 3\n")); err == nil {
		t.Error("no TCP line passed")
	}
	if k := readKernelMem(filepath.Join(d, "none")); k.TCPMemPages != 0 || k.Slabs != nil {
		t.Errorf("unreadable: %+v", k)
	}
}

func TestClusterMath(t *testing.T) {
	if g := groupTargets(10, 4); !slices.Equal(g, []int{3, 3, 2, 2}) {
		t.Errorf("groupTargets(10,4) = %v", g)
	}
	if g := groupTargets(1000000, 4); !slices.Equal(g, []int{250000, 250000, 250000, 250000}) {
		t.Errorf("groupTargets(1M,4) = %v", g)
	}
	t0 := time.UnixMicro(1_000_000_000)
	if l := pushLatency(t0, 1_000_000_000+2_500_000); l != 2500 {
		t.Errorf("latency %v", l)
	}
	if pushLatency(t0, 0) != -1 || pushLatency(t0, 999_999_999) != -1 {
		t.Error("no delivery (or only an earlier one) must read -1")
	}
	res := idleResult{BytesPerConn: 800, ServerProcs: 12,
		Steps:  []idleStep{{Target: 20000, Open: 20000}, {Target: 200000, Open: 199990, Failed: 4, Closed: 6, ServerRSS: 300 << 20}},
		Kernel: &kernelMem{TCPMemPages: 100, PageSize: 4096, SlabTotal: 1 << 30},
		Push:   &pushResult{Expected: 199990, Delivered: 199990, LastMs: 1234.5, Extra: 2}}
	m := idleClusterMetrics(&res)
	want := map[string]float64{"bytes_per_conn": 800, "open": 199990, "failed": 10, "server_rss_mib": 300, "server_procs": 12,
		"push_last_ms": 1234.5, "push_delivered": 199990, "push_expected": 199990, "push_extra": 2,
		"kernel_tcp_mem_top": 409600.0 / 199990, "kernel_slab_top": float64(1<<30) / 199990}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	for _, key := range clusterIdleMetrics {
		if _, ok := m[key.key]; !ok && !strings.HasPrefix(key.key, "kernel_") && !strings.HasPrefix(key.key, "push_ms_") && key.key != "client_bytes_per_conn" {
			t.Errorf("row %s has no value", key.key)
		}
	}
	if r := positiveRatio(map[string]float64{"a": 2, "b": 0, "c": 3}, map[string]float64{"a": 4, "b": 1}); len(r) != 1 || r["a"] != 0.5 {
		t.Errorf("positiveRatio %v", r)
	}
}

func TestClusterArgs(t *testing.T) {
	if a, err := parseAPIs("ez,cf"); err != nil || !slices.Equal(a, []string{"ez", "cf"}) {
		t.Errorf("%v %v", a, err)
	}
	for _, bad := range []string{"", "ez,ez", "nchan"} {
		if _, err := parseAPIs(bad); err == nil {
			t.Errorf("--apis %q passed", bad)
		}
	}
	gs := clusterGroups([]string{"ez", "cf"}, "demo", credentials{key: "K", cfKey: "CF", secret: "S"})
	if len(gs) != 4 {
		t.Fatalf("%d groups", len(gs))
	}
	for i, g := range gs {
		mode := []string{"ws", "longpoll"}[i%2]
		if g.Mode != mode {
			t.Errorf("group %d mode %s", i, g.Mode)
		}
		// Every connection of a group is on its channel 0: the push's.
		cc := clientConfig{Kind: g.Kind, Mode: g.Mode, QName: g.QName, Key: g.Key, Channels: 1, Timeout: 120}
		path := cc.subPath(12345, "")
		if g.Kind == "halley" {
			if !strings.HasPrefix(g.Chan, "demo-b") || !strings.HasSuffix(g.Chan, "ez0") || !strings.Contains(path, "qname="+g.Chan) || g.Pub.Key != "K" {
				t.Errorf("EZComet group %+v path %s", g, path)
			}
		} else {
			if !strings.HasSuffix(g.Chan, "cf0") || !strings.Contains(path, "/CF/") || !strings.Contains(path, "identifiers="+g.Chan) || g.Pub.Secret != "S" {
				t.Errorf("Cometify group %+v path %s", g, path)
			}
		}
	}
	c, err := parseRunArgs([]string{"--cases", "idle-cluster,fanout-cluster", "--halley-cmd", "h serve --listen 127.0.0.1:1 --data {tmp}",
		"--cluster-cmd", "h cluster --nodes {nodes} --listen 127.0.0.1:1 --data {tmp}", "--nodes", "11",
		"--cluster-counts", "20000,200000", "--apis", "cf"}, &bytes.Buffer{})
	if err != nil || c.Nodes != 11 || !slices.Equal(c.ClusterCounts, []int{20000, 200000}) || !slices.Equal(c.ClusterAPIs, []string{"cf"}) {
		t.Fatalf("%+v %v", c, err)
	}
	if got := clusterCmdline(c.ClusterCmd, c.Nodes); got != "h cluster --nodes 11 --listen 127.0.0.1:1 --data {tmp}" {
		t.Errorf("cluster cmd %q", got)
	}
	r := &runner{c: c}
	if h := r.harnessCmd("idle-cluster"); !strings.Contains(h, "--nodes 11 --cluster-counts 20000,200000") {
		t.Errorf("harness command %q", h)
	}
	if _, err := parseRunArgs([]string{"--cases", "idle-cluster", "--halley-cmd", "x", "--nodes", "0"}, &bytes.Buffer{}); err == nil {
		t.Error("--nodes 0 passed")
	}
}

// TestClientDelivered: a connection counts as reached once, however many
// deliveries it gets, and the latest delivery time is kept.
func TestClientDelivered(t *testing.T) {
	var st clientStats
	st.delivered(0, 0)
	if st.got.Load() != 0 || st.last.Load() != 0 {
		t.Fatal("no delivery counted")
	}
	st.delivered(0, 2)
	st.delivered(2, 1)
	st.delivered(0, 1)
	if st.got.Load() != 2 || st.msgs.Load() != 4 || st.last.Load() == 0 {
		t.Fatalf("got %d msgs %d last %d", st.got.Load(), st.msgs.Load(), st.last.Load())
	}
	l := st.last.Load()
	st.last.Store(l + 1e12) // a later one seen by another goroutine stays
	st.delivered(0, 1)
	if st.last.Load() != l+1e12 {
		t.Fatal("last went back")
	}
	st.fail(fmt.Errorf("first"))
	st.fail(fmt.Errorf("second"))
	if *st.firstErr.Load() != "first" || st.failed.Load() != 2 {
		t.Fatal("first failure not kept")
	}
	m, ok := parseStatLine(st.line(7))
	if !ok || m["got"] != 3 || m["last"] != int(l+1e12) || m["target"] != 7 {
		t.Fatalf("stat line %v", m)
	}
}

// TestIdleMixPush: EZComet and Cometify WebSocket groups over four client
// processes against the fake fan-out server; one push per API reaches
// every connection. The fake sends its first subscriber of each channel
// every message twice (2 extra deliveries), and resume points and gap
// signals first, which are no deliveries.
func TestIdleMixPush(t *testing.T) {
	url := fanServer(t)
	cred := credentials{key: "k", cfKey: "k", secret: "s3cret"}
	gs := clusterGroups([]string{"ez", "cf"}, "u", cred)
	gs = []idleGroup{gs[0], gs[2]} // the WebSocket groups: the fake has no long-poll
	c := mixConfig{
		idleConfig: idleConfig{
			clientConfig: clientConfig{Target: url, PerIP: 20, Channels: 1, DialConc: 8, MaxLife: time.Minute, Timeout: 120},
			PID:          os.Getpid(), Counts: []int{10, 30}, Settle: 100 * time.Millisecond, OpenTimeout: 20 * time.Second, PerProcess: 10,
		},
		Groups: gs, PushWait: 10 * time.Second,
	}
	var log bytes.Buffer
	res, err := runIdleMix(context.Background(), c, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if res.Procs != 4 || len(res.Steps) != 2 || res.Steps[0].Open != 10 || res.Steps[1].Open != 30 || res.Short {
		t.Fatalf("%+v\n%s", res, log.String())
	}
	p := res.Push
	if p == nil || p.Accepted != 2 || p.Expected != 30 || p.Delivered != 30 || p.Extra != 2 || p.LastMs < 0 || len(p.Errors) != 0 {
		t.Fatalf("push %+v\n%s", p, log.String())
	}
	if len(p.Groups) != 2 || p.Groups[0].Group != "halley/ws" || p.Groups[1].Group != "cometify/ws" ||
		p.Groups[0].Delivered != 15 || p.Groups[1].Expected != 15 || p.Groups[1].LastMs < 0 || p.Groups[1].LastMs > p.LastMs {
		t.Fatalf("push per group %+v", p.Groups)
	}
	if m := idleClusterMetrics(&res); m["push_ms_cometify_ws"] != p.Groups[1].LastMs || m["push_client_cpu_ms"] != p.ClientCPUms ||
		p.ClientCPUms < 0 || p.ServerCPUms < 0 {
		t.Fatalf("per-group row: %v", m)
	}
	if res.Kernel == nil || res.ServerProcs < 1 {
		t.Fatalf("no kernel snapshot or tree: %+v", res)
	}
	// A wrong secret: the Cometify push is refused, its listeners are not
	// reached, and the result says so.
	c.Groups[1].Pub.Secret = "wrong"
	c.Counts = []int{4, 8}
	log.Reset()
	res, err = runIdleMix(context.Background(), c, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if p := res.Push; p.Accepted != 1 || p.Delivered != 4 || p.Expected != 8 || len(p.Errors) != 1 ||
		!strings.Contains(strings.Join(res.Warnings, "\n"), "reached 4 of 8") {
		t.Fatalf("push %+v warnings %v", p, res.Warnings)
	}
}

// TestStandin: the stand-in runs N copies under one pid ({i} replaced),
// passes SIGTERM on, and ends the others when one dies.
func TestStandin(t *testing.T) {
	exe, pre, env, err := clientCommand()
	if err != nil {
		t.Fatal(err)
	}
	run := func(nodes string, script string) (*exec.Cmd, *syncBuffer) {
		args := append(append([]string{}, pre[:len(pre)-1]...), "standin", "--nodes", nodes, "--", "sh", "-c", script)
		cmd := exec.Command(exe, args...)
		cmd.Env = append(os.Environ(), env...)
		out := &syncBuffer{max: 1 << 16}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, out
	}
	cmd, out := run("3", "echo node {i}; exec sleep 30")
	deadline := time.Now().Add(10 * time.Second)
	var tree []int
	for time.Now().Before(deadline) {
		if tree = treePIDs(procRoot, cmd.Process.Pid); len(tree) == 4 && strings.Count(out.String(), "node ") == 3 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(tree) != 4 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("tree %v: %s", tree, out.String())
	}
	for _, n := range []string{"node 0", "node 1", "node 2"} {
		if !strings.Contains(out.String(), n) {
			t.Errorf("no %q in %s", n, out.String())
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("standin after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatal("standin did not stop")
	}
	for _, p := range tree[1:] {
		if syscall.Kill(p, 0) == nil {
			// may be a reused pid, but not within a second of our kill
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p)); err == nil && strings.Contains(string(b), "sleep") {
				t.Errorf("node %d still running", p)
			}
		}
	}

	// Node 1 exits at once: the stand-in stops the others and fails.
	cmd, out = run("3", "if [ {i} = 1 ]; then exit 3; fi; exec sleep 30")
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(out.String(), "node 1 exited") {
			t.Errorf("standin with a dead node: %v %s", err, out.String())
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatal("standin did not stop when a node died")
	}
}

// TestRunFanoutCluster: `run --cases fanout-cluster` measures the single
// node (--halley-cmd) and the cluster (--cluster-cmd, here the stand-in
// with one fake node under it, {nodes} replaced) side by side, with the
// cluster's column and its ratio to the single node.
func TestRunFanoutCluster(t *testing.T) {
	t.Setenv("HALLEY_BENCH_TEST_SERVER", "1")
	t.Setenv("HALLEY_BENCH_TEST_FANOUT", "1")
	saved := fanoutCases["fanout-cluster"]
	fanoutCases["fanout-cluster"] = struct {
		subs, msgs int
		rate       float64
	}{20, 10, 100}
	t.Cleanup(func() { fanoutCases["fanout-cluster"] = saved })
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	addr := freePort(t)
	var stdout, stderr bytes.Buffer
	// The stand-in is the test binary as a client (Main), its node the
	// test binary as the fake server.
	cluster := "env HALLEY_BENCH_TEST_CLIENT=1 " + exe + " standin --nodes {nodes} -- env HALLEY_BENCH_TEST_CLIENT= " + exe + " --data {tmp} --listen " + addr
	code := Main([]string{"run", "--halley-cmd", exe + " --data {tmp} --listen " + addr, "--cluster-cmd", cluster, "--nodes", "1",
		"--cases", "fanout-cluster", "--runs", "1", "--per-process", "12", "--size", "50", "--out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	md, err := os.ReadFile(filepath.Join(out, "fanout-cluster.md"))
	if err != nil || !strings.Contains(string(md), "| Halley (median of 1) | Halley cluster (median of 1) | Cluster / single node |") ||
		!strings.Contains(string(md), "standin --nodes 1 --") {
		t.Fatalf("markdown %v\n%s", err, md)
	}
	jl, _ := os.ReadFile(filepath.Join(out, "results.jsonl"))
	var cr caseResult
	if err := json.Unmarshal(bytes.TrimSpace(jl), &cr); err != nil || cr.Cluster == nil || cr.Halley == nil || len(cr.Cluster.Runs) != 1 {
		t.Fatalf("%v %s", err, jl)
	}
	// The fake drops one message and duplicates ten on purpose, behind
	// the stand-in as alone.
	for _, m := range []map[string]float64{cr.Halley.Median, cr.Cluster.Median} {
		if m["open"] != 20 || m["missing"] != 1 || m["duplicates"] != 10 {
			t.Fatalf("%+v", m)
		}
	}
	if cr.RatioCluster["open"] != 1 {
		t.Fatalf("ratio %+v", cr.RatioCluster)
	}
}

// FuzzKernelText: the /proc text parsers of the kernel snapshot take any
// input without a panic; what a TCP line gives reads the same again in
// the kernel's own form, a
// slab line is only returned for a name asked, with bytes = objects ×
// size, and a tree's stat line gives a ppid or an error.
func FuzzKernelText(f *testing.F) {
	f.Add([]byte("sockets: used 5\nTCP: inuse 1 orphan 0 tw 12 alloc 1 mem 414\nUDP: inuse 0 mem 0\n"))
	f.Add([]byte("TCP               400000 400010   2432   13    8 : tunables    0    0    0 : slabdata  30770  30770      0\ndentry 1 1 192 21 1\n"))
	f.Add([]byte("MemAvailable:   10000000 kB\nSUnreclaim: 7\n"))
	f.Add([]byte("100 (x) S 1 (y) S 7 1 1 0 -1 0 0 0 0 0 3 4\n"))
	f.Add([]byte("TCP: mem\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if inuse, alloc, mem, err := parseSockstat(b); err == nil {
			// What it read, written as the kernel writes it, reads the same.
			canon := fmt.Sprintf("TCP: inuse %d orphan 0 tw 0 alloc %d mem %d\n", inuse, alloc, mem)
			if i, a, m, err := parseSockstat([]byte(canon)); err != nil || i != inuse || a != alloc || m != mem {
				t.Fatalf("%q read as %d %d %d, its rendering %q as %d %d %d %v", b, inuse, alloc, mem, canon, i, a, m, err)
			}
		}
		for _, s := range parseSlabLines(b, kernelSlabs) {
			if !slices.Contains(kernelSlabs, s.Name) || s.Bytes != s.Active*s.ObjSize {
				t.Fatalf("slab %+v from %q", s, b)
			}
		}
		parseMeminfo(b, "MemAvailable")
		parseStatPPID(b)
		parseStatCPU(b)
	})
}
