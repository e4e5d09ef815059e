package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeHalley is the test binary run as --halley-cmd: "--listen ADDR
// --data DIR [--sync=none]"; it prints a demo key and answers /healthz and
// /write until SIGTERM.
func fakeHalley(args []string) {
	addr, data := "", ""
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--listen":
			addr = args[i+1]
		case "--data":
			data = args[i+1]
		}
	}
	if st, err := os.Stat(data); err != nil || !st.IsDir() {
		fmt.Println("no data dir", data)
		os.Exit(3)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		os.Exit(3)
	}
	fmt.Println("created account demo: api_key=0123456789abcdef0123456789abcdef cf_api_key=fedcba9876543210fedcba9876543210 api_secret=fake_secret-1")
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"code":"ok"}`) })
	if os.Getenv("HALLEY_BENCH_TEST_FANOUT") == "1" {
		fanHandlers(mux, "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210", "fake_secret-1")
	} else {
		mux.HandleFunc("/write", writeHandler)
	}
	go http.Serve(ln, mux)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM)
	select {
	case <-ch:
	case <-time.After(time.Minute):
	}
	os.Exit(0)
}

func writeHandler(w http.ResponseWriter, r *http.Request) {
	if r.FormValue("api_key") != "0123456789abcdef0123456789abcdef" {
		w.WriteHeader(401)
		return
	}
	time.Sleep(time.Millisecond)
	io.WriteString(w, `{"code":"ok","tick":"x"}`)
}

// fakePeerDir is a peer directory whose start.sh runs the test binary as
// the fake server on addr (the Centrifuge peer's endpoints with
// HALLEY_BENCH_TEST_FANOUT=1) and prints its pid, as the real scripts
// do; stop.sh stops it by that pid.
func fakePeerDir(t *testing.T, exe, addr string) string {
	d := t.TempDir()
	start := "#!/bin/sh\nD=" + d + "\nmkdir -p $D/data\n" +
		exe + " --listen " + addr + " --data $D/data > $D/log 2>&1 < /dev/null &\n" +
		"echo $! > $D/pid\necho \"fake peer started: pid $!\"\n"
	stop := "#!/bin/sh\nD=" + d + "\nP=$(cat $D/pid)\nkill $P\nwhile kill -0 $P 2>/dev/null; do sleep 0.05; done\nrm -f $D/pid\n"
	for name, body := range map[string]string{"start.sh": start, "stop.sh": stop} {
		if err := os.WriteFile(filepath.Join(d, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestRunWriteEndToEnd(t *testing.T) {
	t.Setenv("HALLEY_BENCH_TEST_SERVER", "1")
	t.Setenv("HALLEY_BENCH_TEST_FANOUT", "1") // the fake serves the Centrifuge peer's POST /pub/<ch> too
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	addr, peerAddr := freePort(t), freePort(t)
	var stdout, stderr bytes.Buffer
	code := Main([]string{"run", "--halley-cmd", exe + " --data {tmp} --listen " + addr,
		"--centrifuge", "--centrifuge-dir", fakePeerDir(t, exe, peerAddr), "--centrifuge-url", "http://" + peerAddr,
		"--cases", "write-synced,write-nosync,publish-256,write-cf-synced", "--runs", "2", "--duration", "150ms", "--conns", "2",
		"--channels", "3", "--sync-dir", t.TempDir(), "--out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	md, err := os.ReadFile(filepath.Join(out, "write-nosync.md"))
	if err != nil || !strings.Contains(string(md), "| req/s |") || !strings.Contains(string(md), "--sync=none") ||
		!strings.Contains(string(md), "Centrifuge: `") || !strings.Contains(string(md), "the publish-centrifuge runs of this invocation") {
		t.Fatalf("markdown %v\n%s", err, md)
	}
	md, err = os.ReadFile(filepath.Join(out, "publish-256.md"))
	if err != nil || !strings.Contains(string(md), "--conns 256") || !strings.Contains(string(md), "publish-256 (centrifuge) runs") {
		t.Fatalf("markdown %v\n%s", err, md)
	}
	jl, err := os.ReadFile(filepath.Join(out, "results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(jl)), "\n")
	if len(lines) != 4 {
		t.Fatalf("jsonl %q", jl)
	}
	var cr caseResult
	if err := json.Unmarshal([]byte(lines[0]), &cr); err != nil || cr.Case != "write-synced" || cr.Halley == nil ||
		len(cr.Halley.Runs) != 2 || cr.Halley.Median["req_per_sec"] <= 0 || cr.Halley.Median["errors"] != 0 {
		t.Fatalf("case %v %+v", err, cr)
	}
	// The fdatasync latency of this run and P4's target from it.
	r0 := cr.Halley.Runs[0]
	if r0["fdatasync_p50_us"] <= 0 || r0["p4_target"] != p4Target(2, r0["fdatasync_p50_us"]) || r0["over_p4_target"] != r0["req_per_sec"]/r0["p4_target"] ||
		cr.Centrifuge == nil || cr.Centrifuge.Median["req_per_sec"] <= 0 {
		t.Fatalf("write-synced %+v %+v", cr.Halley.Median, cr.Centrifuge)
	}
	if err := json.Unmarshal([]byte(lines[2]), &cr); err != nil || cr.Case != "publish-256" || len(cr.Halley.Runs) != 2 || len(cr.Centrifuge.Runs) != 2 {
		t.Fatalf("publish-256 %v %s", err, lines[2])
	}
	// Cometify pushes, signed with the secret the server printed (the
	// fake refuses a wrong signature), beside /write (P4b).
	cr = caseResult{}
	if err := json.Unmarshal([]byte(lines[3]), &cr); err != nil || cr.Case != "write-cf-synced" || len(cr.Halley.Runs) != 2 ||
		cr.Halley.Median["errors"] != 0 || cr.Halley.Median["req_per_sec"] <= 0 || !strings.Contains(cr.Command, "--kind cometify --key K --secret S") {
		t.Fatalf("write-cf-synced %v %s", err, lines[3])
	}
	// Every server was stopped: the port is free again.
	time.Sleep(100 * time.Millisecond)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("server still running: %v", err)
	}
	ln.Close()
}

func TestP4Target(t *testing.T) {
	// 16 publishers, fdatasync p50 150 µs: 0.6 × 16 / 200 µs = 48,000 req/s.
	if v := p4Target(16, 150); v < 47999.999 || v > 48000.001 {
		t.Fatal(v)
	}
}

func TestRunHelpers(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median %v", m)
	}
	if median(nil) != 0 {
		t.Error("empty median")
	}
	if u := listenURL(strings.Fields("halley serve --data x --listen 127.0.0.1:9")); u != "http://127.0.0.1:9" {
		t.Errorf("listen %q", u)
	}
	if u := listenURL([]string{"--listen=127.0.0.1:7"}); u != "http://127.0.0.1:7" {
		t.Errorf("listen %q", u)
	}
	if u := listenURL(nil); u != "http://127.0.0.1:8080" {
		t.Errorf("listen %q", u)
	}
	a := halleyArgs("h serve --data {tmp}/d", "/t", []string{"--sync=none"})
	if strings.Join(a, " ") != "h serve --data /t/d --sync=none" {
		t.Errorf("args %q", a)
	}
	if k := keyRE.FindString("demo key: 0123456789abcdef0123456789abcdef secret x"); k != "0123456789abcdef0123456789abcdef" {
		t.Errorf("key %q", k)
	}
	c, err := parseRunArgs([]string{"--halley-cmd", "h serve --listen 127.0.0.1:5", "--nchan"}, io.Discard)
	if err != nil || c.HalleyURL != "http://127.0.0.1:5" || c.Runs != 3 || len(c.Cases) != 10 || !c.Nchan {
		t.Errorf("run args %+v %v", c, err)
	}
	if c, err := parseRunArgs([]string{"--cases", "floor"}, io.Discard); err != nil || len(c.Cases) != 1 {
		t.Errorf("the floor alone needs no server: %v", err)
	}
	for _, bad := range [][]string{{}, {"--cases", "floor,idle-ws"}, {"--nchan", "--cases", "nope"}, {"--nchan", "--runs", "0"}, {"--nchan", "--counts", "9"}} {
		if _, err := parseRunArgs(bad, io.Discard); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, tc := range []struct{ name, kind, mirror string }{
		{"idle-ws", "halley", "idle-ws"},
		{"idle-cf-longpoll", "cometify", "idle-longpoll"},
		{"cf-fanout-10k", "cometify", "fanout-10k"},
		{"write-synced", "halley", "write-synced"},
	} {
		if k, m := caseAPI(tc.name); k.name() != tc.kind || m != tc.mirror {
			t.Errorf("%s: %s %s", tc.name, k, m)
		}
	}
	r := &runner{c: c}
	for _, tc := range []struct{ name, want string }{
		{"idle-cf-ws", "halley bench idle --mode ws --counts 2000,18000 --settle 10s --per-process 18000 --per-ip 20 --reopen 3 --channels 100 --target URL --pid PID [--kind cometify --key K | --kind nchan | --kind centrifuge]"},
		{"idle-longpoll", "--mode longpoll --counts 2000,18000 --settle 10s --per-process 18000 --per-ip 20 --reopen 3 --channels 100 --target URL --pid PID [--user U | --kind nchan]"},
		{"cf-fanout-10k", "halley bench fanout --subs 10000 --msgs 200 --rate 20 --size 100 --per-process 18000 --target URL --pid PID [--kind cometify --key K --secret S | --kind nchan | --kind centrifuge]"},
		{"fanout-1k", "--subs 1000 --msgs 2000 --rate 500 --size 100 --per-process 18000 --target URL --pid PID [--key K --user U | --kind nchan | --kind centrifuge]"},
	} {
		if got := r.harnessCmd(tc.name); !strings.HasSuffix(got, tc.want) {
			t.Errorf("%s: %q", tc.name, got)
		}
	}
	out := "created account demo: api_key=0123456789abcdef0123456789abcdef cf_api_key=fedcba9876543210fedcba9876543210 api_secret=Ab_c-1234567890xyz\nhalley serving"
	if cred := r.serverCredentials(out); cred.key != "0123456789abcdef0123456789abcdef" || cred.cfKey != "fedcba9876543210fedcba9876543210" || cred.secret != "Ab_c-1234567890xyz" {
		t.Errorf("credentials %+v", cred)
	}
	r.c.Key, r.c.Secret = "given", "given-secret"
	if cred := r.serverCredentials(out); cred.key != "given" || cred.secret != "given-secret" {
		t.Errorf("flags not preferred: %+v", cred)
	}
	// A Cometify case reuses its EZComet twin's Nchan runs of this invocation.
	prior := &side{Runs: []map[string]float64{{"bytes_per_conn": 10400}}}
	r = &runner{c: runConfig{Nchan: true, Runs: 3, NchanDir: "/nchan"}, log: io.Discard,
		peers: map[string]peerRuns{"nchan idle-ws": {"idle-ws", prior}}}
	shared := &caseResult{Case: "idle-cf-ws"}
	r.sideBySide(context.Background(), shared, "idle-ws", "ws", cfKind{}, func(context.Context, serverKind, *instance, credentials) (outcome, error) {
		t.Fatal("Nchan measured again")
		return outcome{}, nil
	})
	if shared.Nchan != prior || shared.Halley != nil || !strings.Contains(shared.NchanCmd, "the Nchan runs of idle-ws in this invocation") {
		t.Errorf("shared %+v", shared)
	}
	// An interrupted invocation saves nothing and starts no server.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r = &runner{c: runConfig{HalleyCmd: "/nonexistent/halley", Runs: 3, Cases: []string{"idle-cf-ws", "write-synced"},
		Out: t.TempDir()}, log: io.Discard, peers: map[string]peerRuns{}}
	if code := r.runCases(ctx, io.Discard); code != 1 {
		t.Errorf("interrupted run exit %d", code)
	}
	if ents, _ := os.ReadDir(r.c.Out); len(ents) != 0 {
		t.Errorf("interrupted run saved %d files", len(ents))
	}
	if m := machineLoad(); !strings.Contains(m, " CPUs, load average ") {
		t.Errorf("machine %q", m)
	}
	cr := &caseResult{Case: "idle-ws", Time: "now", Command: "cmd", metrics: idleMetrics, Machine: "2 CPUs", Note: "built from x",
		Halley: &side{Runs: []map[string]float64{{"bytes_per_conn": 900}, {"bytes_per_conn": 1100}, {"bytes_per_conn": 1000}}},
		Nchan:  &side{Runs: []map[string]float64{{"bytes_per_conn": 10000}}, Errors: []string{"boom"}}}
	cr.finish()
	if cr.Ratio["bytes_per_conn"] != 0.1 {
		t.Errorf("ratio %v", cr.Ratio)
	}
	md := cr.markdown()
	for _, want := range []string{"| server RSS slope, B/conn | 1000 | 10000 | 0.10× |", "Halley (median of 3)", "Nchan run failed: boom",
		"Machine: 2 CPUs (client and server share the CPUs).", "Note: built from x"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestRunFanoutEndToEnd(t *testing.T) {
	t.Setenv("HALLEY_BENCH_TEST_SERVER", "1")
	t.Setenv("HALLEY_BENCH_TEST_FANOUT", "1")
	saved := fanoutCases["fanout-1k"]
	savedCF := fanoutCases["cf-fanout-10k"]
	fanoutCases["fanout-1k"] = struct {
		subs, msgs int
		rate       float64
	}{20, 10, 100}
	fanoutCases["cf-fanout-10k"] = fanoutCases["fanout-1k"]
	t.Cleanup(func() {
		fanoutCases["fanout-1k"] = saved
		fanoutCases["cf-fanout-10k"] = savedCF
	})
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	addr := freePort(t)
	peerAddr := freePort(t)
	var stdout, stderr bytes.Buffer
	code := Main([]string{"run", "--halley-cmd", exe + " --data {tmp} --listen " + addr,
		"--centrifuge", "--centrifuge-dir", fakePeerDir(t, exe, peerAddr), "--centrifuge-url", "http://" + peerAddr,
		"--cases", "fanout-1k,cf-fanout-10k", "--runs", "2", "--per-process", "12", "--size", "50", "--floor-socks", "20", "--out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	md, err := os.ReadFile(filepath.Join(out, "fanout-1k.md"))
	if err != nil || !strings.Contains(string(md), "| deliveries/s |") || !strings.Contains(string(md), "--subs 20 --msgs 10") ||
		!strings.Contains(string(md), "| Centrifuge (median of 2) | Halley / Centrifuge |") ||
		!strings.Contains(string(md), "| server CPU per delivery ÷ single-frame floor (P2b: ≤ 1.25) |") ||
		!strings.Contains(string(md), "Floor of this invocation (median of 2, one thread writing a 52-byte frame to 20 loopback sockets") {
		t.Fatalf("markdown %v\n%s", err, md)
	}
	md, err = os.ReadFile(filepath.Join(out, "cf-fanout-10k.md"))
	if err != nil || !strings.Contains(string(md), "--kind cometify --key K --secret S") ||
		!strings.Contains(string(md), "| out-of-order deliveries (seq, Cometify push id) | 1.00 |") {
		t.Fatalf("markdown %v\n%s", err, md)
	}
	jl, _ := os.ReadFile(filepath.Join(out, "results.jsonl"))
	lines := strings.Split(strings.TrimSpace(string(jl)), "\n")
	if len(lines) != 2 {
		t.Fatalf("jsonl %s", jl)
	}
	// A plot per case, the latency CDF, and deliveries/s against subscribers.
	for _, f := range []string{"fanout-1k.png", "cf-fanout-10k.png", "fanout-rates.png"} {
		isPNG(t, filepath.Join(out, f))
	}
	for i, name := range []string{"fanout-1k", "cf-fanout-10k"} {
		var cr caseResult
		if err := json.Unmarshal([]byte(lines[i]), &cr); err != nil || cr.Case != name || cr.Halley == nil || len(cr.Halley.Runs) != 2 {
			t.Fatalf("case %v %s", err, lines[i])
		}
		// The fake server drops one message, duplicates ten and swaps two
		// on purpose; the Cometify pushes are signed with the secret the
		// server printed.
		if m := cr.Halley.Median; m["missing"] != 1 || m["duplicates"] != 10 || m["out_of_order"] != 1 || m["open"] != 20 ||
			m["rate_kept"] != 0 || m["listener_min"] != 9 || m["listener_max"] != 10 || m["missed_msgs"] != 1 {
			t.Fatalf("%s: %+v", name, m)
		}
		// The Centrifuge peer's fake packs two pushes per frame and loses
		// nothing; measured in fanout-1k, its runs are reused for the
		// Cometify twin.
		if cr.Centrifuge == nil || len(cr.Centrifuge.Runs) != 2 || cr.RatioCentrifuge == nil {
			t.Fatalf("%s: centrifuge side %+v", name, cr.Centrifuge)
		}
		if m := cr.Centrifuge.Median; m["missing"] != 0 || m["duplicates"] != 0 || m["out_of_order"] != 0 || m["open"] != 20 ||
			m["listener_min"] != 10 || m["deliveries_per_sec"] <= 0 {
			t.Fatalf("%s: centrifuge %+v", name, m)
		}
	}
	if _, err := parseRunArgs([]string{"--nchan", "--cases", "fanout-10k,fanout-1k"}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := parseRunArgs([]string{"--nchan", "--cases", "fanout-2k"}, io.Discard); err == nil {
		t.Fatal("unknown case accepted")
	}
}
