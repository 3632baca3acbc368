package clip

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/quantkit/quantkit/quant"
)

// Gram is the block-diagonal part of XᵀX for inputs X [n, Cols] of a
// Linear quantized in groups of Group columns (the last one ragged):
// block b is X_bᵀX_b for the columns [b·Group, min((b+1)·Group, Cols)),
// row-major, in float64. It is what FitOutput needs to measure a
// group's output error on every input row without the rows themselves.
type Gram struct {
	Cols, Group int
	Blocks      [][]float64
}

// NewGram is the Gram of the n rows of x [n, cols] for groups of group
// columns (group ≤ 0 or > cols: one block of every column, per channel).
func NewGram(x []float32, n, cols, group int) (*Gram, error) {
	if n < 0 || cols <= 0 || len(x) != n*cols {
		return nil, fmt.Errorf("clip: Gram of %d values as %d rows of %d", len(x), n, cols)
	}
	if group <= 0 || group > cols {
		group = cols
	}
	g := &Gram{Cols: cols, Group: group}
	for j0 := 0; j0 < cols; j0 += group {
		m := min(group, cols-j0)
		blk := make([]float64, m*m)
		for r := range n {
			row := x[r*cols+j0 : r*cols+j0+m]
			for i, a := range row {
				if a == 0 {
					continue
				}
				fa := float64(a)
				out := blk[i*m : (i+1)*m]
				for j := i; j < m; j++ {
					out[j] += fa * float64(row[j])
				}
			}
		}
		for i := range m { // mirror the upper triangle
			for j := i + 1; j < m; j++ {
				blk[j*m+i] = blk[i*m+j]
			}
		}
		g.Blocks = append(g.Blocks, blk)
	}
	return g, nil
}

// Scaled is the Gram of X with column j divided by s[j]: block entries
// G[i][j]/(s_i·s_j). AWQ's candidates divide a Linear's input by its
// scales and multiply the weight's columns by them.
func (g *Gram) Scaled(s []float32) *Gram {
	out := &Gram{Cols: g.Cols, Group: g.Group, Blocks: make([][]float64, len(g.Blocks))}
	for b, blk := range g.Blocks {
		j0 := b * g.Group
		m := min(g.Group, g.Cols-j0)
		nb := make([]float64, m*m)
		for i := range m {
			si := float64(s[j0+i])
			for j := range m {
				nb[i*m+j] = blk[i*m+j] / (si * float64(s[j0+j]))
			}
		}
		out.Blocks[b] = nb
	}
	return out
}

// OutputDefaults are FitOutput's grid when Options leaves it zero:
// AutoAWQ's auto_clip (n_grid 20, max_shrink 0.5: the ratios 1, 0.95, …,
// 0.55).
const (
	OutputSteps    = 9
	OutputMinRatio = 0.55
)

// outputRows is the most runs (rows of one group) FitOutput measures in
// one GEMM: with the ten ratios, E and F of 128 columns are 160 KiB each.
const outputRows = 32

// gemmGo is Options.Gemm's default, C[m×n] = A[m×k]·B[n×k]ᵀ in plain Go.
func gemmGo(m, n, k int, a, b, c []float32) {
	for i := range m {
		ar := a[i*k : (i+1)*k]
		for j := range n {
			var s float32
			for p, v := range b[j*k : (j+1)*k] {
				s += ar[p] * v
			}
			c[i*n+j] = s
		}
	}
}

// roundTripErrors sets e[j] = v[j] − ŵ_j, ŵ_j the value quant.QuantizeValue
// and DequantizeValue give v[j] (finite) for scale and zero point zp,
// written out: it is what FitOutput spends beside its GEMM.
func roundTripErrors(e, v []float32, scale float32, zp, qmin, qmax int32) {
	fzp, lo, hi := float64(zp), float64(qmin), float64(qmax)
	for j, x := range v {
		q := math.RoundToEven(float64(x/scale)) + fzp
		if q <= lo {
			q = lo
		} else if q >= hi {
			q = hi
		}
		e[j] = x - float32(q-fzp)*scale
	}
}

// FitOutput is FitMSE with each run's error measured on the Linear's
// outputs instead of its weights: for row r of w [rows, cols] and a group
// g of its columns (the whole row per channel), the ratio (of the grid
// 1 − i/Steps·(1 − MinRatio), i = 0…Steps; OutputSteps and
// OutputMinRatio when zero) whose round-to-nearest codes ŵ minimise
//
//	Σ_t (Σ_{j∈g} x[t,j]·(w[r,j] − ŵ[r,j]))² = eᵀ G_g e
//
// over the calibration inputs x whose Gram g is (AutoAWQ's auto_clip,
// the search of a clipping max per output channel and group by the
// output error, on every input row rather than a sample of 512). Ratio 1
// (min-max) is tried first and kept unless another is strictly better.
// The errors are measured with one GEMM for many rows of a group
// (Options.Gemm, float32; the dot products with the errors in float64),
// so near ties between ratios are decided to float32's precision. The
// scheme must group along the columns of a [rows, cols] weight (per
// channel on axis 0, or per group) and the weight must be finite.
func FitOutput(s quant.Scheme, w []float32, rows, cols int, gram *Gram, opt Options) (*quant.Params, error) {
	if rows <= 0 || cols <= 0 || len(w) != rows*cols {
		return nil, fmt.Errorf("clip: %d values are not a [%d, %d] weight", len(w), rows, cols)
	}
	group := cols
	switch {
	case s.Granularity == quant.PerGroup && s.GroupSize > 0:
		group = min(s.GroupSize, cols)
	case s.Granularity == quant.PerChannel && s.Axis == 0:
	default:
		return nil, fmt.Errorf("clip: output-error fit takes per-channel (axis 0) or per-group weights, not %v", s)
	}
	if gram == nil || gram.Cols != cols || gram.Group != group {
		return nil, fmt.Errorf("clip: the Gram's groups do not match the weight's %d columns in groups of %d", cols, group)
	}
	for i, v := range w {
		if v != v || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("clip: weight value %d is %g", i, v)
		}
	}
	p, err := quant.FitMinMax(s, w, []int{rows, cols})
	if err != nil {
		return nil, err
	}
	steps, lowest := opt.Steps, opt.MinRatio
	if steps <= 0 {
		steps = OutputSteps
	}
	if lowest == 0 {
		lowest = OutputMinRatio
	}
	if !(lowest > 0 && lowest <= 1) {
		return nil, fmt.Errorf("clip: minimum ratio %g outside (0, 1]", lowest)
	}
	round := opt.RoundScale
	if round == nil {
		round = func(v float32) float32 { return v }
	}
	gemm := opt.Gemm
	if gemm == nil {
		gemm = gemmGo
	}
	qmin, qmax := s.QMin(), s.QMax()
	// The runs (one group of one row each) are independent: gathered,
	// ordered group by group and cut into tasks of at most outputRows
	// runs of one group, claimed by a goroutine a core. A task's error
	// vectors, one per run and ratio, are the rows of E [runs·ratios, m];
	// F = E·G_g is one GEMM and each loss eᵀG_g e the dot product of a row
	// of E with its row of F.
	type run struct{ start, end, k int }
	var runs []run
	var ferr error
	p.Runs(func(start, end, k int) {
		j0 := start % cols
		if ferr == nil && (j0%group != 0 || end-start != min(group, cols-j0)) {
			ferr = fmt.Errorf("clip: parameter run [%d, %d) is not one group of a row", start, end)
		}
		runs = append(runs, run{start, end, k})
	})
	if ferr != nil {
		return nil, ferr
	}
	slices.SortStableFunc(runs, func(a, b run) int { return a.start%cols - b.start%cols })
	var tasks [][]run
	for i := 0; i < len(runs); {
		j := i + 1
		for j < len(runs) && j-i < outputRows && runs[j].start%cols == runs[i].start%cols {
			j++
		}
		tasks = append(tasks, runs[i:j])
		i = j
	}
	blocks := make([][]float32, len(gram.Blocks)) // G in float32, as the GEMM takes it
	for b, blk := range gram.Blocks {
		blocks[b] = make([]float32, len(blk))
		for i, v := range blk {
			blocks[b][i] = float32(v)
		}
	}
	ratios := steps + 1
	type scratch struct {
		e, f   []float32
		scales []float32
		zps    []int32
	}
	fit := func(sc *scratch, rs []run) error {
		m := rs[0].end - rs[0].start
		n := len(rs) * ratios
		e, f := sc.e[:n*m], sc.f[:n*m]
		for ri, r := range rs {
			vals := w[r.start:r.end]
			lo, hi := float32(0), float32(0)
			for _, v := range vals {
				lo, hi = min(lo, v), max(hi, v)
			}
			for i := range ratios {
				ratio := 1 - float64(i)/float64(steps)*(1-lowest)
				scale, zp := s.ScaleZeroPoint(float32(ratio*float64(lo)), float32(ratio*float64(hi)))
				scale = round(scale)
				if !(scale > 0) || math.IsInf(float64(scale), 0) {
					return fmt.Errorf("clip: scale %g for ratio %g", scale, ratio)
				}
				roundTripErrors(e[(ri*ratios+i)*m:(ri*ratios+i+1)*m], vals, scale, zp, qmin, qmax)
				sc.scales[ri*ratios+i], sc.zps[ri*ratios+i] = scale, zp
			}
		}
		gemm(n, m, m, e, blocks[rs[0].start%cols/group], f)
		for ri, r := range rs {
			best, bi := math.Inf(1), 0
			for i := range ratios {
				o := (ri*ratios + i) * m
				var l float64
				for j, v := range e[o : o+m] {
					l += float64(v) * float64(f[o+j])
				}
				if l < best {
					best, bi = l, i
				}
			}
			p.Scales[r.k], p.ZeroPoints[r.k] = sc.scales[ri*ratios+bi], sc.zps[ri*ratios+bi]
		}
		return nil
	}
	workers := min(runtime.GOMAXPROCS(0), len(tasks))
	errs := make([]error, workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	for wi := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := outputRows * ratios
			sc := &scratch{e: make([]float32, n*group), f: make([]float32, n*group), scales: make([]float32, n), zps: make([]int32, n)}
			for {
				t := int(next.Add(1)) - 1
				if t >= len(tasks) {
					return
				}
				if errs[wi] = fit(sc, tasks[t]); errs[wi] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}
