package cpu

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/backend/backendtest"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/quant"
)

// The interleaved kernels (packedq8_rows8.go) against the float64 product
// of the weights the format's DecodeRows gives (on the rows before
// repacking) with the activations rounded by refQ8, and against the
// row-by-row integer path.

// rows8Cases are the packedq8 cases whose layout repackRows8 takes.
func rows8Cases() []packedCase {
	var cs []packedCase
	for _, pc := range q8Cases() {
		if _, ok := rows8Layout(pc.f, pc.k); ok {
			cs = append(cs, pc)
		}
	}
	return cs
}

// TestRows8Cases makes sure the cases cover every format with
// interleaved kernels, tails and all.
func TestRows8Cases(t *testing.T) {
	kinds := map[pkKind]bool{}
	tails := 0
	for _, pc := range rows8Cases() {
		l, _ := rows8Layout(pc.f, pc.k)
		kinds[l.kind] = true
		if l.last%32 != 0 {
			tails++
		}
	}
	if len(kinds) != 5 || tails == 0 {
		t.Errorf("rows8 cases cover kinds %v, %d with a partial chunk", kinds, tails)
	}
	for _, f := range []backend.PackedFormat{gguf.TypeQ8_0, gguf.TypeQ4_K, quant.RowFormat{Bits: 4, Signed: true, Group: 48}, quant.RowFormat{Bits: 8, Signed: true, Symmetric: true, Group: 128}} {
		if _, ok := rows8Layout(f, 256); ok {
			t.Errorf("%v: repacked, want its own layout", f)
		}
	}
}

// TestRepackRows8 checks that unpackRows8 undoes repackRows8, in place and
// not, that the rows past the last group of eight are left as they were,
// and that the chunk codes land where the kernels read them.
func TestRepackRows8(t *testing.T) {
	rnd := rand.New(rand.NewPCG(9, 9))
	for _, pc := range rows8Cases() {
		l, _ := rows8Layout(pc.f, pc.k)
		rb, _ := pc.f.RowBytes(pc.k)
		for _, n := range []int{8, 13, 24} {
			name := fmt.Sprintf("%v k=%d n=%d", pc.f, pc.k, n)
			src := randPacked(rnd, pc.f, n, pc.k)
			orig := bytes.Clone(src)
			dst := make([]byte, len(src))
			repackRows8(l, dst, src, n, rb)
			if !bytes.Equal(src, orig) {
				t.Fatalf("%s: repackRows8 wrote its source", name)
			}
			n8 := n &^ 7
			if !bytes.Equal(dst[n8*rb:], src[n8*rb:]) {
				t.Errorf("%s: rows past the groups of eight moved", name)
			}
			if l.last >= 32 {
				// Row 3's element 8w+4+i of chunk 0 (block 0) is the high
				// nibble of byte 4·3+i of word w.
				w := make([]float32, n*pc.k)
				pc.f.DecodeRows(w, src, pc.k)
				hs := pkFormats[l.kind].hdr()
				sc := rows8Scales(&pkFormats[l.kind], dst)[3]
				zp := rows8Zeros(&pkFormats[l.kind], dst)[3]
				for e := range 32 {
					v := dst[8*hs+32*(e/8)+4*3+e%4]
					u := int32(v & 0x0F)
					if e%8 >= 4 {
						u = int32(v >> 4)
					}
					if got, want := float32(u+l.rows8Offset()-zp)*sc, w[3*pc.k+e]; got != want {
						t.Fatalf("%s: element %d of row 3 decodes from the interleaved bytes to %g, want %g", name, e, got, want)
					}
				}
			}
			// packChunk against the codes one by one (chunkCodes).
			hs := pkFormats[l.kind].hdr()
			for ct := range l.last / 32 {
				var u [32]byte
				got, want := make([]byte, 128), make([]byte, 128)
				for r := range 8 {
					codes := src[r*rb+hs:]
					l.packChunk(got, r, codes, ct)
					l.chunkCodes(&u, codes, ct)
					for w := range 4 {
						for i := range 4 {
							want[32*w+4*r+i] = u[8*w+i] | u[8*w+4+i]<<4
						}
					}
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%s: packChunk of chunk %d: % x, want % x", name, ct, got, want)
				}
			}
			back := make([]byte, len(dst))
			unpackRows8(l, back, dst, n, rb)
			if !bytes.Equal(back, orig) {
				t.Fatalf("%s: unpackRows8(repackRows8(x)) differs from x", name)
			}
			repackRows8(l, src, src, n, rb)
			if !bytes.Equal(src, dst) {
				t.Fatalf("%s: in place, repackRows8 gives other bytes", name)
			}
			unpackRows8(l, src, src, n, rb)
			if !bytes.Equal(src, orig) {
				t.Fatalf("%s: in place, unpackRows8 does not undo repackRows8", name)
			}
		}
	}
}

// TestRepackRows8Threads repacks a weight large enough to be split over
// threads and checks that the result is the one-thread one's.
func TestRepackRows8Threads(t *testing.T) {
	rnd := rand.New(rand.NewPCG(13, 13))
	for _, f := range []backend.PackedFormat{gguf.TypeQ4_0, quant.RowFormat{Bits: 4, Group: 128}} {
		const n, k = 2051, 2048
		l, _ := rows8Layout(f, k)
		rb, _ := f.RowBytes(k)
		src := randPacked(rnd, f, n, k)
		one, two := make([]byte, len(src)), make([]byte, len(src))
		prev := SetThreads(1)
		repackRows8(l, one, src, n, rb)
		SetThreads(2)
		if workers(n/8, len(src), 1<<20) < 2 {
			t.Fatalf("%v: the repacking of %d bytes is not split", f, len(src))
		}
		repackRows8(l, two, src, n, rb)
		SetThreads(prev)
		if !bytes.Equal(one, two) {
			t.Errorf("%v: repacked on two threads, the bytes differ from one thread's", f)
		}
		unpackRows8(l, two, two, n, rb)
		if !bytes.Equal(two, src) {
			t.Errorf("%v: unpackRows8 on two threads does not undo repackRows8", f)
		}
	}
}

// TestPackedDotQ8R8 runs the interleaved kernels and their Go twin for 1
// to 4 rows of activations on rows in groups of eight and a few past
// them, split at a group's edge, against the float64 product (checkQ8).
func TestPackedDotQ8R8(t *testing.T) {
	rnd := rand.New(rand.NewPCG(10, 10))
	const n = 21 // two groups of eight, five rows in the format's layout
	for _, pc := range rows8Cases() {
		f, k := pc.f, pc.k
		l, _ := rows8Layout(f, k)
		data := randPacked(rnd, f, n, k)
		rb, _ := f.RowBytes(k)
		rep := make([]byte, len(data))
		repackRows8(l, rep, data, n, rb)
		lay := newQ8Layout(l, k)
		for m := 1; m <= packedFusedRows; m++ {
			a := make([]float32, m*k)
			for i := range a {
				a[i] = float32(rnd.NormFloat64())
			}
			x := make([]byte, m*lay.ldx)
			quantizeQ8(x, a, m, k, l, lay)
			name := fmt.Sprintf("%v k=%d m=%d", f, k, m)
			c := make([]float32, m*n)
			packedDotQ8R8Go(l, m, x, lay, rep, rb, 16, c, n)
			packedTailQ8R8Go(l, m, x, lay, rep, rb, 16, c, n)
			packedDotQ8Go(l, m, x, lay, rep[16*rb:], rb, n-16, c[16:], n)
			checkQ8(t, name+" Go twin", m, n, k, a, f, data, c)
			for _, set := range KernelSets() {
				restore := UseKernelSet(set)
				kern := packedQ8KernelFor(l, m)
				clear(c)
				packedDotQ8(l, m, n, x, lay, rep, rb, c, 0, 8)
				packedDotQ8(l, m, n, x, lay, rep, rb, c, 8, 19)
				packedDotQ8(l, m, n, x, lay, rep, rb, c, 19, n)
				restore()
				checkQ8(t, name+" "+set, m, n, k, a, f, data, c)
				if set != "generic" && kern == nil {
					t.Errorf("%s %s: no assembly kernel", name, set)
				}
			}
		}
	}
}

// TestPackedDotQ8R8Exact is TestPackedDotQ8Exact for the interleaved
// kernels: weight scales 1 or 2 and activations whose chunks have scales
// that are powers of two, so that every sum is exact in float32 and a
// dropped, repeated or misplaced product shows however small it is.
func TestPackedDotQ8R8Exact(t *testing.T) {
	rnd := rand.New(rand.NewPCG(11, 11))
	const n = 19
	for _, pc := range rows8Cases() {
		f, k := pc.f, pc.k
		if k > 260 {
			continue
		}
		l, _ := rows8Layout(f, k)
		data := randPacked(rnd, f, n, k)
		rb, _ := f.RowBytes(k)
		p := &pkFormats[l.kind]
		for r := range n {
			row := data[r*rb : (r+1)*rb]
			for b := range l.blocks {
				cnt := l.group
				if b == l.blocks-1 {
					cnt = l.last
				}
				if p.f16 {
					binary.LittleEndian.PutUint16(row, 0x3C00+uint16(rnd.IntN(2))<<10)
				} else {
					binary.LittleEndian.PutUint32(row, math.Float32bits(float32(1+rnd.IntN(2))))
				}
				row = row[p.blockBytes(cnt):]
			}
		}
		w := make([]float32, n*k)
		f.DecodeRows(w, data, k)
		rep := make([]byte, len(data))
		repackRows8(l, rep, data, n, rb)
		lay := newQ8Layout(l, k)
		for m := 1; m <= packedFusedRows; m++ {
			a := make([]float32, m*k)
			for i := range m {
				for c := 0; c < k; c += 32 {
					e := float32(1 + rnd.IntN(2))
					blk := a[i*k+c : i*k+min(c+32, k)]
					for p := range blk {
						blk[p] = float32(rnd.IntN(3)-1) * e
					}
					blk[rnd.IntN(len(blk))] = float32(127*(2*rnd.IntN(2)-1)) * e
				}
			}
			x := make([]byte, m*lay.ldx)
			quantizeQ8(x, a, m, k, l, lay)
			for _, set := range KernelSets() {
				c := make([]float32, m*n)
				restore := UseKernelSet(set)
				packedDotQ8(l, m, n, x, lay, rep, rb, c, 0, n)
				restore()
				for i := range m {
					for j := range n {
						var s float64
						for p := range k {
							s += float64(a[i*k+p]) * float64(w[j*k+p])
						}
						if float64(c[i*n+j]) != s {
							t.Fatalf("%v k=%d m=%d %s: c[%d,%d] = %g, want %g exactly", f, k, m, set, i, j, c[i*n+j], s)
						}
					}
				}
			}
		}
	}
}

// TestGemmPackedRows8 runs the Backend's GemmPacked on weights repacked
// with RepackPacked (in place) on two threads, m from 1 to 37, against
// the exact product within ActQ8Bound, against the row-by-row integer
// path within the rounding of the float sums, and with SetExactPacked
// within the float bound.
func TestGemmPackedRows8(t *testing.T) {
	rnd := rand.New(rand.NewPCG(12, 12))
	defer SetThreads(SetThreads(2))
	be := &Backend{}
	for _, pc := range []packedCase{
		{quant.RowFormat{Bits: 4, Signed: true, Symmetric: true, Group: 128}, 512},
		{quant.RowFormat{Bits: 4, Signed: true, Symmetric: true, Group: 128}, 1000},
		{quant.RowFormat{Bits: 4, Symmetric: true, Group: 64}, 320},
		{quant.RowFormat{Bits: 4, Group: 128}, 1000},
		{quant.RowFormat{Bits: 4, Signed: true, Group: 32}, 96},
		{quant.RowFormat{Bits: 4, Signed: true, Symmetric: true, Group: 100}, 100},
		{gguf.TypeQ4_0, 512},
	} {
		ns := []int{301, 64}
		if testing.Short() {
			ns = ns[:1]
		}
		for _, n := range ns {
			data := randPackedQ8(rnd, pc.f, n, pc.k)
			if !be.RepacksPacked(pc.f, n, pc.k) {
				t.Fatalf("%v [%d, %d]: not repacked", pc.f, n, pc.k)
			}
			rep := bytes.Clone(data)
			if err := be.RepackPacked(rep, rep, pc.f, n, pc.k); err != nil {
				t.Fatal(err)
			}
			wb, _ := be.WrapRepacked(rep)
			w := make([]float32, n*pc.k)
			pc.f.DecodeRows(w, data, pc.k)
			ms := []int{1, 2, 3, 4, 5, 2 * packedFusedRows, 37}
			if testing.Short() { // the race detector's run: each path once
				ms = []int{1, 5, 37}
			}
			for _, m := range ms {
				k := pc.k
				a := make([]float32, m*k)
				for i := range a {
					a[i] = float32(rnd.NormFloat64())
				}
				ab, _ := be.Wrap(a)
				for _, set := range KernelSets() {
					name := fmt.Sprintf("%v n=%d k=%d m=%d %s", pc.f, n, k, m, set)
					c, rows, exact := make([]float32, m*n), make([]float32, m*n), make([]float32, m*n)
					cb, _ := be.Wrap(c)
					eb, _ := be.Wrap(exact)
					restore := UseKernelSet(set)
					if err := backend.GemmPacked(be, m, ab, &backend.Packed{N: n, K: k, Format: pc.f, Data: wb}, cb); err != nil {
						t.Fatal(err)
					}
					GemmPacked(m, n, k, a, pc.f, data, rows)
					prev := SetExactPacked(true)
					err := backend.GemmPacked(be, m, ab, &backend.Packed{N: n, K: k, Format: pc.f, Data: wb}, eb)
					SetExactPacked(prev)
					restore()
					if err != nil {
						t.Fatal(err)
					}
					checkPacked(t, name+" exact", m, n, k, a, pc.f, data, exact)
					for i := range m {
						for j := range n {
							ai, wj := a[i*k:(i+1)*k], w[j*k:(j+1)*k]
							var s, abs float64
							for p := range k {
								v := float64(ai[p]) * float64(wj[p])
								s, abs = s+v, abs+math.Abs(v)
							}
							aq := backendtest.ActQ8Bound(ai, wj)
							bound := backendtest.GemmF32Bound(k, abs+aq) + aq
							got := float64(c[i*n+j])
							if !(math.Abs(got-s) <= bound) {
								t.Fatalf("%s: c[%d,%d] = %g, want %g (±%g)", name, i, j, got, s, bound)
							}
							// The same integer sums as the row-by-row kernels:
							// only the float sums' order differs.
							if d := math.Abs(got - float64(rows[i*n+j])); !(d <= backendtest.GemmF32Bound(k, abs+aq)) {
								t.Fatalf("%s: c[%d,%d] = %g, the row-by-row kernels %g", name, i, j, got, rows[i*n+j])
							}
						}
					}
				}
			}
		}
	}
}

// TestRepackPackedRefuses checks the Backend's repacking entry points on
// what they do not take.
func TestRepackPackedRefuses(t *testing.T) {
	be := &Backend{}
	q4 := gguf.TypeQ4_0
	if be.RepacksPacked(q4, 7, 64) || be.RepacksPacked(gguf.TypeQ8_0, 64, 64) || !be.RepacksPacked(q4, 8, 64) {
		t.Error("RepacksPacked: want Q4_0 of 8 rows or more only")
	}
	prev := SetExactPacked(true)
	exact := be.RepacksPacked(q4, 8, 64)
	SetExactPacked(prev)
	if exact {
		t.Error("RepacksPacked with SetExactPacked(true): true, want the format's layout for the float kernels")
	}
	data := make([]byte, 16*36)
	if err := be.RepackPacked(data, data[:len(data)-1], q4, 16, 64); err == nil {
		t.Error("RepackPacked of a short source: no error")
	}
	if err := be.RepackPacked(data, data, gguf.TypeQ8_0, 16, 64); err == nil {
		t.Error("RepackPacked of Q8_0: no error")
	}
	wb, _ := be.WrapRepacked(make([]byte, 16*68))
	a, _ := be.Wrap(make([]float32, 64))
	c, _ := be.Wrap(make([]float32, 16))
	if err := be.GemmPacked(1, a, &backend.Packed{N: 16, K: 64, Format: gguf.TypeQ8_0, Data: wb}, c); err == nil {
		t.Error("GemmPacked of Q8_0 rows from WrapRepacked: no error")
	}
}
