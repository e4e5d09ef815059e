package protocol

import (
	"net/netip"
	"testing"
	"time"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// inlineLoops runs posted functions at once on the poster's goroutine, so
// an allocation count sees only the API's and the store's own.
type inlineLoops struct{}

func (inlineLoops) NumLoops() int                 { return 1 }
func (inlineLoops) Post(_ int, fn func())         { fn() }
func (inlineLoops) Broadcast(fn func(loop int))   { fn(0) }
func (inlineLoops) PostTask(_ int, t engine.Task) { t.Run(0) }
func (inlineLoops) BroadcastTask(t engine.Task)   { t.Run(0) }

// newInlineAPI builds an API over a SyncNone store holding account
// "john", with inline loops; now is both's clock (nil: time.Now).
func newInlineAPI(tb testing.TB, now func() time.Time) (*API, persist.Account) {
	hook := &batchHook{}
	store, err := persist.Open(persist.Options{Dir: tb.TempDir(), Sync: persist.SyncNone, Now: now, AfterBatch: hook.run})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	acct, err := store.AddAccount("john")
	if err != nil {
		tb.Fatal(err)
	}
	api, err := New(Options{Store: store, Now: now})
	if err != nil {
		tb.Fatal(err)
	}
	api.Attach(inlineLoops{})
	tb.Cleanup(api.Close)
	hook.api.Store(api)
	return api, acct
}

// newWriteBench returns a function that performs one accepted /write
// and waits for it.
func newWriteBench(tb testing.TB) func() {
	api, acct := newInlineAPI(tb, nil)
	c := newFakeConn()
	c.replied = make(chan struct{}, 1)
	r := &engine.Request{
		Method: []byte("GET"), Path: []byte("/write"), Header: header{},
		Query:    []byte("api_key=" + acct.APIKey + "&qname=john-bench&msg=hello+world"),
		PeerAddr: netip.MustParseAddr("127.0.0.1"),
	}
	return func() {
		api.Serve(c, r)
		<-c.replied
	}
}

// TestWriteAllocs is P5's budget: at most 2 allocations per accepted
// publish, whatever the number of readers (fan-out adds none).
func TestWriteAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool is randomised under -race; make test checks this budget without -race")
	}
	write := newWriteBench(t)
	write()
	if n := testing.AllocsPerRun(500, write); n > 2 {
		t.Fatalf("%v allocations per accepted publish, budget 2", n)
	}
}

// BenchmarkWriteAccepted is one accepted /write end to end: form decoding,
// validation, the store's group commit (SyncNone, so the disk does not
// dominate), the durable answer and the fan-out broadcast. Its allocs/op
// is P5's "allocations per accepted publish".
func BenchmarkWriteAccepted(b *testing.B) {
	write := newWriteBench(b)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		write()
	}
}
