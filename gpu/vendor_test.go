//go:build cuda

package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/bench"
	"github.com/quantkit/quantkit/internal/half"
)

// TestVendorGemms runs every cuBLAS and cuBLASLt GEMM the device has on
// quantkit's layout and checks it against a float64 loop on the host: INT8
// exactly; the float kinds by relative Frobenius error within
// bench.VendorTolerance, the reference taking the inputs as the kind reads
// them (rounded to bfloat16 or float16 first; TF32's rounding is inside
// the library, so its reference has the float32 inputs).
func TestVendorGemms(t *testing.T) {
	b := openTest(t)
	kinds, note := b.VendorGemms()
	if note != "" {
		t.Logf("vendor libraries: %s", note)
	}
	if len(kinds) == 0 {
		t.Skipf("no cuBLAS on this machine: %s", note)
	}
	rnd := rand.New(rand.NewPCG(3, 3))
	for _, kind := range kinds {
		t.Logf("%s: %s", kind.Name, kind.Describe)
		sizes := [][3]int{{4, 8, 4}, {36, 20, 68}, {130, 132, 256}}
		if kind.Precision != "int8" {
			sizes = append(sizes, [3]int{3, 5, 7}, [3]int{1, 1, 1})
		}
		for _, s := range sizes {
			m, n, k := s[0], s[1], s[2]
			t.Run(fmt.Sprintf("%s/%dx%dx%d", kind.Name, m, n, k), func(t *testing.T) {
				if kind.Precision == "int8" {
					checkVendorS8(t, b, kind, rnd, m, n, k)
				} else {
					checkVendorF32(t, b, kind, rnd, m, n, k)
				}
			})
		}
	}
}

func checkVendorS8(t *testing.T, b *Backend, kind backend.VendorGemmKind, rnd *rand.Rand, m, n, k int) {
	a, bt := randS8(rnd, m*k), randS8(rnd, n*k)
	want := make([]int32, m*n)
	for i := range m {
		for j := range n {
			var s int32
			for p := range k {
				s += int32(a[i*k+p]) * int32(bt[j*k+p])
			}
			want[i*n+j] = s
		}
	}
	got := runVendor[int32](t, b, kind, m, n, k, mustUpload(t, b, a), mustUpload(t, b, bt))
	if ag := bench.CompareS32(got, want, "a host loop"); !ag.OK {
		t.Errorf("%d of %d values differ, largest by %g", ag.Mismatches, len(want), ag.MaxAbsError)
	}
}

func checkVendorF32(t *testing.T, b *Backend, kind backend.VendorGemmKind, rnd *rand.Rand, m, n, k int) {
	a, bt := make([]float32, m*k), make([]float32, n*k)
	for i := range a {
		a[i] = float32(rnd.NormFloat64())
	}
	for i := range bt {
		bt[i] = float32(rnd.NormFloat64())
	}
	read := func(v float32) float64 {
		switch kind.Precision {
		case "bf16":
			return float64(half.BFloat16ToFloat32(half.Float32ToBFloat16(v)))
		case "fp16":
			return float64(half.Float16ToFloat32(half.Float32ToFloat16(v)))
		}
		return float64(v)
	}
	want := make([]float32, m*n)
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				s += read(a[i*k+p]) * read(bt[j*k+p])
			}
			want[i*n+j] = float32(s)
		}
	}
	got := runVendor[float32](t, b, kind, m, n, k, mustUpload(t, b, a), mustUpload(t, b, bt))
	// With the inputs rounded as the library reads them, only float32
	// accumulation differs from the reference, except for TF32.
	tol := bench.VendorTolerance["fp32"]
	if kind.Precision == "tf32" {
		tol = bench.VendorTolerance["tf32"]
	}
	if ag := bench.CompareF32(got, want, "a float64 host loop", tol); !ag.OK {
		t.Errorf("relative error %.3g (tolerance %.3g), largest %.3g, %d non-finite", ag.RelError, tol, ag.MaxAbsError, ag.NonFinite)
	}
}

func runVendor[T float32 | int32](t *testing.T, b *Backend, kind backend.VendorGemmKind, m, n, k int, a, bt backend.Buffer) []T {
	t.Helper()
	c := mustUpload(t, b, make([]T, m*n))
	g, err := b.PrepareVendorGemm(kind.Name, m, n, k, a, bt, c)
	if err != nil {
		t.Fatalf("PrepareVendorGemm: %v", err)
	}
	defer g.Close()
	// Twice: the second call must give the same (beta is 0, C overwritten).
	for range 2 {
		if err := g.Run(); err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
	return mustDownload[T](t, b, c)
}

// TestVendorGemmRefusals: INT8 sizes cuBLASLt's IMMA kernels refuse, wrong
// buffer types and unknown kinds are errors, never crashes.
func TestVendorGemmRefusals(t *testing.T) {
	b := openTest(t)
	kinds, _ := b.VendorGemms()
	if len(kinds) == 0 {
		t.Skip("no cuBLAS on this machine")
	}
	a8, b8 := mustUpload(t, b, make([]int8, 4*6)), mustUpload(t, b, make([]int8, 4*6))
	c32 := mustUpload(t, b, make([]int32, 4*4))
	for _, kind := range kinds {
		if kind.Precision != "int8" {
			continue
		}
		if _, err := b.PrepareVendorGemm(kind.Name, 4, 4, 6, a8, b8, c32); err == nil || !strings.Contains(err.Error(), "multiples of 4") {
			t.Errorf("%s with k = 6: %v", kind.Name, err)
		}
		f := mustUpload(t, b, make([]float32, 16))
		if _, err := b.PrepareVendorGemm(kind.Name, 4, 4, 4, f, f, c32); err == nil {
			t.Errorf("%s on float32 inputs: no error", kind.Name)
		}
	}
	if _, err := b.PrepareVendorGemm("cublas-dgemm", 4, 4, 4, a8, b8, c32); err == nil {
		t.Error("unknown kind: no error")
	}
}

func TestCopyDevice(t *testing.T) {
	b := openTest(t)
	src := []float32{1, 2, 3, float32(math.NaN()), -0}
	x, y := mustUpload(t, b, src), mustUpload(t, b, make([]float32, len(src)))
	if err := b.CopyDevice(y, x); err != nil {
		t.Fatal(err)
	}
	got := mustDownload[float32](t, b, y)
	for i := range src {
		if math.Float32bits(got[i]) != math.Float32bits(src[i]) {
			t.Errorf("copy[%d] = %v, want %v", i, got[i], src[i])
		}
	}
	if err := b.CopyDevice(y.Slice(0, 2), x); err == nil {
		t.Error("a copy into a shorter buffer: no error")
	}
}
