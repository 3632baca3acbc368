//go:build integration

package gguf

import "testing"

// TestLegacyKernelsMatchGGML quantizes the kernel tests' blocks (ties at
// every scale, both-sign maxima, subnormal scales, NaN and Inf, random
// scales) to Q8_0 and Q4_0, one block per row, the rows of
// TestLegacyQuantRounding, and the F16/BF16 rounding cases, with EncodeFloat32 and with llama.cpp's ggml_quantize_chunk, and
// wants the same bytes.
func TestLegacyKernelsMatchGGML(t *testing.T) {
	ref := refQuantizer(t)
	var rows []namedRow
	for _, b := range legacyBlocks(2) {
		rows = append(rows, namedRow{"block", b})
	}
	for _, typ := range []Type{TypeQ8_0, TypeQ4_0} {
		n := compareWithGGML(t, ref, typ, 32, rows)
		t.Logf("%v: %d blocks byte-identical", typ, n)
	}
	x8, x4 := roundingRows()
	for _, c := range []struct {
		typ Type
		x   []float32
	}{{TypeQ8_0, x8}, {TypeQ4_0, x4}} {
		var rows []namedRow
		for i := 0; i < len(c.x); i += 4096 {
			r := make([]float32, 4096)
			copy(r, c.x[i:])
			rows = append(rows, namedRow{"rounding cases", r})
		}
		n := compareWithGGML(t, ref, c.typ, 4096, rows)
		t.Logf("%v: %d rows of 4096 rounding cases byte-identical", c.typ, n)
	}
	for _, c := range []struct {
		typ  Type
		keep int
	}{{TypeF16, 19}, {TypeBF16, 16}} {
		vals := halfBitsValues(c.keep, 4)
		var rows []namedRow
		for i := 0; i+4096 <= len(vals); i += 4096 {
			rows = append(rows, namedRow{"rounding cases", vals[i : i+4096]})
		}
		n := compareWithGGML(t, ref, c.typ, 4096, rows)
		t.Logf("%v: %d rows of 4096 byte-identical", c.typ, n)
	}
}
