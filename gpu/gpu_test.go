//go:build cuda

package gpu

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/cu"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/backend/backendtest"
	"github.com/quantkit/quantkit/cpu"
)

// These tests need a CUDA GPU: gorgonia.org/cu exits the test binary from
// its init where CUDA cannot start.

func openTest(t testing.TB) *Backend {
	t.Helper()
	b, err := Open(0)
	if err != nil {
		t.Fatalf("Open(0): %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func TestConformance(t *testing.T) {
	b := openTest(t)
	t.Logf("%s: %s", b.Name(), b.Describe())
	if l := b.JITLog(); l != "" {
		t.Logf("JIT log:\n%s", l)
	}
	backendtest.Run(t, b)
}

func TestRegistry(t *testing.T) {
	bk, fellBack, err := backend.Open("gpu")
	if err != nil || fellBack != nil {
		t.Fatalf("backend.Open(gpu): %v, %v", err, fellBack)
	}
	defer bk.Close()
	if bk.Name() != "gpu:0" {
		t.Errorf("Name = %q, want gpu:0", bk.Name())
	}
	if _, ok := bk.(backend.DeviceTimer); !ok {
		t.Error("no DeviceTimer")
	}
	if _, ok := bk.(backend.MemoryInfo); !ok {
		t.Error("no MemoryInfo")
	}
	// Device memory is no host memory: callers must copy.
	for _, dt := range []backend.DType{backend.F32, backend.S8, backend.U8, backend.S32} {
		buf, err := bk.Alloc(dt, 3)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := buf.(backend.HostBuffer); ok {
			t.Errorf("a %v gpu buffer claims to be a backend.HostBuffer", dt)
		}
		bk.Free(buf)
	}
}

func mustUpload[T float32 | int8 | uint8 | int32](t testing.TB, b *Backend, host []T) backend.Buffer {
	t.Helper()
	var dt backend.DType
	switch any(host).(type) {
	case []float32:
		dt = backend.F32
	case []int8:
		dt = backend.S8
	case []uint8:
		dt = backend.U8
	default:
		dt = backend.S32
	}
	buf, err := b.Alloc(dt, len(host))
	if err != nil {
		t.Fatalf("Alloc: %v", err)
	}
	t.Cleanup(func() { b.Free(buf) })
	if err := b.Upload(buf, host); err != nil {
		t.Fatalf("Upload: %v", err)
	}
	return buf
}

func mustDownload[T float32 | int8 | uint8 | int32](t testing.TB, b *Backend, buf backend.Buffer) []T {
	t.Helper()
	h := make([]T, buf.Len())
	if err := b.Download(h, buf); err != nil {
		t.Fatalf("Download: %v", err)
	}
	return h
}

func randS8(rnd *rand.Rand, n int) []int8 {
	s := make([]int8, n)
	for i := range s {
		s[i] = int8(rnd.IntN(256) - 128)
	}
	return s
}

// TestGemmS8Padding runs K that are not multiples of 16 and views at every
// alignment, so that A and B go through pad_rows_s8 or an aligning copy,
// against the CPU backend (exact for every output type).
func TestGemmS8Padding(t *testing.T) {
	b := openTest(t)
	rnd := rand.New(rand.NewPCG(7, 7))
	const m, n = 37, 45
	for _, k := range []int{1, 15, 16, 17, 32, 130} {
		for _, offs := range [][2]int{{0, 0}, {1, 0}, {0, 3}, {5, 7}, {16, 16}, {8, 1}} {
			offA, offB := offs[0], offs[1]
			t.Run(fmt.Sprintf("k=%d/offA=%d/offB=%d", k, offA, offB), func(t *testing.T) {
				a, bt := randS8(rnd, m*k), randS8(rnd, n*k)
				// Views at element offsets offA and offB of larger buffers.
				ab := mustUpload(t, b, append(randS8(rnd, offA), append(a, randS8(rnd, 3)...)...)).Slice(offA, m*k)
				bb := mustUpload(t, b, append(randS8(rnd, offB), append(bt, randS8(rnd, 5)...)...)).Slice(offB, n*k)
				ep := &backend.Epilogue{
					ColOffset: make([]int32, n), RowScale: make([]float32, m), ColScale: []float32{0.01},
					Bias: make([]float32, n), OutScale: 0.5, OutZeroPoint: 3,
				}
				for j := range n {
					ep.ColOffset[j] = int32(rnd.IntN(2001) - 1000)
					ep.Bias[j] = float32(rnd.NormFloat64())
				}
				for i := range m {
					ep.RowScale[i] = float32(0.5 + rnd.Float64())
				}
				checkS8Against(t, b, m, n, k, a, bt, ab, bb, nil)
				checkS8Against(t, b, m, n, k, a, bt, ab, bb, ep)
			})
		}
	}
}

// checkS8Against runs GemmS8 on device views ab, bb (holding a, bt) into
// every output type and compares with cpu.GemmS8, bit for bit.
func checkS8Against(t *testing.T, b *Backend, m, n, k int, a, bt []int8, ab, bb backend.Buffer, ep *backend.Epilogue) {
	t.Helper()
	{
		want := make([]int32, m*n)
		if err := cpu.GemmS8(m, n, k, a, bt, want, ep); err != nil {
			t.Fatal(err)
		}
		c := mustUpload(t, b, make([]int32, m*n+1)).Slice(1, m*n)
		if err := b.GemmS8(m, n, k, ab, bb, c, ep); err != nil {
			t.Fatalf("GemmS8 s32: %v", err)
		}
		if got := mustDownload[int32](t, b, c); !slices.Equal(got, want) {
			t.Errorf("s32 output differs from the CPU's (first %v, want %v)", got[:min(4, len(got))], want[:min(4, len(want))])
		}
	}
	{
		want := make([]float32, m*n)
		if err := cpu.GemmS8(m, n, k, a, bt, want, ep); err != nil {
			t.Fatal(err)
		}
		c := mustUpload(t, b, make([]float32, m*n))
		if err := b.GemmS8(m, n, k, ab, bb, c, ep); err != nil {
			t.Fatalf("GemmS8 f32: %v", err)
		}
		got := mustDownload[float32](t, b, c)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Errorf("f32 C[%d] = %v, want %v", i, got[i], want[i])
				break
			}
		}
	}
	if ep != nil && ep.OutScale > 0 {
		want := make([]int8, m*n)
		if err := cpu.GemmS8(m, n, k, a, bt, want, ep); err != nil {
			t.Fatal(err)
		}
		c := mustUpload(t, b, make([]int8, m*n+3)).Slice(3, m*n)
		if err := b.GemmS8(m, n, k, ab, bb, c, ep); err != nil {
			t.Fatalf("GemmS8 s8: %v", err)
		}
		if got := mustDownload[int8](t, b, c); !slices.Equal(got, want) {
			t.Errorf("s8 output differs from the CPU's")
		}
	}
}

// TestGemmS8ZeroK checks that k = 0 gives the epilogue of 0.
func TestGemmS8ZeroK(t *testing.T) {
	b := openTest(t)
	const m, n = 5, 7
	empty := mustUpload(t, b, []int8{})
	ep := &backend.Epilogue{ColOffset: []int32{1, 2, 3, 4, 5, 6, 7}, ColScale: []float32{0.5}, Bias: []float32{1, 1, 1, 1, 1, 1, -9}}
	c := mustUpload(t, b, make([]float32, m*n))
	if err := b.GemmS8(m, n, 0, empty, empty, c, ep); err != nil {
		t.Fatal(err)
	}
	want := make([]float32, m*n)
	if err := cpu.GemmS8(m, n, 0, nil, nil, want, ep); err != nil {
		t.Fatal(err)
	}
	if got := mustDownload[float32](t, b, c); !slices.Equal(got, want) {
		t.Errorf("k=0: %v, want %v", got, want)
	}
}

// TestGemmTall runs GEMMs taller than one grid's 65535 block rows, which
// go in slabs.
func TestGemmTall(t *testing.T) {
	if testing.Short() {
		t.Skip("large")
	}
	b := openTest(t)
	m := b.maxGridY*gemmS8BM + 133
	const n, k = 3, 16
	rnd := rand.New(rand.NewPCG(3, 3))
	a, bt := randS8(rnd, m*k), randS8(rnd, n*k)
	rs := make([]float32, m)
	for i := range rs {
		rs[i] = float32(i%7 + 1)
	}
	ep := &backend.Epilogue{RowScale: rs}
	want := make([]float32, m*n)
	if err := cpu.GemmS8(m, n, k, a, bt, want, ep); err != nil {
		t.Fatal(err)
	}
	c := mustUpload(t, b, make([]float32, m*n))
	if err := b.GemmS8(m, n, k, mustUpload(t, b, a), mustUpload(t, b, bt), c, ep); err != nil {
		t.Fatal(err)
	}
	if got := mustDownload[float32](t, b, c); !slices.Equal(got, want) {
		t.Errorf("tall GemmS8 differs from the CPU's")
	}

	af, bf := make([]float32, m*4), make([]float32, n*4)
	for i := range af {
		af[i] = float32(i % 5)
	}
	for i := range bf {
		bf[i] = float32(i%3) - 1
	}
	wf := make([]float32, m*n)
	cpu.GemmF32(m, n, 4, af, bf, wf)
	cf := mustUpload(t, b, make([]float32, m*n))
	if err := b.GemmF32(m, n, 4, mustUpload(t, b, af), mustUpload(t, b, bf), cf); err != nil {
		t.Fatal(err)
	}
	if got := mustDownload[float32](t, b, cf); !slices.Equal(got, wf) { // small integers: exact
		t.Errorf("tall GemmF32 differs from the CPU's")
	}
}

// TestHistogramPaths runs bin counts on both sides of histSmemMaxBins
// (shared memory and global kernels) on views at odd offsets.
func TestHistogramPaths(t *testing.T) {
	b := openTest(t)
	rnd := rand.New(rand.NewPCG(5, 5))
	x := make([]float32, 1<<20+3)
	for i := range x {
		x[i] = float32(math.Ldexp(rnd.NormFloat64(), rnd.IntN(8)))
		switch rnd.IntN(100) {
		case 0:
			x[i] = float32(math.NaN())
		case 1:
			x[i] = float32(math.Inf(1 - 2*rnd.IntN(2)))
		case 2, 3, 4:
			x[i] = 0
		}
	}
	xb := mustUpload(t, b, x)
	for _, bins := range []int{1, 100, histSmemMaxBins, histSmemMaxBins + 1, 70000, 1 << 20} {
		for _, off := range []int{0, 1, 3} {
			t.Run(fmt.Sprintf("bins=%d/off=%d", bins, off), func(t *testing.T) {
				xs := x[off:]
				want := make([]int64, bins)
				got := make([]int64, bins)
				for i := range want {
					want[i] = int64(i % 3)
					got[i] = want[i]
				}
				wantNF := cpu.HistogramAbs(xs, 0x1p-10, want)
				nf, err := b.HistogramAbs(xb.Slice(off, len(xs)), 0x1p-10, got)
				if err != nil {
					t.Fatal(err)
				}
				if nf != wantNF {
					t.Errorf("non-finite %d, want %d", nf, wantNF)
				}
				for i := range want {
					if got[i] != want[i] {
						t.Errorf("bin %d: %d, want %d", i, got[i], want[i])
						break
					}
				}
			})
		}
	}
	got, err := b.AbsMax(xb.Slice(1, len(x)-2))
	if err != nil {
		t.Fatal(err)
	}
	if want := cpu.AbsMax(x[1 : len(x)-1]); got != want {
		t.Errorf("AbsMax = %v, want %v", got, want)
	}
}

func TestDeviceTimer(t *testing.T) {
	b := openTest(t)
	const n = 2048
	a := mustUpload(t, b, make([]int8, n*n))
	c := mustUpload(t, b, make([]int32, n*n))
	// Warm up.
	if err := b.GemmS8(n, n, n, a, a, c, nil); err != nil {
		t.Fatal(err)
	}
	var dt backend.DeviceTimer = b
	one, err := dt.Elapsed(func() error { return b.GemmS8(n, n, n, a, a, c, nil) })
	if err != nil {
		t.Fatal(err)
	}
	ten, err := dt.Elapsed(func() error {
		for range 10 {
			if err := b.GemmS8(n, n, n, a, a, c, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("one %dx%dx%d GemmS8: %.3g s; ten: %.3g s (%.1f TOPS)", n, n, n, one, ten, 10*2*n*n*n/ten/1e12)
	if !(one > 0 && one < 1) {
		t.Errorf("one GEMM took %v s", one)
	}
	if !(ten > 2*one && ten < 30*one) {
		t.Errorf("ten GEMMs took %v s, one %v s", ten, one)
	}
	empty, err := dt.Elapsed(func() error { return nil })
	if err != nil || empty < 0 || empty > 0.01 {
		t.Errorf("Elapsed of nothing: %v, %v", empty, err)
	}
	boom := errors.New("boom")
	if _, err := dt.Elapsed(func() error { return boom }); !errors.Is(err, boom) {
		t.Errorf("Elapsed of a failing fn: %v", err)
	}
}

func TestMemInfoAndErrors(t *testing.T) {
	b := openTest(t)
	free, total, err := b.MemInfo()
	if err != nil || total == 0 || free > total {
		t.Fatalf("MemInfo: %d, %d, %v", free, total, err)
	}
	prefix := b.Name() + " (" + b.DeviceName() + "): "

	// More than the device has: an out-of-memory error with the numbers.
	_, err = b.Alloc(backend.F32, int(total/4)*2)
	if err == nil {
		t.Fatal("Alloc of twice the memory succeeded")
	}
	if !errors.Is(err, cu.OutOfMemory) || !strings.HasPrefix(err.Error(), prefix) ||
		!strings.Contains(err.Error(), "CUDA_ERROR_OUT_OF_MEMORY") || !strings.Contains(err.Error(), "free") {
		t.Errorf("out-of-memory error: %v", err)
	}

	buf, err := b.Alloc(backend.S8, 64)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Free(buf.Slice(1, 8)); err == nil {
		t.Error("Free of a view succeeded")
	}
	if err := b.Free(buf); err != nil {
		t.Fatal(err)
	}
	if err := b.Free(buf); err == nil {
		t.Error("second Free succeeded")
	}
	if err := b.Upload(buf, make([]int8, 64)); err == nil || !strings.HasPrefix(err.Error(), prefix) {
		t.Errorf("Upload into a freed buffer: %v", err)
	}

	// Buffers of another backend.
	cb, _ := cpu.New().Alloc(backend.F32, 4)
	if err := b.Upload(cb, make([]float32, 4)); err == nil {
		t.Error("Upload into a cpu buffer succeeded")
	}
}

func TestClose(t *testing.T) {
	b, err := Open(0)
	if err != nil {
		t.Fatal(err)
	}
	buf, err := b.Alloc(backend.F32, 1000) // freed by Close
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := b.Upload(buf, make([]float32, 1000)); err == nil {
		t.Error("Upload after Close succeeded")
	}
	if _, err := b.Alloc(backend.F32, 1); err == nil {
		t.Error("Alloc after Close succeeded")
	}
	if _, err := Open(1 << 20); err == nil {
		t.Error("Open of device 2^20 succeeded")
	}
}
