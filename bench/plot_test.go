package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHistogramCDF(t *testing.T) {
	var h Histogram
	if h.cdf() != nil {
		t.Fatal("empty histogram has points")
	}
	for _, v := range []int64{1e6, 1e6, 2e6, 5e6, 40e6} {
		h.Record(v)
	}
	c := h.cdf()
	if len(c) != 4 || c[len(c)-1] != [2]float64{40, 1} || c[0][1] != 0.4 {
		t.Fatalf("%v", c)
	}
	for i := 1; i < len(c); i++ {
		if c[i][0] <= c[i-1][0] || c[i][1] <= c[i-1][1] {
			t.Fatalf("not increasing: %v", c)
		}
	}
}

func isPNG(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || len(b) < 1000 {
		t.Fatalf("%s: %v, %d bytes", path, err, len(b))
	}
}

// Each case is drawn: a latency CDF per server when its runs have
// latencies, else each run's curve; the fan-out cases together as
// deliveries/s against subscribers.
func TestPlots(t *testing.T) {
	dir := t.TempDir()
	var h1, h2 Histogram
	for i := int64(1); i <= 1000; i++ {
		h1.Record(i * 1e4)
		h2.Record(i * 3e4)
	}
	fan := &caseResult{Case: "fanout-1k", metrics: fanoutMetrics}
	fan.Halley, fan.Nchan = &side{}, &side{}
	fan.Halley.add(outcome{m: map[string]float64{"deliveries_per_sec": 4e5, "open": 1000}, hist: &h1}, nil)
	fan.Nchan.add(outcome{m: map[string]float64{"deliveries_per_sec": 3e5, "open": 1000}, hist: &h2}, nil)
	fan.finish()
	if err := fan.save(dir); err != nil {
		t.Fatal(err)
	}
	isPNG(t, filepath.Join(dir, "fanout-1k.png"))
	if md, _ := os.ReadFile(filepath.Join(dir, "fanout-1k.md")); !strings.Contains(string(md), "![fanout-1k](fanout-1k.png)") {
		t.Fatalf("no plot in\n%s", md)
	}
	if len(fan.Halley.CDF) == 0 || fan.Halley.CDF[len(fan.Halley.CDF)-1][1] != 1 {
		t.Fatalf("cdf %v", fan.Halley.CDF)
	}
	idle := &caseResult{Case: "idle-ws", metrics: idleMetrics, Centrifuge: &side{}}
	idle.Centrifuge.add(outcome{m: map[string]float64{"bytes_per_conn": 6000}, curve: [][2]float64{{200, 56}, {1000, 61}}}, nil)
	idle.Centrifuge.add(outcome{m: map[string]float64{"bytes_per_conn": 6100}, curve: [][2]float64{{200, 57}, {1000, 62}}}, nil)
	idle.finish()
	if f, err := idle.plotCase(dir); err != nil || f != "idle-ws.png" {
		t.Fatal(f, err)
	}
	isPNG(t, filepath.Join(dir, "idle-ws.png"))
	ten := &caseResult{Case: "fanout-10k", metrics: fanoutMetrics, Halley: &side{}}
	ten.Halley.add(outcome{m: map[string]float64{"deliveries_per_sec": 2e5, "open": 10000}}, nil)
	ten.finish()
	if f, err := plotFanoutRates(dir, []*caseResult{fan, ten}); err != nil || f != "fanout-rates.png" {
		t.Fatal(f, err)
	}
	isPNG(t, filepath.Join(dir, "fanout-rates.png"))
	// Drawn again from the JSON lines alone.
	if err := idle.save(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"fanout-1k.png", "idle-ws.png", "fanout-rates.png"} {
		os.Remove(filepath.Join(dir, f))
	}
	var out, errb bytes.Buffer
	if code := Main([]string{"plot", "--out", dir}, &out, &errb); code != 0 || strings.Count(out.String(), ".png") != 3 {
		t.Fatalf("plot: %d %s %s", code, out.String(), errb.String())
	}
	for _, f := range []string{"fanout-1k.png", "idle-ws.png", "fanout-rates.png"} {
		isPNG(t, filepath.Join(dir, f))
	}
	// Nothing to draw: no plot, no error.
	if f, err := (&caseResult{Case: "x", Halley: &side{}}).plotCase(dir); f != "" || err != nil {
		t.Fatal(f, err)
	}
}
