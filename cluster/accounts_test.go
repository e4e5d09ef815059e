package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/halleypush/halley/persist"
)

// TestAccountsFollowed: an account added and then removed on the store
// node shows on a light node's cache, and the change callback runs after
// the cache shows it (what A-04's closing of readers relies on).
func TestAccountsFollowed(t *testing.T) {
	n := startNATS(t, 0)
	storeLink := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf})
	s, err := persist.Open(persist.Options{Dir: t.TempDir(), SweepInterval: -1, Logf: t.Logf,
		OnAccountChange: storeLink.PublishAccountChange})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := storeLink.ServeStore(s); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddAccount("early"); err != nil {
		t.Fatal(err)
	}

	light := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf})
	type change struct {
		name    string
		present bool
	}
	var cache *AccountCache
	changes := make(chan change, 16)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	cache, err = light.FollowAccounts(ctx, func(name string) {
		_, ok := cache.AccountByName([]byte(name))
		changes <- change{name, ok}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	if _, ok := cache.AccountByName([]byte("early")); !ok {
		t.Fatal("the account added before the light node started is missing")
	}

	a, err := s.AddAccount("alice")
	if err != nil {
		t.Fatal(err)
	}
	next := func() change {
		select {
		case c := <-changes:
			return c
		case <-time.After(waitLimit):
			t.Fatal("no change reported")
			return change{}
		}
	}
	if c := next(); c != (change{"alice", true}) {
		t.Fatalf("got %+v, want alice added", c)
	}
	if got, ok := cache.AccountByAPIKey([]byte(a.APIKey)); !ok || got.ID != a.ID {
		t.Fatalf("api key lookup: %+v, %v", got, ok)
	}
	if got, ok := cache.AccountByCFKey([]byte(a.CFAPIKey)); !ok || got.ID != a.ID {
		t.Fatalf("cf key lookup: %+v, %v", got, ok)
	}
	if err := s.RemoveAccount("alice"); err != nil {
		t.Fatal(err)
	}
	if c := next(); c != (change{"alice", false}) {
		t.Fatalf("got %+v, want alice removed", c)
	}
	if _, ok := cache.AccountByAPIKey([]byte(a.APIKey)); ok {
		t.Fatal("a removed account's key still admits")
	}
}

func TestAccountsFrame(t *testing.T) {
	as := []persist.Account{{Username: "a", APIKey: "k", CFAPIKey: "c", APISecret: "s", ID: 3, MaxListenersPerIP: 30}}
	b, err := appendAccounts(nil, as)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeAccounts(b)
	if err != nil || len(got) != 1 || got[0] != as[0] {
		t.Fatalf("got %+v, %v", got, err)
	}
	for _, bad := range [][]byte{nil, {wireVersion, frameAccountsAnswer}, {wireVersion, frameDelivery, '[', ']'}} {
		if _, err := decodeAccounts(bad); err == nil {
			t.Errorf("% x decoded", bad)
		}
	}
}
