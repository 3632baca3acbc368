package lm

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/quant"
)

// TestWeightsOffHeap loads a checkpoint whose matrices are a few MB each
// in float32, as W8A8 int8 and as packed int4, and checks that the
// weights the model keeps are not on the Go heap (the heap after a
// collection holds well under the model's weight bytes: arena.go says why
// that matters) and that the logits are bit for bit those of the same
// weights converted on the heap (New on the Weights, or the loader's own
// quantization of the float checkpoint run with its copies kept).
func TestWeightsOffHeap(t *testing.T) {
	c := Config{Vocab: 1024, Hidden: 512, Intermediate: 2048, Layers: 2, Heads: 8, KVHeads: 4, HeadDim: 64,
		RMSNormEps: 1e-5, RopeTheta: 10000, BOS: 1, EOS: 2}
	w := randomModel(rand.New(rand.NewPCG(5, 6)), c, false, false)
	dir := writeHF(t, hfConfig("LlamaForCausalLM", "llama", c, false), c, w)
	b := cpu.New()
	tokens := []int{1, 17, 300, 5, 999, 42}
	logits := func(m *Model) []float32 {
		t.Helper()
		c := m.NewCache()
		defer c.Close()
		out, err := m.Forward(c, tokens)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	heap := func() int64 {
		var ms runtime.MemStats
		runtime.GC() // twice: the backend's scratch pools (sync.Pool) go after two
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	ref, err := New(b, c, w)
	if err != nil {
		t.Fatal(err)
	}
	want := logits(ref)
	ref.Close()
	int8s, int4g := quant.Int8PerChannel, quant.Scheme{Bits: 4, Signed: true, Symmetric: true, Granularity: quant.PerGroup, GroupSize: 128}
	for _, tc := range []struct {
		name string
		opt  LoadOptions
	}{
		{"float32", LoadOptions{}},
		{"w8a8", LoadOptions{Quantize: &int8s, Int8: true, QuantizeHead: true}},
		{"int4 packed", LoadOptions{Quantize: &int4g, QuantizeHead: true}},
	} {
		before := heap()
		m, err := LoadHFWith(b, dir, tc.opt)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		// Before any forward pass: the backend's GEMM scratch is not the
		// model's.
		during := heap()
		got := logits(m)
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		runtime.KeepAlive(got)
		held, wb := during-before, m.Weights.WeightBytes()
		t.Logf("%s: weights %d bytes, the model held %d bytes of heap", tc.name, wb, held)
		if held > wb/8 {
			t.Errorf("%s: the model held %d bytes of heap for %d bytes of weights: they are on the heap", tc.name, held, wb)
		}
		if tc.opt.Quantize == nil && !slices.Equal(got, want) {
			t.Errorf("%s: logits differ from the model built from the same weights on the heap", tc.name)
		}
	}
}
