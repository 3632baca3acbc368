package quant

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// CalibOptions configure a calibrator. Zero values take the defaults.
type CalibOptions struct {
	Bits       int     // code width the amax is for: 8 (default) or 4
	Unsigned   bool    // codes are [0, 2^Bits-1] rather than signed
	Percentile float64 // for "percentile", in (0, 100]; default 99.99
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
	{"entropy", func(o CalibOptions) Calibrator { return entropyCalibrator{o.levels()} }},
	// The threshold with the least squared quantization error.
	{"mse", func(o CalibOptions) Calibrator { return mseCalibrator{o.levels(), o.qmax()} }},
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

type entropyCalibrator struct{ levels int }

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
// Max. It takes O(len(b)²) time.
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
	best, bestI := math.Inf(1), n
	for i := nq; i <= n; i++ {
		kl := 0.0
		clipped := total - pre[i]
		qsum := pre[i] // Q holds exactly the mass of b[:i]
		if b[i-1] == 0 && clipped > 0 {
			kl = math.Inf(1) // P[i-1] > 0 = Q[i-1]
		} else if qsum == 0 {
			kl = math.Inf(1) // all of P is clipped into an empty bin
		} else {
			for ch := 0; ch < nq; ch++ {
				start := (ch*i + nq - 1) / nq // first j with floor(j·nq/i) = ch
				end := ((ch+1)*i + nq - 1) / nq
				cnt := nz[end] - nz[start]
				if cnt == 0 {
					continue // all of P is 0 here too
				}
				q := (pre[end] - pre[start]) / float64(cnt) / qsum
				for j := start; j < end; j++ {
					p := b[j]
					if j == i-1 {
						p += clipped
					}
					if p == 0 {
						continue
					}
					p /= total
					kl += p * math.Log(p/q)
				}
			}
		}
		if kl <= best {
			best, bestI = kl, i
		}
	}
	return clampAmax(h.Edge(bestI), h), nil
}

type mseCalibrator struct{ levels, qmax int }

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
// the first i of least error times width, no more than Max.
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
	best, bestI := math.Inf(1), n
	for i := first; i <= n; i++ {
		a := float64(i) * w
		s := a / qmax
		e := 0.0
		for j, cnt := range h.counts {
			if cnt == 0 {
				continue
			}
			x := (float64(j) + 0.5) * w
			d := x - s*min(math.RoundToEven(x/s), qmax)
			e += float64(cnt) * d * d
		}
		if e < best {
			best, bestI = e, i
		}
	}
	return clampAmax(h.Edge(bestI), h), nil
}
