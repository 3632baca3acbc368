//go:build integration

package gguf

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/quantkit/quantkit/internal/testenv"
)

// ggmlRef runs llama.cpp's own conversions.
type ggmlRef struct {
	quantize   func(typ Type, n int, x []float32) []byte
	dequantize func(typ Type, n int, b []byte) []float32
	// quantizeImportance passes imatrix (n values) as
	// ggml_quantize_chunk's importance matrix.
	quantizeImportance func(typ Type, n int, x, imatrix []float32) []byte
}

// refQuantizer builds integration/refquant (a C program that calls
// llama.cpp's ggml_quantize_chunk and the types' to_float through dlopen)
// and returns functions that run it on rows of n values. The library comes
// from QUANTKIT_LLAMACPP_LIB_DIR, the folder of node-llama-cpp's prebuilt
// libggml-base.so (node_modules/@node-llama-cpp/linux-x64/bins/linux-x64).
func refQuantizer(t *testing.T) *ggmlRef {
	t.Helper()
	dir := os.Getenv("QUANTKIT_LLAMACPP_LIB_DIR")
	if dir == "" {
		testenv.Missing(t, "QUANTKIT_LLAMACPP_LIB_DIR is not set: it names the folder of llama.cpp's libggml-base.so (npm i -E node-llama-cpp@3.21.1, then node_modules/@node-llama-cpp/linux-x64/bins/linux-x64)")
		return nil
	}
	lib := filepath.Join(dir, "libggml-base.so")
	if _, err := os.Stat(lib); err != nil {
		testenv.Missing(t, "QUANTKIT_LLAMACPP_LIB_DIR: %v", err)
		return nil
	}
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		testenv.Missing(t, "no C compiler to build the refquant harness: %v", err)
		return nil
	}
	bin := filepath.Join(t.TempDir(), "refquant")
	src := filepath.Join("..", "..", "integration", "refquant", "refquant.c")
	if out, err := exec.Command(cc, "-O2", "-Wall", "-o", bin, src, "-ldl").CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", src, err, out)
	}
	run := func(in []byte, args ...string) []byte {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Stdin = bytes.NewReader(in)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("refquant %v: %v\n%s", args, err, stderr.Bytes())
		}
		return out
	}
	f32 := func(x []float32) []byte {
		b := make([]byte, 4*len(x))
		for i, v := range x {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return b
	}
	imatrixFile := filepath.Join(t.TempDir(), "imatrix.f32")
	return &ggmlRef{
		quantize: func(typ Type, n int, x []float32) []byte {
			t.Helper()
			return run(f32(x), lib, strconv.Itoa(int(typ)), strconv.Itoa(n))
		},
		quantizeImportance: func(typ Type, n int, x, imatrix []float32) []byte {
			t.Helper()
			if err := os.WriteFile(imatrixFile, f32(imatrix), 0o666); err != nil {
				t.Fatal(err)
			}
			return run(f32(x), "-w", imatrixFile, lib, strconv.Itoa(int(typ)), strconv.Itoa(n))
		},
		dequantize: func(typ Type, n int, b []byte) []float32 {
			t.Helper()
			out := run(b, "-d", lib, strconv.Itoa(int(typ)), strconv.Itoa(n))
			y := make([]float32, len(out)/4)
			for i := range y {
				y[i] = math.Float32frombits(binary.LittleEndian.Uint32(out[4*i:]))
			}
			return y
		},
	}
}

// refTypes are the types whose EncodeFloat32 must equal ggml_quantize_chunk
// byte for byte.
var refTypes = []Type{TypeF16, TypeBF16, TypeQ4_0, TypeQ4_1, TypeQ5_0, TypeQ5_1, TypeQ8_0, TypeQ2_K, TypeQ3_K, TypeQ4_K, TypeQ5_K, TypeQ6_K}

// TestEncodeMatchesGGML quantizes the adversarial rows (and 64 random
// heavy-tailed ones per length) of 256, 512 and 4096 values with
// EncodeFloat32 and with llama.cpp's own ggml_quantize_chunk, and wants the
// same bytes for every row.
func TestEncodeMatchesGGML(t *testing.T) {
	ref := refQuantizer(t)
	for _, typ := range refTypes {
		t.Run(typ.String(), func(t *testing.T) {
			rows := 0
			for _, n := range []int{256, 512, 4096} {
				set := adversarialRows(n, uint64(n))
				r := rand.New(rand.NewPCG(uint64(n), 3))
				for k := range 1 << 16 / n * 16 {
					x := make([]float32, n)
					s := math.Exp(r.NormFloat64() * 3)
					for i := range x {
						x[i] = float32(s * r.NormFloat64() / (r.Float64() + 0.05))
					}
					set = append(set, namedRow{"random heavy-tailed #" + strconv.Itoa(k), x})
				}
				rows += compareWithGGML(t, ref, typ, n, set)
			}
			t.Logf("%v: %d rows byte-identical to ggml_quantize_chunk", typ, rows)
		})
	}
}

// TestEncodeNonFiniteMatchesGGML does the same for rows with NaN or ±Inf,
// where ggml's codes are meaningless but still reproduced.
func TestEncodeNonFiniteMatchesGGML(t *testing.T) {
	ref := refQuantizer(t)
	for _, typ := range refTypes {
		n := compareWithGGML(t, ref, typ, 256, nonFiniteRows(256))
		t.Logf("%v: %d non-finite rows byte-identical", typ, n)
	}
}

// compareWithGGML quantizes rows (of n values each) both ways and reports
// the first differing byte of each row that differs; it returns the number
// of rows that agree.
func compareWithGGML(t *testing.T, ref *ggmlRef, typ Type, n int, rows []namedRow) int {
	t.Helper()
	all := make([]float32, 0, n*len(rows))
	for _, r := range rows {
		all = append(all, r.x...)
	}
	want := ref.quantize(typ, n, all)
	size, err := typ.RowSize(int64(n))
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != int(size)*len(rows) {
		t.Fatalf("ggml wrote %d bytes for %d rows of %d bytes", len(want), len(rows), size)
	}
	ok := 0
	got := make([]byte, size)
	for k, r := range rows {
		if err := EncodeFloat32(got, r.x, typ); err != nil {
			t.Fatal(err)
		}
		w := want[k*int(size) : (k+1)*int(size)]
		if i := firstDiff(got, w); i >= 0 {
			t.Errorf("%v, row %q of %d: byte %d (block %d at byte %d) is %#02x, ggml %#02x", typ, r.name, n, i, i/typ.TypeSize(), i%typ.TypeSize(), got[i], w[i])
			continue
		}
		ok++
	}
	return ok
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// TestDecodeMatchesGGML converts blocks to float32 with DecodeFloat32 and
// with ggml's to_float (dequantize_row_*, ggml_fp16_to_fp32_row,
// ggml_bf16_to_fp32_row) and wants the same bits: blocks ggml quantized
// from the adversarial rows, and random bytes (any scale, any code, NaN
// and Inf scales and values included).
func TestDecodeMatchesGGML(t *testing.T) {
	ref := refQuantizer(t)
	const n = 4096
	for _, typ := range refTypes {
		t.Run(typ.String(), func(t *testing.T) {
			var x []float32
			for _, r := range adversarialRows(n, 11) {
				x = append(x, r.x...)
			}
			q := ref.quantize(typ, n, x)
			r := rand.New(rand.NewPCG(5, uint64(typ)))
			random := make([]byte, len(q))
			for i := range random {
				random[i] = byte(r.Uint32())
			}
			q = append(q, random...)
			want := ref.dequantize(typ, n, q)
			got := make([]float32, len(want))
			if err := DecodeFloat32(got, q, typ); err != nil {
				t.Fatal(err)
			}
			bad := 0
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					if bad++; bad <= 5 {
						t.Errorf("%v element %d (row %d): %#08x, ggml %#08x", typ, i, i/n, math.Float32bits(got[i]), math.Float32bits(want[i]))
					}
				}
			}
			if bad > 0 {
				t.Fatalf("%v: %d of %d values differ", typ, bad, len(got))
			}
			t.Logf("%v: %d values (%d rows) bit-identical to ggml's to_float", typ, len(got), len(got)/n)
		})
	}
}
