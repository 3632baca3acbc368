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
	"strings"
	"testing"
	"time"
)

// TestQuantizeSpeedVsGGML times EncodeFloat32 and llama.cpp's own
// ggml_quantize_chunk (integration/refquant/refbench.c, through dlopen)
// on the same 2^20 normal values, rows of 4096, one thread each, best of
// several passes, in the same run, and logs both speeds and their ratio.
// It asserts nothing about time (a shared machine decides that); it checks
// only that the two outputs are the same bytes. Skipped with -short.
func TestQuantizeSpeedVsGGML(t *testing.T) {
	if testing.Short() {
		t.Skip("timing run")
	}
	ref := refQuantizer(t)
	dir := os.Getenv("QUANTKIT_LLAMACPP_LIB_DIR")
	lib := filepath.Join(dir, "libggml-base.so")
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	bin := filepath.Join(t.TempDir(), "refbench")
	src := filepath.Join("..", "..", "integration", "refquant", "refbench.c")
	if out, err := exec.Command(cc, "-O2", "-Wall", "-o", bin, src, "-ldl").CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", src, err, out)
	}
	const n, rowLen = 1 << 20, 4096
	rounds := 7
	if s := os.Getenv("QUANTKIT_SPEED_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	x := make([]float32, n)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	in := make([]byte, 4*n)
	for i, v := range x {
		binary.LittleEndian.PutUint32(in[4*i:], math.Float32bits(v))
	}
	types := refTypes
	if s := os.Getenv("QUANTKIT_SPEED_TYPES"); s != "" {
		types = nil
		for _, name := range strings.Split(s, ",") {
			typ, ok := ParseType(name)
			if !ok {
				t.Fatalf("QUANTKIT_SPEED_TYPES: unknown type %q", name)
			}
			types = append(types, typ)
		}
	}
	mbs := func(ns int64) float64 { return float64(4*n) / float64(ns) * 1e3 }
	for _, typ := range types {
		size, _ := typ.RowSize(n)
		dst := make([]byte, size)
		goBest := int64(math.MaxInt64)
		for k := -1; k < rounds; k++ {
			t0 := time.Now()
			for i := 0; i < n; i += rowLen {
				rs, _ := typ.RowSize(rowLen)
				if err := EncodeFloat32(dst[int64(i/rowLen)*rs:], x[i:i+rowLen], typ); err != nil {
					t.Fatal(err)
				}
			}
			if dt := time.Since(t0).Nanoseconds(); k >= 0 {
				goBest = min(goBest, dt)
			}
		}
		cmd := exec.Command(bin, lib, strconv.Itoa(int(typ)), strconv.Itoa(rowLen), strconv.Itoa(rounds))
		cmd.Stdin = bytes.NewReader(in)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("refbench %v: %v\n%s", typ, err, stderr.Bytes())
		}
		cBest, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
		if err != nil {
			t.Fatalf("refbench %v: %q", typ, out)
		}
		if want := ref.quantize(typ, rowLen, x); !bytes.Equal(dst, want) {
			t.Errorf("%v: quantkit's bytes differ from ggml's at byte %d", typ, firstDiff(dst, want))
		}
		t.Logf("%-5v quantkit %8.0f MB/s  ggml %8.0f MB/s  ratio %.2f", typ, mbs(goBest), mbs(cBest), float64(cBest)/float64(goBest))
	}
}
