package bench

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// plotAxes say how a case's curves are drawn (cases whose runs have a
// latency histogram are drawn as its CDF instead).
type plotAxes struct {
	x, y string
	logX bool
}

var (
	idleAxes  = plotAxes{x: "connections held", y: "server RSS, MiB"}
	floorAxes = plotAxes{x: "frames per write(2)", y: "writer CPU per frame, µs", logX: true}
)

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
	axes := plotAxes{x: "latency, ms", y: "fraction of samples at or below", logX: true}
	if !cdf {
		if c.axes == nil {
			return "", nil
		}
		axes = *c.axes
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
		plotAxes{x: "subscribers", y: "deliveries/s", logX: true}, lines)
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
	p.Legend.Top = true
	p.Legend.Left = !axes.logX || axes.x != "latency, ms"
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
		points.Shape = plotutil.Shape(i)
		p.Add(line, points)
		p.Legend.Add(l.name, line, points)
	}
	return p.Save(7*vg.Inch, 4.5*vg.Inch, path)
}
