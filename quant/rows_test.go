package quant

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestPackRowsDecodesAsDequantize packs weights quantized under every
// scheme with a row layout and checks that DecodeRows gives, bit for bit,
// what Dequantize gives for the same codes and parameters.
func TestPackRowsDecodesAsDequantize(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		s          Scheme
		rows, cols int
		group      int // the format's group
	}{
		{Int8PerChannel, 7, 48, 48},
		{Scheme{Bits: 8, Granularity: PerChannel}, 5, 40, 40}, // uint8 asymmetric
		{Int8PerTensor, 3, 64, 64},
		{Scheme{Bits: 4, Signed: true, Symmetric: true, Granularity: PerGroup, GroupSize: 32}, 6, 96, 32},
		{Scheme{Bits: 4, Granularity: PerGroup, GroupSize: 16}, 4, 64, 16},  // uint4 asymmetric
		{Scheme{Bits: 4, Signed: true, Granularity: PerChannel}, 3, 22, 22}, // int4 asymmetric, per channel
		{Scheme{Bits: 8, Signed: true, Symmetric: true, Granularity: PerGroup, GroupSize: 8}, 2, 24, 8},
		// Groups that do not divide the rows (stories260K's down_proj is
		// 172 wide): a shorter last block; odd rows start mid-byte.
		{Scheme{Bits: 4, Signed: true, Symmetric: true, Granularity: PerGroup, GroupSize: 32}, 4, 48, 32},
		{Scheme{Bits: 4, Granularity: PerGroup, GroupSize: 16}, 3, 41, 16},
		{Scheme{Bits: 4, Signed: true, Symmetric: true, Granularity: PerChannel}, 3, 21, 22},
		{Scheme{Bits: 8, Granularity: PerGroup, GroupSize: 32}, 2, 70, 32},
		{Scheme{Bits: 4, Signed: true, Symmetric: true, Granularity: PerGroup, GroupSize: 128}, 3, 37, 38},
	} {
		x := make([]float32, c.rows*c.cols)
		for i := range x {
			x[i] = float32(rng.NormFloat64()) * float32(1+i%5)
		}
		shape := []int{c.rows, c.cols}
		p, err := FitMinMax(c.s, x, shape)
		if err != nil {
			t.Fatal(err)
		}
		codes := make([]byte, c.s.PackedLen(len(x)))
		if err := Quantize(codes, x, p); err != nil {
			t.Fatal(err)
		}
		want := make([]float32, len(x))
		if err := Dequantize(want, codes, p); err != nil {
			t.Fatal(err)
		}
		f, rows, err := PackRows(codes, p)
		if err != nil {
			t.Fatalf("%v: %v", c.s, err)
		}
		if f.Group != c.group || f.Bits != c.s.Bits || f.Signed != c.s.Signed || f.Symmetric != c.s.Symmetric {
			t.Errorf("%v: format %+v", c.s, f)
		}
		rb, err := f.RowBytes(c.cols)
		if err != nil || len(rows) != c.rows*rb {
			t.Fatalf("%v: %d bytes, row %d (%v)", c.s, len(rows), rb, err)
		}
		got := make([]float32, len(x))
		f.DecodeRows(got, rows, c.cols)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%v: value %d decodes to %g, Dequantize gives %g", c.s, i, got[i], want[i])
			}
		}
		// Rows decode alone: the last row from its own bytes.
		last := make([]float32, c.cols)
		f.DecodeRows(last, rows[(c.rows-1)*rb:], c.cols)
		for i, v := range last {
			if v != want[(c.rows-1)*c.cols+i] {
				t.Fatalf("%v: last row alone differs at %d", c.s, i)
			}
		}
	}
}

func TestPackRowsRefusesOtherLayouts(t *testing.T) {
	for _, c := range []struct {
		s     Scheme
		shape []int
		want  string
	}{
		{Scheme{Bits: 8, Signed: true, Symmetric: true, Granularity: PerChannel, Axis: 1}, []int{4, 8}, "no row layout"},
		{Scheme{Bits: 4, Signed: true, Symmetric: true, Granularity: PerGroup, GroupSize: 5}, []int{4, 20}, "odd"},
		{Int8PerChannel, []int{2, 3, 4}, "3-D"},
	} {
		p, err := NewParams(c.s, c.shape)
		if err != nil {
			t.Fatal(err)
		}
		for i := range p.Scales {
			p.Scales[i] = 1
		}
		n := 1
		for _, d := range c.shape {
			n *= d
		}
		if _, _, err := PackRows(make([]byte, c.s.PackedLen(n)), p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v on %v: %v, want an error with %q", c.s, c.shape, err, c.want)
		}
	}
	if _, err := (RowFormat{Bits: 4, Group: 31, Symmetric: true}).RowBytes(62); err == nil {
		t.Error("4-bit blocks of 31 values were accepted")
	}
	if n, err := (RowFormat{Bits: 4, Group: 32, Symmetric: true}).RowBytes(41); err != nil || n != 4+16+4+5 {
		t.Errorf("RowBytes(41) of int4 g32: %d, %v; want 29", n, err)
	}
}
