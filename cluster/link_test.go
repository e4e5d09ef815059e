package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/halleypush/halley/persist"
	"github.com/nats-io/nats.go"
)

// waitLimit bounds every wait in these tests: a hang fails, nothing here
// asserts how fast anything is.
const waitLimit = 20 * time.Second

func startNATS(t *testing.T, port int) *EmbeddedNATS {
	t.Helper()
	n, err := StartNATS(NATSOptions{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

// recorder collects what a Link hands its callbacks.
type recorder struct {
	mu      sync.Mutex
	got     []string // "name:seq" in delivery order
	repairs []string // "name>after"
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) options(url string) LinkOptions {
	return LinkOptions{
		URL:           url,
		ReconnectWait: 20 * time.Millisecond,
		Logf:          func(string, ...any) {},
		OnDelivery: func(d Delivery) {
			r.add(&r.got, fmt.Sprintf("%s:%d", d.Name, d.Seq))
		},
		OnRepair: func(_ Kind, name string, after uint64) {
			r.add(&r.repairs, fmt.Sprintf("%s>%d", name, after))
		},
	}
}

func (r *recorder) add(to *[]string, s string) {
	r.mu.Lock()
	*to = append(*to, s)
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// waitFor polls until cond holds on the recorder's state, or fails.
func (r *recorder) waitFor(t *testing.T, what string, cond func(got, repairs []string) bool) {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		r.mu.Lock()
		ok := cond(r.got, r.repairs)
		got, repairs := append([]string(nil), r.got...), append([]string(nil), r.repairs...)
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.changed:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("waiting for %s: got %q, repairs %q", what, got, repairs)
		}
	}
}

func dial(t *testing.T, o LinkOptions) *Link {
	t.Helper()
	l, err := Dial(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func flush(t *testing.T, l *Link) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func openStore(t *testing.T) *persist.Store {
	t.Helper()
	s, err := persist.Open(persist.Options{Dir: t.TempDir(), SweepInterval: -1, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// storeNode dials a Link serving a fresh persist.Store.
func storeNode(t *testing.T, n *EmbeddedNATS) *Link {
	t.Helper()
	l := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf})
	if err := l.ServeStore(openStore(t)); err != nil {
		t.Fatal(err)
	}
	return l
}

func ezWrite(qname, tick, body string) *Request {
	return &Request{Op: OpEZWrite, EZ: persist.EZWrite{QName: qname, Tick: []byte(tick), Body: []byte(body)}}
}

// TestForwardAnswered: a write, a re-send, a conflict, a push and a read
// made on a light node are answered by the store node's persist.Store as
// they would be locally, sentinel errors included.
func TestForwardAnswered(t *testing.T) {
	n := startNATS(t, 0)
	storeNode(t, n)
	light := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf})
	ctx := context.Background()

	a, err := light.Forward(ctx, ezWrite("alice-news", "t1", "hello"))
	if err != nil || a.EZ.Err != nil || a.EZ.Msg.Seq != 1 || a.EZ.Duplicate || string(a.EZ.Msg.Tick) != "t1" {
		t.Fatalf("first write: %+v, %v", a.EZ, err)
	}
	a, err = light.Forward(ctx, ezWrite("alice-news", "t1", "hello"))
	if err != nil || a.EZ.Err != nil || !a.EZ.Duplicate || a.EZ.Msg.Seq != 1 {
		t.Fatalf("re-sent write: %+v, %v; want the duplicate of seq 1", a.EZ, err)
	}
	a, err = light.Forward(ctx, ezWrite("alice-news", "t1", "other"))
	if err != nil || !errors.Is(a.EZ.Err, persist.ErrTickConflict) {
		t.Fatalf("conflicting write: %+v, %v; want ErrTickConflict", a.EZ, err)
	}
	a, err = light.Forward(ctx, &Request{Op: OpCFPush, CF: persist.CFPush{Topic: "alice/room", Text: []byte(`{"x":1}`)}})
	if err != nil || a.CF.Err != nil || a.CF.Msg.ID != 1 {
		t.Fatalf("push: %+v, %v", a.CF, err)
	}
	a, err = light.Forward(ctx, &Request{Op: OpCFPush, CF: persist.CFPush{Topic: "alice/room", ID: 1, HasID: true, Text: []byte("other")}})
	if err != nil || !errors.Is(a.CF.Err, persist.ErrPushConflict) {
		t.Fatalf("push reusing id 1: %+v, %v; want ErrPushConflict", a.CF, err)
	}

	ra, err := light.Read(ctx, &ReadRequest{Kind: EZ, Name: "alice-news"})
	if err != nil || len(ra.Messages) != 1 || string(ra.Messages[0].Body) != "hello" || ra.Cursor != 1 {
		t.Fatalf("read: %+v, %v", ra, err)
	}
	ra, err = light.Read(ctx, &ReadRequest{Kind: CF, Name: "alice/room"})
	if err != nil || len(ra.Messages) != 1 || string(ra.Messages[0].Body) != `{"x":1}` || ra.Last != 1 {
		t.Fatalf("push read: %+v, %v", ra, err)
	}
}

// TestForwardWithoutStoreNode: with no store node serving, a forwarded
// write fails at once with a storage error (503), not a hang and never
// an ok; NATS tells the requester there are no responders.
func TestForwardWithoutStoreNode(t *testing.T) {
	n := startNATS(t, 0)
	light := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_, err := light.Forward(ctx, ezWrite("alice-news", "t1", "hello"))
	if !errors.Is(err, persist.ErrStorage) || !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("got %v, want a storage error for no responders", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the request waited for its whole deadline")
	}
}

// silentStore accepts writes and never completes them: a store node that
// hangs.
type silentStore struct{ StoreBackend }

func (silentStore) EZWriteTo(persist.EZWrite, persist.WriteCompletion) {}

// TestForwardTimeout: a store node that does not answer in time gives a
// storage error (503) at the request's deadline.
func TestForwardTimeout(t *testing.T) {
	n := startNATS(t, 0)
	store := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf})
	if err := store.ServeStore(silentStore{}); err != nil {
		t.Fatal(err)
	}
	light := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf, RequestTimeout: 100 * time.Millisecond})
	_, err := light.Forward(context.Background(), ezWrite("alice-news", "t1", "hello"))
	if !errors.Is(err, persist.ErrStorage) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a storage error for the deadline", err)
	}
}

func publish(t *testing.T, l *Link, ds ...Delivery) {
	t.Helper()
	l.Publish(ds)
	flush(t, l)
}

// follower starts NATS, a store node's Link and a light node's Link
// following kind/name from last.
func follower(t *testing.T, kind Kind, name string, last uint64) (store, light *Link, rec *recorder) {
	t.Helper()
	n := startNATS(t, 0)
	store = dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf})
	rec = newRecorder()
	light = dial(t, rec.options(n.URL()))
	if err := light.Subscribe(kind, name, last); err != nil {
		t.Fatal(err)
	}
	flush(t, light)
	return store, light, rec
}

func ez(name string, seq uint64) Delivery {
	return Delivery{Kind: EZ, Name: []byte(name), Seq: seq, Tick: []byte("t"), Body: []byte("m")}
}

// TestDeliveriesInOrder: deliveries published once reach both light nodes
// that follow the channel, each once and in order, and not a node that
// follows another channel.
func TestDeliveriesInOrder(t *testing.T) {
	n := startNATS(t, 0)
	store := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf})
	var recs [3]*recorder
	for i := range recs {
		recs[i] = newRecorder()
		l := dial(t, recs[i].options(n.URL()))
		name := "a-news"
		if i == 2 {
			name = "a-other"
		}
		if err := l.Subscribe(EZ, name, 0); err != nil {
			t.Fatal(err)
		}
		flush(t, l)
	}
	const count = 200
	var want []string
	for seq := uint64(1); seq <= count; seq++ {
		publish(t, store, ez("a-news", seq))
		want = append(want, fmt.Sprintf("a-news:%d", seq))
	}
	for _, r := range recs[:2] {
		r.waitFor(t, "every delivery", func(got, _ []string) bool { return len(got) >= count })
		r.mu.Lock()
		if fmt.Sprint(r.got) != fmt.Sprint(want) || len(r.repairs) != 0 {
			t.Errorf("got %q, repairs %q; want %d in order, no repair", r.got, r.repairs, count)
		}
		r.mu.Unlock()
	}
	publish(t, store, ez("a-other", 1))
	recs[2].waitFor(t, "a-other", func(got, _ []string) bool { return len(got) == 1 })
	if recs[2].got[0] != "a-other:1" {
		t.Errorf("the node following a-other got %q", recs[2].got)
	}
}

// TestGapAndDuplicate: seq 3 lost on the way (published 1, 2, 4) is
// reported as a repair after 2, and 4 is not handed on before it; after
// the repair, a re-sent 4 is a duplicate and 5 flows again.
func TestGapAndDuplicate(t *testing.T) {
	store, light, rec := follower(t, EZ, "a-news", 0)
	publish(t, store, ez("a-news", 1), ez("a-news", 2), ez("a-news", 4))
	rec.waitFor(t, "a repair", func(_, repairs []string) bool { return len(repairs) == 1 })
	if fmt.Sprint(rec.got, rec.repairs) != "[a-news:1 a-news:2] [a-news>2]" {
		t.Fatalf("got %q, repairs %q; want 1, 2 then a repair after 2", rec.got, rec.repairs)
	}
	// The caller reads 3 and 4 from the store node and hands them on.
	light.Repaired(EZ, "a-news", 4)
	publish(t, store, ez("a-news", 4), ez("a-news", 5))
	rec.waitFor(t, "seq 5", func(got, _ []string) bool { return len(got) == 3 })
	if fmt.Sprint(rec.got, rec.repairs) != "[a-news:1 a-news:2 a-news:5] [a-news>2]" {
		t.Fatalf("got %q, repairs %q", rec.got, rec.repairs)
	}
	if s := light.Stats(); s.Duplicates != 1 || s.Gaps != 1 || s.Delivered != 3 {
		t.Errorf("stats %+v; want 1 duplicate, 1 gap, 3 delivered", s)
	}
}

// TestCFFirstPushRepairs: push ids may skip, so a light node knows a push
// follows the one it has only when the store node says so; a topic's first
// push after the store node's Link started carries no Prev and is
// repaired, later ones flow even across skipped ids.
func TestCFFirstPushRepairs(t *testing.T) {
	store, light, rec := follower(t, CF, "a/room", 5)
	cf := func(id uint64) Delivery {
		return Delivery{Kind: CF, Name: []byte("a/room"), Seq: id, Body: []byte("x")}
	}
	publish(t, store, cf(7))
	rec.waitFor(t, "a repair", func(_, repairs []string) bool { return len(repairs) == 1 })
	light.Repaired(CF, "a/room", 7)
	publish(t, store, cf(10), cf(11))
	rec.waitFor(t, "ids 10, 11", func(got, _ []string) bool { return len(got) == 2 })
	if fmt.Sprint(rec.got, rec.repairs) != "[a/room:10 a/room:11] [a/room>5]" {
		t.Fatalf("got %q, repairs %q", rec.got, rec.repairs)
	}
}

// TestNATSRestart: the NATS server stops mid-stream and comes back on the
// same port; both links reconnect, the light node repairs every channel it
// follows from where it stood, and deliveries flow again.
func TestNATSRestart(t *testing.T) {
	n := startNATS(t, 0)
	port := n.Port()
	store := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf, ReconnectWait: 20 * time.Millisecond})
	rec := newRecorder()
	light := dial(t, rec.options(n.URL()))
	for _, name := range []string{"a-news", "a-other"} {
		if err := light.Subscribe(EZ, name, 0); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, light)
	publish(t, store, ez("a-news", 1), ez("a-news", 2))
	rec.waitFor(t, "1, 2", func(got, _ []string) bool { return len(got) == 2 })

	n.Close()
	// Published while NATS is down: buffered by the client or lost; either
	// way the repair covers it.
	store.Publish([]Delivery{ez("a-news", 3)})
	startNATS(t, port)

	rec.waitFor(t, "repairs after the reconnect", func(_, repairs []string) bool { return len(repairs) == 2 })
	// Seq 3 may have reached the light node (the store link's reconnect
	// buffer flushed before the light link marked its channels) or not;
	// either way a-news is repaired from the last seq handed on.
	rec.mu.Lock()
	got, repairs := fmt.Sprint(rec.got), fmt.Sprint(rec.repairs)
	rec.mu.Unlock()
	newsAfter := "a-news>2"
	if got == "[a-news:1 a-news:2 a-news:3]" {
		newsAfter = "a-news>3"
	} else if got != "[a-news:1 a-news:2]" {
		t.Fatalf("got %s", got)
	}
	if repairs != "["+newsAfter+" a-other>0]" && repairs != "[a-other>0 "+newsAfter+"]" {
		t.Fatalf("got %s, repairs %s; want %s and a-other after 0", got, repairs, newsAfter)
	}
	if light.Stats().Reconnects == 0 {
		t.Error("no reconnect counted")
	}
	light.Repaired(EZ, "a-news", 3) // the repair read returned seq 3
	light.Repaired(EZ, "a-other", 0)
	waitReconnected(t, store)
	flush(t, light) // the server has the light node's subscriptions again
	publish(t, store, ez("a-news", 4))
	rec.waitFor(t, "seq 4", func(got, _ []string) bool { return len(got) > 0 && got[len(got)-1] == "a-news:4" })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.repairs) != 2 {
		t.Fatalf("repairs %q after the reconnect's", rec.repairs)
	}
}

// TestQueueOverflowRepairs: when the delivery queue is full, NATS drops
// the message rather than block its reader, and the channel is repaired
// from the last seq handed on: nothing is lost silently.
func TestQueueOverflowRepairs(t *testing.T) {
	n := startNATS(t, 0)
	store := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf})
	rec := newRecorder()
	o := rec.options(n.URL())
	o.QueueLen = 1
	release := make(chan struct{})
	deliver := o.OnDelivery
	o.OnDelivery = func(d Delivery) {
		deliver(d)
		if d.Seq == 1 {
			<-release // a callee that breaks the contract and blocks, once
		}
	}
	light := dial(t, o)
	if err := light.Subscribe(EZ, "a-news", 0); err != nil {
		t.Fatal(err)
	}
	flush(t, light)
	var ds []Delivery
	for seq := uint64(1); seq <= 20; seq++ {
		ds = append(ds, ez("a-news", seq))
	}
	publish(t, store, ds...)
	deadline := time.Now().Add(waitLimit)
	for light.Stats().Dropped == 0 {
		if time.Now().After(deadline) {
			t.Fatal("nothing dropped with a full queue")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	rec.waitFor(t, "a repair", func(_, repairs []string) bool { return len(repairs) == 1 })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	want := "a-news>0"
	if len(rec.got) > 0 {
		want = "a-news>" + rec.got[len(rec.got)-1][len("a-news:"):]
	}
	if rec.repairs[0] != want || len(rec.got) > 2 {
		t.Fatalf("got %q, repairs %q; want at most 1, 2 and a repair after the last", rec.got, rec.repairs)
	}
}

func waitReconnected(t *testing.T, l *Link) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !l.nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("the store link did not reconnect")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
