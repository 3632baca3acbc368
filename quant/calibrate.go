package quant

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync/atomic"
)

// CalibOptions configure a calibrator. Zero values take the defaults.
type CalibOptions struct {
	Bits       int     // code width the amax is for: 8 (default) or 4
	Unsigned   bool    // codes are [0, 2^Bits-1] rather than signed
	Percentile float64 // for "percentile", in (0, 100]; default 99.99

	// Progress, when not nil, is called by the O(Bins²) threshold searches
	// of "entropy" and "mse", which take minutes on a million bins: with
	// the work done and the total, in units of about equal time, first
	// with done = 0 and last with done = total, always from the goroutine
	// that called Amax. The other calibrators do not call it.
	Progress func(done, total int)
}

// Calibrator chooses the clipping threshold amax of a tensor from the
// histogram of its |x|. Callers turn amax into parameters with
// Scheme.ScaleZeroPoint(-amax, amax); an amax of 0 (all-zero data) gives
// scale 1.
type Calibrator interface {
	Name() string
	// Amax returns the threshold, never more than h.Max(). It fails on a
	// histogram without finite values.
	Amax(h *Histogram) (float32, error)
}

// calibrators is the registry NewCalibrator reads, in CalibratorNames
// order; add a method by adding a row.
var calibrators = []struct {
	name string
	new  func(CalibOptions) Calibrator
}{
	// The largest |x| seen: no clipping.
	{"max", func(CalibOptions) Calibrator { return maxCalibrator{} }},
	// The given percentile of |x|, at bin resolution.
	{"percentile", func(o CalibOptions) Calibrator { return percentileCalibrator{o.Percentile} }},
	// TensorRT's minimum KL divergence threshold (entropy calibration).
	{"entropy", func(o CalibOptions) Calibrator { return entropyCalibrator{o.levels(), o.Progress} }},
	// The threshold with the least squared quantization error.
	{"mse", func(o CalibOptions) Calibrator { return mseCalibrator{o.levels(), o.qmax(), o.Progress} }},
}

// CalibratorNames lists the calibration methods: max, percentile, entropy,
// mse.
func CalibratorNames() []string {
	names := make([]string, len(calibrators))
	for i, c := range calibrators {
		names[i] = c.name
	}
	return names
}

// NewCalibrator returns the calibrator of the named method:
//
//   - "max": Max(), the largest |x|; no clipping.
//   - "percentile": the upper edge of the bin where the cumulative count
//     reaches opt.Percentile percent, at most Max().
//   - "entropy": TensorRT's minimum-KL threshold, exactly as NVIDIA's
//     pytorch-quantization computes it (_compute_amax_entropy), in
//     O(Bins()²) time.
//   - "mse": the bin edge minimising the squared error of symmetric fake
//     quantization of the histogram's bin centres.
//
// An unknown method, bits other than 4 or 8, or a percentile outside
// (0, 100] is an error.
func NewCalibrator(method string, opt CalibOptions) (Calibrator, error) {
	if opt.Bits == 0 {
		opt.Bits = 8
	}
	if opt.Percentile == 0 {
		opt.Percentile = 99.99
	}
	if opt.Bits != 8 && opt.Bits != 4 {
		return nil, fmt.Errorf("quant: calibrator %q: %d bits not supported (8 or 4)", method, opt.Bits)
	}
	if !(opt.Percentile > 0 && opt.Percentile <= 100) {
		return nil, fmt.Errorf("quant: calibrator %q: percentile %g outside (0, 100]", method, opt.Percentile)
	}
	for _, c := range calibrators {
		if c.name == method {
			return c.new(opt), nil
		}
	}
	return nil, fmt.Errorf("quant: unknown calibration method %q (known: %s)", method, strings.Join(CalibratorNames(), ", "))
}

// levels is the number of quantization levels of |x|: 128 for int8, 256
// for uint8 (pytorch-quantization's 1 << (bits-1+unsigned)).
func (o CalibOptions) levels() int {
	if o.Unsigned {
		return 1 << o.Bits
	}
	return 1 << (o.Bits - 1)
}

// qmax is the largest code of a symmetric scheme: 127 for int8, 255 for
// uint8, 7 and 15 for 4 bits.
func (o CalibOptions) qmax() int { return o.levels() - 1 }

var errNoFinite = errors.New("quant: calibrate: histogram has no finite values")

// checkHist returns errNoFinite for an empty histogram and done = true for
// one whose values are all zero, whose amax is 0.
func checkHist(h *Histogram) (done bool, err error) {
	if h == nil || h.Total() == 0 {
		return true, errNoFinite
	}
	return h.Max() == 0 || h.Width() == 0, nil
}

// clampAmax converts a bin edge to float32, no larger than h.Max().
func clampAmax(edge float64, h *Histogram) float32 {
	return float32(min(edge, float64(h.Max())))
}

type maxCalibrator struct{}

func (maxCalibrator) Name() string { return "max" }

// Amax is h.Max().
func (maxCalibrator) Amax(h *Histogram) (float32, error) {
	if _, err := checkHist(h); err != nil {
		return 0, err
	}
	return h.Max(), nil
}

type percentileCalibrator struct{ p float64 }

func (percentileCalibrator) Name() string { return "percentile" }

// Amax is the upper edge of the first bin at which the cumulative count
// reaches p percent of the total, no more than Max:
//
//	for i, c := range counts { cum += c; if cum/total >= p/100 { return min((i+1)·width, Max) } }
func (c percentileCalibrator) Amax(h *Histogram) (float32, error) {
	if done, err := checkHist(h); done {
		return 0, err
	}
	total := float64(h.Total())
	var cum int64
	for i, n := range h.counts {
		cum += n
		if float64(cum)/total >= c.p/100 {
			return clampAmax(h.Edge(i+1), h), nil
		}
	}
	return h.Max(), nil // p/100 rounds above 1; not reached for p <= 100
}

type entropyCalibrator struct {
	levels   int
	progress func(done, total int)
}

func (entropyCalibrator) Name() string { return "entropy" }

// Amax is TensorRT's entropy calibration, as NVIDIA's pytorch-quantization
// publishes it (_compute_amax_entropy, stride 1, starting at the number of
// levels nq = 128 for int8). With b the counts and b[0] replaced by b[1] (to
// ignore the spike of zeros that ReLU makes), for each i from nq to
// len(b):
//
//   - the reference P is b[:i] with the clipped mass sum(b[i:]) added to
//     P[i-1];
//   - the candidate Q quantizes b[:i] to nq levels: bin j < i belongs to
//     chunk floor(j·nq/i) (what np.digitize over np.linspace(0, i, nq+1)
//     gives, here in integers), and each non-zero bin of a chunk gets the
//     chunk's sum over its number of non-zero bins, empty bins 0;
//   - KL(P‖Q) = Σ_{P>0} p·ln(p/q) with both normalised to sum 1, +Inf where
//     q = 0 < p, as scipy.stats.entropy computes it.
//
// Amax is i·width for the last i of least divergence (ties go to the larger
// threshold), no more than Max. A histogram of fewer than nq bins gives
// Max. It takes O(nq·len(b) + Σ_i nonzero(b[:i])) time: the sums visit
// only the non-zero bins, in the order the definition adds them, so every
// divergence is the definition's to the bit; large searches spread the
// candidates i over all CPUs (see thresholdSearch).
func (c entropyCalibrator) Amax(h *Histogram) (float32, error) {
	if done, err := checkHist(h); done {
		return 0, err
	}
	nq := c.levels
	n := len(h.counts)
	if n < nq || n < 2 {
		return h.Max(), nil
	}
	b := make([]float64, n)
	for i, v := range h.counts {
		b[i] = float64(v)
	}
	b[0] = b[1]
	// pre[j] and nz[j]: the sum and the number of non-zero bins of b[:j].
	pre := make([]float64, n+1)
	nz := make([]int, n+1)
	for j, v := range b {
		pre[j+1] = pre[j] + v
		nz[j+1] = nz[j]
		if v != 0 {
			nz[j+1]++
		}
	}
	total := pre[n]
	if total == 0 {
		return h.Max(), nil
	}
	// pn[k] is p = b[j]/total of the k-th non-zero bin j, so bins j0 to j1
	// are pn[nz[j0]:nz[j1]].
	pn := make([]float64, 0, nz[n])
	for _, v := range b {
		if v != 0 {
			pn = append(pn, v/total)
		}
	}
	kl := func(i int) float64 {
		clipped := total - pre[i]
		qsum := pre[i] // Q holds exactly the mass of b[:i]
		if b[i-1] == 0 && clipped > 0 {
			return math.Inf(1) // P[i-1] > 0 = Q[i-1]
		}
		if qsum == 0 {
			return math.Inf(1) // all of P is clipped into an empty bin
		}
		kl := 0.0
		for ch := 0; ch < nq; ch++ {
			start := (ch*i + nq - 1) / nq // first j with floor(j·nq/i) = ch
			end := ((ch+1)*i + nq - 1) / nq
			cnt := nz[end] - nz[start]
			if cnt == 0 {
				continue // all of P is 0 here too
			}
			q := (pre[end] - pre[start]) / float64(cnt) / qsum
			hi, last := nz[end], end == i && b[i-1] != 0
			if last {
				hi-- // bin i-1, the last added, takes the clipped mass
			}
			for _, p := range pn[nz[start]:hi] {
				kl += p * math.Log(p/q)
			}
			if last {
				p := (b[i-1] + clipped) / total
				kl += p * math.Log(p/q)
			}
		}
		return kl
	}
	work := func(i int) int {
		if b[i-1] == 0 && pre[i] < total {
			return 1 // +Inf at once
		}
		return nq + nz[i]
	}
	best := thresholdSearch(nq, n, n, true, work, kl, c.progress)
	return clampAmax(h.Edge(best), h), nil
}

type mseCalibrator struct {
	levels, qmax int
	progress     func(done, total int)
}

func (mseCalibrator) Name() string { return "mse" }

// Amax minimises the squared error of symmetric fake quantization over the
// histogram, each bin standing for its centre c = (j+½)·width:
//
//	for i := nq; i <= len(counts); i++ {   // from 1 when fewer bins
//		a := i·width; s := a/qmax
//		err(i) = Σ_j counts[j]·(c_j − s·min(roundHalfEven(c_j/s), qmax))²
//	}
//
// in float64, with nq the number of levels (128 for int8) and qmax the
// largest code (127 for int8, 255 for uint8, 7 or 15 for 4 bits). Amax is
// the first i of least error times width, no more than Max. The sums visit
// the non-zero bins in order, and large searches spread the candidates
// over all CPUs (see thresholdSearch).
func (c mseCalibrator) Amax(h *Histogram) (float32, error) {
	if done, err := checkHist(h); done {
		return 0, err
	}
	n := len(h.counts)
	w := h.Width()
	qmax := float64(c.qmax)
	first := c.levels
	if n < first {
		first = 1
	}
	// The centres and counts of the non-zero bins.
	var xs, cs []float64
	for j, cnt := range h.counts {
		if cnt != 0 {
			xs = append(xs, (float64(j)+0.5)*w)
			cs = append(cs, float64(cnt))
		}
	}
	sqErr := func(i int) float64 {
		a := float64(i) * w
		s := a / qmax
		e := 0.0
		for k, x := range xs {
			d := x - s*min(math.RoundToEven(x/s), qmax)
			e += cs[k] * d * d
		}
		return e
	}
	work := func(int) int { return 1 + len(xs) }
	best := thresholdSearch(first, n, n, false, work, sqErr, c.progress)
	return clampAmax(h.Edge(best), h), nil
}

// parallelSearchWork is the work (in thresholdSearch's units, about one
// logarithm or one rounding each) above which a search uses all CPUs;
// below it the goroutines cost more than they save. Tests change it to
// run both paths.
var parallelSearchWork = 1 << 20

// searchBlocks is the number of blocks thresholdSearch splits the
// candidates into: the grain of both the parallel work and the progress
// reports.
const searchBlocks = 256

// thresholdSearch returns the candidate i in [first, last] of least
// cost(i), the last of equal cost when lastTie and the first otherwise. It
// is, bit for bit,
//
//	best, bestI := +Inf, dflt
//	for i := first; i <= last; i++ {
//		if c := cost(i); c < best || lastTie && c == best { best, bestI = c, i }
//	}
//	return bestI
//
// (a NaN cost never wins), but splits the candidates into blocks of about
// equal work (work(i) estimates the time of cost(i)) and, when the total
// work is large, evaluates the blocks on GOMAXPROCS goroutines: each cost
// is computed alone, so it is the same on any goroutine, and the winners
// of the blocks are then compared in order with the loop's rule, which
// picks the loop's winner. cost must be safe to call concurrently.
// progress, when not nil, is called on the calling goroutine with the work
// done and the total: at the start and after each block.
func thresholdSearch(first, last, dflt int, lastTie bool, work func(i int) int, cost func(i int) float64, progress func(done, total int)) int {
	if first > last {
		return dflt
	}
	better := func(c, best float64) bool { return c < best || lastTie && c == best }
	// Cut the candidates into blocks [cut[k], cut[k+1]) of about equal work.
	total := 0
	for i := first; i <= last; i++ {
		total += work(i)
	}
	nb := min(searchBlocks, last-first+1)
	cut := make([]int, 0, nb+1)
	bw := make([]int, 0, nb) // work of each block
	cut = append(cut, first)
	acc, blockStart := 0, 0
	for i := first; i <= last; i++ {
		acc += work(i)
		k := len(cut) // blocks closed so far + 1
		if i == last || acc >= total*k/nb && len(cut) < nb {
			cut = append(cut, i+1)
			bw = append(bw, acc-blockStart)
			blockStart = acc
		}
	}
	nb = len(bw)
	type result struct {
		cost  float64
		i     int
		found bool
	}
	res := make([]result, nb)
	block := func(k int) {
		r := result{cost: math.Inf(1), i: dflt}
		for i := cut[k]; i < cut[k+1]; i++ {
			if c := cost(i); better(c, r.cost) {
				r = result{c, i, true}
			}
		}
		res[k] = r
	}
	if progress == nil {
		progress = func(int, int) {}
	}
	progress(0, total)
	done := 0
	workers := min(runtime.GOMAXPROCS(0), nb)
	if total < parallelSearchWork || workers < 2 {
		for k := range nb {
			block(k)
			done += bw[k]
			progress(done, total)
		}
	} else {
		var next atomic.Int64
		finished := make(chan int, nb)
		for range workers {
			go func() {
				for {
					k := int(next.Add(1) - 1)
					if k >= nb {
						return
					}
					block(k)
					finished <- k
				}
			}()
		}
		for range nb {
			done += bw[<-finished]
			progress(done, total)
		}
	}
	best, bestI := math.Inf(1), dflt
	for _, r := range res {
		if r.found && better(r.cost, best) {
			best, bestI = r.cost, r.i
		}
	}
	return bestI
}
