package lmbench

import (
	"fmt"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/quantkit/quantkit/bench"
)

// Plot draws r to path (.png or .svg, bench.Figure): a bar per row of
// prefill and of decode tokens per second (medians) and, when energy was
// measured, of prefill and decode joules per token (gross).
func (r *Report) Plot(path string) error {
	if err := bench.CheckPlotPath(path); err != nil {
		return err
	}
	if len(r.Rows) == 0 {
		return fmt.Errorf("plot: %s: the report has no rows", path)
	}
	type panel struct {
		title, y string
		v        func(Row) float64
	}
	panels := [][]panel{{
		{"Prefill", fmt.Sprintf("tokens/s (prompt of %d)", r.PromptLen), func(x Row) float64 { return x.PrefillTokensPerSecond.Median }},
		{"Decode, batch 1", fmt.Sprintf("tokens/s (%d generated)", r.Gen), func(x Row) float64 { return x.DecodeTokensPerSecond.Median }},
	}}
	withEnergy := false
	for _, x := range r.Rows {
		withEnergy = withEnergy || x.Energy != nil
	}
	if withEnergy {
		e := func(f func(*RowEnergy) float64) func(Row) float64 {
			return func(x Row) float64 {
				if x.Energy == nil {
					return 0
				}
				return f(x.Energy)
			}
		}
		panels = append(panels, []panel{
			{"Prefill energy", "J/token (gross)", e(func(e *RowEnergy) float64 { return e.PrefillJPerToken })},
			{"Decode energy", "J/token (gross)", e(func(e *RowEnergy) float64 { return e.DecodeJPerToken })},
		})
	}
	names := make([]string, len(r.Rows))
	multi := false
	for i, x := range r.Rows {
		multi = multi || x.Model != r.Rows[0].Model
		names[i] = x.Label
	}
	if multi {
		for i, x := range r.Rows {
			names[i] = filepath.Base(x.Model) + " " + x.Label
		}
	}
	w := vg.Length(2) * vg.Length(max(4, 1.2*float64(len(r.Rows)))) * vg.Inch
	h := vg.Length(len(panels)) * 3.5 * vg.Inch
	return bench.Figure(path, w, h, len(panels), 2, func(cell func(row, col int) draw.Canvas) error {
		for i, row := range panels {
			for j, pn := range row {
				p := plot.New()
				p.Title.Text = pn.title
				p.Y.Label.Text = pn.y
				vs := make(plotter.Values, len(r.Rows))
				for k, x := range r.Rows {
					vs[k] = pn.v(x)
				}
				bars, err := plotter.NewBarChart(vs, vg.Points(20))
				if err != nil {
					return fmt.Errorf("plot: %s: %w", path, err)
				}
				bars.Color = plotutil.Color(i*2 + j)
				p.Add(bars)
				p.NominalX(names...)
				p.Draw(cell(i, j))
			}
		}
		return nil
	})
}
