package experiment

import (
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/quantkit/quantkit/bench"
)

// WriteTable writes r for people: what ran, one line per row, the energy
// note and the time taken.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "%s on %s (%d test images), %s: %s\n", r.Model, r.Data, r.TestImages, r.Device, r.DeviceInfo)
	fmt.Fprintf(w, "PTQ: %d calibration images; QAT: %d epoch(s) over %d images, lr %g, seed %d\n\n",
		r.CalibImages, r.Epochs, r.QATImages, r.LR, r.Seed)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\ttop-1 %\tΔ pts\tweight bytes\tms/image b=1\timages/s b=256\tJ/image\t")
	for _, row := range r.Rows {
		j := "n/a"
		if row.JPerImage != nil {
			j = fmt.Sprintf("%.3g", *row.JPerImage)
		}
		delta := "—"
		if row.Method != "fp32" {
			delta = fmt.Sprintf("%+.2f", row.Delta)
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%s\t%d\t%.3f\t%.0f\t%s\t\n", row.Name, row.Top1, delta, row.WeightBytes, row.LatencyMs, row.ImagesPerS, j)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.EnergyNote != "" {
		fmt.Fprintln(w, "\n"+r.EnergyNote)
	}
	_, err := fmt.Fprintf(w, "\n%.1f s in all\n", r.Seconds)
	return err
}

// WriteTable writes r's result line.
func (r *QATReport) WriteTable(w io.Writer) error {
	_, err := fmt.Fprintf(w, "int%d weights, int8 activations: QAT top-1 %.2f %% (FP32 %.2f %%, PTQ %.2f %%)\n",
		r.Bits, r.QATTop1, r.FP32Top1, r.PTQTop1)
	return err
}

// WriteTable writes r for people: the model and its layers, the data,
// the device, the accuracy and the speed.
func (r *EvalReport) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	kind := "float32"
	if q := r.Quantized; q != nil {
		how := "evaluated with fake quantization"
		if r.Engine == "int8" {
			how = "evaluated in integer arithmetic"
		}
		kind = fmt.Sprintf("quantized: int%d weights per channel, %d int8 activation tensors (QDQ, %s)",
			q.WeightBits, q.Activations, how)
		if q.Method != "" {
			kind += ", ranges by " + q.Method
		}
	}
	dims := make([]string, len(r.Input))
	for i, d := range r.Input {
		dims[i] = fmt.Sprint(d)
	}
	fmt.Fprintf(tw, "model\t%s: %d layers, %d parameters, input %s, %s\n", filepath.Base(r.Model), len(r.Layers),
		r.Params, strings.Join(dims, "×"), kind)
	for i, l := range r.Layers {
		fmt.Fprintf(tw, "\t  %d  %s\n", i, l)
	}
	fmt.Fprintf(tw, "data\t%s %s: %d images (%s), pixels × %g\n", r.Data, r.Split, r.Total, r.ImageFile, r.InputScale)
	fmt.Fprintf(tw, "device\t%s\n", r.Device)
	fmt.Fprintf(tw, "accuracy\t%.2f %% (%d / %d)\n", 100*r.Accuracy, r.Correct, r.Total)
	fmt.Fprintf(tw, "speed\t%.0f images/s (%.2f s)\n", r.ImagesPerSecond, r.Seconds)
	return tw.Flush()
}

// Plot draws top-1 accuracy against weight bytes, and images/s at batch
// 256 one bar per row, to path (.png or .svg).
func (r *Report) Plot(path string) error {
	if err := bench.CheckPlotPath(path); err != nil {
		return err
	}
	acc := plot.New()
	acc.Title.Text = "Top-1 accuracy against model size"
	acc.X.Label.Text = "weight bytes"
	acc.Y.Label.Text = "top-1 %"
	// Rows at the same point (calibrators that agree) share one label.
	var pts plotter.XYs
	var names [][]string
	var labels []string
	for _, row := range r.Rows {
		labels = append(labels, row.Name)
		p := plotter.XY{X: float64(row.WeightBytes), Y: row.Top1}
		k := slices.Index(pts, p)
		if k < 0 {
			pts, names = append(pts, p), append(names, nil)
			k = len(pts) - 1
		}
		names[k] = append(names[k], row.Name)
	}
	var text []string
	for _, n := range names {
		text = append(text, joinNames(n))
	}
	sc, err := plotter.NewScatter(pts)
	if err != nil {
		return err
	}
	lb, err := plotter.NewLabels(plotter.XYLabels{XYs: pts, Labels: text})
	if err != nil {
		return err
	}
	lb.Offset = vg.Point{X: vg.Points(5), Y: vg.Points(-3)}
	acc.Add(sc, lb)
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range pts {
		lo, hi = min(lo, p.Y), max(hi, p.Y)
	}
	acc.Y.Min, acc.Y.Max = lo-0.5, hi+0.3
	acc.X.Max = acc.X.Max * 1.35

	thr := plot.New()
	thr.Title.Text = "Throughput at batch 256"
	thr.Y.Label.Text = "images/s"
	vals := make(plotter.Values, len(r.Rows))
	for i, row := range r.Rows {
		vals[i] = row.ImagesPerS
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(14))
	if err != nil {
		return err
	}
	thr.Add(bars)
	thr.NominalX(labels...)
	thr.X.Tick.Label.Rotation = math.Pi / 4
	thr.X.Tick.Label.XAlign = draw.XRight

	return bench.Figure(path, 10*vg.Inch, 4*vg.Inch, 1, 2, func(cell func(row, col int) draw.Canvas) error {
		acc.Draw(cell(0, 0))
		thr.Draw(cell(0, 1))
		return nil
	})
}

// joinNames joins row names that share a point: "PTQ int8 max",
// "PTQ int8 mse" become "PTQ int8 max, mse".
func joinNames(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	prefix := names[0][:strings.LastIndexByte(names[0], ' ')+1]
	out := names[0]
	for _, n := range names[1:] {
		if prefix != "" && strings.HasPrefix(n, prefix) {
			n = n[len(prefix):]
		}
		out += ", " + n
	}
	return out
}
