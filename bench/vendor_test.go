package bench

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/internal/half"
)

// vendorFake is the CPU backend with fake vendor GEMMs: an FP32 one (the
// CPU's own GEMM), a BF16 one (inputs rounded to bfloat16 first, as
// cuBLAS reads them), an INT8 one (exact), an INT8 one that gets one value
// wrong, and an FP16 one whose preparation fails; and a device copy.
type vendorFake struct {
	*cpu.Backend
	note string
	none bool
}

var fakeKinds = []backend.VendorGemmKind{
	{Name: "sgemm", Impl: "cublas", Precision: "fp32", Describe: "fake sgemm"},
	{Name: "bf16", Impl: "cublas", Precision: "bf16", Describe: "fake bf16"},
	{Name: "fp16", Impl: "cublas", Precision: "fp16", Describe: "fake fp16"},
	{Name: "lt-int8", Impl: "cublaslt", Precision: "int8", Describe: "fake lt"},
	{Name: "bad-int8", Impl: "cublas", Precision: "int8", Describe: "fake bad"},
}

func (f *vendorFake) VendorGemms() ([]backend.VendorGemmKind, string) {
	if f.none {
		return nil, f.note
	}
	return fakeKinds, f.note
}

type fakeGemm struct {
	run  func() error
	free []backend.Buffer
	b    backend.Backend
}

func (g *fakeGemm) Run() error { return g.run() }
func (g *fakeGemm) Close() error {
	for _, x := range g.free {
		g.b.Free(x)
	}
	return nil
}

func (f *vendorFake) PrepareVendorGemm(kind string, m, n, k int, a, bt, c backend.Buffer) (backend.VendorGemm, error) {
	i := slices.IndexFunc(fakeKinds, func(x backend.VendorGemmKind) bool { return x.Name == kind })
	if i < 0 {
		return nil, errors.New("unknown kind " + kind)
	}
	if err := backend.CheckVendorGemm(fakeKinds[i], m, n, k, a, bt, c); err != nil {
		return nil, err
	}
	b := f.Backend
	g := &fakeGemm{b: b}
	switch kind {
	case "sgemm":
		g.run = func() error { return b.GemmF32(m, n, k, a, bt, c) }
	case "bf16":
		var ops [2]backend.Buffer
		for j, x := range []backend.Buffer{a, bt} {
			h := make([]float32, x.Len())
			b.Download(h, x)
			for i, v := range h {
				h[i] = half.BFloat16ToFloat32(half.Float32ToBFloat16(v))
			}
			ops[j], _ = b.Alloc(backend.F32, x.Len())
			b.Upload(ops[j], h)
			g.free = append(g.free, ops[j])
		}
		g.run = func() error { return b.GemmF32(m, n, k, ops[0], ops[1], c) }
	case "fp16":
		return nil, errors.New("CUBLAS_STATUS_NOT_SUPPORTED")
	case "lt-int8":
		g.run = func() error { return b.GemmS8(m, n, k, a, bt, c, nil) }
	case "bad-int8":
		g.run = func() error {
			if err := b.GemmS8(m, n, k, a, bt, c, nil); err != nil {
				return err
			}
			h := make([]int32, c.Len())
			b.Download(h, c)
			h[len(h)/2] += 3
			return b.Upload(c, h)
		}
	}
	return g, nil
}

func (f *vendorFake) CopyDevice(dst, src backend.Buffer) error {
	h := make([]float32, src.Len())
	if err := f.Download(h, src); err != nil {
		return err
	}
	return f.Upload(dst, h)
}

func TestVendorRows(t *testing.T) {
	f := &vendorFake{Backend: cpu.New(), note: "cuBLASLt not found (tried libcublasLt.so.13)"}
	o := Options{Suites: []string{"gemm"}, Sizes: []int{8, 12}, DTypes: GemmDTypes, Vendor: true, Timing: quick}
	// Per size: 2 of quantkit and the 5 fake kinds.
	if n := o.CasesOn(f); n != 2*7 {
		t.Fatalf("CasesOn %d, want 14", n)
	}
	if n := o.Cases(); n != 2*2 {
		t.Fatalf("Cases without a backend %d, want 4", n)
	}
	var done []int
	o.Progress = func(d, total int, _ string) {
		if total != 14 {
			t.Errorf("progress total %d, want 14", total)
		}
		done = append(done, d)
	}
	rep, err := Run(context.Background(), f, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 14 || done[13] != 13 {
		t.Errorf("progress went %v", done)
	}
	if rep.VendorNote != f.note {
		t.Errorf("VendorNote %q, want %q", rep.VendorNote, f.note)
	}
	if len(rep.Results) != 14 {
		t.Fatalf("%d results, want 14", len(rep.Results))
	}
	for _, n := range o.Sizes {
		rows := map[string]Result{}
		for _, r := range rep.Results {
			if r.M == n {
				rows[r.Impl+" "+r.DType+" "+r.Describe] = r
			}
		}
		q32, q8 := rows["quantkit fp32 "], rows["quantkit int8 "]
		sg, bf, fp16 := rows["cublas fp32 fake sgemm"], rows["cublas bf16 fake bf16"], rows["cublas fp16 fake fp16"]
		lt, bad := rows["cublaslt int8 fake lt"], rows["cublas int8 fake bad"]
		// The same GEMM as quantkit's: equal results.
		if a := sg.Agreement; a == nil || !a.OK || a.RelError != 0 || a.Against != "quantkit fp32" || a.Tolerance != VendorTolerance["fp32"] {
			t.Errorf("%d: sgemm agreement %+v", n, a)
		}
		// BF16 inputs: a real rounding error, within the stated tolerance.
		if a := bf.Agreement; a == nil || !a.OK || !(a.RelError > 1e-4 && a.RelError < VendorTolerance["bf16"]) || a.Exact {
			t.Errorf("%d: bf16 agreement %+v", n, a)
		}
		if fp16.Error != "CUBLAS_STATUS_NOT_SUPPORTED" || fp16.Agreement != nil || fp16.OpsPerSecond != 0 || fp16.VsVendor != 0 {
			t.Errorf("%d: refused fp16 row %+v", n, fp16)
		}
		if a := lt.Agreement; a == nil || !a.OK || !a.Exact || a.Mismatches != 0 || a.Against != "quantkit int8" {
			t.Errorf("%d: lt agreement %+v", n, a)
		}
		if a := bad.Agreement; a == nil || a.OK || a.Mismatches != 1 || a.MaxAbsError != 3 {
			t.Errorf("%d: bad int8 agreement %+v", n, a)
		}
		// Ratios to the best vendor rate of the same precision.
		best8 := max(lt.OpsPerSecond, bad.OpsPerSecond)
		for _, c := range []struct {
			r    Result
			want float64
		}{{q32, q32.OpsPerSecond / sg.OpsPerSecond}, {sg, 1}, {bf, 1}, {q8, q8.OpsPerSecond / best8},
			{lt, lt.OpsPerSecond / best8}, {bad, bad.OpsPerSecond / best8}} {
			if math.Abs(c.r.VsVendor-c.want) > 1e-12 {
				t.Errorf("%d: %s %s VsVendor %g, want %g", n, c.r.Impl, c.r.DType, c.r.VsVendor, c.want)
			}
		}
		if q8.SpeedupOverFP32 <= 0 || lt.SpeedupOverFP32 != 0 {
			t.Errorf("%d: INT8/FP32 on quantkit %g, on the vendor %g", n, q8.SpeedupOverFP32, lt.SpeedupOverFP32)
		}
	}

	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"vs vendor", "cublaslt int8: fake lt", "MISMATCH: 1 values differ, largest by 3",
		"cublas fp16 8×8×8 failed: CUBLAS_STATUS_NOT_SUPPORTED", "against quantkit fp32: relative error",
		"vendor libraries: cuBLASLt not found (tried libcublasLt.so.13)"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.VendorNote != rep.VendorNote ||
		back.Results[1].Agreement == nil || back.Results[1].Describe != "fake sgemm" {
		t.Errorf("JSON round trip: %v, %+v", err, back.Results[1])
	}
	var c bytes.Buffer
	if err := rep.WriteCSV(&c); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&c).ReadAll()
	if err != nil || len(recs) != 15 {
		t.Fatalf("CSV: %d records, %v", len(recs), err)
	}
	for _, r := range recs {
		if len(r) != len(CSVHeader) {
			t.Fatalf("CSV row of %d columns, header %d", len(r), len(CSVHeader))
		}
	}
	// The plot has a line per implementation and precision that ran.
	svg := filepath.Join(t.TempDir(), "r.svg")
	if err := rep.Plot(svg); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(svg)
	for _, name := range []string{"cublaslt int8", "cublas bf16", "quantkit fp32"} {
		if !bytes.Contains(data, []byte(name)) {
			t.Errorf("plot has no line %q", name)
		}
	}
	if bytes.Contains(data, []byte("cublas fp16")) {
		t.Error("plot has a line for the GEMM that failed")
	}
	col := func(name string) int { return slices.Index(CSVHeader, name) }
	if recs[2][col("agreement_against")] != "quantkit fp32" || recs[4][col("error")] != "CUBLAS_STATUS_NOT_SUPPORTED" {
		t.Errorf("CSV rows %v / %v", recs[2], recs[4])
	}
}

// Without Vendor, or with a backend that has no vendor GEMMs, no vendor
// rows; a backend whose libraries are missing says so.
func TestVendorMissing(t *testing.T) {
	o := Options{Suites: []string{"gemm"}, Sizes: []int{8}, DTypes: GemmDTypes, Timing: quick}
	f := &vendorFake{Backend: cpu.New()}
	rep, err := Run(context.Background(), f, o)
	if err != nil || len(rep.Results) != 2 || rep.VendorNote != "" {
		t.Fatalf("Vendor off: %v, %d results, note %q", err, len(rep.Results), rep.VendorNote)
	}
	o.Vendor = true
	f = &vendorFake{Backend: cpu.New(), none: true, note: "cuBLAS not found (tried libcublas.so.13, libcublas.so); cuBLASLt not found (tried libcublasLt.so.13)"}
	rep, err = Run(context.Background(), f, o)
	if err != nil || len(rep.Results) != 2 || rep.VendorNote != f.note {
		t.Fatalf("no libraries: %v, %d results, note %q", err, len(rep.Results), rep.VendorNote)
	}
	var table bytes.Buffer
	rep.WriteTable(&table)
	if !strings.Contains(table.String(), "vendor libraries: cuBLAS not found (tried libcublas.so.13") || strings.Contains(table.String(), "vs vendor") {
		t.Errorf("table:\n%s", table.String())
	}
	rep, err = Run(context.Background(), cpu.New(), o)
	if err != nil || len(rep.Results) != 2 || rep.VendorNote != "" {
		t.Fatalf("CPU backend: %v, %d results, note %q", err, len(rep.Results), rep.VendorNote)
	}
}

// The device copy is measured once per size, by the first memory-bound
// suite, and every memory-bound kernel is related to it.
func TestCopyRows(t *testing.T) {
	f := &vendorFake{Backend: cpu.New()}
	o := Options{Suites: []string{"gemm", "quantize", "histogram"}, Sizes: []int{8}, Elements: []int{300, 1000},
		DTypes: []string{"int8"}, Vendor: true, Timing: quick}
	// gemm: quantkit int8 and the two int8 kinds; memory: (1 copy + 3 + 2) per size.
	if n := o.CasesOn(f); n != 3+2*6 {
		t.Fatalf("CasesOn %d, want 15", n)
	}
	rep, err := Run(context.Background(), f, o)
	if err != nil {
		t.Fatal(err)
	}
	copies := map[int]float64{}
	for _, r := range rep.Results {
		if r.Op == CopyOp {
			if _, dup := copies[r.Elements]; dup || r.Impl != "device" || r.BytesPerSecond <= 0 {
				t.Errorf("copy row %+v", r)
			}
			copies[r.Elements] = r.BytesPerSecond
		}
	}
	if len(copies) != 2 {
		t.Fatalf("copy rows for %v, want 300 and 1000", copies)
	}
	for _, r := range rep.Results {
		switch {
		case r.Op == "gemm" && r.VsCopy != 0, r.Op == CopyOp && r.VsCopy != 0:
			t.Errorf("%s row with VsCopy %g", r.Op, r.VsCopy)
		case r.Elements > 0 && r.Op != CopyOp && math.Abs(r.VsCopy-r.BytesPerSecond/copies[r.Elements]) > 1e-12:
			t.Errorf("%s %d: VsCopy %g, want %g", r.Op, r.Elements, r.VsCopy, r.BytesPerSecond/copies[r.Elements])
		}
	}
	o.Vendor = false
	if n := o.CasesOn(f); n != 1+2*5 {
		t.Errorf("Vendor off: CasesOn %d, want 11", n)
	}
}

// allocFails is the CPU backend whose allocations fail after the first
// few, as a GPU's do when out of memory.
type allocFails struct {
	*cpu.Backend
	left int
}

func (a *allocFails) Alloc(dt backend.DType, n int) (backend.Buffer, error) {
	if a.left == 0 {
		return nil, errors.New("out of memory")
	}
	a.left--
	return a.Backend.Alloc(dt, n)
}

// A failed allocation is an error that says so, never a panic, whichever
// allocation fails.
func TestAllocFailure(t *testing.T) {
	for left := range 4 {
		o := Options{Suites: []string{"gemm", "histogram"}, Sizes: []int{8}, Elements: []int{100}, DTypes: []string{"int8"}, Timing: quick}
		if left == 3 {
			o.Suites = []string{"histogram"}
		}
		_, err := Run(context.Background(), &allocFails{Backend: cpu.New(), left: left % 3}, o)
		if err == nil || !strings.Contains(err.Error(), "out of memory") {
			t.Errorf("allocation %d fails: %v", left, err)
		}
	}
}

func TestFormatRate(t *testing.T) {
	for _, c := range []struct {
		v     float64
		dtype string
		want  string
	}{{2.5e9, "fp32", "2.5 GFLOP/s"}, {999.94e9, "int8", "999.9 GOP/s"}, {1e12, "bf16", "1.0 TFLOP/s"}, {612.3e12, "int8", "612.3 TOP/s"}} {
		if got := formatRate(c.v, c.dtype); got != c.want {
			t.Errorf("formatRate(%g, %s) = %q, want %q", c.v, c.dtype, got, c.want)
		}
	}
}

func TestCompare(t *testing.T) {
	want := []float32{3, -4, 0}
	a := CompareF32([]float32{3, -4, 0}, want, "x", 0)
	if !a.OK || a.RelError != 0 || a.Mismatches != 0 {
		t.Errorf("equal: %+v", a)
	}
	a = CompareF32([]float32{3, -4, 0.5}, want, "x", 0.2)
	if !a.OK || math.Abs(a.RelError-0.1) > 1e-12 || a.MaxAbsError != 0.5 || a.Mismatches != 1 {
		t.Errorf("0.5 off a norm of 5: %+v", a)
	}
	if a := CompareF32([]float32{3, -4, 0.5}, want, "x", 0.05); a.OK {
		t.Errorf("relative error 0.1 passed a tolerance of 0.05: %+v", a)
	}
	a = CompareF32([]float32{float32(math.NaN()), -4, float32(math.Inf(1))}, want, "x", 1)
	if a.OK || a.NonFinite != 2 {
		t.Errorf("NaN and Inf: %+v", a)
	}
	if _, err := json.Marshal(a); err != nil {
		t.Errorf("a result with NaN does not encode: %v", err)
	}
	if a := CompareF32([]float32{1}, []float32{0}, "x", 0.5); a.OK || a.RelError != 1 {
		t.Errorf("against zeros: %+v", a)
	}
	if a := CompareS32([]int32{1, 2, 3}, []int32{1, 2, 3}, "y"); !a.OK || !a.Exact {
		t.Errorf("equal ints: %+v", a)
	}
	if a := CompareS32([]int32{1, 2, 4}, []int32{1, 2, 3}, "y"); a.OK || a.Mismatches != 1 || a.MaxAbsError != 1 {
		t.Errorf("one int off: %+v", a)
	}
}
