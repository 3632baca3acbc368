package lm

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/quant"
)

// blockLogits runs seqs (each from position 0) through Embed, a Block per
// layer (built from layer(i)) and a float64 final norm and head written
// here, returning each sequence's logits [len][Vocab]. tap, when not
// nil, is given to every block with the layer index.
func blockLogits(t *testing.T, c Config, w *Weights, layer func(i int) *Layer, seqs [][]int, maxRows int,
	tap func(li int, in LinearInput, x []float32, rows, cols int)) [][][]float64 {
	t.Helper()
	n, T := len(seqs), len(seqs[0])
	ids := make([]int, 0, n*T)
	for _, s := range seqs {
		ids = append(ids, s...)
	}
	x, err := Embed(w.Embed, c.Hidden, ids)
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.Layers {
		k, err := NewBlock(cpu.New(), c, i, layer(i))
		if err != nil {
			t.Fatal(err)
		}
		k.MaxRows = maxRows
		var tp Tap
		if tap != nil {
			tp = func(in LinearInput, x []float32, rows, cols int) error { tap(i, in, x, rows, cols); return nil }
		}
		if err := k.Forward(x, n, T, tp); err != nil {
			t.Fatal(err)
		}
		if err := k.Close(); err != nil {
			t.Fatal(err)
		}
	}
	head := w.LMHead
	if head == nil {
		head = w.Embed
	}
	H := c.Hidden
	out := make([][][]float64, n)
	for s := range n {
		for p := range T {
			row := x[(s*T+p)*H : (s*T+p+1)*H]
			var ss float64
			for _, v := range row {
				ss += float64(v) * float64(v)
			}
			inv := 1 / math.Sqrt(ss/float64(H)+c.RMSNormEps)
			logits := make([]float64, c.Vocab)
			for o := range logits {
				var acc float64
				for j, v := range row {
					acc += float64(v) * inv * float64(w.Norm[j]) * float64(head[o*H+j])
				}
				logits[o] = acc
			}
			out[s] = append(out[s], logits)
		}
	}
	return out
}

// checkBlocksEqualForward compares blockLogits with Model.Forward of each
// sequence on its own.
func checkBlocksEqualForward(t *testing.T, what string, m *Model, got [][][]float64, seqs [][]int, tol float64) {
	t.Helper()
	worst := 0.0
	for s, seq := range seqs {
		want, err := m.Forward(m.NewCache(), seq)
		if err != nil {
			t.Fatal(err)
		}
		for p := range seq {
			for o := range m.Config.Vocab {
				worst = math.Max(worst, math.Abs(got[s][p][o]-float64(want[p*m.Config.Vocab+o])))
			}
		}
	}
	t.Logf("%s: blocks vs Forward: max logit difference %.3g", what, worst)
	if !(worst <= tol) {
		t.Errorf("%s: blocks and Forward differ by %g (tolerance %g)", what, worst, tol)
	}
}

// TestBlocksEqualForward runs the embedding, every layer as a Block and
// the head on batches of sequences and compares with Model.Forward of
// each sequence: random configs (grouped-query attention, biases, a
// sliding window on some layers, linear and dynamic RoPE scaling, chunks
// smaller than the batch) and stories260K from its safetensors, read a
// layer at a time with ReadLayer, in float and packed int4.
func TestBlocksEqualForward(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 7))
	for _, tc := range []struct {
		name    string
		c       Config
		bias    bool
		tied    bool
		maxRows int
	}{
		{"mha", Config{Hidden: 16, Intermediate: 40, Layers: 2, Heads: 4, KVHeads: 4, HeadDim: 4, Vocab: 37, RMSNormEps: 1e-5, RopeTheta: 10000}, false, true, 0},
		{"gqa-bias-window", Config{Hidden: 24, Intermediate: 33, Layers: 3, Heads: 6, KVHeads: 2, HeadDim: 6, Vocab: 50,
			RMSNormEps: 1e-6, RopeTheta: 500000, SlidingWindow: 4, WindowLayers: []bool{true, false, true}}, true, false, 0},
		{"chunks-linear-rope", Config{Hidden: 12, Intermediate: 20, Layers: 2, Heads: 3, KVHeads: 1, HeadDim: 4, Vocab: 29,
			RMSNormEps: 1e-5, RopeTheta: 10000, Rope: RopeScaling{Type: "linear", Factor: 2}}, false, false, 20},
		{"dynamic-rope", Config{Hidden: 8, Intermediate: 16, Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 4, Vocab: 21,
			RMSNormEps: 1e-5, RopeTheta: 10000, Rope: RopeScaling{Type: "dynamic", Factor: 2, Context: 6}}, false, true, 0},
	} {
		c := tc.c
		c.BOS, c.EOS = -1, -1
		w := randomModel(r, c, tc.tied, tc.bias)
		m, err := New(cpu.New(), c, w)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		seqs := make([][]int, 5)
		for s := range seqs {
			seqs[s] = randomTokens(r, 9, c.Vocab)
		}
		calls := map[LinearInput]int{}
		got := blockLogits(t, c, w, func(i int) *Layer { return &w.Layers[i] }, seqs, tc.maxRows,
			func(li int, in LinearInput, x []float32, rows, cols int) {
				calls[in] += rows
				want := map[LinearInput]int{QKVInput: c.Hidden, OInput: c.QDim(), GateUpInput: c.Hidden, DownInput: c.Intermediate}[in]
				if cols != want || len(x) != rows*cols || rows%9 != 0 {
					t.Errorf("%s: tap %v: %d values of %d rows × %d, want rows of %d", tc.name, in, len(x), rows, cols, want)
				}
			})
		for in := QKVInput; in <= DownInput; in++ {
			if calls[in] != c.Layers*5*9 {
				t.Errorf("%s: tap %v saw %d rows, want %d", tc.name, in, calls[in], c.Layers*5*9)
			}
		}
		checkBlocksEqualForward(t, tc.name, m, got, seqs, 1e-4)
	}

	// stories260K, a layer at a time from its checkpoint.
	ck, err := checkpoint.Open(stories + "hf")
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	c, _, err := ReadHFConfig(stories + "hf")
	if err != nil {
		t.Fatal(err)
	}
	embed, err := ck.Float32("model.embed_tokens.weight")
	if err != nil {
		t.Fatal(err)
	}
	norm, err := ck.Float32("model.norm.weight")
	if err != nil {
		t.Fatal(err)
	}
	w := &Weights{Embed: embed, Norm: norm}
	seqs := make([][]int, 4)
	for s := range seqs {
		seqs[s] = append([]int{1}, randomTokens(r, 30, c.Vocab)...)
	}
	read := func(i int) *Layer {
		l, err := ReadLayer(ck, c, i)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	m, err := LoadHFWith(cpu.New(), stories+"hf", LoadOptions{Float32: true})
	if err != nil {
		t.Fatal(err)
	}
	checkBlocksEqualForward(t, "stories260K", m, blockLogits(t, c, w, read, seqs, 0, nil), seqs, 1e-4)

	// Packed int4 projections: the blocks run the packed weights the
	// model quantizes at load.
	int4, err := quant.ParseScheme("int4-sym-group32")
	if err != nil {
		t.Fatal(err)
	}
	q, err := LoadHFWith(cpu.New(), stories+"hf", LoadOptions{Quantize: &int4})
	if err != nil {
		t.Fatal(err)
	}
	if q.Weights.Layers[0].Packed == nil {
		t.Fatal("int4 stories260K has no packed layer")
	}
	checkBlocksEqualForward(t, "stories260K int4", q,
		blockLogits(t, c, w, func(i int) *Layer { return &q.Weights.Layers[i] }, seqs, 0, nil), seqs, 1e-4)
}

// TestBlockTapValues checks the tapped rows of layer 0 against values
// computed here: the q/k/v input is RMSNorm(embedding)·weight, and the
// output of every tapped input times its projections' weights, summed as
// the layer sums them, is the layer's output: x + o(att) + down(act).
func TestBlockTapValues(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 2))
	c := Config{Hidden: 16, Intermediate: 24, Layers: 1, Heads: 4, KVHeads: 2, HeadDim: 4, Vocab: 30, RMSNormEps: 1e-5, RopeTheta: 10000, BOS: -1, EOS: -1}
	w := randomModel(r, c, true, false)
	ids := randomTokens(r, 14, c.Vocab) // 2 sequences of 7
	x0, err := Embed(w.Embed, c.Hidden, ids)
	if err != nil {
		t.Fatal(err)
	}
	x := append([]float32(nil), x0...)
	k, err := NewBlock(cpu.New(), c, 0, &w.Layers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	taps := map[LinearInput][]float32{}
	if err := k.Forward(x, 2, 7, func(in LinearInput, v []float32, rows, cols int) error {
		taps[in] = append(taps[in], v...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	H, ff, qd := c.Hidden, c.Intermediate, c.QDim()
	l := &w.Layers[0]
	worst := 0.0
	for row := range 14 {
		xr := x0[row*H : (row+1)*H]
		var ss float64
		for _, v := range xr {
			ss += float64(v) * float64(v)
		}
		inv := 1 / math.Sqrt(ss/float64(H)+c.RMSNormEps)
		for j := range H {
			worst = math.Max(worst, math.Abs(float64(xr[j])*inv*float64(l.AttnNorm[j])-float64(taps[QKVInput][row*H+j])))
		}
		// out = x + O·att + Down·act
		for o := range H {
			acc := float64(xr[o])
			for j := range qd {
				acc += float64(l.O[o*qd+j]) * float64(taps[OInput][row*qd+j])
			}
			for j := range ff {
				acc += float64(l.Down[o*ff+j]) * float64(taps[DownInput][row*ff+j])
			}
			worst = math.Max(worst, math.Abs(acc-float64(x[row*H+o])))
		}
	}
	if worst > 1e-4 {
		t.Errorf("tapped inputs disagree with the layer by %g", worst)
	}
	if err := k.Forward(x, 3, 7, nil); err == nil {
		t.Error("Forward took 2 sequences' values as 3")
	}
	bad := w.Layers[0]
	bad.Q = bad.Q[:5]
	if _, err := NewBlock(cpu.New(), c, 0, &bad); err == nil {
		t.Error("NewBlock took a q_proj of 5 values")
	}
}

// TestBlockParts checks Block.Part: AttentionOnly computes what the whole
// layer computes with its MLP's weights zero, MLPOnly what it computes
// with its attention's weights (and biases) zero, and the two in turn
// what the whole layer computes, each to the bit (the zero halves add
// exact zeros).
func TestBlockParts(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 3))
	c := Config{Hidden: 16, Intermediate: 24, Layers: 1, Heads: 4, KVHeads: 2, HeadDim: 4, Vocab: 30, RMSNormEps: 1e-5, RopeTheta: 10000, BOS: -1, EOS: -1}
	w := randomModel(r, c, true, true)
	l := w.Layers[0]
	if l.QBias == nil {
		t.Fatal("the random layer has no biases: the attention-zero case would not test them")
	}
	ids := randomTokens(r, 14, c.Vocab) // 2 sequences of 7
	x0, err := Embed(w.Embed, c.Hidden, ids)
	if err != nil {
		t.Fatal(err)
	}
	run := func(l *Layer, part BlockPart, x []float32) []float32 {
		t.Helper()
		k, err := NewBlock(cpu.New(), c, 0, l)
		if err != nil {
			t.Fatal(err)
		}
		defer k.Close()
		k.Part = part
		out := append([]float32(nil), x...)
		if err := k.Forward(out, 2, 7, nil); err != nil {
			t.Fatal(err)
		}
		return out
	}
	zeros := func(n int) []float32 { return make([]float32, n) }
	noMLP := l
	noMLP.Gate, noMLP.Up, noMLP.Down = zeros(len(l.Gate)), zeros(len(l.Up)), zeros(len(l.Down))
	noAttn := l
	noAttn.Q, noAttn.K, noAttn.V, noAttn.O = zeros(len(l.Q)), zeros(len(l.K)), zeros(len(l.V)), zeros(len(l.O))
	noAttn.QBias, noAttn.KBias, noAttn.VBias, noAttn.OBias = nil, nil, nil, nil
	same := func(what string, got, want []float32) {
		t.Helper()
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Errorf("%s: value %d is %g, want %g", what, i, got[i], want[i])
				return
			}
		}
	}
	attn := run(&l, AttentionOnly, x0)
	same("AttentionOnly", attn, run(&noMLP, WholeLayer, x0))
	same("MLPOnly", run(&l, MLPOnly, x0), run(&noAttn, WholeLayer, x0))
	whole := run(&l, WholeLayer, x0)
	same("AttentionOnly then MLPOnly", run(&l, MLPOnly, attn), whole)
	if slicesEqual(attn, whole) || slicesEqual(attn, x0) {
		t.Error("the attention alone left x as it was, or equals the whole layer")
	}
}

func slicesEqual(a, b []float32) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

// TestBlockShareScratch: two blocks of different weights running by turns
// in one scratch (ShareScratch), with taps, give bit for bit what each
// gives in its own, chunk sizes changing between them (the scratch grows
// for the larger); a block of another shape is refused; closing the
// sharer leaves the owner running.
func TestBlockShareScratch(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 4))
	c := Config{Hidden: 16, Intermediate: 24, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 4, Vocab: 30, RMSNormEps: 1e-5, RopeTheta: 10000, BOS: -1, EOS: -1}
	w := randomModel(r, c, true, true)
	x0, err := Embed(w.Embed, c.Hidden, randomTokens(r, 4*7, c.Vocab)) // 4 sequences of 7
	if err != nil {
		t.Fatal(err)
	}
	b := cpu.New()
	newBlock := func(i int) *Block {
		k, err := NewBlock(b, c, i, &w.Layers[i])
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	var taps []float32
	tap := func(in LinearInput, x []float32, rows, cols int) error {
		taps = append(taps, x[:rows*cols]...)
		return nil
	}
	// seqs sequences of x0 through block k, and the rows its tap saw.
	run := func(k *Block, seqs int) ([]float32, []float32) {
		t.Helper()
		taps = nil
		out := append([]float32(nil), x0[:seqs*7*c.Hidden]...)
		if err := k.Forward(out, seqs, 7, tap); err != nil {
			t.Fatal(err)
		}
		return out, taps
	}
	own0, own1 := newBlock(0), newBlock(1)
	want0s, tap0s := run(own0, 1)
	want1, tap1 := run(own1, 4)
	want0, tap0 := run(own0, 4)
	own0.Close()
	own1.Close()

	k0, k1 := newBlock(0), newBlock(1)
	if err := k1.ShareScratch(k0); err != nil {
		t.Fatal(err)
	}
	if k1.s != k0.s {
		t.Fatal("not shared")
	}
	for _, step := range []struct {
		k          *Block
		seqs       int
		want, taps []float32
	}{{k0, 1, want0s, tap0s}, {k1, 4, want1, tap1}, {k0, 4, want0, tap0}, {k1, 4, want1, tap1}} {
		got, gotTaps := run(step.k, step.seqs)
		if !slicesEqual(got, step.want) || !slicesEqual(gotTaps, step.taps) {
			t.Errorf("layer %d on %d sequences: the shared scratch changed the outputs or the taps", step.k.index, step.seqs)
		}
	}
	if err := k1.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := run(k0, 4); !slicesEqual(got, want0) {
		t.Error("the owner, after the sharer closed: outputs changed")
	}
	if err := k0.Close(); err != nil {
		t.Fatal(err)
	}
	c2 := c
	c2.Intermediate = 32
	w2 := randomModel(r, c2, true, true)
	other, err := NewBlock(b, c2, 0, &w2.Layers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	k2 := newBlock(0)
	defer k2.Close()
	if err := k2.ShareScratch(other); err == nil {
		t.Error("a block of another shape shared the scratch")
	}
}
