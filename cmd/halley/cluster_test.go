package main

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/halleypush/halley/cluster"
)

// Issue 17 (S-02, S-03): three real nodes, one store node and two light
// nodes, each on its own port so that a test knows which node it talks
// to, joined by an embedded nats-server that this test process runs (so
// that it can restart it). Every check is what a client sees over real
// sockets.

// testCluster is one service under test.
type testCluster struct {
	t      *testing.T
	bin    string
	dir    string // the store node's data directory
	nats   *cluster.EmbeddedNATS
	port   int // NATS's port, kept across a restart
	store  *clusterNode
	lights [2]*clusterNode
	// the demo account's credentials, as the store node printed them
	key, cfKey, secret string
}

// clusterNode is one `halley serve --nats` child. Two loops each, so that
// a channel's readers spread over loops (their interest nests).
type clusterNode struct {
	role  string
	addr  string
	base  string
	admin string // its internal listener's base URL
	cmd   *exec.Cmd
}

func startCluster(t *testing.T, bin string) *testCluster {
	t.Helper()
	n, err := cluster.StartNATS(cluster.NATSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, bin: bin, dir: t.TempDir(), nats: n, port: n.Port()}
	t.Cleanup(func() {
		for _, nd := range append([]*clusterNode{c.store}, c.lights[:]...) {
			if nd != nil && nd.cmd.ProcessState == nil {
				_ = nd.cmd.Process.Kill()
				_ = nd.cmd.Wait()
			}
		}
		if c.nats != nil {
			c.nats.Close()
		}
	})
	c.store = c.startNode(roleStore, freePort(t))
	for i := range c.lights {
		c.lights[i] = c.startNode(roleLight, freePort(t))
	}
	return c
}

// startNode starts a node and waits for its "halley serving" line (and,
// on the store node, the demo account's credentials before it).
func (c *testCluster) startNode(role, addr string) *clusterNode {
	c.t.Helper()
	args := []string{"serve", "--data", c.dir, "--listen", addr, "--loops", "2", "--ez-max-queue", "100000", "--log-level", "warn", "--admin-listen", "127.0.0.1:0"}
	if c.nats != nil { // else a single node
		args = append(args, "--nats", c.nats.URL(), "--node-role", role)
	}
	cmd := exec.Command(c.bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	nd := &clusterNode{role: role, addr: addr, base: "http://" + addr, cmd: cmd}
	lines := bufio.NewScanner(out)
	deadline := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
	defer deadline.Stop()
	serving := false
	for !serving && lines.Scan() {
		l := lines.Text()
		if _, rest, ok := strings.Cut(l, " api_key="); ok {
			c.key = strings.Fields(rest)[0]
		}
		if _, rest, ok := strings.Cut(l, "cf_api_key="); ok {
			c.cfKey = strings.Fields(rest)[0]
		}
		if _, rest, ok := strings.Cut(l, "api_secret="); ok {
			c.secret = strings.Fields(rest)[0]
		}
		if _, rest, ok := strings.Cut(l, "halley internal listener "); ok {
			nd.admin = strings.TrimSuffix(strings.Fields(rest)[0], "/")
		}
		serving = strings.HasPrefix(l, "halley serving")
	}
	go func() { _, _ = bufioDrain(lines) }()
	if !serving || c.key == "" || nd.admin == "" {
		c.t.Fatalf("%s node on %s did not start (credentials %q, internal listener %q)", role, addr, c.key, nd.admin)
	}
	c.waitHealth(nd, 200, 10*time.Second)
	st, body := 0, ""
	for end := time.Now().Add(10 * time.Second); st != 200 && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		st, body = readyz(nd)
	}
	if st != 200 {
		c.t.Fatalf("%s node on %s: /readyz %d %s, want 200", role, addr, st, body)
	}
	return nd
}

// waitHealth waits until nd's /healthz answers status.
func (c *testCluster) waitHealth(nd *clusterNode, status int, within time.Duration) {
	c.t.Helper()
	client := &http.Client{Timeout: time.Second}
	end := time.Now().Add(within)
	got := 0
	for time.Now().Before(end) {
		if resp, err := client.Get(nd.base + "/healthz"); err == nil {
			got = resp.StatusCode
			resp.Body.Close()
			if got == status {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("%s node %s: /healthz %d, want %d within %s", nd.role, nd.addr, got, status, within)
}

// clusterAnswer is a decoded JSON answer.
type clusterAnswer struct {
	status int
	v      map[string]any
	err    error
}

func (a clusterAnswer) str(k string) string { s, _ := a.v[k].(string); return s }

func postForm(base, path string, form url.Values) clusterAnswer {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.PostForm(base+path, form)
	if err != nil {
		return clusterAnswer{err: err}
	}
	defer resp.Body.Close()
	a := clusterAnswer{status: resp.StatusCode}
	a.err = json.NewDecoder(resp.Body).Decode(&a.v)
	return a
}

func (c *testCluster) write(nd *clusterNode, key, qname, tick, msg string) clusterAnswer {
	return postForm(nd.base, "/write", url.Values{"api_key": {key}, "qname": {qname}, "tick": {tick}, "msg": {msg}})
}

// push pushes text to the demo account's ident with push_id id.
func (c *testCluster) push(nd *clusterNode, ident, text string, id int) clusterAnswer {
	sum := md5.Sum([]byte(c.cfKey + md5hex(c.secret) + ident + text))
	form := url.Values{"identifier": {ident}, "secret": {"0"}, "text": {text},
		"secure": {hex.EncodeToString(sum[:])}, "push_id": {strconv.Itoa(id)}}
	return postForm(nd.base, "/"+c.cfKey+"/push/"+ident, form)
}

func wantOK(t *testing.T, what string, a clusterAnswer) {
	t.Helper()
	if a.err != nil || a.status != 200 || a.str("code") != "ok" {
		t.Fatalf("%s: %d %v (%v)", what, a.status, a.v, a.err)
	}
}

// wsClient reads text frames from a WebSocket (EZComet reader or
// Cometify listener).
type wsClient struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func dialWS(t *testing.T, u string) *wsClient {
	t.Helper()
	conn, br, _, err := ws.Dial(context.Background(), u)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	if br == nil {
		br = bufio.NewReader(conn)
	}
	t.Cleanup(func() { conn.Close() })
	return &wsClient{t: t, conn: conn, br: br}
}

// next returns the next text frame, "close" for a close frame, "" when
// nothing came within d.
func (w *wsClient) next(d time.Duration) string {
	_ = w.conn.SetReadDeadline(time.Now().Add(d))
	for {
		h, err := ws.ReadHeader(w.br)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return ""
			}
			return "close"
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(w.br, payload); err != nil {
			return "close"
		}
		ws.Cipher(payload, h.Mask, 0)
		switch h.OpCode {
		case ws.OpClose:
			return "close"
		case ws.OpText:
			return string(payload)
		}
	}
}

// collect reads frames until n of them contain want's prefix markers, or d
// passes; it returns the frames holding marker.
func (w *wsClient) collect(marker string, n int, d time.Duration) []string {
	var got []string
	end := time.Now().Add(d)
	for len(got) < n && time.Now().Before(end) {
		f := w.next(time.Until(end))
		if f == "close" {
			break
		}
		if strings.Contains(f, marker) {
			got = append(got, f)
		}
	}
	return got
}

// sseClient reads the data lines of an SSE stream.
type sseClient struct {
	lines chan string
}

func dialSSE(t *testing.T, u string) *sseClient {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("SSE %s: %v %v", u, err, resp)
	}
	t.Cleanup(func() { resp.Body.Close() })
	s := &sseClient{lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				s.lines <- d
			}
		}
		close(s.lines)
	}()
	return s
}

func (s *sseClient) collect(marker string, n int, d time.Duration) []string {
	var got []string
	timeout := time.After(d)
	for len(got) < n {
		select {
		case l, ok := <-s.lines:
			if !ok {
				return got
			}
			if strings.Contains(l, marker) {
				got = append(got, l)
			}
		case <-timeout:
			return got
		}
	}
	return got
}

// longPoll starts a long-poll GET and returns its body when it ends.
func longPoll(u string) <-chan string {
	ch := make(chan string, 1)
	go func() {
		client := &http.Client{Timeout: 30 * time.Second}
		resp, err := client.Get(u)
		if err != nil {
			ch <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ch <- string(b)
	}()
	return ch
}

func waitBody(t *testing.T, what string, ch <-chan string, want string) {
	t.Helper()
	select {
	case b := <-ch:
		if !strings.Contains(b, want) {
			t.Fatalf("%s: got %q, want it to hold %q", what, b, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: no answer", what)
	}
}

// inOrder checks that frames hold want's strings, in order, each once.
func inOrder(t *testing.T, what string, frames []string, want []string) {
	t.Helper()
	if len(frames) != len(want) {
		t.Fatalf("%s: %d frames, want %d: %q", what, len(frames), len(want), frames)
	}
	for i, w := range want {
		if !strings.Contains(frames[i], `"`+w+`"`) {
			t.Fatalf("%s: frame %d is %q, want %q", what, i, frames[i], w)
		}
	}
}

// settle gives a just-connected reader's subscription time to reach NATS;
// correctness does not rest on it (a read covers the race), only the
// test's knowledge that the reader is registered before the write.
func settle() { time.Sleep(200 * time.Millisecond) }

// TestCluster runs the cluster tests on one build of the binary.
func TestCluster(t *testing.T) {
	bin := buildHalley(t, "")
	for _, tc := range []struct {
		name string
		run  func(*testing.T, string)
	}{
		{"DeliveryEveryTransport", testClusterDeliveryEveryTransport},
		{"ResumeOnAnotherNode", testClusterResumeOnAnotherNode},
		{"IdempotentResend", testClusterIdempotentResend},
		{"Kill9LightNode", testClusterKill9LightNode},
		{"NATSRestart", testClusterNATSRestart},
		{"AccountAddRevoke", testClusterAccountAddRevoke},
		{"StoreNodeKill9", testClusterStoreNodeKill9},
		{"Command", testClusterCommand},
		{"RepollBurst", testClusterRepollBurst},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, bin) })
	}
}

// testClusterDeliveryEveryTransport: a write or push taken by one node
// reaches readers and listeners on the others, on every transport of
// both APIs, once and in order (S-02).
func testClusterDeliveryEveryTransport(t *testing.T, bin string) {
	c := startCluster(t, bin)
	l1, l2, st := c.lights[0], c.lights[1], c.store
	ws1 := dialWS(t, "ws://"+l1.addr+"/read/ws?qname=demo-x")
	wsStore := dialWS(t, "ws://"+st.addr+"/read/ws?qname=demo-x")
	cfWS := dialWS(t, "ws://"+l1.addr+"/"+c.cfKey+"/listen?identifiers=y")
	cfSSE := dialSSE(t, l1.base+"/"+c.cfKey+"/sse?identifiers=y")
	settle()
	ezPoll := longPoll(l1.base + "/read?qname=demo-x&timeout=20")
	cfPoll := longPoll(l1.base + "/" + c.cfKey + "/poll?identifiers=y&timeout=20")
	settle()

	wantOK(t, "write via light node 2", c.write(l2, c.key, "demo-x", "t1", "m1"))
	wantOK(t, "write via the store node", c.write(st, c.key, "demo-x", "t2", "m2"))
	wantOK(t, "write via light node 1", c.write(l1, c.key, "demo-x", "t3", "m3"))
	waitBody(t, "EZComet long-poll on light node 1", ezPoll, `["t1","m1"]`)
	inOrder(t, "EZComet WebSocket on light node 1", ws1.collect(`"t`, 3, 10*time.Second), []string{"m1", "m2", "m3"})
	inOrder(t, "EZComet WebSocket on the store node", wsStore.collect(`"t`, 3, 10*time.Second), []string{"m1", "m2", "m3"})

	wantOK(t, "push via light node 2", c.push(l2, "y", "p1", 1))
	wantOK(t, "push via the store node", c.push(st, "y", "p2", 2))
	waitBody(t, "Cometify long-poll on light node 1", cfPoll, `"p1"`)
	inOrder(t, "Cometify WebSocket on light node 1", cfWS.collect(`"p`, 2, 10*time.Second), []string{"p1", "p2"})
	inOrder(t, "Cometify SSE on light node 1", cfSSE.collect(`"p`, 2, 10*time.Second), []string{"p1", "p2"})
	if extra := ws1.next(300 * time.Millisecond); extra != "" && strings.Contains(extra, `"t`) {
		t.Fatalf("EZComet WebSocket got a repeat: %q", extra)
	}
}

// testClusterResumeOnAnotherNode: a reader that took messages on one node
// resumes on another by tick (EZComet) and by id (Cometify), nothing
// lost or repeated (X-01, X-04 across nodes).
func testClusterResumeOnAnotherNode(t *testing.T, bin string) {
	c := startCluster(t, bin)
	l1, l2 := c.lights[0], c.lights[1]
	for i := 1; i <= 5; i++ {
		wantOK(t, "write", c.write(l1, c.key, "demo-r", fmt.Sprintf("t%d", i), fmt.Sprintf("m%d", i)))
		wantOK(t, "push", c.push(l1, "r", fmt.Sprintf("p%d", i), i))
	}
	got := readAllFrom(t, l2.base, "demo-r", "t2")
	if strings.Join(got, ",") != "t3,t4,t5" {
		t.Fatalf("EZComet resume on light node 2 after t2: %v", got)
	}
	wsr := dialWS(t, "ws://"+l2.addr+"/read/ws?qname=demo-r&tick=t4")
	inOrder(t, "EZComet WebSocket resume after t4", wsr.collect(`"t`, 1, 10*time.Second), []string{"m5"})
	wantOK(t, "write after the resume", c.write(l1, c.key, "demo-r", "t6", "m6"))
	inOrder(t, "EZComet WebSocket live after its resume", wsr.collect(`"t`, 1, 10*time.Second), []string{"m6"})

	poll := longPoll(l2.base + "/" + c.cfKey + "/poll?timeout=0&identifiers=r:2")
	select {
	case b := <-poll:
		for _, want := range []string{"p3", "p4", "p5"} {
			if !strings.Contains(b, `"`+want+`"`) {
				t.Fatalf("Cometify resume on light node 2 after id 2: %s lacks %s", b, want)
			}
		}
		for _, no := range []string{"p1", "p2"} {
			if strings.Contains(b, `"`+no+`"`) {
				t.Fatalf("Cometify resume after id 2 repeated %s: %s", no, b)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Cometify resume: no answer")
	}
	cfws := dialWS(t, "ws://"+l2.addr+"/"+c.cfKey+"/listen?identifiers=r:4")
	inOrder(t, "Cometify WebSocket resume after id 4", cfws.collect(`"p`, 1, 10*time.Second), []string{"p5"})

	// X-04 on a node that never saw the topic: an identifier given
	// without an id stands at the topic's last id, replaying nothing.
	now := longPoll(l2.base + "/" + c.cfKey + "/poll?timeout=0&identifiers=r")
	waitBody(t, "Cometify poll from now on light node 2", now, `"since":"r:5"`)
	nowWS := dialWS(t, "ws://"+l1.addr+"/"+c.cfKey+"/listen?identifiers=r")
	if f := nowWS.next(10 * time.Second); !strings.Contains(f, `"since":"r:5"`) {
		t.Fatalf("Cometify WebSocket from now on light node 1 starts with %q", f)
	}
	wantOK(t, "push after the listener", c.push(l2, "r", "p6", 6))
	inOrder(t, "Cometify WebSocket from now", nowWS.collect(`"p`, 1, 10*time.Second), []string{"p6"})
}

// readAllFrom reads qname on base from after tick (none: from the start)
// to its end, following ticks.
func readAllFrom(t *testing.T, base, qname, after string) []string {
	t.Helper()
	var ticks []string
	for {
		u := base + "/read?timeout=0&qname=" + url.QueryEscape(qname)
		if after != "" {
			u += "&tick=" + url.QueryEscape(after)
		}
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			Code     string
			Messages [][2]string
		}
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if err != nil || v.Code != "ok" {
			t.Fatalf("read %s: %v %+v", qname, err, v)
		}
		if len(v.Messages) == 0 {
			return ticks
		}
		for _, m := range v.Messages {
			ticks = append(ticks, m[0])
		}
		after = v.Messages[len(v.Messages)-1][0]
	}
}

// testClusterIdempotentResend: a write or push re-sent to another node is
// answered as on the node that took it (EZ-W-07, CF-P-06): ok and nothing
// appended for the same body, 409 for another.
func testClusterIdempotentResend(t *testing.T, bin string) {
	c := startCluster(t, bin)
	l1, l2, st := c.lights[0], c.lights[1], c.store
	wantOK(t, "write", c.write(l1, c.key, "demo-i", "k1", "body"))
	wantOK(t, "same write to light node 2", c.write(l2, c.key, "demo-i", "k1", "body"))
	wantOK(t, "same write to the store node", c.write(st, c.key, "demo-i", "k1", "body"))
	if a := c.write(l2, c.key, "demo-i", "k1", "other"); a.status != 409 {
		t.Fatalf("another body under the same tick on light node 2: %d %v", a.status, a.v)
	}
	if got := readAll(t, l2.base, "demo-i"); len(got) != 1 {
		t.Fatalf("channel holds %v, want one message", got)
	}
	wantOK(t, "push", c.push(l1, "i", "text", 7))
	a := c.push(l2, "i", "text", 7)
	wantOK(t, "same push to light node 2", a)
	if id, _ := a.v["push_id"].(float64); id != 7 {
		t.Fatalf("re-sent push answered push_id %v", a.v["push_id"])
	}
	if a := c.push(l2, "i", "another", 7); a.status != 409 {
		t.Fatalf("another text under the same push_id on light node 2: %d %v", a.status, a.v)
	}
	// X-03 on a light node: the channel table is the store node's.
	req, _ := http.NewRequest("GET", l2.base+"/"+c.cfKey+"/stats", nil)
	req.Header.Set("Authorization", "Bearer "+c.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"demo-i":1`) {
		t.Fatalf("stats on light node 2: %d %s", resp.StatusCode, body)
	}
}

// clusterKillRound writes to light node 1 from a few writers, kills it
// with SIGKILL mid-stream, and counts the acknowledged ticks the service
// (read through light node 2) does not have.
func clusterKillRound(t *testing.T, bin string) (acked, missing, disorder int) {
	c := startCluster(t, bin)
	l1, l2 := c.lights[0], c.lights[1]
	var mu sync.Mutex
	ackedTicks := map[string][]string{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			qname := fmt.Sprintf("demo-k%d", w)
			for n := 0; n < 100000; n++ {
				tick := fmt.Sprintf("w%d-%d", w, n)
				a := c.write(l1, c.key, qname, tick, "m"+tick)
				if a.err != nil || a.str("code") != "ok" {
					return // the node died
				}
				mu.Lock()
				ackedTicks[qname] = append(ackedTicks[qname], tick)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	if err := l1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = l1.cmd.Wait()
	wg.Wait()
	time.Sleep(time.Second) // a planted-fault build's delayed sends would land by now
	for qname, ticks := range ackedTicks {
		acked += len(ticks)
		have := map[string]bool{}
		prev := -1
		for _, tk := range readAll(t, l2.base, qname) {
			have[tk] = true
			n, _ := strconv.Atoi(tk[strings.IndexByte(tk, '-')+1:])
			if n <= prev {
				disorder++
			}
			prev = n
		}
		for _, tk := range ticks {
			if !have[tk] {
				missing++
			}
		}
	}
	return acked, missing, disorder
}

// testClusterKill9LightNode: kill -9 of the light node that took writes
// loses none it acknowledged (S-02: an ok is sent only once the store
// node's group is synced).
func testClusterKill9LightNode(t *testing.T, bin string) {
	acked, missing, disorder := clusterKillRound(t, bin)
	t.Logf("acknowledged %d writes through the killed light node, %d missing, %d out of order", acked, missing, disorder)
	if acked == 0 {
		t.Fatal("no write was acknowledged before the kill")
	}
	if missing > 0 || disorder > 0 {
		t.Fatalf("%d of %d acknowledged writes lost, %d out of order", missing, acked, disorder)
	}
}

// TestClusterKill9ControlPlantedFault: the same check against a build
// whose light nodes acknowledge a write before forwarding it
// (halley_fault_clusterack) must find acknowledged writes lost.
func TestClusterKill9ControlPlantedFault(t *testing.T) {
	acked, missing, disorder := clusterKillRound(t, buildHalley(t, "halley_fault_clusterack"))
	t.Logf("planted fault: %d acknowledged, %d missing, %d out of order", acked, missing, disorder)
	if missing == 0 {
		t.Fatal("the kill -9 check did not catch a light node that acknowledges before the store node commits")
	}
}

// testClusterNATSRestart: NATS restarted while writes flow through one
// light node and a reader follows on the other: the reader gets every
// acknowledged message once, in order; meanwhile writes are 503 (never a
// false ok) and the light node's /healthz is 503.
func testClusterNATSRestart(t *testing.T, bin string) {
	c := startCluster(t, bin)
	l1, l2 := c.lights[0], c.lights[1]
	reader := dialWS(t, "ws://"+l1.addr+"/read/ws?qname=demo-n")
	tail := dialWS(t, "ws://"+l1.addr+"/read/ws?qname=demo-nd")
	listener := dialWS(t, "ws://"+l1.addr+"/"+c.cfKey+"/listen?identifiers=n")
	settle()
	const total = 30
	var ticks, texts []string
	restarted := make(chan struct{})
	defer func() { <-restarted }() // before the cleanups, which close c.nats
	go func() {
		defer close(restarted)
		time.Sleep(700 * time.Millisecond)
		c.nats.Close()
		// Readiness: the light node says it cannot serve writes.
		health := 0
		for end := time.Now().Add(5 * time.Second); health != 503 && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if resp, err := http.Get(l1.base + "/healthz"); err == nil {
				health = resp.StatusCode
				resp.Body.Close()
			}
		}
		if health != 503 {
			t.Errorf("light node 1's /healthz while NATS is down: %d, want 503", health)
		}
		// And so do both internal listeners' /readyz: the light node's
		// store (NATS and the store node behind it), the store node's
		// NATS link.
		for _, nd := range []*clusterNode{l1, c.store} {
			if st, body := readyz(nd); st != 503 {
				t.Errorf("%s node's /readyz while NATS is down: %d %s, want 503", nd.role, st, body)
			}
		}
		// The store node takes its own writes without NATS; their
		// publications wait in its NATS client and go out when it
		// reconnects, maybe before light node 1 has subscribed again.
		// Nothing follows them on their channel: only light node 1's
		// repair after its reconnect brings them to its reader.
		for i := 1; i <= 3; i++ {
			if a := c.write(c.store, c.key, "demo-nd", fmt.Sprintf("d%d", i), fmt.Sprintf("md%d", i)); a.str("code") != "ok" {
				t.Errorf("store node write while NATS is down: %d %v", a.status, a.v)
			}
		}
		n, err := cluster.StartNATS(cluster.NATSOptions{Port: c.port})
		if err != nil {
			t.Error(err)
			return
		}
		c.nats = n
	}()
	refused := 0
	for i := 1; i <= total; i++ {
		tick, text := fmt.Sprintf("t%d", i), fmt.Sprintf("p%d", i)
		end := time.Now().Add(20 * time.Second)
		for { // re-send until ok: idempotent (EZ-W-07, CF-P-06)
			a := c.write(l2, c.key, "demo-n", tick, "m"+tick)
			if a.str("code") == "ok" {
				break
			}
			if a.status != 503 && a.err == nil {
				t.Fatalf("write during the restart: %d %v", a.status, a.v)
			}
			refused++
			if time.Now().After(end) {
				t.Fatalf("write %s never went through", tick)
			}
			time.Sleep(100 * time.Millisecond)
		}
		for {
			a := c.push(l2, "n", text, i)
			if a.str("code") == "ok" {
				break
			}
			if a.status != 503 && a.err == nil {
				t.Fatalf("push during the restart: %d %v", a.status, a.v)
			}
			refused++
			if time.Now().After(end) {
				t.Fatalf("push %s never went through", text)
			}
			time.Sleep(100 * time.Millisecond)
		}
		ticks, texts = append(ticks, "m"+tick), append(texts, text)
		time.Sleep(30 * time.Millisecond)
	}
	<-restarted
	t.Logf("%d writes and pushes refused (503) while NATS was down", refused)
	inOrder(t, "EZComet reader across the NATS restart", reader.collect(`"t`, total, 20*time.Second), ticks)
	inOrder(t, "Cometify listener across the NATS restart", listener.collect(`"p`, total, 20*time.Second), texts)
	if extra := reader.next(500 * time.Millisecond); extra != "" {
		t.Fatalf("reader got more after the last message: %q", extra)
	}
	inOrder(t, "EZComet reader of what the store node took while NATS was down", tail.collect(`"d`, 3, 10*time.Second), []string{"md1", "md2", "md3"})
}

// testClusterAccountAddRevoke (A-04 across nodes): an account added on
// the store node writes through a light node; removed, its reader on the
// other light node is closed and its writes are refused.
func testClusterAccountAddRevoke(t *testing.T, bin string) {
	c := startCluster(t, bin)
	l1, l2 := c.lights[0], c.lights[1]
	out, err := exec.Command(c.bin, "account", "--data", c.dir, "--json", "add", "bob").Output()
	if err != nil {
		t.Fatalf("account add: %v", err)
	}
	var acct map[string]any
	if err := json.Unmarshal(out, &acct); err != nil {
		t.Fatalf("account add printed %q", out)
	}
	key, _ := acct["api_key"].(string)
	var a clusterAnswer
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if a = c.write(l1, key, "bob-c", "t1", "hello"); a.str("code") == "ok" {
			break
		}
	}
	wantOK(t, "the new account's write via light node 1", a)
	// Each node learns of the account within a NATS round trip of the
	// change notice: wait for light node 2's too.
	var reader *wsClient
	for end := time.Now().Add(5 * time.Second); reader == nil; time.Sleep(50 * time.Millisecond) {
		conn, br, _, err := ws.Dial(context.Background(), "ws://"+l2.addr+"/read/ws?qname=bob-c&tick=0")
		if err == nil {
			if br == nil {
				br = bufio.NewReader(conn)
			}
			t.Cleanup(func() { conn.Close() })
			reader = &wsClient{t: t, conn: conn, br: br}
		} else if time.Now().After(end) {
			t.Fatalf("the new account's reader on light node 2: %v", err)
		}
	}
	if f := reader.collect(`hello`, 1, 10*time.Second); len(f) != 1 {
		t.Fatal("the new account's reader on light node 2 did not get its message")
	}
	if err := exec.Command(c.bin, "account", "--data", c.dir, "rm", "bob").Run(); err != nil {
		t.Fatalf("account rm: %v", err)
	}
	if f := reader.next(5 * time.Second); f != "close" {
		t.Fatalf("the removed account's reader on light node 2 was not closed: %q", f)
	}
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if a = c.write(l1, key, "bob-c", "t2", "again"); a.status == 401 {
			return
		}
	}
	t.Fatalf("the removed account's write via light node 1: %d %v", a.status, a.v)
}

// testClusterCommand: `halley cluster --nodes 3 --listen ADDR --data DIR`
// (the bench's command line) serves one port from three processes with
// an embedded NATS, restarts a light node killed with SIGKILL, and stops
// every node on SIGTERM.
func testClusterCommand(t *testing.T, bin string) {
	addr, dir := freePort(t), t.TempDir()
	cmd := exec.Command(bin, "cluster", "--nodes", "3", "--listen", addr, "--data", dir, "--log-level", "warn")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	lines := bufio.NewScanner(out)
	key, serving := "", 0
	deadline := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
	for serving < 3 && lines.Scan() {
		if _, rest, ok := strings.Cut(lines.Text(), " api_key="); ok {
			key = strings.Fields(rest)[0]
		}
		if strings.HasPrefix(lines.Text(), "halley serving") {
			serving++
		}
	}
	deadline.Stop()
	go func() { _, _ = bufioDrain(lines) }()
	if serving < 3 || key == "" {
		t.Fatalf("%d of 3 nodes serving", serving)
	}
	children := childPIDs(cmd.Process.Pid)
	if len(children) != 3 {
		t.Fatalf("halley cluster runs %d child processes, want 3", len(children))
	}
	// Connections land on any node: every write is readable through
	// every other connection.
	for i := range 10 {
		wantOK(t, "write", postForm("http://"+addr, "/write", url.Values{"api_key": {key}, "qname": {"demo-cmd"},
			"tick": {fmt.Sprintf("t%d", i)}, "msg": {"m"}}))
	}
	if got := readAll(t, "http://"+addr, "demo-cmd"); len(got) != 10 {
		t.Fatalf("read %d of 10 messages through the shared port", len(got))
	}
	// A light node killed is started again.
	_ = syscall.Kill(children[len(children)-1], syscall.SIGKILL)
	restarted := false
	for end := time.Now().Add(10 * time.Second); !restarted && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		restarted = len(childPIDs(cmd.Process.Pid)) == 3
	}
	if !restarted {
		t.Fatal("a killed light node was not restarted")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("halley cluster after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("halley cluster did not stop on SIGTERM")
	}
	if left := childPIDs(cmd.Process.Pid); len(left) > 0 {
		t.Fatalf("nodes left running: %v", left)
	}
}

// childPIDs lists the processes whose parent is pid (Linux /proc).
func childPIDs(pid int) []int {
	var kids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) && f[0] != "Z" {
			kids = append(kids, n)
		}
	}
	return kids
}

// testClusterStoreNodeKill9: kill -9 of the store node while writes flow
// through a light node: no write is acknowledged without it (503, and the
// light node's /healthz 503), and once it is back on its data directory
// every acknowledged write is there and writes go through again.
func testClusterStoreNodeKill9(t *testing.T, bin string) {
	c := startCluster(t, bin)
	l1, l2 := c.lights[0], c.lights[1]
	var acked []string
	stopped := make(chan clusterAnswer, 1)
	go func() {
		for n := 0; ; n++ {
			tick := fmt.Sprintf("s%d", n)
			a := c.write(l1, c.key, "demo-s", tick, "m")
			if a.str("code") != "ok" {
				stopped <- a
				return
			}
			acked = append(acked, tick)
		}
	}()
	time.Sleep(time.Second)
	_ = c.store.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.store.cmd.Wait()
	var a clusterAnswer
	select {
	case a = <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("writes through the light node still succeed with the store node dead")
	}
	if a.status != 503 {
		t.Fatalf("write with the store node dead: %d %v (%v)", a.status, a.v, a.err)
	}
	c.waitHealth(l1, 503, 5*time.Second)
	c.store = c.startNode(roleStore, c.store.addr)
	c.waitHealth(l1, 200, 10*time.Second)
	wantOK(t, "write once the store node is back", c.write(l1, c.key, "demo-s", "after", "m"))
	have := map[string]bool{}
	for _, tk := range readAll(t, l2.base, "demo-s") {
		have[tk] = true
	}
	missing := 0
	for _, tk := range acked {
		if !have[tk] {
			missing++
		}
	}
	t.Logf("%d writes acknowledged before the store node's kill -9, %d missing", len(acked), missing)
	if missing > 0 || len(acked) == 0 {
		t.Fatalf("%d of %d acknowledged writes missing", missing, len(acked))
	}
}

// readyz asks nd's internal listener for /readyz.
func readyz(nd *clusterNode) (int, string) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(nd.admin + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
