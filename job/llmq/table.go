package llmq

import (
	"fmt"
	"io"
	"math"

	"github.com/quantkit/quantkit/internal/units"
)

// WriteTable writes the report for people: the run, the calibration set,
// the memory estimate, the time split and the SQNR of the projections.
func (r *Report) WriteTable(w io.Writer) error {
	var err error
	p := func(format string, args ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, format, args...)
		}
	}
	if r.DryRun {
		p("dry run: %s → %s (%s, %s, method %s), %d layers\n", r.Input, r.Output, r.Format, r.Scheme, r.Method, r.Layers)
	} else {
		p("%s → %s (%s, %s, method %s) on %s\n", r.Input, r.Output, r.Format, r.Scheme, r.Method, r.Device)
	}
	p("size: %s → %s (ratio %.3f), %d tensors quantized, %d kept\n", units.FormatBytes(r.Totals.BytesIn), units.FormatBytes(r.Totals.BytesOut),
		r.Totals.Ratio, r.Totals.Quantized, r.Totals.Kept)
	if c := r.Calibration; c != nil {
		p("calibration: %s: %s\n", c.Source, c.Selection)
	}
	if g := r.GPTQ; g != nil {
		p("gptq: activation order %v, %s scales from the %s weights, sequential %v, asymmetric %v\n", g.ActOrder, r.Scales,
			map[bool]string{false: "original", true: "updated"}[g.UpdatedScales], r.Sequential, r.Asymmetric)
	}
	if r.Method == AWQ {
		p("awq: the float model as the target (asymmetric) %v\n", r.Asymmetric)
	}
	m := r.Memory
	search := ""
	if m.Search > 0 {
		search = ", scale search " + units.FormatBytes(m.Search)
	}
	p("memory estimate: %s (one layer's float weights %s, statistics %s, calibration activations %s, scratch %s%s; embedding %s before the first layer)\n",
		units.FormatBytes(m.Total), units.FormatBytes(m.LayerWeights), units.FormatBytes(m.Statistics), units.FormatBytes(m.Activations),
		units.FormatBytes(m.Scratch), search, units.FormatBytes(m.Embedding))
	if r.DryRun {
		return err
	}
	p("time: %.2f s (layer passes %.2f s, Hessians %.2f s, quantizing %.2f s", r.Seconds, r.ForwardSecs, r.HessianSecs, r.QuantizeSecs)
	if r.FactorSecs > 0 {
		p(" of which factorizing %.2f s", r.FactorSecs)
	}
	p(")\n")
	if len(r.Tensors) > 0 {
		lo, sum, worst := math.Inf(1), 0.0, ""
		for _, t := range r.Tensors {
			sum += t.SQNR
			if t.SQNR < lo {
				lo, worst = t.SQNR, t.Name
			}
		}
		p("SQNR: mean %.1f dB, min %.1f dB (%s)\n", sum/float64(len(r.Tensors)), lo, worst)
	}
	for _, s := range r.Warnings {
		p("warning: %s\n", s)
	}
	return err
}
