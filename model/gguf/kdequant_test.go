package gguf

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// kdequantHalves are float16 scales that stress the dequantizers: zeros,
// subnormals, the largest finite, infinities and NaNs (quiet, signalling,
// with payloads), beside random finite ones.
var kdequantHalves = []uint16{0x0000, 0x8000, 0x0001, 0x83ff, 0x0400, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00, 0x7c01, 0xfe5a, 0x7d23, 0x3c00, 0xbc00}

// TestDequantizeKAVX2 checks that the exported K-quant dequantizers (the
// AVX2 kernels where the processor has them) give, bit for bit, what the
// scalar transcriptions of ggml's dequantize_row_q*_K give, on random
// blocks whose float16 scales include zeros, subnormals, ±Inf and NaNs,
// with all-zero and all-ones codes and extreme sub-block scales.
func TestDequantizeKAVX2(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 kernels in this build or on this processor")
	}
	cases := []struct {
		name  string
		size  int
		halfs []int // offsets of the float16 scales
		fast  func([]float32, []byte)
		ref   func([]float32, []byte, int)
	}{
		{"Q4_K", blockQ4_KSize, []int{0, 2}, DequantizeQ4_K, dequantizeQ4_KGo},
		{"Q5_K", blockQ5_KSize, []int{0, 2}, DequantizeQ5_K, dequantizeQ5_KGo},
		{"Q6_K", blockQ6_KSize, []int{blockQ6_KSize - 2}, DequantizeQ6_K, dequantizeQ6_KGo},
	}
	r := rand.New(rand.NewPCG(17, 3))
	for _, c := range cases {
		const nb = 400
		src := make([]byte, nb*c.size)
		for i := range src {
			src[i] = byte(r.Uint32())
		}
		for b := range nb {
			blk := src[b*c.size : (b+1)*c.size]
			switch b % 8 {
			case 1: // all codes and scales zero
				clear(blk)
			case 2: // all bits set (Q6_K sub-block scales −1, Q4_K 63s)
				for i := range blk {
					blk[i] = 0xff
				}
			case 3: // Q6_K's extreme int8 scales
				for i := range 16 {
					if c.name == "Q6_K" {
						blk[192+i] = []byte{0x80, 0x7f}[i&1]
					}
				}
			}
			for _, off := range c.halfs {
				h := uint16(r.Uint32())
				if b%3 != 0 {
					h = kdequantHalves[r.IntN(len(kdequantHalves))]
				}
				binary.LittleEndian.PutUint16(blk[off:], h)
			}
		}
		got := make([]float32, nb*QK_K)
		want := make([]float32, nb*QK_K)
		for i := range got {
			got[i] = float32(math.NaN())
		}
		c.fast(got, src)
		c.ref(want, src, nb)
		bad := 0
		for i := range got {
			if g, w := math.Float32bits(got[i]), math.Float32bits(want[i]); g != w {
				if bad++; bad <= 5 {
					t.Errorf("%s block %d element %d: %#08x (%g), scalar gives %#08x (%g)", c.name, i/QK_K, i%QK_K, g, got[i], w, want[i])
				}
			}
		}
		if bad > 5 {
			t.Errorf("%s: %d elements differ", c.name, bad)
		}
	}
}

func BenchmarkDequantizeQ5_K_1M(b *testing.B) { benchDequant(b, TypeQ5_K) }
