package cluster

import (
	"testing"

	"github.com/halleypush/halley/promtext/promcheck"
)

// TestAppendMetrics: a Link's series parse as Prometheus text under the
// project's naming checks, and say what the Link did: one channel
// followed, its deliveries counted, the connection up.
func TestAppendMetrics(t *testing.T) {
	n := startNATS(t, 0)
	rec := newRecorder()
	light := dial(t, rec.options(n.URL()))
	store := dial(t, LinkOptions{URL: n.URL(), Logf: func(string, ...any) {}})
	if err := light.Subscribe(EZ, "u-c", 0); err != nil {
		t.Fatal(err)
	}
	flush(t, light)
	store.Publish([]Delivery{{Kind: EZ, Name: []byte("u-c"), Seq: 1}, {Kind: EZ, Name: []byte("u-c"), Seq: 2}})
	rec.waitFor(t, "two deliveries", func(got, _ []string) bool { return len(got) == 2 })

	fams, err := promcheck.Parse(AppendMetrics(nil, light))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"halley_cluster_deliveries_total": 2,
		"halley_cluster_gaps_total":       0,
		"halley_cluster_nats_connected":   1,
		"halley_cluster_followed":         1,
	} {
		f := fams[name]
		if f == nil || len(f.GetMetric()) != 1 {
			t.Fatalf("%s: missing", name)
		}
		m := f.GetMetric()[0]
		got := m.GetCounter().GetValue() + m.GetGauge().GetValue()
		if got != want {
			t.Fatalf("%s = %v, want %v", name, got, want)
		}
	}
}
