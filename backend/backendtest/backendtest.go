// Package backendtest is the conformance suite of quantkit's backends: Run
// holds a backend.Backend to what each of its operations must compute.
//
// Every backend passes the same suite (cpu_test and gpu_test call Run).
// It follows gonum's testblas: naive references, random data from fixed
// seeds (rand.NewPCG(1, 1)), odd and large sizes, adversarial values (NaN,
// ±Inf, ±0, huge, subnormal, all equal), guard values around every output
// buffer to catch writes out of bounds, and checks that inputs are left
// untouched.
//
// Beyond the operations it holds backends to two contracts of memory:
// Alloc returns zeros, even where the memory held garbage before it was
// freed, and a backend's buffers are backend.HostBuffers for every type
// or for none, and where they are, their slices are the buffers' memory.
// The suite's own tests run it on backends that break each contract
// and expect it to fail them.
//
// # What must match how
//
// Integer results must be exact: GemmS8 with int32 output against an
// int64 loop, with int8 output against the epilogue formula of
// backend.Epilogue evaluated in float32 step by step; Quantize codes
// byte for byte against quant.Quantize; HistogramAbs counts and AbsMax
// against a plain loop. Dequantize must match quant.Dequantize bit for
// bit. Floating-point GEMM results must lie within a stated bound of a
// float64 reference: GemmF32Bound and EpilogueF32Bound.
package backendtest

import (
	"fmt"
	"math"
	"testing"

	"github.com/quantkit/quantkit/backend"
)

// Unit is the unit roundoff of float32, 2^-24: the largest relative error
// of one correctly rounded float32 operation on normal numbers.
const Unit = 0x1p-24

// Subnormal is the smallest positive float32, 2^-149: the largest absolute
// error of one correctly rounded float32 operation whose result is
// subnormal.
const Subnormal = 0x1p-149

// GemmF32Bound is how far a GemmF32 output may lie from the exact dot
// product of its k terms, whose magnitudes sum to absSum:
//
//	|c − Σ a·b| ≤ (k+1)·Unit·Σ|a·b| + (k+1)·Subnormal
//
// This is the classical bound γ(k)·Σ|a·b| for float32 summation in any
// order, with or without fused multiply-adds (each product and each
// addition rounds once; k·Unit ≪ 1 here), plus one subnormal unit per
// operation for results that underflow. Blocked, pairwise, FMA or wider
// accumulation all meet it; TF32 or half-precision accumulation does not.
func GemmF32Bound(k int, absSum float64) float64 {
	return float64(k+1)*Unit*absSum + float64(k+1)*Subnormal
}

// EpilogueF32Bound is how far a float32 GemmS8 epilogue output may lie from
// the same formula evaluated exactly: with mag = |float64(a)·rowScale·
// colScale| + |bias|,
//
//	|y − y_exact| ≤ 4·Unit·mag + 4·Subnormal
//
// one rounding each for float32(a), the two products and the sum.
func EpilogueF32Bound(mag float64) float64 {
	return 4*Unit*mag + 4*Subnormal
}

// Run runs the suite on b, one subtest per operation. Every operation of
// backend.Backend is mandatory, so none is skipped.
func Run(t *testing.T, b backend.Backend) {
	t.Run("Buffers", func(t *testing.T) { testBuffers(t, b) })
	t.Run("AllocZeroes", func(t *testing.T) { testAllocZeroes(t, b) })
	t.Run("HostBuffer", func(t *testing.T) { testHostBuffer(t, b) })
	t.Run("gemm-f32", func(t *testing.T) { testGemmF32(t, b) })
	t.Run("gemm-s8", func(t *testing.T) { testGemmS8(t, b) })
	t.Run("absmax", func(t *testing.T) { testAbsMax(t, b) })
	t.Run("histogram", func(t *testing.T) { testHistogramAbs(t, b) })
	t.Run("quantize", func(t *testing.T) { testQuantize(t, b) })
	t.Run("dequantize", func(t *testing.T) { testDequantize(t, b) })
	t.Run("gemm-packed", func(t *testing.T) { RunGemmPacked(t, b) })
	t.Run("lm", func(t *testing.T) { RunLM(t, b) })
}

// elem is a host element type of a Buffer.
type elem = backend.Elem

func dtypeOf[T elem]() backend.DType { return backend.DTypeOf[T]() }

// sentinel is the value guards and unwritten outputs hold: a NaN with a
// payload, or a byte pattern, that no correct result reproduces by chance
// where it is checked.
func sentinel[T elem]() T {
	var z T
	switch p := any(&z).(type) {
	case *float32:
		*p = math.Float32frombits(0x7FC0DEAD)
	case *int8:
		*p = 0x5A
	case *uint8:
		*p = 0xA5
	case *int32:
		*p = 0x5A5A5A5A
	}
	return z
}

// same is bitwise equality.
func same[T elem](a, b T) bool {
	if x, ok := any(a).(float32); ok {
		return math.Float32bits(x) == math.Float32bits(any(b).(float32))
	}
	return a == b
}

// upload allocates a buffer for host on b and copies host into it.
func upload[T elem](t *testing.T, b backend.Backend, host []T) backend.Buffer {
	t.Helper()
	buf, err := b.Alloc(dtypeOf[T](), len(host))
	if err != nil {
		t.Fatalf("Alloc(%v, %d): %v", dtypeOf[T](), len(host), err)
	}
	t.Cleanup(func() { b.Free(buf) })
	if err := b.Upload(buf, host); err != nil {
		t.Fatalf("Upload of %d %v: %v", len(host), dtypeOf[T](), err)
	}
	return buf
}

// download copies buf to a new host slice.
func download[T elem](t *testing.T, b backend.Backend, buf backend.Buffer) []T {
	t.Helper()
	host := make([]T, buf.Len())
	if err := b.Download(host, buf); err != nil {
		t.Fatalf("Download of %d %v: %v", buf.Len(), dtypeOf[T](), err)
	}
	return host
}

// guardLen is the number of guard elements on each side of an output.
const guardLen = 16

// output is an output buffer with guards: full holds guardLen sentinels,
// the n elements of mid (also sentinels until written), and guardLen
// sentinels again.
type output[T elem] struct {
	full, mid backend.Buffer
	n         int
}

func newOutput[T elem](t *testing.T, b backend.Backend, n int) *output[T] {
	t.Helper()
	host := make([]T, n+2*guardLen)
	s := sentinel[T]()
	for i := range host {
		host[i] = s
	}
	full := upload(t, b, host)
	return &output[T]{full: full, mid: full.Slice(guardLen, n), n: n}
}

// read downloads the output, reports writes to the guards, and returns
// the n output elements.
func (o *output[T]) read(t *testing.T, b backend.Backend) []T {
	t.Helper()
	if err := b.Synchronize(); err != nil {
		t.Fatalf("Synchronize: %v", err)
	}
	all := download[T](t, b, o.full)
	s := sentinel[T]()
	for i := range guardLen {
		if !same(all[i], s) {
			t.Errorf("guard %d before the output was overwritten: %v", guardLen-i, all[i])
		}
		if v := all[guardLen+o.n+i]; !same(v, s) {
			t.Errorf("guard %d after the output was overwritten: %v", i+1, v)
		}
	}
	return all[guardLen : guardLen+o.n]
}

// checkUnchanged reports whether buf still holds want, bit for bit.
func checkUnchanged[T elem](t *testing.T, b backend.Backend, buf backend.Buffer, want []T, what string) {
	t.Helper()
	got := download[T](t, b, buf)
	for i := range want {
		if !same(got[i], want[i]) {
			t.Errorf("input %s changed at %d: %v, was %v", what, i, got[i], want[i])
			return
		}
	}
}

// mustFail reports whether fn returns an error without panicking.
func mustFail(t *testing.T, what string, fn func() error) {
	t.Helper()
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = nil
				t.Errorf("%s panicked instead of returning an error: %v", what, r)
			}
		}()
		return fn()
	}()
	if err == nil {
		t.Errorf("%s returned no error", what)
	}
}

// errorLimit caps the mismatches reported per check.
const errorLimit = 5

// mismatches counts reported mismatches and stops a check after
// errorLimit of them.
type mismatches struct {
	t *testing.T
	n int
}

// add reports one mismatch and returns false when the check should stop.
func (m *mismatches) add(format string, args ...any) bool {
	m.t.Helper()
	m.n++
	if m.n <= errorLimit {
		m.t.Errorf(format, args...)
	}
	return m.n < errorLimit
}

func (m *mismatches) done(what string) {
	m.t.Helper()
	if m.n >= errorLimit {
		m.t.Errorf("%s: stopped after %d mismatches", what, m.n)
	}
}

func sizeName(dims ...int) string {
	s := ""
	for i, d := range dims {
		if i > 0 {
			s += "x"
		}
		s += fmt.Sprint(d)
	}
	return s
}
