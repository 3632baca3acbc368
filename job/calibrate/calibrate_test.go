package calibrate

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/model/npy"
	"github.com/quantkit/quantkit/model/safetensors"
	"github.com/quantkit/quantkit/quant"
)

func gaussian(n int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, seed))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeNPY(t *testing.T, path string, x []float32, shape ...int) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := npy.WriteFile(path, x, shape); err != nil {
		t.Fatal(err)
	}
	return path
}

// npyF64 is a float64 .npy file of x in the given byte order.
func npyF64(t *testing.T, x []float64, order binary.ByteOrder) []byte {
	t.Helper()
	descr := "<f8"
	if order == binary.BigEndian {
		descr = ">f8"
	}
	var buf bytes.Buffer
	if err := npy.Write(&buf, &npy.Array{DType: descr, Shape: []int{len(x)}, Data: f64Bytes(x, order)}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func f64Bytes(x []float64, order binary.ByteOrder) []byte {
	b := make([]byte, 8*len(x))
	for i, v := range x {
		order.PutUint64(b[8*i:], math.Float64bits(v))
	}
	return b
}

func f32Bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// run is Run on the CPU.
func run(t *testing.T, opt Options) (*Report, error) {
	t.Helper()
	if opt.Backend == nil {
		opt.Backend = cpu.New()
	}
	return Run(context.Background(), opt)
}

// reference calibrates the batches of one tensor with quant alone: one
// histogram, each batch added on the CPU.
func reference(t *testing.T, method string, bits int, batches ...[]float32) float32 {
	t.Helper()
	h := quant.NewHistogram(quant.DefaultBins)
	for _, x := range batches {
		h.Add(x)
	}
	cal, err := quant.NewCalibrator(method, quant.CalibOptions{Bits: bits})
	if err != nil {
		t.Fatal(err)
	}
	amax, err := cal.Amax(h)
	if err != nil {
		t.Fatal(err)
	}
	return amax
}

// Batches of one tensor in several files merge into one histogram: every
// method gives what quant gives on all the values at once.
func TestRunMergesBatches(t *testing.T) {
	dir := t.TempDir()
	x1, x2 := gaussian(30000, 1), gaussian(20000, 2)
	x2[7] = -9 // a larger max in the second batch grows the histogram
	p1 := writeNPY(t, filepath.Join(dir, "b0", "act.npy"), x1, 300, 100)
	p2 := writeNPY(t, filepath.Join(dir, "b1", "act.npy"), x2, 20000)
	for _, bits := range []int{8, 4} {
		rep, err := run(t, Options{Paths: []string{p1, p2}, Methods: quant.CalibratorNames(), Bits: bits})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Tensors) != 1 || rep.Tensors[0].Name != "act" || rep.Tensors[0].Values != 50000 || !slices.Equal(rep.Tensors[0].Files, []string{p1, p2}) {
			t.Fatalf("tensors %+v", rep.Tensors)
		}
		if len(rep.Results) != 4 || !slices.Equal(rep.Methods, quant.CalibratorNames()) || rep.Bits != bits {
			t.Fatalf("report %+v", rep)
		}
		qmax := float32(int(1)<<(bits-1) - 1)
		for i, m := range quant.CalibratorNames() {
			r := rep.Results[i]
			if want := reference(t, m, bits, x1, x2); r.Tensor != "act" || r.Method != m || r.Amax != want || r.Bits != bits || r.Values != 50000 {
				t.Errorf("%d bits: %+v, want %s amax %g", bits, r, m, want)
			}
			if r.Scale != r.Amax/qmax {
				t.Errorf("%d bits: %s scale %g, want amax/%g = %g", bits, m, r.Scale, qmax, r.Amax/qmax)
			}
		}
		maxAbs := 0.0
		for _, v := range slices.Concat(x1, x2) {
			maxAbs = math.Max(maxAbs, math.Abs(float64(v)))
		}
		if float64(rep.Results[0].Amax) != maxAbs {
			t.Errorf("max amax %g, want %g", rep.Results[0].Amax, maxAbs)
		}
	}
}

// Saved histograms read back give the same results; the TensorRT cache
// holds the scales' bits.
func TestHistogramsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	x1, x2 := gaussian(30000, 1), gaussian(20000, 2)
	st := filepath.Join(dir, "acts.safetensors")
	if err := safetensors.WriteFile(st, []safetensors.Tensor{
		{Name: "act", DType: "F32", Shape: []int{30000}, Data: f32Bytes(x1)},
		{Name: "other", DType: "F32", Shape: []int{20000}, Data: f32Bytes(x2)},
		{Name: "labels", DType: "I64", Shape: []int{2}, Data: make([]byte, 16)}, // not a float tensor: skipped
	}, nil); err != nil {
		t.Fatal(err)
	}
	rep, err := run(t, Options{Paths: []string{st}, Methods: []string{"entropy", "max"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 4 || rep.Results[0].Tensor != "act" || rep.Results[2].Tensor != "other" {
		t.Fatalf("results %+v", rep.Results)
	}
	var hist bytes.Buffer
	if err := rep.WriteHistograms(&hist); err != nil {
		t.Fatal(err)
	}
	hp := writeFile(t, dir, "h"+HistogramSuffix, hist.Bytes())
	again, err := run(t, Options{Paths: []string{hp}, Methods: []string{"entropy", "max"}})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range again.Results {
		r.Files = rep.Results[i].Files
		if !slices.Equal(r.Files, []string{st}) || fmt.Sprint(r) != fmt.Sprint(rep.Results[i]) {
			t.Errorf("from saved histograms: %+v, want %+v", again.Results[i], rep.Results[i])
		}
	}
	// Two files of the same histograms: every count doubles, the
	// thresholds of max stay.
	twice, err := run(t, Options{Paths: []string{hp, st}, Methods: []string{"max"}})
	if err != nil || twice.Results[0].Values != 60000 || twice.Results[0].Amax != rep.Results[1].Amax {
		t.Errorf("histogram and samples merged: %v %+v", err, twice)
	}

	var cache bytes.Buffer
	if err := rep.WriteTRTCache(&cache, "8601"); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("TRT-8601-EntropyCalibration2\nact: %08x\nother: %08x\n",
		math.Float32bits(reference(t, "entropy", 8, x1)/127), math.Float32bits(reference(t, "entropy", 8, x2)/127))
	if cache.String() != want {
		t.Errorf("cache:\n%s\nwant:\n%s", cache.String(), want)
	}
}

func TestWriteTRTCache(t *testing.T) {
	rep := &Report{Methods: []string{"max"}, Results: []Result{{Tensor: "a", Method: "max", Scale: 1}, {Tensor: "b", Method: "max", Scale: -0.5}}}
	var buf bytes.Buffer
	if err := rep.WriteTRTCache(&buf, "100"); err != nil || buf.String() != "TRT-100-EntropyCalibration2\na: 3f800000\nb: bf000000\n" {
		t.Errorf("%v\n%s", err, buf.String())
	}
	for _, v := range []string{"", "8.6", "86\nx: 1", "v8"} {
		buf.Reset()
		if err := rep.WriteTRTCache(&buf, v); err == nil || !errors.Is(err, inputerr.ErrInput) || buf.Len() != 0 {
			t.Errorf("version %q: %v, wrote %q", v, err, buf.String())
		}
	}
	// A name no check stopped before: nothing is written.
	rep.Results[1].Tensor = "b\nc: 0"
	buf.Reset()
	if err := rep.WriteTRTCache(&buf, "100"); err == nil || buf.Len() != 0 {
		t.Errorf("bad name: %v, wrote %q", err, buf.String())
	}
}

func TestTensorOption(t *testing.T) {
	dir := t.TempDir()
	x := gaussian(100, 3)
	st := filepath.Join(dir, "acts.safetensors")
	if err := safetensors.WriteFile(st, []safetensors.Tensor{
		{Name: "act", DType: "F16", Shape: []int{2}, Data: []byte{0, 0x3c, 0, 0xc0}}, // 1, -2
		{Name: "other", DType: "F32", Shape: []int{100}, Data: f32Bytes(x)},
		{Name: "labels", DType: "I64", Shape: []int{2}, Data: make([]byte, 16)},
	}, nil); err != nil {
		t.Fatal(err)
	}
	ints := filepath.Join(dir, "ints.safetensors")
	if err := safetensors.WriteFile(ints, []safetensors.Tensor{{Name: "labels", DType: "I64", Shape: []int{2}, Data: make([]byte, 16)}}, nil); err != nil {
		t.Fatal(err)
	}
	np := writeNPY(t, filepath.Join(dir, "free.npy"), x, 100)
	rep, err := run(t, Options{Paths: []string{st, np}, Methods: []string{"max"}, Tensor: "act"})
	if err != nil {
		t.Fatal(err)
	}
	// .npy files are read whatever their name.
	if len(rep.Results) != 2 || rep.Results[0].Tensor != "act" || rep.Results[0].Amax != 2 || rep.Results[1].Tensor != "free" {
		t.Errorf("--tensor act: %+v", rep.Results)
	}
	for _, c := range []struct {
		path, only, want string
	}{
		{st, "missing", `no tensor named "missing"`},
		{st, "labels", `tensor "labels" is I64, not a float tensor`},
		{ints, "", "no float tensors"},
	} {
		if _, err := run(t, Options{Paths: []string{c.path}, Tensor: c.only}); err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, inputerr.ErrInput) {
			t.Errorf("%s, tensor %q: %v, want %q", c.path, c.only, err, c.want)
		}
	}
}

const goodHist = `{"bins":8,"width":1,"max":1.5,"counts":[2,3],"non_finite":0}`

func TestBadHistogramFiles(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ name, data, want string }{
		{"dup.hist.json", `{"act": ` + goodHist + `, "act": ` + goodHist + `}`, `tensor "act" appears twice`},
		{"empty.hist.json", `{}`, "no histograms"},
		{"array.hist.json", `[]`, "not a JSON object"},
		{"negative.hist.json", `{"act": {"bins":8,"width":1,"max":1.5,"counts":[2,-3],"non_finite":0}}`, `tensor "act": count -3`},
		{"type.hist.json", `{"act": {"bins":8,"width":"1","max":1.5,"counts":[2,3],"non_finite":0}}`, `tensor "act": "width"`},
		{"null.hist.json", `{"act": null}`, `tensor "act"`},
		{"missing.hist.json", `{"act": {"bins":8,"width":1,"max":1.5,"non_finite":0}}`, `tensor "act": missing "counts"`},
		{"trailing.hist.json", `{"act": ` + goodHist + `} {}`, "data after"},
		{"phantom.hist.json", `{"act": {"bins":8,"width":1,"max":5,"counts":[2,3,0,0,0,0],"non_finite":0}}`, `tensor "act": max 5`},
	} {
		p := writeFile(t, dir, c.name, []byte(c.data))
		_, err := run(t, Options{Paths: []string{p}})
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), c.want) || !errors.Is(err, inputerr.ErrInput) {
			t.Errorf("%s: %v, want a bad-input error naming the file and saying %q", c.name, err, c.want)
		}
	}
	good := writeFile(t, dir, "good.hist.json", []byte(`{"act": `+goodHist+`}`))
	if _, err := run(t, Options{Paths: []string{good}, Tensor: "other"}); err == nil || !strings.Contains(err.Error(), `no tensor named "other"`) {
		t.Errorf("Tensor other of a file without it: %v", err)
	}
	if rep, err := run(t, Options{Paths: []string{good}, Methods: []string{"max"}}); err != nil || rep.Results[0].Amax != 1.5 || rep.Results[0].Values != 5 {
		t.Errorf("good file: %v %+v", err, rep)
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	nan := float32(math.NaN())
	nanFile := writeNPY(t, filepath.Join(dir, "nan.npy"), []float32{nan, nan, float32(math.Inf(1))}, 3)
	header := func(dict string) []byte {
		h := []byte("\x93NUMPY\x01\x00")
		dict += strings.Repeat(" ", (64-(10+len(dict)+1)%64)%64) + "\n"
		h = append(h, byte(len(dict)), byte(len(dict)>>8))
		return append(h, dict...)
	}
	f4 := "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }"
	for _, c := range []struct{ path, want string }{
		{filepath.Join(dir, "nope.npy"), "nope.npy"},
		{writeFile(t, dir, "magic.npy", []byte("PK\x03\x04 this is a zip")), "magic"},
		{writeFile(t, dir, "trunc.npy", header(f4)[:30]), "trunc.npy"},
		{writeFile(t, dir, "short.npy", append(header(f4), 0, 0, 0, 0)), "short.npy"},
		{writeFile(t, dir, "fortran.npy", append(header("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }"), 0, 0, 0, 0)), "ortran"},
		{writeFile(t, dir, "object.npy", append(header("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"), make([]byte, 8)...)), "object"},
		{writeFile(t, dir, "complex.npy", append(header("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }"), make([]byte, 8)...)), "c8"},
		{nanFile, `tensor "nan" has no finite values`},
		{writeFile(t, dir, "acts.txt", []byte("1 2 3")), "unknown format"},
		{filepath.Join(dir, "gone.txt"), "gone.txt"},
		{writeFile(t, dir, "bad.safetensors", []byte{200, 0, 0, 0, 0, 0, 0, 0, '{'}), "bad.safetensors"},
	} {
		_, err := run(t, Options{Paths: []string{c.path}})
		if err == nil || !strings.Contains(err.Error(), filepath.Base(c.path)) || !strings.Contains(err.Error(), c.want) || !errors.Is(err, inputerr.ErrInput) {
			t.Errorf("%s: %v, want a bad-input error naming the file and saying %q", c.path, err, c.want)
		}
	}
	if _, err := run(t, Options{}); err == nil || !errors.Is(err, inputerr.ErrInput) {
		t.Errorf("no inputs: %v", err)
	}
}

func TestOptionErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.npy") // never read: options come first
	for _, c := range []struct {
		opt    Options
		option string
	}{
		{Options{Methods: []string{"bogus"}}, "method"},
		{Options{Methods: []string{"max", "all"}}, "method"},
		{Options{Bits: 6}, "bits"},
		{Options{Bits: -8}, "bits"},
		{Options{Percentile: -5}, "percentile"},
		{Options{Percentile: 100.5}, "percentile"},
		{Options{Percentile: math.NaN()}, "percentile"},
		{Options{Bins: -1}, "bins"},
	} {
		c.opt.Paths = []string{missing}
		_, err := run(t, c.opt)
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Option != c.option || !errors.Is(err, inputerr.ErrInput) || strings.Contains(err.Error(), "missing.npy") {
			t.Errorf("%+v: %v, want an error in option %s", c.opt, err, c.option)
		}
	}
	if _, err := Run(context.Background(), Options{Paths: []string{missing}}); err == nil || errors.Is(err, inputerr.ErrInput) {
		t.Errorf("no backend: %v", err)
	}
}

func TestNonFinite(t *testing.T) {
	dir := t.TempDir()
	x := gaussian(1000, 1)
	x[3], x[10], x[20] = float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))
	p := writeNPY(t, filepath.Join(dir, "act.npy"), x, 1000)
	clean := writeNPY(t, filepath.Join(dir, "clean.npy"), gaussian(100, 2), 100)
	rep, err := run(t, Options{Paths: []string{p, clean}, Methods: []string{"max"}})
	if err != nil {
		t.Fatal(err)
	}
	var finite []float32
	for _, v := range x {
		if !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) {
			finite = append(finite, v)
		}
	}
	a, c := rep.Tensors[0], rep.Tensors[1]
	if a.Name != "act" || a.Values != int64(len(finite)) || a.NonFinite != 3 || c.Name != "clean" || c.NonFinite != 0 || c.Values != 100 {
		t.Errorf("tensors %+v", rep.Tensors)
	}
	if r := rep.Results[0]; r.NonFinite != 3 || r.Amax != reference(t, "max", 8, finite) {
		t.Errorf("result %+v", r)
	}
}

// float64Overflows against the loop it stands for, on random values and
// the special ones, in both byte orders.
func TestFloat64OverflowsMatchesLoop(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	specials := []float64{0, math.MaxFloat32, -math.MaxFloat32, math.Nextafter(math.MaxFloat32, math.Inf(1)), 3.4028235677973366e38, 1e39, -1e300,
		math.MaxFloat64, math.Inf(1), math.Inf(-1), math.NaN(), math.SmallestNonzeroFloat64}
	for _, n := range []int{0, 1, 7, 1000} {
		d := make([]float64, n)
		for i := range d {
			if rng.IntN(3) == 0 {
				d[i] = specials[rng.IntN(len(specials))]
			} else {
				d[i] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(80)))
			}
		}
		x := make([]float32, n)
		want := int64(0)
		for i, v := range d {
			x[i] = float32(v)
			if !math.IsInf(v, 0) && !math.IsNaN(v) && math.IsInf(float64(x[i]), 0) {
				want++
			}
		}
		for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
			if got := float64Overflows(f64Bytes(d, order), order, x); got != want {
				t.Errorf("n %d, %v: %d overflows, want %d", n, order, got, want)
			}
		}
	}
}

func TestFloat64OverflowWarnings(t *testing.T) {
	dir := t.TempDir()
	x := []float64{1, -2, 1e300, -1e39, math.Inf(1), math.NaN(), 3e38, 0.5}
	wide := writeFile(t, dir, "wide.npy", npyF64(t, x, binary.LittleEndian))
	big := writeFile(t, dir, "big.npy", npyF64(t, x, binary.BigEndian))
	st := filepath.Join(dir, "acts.safetensors")
	if err := safetensors.WriteFile(st, []safetensors.Tensor{
		{Name: "f64", DType: "F64", Shape: []int{len(x)}, Data: f64Bytes(x, binary.LittleEndian)},
		{Name: "fine", DType: "F64", Shape: []int{3}, Data: f64Bytes([]float64{1, 2, math.Inf(-1)}, binary.LittleEndian)},
	}, nil); err != nil {
		t.Fatal(err)
	}
	var warnings []string
	rep, err := run(t, Options{Paths: []string{wide, big, st}, Methods: []string{"max"}, Warn: func(msg string) { warnings = append(warnings, msg) }})
	if err != nil {
		t.Fatal(err)
	}
	// 1, -2, 3e38 and 0.5 are finite; 1e300, -1e39 (overflows), +Inf and
	// NaN are not.
	for _, a := range rep.Tensors {
		want := Tensor{Name: a.Name, Files: a.Files, Values: 4, NonFinite: 4, Float64Overflow: 2, Histogram: a.Histogram}
		if a.Name == "fine" {
			want.Values, want.NonFinite, want.Float64Overflow = 2, 1, 0
		}
		if fmt.Sprint(a) != fmt.Sprint(want) {
			t.Errorf("%+v, want %+v", a, want)
		}
	}
	if len(warnings) != 3 {
		t.Fatalf("%d warnings, want one per tensor with overflows (big, f64, wide):\n%s", len(warnings), strings.Join(warnings, "\n"))
	}
	for i, name := range []string{"big", "f64", "wide"} {
		if w := warnings[i]; !strings.HasPrefix(w, fmt.Sprintf("tensor %q", name)) || !strings.Contains(w, "2 finite float64 values") {
			t.Errorf("warning %q should name %s and count 2 values", w, name)
		}
	}
}

func TestTRTNames(t *testing.T) {
	dir := t.TempDir()
	x := gaussian(100, 1)
	st := filepath.Join(dir, "acts.safetensors")
	if err := safetensors.WriteFile(st, []safetensors.Tensor{
		{Name: "ok", DType: "F32", Shape: []int{100}, Data: f32Bytes(x)},
		{Name: "evil\nother: 3f800000", DType: "F32", Shape: []int{100}, Data: f32Bytes(x)},
	}, nil); err != nil {
		t.Fatal(err)
	}
	colon := writeNPY(t, filepath.Join(dir, "conv:0.npy"), x, 100)
	space := writeNPY(t, filepath.Join(dir, " pad.npy"), x, 100)
	// A corrupt file first: the names are checked before any file is read.
	corrupt := writeFile(t, dir, "corrupt.npy", []byte("not npy"))
	hist := writeFile(t, dir, "h.hist.json", []byte(`{"a\rb": `+goodHist+`}`))
	for _, c := range []struct {
		paths []string
		only  string
		name  string
	}{
		{[]string{corrupt, st}, "", "evil\nother: 3f800000"},
		{[]string{corrupt, colon}, "", "conv:0"},
		{[]string{corrupt, space}, "", " pad"},
		{[]string{hist}, "", "a\rb"},
		{[]string{corrupt}, "x: y", "x: y"},
		{[]string{corrupt}, "bad\xff", "bad\xff"},
	} {
		_, err := run(t, Options{Paths: c.paths, Tensor: c.only, TRTNames: true})
		var ne *NameError
		if !errors.As(err, &ne) || ne.Name != c.name || !errors.Is(err, inputerr.ErrInput) {
			t.Errorf("%q: %v, want a NameError for %q", c.paths, err, c.name)
		}
	}
	// Without TRTNames such names are fine.
	if _, err := run(t, Options{Paths: []string{st, colon, space}, Methods: []string{"max"}}); err != nil {
		t.Errorf("without TRTNames: %v", err)
	}
	for _, name := range []string{"ok", "conv.0/out", "ünïcode", "a b"} {
		if err := TRTNameError(name); err != nil {
			t.Errorf("%q refused: %v", name, err)
		}
	}
}

// counting is the CPU backend with little free memory, so that samples go
// in chunks, which counts what it allocates and frees.
type counting struct {
	*cpu.Backend
	free          uint64
	allocs, frees int
}

func (b *counting) MemInfo() (free, total uint64, err error) { return b.free, b.free, nil }

func (b *counting) Alloc(dt backend.DType, n int) (backend.Buffer, error) {
	b.allocs++
	return b.Backend.Alloc(dt, n)
}

func (b *counting) Free(buf backend.Buffer) error {
	b.frees++
	return b.Backend.Free(buf)
}

// Samples larger than the device's free memory go in chunks, each one
// batch: the histogram is quant's of the chunks added in turn.
func TestChunks(t *testing.T) {
	x := gaussian(10_000, 5)
	x[9_000] = 20 // a later chunk grows the histogram
	p := writeNPY(t, filepath.Join(t.TempDir(), "act.npy"), x, 10_000)
	b := &counting{Backend: cpu.New(), free: 8 * 1000} // 1000 values a chunk
	rep, err := Run(context.Background(), Options{Paths: []string{p}, Methods: []string{"entropy"}, Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	ref, one := quant.NewHistogram(quant.DefaultBins), quant.NewHistogram(quant.DefaultBins)
	for i := 0; i < len(x); i += 1000 {
		ref.Add(x[i : i+1000])
	}
	one.Add(x)
	if one.Width() == ref.Width() {
		t.Fatal("the test cannot tell chunks from one batch")
	}
	h := rep.Tensors[0].Histogram
	if h.Width() != ref.Width() || !slices.Equal(h.Counts(), ref.Counts()) || h.Max() != 20 || rep.Results[0].Values != 10_000 {
		t.Errorf("histogram of width %g, %d bins, max %g; want quant's of the chunks: width %g, %d bins", h.Width(), h.Bins(), h.Max(), ref.Width(), ref.Bins())
	}
	if b.allocs != 10 || b.frees != 10 {
		t.Errorf("%d allocations, %d frees; want 10 of each", b.allocs, b.frees)
	}
}

func TestCancelled(t *testing.T) {
	p := writeNPY(t, filepath.Join(t.TempDir(), "act.npy"), gaussian(100, 1), 100)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, Options{Paths: []string{p}, Backend: cpu.New()}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// Each search reports its method and tensor, from 0 to its total; max and
// percentile do not search.
func TestProgress(t *testing.T) {
	dir := t.TempDir()
	a := writeNPY(t, filepath.Join(dir, "a.npy"), gaussian(5000, 1), 5000)
	b := writeNPY(t, filepath.Join(dir, "b.npy"), gaussian(5000, 2), 5000)
	type call struct {
		what        string
		done, total int
	}
	var calls []call
	_, err := run(t, Options{Paths: []string{b, a}, Methods: quant.CalibratorNames(), Progress: func(done, total int, what string) {
		calls = append(calls, call{what, done, total})
	}})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for i, c := range calls {
		if i == 0 || calls[i-1].what != c.what {
			order = append(order, c.what)
			if c.done != 0 {
				t.Errorf("%s starts at %d", c.what, c.done)
			}
		}
		if i == len(calls)-1 || calls[i+1].what != c.what {
			if c.done != c.total || c.total <= 0 {
				t.Errorf("%s ends at %d of %d", c.what, c.done, c.total)
			}
		}
	}
	if want := []string{"entropy threshold of a", "mse threshold of a", "entropy threshold of b", "mse threshold of b"}; !slices.Equal(order, want) {
		t.Errorf("searches %q, want %q", order, want)
	}
}

func TestWriteTable(t *testing.T) {
	rep := &Report{Methods: []string{"max"}, Results: []Result{
		{Tensor: "a", Method: "max", Amax: 2, Scale: 2.0 / 127, Values: 10},
		{Tensor: "bb", Method: "max", Amax: 0.5, Scale: 0.5 / 127, Values: 7},
	}}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	want := "tensor  values  method  amax  scale\n" +
		"a       10      max     2     0.015748\n" +
		"bb      7       max     0.5   0.00393701\n"
	if buf.String() != want {
		t.Errorf("one method:\n%s\nwant:\n%s", buf.String(), want)
	}
	// Several methods side by side; a non-finite column when any.
	rep = &Report{Methods: []string{"max", "mse"}, Results: []Result{
		{Tensor: "a", Method: "max", Amax: 2, Scale: 2.0 / 127, Values: 10, NonFinite: 3},
		{Tensor: "a", Method: "mse", Amax: 1, Scale: 1.0 / 127, Values: 10, NonFinite: 3},
	}}
	buf.Reset()
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	want = "tensor  values  non-finite  max amax (scale)  mse amax (scale)\n" +
		"a       10      3           2 (0.01575)       1 (0.007874)\n"
	if buf.String() != want {
		t.Errorf("two methods:\n%s\nwant:\n%s", buf.String(), want)
	}
}

// Only a name Run reads histograms from passes.
func TestCheckHistogramPath(t *testing.T) {
	if err := CheckHistogramPath("dir/act.hist.json"); err != nil {
		t.Errorf("act.hist.json: %v", err)
	}
	for _, p := range []string{"act.json", "act.hist.JSON", "act.hist.json.bak", ""} {
		if err := CheckHistogramPath(p); !errors.Is(err, inputerr.ErrInput) || !strings.Contains(err.Error(), HistogramSuffix) {
			t.Errorf("%q: %v, want bad input naming %s", p, err, HistogramSuffix)
		}
	}
}
