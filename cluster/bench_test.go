package cluster

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkCrossNode measures one committed message's way from the store
// node's Publish to a light node's OnDelivery, over a real embedded NATS
// on loopback (b.N messages on one channel; waits for the last).
func BenchmarkCrossNode(b *testing.B) {
	n, err := StartNATS(NATSOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	store, err := Dial(LinkOptions{URL: n.URL(), Logf: b.Logf})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	got := make(chan struct{}, 1)
	var want uint64
	light, err := Dial(LinkOptions{URL: n.URL(), Logf: b.Logf,
		OnDelivery: func(d Delivery) {
			if d.Seq == want {
				got <- struct{}{}
			}
		},
		OnRepair: func(_ Kind, name string, after uint64) { panic(fmt.Sprintf("repair %s after %d", name, after)) },
	})
	if err != nil {
		b.Fatal(err)
	}
	defer light.Close()
	if err := light.Subscribe(EZ, "a-news", 0); err != nil {
		b.Fatal(err)
	}
	if err := light.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 100)
	ds := make([]Delivery, 1)
	want = uint64(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ds[0] = Delivery{Kind: EZ, Name: []byte("a-news"), Seq: uint64(i + 1), Tick: []byte("0123456789abcdef"), Body: body}
		store.Publish(ds)
	}
	<-got
}
