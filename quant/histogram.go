package quant

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/quantkit/quantkit/internal/jsonobj"
)

// DefaultBins is the number of bins a histogram aims for on its first
// batch, as in TensorRT's and pytorch-quantization's histogram calibrators.
const DefaultBins = 2048

// MaxBins bounds the number of bins of a Histogram. A batch whose maximum
// would need more bins at the current width doubles the width instead
// (summing adjacent bins, the same exact coarsening Merge does), so that one
// outlier cannot exhaust memory.
const MaxBins = 1 << 20

// The width of a bin is kept to powers of two whose reciprocal is also a
// float32 (2^-126 to 2^127), so a backend may bin with |x|·(1/width) in
// float32, exactly.
const (
	minWidth = 0x1p-126
	maxWidth = 0x1p127
)

// Histogram counts |x| over the finite values of one tensor, seen in any
// number of batches, for the calibrators.
//
// Bin i holds the values with floor(|x|/width) = i, that is |x| in
// [i·width, (i+1)·width). The width is a power of two, fixed by the first
// batch with a non-zero finite maximum m: the smallest power of two with
// m < bins·width, so that batch fills between bins/2 and bins bins. A power
// of two makes |x|/width exact in float32, so every backend (CPU, GPU) puts
// every value in the same bin, and it lets two histograms with different
// widths merge exactly: the finer is coarsened by summing runs of 2^k
// adjacent bins, which is exactly the histogram of its data at the coarser
// width.
//
// A later batch with a larger maximum adds bins of the same width, as
// TensorRT's and pytorch-quantization's calibrators do; the histogram is
// never rescaled (except past MaxBins, see there). Zeros seen before the
// width is known are counted in bin 0, where they belong at any width.
// NaN and ±Inf are skipped and counted by NonFinite.
//
// The width is clamped to [2^-126, 2^127], the powers of two whose
// reciprocals a float32 can hold, so tensors of tiny or huge values may use fewer bins.
//
// The zero value is an empty histogram aiming for DefaultBins. A
// Histogram is not safe for concurrent use. Its JSON form (MarshalJSON)
// lets histograms made on several machines be saved and merged.
type Histogram struct {
	bins      int     // bins aimed for on the first batch; 0 means DefaultBins
	width     float64 // power of two; 0 until a non-zero value is seen
	counts    []int64
	max       float32 // largest finite |x|
	total     int64   // finite values
	nonFinite int64
}

// NewHistogram returns an empty histogram that aims for the given number of
// bins on its first batch. bins < 1 means DefaultBins and bins > MaxBins
// means MaxBins.
func NewHistogram(bins int) *Histogram {
	switch {
	case bins < 1:
		bins = DefaultBins
	case bins > MaxBins:
		bins = MaxBins
	}
	return &Histogram{bins: bins}
}

// Bins is the number of bins, 0 for a histogram without finite values.
func (h *Histogram) Bins() int { return len(h.counts) }

// Width is the width of a bin, a power of two, or 0 while no non-zero
// value has been seen (all values so far are in bin 0).
func (h *Histogram) Width() float64 { return h.width }

// Edge is the lower edge of bin i, i·Width().
func (h *Histogram) Edge(i int) float64 { return float64(i) * h.width }

// Counts returns a copy of the counts, one per bin.
func (h *Histogram) Counts() []int64 { return append([]int64(nil), h.counts...) }

// Max is the largest finite |x| seen, exactly.
func (h *Histogram) Max() float32 { return h.max }

// Total is the number of finite values seen.
func (h *Histogram) Total() int64 { return h.total }

// NonFinite is the number of NaN and ±Inf values skipped.
func (h *Histogram) NonFinite() int64 { return h.nonFinite }

// Clone returns a deep copy of h.
func (h *Histogram) Clone() *Histogram {
	c := *h
	c.counts = h.Counts()
	return &c
}

// Add adds the values of x. It is the reference binning:
//
//	for _, v := range x {
//		if v is NaN or ±Inf { nonFinite++; continue }
//		counts[int(float32(|v|)/float32(width))]++
//	}
//
// after growing the histogram to cover the largest |v|.
func (h *Histogram) Add(x []float32) {
	var m float32
	var finite, nonFinite int64
	for _, v := range x {
		if v-v != 0 { // NaN or ±Inf
			nonFinite++
			continue
		}
		finite++
		m = max(m, abs32(v))
	}
	h.nonFinite += nonFinite
	if finite == 0 {
		return
	}
	h.grow(m)
	w := float32(h.width)
	for _, v := range x {
		if v-v != 0 {
			continue
		}
		if w == 0 { // all zero so far
			h.counts[0]++
			continue
		}
		h.counts[int(abs32(v)/w)]++
	}
	h.max = max(h.max, m)
	h.total += finite
}

// AddWith adds one batch binned by someone else, typically a backend.
// absMax is the largest finite |x| of the batch (0 when it has none); AddWith
// grows the histogram to cover it, then calls fill with the bin width and a
// zeroed slice of Bins() counts. fill must add to counts[floor(|x|/width)]
// for every finite x of the batch, computing |x|/width in float32 (exact,
// since width is a power of two), and return the number of NaN and ±Inf
// values it skipped. While no non-zero value has been seen, and absMax is 0,
// width is 1: every finite value of the batch is 0 and lands in bin 0.
//
// AddWith trusts absMax for Max. When fill returns an error, or counts it
// cannot have made, h is left as it was.
func (h *Histogram) AddWith(absMax float32, fill func(width float32, counts []int64) (nonFinite int64, err error)) error {
	if fill == nil {
		return errors.New("quant: histogram: AddWith with a nil fill function")
	}
	if !(absMax >= 0) || math.IsInf(float64(absMax), 0) {
		return fmt.Errorf("quant: histogram: batch abs max %g, want finite and non-negative", absMax)
	}
	g := h.Clone()
	g.grow(absMax)
	w := float32(g.width)
	if w == 0 {
		w = 1
	}
	add := make([]int64, len(g.counts))
	nonFinite, err := fill(w, add)
	if err != nil {
		return fmt.Errorf("quant: histogram: %w", err)
	}
	if nonFinite < 0 {
		return fmt.Errorf("quant: histogram: fill reported %d non-finite values", nonFinite)
	}
	var finite int64
	for i, c := range add {
		if c < 0 {
			return fmt.Errorf("quant: histogram: fill left count %d in bin %d", c, i)
		}
		if float64(i)*float64(w) > float64(absMax) && c != 0 {
			return fmt.Errorf("quant: histogram: fill put %d values in bin %d, past the batch abs max %g at width %g", c, i, absMax, w)
		}
		g.counts[i] += c
		finite += c
	}
	if finite == 0 { // nothing to bin: leave the width and bins alone, as Add does
		h.nonFinite += nonFinite
		return nil
	}
	g.total += finite
	g.nonFinite += nonFinite
	g.max = max(g.max, absMax)
	*h = *g
	return nil
}

// Merge adds the counts of o to h, exactly: the histogram with the finer
// width is coarsened to the coarser one by summing runs of adjacent bins
// (both widths are powers of two and bins start at 0), the shorter one is
// extended, and the counts, maxima and non-finite counts combine. Merging
// is commutative and associative, and merging the histograms of the shards
// of some data gives the histogram of all the data in one Add whenever the
// widths agree (always, when all were made with the same bins and took
// one batch each). Merging past 2^63-1 values in all is an error, and
// leaves h as it was.
func (h *Histogram) Merge(o *Histogram) error {
	if o == nil {
		return errors.New("quant: histogram: merge with nil")
	}
	if h.total > math.MaxInt64-o.total || h.nonFinite > math.MaxInt64-o.nonFinite {
		return fmt.Errorf("quant: histogram: merge overflows the counts (%d + %d finite values, %d + %d non-finite)",
			h.total, o.total, h.nonFinite, o.nonFinite)
	}
	oc := o.counts
	w := max(h.width, o.width)
	if h.width != 0 && h.width < w {
		h.counts = coarsen(h.counts, w/h.width)
	}
	if o.width != 0 && o.width < w {
		oc = coarsen(oc, w/o.width)
	}
	if len(oc) > len(h.counts) {
		h.counts = append(h.counts, make([]int64, len(oc)-len(h.counts))...)
	}
	for i, c := range oc {
		h.counts[i] += c
	}
	h.width = w
	h.bins = max(h.target(), o.target())
	h.max = max(h.max, o.max)
	h.total += o.total
	h.nonFinite += o.nonFinite
	return nil
}

// grow makes room for |x| = m: it sets the width on the first non-zero
// maximum and adds bins, doubling the width past MaxBins.
func (h *Histogram) grow(m float32) {
	if len(h.counts) == 0 {
		h.counts = make([]int64, 1)
	}
	if m == 0 {
		return
	}
	mf := float64(m)
	if h.width == 0 {
		h.width = firstWidth(mf, h.target())
	}
	need := math.Floor(mf/h.width) + 1
	if need > MaxBins {
		f := 1.0 // power of two with floor(m/(width·f)) < MaxBins
		for math.Floor(mf/(h.width*f))+1 > MaxBins {
			f *= 2
		}
		h.counts = coarsen(h.counts, f)
		h.width *= f
		need = math.Floor(mf/h.width) + 1
	}
	if n := int(need); n > len(h.counts) {
		h.counts = append(h.counts, make([]int64, n-len(h.counts))...)
	}
}

// target is the number of bins the first batch aims for.
func (h *Histogram) target() int {
	if h.bins < 1 {
		return DefaultBins
	}
	return h.bins
}

// firstWidth is the smallest power of two w with m < bins·w, clamped to
// [minWidth, maxWidth].
func firstWidth(m float64, bins int) float64 {
	b := float64(bins)
	_, e := math.Frexp(m / b)
	w := math.Ldexp(1, e)
	for m >= b*w { // guards against rounding in m/b
		w *= 2
	}
	for m < b*w/2 {
		w /= 2
	}
	return max(minWidth, min(w, maxWidth))
}

// coarsen sums runs of f adjacent counts, f a power of two.
func coarsen(counts []int64, f float64) []int64 {
	if f >= float64(len(counts)) {
		var s int64
		for _, c := range counts {
			s += c
		}
		return []int64{s}
	}
	k := int(f)
	out := make([]int64, (len(counts)+k-1)/k)
	for i, c := range counts {
		out[i/k] += c
	}
	return out
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// histogramJSON is the saved form of a Histogram.
type histogramJSON struct {
	Bins      int     `json:"bins"`
	Width     float64 `json:"width"`
	Max       float32 `json:"max"`
	NonFinite int64   `json:"non_finite"`
	Counts    []int64 `json:"counts"`
}

// MarshalJSON writes h as {"bins", "width", "max", "non_finite",
// "counts"}; the total is the sum of the counts.
func (h Histogram) MarshalJSON() ([]byte, error) {
	c := h.counts
	if c == nil {
		c = []int64{}
	}
	return json.Marshal(histogramJSON{Bins: h.target(), Width: h.width, Max: h.max, NonFinite: h.nonFinite, Counts: c})
}

// UnmarshalJSON reads what MarshalJSON writes, checking that it describes
// a histogram Add could have made: an object of exactly the five keys, each
// once, with values of their types; bins in [1, MaxBins]; a width of 0 or a
// power of two in [2^-126, 2^127]; non-negative counts whose sum fits an
// int64, no more than MaxBins of them; and a max that lies in the last bin,
// which is not empty (no finite values: no width, no max, no bins).
func (h *Histogram) UnmarshalJSON(data []byte) error {
	g, err := parseHistogram(data)
	if err != nil {
		return fmt.Errorf("quant: histogram: %w", err)
	}
	*h = *g
	return nil
}

// histogramKeys are the keys of a histogram's JSON object, all required.
var histogramKeys = [...]string{"bins", "width", "max", "non_finite", "counts"}

// parseHistogram is UnmarshalJSON, with errors that do not name the
// package. It reads the object with jsonobj rather than encoding/json,
// which would take a duplicate key silently, and allocates little more
// than the counts, which are sized by the commas of their array, never by
// anything the text declares.
func parseHistogram(data []byte) (*Histogram, error) {
	members, err := jsonobj.Members(data)
	if err != nil {
		return nil, err
	}
	var j histogramJSON
	var bins int64
	var seen [len(histogramKeys)]bool
	for _, m := range members {
		k := slices.Index(histogramKeys[:], m.Key)
		if k < 0 {
			return nil, fmt.Errorf("unknown key %q (want %s)", m.Key, strings.Join(histogramKeys[:], ", "))
		}
		seen[k] = true
		var err error
		switch val := m.Value; m.Key {
		case "bins":
			bins, err = jsonInt(val)
		case "width":
			j.Width, err = jsonFloat(val, 64)
		case "max":
			var v float64
			v, err = jsonFloat(val, 32)
			j.Max = float32(v)
		case "non_finite":
			j.NonFinite, err = jsonInt(val)
		case "counts":
			j.Counts, err = jsonInts(val)
		}
		if err != nil {
			return nil, fmt.Errorf("%q: %w", m.Key, err)
		}
	}
	for k, ok := range seen {
		if !ok {
			return nil, fmt.Errorf("missing %q", histogramKeys[k])
		}
	}
	j.Width += 0 // -0 → 0
	j.Max += 0
	switch {
	case bins < 1 || bins > MaxBins:
		return nil, fmt.Errorf("bins %d outside [1, %d]", bins, MaxBins)
	case j.Width != 0 && (j.Width < minWidth || j.Width > maxWidth || math.Float64bits(j.Width)&(1<<52-1) != 0):
		return nil, fmt.Errorf("width %g is not a power of two in [2^-126, 2^127]", j.Width)
	case !(j.Max >= 0) || math.IsInf(float64(j.Max), 0):
		return nil, fmt.Errorf("max %g, want finite and non-negative", j.Max)
	case j.Width == 0 && (j.Max != 0 || len(j.Counts) > 1):
		return nil, fmt.Errorf("no width but max %g and %d bins", j.Max, len(j.Counts))
	case j.Width != 0 && j.Max == 0:
		return nil, fmt.Errorf("width %g but max 0", j.Width)
	case j.Width != 0 && float64(j.Max) >= float64(len(j.Counts))*j.Width:
		return nil, fmt.Errorf("max %g past the last bin (%d bins of width %g)", j.Max, len(j.Counts), j.Width)
	case j.NonFinite < 0:
		return nil, fmt.Errorf("negative non-finite count %d", j.NonFinite)
	}
	var total int64
	for i, c := range j.Counts {
		if c < 0 || total > math.MaxInt64-c {
			return nil, fmt.Errorf("count %d in bin %d is negative or overflows the total", c, i)
		}
		total += c
	}
	if total == 0 {
		if j.Width != 0 {
			return nil, fmt.Errorf("width %g and max %g but no finite values", j.Width, j.Max)
		}
		j.Counts = nil
	} else if j.Width != 0 {
		// Add and Merge end the bins at the one holding max, which holds
		// at least max itself.
		last := int(float64(j.Max) / j.Width) // exact: width is a power of two
		if len(j.Counts) != last+1 || j.Counts[last] == 0 {
			return nil, fmt.Errorf("max %g is in bin %d of width %g, but the last non-empty bin of the %d is %d",
				j.Max, last, j.Width, len(j.Counts), lastNonZero(j.Counts))
		}
	}
	return &Histogram{bins: int(bins), width: j.Width, counts: j.Counts, max: j.Max, total: total, nonFinite: j.NonFinite}, nil
}

// clipText quotes a value's text for an error, cut to a readable length.
func clipText(b []byte) string {
	if len(b) > 24 {
		return string(b[:24]) + "..."
	}
	return string(b)
}

// jsonInt parses an integer JSON number.
func jsonInt(b []byte) (int64, error) {
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("want an integer of at most 64 bits, have %s", clipText(b))
	}
	return v, nil
}

// jsonFloat parses a JSON number that fits a float of bitSize bits.
func jsonFloat(b []byte, bitSize int) (float64, error) {
	if len(b) == 0 || b[0] != '-' && (b[0] < '0' || b[0] > '9') { // not a JSON number: true, "1", ...
		return 0, fmt.Errorf("want a number, have %s", clipText(b))
	}
	v, err := strconv.ParseFloat(string(b), bitSize)
	if err != nil {
		return 0, fmt.Errorf("want a float%d, have %s", bitSize, clipText(b))
	}
	return v, nil
}

// jsonInts parses an array of integer JSON numbers, of at most MaxBins.
// The slice is sized by the array's commas, so it takes at most 8 bytes
// for each 2 bytes of text.
func jsonInts(b []byte) ([]int64, error) {
	if len(b) == 0 || b[0] != '[' {
		return nil, fmt.Errorf("want an array of integers, have %s", clipText(b))
	}
	n := bytes.Count(b, []byte{','}) + 1
	if n > MaxBins {
		return nil, fmt.Errorf("more than %d counts", MaxBins)
	}
	out := make([]int64, 0, n)
	err := jsonobj.EachElement(b, func(v []byte) error {
		x, err := jsonInt(v)
		if err != nil {
			return fmt.Errorf("element %d: %w", len(out), err)
		}
		out = append(out, x)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func lastNonZero(counts []int64) int {
	for i := len(counts) - 1; i >= 0; i-- {
		if counts[i] != 0 {
			return i
		}
	}
	return -1
}

// ReadHistograms reads a histogram file: one JSON object from tensor names
// to histograms in MarshalJSON's form, as json.Marshal of a
// map[string]*Histogram writes it (quantkit calibrate --save-histograms).
// It returns the names in the file's order and the histograms by name.
//
// Beyond what UnmarshalJSON checks of each histogram, it rejects what
// encoding/json would let pass: a tensor named twice (encoding/json keeps
// the last) and data after the object; and a file of no histograms, an
// empty tensor name, and anything but an object. Errors name the tensor.
// It reads r as a stream and allocates at most a small multiple of the
// file's size, whatever the file declares.
func ReadHistograms(r io.Reader) (names []string, hs map[string]*Histogram, err error) {
	fail := func(format string, args ...any) ([]string, map[string]*Histogram, error) {
		return nil, nil, fmt.Errorf("quant: histogram file: "+format, args...)
	}
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return fail("not valid JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fail("not a JSON object of tensor names and histograms")
	}
	hs = map[string]*Histogram{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fail("not valid JSON: %w", err)
		}
		name := tok.(string) // inside an object, Token gives keys as strings
		if name == "" {
			return fail("empty tensor name")
		}
		if _, dup := hs[name]; dup {
			return fail("tensor %q appears twice", name)
		}
		var e histogramEntry
		if err := dec.Decode(&e); err != nil {
			return fail("tensor %q: %w", name, err)
		}
		hs[name] = e.h
		names = append(names, name)
	}
	if _, err := dec.Token(); err != nil {
		return fail("not valid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fail("data after the JSON object")
	}
	if len(names) == 0 {
		return fail("no histograms")
	}
	return names, hs, nil
}

// histogramEntry decodes one histogram of a file in place, its errors
// without the package's name, which ReadHistograms's errors carry.
type histogramEntry struct{ h *Histogram }

func (e *histogramEntry) UnmarshalJSON(data []byte) error {
	h, err := parseHistogram(data)
	e.h = h
	return err
}
