package cluster

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halleypush/halley/persist"
	"github.com/nats-io/nats.go"
)

// TestLightStoreHealthSlowVersusGone: a store node that lets pings time
// out is still taken for available until pingMisses of them in a row
// (slow is not down: its readers keep waiting rather than getting 503),
// an answer resets the count, and a store node that is gone (nobody
// serves the store subject) is unavailable at the first ping.
func TestLightStoreHealthSlowVersusGone(t *testing.T) {
	var silent atomic.Bool
	// A stand-in store node: answers every request unless silent.
	s, sub, nc := standInStore(t, 100*time.Millisecond, func(m *nats.Msg) {
		if !silent.Load() {
			_ = m.Respond([]byte{0})
		}
	})
	// The pinger never ticks during the test: the test pings itself.
	if err := s.Healthy(); err != nil {
		t.Fatalf("answering store node: %v", err)
	}
	silent.Store(true)
	s.ping()
	if err := s.Healthy(); err != nil {
		t.Fatalf("one missed ping (a slow store node) made it unavailable: %v", err)
	}
	for i := 2; i < pingMisses; i++ {
		s.ping()
		if err := s.Healthy(); err != nil {
			t.Fatalf("after %d missed pings of %d: %v", i, pingMisses, err)
		}
	}
	s.ping()
	if err := s.Healthy(); !errors.Is(err, persist.ErrStorage) {
		t.Fatalf("after %d missed pings: %v, want a storage error", pingMisses, err)
	}
	silent.Store(false)
	s.ping()
	if err := s.Healthy(); err != nil {
		t.Fatalf("answering again: %v", err)
	}
	silent.Store(true)
	s.ping() // one miss, then an answer: the count starts again
	silent.Store(false)
	s.ping()
	silent.Store(true)
	for i := 1; i < pingMisses; i++ {
		s.ping()
	}
	if err := s.Healthy(); err != nil {
		t.Fatalf("misses not in a row made it unavailable: %v", err)
	}
	silent.Store(false)
	s.ping()
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	s.ping()
	if err := s.Healthy(); !errors.Is(err, persist.ErrStorage) {
		t.Fatalf("no store node at all, after one ping: %v, want a storage error", err)
	}
}

// standInStore starts NATS, a stand-in store node answering the store
// subject with serve, and a LightStore whose pinger never ticks (a test
// pings itself) and whose requests time out after timeout. It returns
// the store node's subscription and connection, for the test to stop it.
func standInStore(t *testing.T, timeout time.Duration, serve nats.MsgHandler) (*LightStore, *nats.Subscription, *nats.Conn) {
	t.Helper()
	n := startNATS(t, 0)
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.Subscribe("halley.store", serve)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	light := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf, RequestTimeout: timeout})
	fwd, err := light.NewForwarder(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fwd.Close)
	s := NewLightStore(light, fwd, nil, time.Hour)
	t.Cleanup(s.Close)
	return s, sub, nc
}
