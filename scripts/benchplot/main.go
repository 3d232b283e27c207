// Command benchplot draws the per-window throughput and p99 latency of a
// loadgen run (loadgen -window 10s -json-out run.json) as a PNG; for a
// paced run (loadgen -rate), the p99 from the time each request was due;
// and, when loadgen could read the server's metrics, the tables each of
// its databases wrote per window (memtable flushes and compactions).
//
//	cd scripts/benchplot && go run . -in ../../bench-out/sustained.json -out ../../docs/sustained.png
//
// It is its own module so that the plotting library stays out of the
// service's go.mod.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"maps"
	"os"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

type run struct {
	Target      string  `json:"target"`
	Mode        string  `json:"mode"`
	Concurrency int     `json:"concurrency"`
	Rate        float64 `json:"rate"`
	Windows     []struct {
		Start  float64            `json:"start_s"`
		OK     float64            `json:"ok_requests_per_s"`
		P99    float64            `json:"p99_ms"`
		P99Due float64            `json:"p99_from_due_ms"`
		Tables map[string]float64 `json:"tables_written"`
	} `json:"windows"`
}

func main() {
	in := flag.String("in", "", "loadgen JSON summary with windows")
	out := flag.String("out", "sustained.png", "PNG to write")
	title := flag.String("title", "", "title (default: from the run)")
	flag.Parse()
	if err := render(*in, *out, *title); err != nil {
		fmt.Fprintln(os.Stderr, "benchplot:", err)
		os.Exit(1)
	}
}

func render(in, out, title string) error {
	raw, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var r run
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if len(r.Windows) == 0 {
		return fmt.Errorf("%s has no windows (run loadgen with -window)", in)
	}
	tput := make(plotter.XYs, len(r.Windows))
	p99 := make(plotter.XYs, len(r.Windows))
	rates := make([]float64, len(r.Windows))
	for i, w := range r.Windows {
		tput[i] = plotter.XY{X: w.Start / 60, Y: w.OK}
		p99[i] = plotter.XY{X: w.Start / 60, Y: w.P99}
		rates[i] = w.OK
	}
	slices.Sort(rates)
	median := rates[len(rates)/2]
	if title == "" {
		title = fmt.Sprintf("%s, %s events, %d clients, paced at %.0f req/s", r.Target, r.Mode, r.Concurrency, r.Rate)
	}

	top := plot.New()
	top.Title.Text = title
	top.Y.Label.Text = "requests/s (per window)"
	top.Y.Min = 0
	top.Y.Tick.Marker = plainTicks{}
	l, err := plotter.NewLine(tput)
	if err != nil {
		return err
	}
	top.Add(l, plotter.NewGrid())
	band := plotter.XYs{{X: tput[0].X, Y: 0.8 * median}, {X: tput[len(tput)-1].X, Y: 0.8 * median}}
	floor, err := plotter.NewLine(band)
	if err != nil {
		return err
	}
	floor.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
	top.Add(floor)
	top.Legend.Add("throughput", l)
	top.Legend.Add("80 % of the median", floor)
	top.Legend.Top = false

	bottom, err := linePlot("p99 latency (ms)", p99)
	if err != nil {
		return err
	}

	plots := [][]*plot.Plot{{top}, {bottom}}
	if due, err := duePlot(r); err != nil {
		return err
	} else if due != nil {
		bottom.X.Label.Text = ""
		plots = append(plots, []*plot.Plot{due})
	}
	if tables, err := tablesPlot(r); err != nil {
		return err
	} else if tables != nil {
		plots[len(plots)-1][0].X.Label.Text = ""
		plots = append(plots, []*plot.Plot{tables})
	}
	img := vgimg.New(10*vg.Inch, vg.Length(3.5*float64(len(plots)))*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8), PadY: vg.Points(6)}
	canvases := plot.Align(plots, tiles, dc)
	for i, row := range plots {
		row[0].Draw(canvases[i][0])
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// dbColors tell the databases apart in the tables panel.
var dbColors = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
}

// tablesPlot draws the tables each database wrote per window; nil when
// the run has no such figures.
func tablesPlot(r run) (*plot.Plot, error) {
	dbs := map[string]bool{}
	for _, w := range r.Windows {
		for db := range w.Tables {
			dbs[db] = true
		}
	}
	if len(dbs) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.X.Label.Text = "minutes"
	p.Y.Label.Text = "tables written (per window)"
	p.Y.Min = 0
	p.Y.Tick.Marker = plainTicks{}
	p.Add(plotter.NewGrid())
	for i, db := range slices.Sorted(maps.Keys(dbs)) {
		xys := make(plotter.XYs, len(r.Windows))
		for k, w := range r.Windows {
			xys[k] = plotter.XY{X: w.Start / 60, Y: w.Tables[db]}
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		l.Color = dbColors[i%len(dbColors)]
		p.Add(l)
		p.Legend.Add(db, l)
	}
	p.Legend.Top = true
	return p, nil
}

// duePlot draws the p99 per window measured from the time each request
// was due (a paced run): a client that fell behind its schedule counts
// its wait, which the p99 from sending does not see. nil when the run was
// not paced.
func duePlot(r run) (*plot.Plot, error) {
	xys := make(plotter.XYs, len(r.Windows))
	paced := false
	for i, w := range r.Windows {
		xys[i] = plotter.XY{X: w.Start / 60, Y: w.P99Due}
		paced = paced || w.P99Due > 0
	}
	if !paced {
		return nil, nil
	}
	return linePlot("p99 from the due time (ms)", xys)
}

// linePlot is a panel of one line over the run's minutes, from 0 up.
func linePlot(label string, xys plotter.XYs) (*plot.Plot, error) {
	p := plot.New()
	p.X.Label.Text = "minutes"
	p.Y.Label.Text = label
	p.Y.Min = 0
	p.Y.Tick.Marker = plainTicks{}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return nil, err
	}
	p.Add(l, plotter.NewGrid())
	return p, nil
}

// plainTicks are gonum's default ticks, labelled without the trailing
// zeros it gives large values ("2500", not "2500.00").
type plainTicks struct{}

func (plainTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', -1, 64)
		}
	}
	return ticks
}
