package cluster

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halleypush/halley/persist"
	"github.com/nats-io/nats.go"
)

// gatedReads is a read function whose calls each wait at a gate of their
// own and answer, as Cursor, the store's version when the call started:
// what a real read would see.
type gatedReads struct {
	version atomic.Uint64
	calls   atomic.Int32
	started chan chan struct{} // one gate per call, sent when it starts
}

func newGatedReads() *gatedReads { return &gatedReads{started: make(chan chan struct{}, 16)} }

func (g *gatedReads) read(*ReadRequest) (ReadAnswer, error) {
	g.calls.Add(1)
	v := g.version.Load()
	gate := make(chan struct{})
	g.started <- gate
	<-gate
	return ReadAnswer{Cursor: v}, nil
}

func (g *gatedReads) nextCall(t *testing.T) chan struct{} {
	t.Helper()
	select {
	case gate := <-g.started:
		return gate
	case <-time.After(waitLimit):
		t.Fatal("no read request was made")
		return nil
	}
}

// TestCoalescerNeverJoinsARequestInFlight: readers that arrive while a
// read is in flight are all answered by one request made after it, never
// by the one in flight, whose answer may predate a write they must see
// (a write acknowledged before they arrived, which they will not get as a
// delivery). Shown to fail by letting a reader join kr.running instead of
// kr.next: the late readers then see version 0 and one request is made.
func TestCoalescerNeverJoinsARequestInFlight(t *testing.T) {
	g := newGatedReads()
	c := coalescer{sendFunc: g.read}
	r := &ReadRequest{Kind: EZ, Name: "alice-news", ByTick: true, Limit: persist.ReadLimit{Messages: 10}}

	first := make(chan uint64, 1)
	go func() {
		a, _ := c.do(context.Background(), r)
		first <- a.Cursor
	}()
	gate1 := g.nextCall(t)
	g.version.Store(1) // a write is acknowledged while the first read is in flight

	const late = 10
	answers := make(chan uint64, late)
	for range late {
		go func() {
			a, err := c.do(context.Background(), r)
			if err != nil {
				t.Error(err)
			}
			answers <- a.Cursor
		}()
	}
	// All late readers wait: one as the next request's sender, the others
	// joined to it.
	for deadline := time.Now().Add(waitLimit); c.joinedReads() < late-1; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d late readers joined", c.joinedReads(), late-1)
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case v := <-answers:
		t.Fatalf("a late reader was answered by the read in flight when it arrived (version %d)", v)
	default:
	}
	close(gate1)
	if v := <-first; v != 0 {
		t.Fatalf("first reader: version %d, want 0", v)
	}
	close(g.nextCall(t))
	for range late {
		if v := <-answers; v != 1 {
			t.Fatalf("late reader answered version %d, want 1 (the write acknowledged before it arrived)", v)
		}
	}
	if n := g.calls.Load(); n != 2 {
		t.Fatalf("%d requests for 1 + %d identical reads, want 2", n, late)
	}
	c.mu.Lock()
	left := len(c.keys)
	c.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d keys left after every read was answered", left)
	}
}

// TestCoalescerKeys: reads that differ in anything but Buf are requests
// of their own; an error reaches every reader that shared the request.
func TestCoalescerKeys(t *testing.T) {
	base := ReadRequest{Kind: EZ, Name: "alice-news", ByTick: true, Tick: []byte("t1"), Limit: persist.ReadLimit{Messages: 10, Bytes: 100}}
	variants := []func(*ReadRequest){
		func(r *ReadRequest) { r.Kind = CF },
		func(r *ReadRequest) { r.Name = "alice-other" },
		func(r *ReadRequest) { r.ByTick = false },
		func(r *ReadRequest) { r.Tick = []byte("t2") },
		func(r *ReadRequest) { r.After = 1 },
		func(r *ReadRequest) { r.NotBefore = 1 },
		func(r *ReadRequest) { r.Limit.Messages = 11 },
		func(r *ReadRequest) { r.Limit.Bytes = 101 },
	}
	k := keyOf(&base)
	for i, f := range variants {
		r := base
		f(&r)
		if keyOf(&r) == k {
			t.Errorf("variant %d shares the base read's key", i)
		}
	}
	r := base
	r.Limit.Buf = new(persist.ReadBuf)
	if keyOf(&r) != k {
		t.Error("a read into a Buf does not share the key of the same read without one")
	}

	g := newGatedReads()
	boom := errors.New("boom")
	c := coalescer{sendFunc: func(r *ReadRequest) (ReadAnswer, error) {
		_, _ = g.read(r)
		return ReadAnswer{}, boom
	}}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	wg.Add(1)
	go func() { defer wg.Done(); _, err := c.do(context.Background(), &base); errs <- err }()
	gate := g.nextCall(t)
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); _, err := c.do(context.Background(), &base); errs <- err }()
	}
	for deadline := time.Now().Add(waitLimit); c.joinedReads() < 2; {
		if time.Now().After(deadline) {
			t.Fatal("late readers did not join")
		}
		time.Sleep(time.Millisecond)
	}
	close(gate)
	close(g.nextCall(t))
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, boom) {
			t.Fatalf("reader got %v, want the shared request's error", err)
		}
	}
}

// TestLightStoreRetriesASlowStoreNode: a read the store node lets time
// out, while it still answers pings, is asked again and answered (a busy
// store node is slow, not gone); with nobody serving the store subject
// the read fails at once, unretried. Shown to fail with readAttempts = 1.
func TestLightStoreRetriesASlowStoreNode(t *testing.T) {
	var reads atomic.Int32
	// A stand-in store node: answers pings, and every read but the first
	// (which it lets time out) with one message.
	s, sub, nc := standInStore(t, 200*time.Millisecond, func(m *nats.Msg) {
		r, err := decodeReadRequest(m.Data)
		if err != nil {
			return
		}
		if r.Name == pingName {
			_ = m.Respond(appendReadAnswer(nil, &ReadAnswer{}))
			return
		}
		if reads.Add(1) == 1 {
			return
		}
		_ = m.Respond(appendReadAnswer(nil, &ReadAnswer{Cursor: 1, Last: 1,
			Messages: []Message{{Seq: 1, Tick: []byte("t1"), Body: []byte("hello")}}}))
	})

	res, err := s.EZRead("alice-news", nil, persist.ReadLimit{Messages: 10})
	if err != nil || len(res.Messages) != 1 || string(res.Messages[0].Body) != "hello" {
		t.Fatalf("read of a slow store node: %+v %v, want its one message", res, err)
	}
	if got := s.RetriedReads(); got != 1 {
		t.Fatalf("retried reads: %d, want 1", got)
	}

	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EZRead("alice-news", nil, persist.ReadLimit{Messages: 10}); !errors.Is(err, persist.ErrStorage) {
		t.Fatalf("read with no store node: %v, want a storage error", err)
	}
	if got := s.RetriedReads(); got != 1 {
		t.Fatalf("a read nobody serves was asked again: %d retries", got)
	}
}
