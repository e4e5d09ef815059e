package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// metric is one row of a case's table.
type metric struct {
	key, label string
}

// outcome is what one run of a case measured: its table values and, for
// the plots, its latency histogram (publish, fan-out) or a curve (idle:
// connections → server RSS; floor: frames per write → CPU per frame).
type outcome struct {
	m     map[string]float64
	hist  *Histogram
	curve [][2]float64
}

// side is one server's runs of one case.
type side struct {
	Runs   []map[string]float64 `json:"runs"`
	Median map[string]float64   `json:"median"`
	Errors []string             `json:"errors,omitempty"`
	// Curves are each run's curve; CDF is the latency distribution of
	// every run's samples together: (ms, fraction at or below).
	Curves [][][2]float64 `json:"curves,omitempty"`
	CDF    [][2]float64   `json:"latency_cdf_ms,omitempty"`
	hist   *Histogram
}

func (s *side) add(o outcome, err error) {
	if err != nil {
		s.Errors = append(s.Errors, err.Error())
		return
	}
	s.Runs = append(s.Runs, o.m)
	if o.hist != nil {
		if s.hist == nil {
			s.hist = &Histogram{}
		}
		s.hist.Merge(o.hist)
	}
	if o.curve != nil {
		s.Curves = append(s.Curves, o.curve)
	}
}

func (s *side) finish(ms []metric) {
	if s.hist != nil {
		s.CDF = s.hist.cdf()
	}
	s.Median = map[string]float64{}
	for _, m := range ms {
		var v []float64
		for _, r := range s.Runs {
			if x, ok := r[m.key]; ok {
				v = append(v, x)
			}
		}
		if len(v) > 0 {
			s.Median[m.key] = median(v)
		}
	}
}

// median of the values (mean of the middle two for an even count).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// caseResult is one case: the JSON line and the Markdown table. Each
// server has its column (serverKind.column): Halley, then the peers.
type caseResult struct {
	Case            string             `json:"case"`
	Time            string             `json:"time"`
	Command         string             `json:"command"` // the harness command, repeatable by hand
	HalleyCmd       string             `json:"halley_cmd,omitempty"`
	NchanCmd        string             `json:"nchan_cmd,omitempty"`
	CentrifugeCmd   string             `json:"centrifuge_cmd,omitempty"`
	Halley          *side              `json:"halley,omitempty"`
	Nchan           *side              `json:"nchan,omitempty"`
	Centrifuge      *side              `json:"centrifuge,omitempty"`
	Floor           *side              `json:"floor,omitempty"` // the floor case: no server`
	ClusterCmd      string             `json:"cluster_cmd,omitempty"`
	Cluster         *side              `json:"cluster,omitempty"` // idle-cluster, fanout-cluster: Halley as many nodes
	RatioCluster    map[string]float64 `json:"ratio_cluster_over_single,omitempty"`
	Ratio           map[string]float64 `json:"ratio_halley_over_nchan,omitempty"`
	RatioCentrifuge map[string]float64 `json:"ratio_halley_over_centrifuge,omitempty"`
	Machine         string             `json:"machine,omitempty"` // CPUs and load average at the start and end of the case
	Note            string             `json:"note,omitempty"`    // --note: what the numbers need beside them
	// Lines are findings of the case beside the table (the floor, the
	// fdatasync target), one sentence each.
	Lines   []string `json:"lines,omitempty"`
	Plot    string   `json:"plot,omitempty"` // the case's plot, beside the table
	metrics []metric
}

// columns are the suite's servers in table order (and the floor, which
// is none); Halley's ratio to each peer follows them.
var columns = []struct {
	key, label string
	peer       bool
}{{"halley", "Halley", false}, {"nchan", "Nchan", true}, {"centrifuge", "Centrifuge", true}, {"floor", "Floor (no server)", false}, {"cluster", "Halley cluster", false}}

// columnLabel is how a table names column col.
func columnLabel(col string) string {
	for _, c := range columns {
		if c.key == col {
			return c.label
		}
	}
	return col
}

// slot is the side and server command of column col.
func (c *caseResult) slot(col string) (**side, *string) {
	switch col {
	case "halley":
		return &c.Halley, &c.HalleyCmd
	case "nchan":
		return &c.Nchan, &c.NchanCmd
	case "centrifuge":
		return &c.Centrifuge, &c.CentrifugeCmd
	case "floor":
		var none string
		return &c.Floor, &none
	case "cluster":
		return &c.Cluster, &c.ClusterCmd
	}
	panic("bench: no column " + col)
}

// ratio is the map of Halley ÷ the peer of column col.
func (c *caseResult) ratio(col string) *map[string]float64 {
	if col == "centrifuge" {
		return &c.RatioCentrifuge
	}
	return &c.Ratio
}

// machineLoad is "N CPUs, load average A B C": the machine is shared, and
// a case's numbers mean little without what else was running.
func machineLoad() string {
	s := fmt.Sprintf("%d CPUs", runtime.NumCPU())
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			s += ", load average " + strings.Join(f[:3], " ")
		}
	}
	return s
}

func (c *caseResult) finish() {
	for _, col := range columns {
		if s, _ := c.slot(col.key); *s != nil {
			(*s).finish(c.metrics)
		}
	}
	for _, col := range columns {
		p, _ := c.slot(col.key)
		if !col.peer || c.Halley == nil || *p == nil {
			continue
		}
		*c.ratio(col.key) = positiveRatio(c.Halley.Median, (*p).Median)
	}
	if c.Cluster != nil && c.Halley != nil {
		c.RatioCluster = positiveRatio(c.Cluster.Median, c.Halley.Median)
	}
}

// positiveRatio is a ÷ b for every key both have positive: a ratio of
// machine-wide noise around zero (kernel figures) means nothing.
func positiveRatio(a, b map[string]float64) map[string]float64 {
	r := map[string]float64{}
	for k, x := range a {
		if y, ok := b[k]; ok && x > 0 && y > 0 {
			r[k] = x / y
		}
	}
	return r
}

func fmtNum(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100 || v <= -100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1 || v <= -1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// markdown renders the case as a table, the servers side by side, then
// Halley's ratio to each peer.
func (c *caseResult) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n%s. Harness: `%s`\n\n", c.Case, c.Time, c.Command)
	if c.HalleyCmd != "" {
		fmt.Fprintf(&b, "Halley: `%s` (fresh server and data directory each run)\n\n", c.HalleyCmd)
	}
	if c.ClusterCmd != "" {
		fmt.Fprintf(&b, "Halley cluster: `%s` (fresh server and data directory each run)\n\n", c.ClusterCmd)
	}
	for _, col := range columns {
		if _, cmd := c.slot(col.key); col.peer && *cmd != "" {
			fmt.Fprintf(&b, "%s: `%s` (restarted each run)\n\n", col.label, *cmd)
		}
	}
	if c.Machine != "" {
		fmt.Fprintf(&b, "Machine: %s (client and server share the CPUs).\n\n", c.Machine)
	}
	if c.Note != "" {
		fmt.Fprintf(&b, "Note: %s\n\n", c.Note)
	}
	cols := []string{"metric"}
	var sides []*side
	var ratios []map[string]float64
	for _, col := range columns {
		if s, _ := c.slot(col.key); *s != nil {
			cols = append(cols, fmt.Sprintf("%s (median of %d)", col.label, len((*s).Runs)))
			sides = append(sides, *s)
		}
	}
	for _, col := range columns {
		if r := *c.ratio(col.key); col.peer && r != nil {
			cols = append(cols, "Halley / "+col.label)
			ratios = append(ratios, r)
		}
	}
	if c.RatioCluster != nil {
		cols = append(cols, "Cluster / single node")
		ratios = append(ratios, c.RatioCluster)
	}
	fmt.Fprintf(&b, "| %s |\n|%s\n", strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
	for _, m := range c.metrics {
		row := []string{m.label}
		for _, s := range sides {
			if v, ok := s.Median[m.key]; ok {
				row = append(row, fmtNum(v))
			} else {
				row = append(row, "–")
			}
		}
		for _, r := range ratios {
			if v, ok := r[m.key]; ok {
				row = append(row, fmt.Sprintf("%.2f×", v))
			} else {
				row = append(row, "–")
			}
		}
		fmt.Fprintf(&b, "| %s |\n", strings.Join(row, " | "))
	}
	for _, l := range c.Lines {
		fmt.Fprintf(&b, "\n%s\n", l)
	}
	if c.Plot != "" {
		fmt.Fprintf(&b, "\n![%s](%s)\n", c.Case, c.Plot)
	}
	for _, col := range columns {
		s, _ := c.slot(col.key)
		if *s == nil {
			continue
		}
		fmt.Fprintf(&b, "\n%s runs:", col.label)
		for _, r := range (*s).Runs {
			fmt.Fprintf(&b, " %s;", fmtNum(r[c.metrics[0].key]))
		}
		fmt.Fprintf(&b, " (%s)\n", c.metrics[0].label)
		for _, e := range (*s).Errors {
			fmt.Fprintf(&b, "\n- %s run failed: %s\n", col.label, strings.ReplaceAll(e, "\n", " "))
		}
	}
	return b.String()
}

// save draws <out>/<case>.png, writes <out>/<case>.md and appends the
// case's JSON line to <out>/results.jsonl.
func (c *caseResult) save(out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	plotFile, err := c.plotCase(out)
	if err != nil {
		c.Lines = append(c.Lines, "No plot: "+err.Error())
	}
	c.Plot = plotFile
	if err := os.WriteFile(filepath.Join(out, c.Case+".md"), []byte(c.markdown()), 0o644); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(out, "results.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(c)
	_, err = fmt.Fprintf(f, "%s\n", b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
