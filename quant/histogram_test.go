package quant

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// naiveWidth is the smallest power of two w with m < bins·w, found by
// walking the exponents.
func naiveWidth(m float64, bins int) float64 {
	for e := -149; e <= 127; e++ {
		if w := math.Ldexp(1, e); m < float64(bins)*w {
			return w
		}
	}
	return math.Ldexp(1, 127)
}

// naiveCounts bins the finite |v| at width w in float64.
func naiveCounts(x []float32, w float64) (counts []int64, m float32, nonFinite int64) {
	for _, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			nonFinite++
			continue
		}
		m = max(m, float32(math.Abs(float64(v))))
	}
	counts = make([]int64, int(math.Floor(float64(m)/w))+1)
	for _, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			continue
		}
		counts[int(math.Floor(math.Abs(float64(v))/w))]++
	}
	return counts, m, nonFinite
}

func sameHistogram(a, b *Histogram) bool {
	return a.width == b.width && a.max == b.max && a.total == b.total && a.nonFinite == b.nonFinite &&
		a.bins == b.bins && slices.Equal(a.counts, b.counts)
}

func sum64(c []int64) int64 {
	var s int64
	for _, v := range c {
		s += v
	}
	return s
}

func TestHistogramAddMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for trial := range 100 {
		bins := []int{1, 2, 3, 100, 128, 1000, 2048}[trial%7]
		x := randomTensor(rng, 1+rng.IntN(3000), trial%2 == 0)
		h := NewHistogram(bins)
		h.Add(x)
		wantCounts, m, nf := naiveCounts(x, naiveWidth(float64(maxAbsFinite(x)), bins))
		w := naiveWidth(float64(m), bins)
		if h.Width() != w || h.Max() != m || h.NonFinite() != nf || !slices.Equal(h.Counts(), wantCounts) {
			t.Fatalf("bins %d: width %g max %g nonfinite %d, %d bins; want %g %g %d, %d bins",
				bins, h.Width(), h.Max(), h.NonFinite(), h.Bins(), w, m, nf, len(wantCounts))
		}
		if h.Total() != sum64(wantCounts) {
			t.Fatalf("total %d, want %d", h.Total(), sum64(wantCounts))
		}
		if bins > 1 && (2*h.Bins() <= bins || h.Bins() > bins) {
			t.Fatalf("first batch uses %d bins, want (%d/2, %d]", h.Bins(), bins, bins)
		}
		if got, want := h.Edge(h.Bins()), float64(h.Bins())*w; got != want || float64(h.Max()) >= got {
			t.Fatalf("Edge(%d) = %g, want %g above max %g", h.Bins(), got, want, h.Max())
		}
	}
}

func maxAbsFinite(x []float32) float32 {
	var m float32
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); a <= math.MaxFloat32 {
			m = max(m, a)
		}
	}
	return m
}

func TestHistogramGrowthKeepsWidth(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	a := make([]float32, 5000)
	b := make([]float32, 5000)
	for i := range a {
		a[i] = float32(rng.NormFloat64())
		b[i] = float32(rng.NormFloat64() * 10)
	}
	h := NewHistogram(DefaultBins)
	h.Add(a)
	w, n := h.Width(), h.Bins()
	h.Add(b)
	if h.Width() != w {
		t.Fatalf("width changed from %g to %g", w, h.Width())
	}
	want, m, _ := naiveCounts(append(slices.Clone(a), b...), w)
	if !slices.Equal(h.Counts(), want) || h.Max() != m || h.Total() != 10000 {
		t.Fatalf("after growth from %d bins: %d bins, max %g, total %d; want %d bins, max %g", n, h.Bins(), h.Max(), h.Total(), len(want), m)
	}
	if h.Bins() <= n {
		t.Fatalf("bins did not grow: %d", h.Bins())
	}
}

func TestHistogramSpecials(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	h := NewHistogram(4)
	h.Add([]float32{nan, inf, -inf})
	if h.Bins() != 0 || h.Total() != 0 || h.NonFinite() != 3 {
		t.Fatalf("all non-finite: %d bins, total %d, non-finite %d", h.Bins(), h.Total(), h.NonFinite())
	}
	h.Add([]float32{0, 0, 0})
	if h.Bins() != 1 || h.Width() != 0 || !slices.Equal(h.Counts(), []int64{3}) || h.Max() != 0 {
		t.Fatalf("all zero: width %g counts %v max %g", h.Width(), h.Counts(), h.Max())
	}
	h.Add([]float32{nan, -1, 0.25, 0})
	// Width: smallest power of two w with 1 < 4w is 0.5; bins [0, .5), [.5, 1), [1, 1.5).
	if h.Width() != 0.5 || !slices.Equal(h.Counts(), []int64{5, 0, 1}) || h.Max() != 1 || h.Total() != 6 || h.NonFinite() != 4 {
		t.Fatalf("width %g counts %v max %g total %d non-finite %d", h.Width(), h.Counts(), h.Max(), h.Total(), h.NonFinite())
	}
	// Zeros of width-less histograms merge into bin 0.
	z := NewHistogram(4)
	z.Add([]float32{0, -0})
	if err := h.Merge(z); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(h.Counts(), []int64{7, 0, 1}) {
		t.Fatalf("after merging zeros: %v", h.Counts())
	}
}

func TestHistogramZeroValue(t *testing.T) {
	var h Histogram
	h.Add([]float32{3, -1})
	if w := naiveWidth(3, DefaultBins); h.Width() != w || h.Total() != 2 {
		t.Fatalf("zero value: width %g, total %d; want width %g", h.Width(), h.Total(), w)
	}
	var back Histogram
	data, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	if back.Width() != h.Width() || !slices.Equal(back.Counts(), h.Counts()) {
		t.Fatalf("zero value JSON round trip: %s", data)
	}
}

func TestHistogramExtremes(t *testing.T) {
	h := NewHistogram(DefaultBins)
	h.Add([]float32{1e-45})                     // smallest subnormal
	if h.Width() != 0x1p-126 || h.Bins() != 1 { // the width stops at 2^-126
		t.Fatalf("subnormal: width %g, %d bins", h.Width(), h.Bins())
	}
	h.Add([]float32{1, -3e38})
	if h.Bins() > MaxBins || h.Max() != 3e38 || h.Total() != 3 || sum64(h.Counts()) != 3 {
		t.Fatalf("after huge values: %d bins, width %g, max %g, total %d", h.Bins(), h.Width(), h.Max(), h.Total())
	}
	if float64(h.Max()) >= h.Edge(h.Bins()) || float32(h.Width()) == 0 || math.IsInf(float64(float32(h.Width())), 0) {
		t.Fatalf("width %g, %d bins do not cover %g in float32", h.Width(), h.Bins(), h.Max())
	}
	big := NewHistogram(1)
	big.Add([]float32{math.MaxFloat32})
	if w := float32(big.Width()); math.IsInf(float64(w), 0) || big.Bins() != 2 {
		t.Fatalf("one bin, max float32: width %g, %d bins", big.Width(), big.Bins())
	}
	// Growth past MaxBins coarsens exactly.
	g := NewHistogram(DefaultBins)
	g.Add([]float32{1, 0.5})
	w := g.Width()
	g.Add([]float32{4096})
	want, _, _ := naiveCounts([]float32{1, 0.5, 4096}, g.Width())
	if g.Width() <= w || g.Bins() > MaxBins || !slices.Equal(g.Counts(), want) {
		t.Fatalf("past MaxBins: width %g -> %g, %d bins", w, g.Width(), g.Bins())
	}
}

// shardHistograms splits x at random points into shards and histograms each.
func shardHistograms(rng *rand.Rand, x []float32, bins int) []*Histogram {
	var hs []*Histogram
	for len(x) > 0 {
		n := 1 + rng.IntN(len(x))
		h := NewHistogram(bins)
		h.Add(x[:n])
		hs = append(hs, h)
		x = x[n:]
	}
	return hs
}

func TestHistogramMergeEqualsOneAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for trial := range 100 {
		x := randomTensor(rng, 1+rng.IntN(5000), trial%2 == 0)
		// Shards of very different magnitudes make different widths.
		if trial%3 == 0 {
			for i := range x[:len(x)/2] {
				x[i] *= 1e-3
			}
		}
		bins := []int{7, 128, 2048}[trial%3]
		all := NewHistogram(bins)
		all.Add(x)
		hs := shardHistograms(rng, x, bins)
		rng.Shuffle(len(hs), func(i, j int) { hs[i], hs[j] = hs[j], hs[i] })
		merged := NewHistogram(bins)
		for _, h := range hs {
			if err := merged.Merge(h); err != nil {
				t.Fatal(err)
			}
		}
		if !sameHistogram(merged, all) {
			t.Fatalf("trial %d: merge of %d shards: width %g, %d bins, total %d; one Add: width %g, %d bins, total %d",
				trial, len(hs), merged.Width(), merged.Bins(), merged.Total(), all.Width(), all.Bins(), all.Total())
		}
	}
}

func TestHistogramMergeAlgebra(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	mk := func() *Histogram {
		h := NewHistogram([]int{1, 5, 128, 777, 2048}[rng.IntN(5)])
		// Zero to three batches of one magnitude (so that growth stays
		// small); histograms differ in magnitude, hence in width.
		x := randomTensor(rng, rng.IntN(4000), rng.IntN(2) == 0)
		if rng.IntN(5) == 0 {
			clear(x)
		}
		for range rng.IntN(4) {
			n := rng.IntN(len(x) + 1)
			h.Add(x[:n])
			x = x[n:]
		}
		return h
	}
	merge := func(a, b *Histogram) *Histogram {
		c := a.Clone()
		if err := c.Merge(b); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for trial := range 150 {
		a, b, c := mk(), mk(), mk()
		ab, ba := merge(a, b), merge(b, a)
		if !sameHistogram(ab, ba) {
			t.Fatalf("trial %d: merge not commutative: widths %g, %g", trial, a.Width(), b.Width())
		}
		l, r := merge(ab, c), merge(a, merge(b, c))
		if !sameHistogram(l, r) {
			t.Fatalf("trial %d: merge not associative: widths %g, %g, %g", trial, a.Width(), b.Width(), c.Width())
		}
		if l.Total() != a.Total()+b.Total()+c.Total() || sum64(l.Counts()) != l.Total() ||
			l.NonFinite() != a.NonFinite()+b.NonFinite()+c.NonFinite() || l.Max() != max(a.Max(), b.Max(), c.Max()) {
			t.Fatalf("trial %d: merged totals wrong", trial)
		}
		if l.Width() > 0 && float64(l.Max()) >= l.Edge(l.Bins()) {
			t.Fatalf("trial %d: max %g past %d bins of width %g", trial, l.Max(), l.Bins(), l.Width())
		}
		// Merging with itself doubles.
		d := a.Clone()
		if err := d.Merge(d); err != nil {
			t.Fatal(err)
		}
		if d.Total() != 2*a.Total() || sum64(d.Counts()) != d.Total() {
			t.Fatalf("self-merge: total %d, want %d", d.Total(), 2*a.Total())
		}
	}
	if err := NewHistogram(4).Merge(nil); err == nil {
		t.Error("Merge(nil): no error")
	}
}

// fakeBackendFill bins like a backend would: float32 |x|/width, clamped to
// the last bin.
func fakeBackendFill(x []float32) func(float32, []int64) (int64, error) {
	return func(width float32, counts []int64) (int64, error) {
		var nf int64
		for _, v := range x {
			if v-v != 0 {
				nf++
				continue
			}
			counts[min(int(float32(math.Abs(float64(v)))/width), len(counts)-1)]++
		}
		return nf, nil
	}
}

func TestHistogramAddWith(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for trial := range 50 {
		ref, h := NewHistogram(1000), NewHistogram(1000)
		for range 1 + rng.IntN(4) {
			x := randomTensor(rng, rng.IntN(3000), trial%2 == 0)
			if rng.IntN(4) == 0 {
				clear(x)
			}
			ref.Add(x)
			if err := h.AddWith(maxAbsFinite(x), fakeBackendFill(x)); err != nil {
				t.Fatal(err)
			}
		}
		if !sameHistogram(ref, h) {
			t.Fatalf("trial %d: AddWith: width %g, %d bins, total %d; Add: width %g, %d bins, total %d",
				trial, h.Width(), h.Bins(), h.Total(), ref.Width(), ref.Bins(), ref.Total())
		}
	}
	h := NewHistogram(16)
	h.Add([]float32{1, 2, 3})
	before := h.Clone()
	boom := errors.New("boom")
	for name, c := range map[string]struct {
		amax float32
		fill func(float32, []int64) (int64, error)
	}{
		"error":        {5, func(float32, []int64) (int64, error) { return 0, boom }},
		"negative":     {5, func(_ float32, c []int64) (int64, error) { c[0] = -1; return 0, nil }},
		"past max":     {1, func(_ float32, c []int64) (int64, error) { c[len(c)-1] = 1; c[0] = 1; return 0, nil }},
		"nonfinite<0":  {5, func(float32, []int64) (int64, error) { return -1, nil }},
		"NaN abs max":  {float32(math.NaN()), fakeBackendFill(nil)},
		"Inf abs max":  {float32(math.Inf(1)), fakeBackendFill(nil)},
		"negative max": {-1, fakeBackendFill(nil)},
		"nil fill":     {5, nil},
	} {
		err := h.AddWith(c.amax, c.fill)
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		if !sameHistogram(h, before) {
			t.Errorf("%s: histogram changed on error", name)
		}
	}
	if err := h.AddWith(5, func(float32, []int64) (int64, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Errorf("fill error not wrapped: %v", err)
	}
}

func TestHistogramJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for trial := range 20 {
		h := NewHistogram(300)
		if trial > 0 {
			h.Add(randomTensor(rng, 1000, true))
		}
		data, err := json.Marshal(map[string]*Histogram{"t": h})
		if err != nil {
			t.Fatal(err)
		}
		var back map[string]*Histogram
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		if !sameHistogram(h, back["t"]) {
			t.Fatalf("JSON round trip changed the histogram: %s", data)
		}
	}
	for _, bad := range []string{
		`{"bins":0,"width":1,"max":1,"counts":[0,1]}`,
		`{"bins":8,"width":3,"max":1,"counts":[0,1]}`,
		`{"bins":8,"width":0.5,"max":1,"counts":[0,1]}`,
		`{"bins":8,"width":1,"max":1,"counts":[-1,1]}`,
		`{"bins":8,"width":1,"max":-1,"counts":[0,1]}`,
		`{"bins":8,"width":0,"max":1,"counts":[1]}`,
		`{"bins":8,"width":1,"max":1,"counts":[1,1],"non_finite":-2}`,
		`{"bins":8,"width":1,"max":1,"counts":[9223372036854775807,1]}`,
		`[1,2]`,
		// Duplicate, unknown and missing keys, which encoding/json lets pass.
		`{"bins":8,"width":1,"max":1,"counts":[0,1],"counts":[5,1],"non_finite":0}`,
		`{"bins":8,"width":1,"max":1,"cuonts":[0,1],"non_finite":0}`,
		`{"bins":8,"width":1,"max":1,"non_finite":0}`,
		`{"bins":8,"width":1,"counts":[0,1],"non_finite":0}`,
		`null`,
		// Wrong types.
		`{"bins":"8","width":1,"max":1,"counts":[0,1],"non_finite":0}`,
		`{"bins":8,"width":1,"max":1,"counts":[0,1.5],"non_finite":0}`,
		`{"bins":8,"width":1,"max":1,"counts":{"0":1},"non_finite":0}`,
		`{"bins":8,"width":1,"max":1e39,"counts":[0,1],"non_finite":0}`,
		// Counts Add could not have made: the bin of max empty, bins past
		// it, a max or width without any finite value.
		`{"bins":8,"width":1,"max":1,"counts":[1,0],"non_finite":0}`,
		`{"bins":8,"width":1,"max":1,"counts":[0,1,0],"non_finite":0}`,
		`{"bins":8,"width":1,"max":0.5,"counts":[0],"non_finite":0}`,
		`{"bins":8,"width":1,"max":0,"counts":[],"non_finite":3}`,
	} {
		var h Histogram
		err := json.Unmarshal([]byte(bad), &h)
		if err == nil {
			t.Errorf("%s: no error", bad)
		} else if strings.HasPrefix(bad, "{") && !strings.Contains(err.Error(), "quant: histogram") {
			t.Errorf("%s: error %q lacks context", bad, err)
		}
	}
}

func TestHistogramMergeOverflow(t *testing.T) {
	big := &Histogram{bins: 8, width: 1, counts: []int64{0, math.MaxInt64 - 1}, max: 1.5, total: math.MaxInt64 - 1}
	one := &Histogram{bins: 8, width: 1, counts: []int64{0, 2}, max: 1, total: 2}
	before := big.Clone()
	if err := big.Merge(one); err == nil || !strings.Contains(err.Error(), "overflow") {
		t.Errorf("merging past 2^63-1 values: %v, want an overflow error", err)
	}
	if !sameHistogram(big, before) {
		t.Error("a failed merge changed the histogram")
	}
	nf := &Histogram{bins: 8, nonFinite: math.MaxInt64}
	if err := nf.Merge(&Histogram{bins: 8, nonFinite: 1}); err == nil {
		t.Error("merging past 2^63-1 non-finite values: no error")
	}
}

// histFile is the text of a histogram file holding the given members.
func histFile(members ...string) string { return "{" + strings.Join(members, ",") + "}" }

const goodHist = `{"bins":8,"width":1,"max":1.5,"counts":[2,3],"non_finite":1}`

func TestReadHistograms(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	want := map[string]*Histogram{"b": NewHistogram(300), "a": NewHistogram(77), "zeros": NewHistogram(5), "nan": NewHistogram(9)}
	want["b"].Add(randomTensor(rng, 1000, true))
	want["a"].Add(randomTensor(rng, 10, false))
	want["zeros"].Add([]float32{0, 0})
	want["nan"].Add([]float32{float32(math.NaN())})
	data, err := json.MarshalIndent(want, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	names, got, err := ReadHistograms(strings.NewReader(string(data)))
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if !slices.Equal(names, []string{"a", "b", "nan", "zeros"}) { // file order; json.Marshal sorts keys
		t.Errorf("names %q", names)
	}
	for n, h := range want {
		if !sameHistogram(got[n], h) {
			t.Errorf("%s: round trip changed the histogram", n)
		}
	}
	if _, _, err := ReadHistograms(strings.NewReader(histFile(`"x": ` + goodHist))); err != nil {
		t.Errorf("one histogram: %v", err)
	}

	for _, c := range []struct{ in, want string }{
		{histFile(`"act": `+goodHist, `"act": `+goodHist), `tensor "act" appears twice`},
		{`{}`, "no histograms"},
		{` { } `, "no histograms"},
		{``, "not valid JSON"},
		{`[]`, "not a JSON object"},
		{`null`, "not a JSON object"},
		{histFile(`"a": `+goodHist) + ` {}`, "data after"},
		{histFile(`"a": `+goodHist) + `]`, "data after"},
		{histFile(`"a": null`), `tensor "a"`},
		{histFile(`"a": [1, 2]`), `tensor "a"`},
		{histFile(`"a": 5`), `tensor "a"`},
		{histFile(`"": ` + goodHist), "empty tensor name"},
		{histFile(`"a": {"bins":8,"width":1,"max":1.5,"counts":[2,-3],"non_finite":0}`), `tensor "a": count -3`},
		{histFile(`"a": {"bins":8,"width":1,"max":1.5,"counts":["2",3],"non_finite":0}`), `tensor "a"`},
		{histFile(`"a": {"bins":1e12,"width":1,"max":1.5,"counts":[2,3],"non_finite":0}`), `tensor "a"`},
		{histFile(`"a": {"bins":1000000000000,"width":1,"max":1.5,"counts":[2,3],"non_finite":0}`), `bins 1000000000000 outside`},
		{histFile(`"a": {"bins":8,"width":1,"max":1.5,"counts":[2,3],"non_finite":0,"bins":9}`), `"bins" appears twice`},
		{histFile(`"a": `+goodHist, `"b": {"bins":8,"width":1,"max":1.5,"counts":[2,3]}`), `tensor "b": missing "non_finite"`},
		{histFile(`"a": {"bins":8,"width":1,"max":1.5,"counts":[2,3],"non_finite":0,"extra":1}`), `unknown key "extra"`},
		{histFile(`"a": ` + goodHist + `,`), "not valid JSON"},
		{`{"a": ` + goodHist, "not valid JSON"},
	} {
		names, hs, err := ReadHistograms(strings.NewReader(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.in, err, c.want)
		}
		if err != nil && (names != nil || hs != nil) {
			t.Errorf("%s: returned histograms with an error", c.in)
		}
	}
}
