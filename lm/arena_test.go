package lm

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/model/gguf"
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

// TestQuantizeRowsBlocks loads a float checkpoint quantized at load with
// blocks of a few rows (quantizeRows) and checks every weight against
// quantizeInto on the whole matrix: the same int8 codes and scales, the
// same packed bytes, for W8A8, int4 per group (a partial last group) and
// asymmetric int8 per channel.
func TestQuantizeRowsBlocks(t *testing.T) {
	c := Config{Vocab: 300, Hidden: 96, Intermediate: 200, Layers: 1, Heads: 4, KVHeads: 2, HeadDim: 24,
		RMSNormEps: 1e-5, RopeTheta: 10000, BOS: 1, EOS: 2}
	w := randomModel(rand.New(rand.NewPCG(7, 8)), c, false, false)
	dir := writeHF(t, hfConfig("LlamaForCausalLM", "llama", c, false), c, w)
	b := cpu.New()
	defer func(n int) { quantizeRowsBlock = n }(quantizeRowsBlock)
	quantizeRowsBlock = 7*96 + 5 // 7 rows of the hidden-wide matrices, 3 of the down projection
	int8s := quant.Int8PerChannel
	int4g := quant.Scheme{Bits: 4, Signed: true, Symmetric: true, Granularity: quant.PerGroup, GroupSize: 64}
	asym := quant.Scheme{Bits: 8, Signed: false, Symmetric: false, Granularity: quant.PerChannel}
	for _, tc := range []struct {
		name string
		opt  LoadOptions
	}{
		{"w8a8", LoadOptions{Quantize: &int8s, Int8: true, QuantizeHead: true}},
		{"int4 g64", LoadOptions{Quantize: &int4g, QuantizeHead: true}},
		{"uint8 asym", LoadOptions{Quantize: &asym, QuantizeHead: true}},
	} {
		m, err := LoadHFWith(b, dir, tc.opt)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		check := func(what string, x []float32, rows, cols int, pk *PackedWeight, i8 *Int8Weight) {
			t.Helper()
			var wf []float32
			var wpk *PackedWeight
			var wi8 *Int8Weight
			var scratch []byte
			if err := quantizeInto(b, nil, what, x, rows, cols, *tc.opt.Quantize, tc.opt.Int8, &scratch, &wf, &wpk, &wi8); err != nil {
				t.Fatal(err)
			}
			switch {
			case wi8 != nil:
				if i8 == nil || !slices.Equal(i8.Codes, wi8.Codes) || !slices.Equal(i8.Scales, wi8.Scales) {
					t.Errorf("%s: %s: int8 weight differs from the whole matrix's quantization", tc.name, what)
				}
			case wpk != nil:
				if pk != nil && pk.repacked {
					// In the backend's row order, as the loader leaves it.
					if err := wpk.repackInPlace(b, rows, cols); err != nil || !wpk.repacked {
						t.Fatalf("%s: %s: repacked at load, not here (%v)", tc.name, what, err)
					}
				}
				if pk == nil || pk.Format != wpk.Format || !slices.Equal(pk.Data, wpk.Data) {
					t.Errorf("%s: %s: packed rows differ from the whole matrix's quantization", tc.name, what)
				}
			default:
				t.Fatalf("%s: %s: the scheme neither packs nor runs as int8 here", tc.name, what)
			}
		}
		l, got := w.Layers[0], m.Weights.Layers[0]
		pk, i8 := got.Packed, got.Int8
		if tc.name == "int4 g64" && (pk == nil || pk.Q == nil || !pk.Q.repacked || !pk.Down.repacked) {
			t.Errorf("%s: the projections were not put in the cpu backend's row order", tc.name)
		}
		if pk == nil {
			pk = &PackedLayer{}
		}
		if i8 == nil {
			i8 = &Int8Layer{}
		}
		H, q, kv, ff := c.Hidden, c.QDim(), c.KVDim(), c.Intermediate
		check("q", l.Q, q, H, pk.Q, i8.Q)
		check("k", l.K, kv, H, pk.K, i8.K)
		check("o", l.O, H, q, pk.O, i8.O)
		check("down", l.Down, H, ff, pk.Down, i8.Down)
		if !tc.opt.Int8 {
			check("lm_head", w.LMHead, c.Vocab, H, m.Weights.LMHeadPacked, nil)
		}
		m.Close()
	}
	// BF16 at load, read in the same blocks: the whole matrix's rounding.
	m, err := LoadHFWith(b, dir, LoadOptions{BF16: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for name, x := range map[string]struct {
		w  []float32
		pk *PackedWeight
	}{"down": {w.Layers[0].Down, m.Weights.Layers[0].Packed.Down}, "lm_head": {w.LMHead, m.Weights.LMHeadPacked}} {
		want := make([]byte, 2*len(x.w))
		if err := gguf.EncodeFloat32(want, x.w, gguf.TypeBF16); err != nil {
			t.Fatal(err)
		}
		if x.pk == nil || x.pk.Format != gguf.TypeBF16 || !slices.Equal(x.pk.Data, want) {
			t.Errorf("bf16 %s: not the whole matrix rounded to bfloat16", name)
		}
	}
}

// TestCacheReserve checks that a cache reserved for the whole sequence
// does not grow (no reallocation, no copy) and gives the logits of one
// that grows by doubling; a negative reservation is refused.
func TestCacheReserve(t *testing.T) {
	c := Config{Vocab: 64, Hidden: 32, Intermediate: 48, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8,
		RMSNormEps: 1e-5, RopeTheta: 10000, BOS: 1, EOS: 2}
	m, err := New(cpu.New(), c, randomModel(rand.New(rand.NewPCG(9, 9)), c, true, false))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	grown, reserved := m.NewCache(), m.NewCache()
	if err := reserved.Reserve(37); err != nil {
		t.Fatal(err)
	}
	k0 := reserved.k[0]
	prompt := []int{1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45, 49, 53, 57, 61, 3, 7}
	a, err := m.Forward(grown, prompt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Forward(reserved, prompt)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 19 {
		x, err := m.ForwardLast(grown, []int{i + 2})
		if err != nil {
			t.Fatal(err)
		}
		y, err := m.ForwardLast(reserved, []int{i + 2})
		if err != nil {
			t.Fatal(err)
		}
		a, b = append(a, x...), append(b, y...)
	}
	if !slices.Equal(a, b) {
		t.Error("a reserved cache gives other logits than a growing one")
	}
	if reserved.k[0] != k0 || reserved.cap != 37 || grown.cap != 72 { // grown: 18 (the prompt), 36, 72
		t.Errorf("capacities: reserved %d (buffer replaced %v), grown %d; want 37 (not replaced) and 72", reserved.cap, reserved.k[0] != k0, grown.cap)
	}
	// A batch step over caches reserved to the position it fills, the
	// first sequence's cache included (its rows are not the batch's).
	var cs []*Cache
	for i := range 3 {
		cc := m.NewCache()
		if err := cc.Reserve(len(prompt) + 1); err != nil {
			t.Fatal(err)
		}
		if _, err := m.ForwardLast(cc, prompt[:len(prompt)-i]); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, cc)
	}
	if _, err := m.ForwardBatch(cs, []int{4, 5, 6}); err != nil {
		t.Fatal(err)
	}
	if err := reserved.Reserve(-1); err == nil {
		t.Error("Reserve(-1) accepted")
	}
}
