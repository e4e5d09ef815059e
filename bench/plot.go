package bench

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// plotAxes say how a case's curves are drawn (cases whose runs have a
// latency histogram are drawn as its CDF instead).
type plotAxes struct {
	x, y   string
	logX   bool
	noDots bool // lines only (a CDF has a point per histogram bucket)
	zeroY  bool // the y axis starts at 0
	right  bool // the legend top right (the curve starts top left)
}

var (
	idleAxes  = plotAxes{x: "connections held", y: "server RSS, MiB"}
	floorAxes = plotAxes{x: "frames per write(2)", y: "writer CPU per frame, µs", logX: true, zeroY: true, right: true}
)

// axesFor is how the curves of a case are drawn (nil: it has none).
func axesFor(caseName string) *plotAxes {
	switch {
	case strings.HasPrefix(caseName, "idle-"):
		return &idleAxes
	case caseName == "floor":
		return &floorAxes
	}
	return nil
}

// replot draws again every case of <dir>/results.jsonl (its last line
// for each case) and the fan-out rates, from the JSON alone.
func replot(dir string, log io.Writer) error {
	b, err := os.ReadFile(filepath.Join(dir, "results.jsonl"))
	if err != nil {
		return err
	}
	last := map[string]*caseResult{}
	var order []string
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		c := &caseResult{}
		if err := json.Unmarshal(line, c); err != nil {
			return fmt.Errorf("results.jsonl: %v", err)
		}
		if _, ok := last[c.Case]; !ok {
			order = append(order, c.Case)
		}
		last[c.Case] = c
	}
	var fanouts []*caseResult
	for _, name := range order {
		c := last[name]
		f, err := c.plotCase(dir)
		if err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
		if f != "" {
			fmt.Fprintf(log, "%s\n", filepath.Join(dir, f))
		}
		if _, ok := fanoutCases[name]; ok {
			fanouts = append(fanouts, c)
		}
	}
	f, err := plotFanoutRates(dir, fanouts)
	if f != "" {
		fmt.Fprintf(log, "%s\n", filepath.Join(dir, f))
	}
	return err
}

// cmdPlot is "bench plot": the plots of bench run, drawn again from
// results.jsonl.
func cmdPlot(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench plot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("out", "bench/results", "directory of results.jsonl, where the plots go")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if err := replot(*dir, stdout); err != nil {
		fmt.Fprintln(stderr, "bench plot:", err)
		return 1
	}
	return 0
}

// series is one line of a plot: a server's points.
type series struct {
	name string
	pts  [][2]float64
}

// plotCase draws the case to <dir>/<case>.png: the latency CDF of each
// server (publish and fan-out cases), else each run's curve (idle:
// memory against connections; floor: CPU per frame against frames per
// write). It returns the file's name, "" when there is nothing to draw.
func (c *caseResult) plotCase(dir string) (string, error) {
	var lines []series
	cdf := false
	for _, col := range columns {
		s, _ := c.slot(col.key)
		if *s != nil && len((*s).CDF) > 0 {
			cdf = true
			lines = append(lines, series{col.label, (*s).CDF})
		}
	}
	axes := plotAxes{x: "latency, ms", y: "fraction of samples at or below", logX: true, noDots: true}
	if !cdf {
		a := axesFor(c.Case)
		if a == nil {
			return "", nil
		}
		axes = *a
		for _, col := range columns {
			s, _ := c.slot(col.key)
			if *s == nil {
				continue
			}
			for i, cv := range (*s).Curves {
				name := col.label
				if len((*s).Curves) > 1 {
					name = fmt.Sprintf("%s, run %d", col.label, i+1)
				}
				lines = append(lines, series{name, cv})
			}
		}
	}
	if len(lines) == 0 {
		return "", nil
	}
	title := c.Case
	if cdf {
		title += ": latency CDF (all runs)"
	}
	file := c.Case + ".png"
	return file, drawLines(filepath.Join(dir, file), title, axes, lines)
}

// plotFanoutRates draws deliveries/s against subscribers, a point per
// fan-out case and server (medians), to <dir>/fanout-rates.png.
func plotFanoutRates(dir string, cases []*caseResult) (string, error) {
	pts := map[string][][2]float64{}
	for _, c := range cases {
		for _, col := range columns {
			s, _ := c.slot(col.key)
			if *s == nil {
				continue
			}
			d, ok1 := (*s).Median["deliveries_per_sec"]
			n, ok2 := (*s).Median["open"]
			if ok1 && ok2 && n > 0 {
				pts[col.label] = append(pts[col.label], [2]float64{n, d})
			}
		}
	}
	var lines []series
	for _, col := range columns {
		if p := pts[col.label]; len(p) > 0 {
			sort.Slice(p, func(i, j int) bool { return p[i][0] < p[j][0] })
			lines = append(lines, series{col.label, p})
		}
	}
	if len(lines) == 0 {
		return "", nil
	}
	file := "fanout-rates.png"
	return file, drawLines(filepath.Join(dir, file), "fan-out: deliveries/s against subscribers (medians)",
		plotAxes{x: "subscribers", y: "deliveries/s", logX: true, zeroY: true}, lines)
}

// drawLines saves a line plot with points, one line per series.
func drawLines(path, title string, axes plotAxes, lines []series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text, p.Y.Label.Text = axes.x, axes.y
	if axes.logX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = true, !axes.right
	if axes.zeroY {
		p.Y.Min = 0
	}
	for i, l := range lines {
		xys := make(plotter.XYs, 0, len(l.pts))
		for _, pt := range l.pts {
			x := pt[0]
			if axes.logX {
				x = math.Max(x, 1e-3) // a log axis has no 0
			}
			xys = append(xys, plotter.XY{X: x, Y: pt[1]})
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		line.Color, points.Color = plotutil.Color(i), plotutil.Color(i)
		line.Width = vg.Points(1.5)
		points.Shape = plotutil.Shape(i)
		if axes.noDots {
			p.Add(line)
			p.Legend.Add(l.name, line)
			continue
		}
		p.Add(line, points)
		p.Legend.Add(l.name, line, points)
	}
	return p.Save(7*vg.Inch, 4.5*vg.Inch, path)
}
