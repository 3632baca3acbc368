package quantize

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/quantkit/quantkit/internal/units"
	"github.com/quantkit/quantkit/model/plan"
)

// The reports' tables for people; their JSON is for scripts.

// errWriter passes writes to w until one fails, and keeps that error: a
// table is written with plain Fprintf calls and returns it once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

// WriteTable writes r for people: for a dry run the plan (a row per
// tensor, the totals and the memory estimate), else the summary of the
// run (sizes, speed, SQNR, the tensors kept and those with NaN or Inf).
func (r *Report) WriteTable(out io.Writer) error {
	w := &errWriter{w: out}
	if r.DryRun {
		r.writePlan(w)
		return w.err
	}
	fmt.Fprintf(w, "%s → %s (%s", r.Input, r.Output, r.Format)
	if r.Scheme != "" {
		fmt.Fprintf(w, ", %s", r.Scheme)
	}
	fmt.Fprintf(w, ") on %s, %d workers\n", r.Device, r.Workers)
	fmt.Fprintf(w, "size: %s → %s (ratio %.3f), %d tensors quantized, %d kept\n", units.FormatBytes(r.Totals.BytesIn), units.FormatBytes(r.Totals.BytesOut),
		r.Totals.Ratio, r.Totals.Quantized, r.Totals.Kept)
	fmt.Fprintf(w, "time: %.2f s, %.3f GB/s\n", r.Seconds, r.GBPerSecond)
	if r.SQNR != nil {
		fmt.Fprintf(w, "SQNR: min %.1f dB, mean %.1f dB; worst:\n", r.SQNR.MinDB, r.SQNR.MeanDB)
		for _, t := range r.SQNR.Worst {
			fmt.Fprintf(w, "  %-50s %.1f dB\n", t.Name, t.DB)
		}
	}
	var kept, nonFinite []string
	for _, t := range r.Tensors {
		if t.Action == plan.Keep {
			kept = append(kept, fmt.Sprintf("  %s: %s", t.Name, t.Reason))
		}
		if t.NonFinite > 0 {
			nonFinite = append(nonFinite, fmt.Sprintf("  %s: %d NaN/Inf values quantized as 0 / saturated", t.Name, t.NonFinite))
		}
	}
	if len(kept) > 0 {
		fmt.Fprintf(w, "kept unquantized (%d):\n%s\n", len(kept), strings.Join(kept, "\n"))
	}
	if len(nonFinite) > 0 {
		fmt.Fprintf(w, "non-finite values (--allow-nonfinite):\n%s\n", strings.Join(nonFinite, "\n"))
	}
	return w.err
}

// writePlan writes a dry run's plan.
func (r *Report) writePlan(w *errWriter) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "tensor\taction\tscheme / reason\tbytes in → out")
	for _, t := range r.Tensors {
		what := t.Scheme
		if t.Action == plan.Keep {
			what = t.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s → %s\n", t.Name, t.Action, what, units.FormatBytes(t.BytesIn), units.FormatBytes(t.BytesOut))
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%s → %s (%s", r.Input, r.Output, r.Format)
	if r.Scheme != "" {
		fmt.Fprintf(w, ", %s", r.Scheme)
	}
	fmt.Fprintf(w, "): %d tensors, %d quantized, %d kept; %s → %s (ratio %.3f)\n", r.Totals.Tensors, r.Totals.Quantized, r.Totals.Kept,
		units.FormatBytes(r.Totals.BytesIn), units.FormatBytes(r.Totals.BytesOut), r.Totals.Ratio)
	fmt.Fprintf(w, "memory: at most about %s of the %s budget with %d workers", units.FormatBytes(r.MemoryEstimate), units.FormatBytes(r.MaxMemory), r.Workers)
	if st := r.Stream; st != nil {
		fmt.Fprintf(w, " (%d blocks of rows in flight, up to %s each, %s for the scales of the tensor being written)",
			st.InFlight, units.FormatBytes(st.Block), units.FormatBytes(st.Tail))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "dry run: nothing written")
}

// WriteTable writes r's line: what was dequantized to which dtype.
func (r *DequantizeReport) WriteTable(w io.Writer) error {
	var what []string
	for _, dt := range slices.Sorted(maps.Keys(r.Dequantized)) {
		what = append(what, fmt.Sprintf("%d %s", r.Dequantized[dt], dt))
	}
	_, err := fmt.Fprintf(w, "%s → %s: %d tensors, dequantized %s\n", r.Input, r.Output, r.Tensors, strings.Join(what, ", "))
	return err
}

// WriteTable writes r's line: the parts joined and where to.
func (r *MergeReport) WriteTable(w io.Writer) error {
	_, err := fmt.Fprintf(w, "merged %d parts of plan %s (%s from %s) into %s: %d tensors\n", len(r.Parts), r.PlanHash, r.Format, r.Parts[0], r.Output, r.Tensors)
	return err
}

// WriteTable writes r for people: the input, then a row per scheme with
// the medians against the baseline and the peak RSS.
func (r *BenchReport) WriteTable(out io.Writer) error {
	w := &errWriter{w: out}
	fmt.Fprintf(w, "input: %s (%s params, %d tensors, %s; largest tensor %s)\n", r.Input, units.FormatCount(r.Params), r.Tensors,
		units.FormatBytes(r.BytesIn), units.FormatBytes(r.LargestTensor))
	fmt.Fprintf(w, "device %s, %d workers", r.Device, r.Workers)
	if r.MaxMemory > 0 {
		fmt.Fprintf(w, ", --max-memory %s", units.FormatBytes(r.MaxMemory))
	}
	if r.Cold {
		fmt.Fprint(w, ", input evicted from the page cache before each phase")
	}
	fmt.Fprintf(w, ", medians of %d interleaved rounds\n\n", r.Rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scheme\tformat\toutput\tread+write\tquantize\tspeed vs read+write\tGB/s in\tpeak RSS\t÷ largest tensor\t")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f s\t%.2f s\t%.2f×\t%.2f\t%s\t%.2f\t\n", row.Scheme, row.Format, units.FormatBytes(row.BytesOut),
			row.BaselineMedian, row.QuantizeMedian, row.SpeedVsBaseline, row.QuantizeGBps, units.FormatBytes(row.QuantizePeakRSS), row.RSSOverLargest)
	}
	tw.Flush()
	return w.err
}

// WriteTable writes r for people: where, how fast, the shape, the counts
// and a line per file.
func (r *GenerateReport) WriteTable(out io.Writer) error {
	w := &errWriter{w: out}
	c := r.Config
	fmt.Fprintf(w, "wrote %s in %s (%s/s)\n", r.Dir, r.Elapsed.Round(time.Millisecond), units.FormatBytes(int64(r.Rate)))
	fmt.Fprintf(w, "  llama-like: %d layers, hidden %d, intermediate %d, %d heads (%d kv), vocab %d, %s, seed %d\n",
		c.Layers, c.Hidden, c.Intermediate, c.Heads, c.KVHeads, c.Vocab, c.DType, c.Seed)
	fmt.Fprintf(w, "  %d tensors, %s parameters (%d), %s of tensor data\n", r.Tensors, units.FormatCount(r.Params), r.Params, units.FormatBytes(r.Bytes))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range r.Files {
		fmt.Fprintf(tw, "  %s\t%s\n", f.Name, units.FormatBytes(f.Bytes))
	}
	tw.Flush()
	return w.err
}
