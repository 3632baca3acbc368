package backendtest

import (
	"math"
	"testing"

	"github.com/quantkit/quantkit/backend"
)

func testBuffers(t *testing.T, b backend.Backend) {
	t.Run("f32", func(t *testing.T) {
		negZero := float32(math.Copysign(0, -1))
		testBufferType(t, b, func(i int) float32 {
			v := [...]float32{1.5, float32(math.NaN()), float32(math.Inf(-1)), negZero, 0x1p-149, -3e38}[i%6]
			if i >= 6 {
				v += float32(i / 6) // -0 + 0 would be +0: the first six stay as they are
			}
			return v
		})
	})
	t.Run("s8", func(t *testing.T) { testBufferType(t, b, func(i int) int8 { return int8(i*37 - 128) }) })
	t.Run("u8", func(t *testing.T) { testBufferType(t, b, func(i int) uint8 { return uint8(i*53 + 7) }) })
	t.Run("s32", func(t *testing.T) { testBufferType(t, b, func(i int) int32 { return int32(uint32(i)*2654435761 + 1) }) })

	t.Run("errors", func(t *testing.T) {
		f, err := b.Alloc(backend.F32, 10)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Free(f)
		mustFail(t, "Alloc of -1 elements", func() error {
			buf, err := b.Alloc(backend.F32, -1)
			if err == nil {
				b.Free(buf)
			}
			return err
		})
		mustFail(t, "Upload of []int32 into f32", func() error { return b.Upload(f, make([]int32, 10)) })
		mustFail(t, "Upload of []float64", func() error { return b.Upload(f, make([]float64, 10)) })
		mustFail(t, "Upload of 9 values into 10", func() error { return b.Upload(f, make([]float32, 9)) })
		mustFail(t, "Upload of 11 values into 10", func() error { return b.Upload(f, make([]float32, 11)) })
		mustFail(t, "Download of f32 into []uint8", func() error { return b.Download(make([]uint8, 10), f) })
		mustFail(t, "Download of 10 values into 9", func() error { return b.Download(make([]float32, 9), f) })
		mustFail(t, "Download into a non-slice", func() error { return b.Download(new(float32), f) })
	})
}

// testBufferType checks Alloc, Upload, Download and Slice for one type.
func testBufferType[T elem](t *testing.T, b backend.Backend, gen func(int) T) {
	dt := dtypeOf[T]()
	for _, n := range []int{0, 1, 7, 1000} {
		buf, err := b.Alloc(dt, n)
		if err != nil {
			t.Fatalf("Alloc(%v, %d): %v", dt, n, err)
		}
		if buf.DType() != dt || buf.Len() != n {
			t.Errorf("Alloc(%v, %d) gave a %v buffer of %d", dt, n, buf.DType(), buf.Len())
		}
		host := make([]T, n)
		for i := range host {
			host[i] = gen(i)
		}
		orig := append([]T(nil), host...)
		if err := b.Upload(buf, host); err != nil {
			t.Fatalf("Upload: %v", err)
		}
		for i := range host {
			if !same(host[i], orig[i]) {
				t.Fatalf("Upload changed its source at %d", i)
			}
		}
		got := download[T](t, b, buf)
		for i := range got {
			if !same(got[i], host[i]) {
				t.Fatalf("n=%d: round trip changed element %d: %v, want %v", n, i, got[i], host[i])
			}
		}
		if n >= 7 {
			// A view reads and writes the memory of its parent.
			off, m := 2, n-4
			v := buf.Slice(off, m)
			if v.DType() != dt || v.Len() != m {
				t.Fatalf("Slice(%d, %d) is a %v buffer of %d", off, m, v.DType(), v.Len())
			}
			sub := download[T](t, b, v)
			for i := range sub {
				if !same(sub[i], host[off+i]) {
					t.Fatalf("Slice(%d, %d)[%d] = %v, want %v", off, m, i, sub[i], host[off+i])
				}
			}
			vv := v.Slice(1, 2)
			patch := []T{gen(n + 1), gen(n + 2)}
			if err := b.Upload(vv, patch); err != nil {
				t.Fatalf("Upload into a view: %v", err)
			}
			want := append([]T(nil), host...)
			want[off+1], want[off+2] = patch[0], patch[1]
			all := download[T](t, b, buf)
			for i := range all {
				if !same(all[i], want[i]) {
					t.Fatalf("after Upload into view [%d, %d): element %d is %v, want %v", off+1, off+3, i, all[i], want[i])
				}
			}
			if e := buf.Slice(n, 0); e.Len() != 0 {
				t.Errorf("Slice(n, 0) has %d elements", e.Len())
			}
		}
		if err := b.Free(buf); err != nil {
			t.Errorf("Free: %v", err)
		}
	}
}
