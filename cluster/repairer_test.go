package cluster

import (
	"fmt"
	"sync"
	"testing"

	"github.com/halleypush/halley/persist"
)

// writeSync writes one message to s and returns it once committed.
func writeSync(t *testing.T, s *persist.Store, qname, tick string) persist.Message {
	t.Helper()
	res := make(chan persist.EZWriteResult, 1)
	s.EZWrite(persist.EZWrite{QName: qname, Tick: []byte(tick), Body: []byte("body " + tick)}, func(r persist.EZWriteResult) { res <- r })
	r := <-res
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	return r.Msg
}

func deliveryOf(qname string, m persist.Message) Delivery {
	return Delivery{Kind: EZ, Name: []byte(qname), Seq: m.Seq, Tick: m.Tick, Body: m.Body, Time: m.Time}
}

// TestRepairEndToEnd: committed messages that never reached the light
// node (1..6 committed, only 1, 3, 4 and 6 published) are read from the
// store node's persist.Store by the Repairer; the light node's readers
// get 1..6 exactly once, in order.
func TestRepairEndToEnd(t *testing.T) {
	n := startNATS(t, 0)
	storeLink := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf})
	s := openStore(t)
	if err := storeLink.ServeStore(s); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var got []string
	changed := newRecorder() // only its wait loop
	seen := func(how string, seq uint64) {
		mu.Lock()
		got = append(got, fmt.Sprintf("%s%d", how, seq))
		mu.Unlock()
		changed.add(&changed.got, "")
	}
	r := &Repairer{Deliver: func(_ Kind, _ string, a ReadAnswer) {
		for _, m := range a.Messages {
			seen("r", m.Seq)
		}
	}}
	light := dial(t, LinkOptions{URL: n.URL(), Logf: t.Logf,
		OnDelivery: func(d Delivery) { seen("l", d.Seq) },
		OnRepair:   r.OnRepair,
	})
	r.Link = light
	r.Start(2)
	defer r.Close()
	if err := light.Subscribe(EZ, "a-news", 0); err != nil {
		t.Fatal(err)
	}
	flush(t, light)

	m1 := writeSync(t, s, "a-news", "t1")
	writeSync(t, s, "a-news", "t2") // lost on the way
	m3 := writeSync(t, s, "a-news", "t3")
	publish(t, storeLink, deliveryOf("a-news", m1), deliveryOf("a-news", m3))
	changed.waitFor(t, "1, 2, 3", func(g, _ []string) bool { return len(g) >= 3 })
	m4 := writeSync(t, s, "a-news", "t4")
	writeSync(t, s, "a-news", "t5") // lost too
	m6 := writeSync(t, s, "a-news", "t6")
	publish(t, storeLink, deliveryOf("a-news", m4), deliveryOf("a-news", m6))
	changed.waitFor(t, "every message", func(g, _ []string) bool { return len(g) >= 6 })

	mu.Lock()
	defer mu.Unlock()
	var seqs []string
	for _, g := range got {
		seqs = append(seqs, g[1:])
	}
	if fmt.Sprint(seqs) != "[1 2 3 4 5 6]" {
		t.Fatalf("readers got %q (l: live, r: repaired), want 1..6 once each, in order", got)
	}
	if got[0] != "l1" || got[1] != "r2" || got[2] != "r3" {
		t.Errorf("got %q, want 1 live, then 2 and 3 by repair", got)
	}
}
