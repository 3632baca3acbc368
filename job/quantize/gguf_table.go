package quantize

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/quantkit/quantkit/internal/units"
)

// WriteTable writes r for people: for a dry run a row per tensor (dims,
// types, why, sizes) and the totals; after a run the totals, the speed and
// how many tensors got which type.
func (r *GGUFReport) WriteTable(out io.Writer) error {
	w := &errWriter{w: out}
	if r.DryRun {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "tensor\tdims\ttype\treason\tbytes in → out")
		for _, t := range r.Tensors {
			fmt.Fprintf(tw, "%s\t%v\t%s → %s\t%s\t%s → %s\n", t.Name, t.Dims, t.InputType, t.OutputType, t.Reason,
				units.FormatBytes(t.BytesIn), units.FormatBytes(t.BytesOut))
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	pure := ""
	if r.Pure {
		pure = ", pure"
	}
	fmt.Fprintf(w, "%s → %s (%s%s, general.file_type %d)", r.Input, r.Output, r.Mix, pure, r.FileType)
	if !r.DryRun {
		fmt.Fprintf(w, " on %s, %d workers", r.Device, r.Workers)
	}
	t := r.Totals
	fmt.Fprintf(w, "\nsize: %s → %s (ratio %.3f, %.2f bits per weight); %d tensors: %d quantized, %d converted, %d copied",
		units.FormatBytes(t.BytesIn), units.FormatBytes(t.BytesOut), t.Ratio, t.BitsPerWeight, t.Tensors, t.Quantized, t.Converted, t.Copied)
	if t.Fallbacks > 0 {
		fmt.Fprintf(w, "; %d fell back to another type (rows not whole blocks)", t.Fallbacks)
	}
	fmt.Fprintln(w)
	count := map[string]int{}
	for _, t := range r.Tensors {
		count[t.OutputType]++
	}
	var types []string
	for _, typ := range slices.Sorted(maps.Keys(count)) {
		types = append(types, fmt.Sprintf("%d %s", count[typ], typ))
	}
	fmt.Fprintf(w, "types: %s\n", strings.Join(types, ", "))
	if r.DryRun {
		if len(r.Unsupported) > 0 {
			fmt.Fprintf(w, "this build cannot encode %s yet: a run would be refused\n", strings.Join(r.Unsupported, ", "))
		}
		fmt.Fprintln(w, "dry run: nothing written")
	} else {
		fmt.Fprintf(w, "time: %.2f s, %.3f GB/s\n", r.Seconds, r.GBPerSecond)
	}
	return w.err
}
