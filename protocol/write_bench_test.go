package protocol

import (
	"net/netip"
	"testing"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// inlineLoops runs posted functions at once on the poster's goroutine, so
// an allocation count sees only the API's and the store's own.
type inlineLoops struct{}

func (inlineLoops) NumLoops() int               { return 1 }
func (inlineLoops) Post(_ int, fn func())       { fn() }
func (inlineLoops) Broadcast(fn func(loop int)) { fn(0) }

// BenchmarkWriteAccepted is one accepted /write end to end: form decoding,
// validation, the store's group commit (SyncNone, so the disk does not
// dominate), the durable answer and the fan-out broadcast. Its allocs/op
// is P5's "allocations per accepted publish".
func BenchmarkWriteAccepted(b *testing.B) {
	store, err := persist.Open(persist.Options{Dir: b.TempDir(), Sync: persist.SyncNone})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	acct, err := store.AddAccount("john")
	if err != nil {
		b.Fatal(err)
	}
	api, err := New(Options{Store: store})
	if err != nil {
		b.Fatal(err)
	}
	api.Attach(inlineLoops{})
	c := newFakeConn()
	c.replied = make(chan struct{}, 1)
	r := &engine.Request{
		Method: []byte("GET"), Path: []byte("/write"), Header: header{},
		Query:    []byte("api_key=" + acct.APIKey + "&qname=john-bench&msg=hello+world"),
		PeerAddr: netip.MustParseAddr("127.0.0.1"),
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		api.Serve(c, r)
		<-c.replied
	}
}
