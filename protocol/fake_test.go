package protocol

import (
	"encoding/json"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// testLoop is a one-loop stand-in for the engine: a goroutine that runs
// posted functions in order, like a gnet loop runs its task queue.
type testLoop struct {
	tasks chan func()
	done  chan struct{}
}

func newTestLoop(t *testing.T) *testLoop {
	l := &testLoop{tasks: make(chan func(), 1024), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for fn := range l.tasks {
			fn()
		}
	}()
	t.Cleanup(func() { close(l.tasks); <-l.done })
	return l
}

func (l *testLoop) NumLoops() int                 { return 1 }
func (l *testLoop) Post(_ int, fn func())         { l.tasks <- fn }
func (l *testLoop) Broadcast(fn func(loop int))   { l.tasks <- func() { fn(0) } }
func (l *testLoop) PostTask(_ int, t engine.Task) { l.tasks <- func() { t.Run(0) } }
func (l *testLoop) BroadcastTask(t engine.Task)   { l.tasks <- func() { t.Run(0) } }
func (l *testLoop) do(fn func()) {
	ch := make(chan struct{})
	l.tasks <- func() { fn(); close(ch) }
	<-ch
}
func (l *testLoop) sync() { l.do(func() {}) }

// reply is one complete HTTP answer a fakeConn received.
type reply struct {
	status int
	ctype  string
	hdrs   string
	body   string
}

var nextConnID atomic.Uint64

// fakeConn records what the protocol did to a connection.
type fakeConn struct {
	id         uint64
	loop       int // its event loop (default 0)
	mu         sync.Mutex
	replies    []reply
	sent       []string
	held       time.Duration
	upgraded   bool
	streaming  bool
	closed     bool
	closeCode  uint16
	closeWhy   string
	tag        any
	countOnly  bool          // Send only counts bytes (allocation budgets)
	dieOnOpen  bool          // the peer goes while the upgrade or stream head is written
	beacon     bool          // Beacon was asked
	upgradeErr error         // UpgradeWebSocket refuses with it
	replied    chan struct{} // if set, Reply only signals here (allocation budgets)
	sentBytes  int
	// pace > 0 makes Backlogged true once pace Sends went out since the
	// last drain (see fixture.drain); drainAsked says WhenDrained was
	// called and not answered yet.
	pace, paced int
	drainAsked  bool
	// onSend, if set, runs at the start of Send: a test closes the
	// connection there, as gnet does (OnClose, then Handler.Closed) when
	// a write fails.
	onSend func()
}

func newFakeConn() *fakeConn { return &fakeConn{id: nextConnID.Add(1)} }

func (c *fakeConn) Reply(status int, ct string, h, body []byte) {
	if c.replied != nil {
		c.replied <- struct{}{}
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.replies = append(c.replies, reply{status, ct, string(h), string(body)})
}
func (c *fakeConn) Hold(d time.Duration)   { c.held = d }
func (c *fakeConn) Defer() engine.Deferred { return engine.NotDeferred(c) }
func (c *fakeConn) UpgradeWebSocket(r *engine.Request, _ []byte) error {
	if c.upgradeErr != nil {
		return c.upgradeErr
	}
	c.upgraded = true
	c.closed = c.dieOnOpen
	return nil
}
func (c *fakeConn) StartStream(string, []byte) { c.streaming, c.closed = true, c.dieOnOpen }
func (c *fakeConn) Send(b []byte) bool {
	if f := c.onSend; f != nil {
		c.onSend = nil
		f()
	}
	if c.closed {
		return false
	}
	c.paced++
	if c.countOnly {
		c.sentBytes += len(b)
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, string(b))
	return true
}
func (c *fakeConn) CloseWebSocket(code uint16, reason string) {
	c.closeCode, c.closeWhy, c.closed = code, reason, true
}
func (c *fakeConn) Close()           { c.closed = true }
func (c *fakeConn) Beacon()          { c.beacon = true }
func (c *fakeConn) Backlogged() bool { return c.pace > 0 && c.paced >= c.pace }
func (c *fakeConn) WhenDrained()     { c.drainAsked = true }
func (c *fakeConn) Loop() int        { return c.loop }
func (c *fakeConn) ID() uint64       { return c.id }
func (c *fakeConn) Tag() any         { return c.tag }
func (c *fakeConn) SetTag(t any)     { c.tag = t }
func (c *fakeConn) Alive() bool      { return !c.closed }

func (c *fakeConn) lastReply(t *testing.T) reply {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.replies) == 0 {
		t.Fatal("no reply")
	}
	return c.replies[len(c.replies)-1]
}

func (c *fakeConn) numReplies() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.replies)
}

func (c *fakeConn) sentCopy() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.sent...)
}

type header map[string]string

func (h header) Peek(name string) []byte {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return []byte(v)
		}
	}
	return nil
}

func (h header) PeekAll(name string) [][]byte {
	if v := h.Peek(name); v != nil {
		return [][]byte{v}
	}
	return nil
}

// fixture is an API over a real store in a temp dir and one test loop.
type fixture struct {
	// readsHeld: a test holds store reads in flight on purpose; serve
	// does not wait for them.
	readsHeld bool
	t         *testing.T
	api       *API
	loop      *testLoop
	store     *persist.Store
	acct      persist.Account
}

func newFixture(t *testing.T, so persist.Options, ao Options) *fixture {
	t.Helper()
	// The loop first: cleanups run last-registered first, so the store
	// closes (its committer done, every completion posted) before the
	// loop stops taking tasks. The other way round, a push answered
	// just before the test ended still broadcasts to a closed loop.
	loop := newTestLoop(t)
	so.Dir = t.TempDir()
	hook := &batchHook{}
	so.AfterBatch = hook.run
	store, err := persist.Open(so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	acct, err := store.AddAccount("john")
	if err != nil {
		t.Fatal(err)
	}
	ao.Store = store
	api, err := New(ao)
	if err != nil {
		t.Fatal(err)
	}
	api.Attach(loop)
	t.Cleanup(api.Close) // first: its readers finish before the store closes
	hook.api.Store(api)
	return &fixture{t: t, api: api, loop: loop, store: store, acct: acct}
}

// batchHook is persist.Options.AfterBatch for a store opened before its
// API exists, as cmd/halley wires it. Fixtures that replace their API
// afterwards leave the new one unhooked: it posts each completion on its
// own (fanOut.hooked), which those tests exercise.
type batchHook struct{ api atomic.Pointer[API] }

func (h *batchHook) run() {
	if a := h.api.Load(); a != nil {
		a.AfterBatch()
	}
}

// serve runs one request on the loop and returns the conn.
func (f *fixture) serve(method, path, query, body string, h header) *fakeConn {
	c := newFakeConn()
	f.serveOn(c, method, path, query, body, h)
	return c
}

func (f *fixture) serveOn(c *fakeConn, method, path, query, body string, h header) {
	if h == nil {
		h = header{}
	}
	r := &engine.Request{
		Method: []byte(method), Path: []byte(path), Query: []byte(query), Body: []byte(body),
		Header: h, PeerAddr: netip.MustParseAddr("127.0.0.1"), ClientIP: netip.MustParseAddr("127.0.0.1"),
	}
	f.loop.do(func() { f.api.Serve(c, r) })
	f.settle()
}

// settle waits until no store read of the API is in flight and every
// read's result has run on the loop, as a client would see once the
// server has read for it.
func (f *fixture) settle() {
	f.t.Helper()
	if f.readsHeld {
		f.loop.sync()
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		for f.api.readers.pending.Load() > 0 {
			if time.Now().After(deadline) {
				f.t.Fatal("store reads still in flight after 5 s")
			}
			time.Sleep(100 * time.Microsecond)
		}
		f.loop.sync() // the results posted before pending fell
		if f.api.readers.pending.Load() == 0 {
			return
		}
	}
}

// await polls until cond holds (on the loop) or fails the test after 5 s.
func (f *fixture) await(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var ok bool
		f.loop.do(func() { ok = cond() })
		if ok {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// drain empties c's socket, as a client that reads would, and gives the
// API the Drained it asked for; it reports whether one was asked.
func (f *fixture) drain(c *fakeConn) bool {
	var asked bool
	f.loop.do(func() {
		c.paced = 0
		if asked = c.drainAsked; asked {
			c.drainAsked = false
			f.api.Drained(c)
		}
	})
	f.settle()
	return asked
}

// write performs a /write and waits for its answer.
func (f *fixture) write(query string) reply {
	f.t.Helper()
	c := f.serve("GET", "/write", "api_key="+f.acct.APIKey+"&"+query, "", nil)
	f.await("write answer", func() bool { return c.numReplies() > 0 })
	return c.lastReply(f.t)
}

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %q: %v", s, err)
	}
	return v
}
