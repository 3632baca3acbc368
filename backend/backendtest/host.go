package backendtest

import (
	"math"
	"testing"

	"github.com/quantkit/quantkit/backend"
)

// testAllocZeroes checks the zeroing contract of Alloc: memory a freed
// buffer filled with garbage comes back as zeros (+0.0 for F32, bit for
// bit), whatever the size. A device allocator that reuses freed memory,
// as CUDA's does, hands the garbage back unless Alloc clears it.
func testAllocZeroes(t *testing.T, b backend.Backend) {
	t.Run("f32", func(t *testing.T) { allocZeroes(t, b, math.Float32frombits(0xFFFFFFFF)) })
	t.Run("s8", func(t *testing.T) { allocZeroes[int8](t, b, -1) })
	t.Run("u8", func(t *testing.T) { allocZeroes[uint8](t, b, 0xFF) })
	t.Run("s32", func(t *testing.T) { allocZeroes[int32](t, b, -1) })
}

func allocZeroes[T elem](t *testing.T, b backend.Backend, garbage T) {
	dt := dtypeOf[T]()
	var zero T
	for _, n := range []int{1, 7, 4099, 1<<20 + 3} {
		// Several rounds, and two buffers live at once, so that some
		// allocation lands on memory an earlier one dirtied.
		for round := range 3 {
			var bufs [2]backend.Buffer
			for i := range bufs {
				buf, err := b.Alloc(dt, n)
				if err != nil {
					t.Fatalf("Alloc(%v, %d): %v", dt, n, err)
				}
				bufs[i] = buf
				got := download[T](t, b, buf)
				for j, v := range got {
					if !same(v, zero) {
						t.Fatalf("n=%d round %d buffer %d: Alloc left %v at element %d, want 0", n, round, i, v, j)
					}
				}
				host := make([]T, n)
				for j := range host {
					host[j] = garbage
				}
				if err := b.Upload(buf, host); err != nil {
					t.Fatalf("Upload: %v", err)
				}
			}
			for _, buf := range bufs {
				if err := b.Free(buf); err != nil {
					t.Fatalf("Free: %v", err)
				}
			}
		}
	}
}

// testHostBuffer checks backend.HostBuffer: a backend's buffers implement
// it for every type or for none; where they do, the slices are the
// buffers' memory (writes show both ways, views alias their parent and
// cannot grow past their end, operations' results appear in place) and the
// accessors of other types return nil; where they do not, backend.Host
// says so. Whether a backend should have host buffers at all is for its
// own tests to assert (cpu does, gpu does not).
func testHostBuffer(t *testing.T, b backend.Backend) {
	probe, err := b.Alloc(backend.F32, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, host := probe.(backend.HostBuffer)
	b.Free(probe)
	t.Logf("%s buffers are host memory: %v", b.Name(), host)

	t.Run("f32", func(t *testing.T) { hostBuffer(t, b, host, func(i int) float32 { return float32(i) + 0.5 }) })
	t.Run("s8", func(t *testing.T) { hostBuffer(t, b, host, func(i int) int8 { return int8(i*37 - 128) }) })
	t.Run("u8", func(t *testing.T) { hostBuffer(t, b, host, func(i int) uint8 { return uint8(i*53 + 7) }) })
	t.Run("s32", func(t *testing.T) {
		hostBuffer(t, b, host, func(i int) int32 { return int32(uint32(i)*2654435761 + 1) })
	})

	if host {
		t.Run("results in place", func(t *testing.T) {
			a := upload(t, b, []float32{2, 5})
			w := upload(t, b, []float32{3, 7})
			c := upload(t, b, []float32{-1})
			if err := b.GemmF32(1, 1, 2, a, w, c); err != nil {
				t.Fatal(err)
			}
			if err := b.Synchronize(); err != nil {
				t.Fatal(err)
			}
			h, _ := backend.Host[float32](c)
			if len(h) != 1 || h[0] != 41 {
				t.Errorf("GemmF32 result read in place: %v, want [41]", h)
			}
		})
	}
}

func hostBuffer[T elem](t *testing.T, b backend.Backend, host bool, gen func(int) T) {
	dt := dtypeOf[T]()
	for _, n := range []int{0, 1, 7, 1000} {
		buf, err := b.Alloc(dt, n)
		if err != nil {
			t.Fatalf("Alloc(%v, %d): %v", dt, n, err)
		}
		h, ok := backend.Host[T](buf)
		if _, isHost := buf.(backend.HostBuffer); isHost != host || ok != host {
			t.Fatalf("n=%d: a %v buffer is a HostBuffer: %v, Host gives ok=%v; an f32 buffer of 1 is: %v",
				n, dt, isHost, ok, host)
		}
		if !host {
			if n >= 7 {
				if _, ok := backend.Host[T](buf.Slice(2, 3)); ok {
					t.Errorf("a view of a buffer that is not host memory is")
				}
			}
			b.Free(buf)
			continue
		}
		checkHostSlice(t, b, buf, h, n, "buffer")
		// Writes through the slice are what Download reads.
		want := make([]T, n)
		for i := range h {
			h[i] = gen(i)
			want[i] = h[i]
		}
		checkContents(t, b, buf, want, "after writing through the host slice")
		// What Upload writes, the slice shows.
		up := make([]T, n)
		for i := range up {
			up[i] = gen(i + 3)
		}
		if err := b.Upload(buf, up); err != nil {
			t.Fatalf("Upload: %v", err)
		}
		for i := range h {
			if !same(h[i], up[i]) {
				t.Fatalf("n=%d: after Upload the host slice holds %v at %d, want %v", n, h[i], i, up[i])
			}
		}
		copy(want, up)
		if n >= 7 {
			off, m := 2, n-4
			v := buf.Slice(off, m)
			vh, ok := backend.Host[T](v)
			if !ok {
				t.Fatalf("Slice(%d, %d) of a host buffer is not one", off, m)
			}
			checkHostSlice(t, b, v, vh, m, "view")
			vh[0], vh[m-1] = gen(n+1), gen(n+2)
			want[off], want[off+m-1] = vh[0], vh[m-1]
			checkContents(t, b, buf, want, "after writing through a view's host slice")
		}
		if err := b.Free(buf); err != nil {
			t.Errorf("Free: %v", err)
		}
	}
}

// checkHostSlice checks that h is buf's memory by length and capacity (a
// slice that reaches past a view could overwrite its neighbours through
// append), and that the other accessors return nil.
func checkHostSlice[T elem](t *testing.T, b backend.Backend, buf backend.Buffer, h []T, n int, what string) {
	t.Helper()
	if len(h) != n || cap(h) != n {
		t.Fatalf("%s of %d %v: host slice has len %d cap %d", what, n, buf.DType(), len(h), cap(h))
	}
	hb := buf.(backend.HostBuffer)
	others := map[backend.DType]bool{
		backend.F32: hb.F32() != nil,
		backend.S8:  hb.S8() != nil,
		backend.U8:  hb.U8() != nil,
		backend.S32: hb.S32() != nil,
	}
	for dt, notNil := range others {
		if dt != buf.DType() && notNil {
			t.Errorf("%s of %d %v: the %v accessor is not nil", what, n, buf.DType(), dt)
		}
	}
}

// checkContents downloads buf and compares it with want bit for bit.
func checkContents[T elem](t *testing.T, b backend.Backend, buf backend.Buffer, want []T, when string) {
	t.Helper()
	got := download[T](t, b, buf)
	for i := range want {
		if !same(got[i], want[i]) {
			t.Fatalf("%s: Download gives %v at %d, want %v", when, got[i], i, want[i])
		}
	}
}
