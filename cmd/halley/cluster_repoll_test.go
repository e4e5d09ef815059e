package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halleypush/halley/promtext/promcheck"
)

// The re-poll burst (issue 17's bench finding): one push answers every
// waiting long-poll at once, and every client re-issues its poll at once
// on the same connection. Each re-poll needs a store read to place it
// (from its tick, from its ids), and a light node's reads are NATS round
// trips, so the burst piles up behind the reader pool. A re-poll must
// wait for its read, never be answered 503 "storage unavailable" while
// the store is there (C-10): a client that does not re-dial after a 503
// is lost to every later push.

// repollClients is how many long-polls a burst test holds, split between
// EZComet /read and Cometify /{key}/poll: enough that a burst of re-polls
// outruns a node's reader pool many times over, few enough for a shared
// 2-core machine (each is a goroutine and a socket in this process).
const (
	repollEZ = 2400
	repollCF = 1200
	// repollPerIP spreads the clients over 127.x.y.z source addresses,
	// below the account's listener cap per IP (30) and the node's
	// connection cap per IP.
	repollPerIP = 20
)

// repollTarget is the node the long-polls hold, and how the test writes
// and pushes (through any node of the service).
type repollTarget struct {
	addr    string // host:port of the node holding the polls
	qname   string
	ident   string
	cfKey   string
	metrics string // the polled node's /metrics URL
	write   func(tick, msg string) clusterAnswer
	push    func(text string, id int) clusterAnswer
}

// repollResult is what one client saw.
type repollResult struct {
	status [2]int    // per round; 0: no answer (connection error, timeout)
	body   [2]string // per round
	err    error
}

// repollSync is what the clients tell the test: each is Done once per
// client on its first poll sent (or its end), on its re-poll sent (or its
// end), and at its end; failed counts the clients that ended in error,
// by API.
type repollSync struct {
	polled, repolled, finished sync.WaitGroup
	failed                     [2]atomic.Int64
}

func (y *repollSync) add(n int) {
	y.polled.Add(n)
	y.repolled.Add(n)
	y.finished.Add(n)
}

// repollClient holds one keep-alive connection: a poll from resume, its
// answer, at once a re-poll from where the answer left it, its answer.
func repollClient(tg *repollTarget, i int, cf bool, y *repollSync, out *repollResult) {
	stage := 0 // 0: polling, 1: re-polling, 2: waiting for the re-poll's answer
	defer func() {
		if out.err != nil {
			y.failed[b2i(cf)].Add(1)
		}
		if stage < 1 {
			y.polled.Done()
		}
		if stage < 2 {
			y.repolled.Done()
		}
		y.finished.Done()
	}()
	ip := i / repollPerIP
	d := net.Dialer{Timeout: 10 * time.Second,
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 1+byte(ip/250), byte(ip%250), 1)}}
	conn, err := d.Dial("tcp", tg.addr)
	if err != nil {
		out.err = err
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(90 * time.Second))
	br := bufio.NewReader(conn)
	path := "/read?timeout=60&qname=" + url.QueryEscape(tg.qname) + "&tick=t0"
	if cf {
		path = "/" + tg.cfKey + "/poll?timeout=60&identifiers=" + url.QueryEscape(tg.ident+":1")
	}
	for round := range 2 {
		if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: halley\r\n\r\n", path); err != nil {
			out.err = err
			return
		}
		if round == 0 {
			y.polled.Done()
		} else {
			y.repolled.Done()
		}
		stage++
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			out.err = fmt.Errorf("round %d: %w", round, err)
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		out.status[round], out.body[round] = resp.StatusCode, string(b)
		if err != nil || resp.StatusCode != 200 {
			out.err = fmt.Errorf("round %d: %d %s %v", round, resp.StatusCode, b, err)
			return
		}
		if round == 1 {
			return
		}
		// Re-poll from where the answer leaves this client (EZ-R-06, CF-L-02).
		var v struct {
			Messages [][2]string `json:"messages"`
			Since    string      `json:"since"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			out.err = fmt.Errorf("round 0: %q: %w", b, err)
			return
		}
		if cf {
			path = "/" + tg.cfKey + "/poll?timeout=60&identifiers=" + url.QueryEscape(v.Since)
		} else if len(v.Messages) > 0 {
			path = "/read?timeout=60&qname=" + url.QueryEscape(tg.qname) + "&tick=" + url.QueryEscape(v.Messages[len(v.Messages)-1][0])
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// metricValue reads one unlabelled series from a Prometheus text page.
func metricValue(t *testing.T, u, name string) float64 {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(u)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metrics: %s: %v", l, err)
			}
			return f
		}
	}
	t.Fatalf("metrics: no %s in %s", name, u)
	return 0
}

// waitPolls waits (bounded) until the node holds at least ez and cf
// waiting polls. Only the burst's shape rests on it: a poll that is not
// waiting yet when the write comes reads the message from the store.
func waitPolls(t *testing.T, tg *repollTarget, ez, cf int) {
	t.Helper()
	end := time.Now().Add(30 * time.Second)
	for time.Now().Before(end) {
		if metricValue(t, tg.metrics, "halley_polls_waiting") >= float64(ez) &&
			metricValue(t, tg.metrics, "halley_cf_polls_waiting") >= float64(cf) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("only %v EZComet and %v Cometify polls waiting, want %d and %d",
		metricValue(t, tg.metrics, "halley_polls_waiting"), metricValue(t, tg.metrics, "halley_cf_polls_waiting"), ez, cf)
}

// runRepollBurst holds repollEZ + repollCF long-polls on tg's node, makes
// one write and one push that answer them all at once, lets every client
// re-poll at once, then makes a second write and push. Every client must
// get each message exactly once, in 200 answers: no 503.
func runRepollBurst(t *testing.T, tg *repollTarget) {
	wantOK(t, "write t0", tg.write("t0", "m0"))
	wantOK(t, "push 1", tg.push("p1", 1))
	n := repollEZ + repollCF
	res := make([]repollResult, n)
	var y repollSync
	y.add(n)
	for i := range n {
		go repollClient(tg, i, i >= repollEZ, &y, &res[i])
	}
	y.polled.Wait()
	waitPolls(t, tg, repollEZ, repollCF)

	// One write and one push answer every waiting poll; each client
	// re-polls at once. Wait (bounded) for the re-polls to be held before
	// the second write.
	wantOK(t, "write t1", tg.write("t1", "m1"))
	wantOK(t, "push 2", tg.push("p2", 2))
	y.repolled.Wait()
	waitPolls(t, tg, repollEZ-int(y.failed[0].Load()), repollCF-int(y.failed[1].Load()))
	wantOK(t, "write t2", tg.write("t2", "m2"))
	wantOK(t, "push 3", tg.push("p3", 3))
	done := make(chan struct{})
	go func() { y.finished.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("clients still waiting 90 s after the last write")
	}

	var refused, wrong int
	first := ""
	for i := range res {
		r := &res[i]
		m1, m2 := `["t1","m1"]`, `["t2","m2"]`
		if i >= repollEZ {
			m1, m2 = `"data":"p2"`, `"data":"p3"`
		}
		ok := r.err == nil && strings.Count(r.body[0], m1) == 1 && strings.Count(r.body[1], m2) == 1 &&
			!strings.Contains(r.body[1], m1) && !strings.Contains(r.body[0], m2)
		if r.status[0] == 503 || r.status[1] == 503 {
			refused++
		}
		if !ok {
			wrong++
			if first == "" {
				first = fmt.Sprintf("client %d: %d %q, %d %q, %v", i, r.status[0], r.body[0], r.status[1], r.body[1], r.err)
			}
		}
	}
	t.Logf("%d clients: %d answered 503, %d without both messages once; reads refused by the node: %v",
		n, refused, wrong, metricValue(t, tg.metrics, "halley_reads_refused_total"))
	if refused > 0 || wrong > 0 {
		t.Fatalf("%d of %d long-poll clients answered 503, %d without both messages exactly once; first: %s",
			refused, n, wrong, first)
	}
}

// testClusterRepollBurst: the burst on a light node, the messages taken
// by the other light node. Then the light node's /metrics: it passes
// promcheck and carries its Link's series (halley_cluster_*), which
// counted the deliveries it followed.
func testClusterRepollBurst(t *testing.T, bin string) {
	c := startCluster(t, bin)
	l1, l2 := c.lights[0], c.lights[1]
	runRepollBurst(t, &repollTarget{addr: l1.addr, qname: "demo-burst", ident: "burst", cfKey: c.cfKey,
		metrics: l1.base + "/metrics",
		write:   func(tick, msg string) clusterAnswer { return c.write(l2, c.key, "demo-burst", tick, msg) },
		push:    func(text string, id int) clusterAnswer { return c.push(l2, "burst", text, id) },
	})

	resp, err := http.Get(l1.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	fams, err := promcheck.Parse(text)
	if err != nil {
		t.Fatalf("light node /metrics: %v", err)
	}
	// t1, t2, p2 and p3 at least reached it over NATS while it followed;
	// the re-polls from one tick (one set of ids) shared requests to the
	// store node (cluster/coalesce.go): 2,400 identical reads at once
	// cannot all find none waiting to be sent.
	for name, least := range map[string]float64{"halley_cluster_deliveries_total": 4, "halley_cluster_nats_connected": 1,
		"halley_cluster_reads_joined_total": 1} {
		f := fams[name]
		if f == nil || len(f.GetMetric()) != 1 {
			t.Fatalf("light node /metrics: no %s", name)
		}
		m := f.GetMetric()[0]
		if v := m.GetCounter().GetValue() + m.GetGauge().GetValue(); v < least {
			t.Fatalf("light node /metrics: %s = %v, want at least %v", name, v, least)
		}
	}
	for _, name := range []string{"halley_cluster_gaps_total", "halley_cluster_slow_consumer_total", "halley_cluster_reconnects_total",
		"halley_cluster_duplicates_total", "halley_cluster_out_dropped_total", "halley_cluster_followed"} {
		if fams[name] == nil {
			t.Fatalf("light node /metrics: no %s", name)
		}
	}
}

// TestRepollBurstSingleNode: the same burst on a single node (no
// --nats), whose reads are Pebble's: its reader pool is as bounded.
func TestRepollBurstSingleNode(t *testing.T) {
	bin := buildHalley(t, "")
	c := &testCluster{t: t, bin: bin, dir: t.TempDir()}
	t.Cleanup(func() {
		if c.store != nil && c.store.cmd.ProcessState == nil {
			_ = c.store.cmd.Process.Kill()
			_ = c.store.cmd.Wait()
		}
	})
	c.store = c.startNode(roleStore, freePort(t))
	nd := c.store
	runRepollBurst(t, &repollTarget{addr: nd.addr, qname: "demo-burst", ident: "burst", cfKey: c.cfKey,
		metrics: nd.base + "/metrics",
		write:   func(tick, msg string) clusterAnswer { return c.write(nd, c.key, "demo-burst", tick, msg) },
		push:    func(text string, id int) clusterAnswer { return c.push(nd, "burst", text, id) },
	})
}
