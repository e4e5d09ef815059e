package protocol

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// Pipelined writes and pushes (issue 16) over the real engine, protocol
// and a store that syncs (C-09).

func newPipeServer(t *testing.T) (*realServer, persist.Account) {
	t.Helper()
	rs := startRealServer(t, persist.Options{Sync: persist.SyncAlways}, engine.Options{})
	if _, err := rs.store.AddAccount("john"); err != nil {
		t.Fatal(err)
	}
	acct, _ := rs.store.AccountByName([]byte("john"))
	return rs, acct
}

// gateStore hands the store the writes and pushes it is given only once
// n have come, then everything as it comes: a connection's n pipelined
// requests all reach it only if the engine serves each before the ones
// ahead of it are answered (none is, before the gate opens).
type gateStore struct {
	*persist.Store
	n      int
	mu     sync.Mutex
	held   []func()
	opened chan struct{}
}

func newGatedPipeServer(t *testing.T, n int) (*realServer, *gateStore, persist.Account) {
	t.Helper()
	var g *gateStore
	rs := startRealServerOver(t, persist.Options{Sync: persist.SyncAlways}, engine.Options{}, func(s *persist.Store) Store {
		g = &gateStore{Store: s, n: n, opened: make(chan struct{})}
		return g
	})
	if _, err := rs.store.AddAccount("john"); err != nil {
		t.Fatal(err)
	}
	acct, _ := rs.store.AccountByName([]byte("john"))
	return rs, g, acct
}

func (g *gateStore) pass(f func()) {
	g.mu.Lock()
	if g.n == 0 { // open
		g.mu.Unlock()
		f()
		return
	}
	g.held = append(g.held, f)
	var run []func()
	if len(g.held) == g.n {
		run, g.held, g.n = g.held, nil, 0
		close(g.opened)
	}
	g.mu.Unlock()
	for _, f := range run {
		f()
	}
}

func (g *gateStore) EZWriteTo(w persist.EZWrite, done persist.WriteCompletion) {
	g.pass(func() { g.Store.EZWriteTo(w, done) })
}

func (g *gateStore) CFPushTo(p persist.CFPush, done persist.CFCompletion) {
	g.pass(func() { g.Store.CFPushTo(p, done) })
}

// await fails the test unless all n requests reached the gate.
func (g *gateStore) await(t *testing.T, what string) {
	t.Helper()
	select {
	case <-g.opened:
	case <-time.After(10 * time.Second):
		g.mu.Lock()
		defer g.mu.Unlock()
		t.Fatalf("only %d of %d pipelined %s reached the store while none was answered: not pipelined", len(g.held), g.n, what)
	}
}

func pipeDial(t *testing.T, rs *realServer) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", rs.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c, bufio.NewReader(c)
}

func postWrite(acct persist.Account, qname, tick, msg string, extra string) string {
	body := fmt.Sprintf("api_key=%s&qname=%s&tick=%s&msg=%s", acct.APIKey, qname, tick, msg)
	if msg == "" {
		body = fmt.Sprintf("api_key=%s&qname=%s&tick=%s", acct.APIKey, qname, tick) // 400: no msg
	}
	return fmt.Sprintf("POST /write HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n%sContent-Length: %d\r\n\r\n%s", extra, len(body), body)
}

func readAnswer(t *testing.T, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestPipelinedWritesOneConn: 100 writes pipelined on one connection
// all reach the store before any is answered (so they commit together),
// and are answered in request order, each with its own tick, a 400
// among them in its place.
func TestPipelinedWritesOneConn(t *testing.T) {
	const n = 100
	rs, gate, acct := newGatedPipeServer(t, n)
	c, br := pipeDial(t, rs)
	var req strings.Builder
	for i := range n {
		req.WriteString(postWrite(acct, "john-chat", fmt.Sprintf("t%03d", i), "m", ""))
		if i == 49 {
			req.WriteString(postWrite(acct, "john-chat", "bad", "", ""))
		}
	}
	before := rs.store.Stats().Batches
	if _, err := io.WriteString(c, req.String()); err != nil {
		t.Fatal(err)
	}
	gate.await(t, "writes")
	for i := range n {
		resp, body := readAnswer(t, br)
		if want := fmt.Sprintf(`{"code":"ok","tick":"t%03d"}`, i); resp.StatusCode != 200 || body != want {
			t.Fatalf("answer %d: %d %s, want %s", i, resp.StatusCode, body, want)
		}
		if i == 49 {
			if resp, body := readAnswer(t, br); resp.StatusCode != 400 || !strings.Contains(body, "msg") {
				t.Fatalf("after answer 49: %d %s, want the 400", resp.StatusCode, body)
			}
		}
	}
	t.Logf("%d writes in %d commit groups", n, rs.store.Stats().Batches-before)
	if st := rs.srv.Stats(); st.Pipelines != 0 {
		t.Fatalf("Pipelines = %d after every answer", st.Pipelines)
	}
}

// TestPipelinedPushesOneConn: the same for Cometify pushes: all reach
// the store before any is answered, then are answered in order with
// increasing push ids.
func TestPipelinedPushesOneConn(t *testing.T) {
	const n = 100
	rs, gate, acct := newGatedPipeServer(t, n)
	c, br := pipeDial(t, rs)
	var req strings.Builder
	for i := range n {
		text := fmt.Sprintf("p%03d", i)
		sig := md5hex(acct.CFAPIKey + md5hex(acct.APISecret) + "fan" + text)
		body := "identifier=fan&secret=0&text=" + text + "&secure=" + sig
		fmt.Fprintf(&req, "POST /%s/push/fan HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", acct.CFAPIKey, len(body), body)
	}
	before := rs.store.Stats().Batches
	io.WriteString(c, req.String())
	gate.await(t, "pushes")
	last := -1
	for i := range n {
		resp, body := readAnswer(t, br)
		var id int
		if _, err := fmt.Sscanf(body, `{"code":"ok","push_id":%d}`, &id); err != nil || resp.StatusCode != 200 || id <= last {
			t.Fatalf("answer %d: %d %s after push_id %d", i, resp.StatusCode, body, last)
		}
		last = id
	}
	t.Logf("%d pushes in %d commit groups", n, rs.store.Stats().Batches-before)
}

// TestPipelinedReadWaitsForWrites: a long-poll pipelined after writes is
// served once they are answered, so it sees them all (EZ-R-02) and is
// answered after them.
func TestPipelinedReadWaitsForWrites(t *testing.T) {
	rs, acct := newPipeServer(t)
	c, br := pipeDial(t, rs)
	req := postWrite(acct, "john-chat", "a", "1", "") + postWrite(acct, "john-chat", "b", "2", "") +
		postWrite(acct, "john-chat", "c", "3", "") + "GET /read?qname=john-chat&timeout=5 HTTP/1.1\r\nHost: x\r\n\r\n"
	io.WriteString(c, req)
	for _, tick := range []string{"a", "b", "c"} {
		if _, body := readAnswer(t, br); body != `{"code":"ok","tick":"`+tick+`"}` {
			t.Fatalf("write %s: %s", tick, body)
		}
	}
	if _, body := readAnswer(t, br); body != `{"code":"ok","messages":[["a","1"],["b","2"],["c","3"]]}` {
		t.Fatalf("read: %s", body)
	}
}

// TestPipelinedConnClosed: a publisher that goes mid-pipeline leaves no
// pipeline, panic or open connection behind; its writes still commit.
func TestPipelinedConnClosed(t *testing.T) {
	rs, acct := newPipeServer(t)
	c, _ := pipeDial(t, rs)
	var req strings.Builder
	for i := range 100 {
		req.WriteString(postWrite(acct, "john-chat", fmt.Sprintf("t%03d", i), "m", ""))
	}
	io.WriteString(c, req.String())
	c.Close()
	awaitCond(t, "connection gone", func() bool {
		st := rs.srv.Stats()
		return st.OpenConns == 0 && st.Pipelines == 0
	})
	// Whatever was accepted commits and its answer goes nowhere: write
	// once more on a new connection, after them.
	rs.write("john-chat", "after", "x")
	if st := rs.srv.Stats(); st.Panics != 0 {
		t.Fatalf("engine stats %+v", st)
	}
	// That write was deferred too: its connection's pipeline goes once
	// the loop has written the answer, which the client may read first
	// (CI once saw Pipelines 1 here).
	awaitCond(t, "the last write's pipeline gone", func() bool { return rs.srv.Stats().Pipelines == 0 })
}

// TestPipelinedConnectionClose: a write that closes the connection
// (Connection: close, HTTP/1.0) is answered after the writes before it,
// and nothing after it is served.
func TestPipelinedConnectionClose(t *testing.T) {
	rs, acct := newPipeServer(t)
	for _, closing := range []string{
		postWrite(acct, "john-chat", "b", "2", "Connection: close\r\n"),
		strings.Replace(postWrite(acct, "john-chat", "b", "2", ""), "HTTP/1.1", "HTTP/1.0", 1),
	} {
		c, br := pipeDial(t, rs)
		io.WriteString(c, postWrite(acct, "john-chat", "a", "1", "")+closing+postWrite(acct, "john-chat", "never", "3", ""))
		for i, tick := range []string{"a", "b"} {
			resp, body := readAnswer(t, br)
			if body != `{"code":"ok","tick":"`+tick+`"}` || resp.Close != (i == 1) {
				t.Fatalf("answer %d: %s close=%v", i, body, resp.Close)
			}
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("after the closing answer: %v, want EOF", err)
		}
		c.Close()
	}
	res, err := rs.store.EZRead("john-chat", nil, persist.ReadLimit{Messages: 100, Bytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range res.Messages {
		if string(m.Tick) == "never" {
			t.Fatal("a write after the closing one was served")
		}
	}
}

// refusingStore refuses, before queueing, the writes ticked "full" (a
// full queue: 503) and "gone" (the account removed: 401, A-04); their
// answers are ready before those of the writes ahead of them.
type refusingStore struct{ *persist.Store }

func (s refusingStore) EZWriteTo(w persist.EZWrite, done persist.WriteCompletion) {
	switch string(w.Tick) {
	case "full":
		done.WriteDone(persist.EZWriteResult{Err: fmt.Errorf("%w: write queue full", persist.ErrStorage)})
	case "gone":
		done.WriteDone(persist.EZWriteResult{Err: persist.ErrRevoked})
	default:
		s.Store.EZWriteTo(w, done)
	}
}

// TestPipelinedRefusalsInOrder: store refusals among pipelined writes
// are answered in their places.
func TestPipelinedRefusalsInOrder(t *testing.T) {
	rs := startRealServerOver(t, persist.Options{Sync: persist.SyncAlways}, engine.Options{},
		func(s *persist.Store) Store { return refusingStore{s} })
	if _, err := rs.store.AddAccount("john"); err != nil {
		t.Fatal(err)
	}
	acct, _ := rs.store.AccountByName([]byte("john"))
	c, br := pipeDial(t, rs)
	ticks := []string{"a", "full", "b", "gone", "c", "full"}
	var req strings.Builder
	for _, tick := range ticks {
		req.WriteString(postWrite(acct, "john-chat", tick, "m", ""))
	}
	io.WriteString(c, req.String())
	for i, tick := range ticks {
		resp, body := readAnswer(t, br)
		want := map[string]int{"full": 503, "gone": 401}[tick]
		if want == 0 {
			want = 200
			if body != `{"code":"ok","tick":"`+tick+`"}` {
				t.Fatalf("answer %d: %s, want the ack of %s", i, body, tick)
			}
		}
		if resp.StatusCode != want {
			t.Fatalf("answer %d (%s): %d %s, want %d", i, tick, resp.StatusCode, body, want)
		}
	}
}
