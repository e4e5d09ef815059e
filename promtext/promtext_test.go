package promtext_test

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/halleypush/halley/promtext"
	"github.com/halleypush/halley/promtext/promcheck"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// appendAll writes one family of each kind the package writes.
func appendAll(dst []byte, help, label string, v float64) []byte {
	dst = promtext.Counter(dst, "halley_things_total", help, v)
	dst = promtext.Gauge(dst, "halley_things", help, v)
	dst = promtext.Header(dst, "halley_level_things", promtext.TypeGauge, help)
	dst = promtext.Sample(dst, "halley_level_things", "level", label, v)
	dst = promtext.Sample(dst, "halley_level_things", "level", label+"x", 1)
	return promtext.Histogram(dst, "halley_wait_seconds", help, []float64{0.001, 0.01, 1}, []uint64{1, 0, 2, 3}, v)
}

func TestFamiliesParse(t *testing.T) {
	text := appendAll(nil, `Things "quoted", a \ and a
newline.`, `a"b\c`, 7)
	fams, err := promcheck.Parse(text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if got := fams["halley_things_total"].GetHelp(); got != "Things \"quoted\", a \\ and a\nnewline." {
		t.Errorf("help round trip: %q", got)
	}
	if got := fams["halley_level_things"].GetMetric()[0].GetLabel()[0].GetValue(); got != `a"b\c` {
		t.Errorf("label round trip: %q", got)
	}
	h := fams["halley_wait_seconds"].GetMetric()[0].GetHistogram()
	var cum []uint64
	for _, b := range h.GetBucket() {
		cum = append(cum, b.GetCumulativeCount())
	}
	if h.GetSampleCount() != 6 || h.GetSampleSum() != 7 || len(cum) != 4 || cum[0] != 1 || cum[1] != 1 || cum[2] != 3 || cum[3] != 6 {
		t.Errorf("histogram: count %d sum %g buckets %v, want 6, 7, [1 1 3 6]", h.GetSampleCount(), h.GetSampleSum(), cum)
	}
}

// The public /metrics is written on an event loop: appending to a buffer
// with room allocates nothing.
func TestAppendAllocs(t *testing.T) {
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { buf = appendAll(buf[:0], "Things.", "0", 3.5) }); n != 0 {
		t.Fatalf("%v allocations per run, want 0", n)
	}
}

// FuzzAppend: whatever help text, label value and sample value, the
// output parses with Prometheus's parser and says what was written.
func FuzzAppend(f *testing.F) {
	f.Add("Plain help.", "0", 1.0)
	f.Add("a\\b\nc\"d", "x\"y\\z\n", math.Inf(1))
	f.Add("", "", math.NaN())
	f.Add("\xff\xfe bad utf8", "\xc3", math.Copysign(0, -1))
	f.Fuzz(func(t *testing.T, help, label string, v float64) {
		text := appendAll(nil, help, label, v)
		p := expfmt.NewTextParser(model.LegacyValidation)
		fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
		if err != nil {
			t.Fatalf("%v\n%s", err, text)
		}
		want := strings.ToValidUTF8(help, "\uFFFD")
		if got := fams["halley_things_total"].GetHelp(); got != want {
			// The parser drops a HELP's leading blanks and keeps the rest.
			if strings.TrimLeft(want, " \t") != got {
				t.Fatalf("help %q came back %q", want, got)
			}
		}
		m := fams["halley_level_things"].GetMetric()
		if len(m) != 2 || m[0].GetLabel()[0].GetValue() != strings.ToValidUTF8(label, "\uFFFD") {
			t.Fatalf("label %q: got %v", label, m)
		}
		got := fams["halley_things"].GetMetric()[0].GetGauge().GetValue()
		if got != v && !(math.IsNaN(v) && math.IsNaN(got)) {
			t.Fatalf("value %v came back %v", v, got)
		}
		if fams["halley_things_total"].GetType() != dto.MetricType_COUNTER {
			t.Fatalf("counter type lost")
		}
	})
}
