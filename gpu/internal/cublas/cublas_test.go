package cublas

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/half"
)

// colMajorGemm is the BLAS reference: D[M×N] = op(X)·op(Y) on column-major
// memory, element (i, j) of a column-major matrix with leading dimension
// ld at [i + j·ld].
func colMajorGemm(c Call, x, y []float64) []float64 {
	at := func(m []float64, ld int, trans Op, i, j int) float64 {
		if trans == OpT {
			i, j = j, i
		}
		return m[i+j*ld]
	}
	d := make([]float64, c.LdD*c.N)
	for i := 0; i < c.M; i++ {
		for j := 0; j < c.N; j++ {
			var s float64
			for p := 0; p < c.K; p++ {
				s += at(x, c.LdX, c.TransX, i, p) * at(y, c.LdY, c.TransY, p, j)
			}
			d[i+j*c.LdD] = s
		}
	}
	return d
}

// TestRowMajorABt runs the call on quantkit's row-major operands through
// the column-major reference and checks that C's memory holds A·Bᵀ.
func TestRowMajorABt(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, s := range [][3]int{{1, 1, 1}, {3, 5, 7}, {8, 4, 16}, {17, 9, 33}} {
		m, n, k := s[0], s[1], s[2]
		a, b := make([]float64, m*k), make([]float64, n*k)
		for i := range a {
			a[i] = float64(rng.IntN(19) - 9)
		}
		for i := range b {
			b[i] = float64(rng.IntN(19) - 9)
		}
		c := RowMajorABt(m, n, k)
		if !c.XIsB {
			t.Fatal("RowMajorABt: the first operand is not B")
		}
		got := colMajorGemm(c, b, a)
		for i := range m {
			for j := range n {
				var want float64
				for p := range k {
					want += a[i*k+p] * b[j*k+p]
				}
				if g := got[i*n+j]; g != want {
					t.Fatalf("%d×%d×%d: C[%d,%d] = %v, want %v", m, n, k, i, j, g, want)
				}
			}
		}
	}
}

func TestCheckIMMA(t *testing.T) {
	for _, tc := range []struct {
		m, n, k int
		ok      bool
	}{
		{4, 4, 4, true}, {3, 4, 4, true}, {1024, 1024, 1024, true},
		{4, 6, 4, false}, {4, 4, 6, false}, {4, 4, 0, false},
	} {
		err := RowMajorABt(tc.m, tc.n, tc.k).CheckIMMA()
		if (err == nil) != tc.ok {
			t.Errorf("%d×%d×%d: CheckIMMA = %v, want ok=%v", tc.m, tc.n, tc.k, err, tc.ok)
		}
	}
	if err := RowMajorABt(1<<31, 4, 4).Check(); err == nil {
		t.Error("m = 2³¹: Check accepted a size past cuBLAS's int")
	}
	c := RowMajorABt(4, 4, 4)
	c.TransX = OpN
	if c.CheckIMMA() == nil {
		t.Error("NN: CheckIMMA accepted a form the IMMA kernels refuse")
	}
}

func TestKinds(t *testing.T) {
	seen := map[string]bool{}
	precisions := map[string]bool{"fp32": true, "tf32": true, "bf16": true, "fp16": true, "int8": true}
	for _, k := range Kinds {
		if seen[k.Name] {
			t.Errorf("%s: listed twice", k.Name)
		}
		seen[k.Name] = true
		if !precisions[k.Precision] {
			t.Errorf("%s: precision %q", k.Name, k.Precision)
		}
		if (k.Impl == "cublaslt") != k.Lt() {
			t.Errorf("%s: impl %s but entry %v", k.Name, k.Impl, k.Entry)
		}
		if int8 := k.Precision == "int8"; int8 != (k.Input == R8I) || int8 != (k.Output == R32I) || int8 != (k.Compute == Compute32I) {
			t.Errorf("%s: int8 precision with input %v output %v compute %v", k.Name, k.Input, k.Output, k.Compute)
		}
		if d := k.Describe(); !strings.HasPrefix(d, k.Entry.String()) || strings.Contains(d, ", ,") {
			t.Errorf("%s: Describe = %q", k.Name, d)
		}
		if got, ok := KindNamed(k.Name); !ok || got != k {
			t.Errorf("KindNamed(%q) = %v, %v", k.Name, got, ok)
		}
	}
	if _, ok := KindNamed("cublas-dgemm"); ok {
		t.Error("KindNamed found a kind that is not listed")
	}
	if err := (Kind{Input: R8I}).CheckCall(4, 6, 4); err == nil {
		t.Error("an INT8 kind accepted n = 6")
	}
	if err := (Kind{Input: R16BF}).CheckCall(4, 6, 5); err != nil {
		t.Errorf("a BF16 kind refused 4×6×5: %v", err)
	}
}

func TestEncodeInput(t *testing.T) {
	x := []float32{1, -2.5, 1 + 1.0/512, 65504, 3e-8}
	bf, _ := KindNamed("cublas-gemmex-bf16")
	h, _ := KindNamed("cublas-gemmex-fp16")
	s, _ := KindNamed("cublas-sgemm")
	eb, eh := bf.EncodeInput(x), h.EncodeInput(x)
	for i, v := range x {
		if g, w := uint16(eb[2*i])|uint16(eb[2*i+1])<<8, half.Float32ToBFloat16(v); g != w {
			t.Errorf("bf16 of %v: %#04x, want %#04x", v, g, w)
		}
		if g, w := uint16(eh[2*i])|uint16(eh[2*i+1])<<8, half.Float32ToFloat16(v); g != w {
			t.Errorf("fp16 of %v: %#04x, want %#04x", v, g, w)
		}
	}
	if s.EncodeInput(x) != nil {
		t.Error("float32 input converted")
	}
}

func TestStatusAndNotFound(t *testing.T) {
	if got := Status(15).Error(); got != "CUBLAS_STATUS_NOT_SUPPORTED" {
		t.Errorf("Status(15) = %q", got)
	}
	if got := Status(99).Error(); got != "cublas status 99" {
		t.Errorf("Status(99) = %q", got)
	}
	got := NotFound("cuBLAS", []string{"libcublas.so.13", "libcublas.so"}, nil, "libcublas.so: cannot open shared object file")
	want := "cuBLAS not found (tried libcublas.so.13, libcublas.so: libcublas.so: cannot open shared object file)"
	if got != want {
		t.Errorf("NotFound = %q, want %q", got, want)
	}
	got = NotFound("cuBLASLt", []string{"libcublasLt.so.13"}, []string{"/opt/cuda/lib64", "/usr/local/cuda/lib64"}, "")
	want = "cuBLASLt not found (tried libcublasLt.so.13, also in /opt/cuda/lib64, /usr/local/cuda/lib64)"
	if got != want {
		t.Errorf("NotFound = %q, want %q", got, want)
	}
}

func TestSearchDirs(t *testing.T) {
	env := map[string]string{"QUANTKIT_CUBLAS_PATH": "/a:/b::/a", "CUDA_HOME": "/opt/cuda", "CUDA_PATH": "/usr/local/cuda"}
	got := SearchDirs(func(k string) string { return env[k] }, "amd64")
	want := []string{"/a", "/b", "/opt/cuda/lib64", "/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib"}
	if !slices.Equal(got, want) {
		t.Errorf("SearchDirs = %q, want %q", got, want)
	}
	got = SearchDirs(func(string) string { return "" }, "arm64")
	want = []string{"/usr/local/cuda/lib64", "/usr/local/cuda/targets/sbsa-linux/lib"}
	if !slices.Equal(got, want) {
		t.Errorf("SearchDirs with no environment on arm64 = %q, want %q", got, want)
	}
	c := Candidates([]string{"x.so.1", "x.so"}, []string{"/d"})
	if want := []string{"x.so.1", "x.so", "/d/x.so.1", "/d/x.so"}; !slices.Equal(c, want) {
		t.Errorf("Candidates = %q, want %q", c, want)
	}
}
