//go:build cuda

package gpu

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/backend"
)

// Uploads and downloads of pageable slices below, at and across the
// staging threshold and chunk (whole chunks, a partial last one, views at
// odd offsets), and of pinned slices, return the bytes they were given.
func TestTransfers(t *testing.T) {
	b := openTest(t)
	rng := rand.New(rand.NewPCG(1, 1))
	for _, n := range []int{1, 1000, stageMin / 4, stageMin/4 + 1, stageChunk / 4, 2*stageChunk/4 + 12345, 3 * stageChunk / 4} {
		host := make([]float32, n)
		for i := range host {
			host[i] = rng.Float32()
		}
		buf, err := b.Alloc(backend.F32, n+3)
		if err != nil {
			t.Fatal(err)
		}
		view := buf.Slice(3, n) // an offset destination
		if err := b.Upload(view, host); err != nil {
			t.Fatalf("Upload of %d: %v", n, err)
		}
		got := make([]float32, n)
		if err := b.Download(got, view); err != nil {
			t.Fatalf("Download of %d: %v", n, err)
		}
		if !slices.Equal(got, host) {
			t.Errorf("%d floats: pageable round trip differs", n)
		}
		pinned, free, err := b.AllocPinned(backend.F32, n)
		if err != nil {
			t.Fatal(err)
		}
		p := pinned.([]float32)
		if slices.ContainsFunc(p, func(v float32) bool { return v != 0 }) {
			t.Errorf("%d floats: AllocPinned memory is not zeroed", n)
		}
		if err := b.Download(p, view); err != nil {
			t.Fatalf("Download into pinned memory: %v", err)
		}
		if !slices.Equal(p, host) {
			t.Errorf("%d floats: download into pinned memory differs", n)
		}
		for i := range p {
			p[i] = -p[i]
		}
		if err := b.Upload(view, p); err != nil {
			t.Fatalf("Upload from pinned memory: %v", err)
		}
		if err := b.Download(got, view); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, p) {
			t.Errorf("%d floats: upload from pinned memory differs", n)
		}
		if err := free(); err != nil {
			t.Errorf("freeing pinned memory: %v", err)
		}
		if err := free(); err == nil {
			t.Error("freeing pinned memory twice: no error")
		}
		b.Free(buf)
	}
}

// A pipeline of chunks: while the GEMM of chunk i runs, UploadAsync moves
// chunk i+1 into the other of two buffers, and DownloadAsync then fetches
// chunk i's result; every result is the product's within float32's bound,
// so no copy overtook the kernel it had to wait for.
func TestAsyncPipeline(t *testing.T) {
	b := openTest(t)
	const m, n, k, chunks = 64, 96, 128, 5
	rng := rand.New(rand.NewPCG(2, 2))
	w := make([]float32, n*k)
	for i := range w {
		w[i] = rng.Float32() - 0.5
	}
	wb := mustUpload(t, b, w)
	var in, out [2]backend.Buffer
	var hin, hout [2][]float32
	for i := range 2 {
		var err error
		if in[i], err = b.Alloc(backend.F32, m*k); err != nil {
			t.Fatal(err)
		}
		if out[i], err = b.Alloc(backend.F32, m*n); err != nil {
			t.Fatal(err)
		}
		h, free, err := b.AllocPinned(backend.F32, m*k)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { free() })
		hin[i] = h.([]float32)
		h, free, err = b.AllocPinned(backend.F32, m*n)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { free() })
		hout[i] = h.([]float32)
	}
	as := make([][]float32, chunks)
	results := make([][]float32, chunks)
	fill := func(c int) {
		as[c] = make([]float32, m*k)
		for i := range as[c] {
			as[c][i] = rng.Float32() - 0.5
		}
		copy(hin[c%2], as[c])
	}
	collect := func(c int) {
		results[c] = slices.Clone(hout[c%2])
	}
	fill(0)
	if err := b.UploadAsync(in[0], hin[0]); err != nil {
		t.Fatal(err)
	}
	for c := range chunks {
		if err := b.GemmF32(m, n, k, in[c%2], wb, out[c%2]); err != nil {
			t.Fatal(err)
		}
		if c+1 < chunks {
			// hin[(c+1)%2] was last read by the upload of chunk c-1,
			// which the GEMM of chunk c-1 waited for, done at the last
			// Synchronize; in[(c+1)%2] was last read by that GEMM.
			fill(c + 1)
			if err := b.UploadAsync(in[(c+1)%2], hin[(c+1)%2]); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.DownloadAsync(hout[c%2], out[c%2]); err != nil {
			t.Fatal(err)
		}
		if err := b.Synchronize(); err != nil {
			t.Fatal(err)
		}
		collect(c)
	}
	// Against a float64 product, within float32 summation's bound.
	for c := range chunks {
		for i := range m {
			for j := range n {
				var sum, abs float64
				for l := range k {
					p := float64(as[c][i*k+l]) * float64(w[j*k+l])
					sum += p
					abs += math.Abs(p)
				}
				got := float64(results[c][i*n+j])
				if math.Abs(got-sum) > 2*k*0x1p-24*abs+1e-30 {
					t.Fatalf("chunk %d: C[%d,%d] = %g, want %g", c, i, j, got, sum)
				}
			}
		}
	}
	// Async copies take pinned memory only.
	if err := b.UploadAsync(in[0], make([]float32, m*k)); err == nil || !strings.Contains(err.Error(), "AllocPinned") {
		t.Errorf("UploadAsync from a Go slice: %v, want an error naming AllocPinned", err)
	}
}
