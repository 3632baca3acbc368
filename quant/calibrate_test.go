package quant

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
)

// linspace is numpy.linspace(start, stop, num) with endpoint: start +
// k·step with step = (stop-start)/(num-1), and the last value set to stop.
func linspace(start, stop float64, num int) []float64 {
	y := make([]float64, num)
	step := (stop - start) / float64(num-1)
	for k := range y {
		y[k] = float64(k)*step + start
	}
	y[num-1] = stop
	return y
}

// digitize is numpy.digitize(x, bins) for increasing bins, right=False:
// the i with bins[i-1] <= x < bins[i], that is the number of bins <= x.
func digitize(x float64, bins []float64) int {
	return sort.Search(len(bins), func(k int) bool { return bins[k] > x })
}

// scipyEntropy is scipy.stats.entropy(pk, qk): both normalised to sum 1,
// then Σ rel_entr(p, q) with rel_entr = p·log(p/q) for p, q > 0, 0 for
// p = 0, +Inf for p > 0 = q.
func scipyEntropy(pk, qk []float64) float64 {
	var sp, sq float64
	for i := range pk {
		sp += pk[i]
		sq += qk[i]
	}
	s := 0.0
	for i := range pk {
		p, q := pk[i]/sp, qk[i]/sq
		switch {
		case p > 0 && q > 0:
			s += p * math.Log(p/q)
		case p == 0 && q >= 0:
		default:
			s += math.Inf(1)
		}
	}
	return s
}

// entropyReference transcribes pytorch-quantization's
// _compute_amax_entropy(calib_hist, calib_bin_edges, num_bits, unsigned,
// stride=1, start_bin=nbins) statement by statement, and returns the chosen
// index into calib_bin_edges.
func entropyReference(t *testing.T, calibHist []int64, numBits int, unsigned bool) int {
	bins := make([]float64, len(calibHist)) // bins = calib_hist[:]
	for i, c := range calibHist {
		bins[i] = float64(c)
	}
	bins[0] = bins[1]
	totalData := 0.0
	for _, b := range bins {
		totalData += b
	}
	var divergences []float64
	var arguments []int
	u := 0
	if unsigned {
		u = 1
	}
	nbins := 1 << (numBits - 1 + u)
	starting := nbins // start_bin
	stop := len(bins)
	newDensityCounts := make([]float64, nbins)
	for i := starting; i <= stop; i++ {
		clear(newDensityCounts)
		space := linspace(0, float64(i), nbins+1)
		digitizedSpace := make([]int, i)
		for idx := range digitizedSpace {
			digitizedSpace[idx] = digitize(float64(idx), space) - 1
		}
		for idx := range digitizedSpace {
			if bins[idx] == 0 {
				digitizedSpace[idx] = -1
			}
		}
		for idx, d := range digitizedSpace {
			if d != -1 {
				newDensityCounts[d] += bins[idx]
			}
		}
		counter := map[int]int{}
		for _, d := range digitizedSpace {
			counter[d]++
		}
		for key, val := range counter {
			if key != -1 {
				newDensityCounts[key] = newDensityCounts[key] / float64(val)
			}
		}
		newDensity := make([]float64, i)
		for idx, d := range digitizedSpace {
			if d != -1 {
				newDensity[idx] = newDensityCounts[d]
			}
		}
		tail := 0.0
		for _, b := range bins[i:] {
			tail += b
		}
		totalCountsNew := tail
		for _, v := range newDensity {
			totalCountsNew += v
		}
		referenceDensity := slices.Clone(bins[:len(digitizedSpace)])
		referenceDensity[len(referenceDensity)-1] += tail
		totalCountsOld := 0.0
		for _, v := range referenceDensity {
			totalCountsOld += v
		}
		if math.Round(totalCountsNew) != totalData || math.Round(totalCountsOld) != totalData {
			t.Fatalf("Count mismatch! total_counts_new=%g, total_counts_old=%g, total_data=%g", totalCountsNew, totalCountsOld, totalData)
		}
		ent := scipyEntropy(referenceDensity, newDensity)
		divergences = append(divergences, ent)
		arguments = append(arguments, i)
	}
	// last_argmin = len(divergences) - 1 - np.argmin(divergences[::-1])
	rev := slices.Clone(divergences)
	slices.Reverse(rev)
	argmin := 0
	for k, d := range rev {
		if math.IsNaN(d) {
			t.Fatalf("NaN divergence at %d", k)
		}
		if d < rev[argmin] {
			argmin = k
		}
	}
	lastArgmin := len(divergences) - 1 - argmin
	return lastArgmin + starting // calib_bin_edges[last_argmin * stride + starting]
}

// Sample distributions, 200k values each.
const nSamples = 200_000

func gaussian(rng *rand.Rand) []float32 {
	x := make([]float32, nSamples)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

func laplace(rng *rand.Rand) []float32 {
	x := make([]float32, nSamples)
	for i := range x {
		x[i] = float32(rng.ExpFloat64())
		if rng.IntN(2) == 0 {
			x[i] = -x[i]
		}
	}
	return x
}

// relu is half exact zeros and half |N(0, 1)|: the spike entropy
// calibration suppresses.
func relu(rng *rand.Rand) []float32 {
	x := make([]float32, nSamples)
	for i := range x {
		if rng.IntN(2) == 0 {
			x[i] = float32(math.Abs(rng.NormFloat64()))
		}
	}
	return x
}

var distributions = []struct {
	name string
	gen  func(*rand.Rand) []float32
}{
	{"gaussian", gaussian},
	{"laplace", laplace},
	{"relu", relu},
}

func histogramOf(x []float32, bins int) *Histogram {
	h := NewHistogram(bins)
	h.Add(x)
	return h
}

func mustCalibrator(t *testing.T, method string, opt CalibOptions) Calibrator {
	t.Helper()
	c, err := NewCalibrator(method, opt)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != method {
		t.Fatalf("NewCalibrator(%q).Name() = %q", method, c.Name())
	}
	return c
}

func TestEntropyMatchesReference(t *testing.T) {
	for _, d := range distributions {
		x := d.gen(rand.New(rand.NewPCG(1, 1)))
		h := histogramOf(x, DefaultBins)
		// Sensible bands for amax (σ = 1, Laplace b = 1): int8 clips a
		// little of the tail, int4 much more. Seen: gaussian 4.12, 4.11,
		// 3.45; laplace 11.03, 10.58, 6.19; relu 4.46, 4.00, 3.45.
		band := map[string][2]float32{"gaussian": {3, 4.8}, "laplace": {8, 12.5}, "relu": {3, 4.8}}[d.name]
		band4 := map[string][2]float32{"gaussian": {2.5, 4}, "laplace": {4, 8}, "relu": {2.5, 4}}[d.name]
		for _, c := range []struct {
			opt    CalibOptions
			lo, hi float32
		}{
			{CalibOptions{Bits: 8}, band[0], band[1]},
			{CalibOptions{Bits: 8, Unsigned: true}, band[0], band[1]},
			{CalibOptions{Bits: 4}, band4[0], band4[1]},
		} {
			if testing.Short() && c.opt.Bits == 4 {
				continue
			}
			got, err := mustCalibrator(t, "entropy", c.opt).Amax(h)
			if err != nil {
				t.Fatal(err)
			}
			i := entropyReference(t, h.Counts(), c.opt.Bits, c.opt.Unsigned)
			want := float32(min(h.Edge(i), float64(h.Max())))
			if got != want {
				t.Errorf("%s %+v: entropy amax %g, reference %g (bin %d of %d, width %g)", d.name, c.opt, got, want, i, h.Bins(), h.Width())
			}
			lo, hi := c.lo, c.hi
			if got < lo || got > hi {
				t.Errorf("%s %+v: entropy amax %g outside [%g, %g] (max %g)", d.name, c.opt, got, lo, hi, h.Max())
			}
			t.Logf("%s %+v: entropy amax %.4f (max %.4f, %d bins of width %g)", d.name, c.opt, got, h.Max(), h.Bins(), h.Width())
		}
	}
}

// TestEntropyRandomHistograms compares with the reference on small random
// histograms full of empty bins, where divergences are often infinite.
func TestEntropyRandomHistograms(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for trial := range 100 {
		bits := []int{4, 8}[trial%2]
		unsigned := trial%4 >= 2
		nq := CalibOptions{Bits: bits, Unsigned: unsigned}.levels()
		n := nq + rng.IntN(3*nq)
		counts := make([]int64, n)
		density := rng.Float64()
		for i := range counts {
			if rng.Float64() < density {
				counts[i] = int64(rng.IntN(1000))
			}
		}
		counts[n-1] = 1 + int64(rng.IntN(3))
		h := &Histogram{bins: n, width: 0.125, counts: counts, max: float32(float64(n)*0.125 - 0.01), total: sum64(counts)}
		got, err := mustCalibrator(t, "entropy", CalibOptions{Bits: bits, Unsigned: unsigned}).Amax(h)
		if err != nil {
			t.Fatal(err)
		}
		i := entropyReference(t, counts, bits, unsigned)
		if want := float32(min(h.Edge(i), float64(h.Max()))); got != want {
			t.Errorf("trial %d (%d bits, unsigned %v, %d bins): amax %g, reference %g", trial, bits, unsigned, n, got, want)
		}
	}
}

func TestEntropyFewBins(t *testing.T) {
	h := histogramOf([]float32{0.1, 0.2, 3}, 64)
	got, err := mustCalibrator(t, "entropy", CalibOptions{}).Amax(h)
	if err != nil || got != 3 {
		t.Errorf("64 bins for int8: amax %g, %v; want Max 3", got, err)
	}
}

func TestPercentileMatchesSortedQuantile(t *testing.T) {
	for _, d := range distributions {
		x := d.gen(rand.New(rand.NewPCG(1, 1)))
		h := histogramOf(x, DefaultBins)
		abs := make([]float64, len(x))
		for i, v := range x {
			abs[i] = math.Abs(float64(v))
		}
		slices.Sort(abs)
		for _, p := range []float64{50, 99, 99.9, 99.99, 99.999, 100} {
			got, err := mustCalibrator(t, "percentile", CalibOptions{Percentile: p}).Amax(h)
			if err != nil {
				t.Fatal(err)
			}
			k := 1 // smallest count k with k/n >= p/100
			for float64(k)/float64(len(abs)) < p/100 {
				k++
			}
			q := abs[k-1]
			if float64(got) < q || float64(got) > q+h.Width() || got > h.Max() {
				t.Errorf("%s p%g: amax %g, sample quantile %g (bin width %g, max %g)", d.name, p, got, q, h.Width(), h.Max())
			}
		}
	}
	// The default is 99.99.
	h := histogramOf(gaussian(rand.New(rand.NewPCG(1, 1))), DefaultBins)
	a, _ := mustCalibrator(t, "percentile", CalibOptions{}).Amax(h)
	b, _ := mustCalibrator(t, "percentile", CalibOptions{Percentile: 99.99}).Amax(h)
	if a != b {
		t.Errorf("default percentile gives %g, 99.99 gives %g", a, b)
	}
}

// sampleMSE is the mean squared error of symmetric fake quantization of x
// with threshold amax and largest code qmax.
func sampleMSE(x []float32, amax, qmax float64) float64 {
	s := amax / qmax
	var e float64
	for _, v := range x {
		q := math.Max(-qmax, math.Min(qmax, math.RoundToEven(float64(v)/s)))
		d := float64(v) - q*s
		e += d * d
	}
	return e / float64(len(x))
}

func TestMSENearMinimal(t *testing.T) {
	for _, d := range distributions[:2] {
		x := d.gen(rand.New(rand.NewPCG(1, 1)))[:50_000]
		h := histogramOf(x, DefaultBins)
		for _, bits := range []int{8, 4} {
			qmax := float64(int(1)<<(bits-1) - 1)
			got, err := mustCalibrator(t, "mse", CalibOptions{Bits: bits}).Amax(h)
			if err != nil {
				t.Fatal(err)
			}
			best, bestA := math.Inf(1), 0.0
			m := float64(h.Max())
			for k := 1; k <= 150; k++ {
				a := m * float64(k) / 150
				if e := sampleMSE(x, a, qmax); e < best {
					best, bestA = e, a
				}
			}
			e := sampleMSE(x, float64(got), qmax)
			if e > best*1.03 {
				t.Errorf("%s int%d: mse amax %g has sample MSE %g; grid best %g at %g", d.name, bits, got, e, best, bestA)
			}
			t.Logf("%s int%d: mse amax %.4f, sample MSE %.4g (grid best %.4g at %.4f, max %.4f)", d.name, bits, got, e, best, bestA, m)
		}
	}
}

// TestMSEBruteForce checks the search against evaluating the stated
// objective at every candidate, on a small histogram.
func TestMSEBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for trial := range 50 {
		n := 1 + rng.IntN(300)
		counts := make([]int64, n)
		for i := range counts {
			counts[i] = int64(rng.IntN(50))
		}
		counts[n-1]++
		h := &Histogram{bins: n, width: 0.5, counts: counts, max: float32(float64(n)*0.5 - 0.1), total: sum64(counts)}
		for _, opt := range []CalibOptions{{Bits: 8}, {Bits: 4}, {Bits: 4, Unsigned: true}} {
			qmax := float64(opt.levels() - 1)
			first := opt.levels()
			if n < first {
				first = 1
			}
			best, bestI := math.Inf(1), 0
			for i := first; i <= n; i++ {
				a := float64(i) * 0.5
				var e float64
				for j, c := range counts {
					x := (float64(j) + 0.5) * 0.5
					q := math.Min(math.RoundToEven(x/(a/qmax)), qmax) * (a / qmax)
					e += float64(c) * (x - q) * (x - q)
				}
				if e < best {
					best, bestI = e, i
				}
			}
			got, err := mustCalibrator(t, "mse", opt).Amax(h)
			if err != nil {
				t.Fatal(err)
			}
			if want := float32(min(float64(bestI)*0.5, float64(h.Max()))); got != want {
				t.Errorf("trial %d %+v: amax %g, brute force %g", trial, opt, got, want)
			}
		}
	}
}

func TestMaxCalibrator(t *testing.T) {
	x := laplace(rand.New(rand.NewPCG(1, 1)))
	x[123] = -17.123456
	got, err := mustCalibrator(t, "max", CalibOptions{}).Amax(histogramOf(x, DefaultBins))
	if err != nil || got != 17.123456 {
		t.Errorf("max amax %g, %v; want 17.123456", got, err)
	}
}

func TestCalibratorRegistry(t *testing.T) {
	if got := CalibratorNames(); !slices.Equal(got, []string{"max", "percentile", "entropy", "mse"}) {
		t.Errorf("CalibratorNames() = %v", got)
	}
	_, err := NewCalibrator("kl", CalibOptions{})
	if err == nil || !strings.Contains(err.Error(), "max, percentile, entropy, mse") {
		t.Errorf("unknown method: error %v does not list the known ones", err)
	}
	for _, opt := range []CalibOptions{{Bits: 16}, {Bits: -8}, {Percentile: 101}, {Percentile: -1}, {Percentile: math.NaN()}} {
		if _, err := NewCalibrator("max", opt); err == nil {
			t.Errorf("%+v: no error", opt)
		}
	}
	nan := float32(math.NaN())
	allZero := histogramOf([]float32{0, 0, -0, nan}, 16)
	grown := histogramOf([]float32{0, 0}, 16)
	grown.Add([]float32{0})
	for _, name := range CalibratorNames() {
		c := mustCalibrator(t, name, CalibOptions{})
		for what, h := range map[string]*Histogram{
			"empty":         NewHistogram(16),
			"non-finite":    histogramOf([]float32{nan, float32(math.Inf(-1))}, 16),
			"nil histogram": nil,
		} {
			if _, err := c.Amax(h); err == nil || !strings.Contains(err.Error(), "no finite values") {
				t.Errorf("%s on %s histogram: error %v", name, what, err)
			}
		}
		for _, h := range []*Histogram{allZero, grown} {
			if a, err := c.Amax(h); err != nil || a != 0 {
				t.Errorf("%s on all-zero data: %g, %v; want 0", name, a, err)
			}
		}
		// A zero amax becomes scale 1.
		if sc, _ := Int8PerTensor.ScaleZeroPoint(0, 0); sc != 1 {
			t.Errorf("scale of amax 0 is %g", sc)
		}
	}
}

// forceParallelSearch makes the threshold searches run on the calling goroutine
// only, or on several whatever their size, for the rest of the test.
func forceParallelSearch(t *testing.T, parallel bool) {
	old := parallelSearchWork
	if parallel {
		parallelSearchWork = 0
	} else {
		parallelSearchWork = math.MaxInt
	}
	t.Cleanup(func() { parallelSearchWork = old })
}

// adversarialHistograms are histograms the searches find hard: dense,
// sparse, one far outlier (bins mostly empty), a spike at 0, runs of empty
// bins at chunk edges, and huge counts.
func adversarialHistograms(rng *rand.Rand) []*Histogram {
	mk := func(counts []int64) *Histogram {
		n := len(counts)
		counts[n-1] = max(counts[n-1], 1)
		return &Histogram{bins: n, width: 0.25, counts: counts, max: float32(float64(n)*0.25 - 0.1), total: sum64(counts)}
	}
	var hs []*Histogram
	for trial := range 12 {
		n := []int{128, 129, 255, 256, 300, 1000, 2500, 3000}[trial%8]
		counts := make([]int64, n)
		switch trial % 4 {
		case 0: // dense
			for i := range counts {
				counts[i] = 1 + int64(rng.IntN(1000))
			}
		case 1: // sparse
			for i := range counts {
				if rng.IntN(10) == 0 {
					counts[i] = int64(rng.IntN(50))
				}
			}
		case 2: // a bell and one outlier far out
			for i := range min(n, 200) {
				counts[i] = int64(1e6 * math.Exp(-float64(i*i)/2000))
			}
		case 3: // ReLU spike at 0, large counts, empty runs
			counts[0] = 1 << 36
			for i := 1; i < n; i++ {
				if (i/37)%2 == 0 {
					counts[i] = 1<<30 + int64(rng.IntN(1<<20))
				}
			}
		}
		hs = append(hs, mk(counts))
	}
	hs = append(hs, histogramOf(relu(rand.New(rand.NewPCG(2, 2)))[:20000], DefaultBins))
	return hs
}

// TestSearchParallelMatchesSerial checks that the threshold searches give
// the same amax, bit for bit, on one goroutine and on several, and that the
// entropy search is the reference's.
func TestSearchParallelMatchesSerial(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	hs := adversarialHistograms(rng)
	opts := []CalibOptions{{Bits: 8}, {Bits: 4}, {Bits: 8, Unsigned: true}}
	amax := func(parallel bool) []float32 {
		forceParallelSearch(t, parallel)
		var out []float32
		for _, h := range hs {
			for _, o := range opts {
				for _, m := range []string{"entropy", "mse"} {
					a, err := mustCalibrator(t, m, o).Amax(h)
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, a)
				}
			}
		}
		return out
	}
	serial, parallel := amax(false), amax(true)
	for k := range serial {
		if math.Float32bits(serial[k]) != math.Float32bits(parallel[k]) {
			h, o := hs[k/(2*len(opts))], opts[k/2%len(opts)]
			t.Errorf("histogram %d (%d bins) %+v %s: serial %g, parallel %g", k/(2*len(opts)), h.Bins(), o, []string{"entropy", "mse"}[k%2], serial[k], parallel[k])
		}
	}
	for hi, h := range hs {
		if h.Bins() > 1000 {
			continue // the reference is slow
		}
		for oi, o := range opts {
			i := entropyReference(t, h.Counts(), o.Bits, o.Unsigned)
			if want := float32(min(h.Edge(i), float64(h.Max()))); parallel[(hi*len(opts)+oi)*2] != want {
				t.Errorf("histogram %d %+v: entropy amax %g, reference %g", hi, o, parallel[(hi*len(opts)+oi)*2], want)
			}
		}
	}
}

// TestThresholdSearchMatchesLoop compares thresholdSearch with the loop it
// stands for, on costs full of ties, +Inf and NaN, on one goroutine and on
// several.
func TestThresholdSearchMatchesLoop(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for trial := range 400 {
		first := rng.IntN(5)
		last := first - 1 + rng.IntN(2000)
		costs := make([]float64, last+1)
		pool := []float64{0, 1, 2, math.Inf(1), math.NaN()}[:2+rng.IntN(4)]
		for i := range costs {
			costs[i] = pool[rng.IntN(len(pool))]
		}
		lastTie := trial%2 == 0
		want, best := -7, math.Inf(1)
		for i := first; i <= last; i++ {
			if c := costs[i]; c < best || lastTie && c == best {
				best, want = c, i
			}
		}
		for _, parallel := range []bool{false, true} {
			forceParallelSearch(t, parallel)
			done := -1
			got := thresholdSearch(first, last, -7, lastTie, func(i int) int { return 1 + i%7 }, func(i int) float64 { return costs[i] },
				func(d, total int) {
					if d < done || d > total {
						t.Fatalf("progress %d/%d after %d", d, total, done)
					}
					done = d
				})
			if got != want {
				t.Fatalf("trial %d (parallel %v, lastTie %v, [%d, %d], costs %v): %d, loop %d", trial, parallel, lastTie, first, last, pool, got, want)
			}
		}
	}
}

// TestCalibratorProgress checks that the O(Bins²) searches report progress
// on the calling goroutine, in order, ending with done = total, and that
// the others do not call it.
func TestCalibratorProgress(t *testing.T) {
	h := histogramOf(laplace(rand.New(rand.NewPCG(1, 1))), DefaultBins)
	for _, parallel := range []bool{false, true} {
		forceParallelSearch(t, parallel)
		for _, m := range CalibratorNames() {
			var calls, last, total int
			cal := mustCalibrator(t, m, CalibOptions{Progress: func(done, tot int) {
				if calls > 0 && (done < last || tot != total) {
					t.Errorf("%s: progress %d/%d after %d/%d", m, done, tot, last, total)
				}
				calls++
				last, total = done, tot
			}})
			want, _ := mustCalibrator(t, m, CalibOptions{}).Amax(h)
			if got, err := cal.Amax(h); err != nil || got != want {
				t.Errorf("%s with progress: %g, %v; without: %g", m, got, err, want)
			}
			switch m {
			case "entropy", "mse":
				if calls < 10 || last != total || total <= 0 {
					t.Errorf("%s (parallel %v): %d progress calls, last %d/%d", m, parallel, calls, last, total)
				}
			default:
				if calls != 0 {
					t.Errorf("%s: %d progress calls", m, calls)
				}
			}
		}
	}
}

// BenchmarkEntropy2048Bins and BenchmarkEntropy65536Bins time the entropy
// search over the histogram of 1M Laplace samples.
func BenchmarkEntropy2048Bins(b *testing.B)  { benchmarkSearch(b, "entropy", 2048) }
func BenchmarkEntropy65536Bins(b *testing.B) { benchmarkSearch(b, "entropy", 65536) }
func BenchmarkMSE2048Bins(b *testing.B)      { benchmarkSearch(b, "mse", 2048) }

func benchmarkSearch(b *testing.B, method string, bins int) {
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, 1<<20)
	for i := range x {
		x[i] = float32(rng.ExpFloat64())
	}
	h := histogramOf(x, bins)
	c, err := NewCalibrator(method, CalibOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := c.Amax(h); err != nil {
			b.Fatal(err)
		}
	}
}
