package gguf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// withKernels runs f with the kernels of legacy_amd64.s on (where the
// build and processor have them) and then off.
func withKernels(t *testing.T, f func(t *testing.T)) {
	prev := useAVX2
	defer func() { useAVX2 = prev }()
	for _, on := range []bool{true, false} {
		useAVX2 = prev && on
		t.Run(fmt.Sprintf("kernels=%v", legacyKernels()), f)
	}
}

// needKernels skips a test that calls the kernels by name where they
// are assembly the processor cannot run (or QUANTKIT_NOASM is set).
func needKernels(t *testing.T) {
	if !legacyKernels() && !noasmBuild {
		t.Skip("no AVX2 and F16C kernels here")
	}
}

// legacyBlocks are blocks of 32 meant to reach every case of the Q8_0
// and Q4_0 kernels: exact ties of their roundings at many scales and
// their float32 neighbours, zeros of both signs, largest magnitudes of
// both signs repeated, subnormal values and scales, values near the
// float32 maximum, NaN and Inf, and random blocks at random scales.
func legacyBlocks(seed uint64) [][]float32 {
	r := rand.New(rand.NewPCG(seed, 15))
	var bs [][]float32
	block := func(f func(j int) float32) {
		b := make([]float32, 32)
		for j := range b {
			b[j] = f(j)
		}
		bs = append(bs, b)
	}
	negZero := float32(math.Copysign(0, -1))
	up := func(f float32, k int) float32 {
		for range k {
			f = math.Nextafter32(f, float32(math.Inf(1)))
		}
		return f
	}
	down := func(f float32, k int) float32 {
		for range k {
			f = math.Nextafter32(f, float32(math.Inf(-1)))
		}
		return f
	}
	for e := -126; e <= 120; e += 3 {
		s := float32(math.Ldexp(1, e))
		// Q8_0: amax = 127·2^e gives d = 2^e and id = 2^-e exactly, so
		// x·id is k+0.5 exactly, and its neighbours one ulp off.
		for k := range 3 {
			block(func(j int) float32 {
				if j == 31 {
					return 127 * s * float32(1-2*(k%2))
				}
				h := float32(j%128) + 0.5
				if j%2 == 1 {
					h = -float32(127-j*4) - 0.5
				}
				return [](func(float32, int) float32){func(f float32, _ int) float32 { return f }, up, down}[k](h, 1) * s
			})
		}
		// Q4_0: max = -8·2^e gives d = 2^e, so x·id + 8.5 lands on
		// integers and halves.
		block(func(j int) float32 {
			if j == 3 {
				return -8 * s
			}
			return (float32(j%33)/2 - 8) * s
		})
	}
	// Largest magnitude of both signs, in both orders, and repeated.
	for _, order := range [][2]float32{{-5, 5}, {5, -5}, {5, 5}, {-5, -5}} {
		for _, at := range [][2]int{{0, 31}, {17, 9}, {8, 16}, {30, 31}} {
			block(func(j int) float32 {
				switch j {
				case at[0]:
					return order[0]
				case at[1]:
					return order[1]
				}
				return float32(r.NormFloat64())
			})
		}
	}
	block(func(int) float32 { return 0 })
	block(func(int) float32 { return negZero })
	block(func(j int) float32 { return [2]float32{0, negZero}[j%2] })
	block(func(j int) float32 {
		if j == 20 {
			return negZero
		}
		return 0
	})
	// Subnormal values: subnormal scales (left to the Go code), and d just
	// above and below the smallest normal.
	block(func(j int) float32 { return math.Float32frombits(uint32(j + 1)) })
	block(func(j int) float32 { return -math.Float32frombits(uint32(r.IntN(1 << 23))) })
	minNormal := float32(0x1p-126)
	for _, m := range []float32{127 * minNormal, down(127*minNormal, 1), up(127*minNormal, 1), 8 * minNormal, down(8*minNormal, 1), up(8*minNormal, 1), 126 * minNormal, 9 * minNormal} {
		block(func(j int) float32 {
			if j == 7 {
				return -m
			}
			return m * float32(r.Float64()*2-1)
		})
	}
	// Huge: near the float32 maximum, and beyond float16's range.
	block(func(j int) float32 { return math.MaxFloat32 * float32(r.Float64()*2-1) })
	block(func(j int) float32 { return [2]float32{math.MaxFloat32, -math.MaxFloat32}[j%2] })
	block(func(j int) float32 { return 1e30 * float32(r.NormFloat64()) })
	// Non-finite.
	for _, v := range []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), math.Float32frombits(0xff800001), math.Float32frombits(0x7fc0ffff)} {
		for _, at := range []int{0, 13, 31} {
			block(func(j int) float32 {
				if j == at {
					return v
				}
				return float32(r.NormFloat64())
			})
		}
	}
	// Random blocks at random scales, some with random bit patterns.
	for range 4000 {
		s := float32(math.Exp(r.NormFloat64() * 20))
		kind := r.IntN(4)
		block(func(j int) float32 {
			switch kind {
			case 0:
				return s * float32(r.NormFloat64())
			case 1:
				return s * float32(r.NormFloat64()/(r.Float64()+1e-3))
			case 2:
				return s * float32(r.IntN(255)-127) / 2
			}
			return math.Float32frombits(r.Uint32())
		})
	}
	return bs
}

// blockLeft reports whether a Q8_0 (q8) or Q4_0 block is one the kernels
// leave to the Go code: a NaN or Inf in it, or a subnormal scale d.
func blockLeft(q8 bool, xb []float32) bool {
	var amax, vmax float32
	for _, v := range xb {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return true
		}
		if a := abs32(v); a > amax {
			amax, vmax = a, v
		}
	}
	d := vmax / -8
	if q8 {
		d = amax / 127
	}
	return d != 0 && abs32(d) < 0x1p-126
}

// The Q8_0 and Q4_0 kernels write what their Go twins write, block for
// block, and stop exactly at the first block they must leave (a NaN or
// Inf in it, or a subnormal scale); the quantizers, which go on past such
// blocks, write the same bytes with the kernels and without.
func TestLegacyQuantKernelsMatchGo(t *testing.T) {
	needKernels(t)
	var x []float32
	for _, b := range legacyBlocks(1) {
		x = append(x, b...)
	}
	for _, c := range []struct {
		name   string
		q8     bool
		size   int
		kernel func([]byte, []float32) int
		twin   func([]byte, []float32) int
	}{
		{"Q8_0", true, blockQ8_0Size, quantizeQ8_0AVX2, quantizeQ8_0Go},
		{"Q4_0", false, blockQ4_0Size, quantizeQ4_0AVX2, quantizeQ4_0Go},
	} {
		t.Run(c.name, func(t *testing.T) {
			nb := len(x) / 32
			want := make([]byte, nb*c.size)
			c.twin(want, x)
			got := bytes.Repeat([]byte{0xa5}, nb*c.size+7)
			in := slices.Clone(x)
			left := 0
			for i := 0; i < nb; {
				k := c.kernel(got[i*c.size:nb*c.size], in[i*32:])
				for j := i; j < i+k; j++ {
					if blockLeft(c.q8, x[j*32:(j+1)*32]) && !noasmBuild {
						t.Fatalf("block %d: the kernel quantized a block it must leave: %v", j, x[j*32:(j+1)*32])
					}
				}
				i += k
				if i < nb {
					if !blockLeft(c.q8, x[i*32:(i+1)*32]) {
						t.Fatalf("block %d: the kernel stopped at a block it can do: %v", i, x[i*32:(i+1)*32])
					}
					copy(got[i*c.size:], want[i*c.size:(i+1)*c.size])
					i++
					left++
				}
			}
			if left == 0 && !noasmBuild {
				t.Errorf("no block was left to the Go code")
			}
			if !bytes.Equal(got[nb*c.size:], bytes.Repeat([]byte{0xa5}, 7)) {
				t.Errorf("wrote past the blocks: % x", got[nb*c.size:])
			}
			if i := firstDiffBytes(got[:nb*c.size], want); i >= 0 {
				b := i / c.size
				t.Fatalf("block %d, byte %d: kernel %#02x, Go %#02x; block %v", b, i%c.size, got[i], want[i], x[b*32:(b+1)*32])
			}
			if !slices.EqualFunc(in, x, func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }) {
				t.Errorf("input modified")
			}
		})
	}
	withKernels(t, func(t *testing.T) {
		for _, c := range []struct {
			name string
			q    func([]byte, []float32)
			size int
			ref  func([]float32) []byte
		}{
			{"Q8_0", QuantizeQ8_0, blockQ8_0Size, refQuantizeRowQ8_0},
			{"Q4_0", QuantizeQ4_0, blockQ4_0Size, refQuantizeRowQ4_0},
		} {
			want := c.ref(x)
			got := make([]byte, len(want))
			c.q(got, x)
			if i := firstDiffBytes(got, want); i >= 0 {
				b := i / c.size
				t.Errorf("%s: block %d, byte %d: %#02x, transcription %#02x; block %v", c.name, b, i%c.size, got[i], want[i], x[b*32:(b+1)*32])
			}
		}
	})
}

// Q8_0 rounds every x·id of a block half away from zero: with amax = 127
// (d = id = 1), x·id is x itself, so blocks of every float32 in [1/4, 2)
// and ±64 ulps around every half-integer up to 127, of both signs, test
// the rounding on its own, against the transcription of roundf. Q4_0
// likewise, with max = -8 (d = id = 1), around every point where
// x + 8.5 crosses an integer.
func TestLegacyQuantRounding(t *testing.T) {
	x8, x4 := roundingRows()
	withKernels(t, func(t *testing.T) {
		for _, c := range []struct {
			name string
			x    []float32
			q    func([]byte, []float32)
			size int
			ref  func([]float32) []byte
		}{
			{"Q8_0", x8, QuantizeQ8_0, blockQ8_0Size, refQuantizeRowQ8_0},
			{"Q4_0", x4, QuantizeQ4_0, blockQ4_0Size, refQuantizeRowQ4_0},
		} {
			want := c.ref(c.x)
			got := make([]byte, len(want))
			c.q(got, c.x)
			if i := firstDiffBytes(got, want); i >= 0 {
				b := i / c.size
				t.Errorf("%s: block %d, byte %d: %#02x, transcription %#02x; block %v", c.name, b, i%c.size, got[i], want[i], c.x[b*32:(b+1)*32])
			}
		}
	})
}

// roundingRows returns the Q8_0 and Q4_0 rows of TestLegacyQuantRounding.
func roundingRows() (x8, x4 []float32) {
	var vals []float32
	for b := math.Float32bits(0.25); b < math.Float32bits(2); b++ {
		vals = append(vals, math.Float32frombits(b))
	}
	for k := range 128 {
		h := float32(k) + 0.5
		for u := -64; u <= 64; u++ {
			v := math.Float32frombits(uint32(int32(math.Float32bits(h)) + int32(u)))
			if v <= 127 {
				vals = append(vals, v, -v)
			}
		}
	}
	var q4 []float32
	for n := range 18 {
		c := float32(n) - 8.5
		for u := -64; u <= 64; u++ {
			v := math.Float32frombits(uint32(int32(math.Float32bits(c)) + int32(u)))
			if abs32(v) <= 8 {
				q4 = append(q4, v)
			}
		}
	}
	for b := math.Float32bits(0.25); b < math.Float32bits(2); b += 7 {
		q4 = append(q4, math.Float32frombits(b), -math.Float32frombits(b))
	}
	rows := func(vals []float32, lead float32) []float32 {
		var x []float32
		for i := 0; i < len(vals); i += 31 {
			x = append(x, lead)
			x = append(x, vals[i:min(i+31, len(vals))]...)
		}
		for len(x)%32 != 0 {
			x = append(x, 0)
		}
		return x
	}
	return rows(vals, 127), rows(q4, -8)
}

// halfBitsValues are float32 values whose high bits run through every
// pattern and whose low bits (those F16 or BF16 rounds away) are the
// patterns around a tie: zero, one, just below and at and just above
// half, all ones, and random. keep is the number of high bits.
func halfBitsValues(keep int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 0))
	low := uint32(32 - keep)
	half := uint32(1) << (low - 1)
	var vals []float32
	for hi := range uint32(1) << keep {
		for _, lo := range []uint32{0, 1, half - 1, half, half + 1, 1<<low - 1, r.Uint32() & (1<<low - 1)} {
			vals = append(vals, math.Float32frombits(hi<<low|lo))
		}
	}
	return vals
}

// The F16 and BF16 kernels write what their Go twins write for floats of
// every sign, exponent and kept mantissa with every rounding case of the
// dropped bits (NaNs of every payload, infinities, subnormals, overflow to
// Inf), at every length of tail, and nothing past 2·len(src).
func TestLegacyEncodeKernelsMatchGo(t *testing.T) {
	needKernels(t)
	for _, c := range []struct {
		name   string
		vals   []float32
		kernel func([]byte, []float32)
		twin   func([]byte, []float32)
		group  int
	}{
		{"F16", halfBitsValues(19, 1), encodeF16AVX2, encodeF16Go, 8},
		{"BF16", halfBitsValues(16, 2), encodeBF16AVX2, encodeBF16Go, 16},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := make([]byte, 2*len(c.vals))
			c.twin(want, c.vals)
			for _, n := range []int{len(c.vals), len(c.vals) - 1, 3*c.group + 5, c.group, c.group - 1, 1, 0} {
				got := bytes.Repeat([]byte{0xa5}, 2*n+5)
				c.kernel(got, c.vals[:n])
				m := n &^ (c.group - 1)
				if i := firstDiffBytes(got[:2*m], want[:2*m]); i >= 0 {
					v := c.vals[i/2]
					t.Fatalf("n=%d: value %d (%#08x): kernel %#04x, Go %#04x", n, i/2, math.Float32bits(v),
						binary.LittleEndian.Uint16(got[i&^1:]), binary.LittleEndian.Uint16(want[i&^1:]))
				}
				if !bytes.Equal(got[2*m:], bytes.Repeat([]byte{0xa5}, len(got)-2*m)) {
					t.Fatalf("n=%d: the kernel wrote past its %d whole groups", n, m/c.group)
				}
			}
		})
	}
	// Through EncodeFloat32, with kernels and without, against ggml's
	// transcribed conversions.
	vals := halfBitsValues(19, 3)
	withKernels(t, func(t *testing.T) {
		for _, c := range []struct {
			typ Type
			ref func(float32) uint16
		}{{TypeF16, ggmlComputeFP32ToFP16}, {TypeBF16, ggmlComputeFP32ToBF16}} {
			got := make([]byte, 2*len(vals)-2)
			if err := EncodeFloat32(got, vals[1:], c.typ); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals[1:] {
				if h, want := binary.LittleEndian.Uint16(got[2*i:]), c.ref(v); h != want {
					t.Fatalf("%v of %#08x: %#04x, ggml %#04x", c.typ, math.Float32bits(v), h, want)
				}
			}
		}
	})
}

// With the kernels off, Q8_0 and Q4_0 still match their transcriptions on
// the rows of their reference tests.
func TestQuantizeQ8_0Q4_0GenericMatchReference(t *testing.T) {
	prev := useAVX2
	useAVX2 = false
	defer func() { useAVX2 = prev }()
	TestQuantizeQ8_0MatchesReference(t)
	TestQuantizeQ4_0MatchesReference(t)
}

func BenchmarkQuantizeQ8_0Generic_1M(b *testing.B) {
	prev := useAVX2
	useAVX2 = false
	defer func() { useAVX2 = prev }()
	benchQuant(b, QuantizeQ8_0, blockQ8_0Size)
}
