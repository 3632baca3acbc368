package llamacpp

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// naivePermute transcribes numpy's
//
//	w.reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2).reshape(rows, cols)
//
// with explicit 4-D indexing in float64, independently of QKRow.
func naivePermute(w []float64, rows, cols, nHead int) []float64 {
	half := rows / nHead / 2
	// a[h][j][i][c] = w viewed as [n_head, 2, half, cols] (C order).
	at := func(h, j, i, c int) float64 { return w[((h*2+j)*half+i)*cols+c] }
	// b = a.swapaxes(1, 2): b[h][i][j][c] = a[h][j][i][c], flattened in C
	// order.
	out := make([]float64, 0, len(w))
	for h := range nHead {
		for i := range half {
			for j := range 2 {
				for c := range cols {
					out = append(out, at(h, j, i, c))
				}
			}
		}
	}
	return out
}

func TestPermuteQKAgainstNumpyTranscription(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, tc := range []struct{ rows, cols, heads int }{
		{2, 1, 1}, {4, 3, 1}, {4, 3, 2}, {64, 64, 8}, {32, 64, 4}, {24, 7, 3}, {12, 1, 6}, {256, 5, 2},
	} {
		n := tc.rows * tc.cols
		src := make([]float32, n)
		src64 := make([]float64, n)
		for i := range src {
			src[i] = float32(rng.NormFloat64())
			src64[i] = float64(src[i])
		}
		orig := slices.Clone(src)
		dst := make([]float32, n)
		PermuteQK(dst, src, tc.rows, tc.heads)
		want := naivePermute(src64, tc.rows, tc.cols, tc.heads)
		for i := range dst {
			if float64(dst[i]) != want[i] {
				t.Fatalf("%+v: element %d = %v, numpy gives %v", tc, i, dst[i], want[i])
			}
		}
		if !slices.Equal(src, orig) {
			t.Fatalf("%+v: the input changed", tc)
		}
		back := make([]float32, n)
		UnpermuteQK(back, dst, tc.rows, tc.heads)
		if !slices.Equal(back, src) {
			t.Fatalf("%+v: UnpermuteQK(PermuteQK(x)) != x", tc)
		}
		// Encoded rows move the same way: bytes tagged with their float
		// index.
		esize := 3
		raw := make([]byte, n*esize)
		for i := range raw {
			raw[i] = byte(i / esize)
		}
		rawOut := make([]byte, len(raw))
		PermuteQKBytes(rawOut, raw, tc.rows, tc.heads)
		idx := make([]float32, n)
		for i := range idx {
			idx[i] = float32(i)
		}
		idxOut := make([]float32, n)
		PermuteQK(idxOut, idx, tc.rows, tc.heads)
		for i := range rawOut {
			if rawOut[i] != byte(int(idxOut[i/esize])) {
				t.Fatalf("%+v: PermuteQKBytes differs from PermuteQK at byte %d", tc, i)
			}
		}
		rawBack := make([]byte, len(raw))
		UnpermuteQKBytes(rawBack, rawOut, tc.rows, tc.heads)
		if !slices.Equal(rawBack, raw) {
			t.Fatalf("%+v: UnpermuteQKBytes(PermuteQKBytes(x)) != x", tc)
		}
	}
}

func TestCheckQK(t *testing.T) {
	for _, tc := range []struct {
		rows, heads int
		ok          bool
	}{{64, 8, true}, {32, 4, true}, {2, 1, true}, {64, 3, false}, {20, 4, false}, {8, 0, false}, {6, 6, false}} {
		if err := CheckQK(tc.rows, tc.heads); (err == nil) != tc.ok {
			t.Errorf("CheckQK(%d, %d) = %v", tc.rows, tc.heads, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("PermuteQK with odd head size did not panic")
		}
	}()
	PermuteQK(make([]float32, 6), make([]float32, 6), 6, 2)
}
