// Command benchplot draws the per-window throughput and p99 latency of a
// loadgen run (loadgen -window 10s -json-out run.json) as a PNG.
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
	"os"
	"slices"

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
		Start float64 `json:"start_s"`
		OK    float64 `json:"ok_requests_per_s"`
		P99   float64 `json:"p99_ms"`
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

	bottom := plot.New()
	bottom.X.Label.Text = "minutes"
	bottom.Y.Label.Text = "p99 latency (ms)"
	bottom.Y.Min = 0
	pl, err := plotter.NewLine(p99)
	if err != nil {
		return err
	}
	bottom.Add(pl, plotter.NewGrid())

	img := vgimg.New(10*vg.Inch, 7*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8), PadY: vg.Points(6)}
	plots := [][]*plot.Plot{{top}, {bottom}}
	canvases := plot.Align(plots, tiles, dc)
	top.Draw(canvases[0][0])
	bottom.Draw(canvases[1][0])
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
