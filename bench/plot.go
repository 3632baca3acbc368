package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/quantkit/quantkit/internal/atomicfile"
)

// Plot draws r to path (.png or .svg): for GEMMs and for the memory-bound
// kernels, the rate against the size and, when energy was measured, the
// work per joule against the size, one line per kernel and dtype (FP32
// beside INT8, cuBLAS and cuBLASLt beside quantkit, the device copy beside
// the memory-bound kernels).
func (r *Report) Plot(path string) error {
	if err := CheckPlotPath(path); err != nil {
		return err
	}
	type panel struct {
		title, x, y string
		series      map[string]plotter.XYs
	}
	var panels [][2]*panel
	for _, family := range []string{"gemm", "memory"} {
		rate := &panel{series: map[string]plotter.XYs{}}
		perJ := &panel{series: map[string]plotter.XYs{}}
		for _, x := range r.Results {
			isGemm := x.Op == "gemm"
			if isGemm != (family == "gemm") || x.Error != "" {
				continue // a vendor GEMM that did not run has no rate
			}
			name := x.Impl + " " + x.DType
			size, v := float64(x.M), x.OpsPerSecond/1e9
			if !isGemm {
				name, size, v = x.Op, float64(x.Elements), x.BytesPerSecond/1e9
			}
			rate.series[name] = append(rate.series[name], plotter.XY{X: size, Y: v})
			if e := x.Energy; e != nil && e.OpsPerJoule > 0 {
				perJ.series[name] = append(perJ.series[name], plotter.XY{X: size, Y: e.OpsPerJoule / 1e9})
			}
		}
		if len(rate.series) == 0 {
			continue
		}
		if family == "gemm" {
			rate.title, rate.x, rate.y = "GEMM throughput", "M = N = K", "GFLOP/s, GOP/s"
			perJ.title, perJ.x, perJ.y = "GEMM energy efficiency", "M = N = K", "GFLOP/J, GOP/J (gross)"
		} else {
			rate.title, rate.x, rate.y = "Memory-bound kernels", "elements", "GB/s (read + written)"
			perJ.title, perJ.x, perJ.y = "Memory-bound kernels, energy", "elements", "GB/J (gross)"
		}
		if len(perJ.series) == 0 {
			perJ = nil
		}
		panels = append(panels, [2]*panel{rate, perJ})
	}
	if len(panels) == 0 {
		return fmt.Errorf("plot: %s: the report has no results", path)
	}
	cols := 1
	for _, row := range panels {
		if row[1] != nil {
			cols = 2
		}
	}
	w, h := vg.Length(cols)*5*vg.Inch, vg.Length(len(panels))*3.5*vg.Inch
	return Figure(path, w, h, len(panels), cols, func(cell func(row, col int) draw.Canvas) error {
		for i, row := range panels {
			for j, pn := range row {
				if pn == nil {
					continue
				}
				p := plot.New()
				p.Title.Text = pn.title
				p.X.Label.Text = pn.x
				p.Y.Label.Text = pn.y
				p.X.Scale = plot.LogScale{}
				p.X.Tick.Marker = sizeTicks(pn.series)
				p.Legend.Top = true
				p.Legend.Left = true
				names := make([]string, 0, len(pn.series))
				for n := range pn.series {
					names = append(names, n)
				}
				sort.Strings(names)
				var args []any
				for _, n := range names {
					pts := pn.series[n]
					sort.Slice(pts, func(a, b int) bool { return pts[a].X < pts[b].X })
					args = append(args, n, pts)
				}
				if err := plotutil.AddLinePoints(p, args...); err != nil {
					return fmt.Errorf("plot: %s: %w", path, err)
				}
				p.Draw(cell(i, j))
			}
		}
		return nil
	})
}

// CheckPlotPath reports whether path names a file Figure can write: .png
// or .svg. Callers check it before the work whose results they plot.
func CheckPlotPath(path string) error {
	ext := strings.ToLower(filepath.Ext(path))
	if ext != ".png" && ext != ".svg" {
		return fmt.Errorf("plot: %s: want a .png or .svg file", path)
	}
	return nil
}

// Figure draws a grid of rows×cols plots, w×h in all, into path (PNG or
// SVG by its extension), written atomically: fill draws each plot into
// cell(row, col).
func Figure(path string, w, h vg.Length, rows, cols int, fill func(cell func(row, col int) draw.Canvas) error) error {
	if err := CheckPlotPath(path); err != nil {
		return err
	}
	var c vg.CanvasWriterTo
	if strings.ToLower(filepath.Ext(path)) == ".svg" {
		c = vgsvg.New(w, h)
	} else {
		c = vgimg.PngCanvas{Canvas: vgimg.New(w, h)}
	}
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Inch / 4, PadY: vg.Inch / 4, PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 8}
	if err := fill(func(row, col int) draw.Canvas { return tiles.At(dc, col, row) }); err != nil {
		return err
	}
	return atomicfile.Write(path, 0o666, func(f *os.File) error {
		_, err := c.WriteTo(f)
		return err
	})
}

// sizeTicks labels the x axis at the measured sizes.
func sizeTicks(series map[string]plotter.XYs) plot.ConstantTicks {
	seen := map[float64]bool{}
	var ticks plot.ConstantTicks
	for _, pts := range series {
		for _, pt := range pts {
			if !seen[pt.X] {
				seen[pt.X] = true
				ticks = append(ticks, plot.Tick{Value: pt.X, Label: formatSize(pt.X)})
			}
		}
	}
	sort.Slice(ticks, func(a, b int) bool { return ticks[a].Value < ticks[b].Value })
	return ticks
}

func formatSize(v float64) string {
	switch n := int64(v); {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	default:
		return fmt.Sprint(n)
	}
}
