package gguf

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// importanceGoldenRows is the fixed input of TestEncodeImportanceGolden:
// the adversarial and real-like rows of 512 values, each quantized under
// the first five importance vectors of importanceSets.
func importanceGoldenRows() (x []float32, sets []namedImportance) {
	const n = 512
	rows := append(adversarialRows(n, 1), realLikeRows(8, n, 1)...)
	for _, r := range rows {
		x = append(x, r.x...)
	}
	return x, importanceSets(n, 1)[:5]
}

// importanceGolden are SHA-256 digests of ggml_quantize_chunk's output
// (llama.cpp v0.4.0-80fb11ac73e6, node-llama-cpp 3.21.1) for the rows of
// importanceGoldenRows under each importance vector, one after the other,
// as TestImportanceGoldenFromGGML prints them in make integration.
var importanceGolden = map[Type]string{
	TypeQ4_0: "83b6ca3ff434318f79e6ff0c9ea08b4ccbcdde15d207ca8ca83e33a4b7310c58",
	TypeQ4_1: "ed85231b9f02c3e04b4b201e62c2c21ca77787160380d550b31acf4b58dd2dca",
	TypeQ5_0: "28483acbfcebd7b5591275b2ee27a626bcfabb545a17efe11e46ab0d6387d0c0",
	TypeQ5_1: "b4a557e01f83875e34c11414e1ecb6df15d14a3e09d5af00246035b0aee919e4",
	TypeQ2_K: "0788d14cd89b6d326b36ac64facd709ffab5a7ceb5f57713304b03b50a59958a",
	TypeQ3_K: "b66c652caba008d735519245f0fbaf0fa6810d33b72e3ec0c598c6a0a929a38b",
	TypeQ4_K: "67854fc09a60f037c373a812902f979946f681271bf8b9abbc58aa47c802d46a",
	TypeQ5_K: "b1b462176da98cacde5173191b2c818fbf8637bae92ca42a16515e996c863306",
	TypeQ6_K: "cd9f19af0866726c0f907864c92f2acde03d4a6747d9dec743e5a05094129eb4",
}

// TestEncodeImportanceGolden checks EncodeRowsImportance against ggml's own
// bytes without llama.cpp at hand, on the AVX2 kernels and on the pure-Go
// twins.
func TestEncodeImportanceGolden(t *testing.T) {
	x, sets := importanceGoldenRows()
	for _, asm := range []bool{true, false} {
		if asm && !useAVX2 {
			continue
		}
		defer func(v bool) { useAVX2 = v }(useAVX2)
		useAVX2 = asm
		for typ, want := range importanceGolden {
			if got := importanceDigest(t, typ, x, sets); got != want {
				t.Errorf("%v (AVX2 %v): digest %s, ggml's %s", typ, asm, got, want)
			}
		}
	}
	for typ := range importanceQuantizers {
		if Type(typ).UsesImportance() && importanceGolden[Type(typ)] == "" {
			t.Errorf("%v uses importance and has no golden digest", Type(typ))
		}
	}
}

func importanceDigest(t *testing.T, typ Type, x []float32, sets []namedImportance) string {
	t.Helper()
	const n = 512
	size, _ := typ.RowSize(int64(len(x)))
	h := sha256.New()
	dst := make([]byte, size)
	for _, imp := range sets {
		if err := EncodeRowsImportance(dst, x, typ, n, imp.w); err != nil {
			t.Fatal(err)
		}
		h.Write(dst)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestImportanceOfSquaresIsQ6_K: Q6_K's importance path weighs by the
// importance where the plain one weighs by x², so importance x[j]² on a
// one-row input gives QuantizeQ6_K's bytes.
func TestImportanceOfSquaresIsQ6_K(t *testing.T) {
	for _, r := range adversarialRows(256, 4) {
		w := make([]float32, len(r.x))
		for j, v := range r.x {
			w[j] = float32(v * v)
		}
		want := make([]byte, blockQ6_KSize)
		QuantizeQ6_K(want, r.x)
		got := make([]byte, blockQ6_KSize)
		if err := EncodeRowsImportance(got, r.x, TypeQ6_K, 256, w); err != nil {
			t.Fatal(err)
		}
		if i := firstDiffBytes(got, want); i >= 0 {
			t.Errorf("row %q: byte %d is %#02x, QuantizeQ6_K's %#02x", r.name, i, got[i], want[i])
		}
	}
}

// TestEncodeRowsImportanceChecks covers the argument checks and the types
// that ignore importance.
func TestEncodeRowsImportanceChecks(t *testing.T) {
	x := make([]float32, 512)
	for i := range x {
		x[i] = float32(i%17) - 8
	}
	imp := make([]float32, 256)
	dst := make([]byte, 4096)
	for _, c := range []struct {
		name string
		err  error
	}{
		{"unknown type", EncodeRowsImportance(dst, x, TypeIQ2_XS, 256, imp)},
		{"short importance", EncodeRowsImportance(dst, x, TypeQ4_K, 256, imp[:255])},
		{"partial row", EncodeRowsImportance(dst, x[:500], TypeQ4_0, 256, imp)},
		{"cols not whole blocks", EncodeRowsImportance(dst, x, TypeQ4_K, 128, imp[:128])},
		{"dst short", EncodeRowsImportance(dst[:10], x, TypeQ4_0, 256, imp)},
	} {
		if c.err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	// Q8_0 and F16 ignore importance: the bytes of EncodeFloat32.
	for _, typ := range []Type{TypeQ8_0, TypeF16, TypeBF16, TypeF32} {
		if typ.UsesImportance() {
			t.Errorf("%v uses importance", typ)
		}
		want := make([]byte, 4096)
		if err := EncodeFloat32(want, x, typ); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 4096)
		if err := EncodeRowsImportance(got, x, typ, 256, imp); err != nil {
			t.Fatal(err)
		}
		if firstDiffBytes(got, want) >= 0 {
			t.Errorf("%v: importance changed the bytes", typ)
		}
	}
	// nil importance is EncodeFloat32.
	want, got := make([]byte, 4096), make([]byte, 4096)
	_ = EncodeFloat32(want, x, TypeQ4_K)
	if err := EncodeRowsImportance(got, x, TypeQ4_K, 256, nil); err != nil || firstDiffBytes(got, want) >= 0 {
		t.Errorf("nil importance: %v or bytes differ from EncodeFloat32", err)
	}
}
