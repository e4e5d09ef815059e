package cluster

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/halleypush/halley/persist"
)

// stuckReads is a store whose EZComet reads of one channel wait at a gate,
// as reads on a slow disk, or a long line of them, would.
type stuckReads struct {
	*persist.Store
	entered chan struct{}
	gate    chan struct{}
	once    sync.Once
}

func (s *stuckReads) EZReadAfter(q string, after uint64, lim persist.ReadLimit) (persist.ReadResult, error) {
	if q == "alice-slow" {
		s.entered <- struct{}{}
		<-s.gate
	}
	return s.Store.EZReadAfter(q, after, lim)
}

func (s *stuckReads) open() { s.once.Do(func() { close(s.gate) }) }

// TestStoreNodeReadsApart: while store reads are stuck, the store node
// still answers pings (a light node's /healthz and readiness rest on
// them), forwarded writes and other reads; the stuck reads are answered
// once they can go on. Before reads had their own goroutines, every
// request waited behind the read in progress: only one of the reads
// reached the store, and the test failed there.
func TestStoreNodeReadsApart(t *testing.T) {
	n := startNATS(t, 0)
	st := &stuckReads{Store: openStore(t), entered: make(chan struct{}, 64), gate: make(chan struct{})}
	store := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf})
	if err := store.ServeStore(st); err != nil {
		t.Fatal(err)
	}
	light := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf, RequestTimeout: waitLimit})
	t.Cleanup(st.open) // before the Links close: no read stays stuck

	const stuck = 3
	answered := make(chan error, stuck)
	for i := range stuck {
		go func() {
			// Distinct reads: identical ones would share one request
			// (coalesce.go).
			_, err := light.Read(context.Background(), &ReadRequest{Kind: EZ, Name: "alice-slow", After: uint64(i), Limit: persist.ReadLimit{Messages: 10}})
			answered <- err
		}()
	}
	for i := range stuck {
		select {
		case <-st.entered:
		case <-time.After(waitLimit):
			t.Fatalf("%d of %d reads reached the store at once", i, stuck)
		}
	}

	if err := light.Ping(context.Background()); err != nil {
		t.Fatalf("ping while reads are stuck: %v", err)
	}
	a, err := light.Forward(context.Background(), ezWrite("alice-fast", "t1", "hello"))
	if err != nil || a.EZ.Err != nil {
		t.Fatalf("write while reads are stuck: %v %v", err, a.EZ.Err)
	}
	r, err := light.Read(context.Background(), &ReadRequest{Kind: EZ, Name: "alice-fast", Limit: persist.ReadLimit{Messages: 10}})
	if err != nil || len(r.Messages) != 1 || string(r.Messages[0].Body) != "hello" {
		t.Fatalf("another channel's read while reads are stuck: %+v %v", r, err)
	}

	st.open()
	for range stuck {
		if err := <-answered; err != nil {
			t.Fatalf("stuck read: %v", err)
		}
	}
}
