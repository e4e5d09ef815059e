package cluster

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/halleypush/halley/persist"
	"github.com/nats-io/nats.go"
)

// completions records what a Forwarder completes, in order, and checks
// that no two completions run at once.
type completions struct {
	mu      sync.Mutex
	running bool
	got     []string
	batches int
	t       *testing.T
}

func (c *completions) record(s string) {
	c.mu.Lock()
	if c.running {
		c.t.Error("two completions at once")
	}
	c.running = true
	c.got = append(c.got, s)
	c.running = false
	c.mu.Unlock()
}

func (c *completions) WriteDone(r persist.EZWriteResult) {
	c.record(fmt.Sprintf("ez seq=%d dup=%v err=%v", r.Msg.Seq, r.Duplicate, r.Err))
}

func (c *completions) CFPushDone(r persist.CFPushResult) {
	c.record(fmt.Sprintf("cf id=%d err=%v", r.Msg.ID, r.Err))
}

func (c *completions) afterBatch() {
	c.mu.Lock()
	c.batches++
	c.mu.Unlock()
}

func (c *completions) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		c.mu.Lock()
		got := append([]string(nil), c.got...)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d completions, want %d: %q", len(got), n, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestForwarderInOrder: writes and pushes forwarded without waiting are
// completed by the store node's persist.Store, each once, in the order
// they were made, on one goroutine, followed by afterBatch.
func TestForwarderInOrder(t *testing.T) {
	n := startNATS(t, 0)
	storeNode(t, n)
	light := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf})
	c := &completions{t: t}
	f, err := light.NewForwarder(c.afterBatch, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const count = 300
	var want []string
	for i := 1; i <= count; i++ {
		if i%3 == 0 {
			f.CFPushTo(persist.CFPush{Topic: "a/room", Text: []byte("x")}, c)
			want = append(want, fmt.Sprintf("cf id=%d err=<nil>", i/3))
			continue
		}
		f.EZWriteTo(persist.EZWrite{QName: "a-news", Tick: fmt.Appendf(nil, "t%d", i), Body: []byte("m")}, c)
		want = append(want, fmt.Sprintf("ez seq=%d dup=false err=<nil>", i-i/3))
	}
	f.EZWriteTo(persist.EZWrite{QName: "a-news", Tick: []byte("t1"), Body: []byte("m")}, c)
	want = append(want, "ez seq=1 dup=true err=<nil>")
	got := c.wait(t, count+1)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.batches == 0 {
		t.Error("afterBatch never ran")
	}
}

// TestForwarderNoStoreNode: with no store node, a forwarded write is
// completed with a storage error (503) for no responders, not at its
// deadline; with a store node that never answers, at its deadline.
func TestForwarderNoStoreNode(t *testing.T) {
	n := startNATS(t, 0)
	light := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf, RequestTimeout: time.Hour})
	c := &completions{t: t}
	f, err := light.NewForwarder(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.EZWriteTo(persist.EZWrite{QName: "a-news", Tick: []byte("t"), Body: []byte("m")}, c)
	got := c.wait(t, 1)
	if want := "ez seq=0 dup=false err=" + fmt.Sprintf("%v: cluster: no store node is serving: %v", persist.ErrStorage, nats.ErrNoResponders); got[0] != want {
		t.Fatalf("got %q, want %q", got[0], want)
	}

	store := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf})
	if err := store.ServeStore(silentStore{}); err != nil {
		t.Fatal(err)
	}
	light2 := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf, RequestTimeout: 50 * time.Millisecond})
	f2, err := light2.NewForwarder(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	var res persist.EZWriteResult
	done := make(chan struct{})
	f2.EZWriteTo(persist.EZWrite{QName: "a-news", Tick: []byte("t"), Body: []byte("m")}, completionFunc(func(r persist.EZWriteResult) {
		res = r
		close(done)
	}))
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("a write to a silent store node never completed")
	}
	if !errors.Is(res.Err, persist.ErrStorage) {
		t.Fatalf("got %v, want a storage error", res.Err)
	}
}

// completionFunc adapts a function to persist.WriteCompletion.
type completionFunc func(persist.EZWriteResult)

func (f completionFunc) WriteDone(r persist.EZWriteResult) { f(r) }

// TestForwarderClose: a request still waiting when the Forwarder closes
// completes with a storage error, and one made after completes at once.
func TestForwarderClose(t *testing.T) {
	n := startNATS(t, 0)
	store := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf})
	if err := store.ServeStore(silentStore{}); err != nil {
		t.Fatal(err)
	}
	light := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf, RequestTimeout: time.Hour})
	c := &completions{t: t}
	f, err := light.NewForwarder(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.EZWriteTo(persist.EZWrite{QName: "a-news", Tick: []byte("t"), Body: []byte("m")}, c)
	f.Close()
	f.EZWriteTo(persist.EZWrite{QName: "a-news", Tick: []byte("u"), Body: []byte("m")}, c)
	got := c.wait(t, 2)
	for _, g := range got {
		if g != "ez seq=0 dup=false err="+errForwarderClosed.Error() {
			t.Errorf("got %q, want the closed error", g)
		}
	}
}

// TestResyncNotice: after the store node's outbox dropped deliveries,
// every light node repairs everything it follows once the outbox has
// room again.
func TestResyncNotice(t *testing.T) {
	store, _, rec := follower(t, EZ, "a-news", 0)
	store.resyncDue.Store(true) // as Publish does when the outbox was full
	publish(t, store, ez("a-news", 1))
	rec.waitFor(t, "a repair", func(_, repairs []string) bool { return len(repairs) == 1 })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	// The notice may overtake the delivery (another subscription):
	// then the repair read returns it.
	if got := fmt.Sprint(rec.got, rec.repairs); got != "[a-news:1] [a-news>1]" && got != "[] [a-news>0]" {
		t.Fatalf("got %q, repairs %q", rec.got, rec.repairs)
	}
}

// seqRecorder checks that each channel's writes complete in seq order.
type seqRecorder struct {
	mu   sync.Mutex
	last map[string]uint64
	n    int
	bad  []string
}

func (r *seqRecorder) done(qname string) persist.WriteCompletion {
	return completionFunc(func(res persist.EZWriteResult) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.n++
		if res.Err != nil || res.Msg.Seq != r.last[qname]+1 {
			r.bad = append(r.bad, fmt.Sprintf("%s: seq %d after %d, err %v", qname, res.Msg.Seq, r.last[qname], res.Err))
		}
		r.last[qname] = res.Msg.Seq
	})
}

// TestForwarderConcurrentCallers: event loops forward at once; each
// channel's writes complete in the order its caller made them.
func TestForwarderConcurrentCallers(t *testing.T) {
	n := startNATS(t, 0)
	storeNode(t, n)
	light := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf})
	f, err := light.NewForwarder(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const callers, each = 4, 100
	r := &seqRecorder{last: make(map[string]uint64)}
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			qname := fmt.Sprintf("a-loop%d", c)
			for i := range each {
				f.EZWriteTo(persist.EZWrite{QName: qname, Tick: fmt.Appendf(nil, "t%d", i), Body: []byte("m")}, r.done(qname))
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(waitLimit)
	for {
		r.mu.Lock()
		n, bad := r.n, r.bad
		r.mu.Unlock()
		if len(bad) > 0 {
			t.Fatal(bad)
		}
		if n == callers*each {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d writes completed", n, callers*each)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
