//go:build integration

package gguf

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// importanceTypes are the types whose EncodeRowsImportance must equal
// ggml_quantize_chunk with an importance matrix byte for byte: those that
// use it, and Q8_0, F16 and BF16, which ignore it.
var importanceTypes = []Type{TypeQ4_0, TypeQ4_1, TypeQ5_0, TypeQ5_1, TypeQ2_K, TypeQ3_K, TypeQ4_K, TypeQ5_K, TypeQ6_K, TypeQ8_0, TypeF16, TypeBF16}

// TestEncodeImportanceMatchesGGML quantizes, for every importance vector of
// importanceSets, the adversarial rows, random heavy-tailed rows and
// real-like rows of 256, 512 and 2816 values with EncodeRowsImportance and
// with llama.cpp's ggml_quantize_chunk(type, …, imatrix), and wants the
// same bytes for every row.
func TestEncodeImportanceMatchesGGML(t *testing.T) {
	ref := refQuantizer(t)
	for _, typ := range importanceTypes {
		t.Run(typ.String(), func(t *testing.T) {
			rows := 0
			for _, n := range []int{256, 512, 2816} {
				set := adversarialRows(n, uint64(n)+1)
				r := rand.New(rand.NewPCG(uint64(n), 9))
				for k := range 8 {
					x := make([]float32, n)
					s := math.Exp(r.NormFloat64() * 3)
					for i := range x {
						x[i] = float32(s * r.NormFloat64() / (r.Float64() + 0.05))
					}
					set = append(set, namedRow{"random heavy-tailed #" + strconv.Itoa(k), x})
				}
				set = append(set, realLikeRows(16, n, uint64(n))...)
				for _, imp := range importanceSets(n, uint64(n)) {
					rows += compareImportanceWithGGML(t, ref, typ, n, set, imp)
				}
			}
			t.Logf("%v: %d rows byte-identical to ggml_quantize_chunk with an imatrix", typ, rows)
		})
	}
}

// TestEncodeImportanceNonFiniteMatchesGGML does the same for rows with NaN
// or ±Inf (llama-quantize refuses them, the codes are still reproduced).
func TestEncodeImportanceNonFiniteMatchesGGML(t *testing.T) {
	ref := refQuantizer(t)
	for _, typ := range importanceTypes {
		for _, imp := range importanceSets(256, 3)[:3] {
			compareImportanceWithGGML(t, ref, typ, 256, nonFiniteRows(256), imp)
		}
	}
}

func compareImportanceWithGGML(t *testing.T, ref *ggmlRef, typ Type, n int, rows []namedRow, imp namedImportance) int {
	t.Helper()
	all := make([]float32, 0, n*len(rows))
	for _, r := range rows {
		all = append(all, r.x...)
	}
	want := ref.quantizeImportance(typ, n, all, imp.w)
	size, err := typ.RowSize(int64(n))
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != int(size)*len(rows) {
		t.Fatalf("ggml wrote %d bytes for %d rows of %d bytes", len(want), len(rows), size)
	}
	got := make([]byte, len(want))
	if err := EncodeRowsImportance(got, all, typ, n, imp.w); err != nil {
		t.Fatal(err)
	}
	ok, bad := 0, 0
	for k, r := range rows {
		g, w := got[k*int(size):(k+1)*int(size)], want[k*int(size):(k+1)*int(size)]
		if i := firstDiff(g, w); i >= 0 {
			if bad++; bad <= 3 {
				t.Errorf("%v, importance %q, row %q of %d: byte %d (block %d at byte %d) is %#02x, ggml %#02x",
					typ, imp.name, r.name, n, i, i/typ.TypeSize(), i%typ.TypeSize(), g[i], w[i])
			}
			continue
		}
		ok++
	}
	if bad > 3 {
		t.Errorf("%v, importance %q, rows of %d: %s", typ, imp.name, n, fmt.Sprintf("%d of %d rows differ", bad, len(rows)))
	}
	return ok
}

// TestImportanceGoldenFromGGML recomputes importanceGolden from llama.cpp's
// own output and wants the committed digests (printing them, for a new
// llama.cpp release).
func TestImportanceGoldenFromGGML(t *testing.T) {
	ref := refQuantizer(t)
	x, sets := importanceGoldenRows()
	for _, typ := range importanceTypes {
		if !typ.UsesImportance() {
			continue
		}
		h := sha256.New()
		for _, imp := range sets {
			h.Write(ref.quantizeImportance(typ, 512, x, imp.w))
		}
		got := hex.EncodeToString(h.Sum(nil))
		t.Logf("Type%v: %q,", typ, got)
		if importanceGolden[typ] != got {
			t.Errorf("%v: ggml's digest is %s, importanceGolden has %q", typ, got, importanceGolden[typ])
		}
	}
}
