package cpu

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/internal/testenv"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/quant"
)

// vnniCases are the formats and row lengths of the VNNI tests: Q8_0, and
// the int8 quant.RowFormat per channel and in groups, with and without
// values past the last whole chunk.
func vnniCases() []packedCase {
	return []packedCase{
		{gguf.TypeQ8_0, 32},
		{gguf.TypeQ8_0, 512},
		{quant.RowFormat{Bits: 8, Signed: true, Symmetric: true, Group: 96}, 96},
		{quant.RowFormat{Bits: 8, Signed: true, Symmetric: true, Group: 100}, 100},
		{quant.RowFormat{Bits: 8, Signed: true, Symmetric: true, Group: 20}, 20},
		{quant.RowFormat{Bits: 8, Signed: true, Symmetric: true, Group: 64}, 200},
		{quant.RowFormat{Bits: 8, Signed: true, Symmetric: true, Group: 2048}, 2048},
	}
}

// unitScales sets every block scale of the n rows of data (layout l) to 1.
func unitScales(l pkLayout, data []byte, n, rowBytes int) {
	for j := range n {
		row := data[j*rowBytes:]
		p := &pkFormats[l.kind]
		for b := range l.blocks {
			blk := row[b*p.blockBytes(l.group):]
			if p.f16 {
				binary.LittleEndian.PutUint16(blk, 0x3C00)
			} else {
				binary.LittleEndian.PutUint32(blk, math.Float32bits(1))
			}
		}
	}
}

// randQ8Records returns m rows of activation records for layout l with
// random codes (every int8), scale 1 and their sums, as quantizeQ8 lays
// them out.
func randQ8Records(rnd *rand.Rand, l pkLayout, m, k int) ([]byte, q8Layout) {
	lay := newQ8Layout(l, k)
	x := make([]byte, m*lay.ldx)
	for i := range m {
		for t := range lay.kc {
			rec := x[i*lay.ldx+q8Rec*t:]
			var s int32
			for e := range 32 {
				v := int8(rnd.Uint32())
				if 32*t+e >= k {
					v = 0
				}
				rec[e] = byte(v)
				s += int32(v)
			}
			binary.LittleEndian.PutUint32(rec[32:], math.Float32bits(1))
			binary.LittleEndian.PutUint32(rec[36:], uint32(s))
		}
	}
	return x, lay
}

// TestPackedQ8VNNIExact holds the tile kernels and their Go twin to a
// naive integer loop over the weight codes as stored: with unit scales and
// at most 16 chunks every sum is an integer below 2^24, so the float32
// results must be exact. Every tile width (1 to 32 columns) and every
// number of rows from 1 to two groups of six and one runs, with guard
// values around the outputs.
func TestPackedQ8VNNIExact(t *testing.T) {
	rnd := rand.New(rand.NewPCG(17, 1))
	for _, pc := range vnniCases() {
		l, ok := q8LayoutOf(pc.f, pc.k)
		if !ok || !l.vnni() {
			t.Fatalf("%v k=%d: no VNNI layout", pc.f, pc.k)
		}
		chunks := l.vnniChunks()
		if chunks > 16 {
			continue // the sums could pass 2^24
		}
		rb, _ := pc.f.RowBytes(pc.k)
		data := randPacked(rnd, pc.f, vnniCols, pc.k)
		unitScales(l, data, vnniCols, rb)
		const rows = 2*vnniRows + 1 // two groups of six and one row
		x, lay := randQ8Records(rnd, l, rows, pc.k)
		want := make([]float32, rows*vnniCols)
		for j := range vnniCols {
			row := data[j*rb:]
			for i := range rows {
				var s int32
				for tc := range chunks {
					co, _ := vnniChunkAt(l, tc)
					for e := range 32 {
						s += int32(int8(row[co+e])) * int32(int8(x[i*lay.ldx+q8Rec*tc+e]))
					}
				}
				want[i*vnniCols+j] = float32(s)
			}
		}
		negateQ8Sums(x, rows, lay)
		for _, set := range KernelSets() {
			restore := UseKernelSet(set)
			for cols := 1; cols <= vnniCols; cols++ {
				tile := make([]byte, l.vnniTileBytes())
				packVNNITile(l, tile, data, rb, cols)
				for m := 1; m <= rows; m++ {
					const ldc = vnniCols + 5
					c := make([]float32, m*ldc)
					for i := range c {
						c[i] = -7
					}
					packedQ8VNNIRows(l, m, x, lay.ldx, tile, chunks, c, ldc)
					for i := range m {
						for j := range ldc {
							got := c[i*ldc+j]
							w := float32(-7) // guard
							switch {
							case j < cols:
								w = want[i*vnniCols+j]
							case j < vnniCols:
								w = 0
							}
							if got != w {
								t.Fatalf("%v k=%d %s cols=%d m=%d: c[%d,%d] = %v, want %v", pc.f, pc.k, set, cols, m, i, j, got, w)
							}
						}
					}
				}
			}
			restore()
		}
	}
}

// TestPackVNNITile holds the assembly packer to its Go twin, byte for
// byte, and checks that it leaves the rows it reads untouched.
func TestPackVNNITile(t *testing.T) {
	rnd := rand.New(rand.NewPCG(17, 2))
	for _, pc := range vnniCases() {
		l, _ := q8LayoutOf(pc.f, pc.k)
		rb, _ := pc.f.RowBytes(pc.k)
		data := randPacked(rnd, pc.f, vnniCols+3, pc.k)
		orig := append([]byte(nil), data...)
		n := l.vnniTileBytes()
		want := make([]byte, n)
		packVNNITileGo(l, want, data, rb, vnniCols)
		for _, set := range KernelSets() {
			restore := UseKernelSet(set)
			got := make([]byte, n)
			packVNNITile(l, got, data, rb, vnniCols)
			restore()
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("%v k=%d %s: byte %d of the tile = %#x, want %#x", pc.f, pc.k, set, i, got[i], want[i])
				}
			}
		}
		for i := range data {
			if data[i] != orig[i] {
				t.Fatalf("%v k=%d: the packer changed byte %d of W", pc.f, pc.k, i)
			}
		}
	}
}

// TestGemmPackedQ8VNNI runs GemmPacked with the VNNI tiles (rows of A from
// vnniMinRows on) and with every kernel set, against packedDotQ8Go on the
// same quantized activations, within the rounding of the float32 sums
// (the integer sums are the same; the order and fusing of the float
// multiply-adds differ), for column counts around the tile width and
// row counts around the kernels' six.
func TestGemmPackedQ8VNNI(t *testing.T) {
	rnd := rand.New(rand.NewPCG(17, 3))
	defer SetThreads(SetThreads(2))
	ms := []int{vnniMinRows, vnniMinRows + 1, 23, 40}
	ns := []int{1, 31, 33, 70, 131}
	if testing.Short() {
		ms, ns = []int{vnniMinRows + 1}, []int{33, 70}
	}
	for _, pc := range vnniCases() {
		l, _ := q8LayoutOf(pc.f, pc.k)
		rb, _ := pc.f.RowBytes(pc.k)
		for _, n := range ns {
			data := randPacked(rnd, pc.f, n, pc.k)
			for _, m := range ms {
				k := pc.k
				a := make([]float32, m*k)
				for i := range a {
					a[i] = float32(rnd.NormFloat64())
				}
				lay := newQ8Layout(l, k)
				x := make([]byte, m*lay.ldx)
				quantizeQ8(x, a, m, k, l, lay)
				want := make([]float32, m*n)
				q8DotRef(l, m, x, lay, data, rb, n, want)
				bound := vnniBounds(l, m, n, k, x, lay, data, rb)
				for _, set := range KernelSets() {
					restore := UseKernelSet(set)
					c := make([]float32, m*n)
					GemmPacked(m, n, k, a, pc.f, data, c)
					restore()
					for i := range c {
						if d := math.Abs(float64(c[i]) - float64(want[i])); !(d <= bound[i]) {
							t.Fatalf("%v k=%d n=%d m=%d %s: c[%d,%d] = %v, want %v (±%g)", pc.f, k, n, m, set, i/n, i%n, c[i], want[i], bound[i])
						}
					}
				}
			}
		}
	}
}

// q8DotRef is packedDotQ8Go on any number of rows of activations.
func q8DotRef(l pkLayout, m int, x []byte, lay q8Layout, w []byte, rb, n int, c []float32) {
	for i := 0; i < m; i += packedFusedRows {
		packedDotQ8Go(l, min(packedFusedRows, m-i), x[i*lay.ldx:], lay, w, rb, n, c[i*n:], n)
	}
}

// vnniBounds is, for each output, the difference allowed between two
// float32 sums of its chunks' terms float32(s)·(scale·d) in any order:
// 2·(chunks+1)·ε·Σ|term|.
func vnniBounds(l pkLayout, m, n, k int, x []byte, lay q8Layout, data []byte, rb int) []float64 {
	abs := make([]float32, m*n)
	// Σ|term| is packedDotQ8Go on |codes| and |activation codes|.
	ax := append([]byte(nil), x...)
	for i := range m {
		for t := range lay.kc {
			rec := ax[i*lay.ldx+q8Rec*t:]
			for e := range 32 {
				if v := int8(rec[e]); v < 0 {
					rec[e] = byte(-int32(v))
				}
			}
			d := math.Float32frombits(binary.LittleEndian.Uint32(rec[32:]))
			binary.LittleEndian.PutUint32(rec[32:], math.Float32bits(float32(math.Abs(float64(d)))))
		}
	}
	aw := append([]byte(nil), data...)
	for j := range n {
		row := aw[j*rb:]
		for tc := range l.vnniChunks() + 1 {
			if tc == l.vnniChunks() && l.last%32 == 0 {
				break
			}
			co, so := vnniChunkAt(l, tc)
			for e := 0; e < 32 && co+e < rb && (tc < l.vnniChunks() || e < l.last%32); e++ {
				if v := int8(row[co+e]); v < 0 {
					row[co+e] = byte(-int32(max(v, -127)))
				}
			}
			if l.kind == pkQ8_0 {
				binary.LittleEndian.PutUint16(row[so:], binary.LittleEndian.Uint16(row[so:])&0x7FFF)
			} else {
				binary.LittleEndian.PutUint32(row[so:], binary.LittleEndian.Uint32(row[so:])&0x7FFFFFFF)
			}
		}
	}
	q8DotRef(l, m, ax, lay, aw, rb, n, abs)
	out := make([]float64, m*n)
	eps := math.Pow(2, -23)
	for i := range out {
		out[i] = 2*float64(lay.kc+1)*eps*float64(abs[i])*1.01 + 1e-30
	}
	return out
}

// BenchmarkGemmPackedQ8Prefill runs a prefill's products of a 1B Llama
// (512 rows of A; 2048→2048 and 2048→8192, 8192→2048; and 256→2048, whose
// packed tiles stay in L1) on 8-bit weights
// with the row kernels (avx2: four rows of A a pass) and with the VNNI
// tiles (avx512-vnni), interleaved in one run: GMAC/s is m·n·k per
// second, GMAC/cpu-s per second of the process's CPU time (with -cpu 1 the
// kernels run on one thread, and a busy machine's time slices drop out).
//
//	go test ./cpu -run - -bench GemmPackedQ8Prefill -cpu 1 -count 5
func BenchmarkGemmPackedQ8Prefill(b *testing.B) {
	formats := []backend.PackedFormat{
		gguf.TypeQ8_0,
		quant.RowFormat{Bits: 8, Signed: true, Symmetric: true}, // per channel: Group set to k
	}
	sets := []string{"avx2", "avx512-vnni"}
	for _, sz := range [][3]int{{512, 2048, 2048}, {512, 8192, 2048}, {512, 2048, 8192}, {512, 2048, 256}} {
		m, n, k := sz[0], sz[1], sz[2]
		rnd := rand.New(rand.NewPCG(1, 1))
		a := make([]float32, m*k)
		for i := range a {
			a[i] = float32(rnd.NormFloat64())
		}
		c := make([]float32, m*n)
		for _, f := range formats {
			if rf, ok := f.(quant.RowFormat); ok && rf.Group == 0 {
				rf.Group = k
				f = rf
			}
			data := randPacked(rnd, f, n, k)
			for _, set := range sets {
				if !slices.Contains(KernelSets(), set) {
					continue
				}
				b.Run(fmt.Sprintf("%v/%s/m=%d/n=%d/k=%d", f, set, m, n, k), func(b *testing.B) {
					defer UseKernelSet(set)()
					cpu0, cpuOK := testenv.ProcessCPU()
					for b.Loop() {
						GemmPacked(m, n, k, a, f, data, c)
					}
					ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
					b.ReportMetric(float64(m)*float64(n)*float64(k)/ns, "GMAC/s")
					if cpu1, ok := testenv.ProcessCPU(); ok && cpuOK {
						// Per CPU second: steadier on a shared machine.
						b.ReportMetric(float64(m)*float64(n)*float64(k)*float64(b.N)/float64((cpu1-cpu0).Nanoseconds()), "GMAC/cpu-s")
					}
				})
			}
		}
	}
}
