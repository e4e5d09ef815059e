package cluster

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/halleypush/halley/persist"
)

// TestSubscribeLastUnknown: a channel followed from LastUnknown takes its
// first delivery whatever came before it, then checks the order from
// there; AfterDeliveries runs after the deliveries handed on.
func TestSubscribeLastUnknown(t *testing.T) {
	n := startNATS(t, 0)
	store := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf})
	rec := newRecorder()
	var runs atomic.Int64
	o := rec.options(n.URL())
	o.AfterDeliveries = func() { runs.Add(1) }
	light := dial(t, o)
	if err := light.Subscribe(EZ, "a-news", LastUnknown); err != nil {
		t.Fatal(err)
	}
	flush(t, light)
	publish(t, store, ez("a-news", 7), ez("a-news", 8), ez("a-news", 10))
	rec.waitFor(t, "7, 8 and a repair after 8", func(got, repairs []string) bool { return len(got) == 2 && len(repairs) == 1 })
	if fmt.Sprint(rec.got, rec.repairs) != "[a-news:7 a-news:8] [a-news>8]" {
		t.Fatalf("got %q, repairs %q", rec.got, rec.repairs)
	}
	if runs.Load() == 0 {
		t.Error("AfterDeliveries never ran")
	}
}

// storeWithHook opens a persist.Store whose AfterBatch calls *hook.
func storeWithHook(t *testing.T, hook *atomic.Pointer[func()]) *persist.Store {
	t.Helper()
	s, err := persist.Open(persist.Options{Dir: t.TempDir(), SweepInterval: -1, Logf: t.Logf,
		AfterBatch: func() {
			if f := hook.Load(); f != nil {
				(*f)()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type writeDone chan persist.EZWriteResult

func (c writeDone) WriteDone(r persist.EZWriteResult) { c <- r }

type pushDone chan persist.CFPushResult

func (c pushDone) CFPushDone(r persist.CFPushResult) { c <- r }

// TestStoreNodeAndLightStore: a write taken by a light node (LightStore)
// and one taken by the store node (StoreNode) are each published once to
// a light node following the channel, in commit order; only the
// forwarded one is handed to the store node's own readers (the local one
// reaches them by its completion); the light node's writer is answered
// Duplicate (its readers get the message by its delivery); reads and
// CFLast answer from the store node's data.
func TestStoreNodeAndLightStore(t *testing.T) {
	n := startNATS(t, 0)
	var hook atomic.Pointer[func()]
	ps := storeWithHook(t, &hook)
	storeLink := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf})
	var mu sync.Mutex
	var local []string
	node := NewStoreNode(ps, storeLink, func(d *Delivery) {
		mu.Lock()
		local = append(local, fmt.Sprintf("%s:%d", d.Name, d.Seq))
		mu.Unlock()
	})
	after := node.AfterBatch
	hook.Store(&after)
	if err := node.Serve(); err != nil {
		t.Fatal(err)
	}

	rec := newRecorder()
	light := dial(t, rec.options(n.URL()))
	if err := light.Subscribe(EZ, "a-c", LastUnknown); err != nil {
		t.Fatal(err)
	}
	flush(t, light)
	fwd, err := light.NewForwarder(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fwd.Close)
	acct, err := ps.AddAccount("a")
	if err != nil {
		t.Fatal(err)
	}
	ac, err := light.FollowAccounts(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ac.Close)
	ls := NewLightStore(light, fwd, ac, 0)
	t.Cleanup(ls.Close)
	if got, ok := ls.AccountByName([]byte("a")); !ok || got.APIKey != acct.APIKey {
		t.Fatalf("account from the cache: %+v %v", got, ok)
	}
	if err := ls.Healthy(); err != nil {
		t.Fatalf("Healthy: %v", err)
	}

	done := make(writeDone, 2)
	ls.EZWriteTo(persist.EZWrite{QName: "a-c", Tick: []byte("t1"), Body: []byte("one")}, done)
	if r := <-done; r.Err != nil || !r.Duplicate || r.Msg.Seq != 1 {
		t.Fatalf("forwarded write: %+v", r)
	}
	node.EZWriteTo(persist.EZWrite{QName: "a-c", Tick: []byte("t2"), Body: []byte("two")}, done)
	if r := <-done; r.Err != nil || r.Duplicate || r.Msg.Seq != 2 {
		t.Fatalf("local write: %+v", r)
	}
	rec.waitFor(t, "both deliveries", func(got, _ []string) bool { return len(got) == 2 })
	if fmt.Sprint(rec.got, rec.repairs) != "[a-c:1 a-c:2] []" {
		t.Fatalf("light node got %q, repairs %q", rec.got, rec.repairs)
	}
	mu.Lock()
	if fmt.Sprint(local) != "[a-c:1]" {
		t.Errorf("store node's own readers were handed %q, want the forwarded write only", local)
	}
	mu.Unlock()

	res, err := ls.EZReadAfter("a-c", 0, persist.ReadLimit{})
	if err != nil || len(res.Messages) != 2 || string(res.Messages[1].Body) != "two" {
		t.Fatalf("read through the light node: %+v %v", res, err)
	}
	res, err = ls.EZRead("a-c", []byte("t1"), persist.ReadLimit{})
	if err != nil || len(res.Messages) != 1 || string(res.Messages[0].Tick) != "t2" {
		t.Fatalf("read after a tick through the light node: %+v %v", res, err)
	}
	if cs := ls.EZChannels("a"); len(cs) != 1 || cs[0].QName != "a-c" || cs[0].Queued != 2 {
		t.Fatalf("channel table through the light node: %+v", cs)
	}
	pd := make(pushDone, 1)
	ls.CFPushTo(persist.CFPush{Topic: "a/room", ID: 9, HasID: true, Text: []byte("hi")}, pd)
	if r := <-pd; r.Err != nil || r.Msg.ID != 9 {
		t.Fatalf("forwarded push: %+v", r)
	}
	if last, err := ls.CFLastRead([]byte("a/room")); err != nil || last != 9 {
		t.Fatalf("CFLastRead of a topic this node does not follow: %d %v", last, err)
	}
	cf, err := ls.CFRead([]byte("a/room"), 0, 0, persist.ReadLimit{})
	if err != nil || len(cf.Pushes) != 1 || cf.Last != 9 {
		t.Fatalf("CF read through the light node: %+v %v", cf, err)
	}
	if last, err := ls.CFLastRead([]byte("a/nothing")); err != nil || last != 0 {
		t.Fatalf("CFLastRead of a topic never pushed: %d %v", last, err)
	}
}
