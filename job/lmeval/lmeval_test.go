package lmeval

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/lm"
)

const stories = "../../testdata/llm/stories260K/"

// randomModel is a tiny Llama with N(0, scale²) weights from seed.
func randomModel(t *testing.T, seed uint64, scale float64) *lm.Model {
	t.Helper()
	c := lm.Config{Hidden: 16, Intermediate: 24, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 4, Vocab: 37,
		RMSNormEps: 1e-5, RopeTheta: 10000, BOS: 1, EOS: 2}
	r := rand.New(rand.NewPCG(seed, 1))
	v := func(n int, base float64) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(base + scale*r.NormFloat64())
		}
		return x
	}
	H, q, kv, ff := c.Hidden, c.QDim(), c.KVDim(), c.Intermediate
	w := &lm.Weights{Embed: v(c.Vocab*H, 0), Norm: v(H, 1), LMHead: v(c.Vocab*H, 0)}
	for range c.Layers {
		w.Layers = append(w.Layers, lm.Layer{AttnNorm: v(H, 1), Q: v(q*H, 0), K: v(kv*H, 0), V: v(kv*H, 0), O: v(H*q, 0),
			MLPNorm: v(H, 1), Gate: v(ff*H, 0), Up: v(ff*H, 0), Down: v(H*ff, 0)})
	}
	m, err := lm.New(cpu.New(), c, w)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// naiveEval is Eval's arithmetic written out plainly: per window, logits
// from a fresh forward pass, log p = log(exp(x)/Σ exp) without the max
// shift, KL(P‖Q) = Σ p_ref·(log p_ref − log q).
func naiveEval(t *testing.T, ref, m *lm.Model, toks []int, n int) (nll, refNLL float64, kls []float64, agree float64) {
	logp := func(x []float32) []float64 {
		s := 0.0
		for _, v := range x {
			s += math.Exp(float64(v))
		}
		out := make([]float64, len(x))
		for i, v := range x {
			out[i] = math.Log(math.Exp(float64(v)) / s)
		}
		return out
	}
	V := m.Config.Vocab
	count := 0
	for w := 0; w+n <= len(toks); w += n {
		win := append([]int{1}, toks[w+1:w+n]...)
		lq, err := m.Forward(m.NewCache(), win)
		if err != nil {
			t.Fatal(err)
		}
		lr, err := ref.Forward(ref.NewCache(), win)
		if err != nil {
			t.Fatal(err)
		}
		for j := n / 2; j <= n-2; j++ {
			q, p := logp(lq[j*V:(j+1)*V]), logp(lr[j*V:(j+1)*V])
			nll -= q[win[j+1]]
			refNLL -= p[win[j+1]]
			kl := 0.0
			for v := range V {
				kl += math.Exp(p[v]) * (p[v] - q[v])
			}
			kls = append(kls, kl)
			if slices.Index(p, slices.Max(p)) == slices.Index(q, slices.Max(q)) {
				agree++
			}
			count++
		}
	}
	return nll / float64(count), refNLL / float64(count), kls, agree / float64(count)
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }

func TestEvalAgainstFloat64(t *testing.T) {
	ref := randomModel(t, 1, 0.5)
	m := randomModel(t, 1, 0.55) // the same draws, scaled: close but not equal
	other := randomModel(t, 7, 0.5)
	r := rand.New(rand.NewPCG(3, 3))
	toks := make([]int, 16*5+7) // a tail that fills no window
	for i := range toks {
		toks[i] = r.IntN(37)
	}
	var calls []int
	rep, err := Eval(context.Background(), EvalOptions{Models: []NamedModel{{"scaled", m}, {"other", other}}, Ref: &NamedModel{"ref", ref},
		Tokens: toks, Ctx: 16, Progress: func(done, total int, _ string) { calls = append(calls, done, total) }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Windows != 5 || rep.Scored != 5*7 || len(rep.Models) != 2 || rep.Ref == nil {
		t.Fatalf("report %+v", rep)
	}
	if len(calls) != 2*15 || calls[len(calls)-2] != 15 || calls[len(calls)-1] != 15 {
		t.Errorf("progress calls %v", calls)
	}
	for i, mm := range []*lm.Model{m, other} {
		nll, refNLL, kls, agree := naiveEval(t, ref, mm, toks, 16)
		got := rep.Models[i]
		slices.Sort(kls)
		mean := 0.0
		for _, k := range kls {
			mean += k
		}
		mean /= float64(len(kls))
		p99 := kls[int(math.Ceil(0.99*float64(len(kls))))-1]
		t.Logf("%s: ppl %.4f (ref %.4f) KL mean %.3g p99 %.3g max %.3g top-1 %.3f", got.Name, got.Perplexity, rep.Ref.Perplexity, got.KL.Mean, got.KL.P99, got.KL.Max, got.KL.Top1)
		if !near(got.NLL, nll, 1e-9) || !near(rep.Ref.NLL, refNLL, 1e-9) || !near(got.Perplexity, math.Exp(nll), 1e-9) {
			t.Errorf("%s: NLL %g (ref %g), want %g (%g)", got.Name, got.NLL, rep.Ref.NLL, nll, refNLL)
		}
		if !near(got.KL.Mean, mean, 1e-9) || !near(got.KL.P99, p99, 1e-9) || !near(got.KL.Max, kls[len(kls)-1], 1e-9) || got.KL.Top1 != agree {
			t.Errorf("%s: KL %+v, want mean %g p99 %g max %g top-1 %g", got.Name, *got.KL, mean, p99, kls[len(kls)-1], agree)
		}
		if got.KL.Mean <= 0 {
			t.Errorf("%s: a different model has KL %g", got.Name, got.KL.Mean)
		}
	}
	if rep.Models[0].KL.Mean >= rep.Models[1].KL.Mean {
		t.Errorf("the scaled model (KL %g) is not closer to the reference than another draw (%g)", rep.Models[0].KL.Mean, rep.Models[1].KL.Mean)
	}
	var sb strings.Builder
	if err := rep.WriteTable(&sb); err != nil || !strings.Contains(sb.String(), "ref (ref)") || !strings.Contains(sb.String(), "other") {
		t.Errorf("table %q, %v", sb.String(), err)
	}
}

func TestEvalSelfAndRefusals(t *testing.T) {
	m := randomModel(t, 1, 0.5)
	toks := make([]int, 40)
	for i := range toks {
		toks[i] = (i * 7) % 37
	}
	rep, err := Eval(context.Background(), EvalOptions{Models: []NamedModel{{"m", m}}, Ref: &NamedModel{"m", m}, Tokens: toks, Ctx: 8})
	if err != nil {
		t.Fatal(err)
	}
	if k := rep.Models[0].KL; k.Max != 0 || k.Top1 != 1 || rep.Models[0].NLL != rep.Ref.NLL {
		t.Errorf("a model against itself: %+v, NLL %g vs %g", *k, rep.Models[0].NLL, rep.Ref.NLL)
	}
	if rep.Models[0].Perplexity <= 1 {
		t.Errorf("perplexity %g", rep.Models[0].Perplexity)
	}
	for name, o := range map[string]EvalOptions{
		"empty":      {Models: []NamedModel{{"m", m}}, Tokens: []int{}, Ctx: 8},
		"short":      {Models: []NamedModel{{"m", m}}, Tokens: toks[:7], Ctx: 8},
		"ctx":        {Models: []NamedModel{{"m", m}}, Tokens: toks, Ctx: 2},
		"vocabulary": {Models: []NamedModel{{"m", m}}, Tokens: []int{1, 2, 99, 3}, Ctx: 4},
		"no models":  {Tokens: toks, Ctx: 8},
	} {
		if _, err := Eval(context.Background(), o); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Eval(ctx, EvalOptions{Models: []NamedModel{{"m", m}}, Tokens: toks, Ctx: 8}); err != context.Canceled {
		t.Errorf("cancelled: %v", err)
	}
}

func openStories(t *testing.T, path string) *Loaded {
	t.Helper()
	l, err := Open(cpu.New(), stories+path, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestGenerateStories(t *testing.T) {
	for _, path := range []string{"hf", "stories260K.gguf"} {
		l := openStories(t, path)
		if l.Tokenizer == nil || l.Context < 512 { // 2048 in the GGUF, as llama.cpp's converter wrote it
			t.Fatalf("%s: no tokenizer, or context %d", path, l.Context)
		}
		for _, prompt := range []string{"", "Once"} {
			var chunks []string
			rep, err := Generate(context.Background(), GenerateOptions{Model: l.Model, Tokenizer: l.Tokenizer, Prompt: prompt, N: 30,
				OnToken: func(s string) { chunks = append(chunks, s) }})
			if err != nil {
				t.Fatal(err)
			}
			want, err := l.Model.Greedy(l.Tokenizer.EncodeWith(prompt, true), 30)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rep.Tokens, want) {
				t.Errorf("%s %q: tokens %v, Greedy gives %v", path, prompt, rep.Tokens, want)
			}
			text := prompt + rep.Text
			t.Logf("%s %q: %q, %d chunks, prefill %.0f tok/s, decode %.0f tok/s", path, prompt, text, len(chunks), rep.PrefillTokensPerSecond, rep.DecodeTokensPerSecond)
			if !strings.HasPrefix(text, "Once upon a time") {
				t.Errorf("%s %q: %q", path, prompt, text)
			}
			if strings.Join(chunks, "") != rep.Text || len(chunks) < 10 {
				t.Errorf("%s: chunks %q do not make %q", path, chunks, rep.Text)
			}
			if rep.DecodeTokens != len(rep.Tokens)-1 || rep.StopReason != "length" || rep.PromptTokens != len(l.Tokenizer.EncodeWith(prompt, true)) {
				t.Errorf("%s: report %+v", path, rep)
			}
		}
	}
}

func TestGenerateSampling(t *testing.T) {
	l := openStories(t, "hf")
	gen := func(o GenerateOptions) []int {
		o.Model, o.Tokenizer, o.N = l.Model, l.Tokenizer, 25
		rep, err := Generate(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		return rep.Tokens
	}
	greedy := gen(GenerateOptions{})
	if got := gen(GenerateOptions{Temp: 1, TopP: 1e-9, Seed: 5}); !slices.Equal(got, greedy) {
		t.Errorf("top-p ~0 gives %v, not the greedy %v", got, greedy)
	}
	if got := gen(GenerateOptions{Temp: 1e-4, Seed: 5}); !slices.Equal(got, greedy) {
		t.Errorf("a temperature near 0 gives %v, not the greedy %v", got, greedy)
	}
	a, b := gen(GenerateOptions{Temp: 1, TopP: 0.9, Seed: 1}), gen(GenerateOptions{Temp: 1, TopP: 0.9, Seed: 1})
	c := gen(GenerateOptions{Temp: 1.5, Seed: 2})
	if !slices.Equal(a, b) {
		t.Errorf("seed 1 twice: %v and %v", a, b)
	}
	if slices.Equal(a, c) || slices.Equal(c, greedy) {
		t.Errorf("seeds 1 and 2 at different temperatures agree: %v", c)
	}
	// the sampler's frequencies follow softmax(logits/T) restricted to the nucleus
	logits := []float32{2, 1, 0, -1, 3}
	s := &sampler{temp: 0.7, topP: 0.8, rng: rand.New(rand.NewPCG(1, 2))}
	p := make([]float64, 5)
	for i, v := range logits {
		p[i] = math.Exp(float64(v) / 0.7)
	}
	sum := p[0] + p[1] + p[2] + p[3] + p[4]
	// p[4] ≈ 0.77 < 0.8: the nucleus is {4, 0}
	keep := p[4] + p[0]
	if p[4]/sum >= 0.8 || keep/sum < 0.8 {
		t.Fatalf("test assumption: %v", p)
	}
	count := make([]int, 5)
	const n = 200000
	for range n {
		count[s.next(logits)]++
	}
	for i, want := range []float64{p[0] / keep, 0, 0, 0, p[4] / keep} {
		if got := float64(count[i]) / n; math.Abs(got-want) > 0.005 {
			t.Errorf("token %d drawn %.4f of the time, want %.4f", i, got, want)
		}
	}
}

func TestGenerateRefusals(t *testing.T) {
	l := openStories(t, "hf")
	long := strings.Repeat("Once upon a time ", 200)
	for name, o := range map[string]GenerateOptions{
		"context": {Prompt: long, Context: 512},
		"temp":    {Temp: -1},
		"top-p":   {TopP: 2},
		"n":       {N: -1},
	} {
		o.Model, o.Tokenizer = l.Model, l.Tokenizer
		if _, err := Generate(context.Background(), o); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	rep, err := Generate(context.Background(), GenerateOptions{Model: l.Model, Tokenizer: l.Tokenizer, N: 100, Context: 12})
	if err != nil || rep.StopReason != "context" || len(rep.Tokens) != 12 {
		t.Errorf("generation up to the context: %+v, %v", rep, err)
	}
}

// The streamed text is the decode of the whole, also for characters that
// the vocabulary spells as byte tokens, one byte per token.
func TestStreamerUTF8(t *testing.T) {
	for _, path := range []string{"hf", "stories260K.gguf"} {
		streamUTF8(t, openStories(t, path))
	}
}

func streamUTF8(t *testing.T, l *Loaded) {
	const text = "Lily said: «héllo 世界» 🙂 and went home."
	ids := l.Tokenizer.EncodeWith(text, true)
	var chunks []string
	s := newStreamer(l.Tokenizer, ids[:1], func(x string) { chunks = append(chunks, x) })
	for _, id := range ids[1:] {
		s.add(id)
	}
	got := s.finish()
	if got != text || strings.Join(chunks, "") != text {
		t.Errorf("streamed %q (chunks %q), want %q", got, chunks, text)
	}
	for _, c := range chunks {
		if !utf8.ValidString(c) || strings.ContainsRune(c, utf8.RuneError) {
			t.Errorf("chunk %q is not whole characters", c)
		}
	}
}

// storiesText is a TinyStories-like text of a few hundred tokens.
const storiesText = `Once upon a time, there was a little girl named Lily. She loved to play outside in the park.
One day, she saw a big red ball under a tree. She ran to the ball and picked it up.
Her mom said, "Lily, be careful!" Lily smiled and said, "I will, mom."
They played with the ball all day. The sun was warm and the sky was blue.
When it was time to go home, Lily was tired but happy. She gave her mom a big hug.
The next day, Lily and her friend Tom went to the park again. Tom had a little dog named Max.
Max liked to run and jump. He found a stick and brought it to Lily.
Lily threw the stick and Max ran after it. They laughed and played until the sun went down.`

func TestEvalStoriesFormatsAgree(t *testing.T) {
	hf, gg := openStories(t, "hf"), openStories(t, "stories260K.gguf")
	ids := hf.Tokenizer.EncodeWith(storiesText, false)
	if gids := gg.Tokenizer.EncodeWith(storiesText, false); !slices.Equal(ids, gids) {
		t.Fatalf("the GGUF's tokenizer encodes differently:\n%v\n%v", gids, ids)
	}
	withBOS := append([]int{1}, ids...)
	if a, b := hf.Tokenizer.DecodeSkipSpecial(withBOS), gg.Tokenizer.DecodeSkipSpecial(withBOS); a != storiesText || b != storiesText {
		t.Errorf("decodes with special tokens skipped differ:\n%q\n%q", a, b)
	}
	// Decode keeps BOS and, as a Llama tokenizer.json does, the space
	// after it: "<s> Once upon a time".
	if a, b := hf.Tokenizer.Decode(withBOS), gg.Tokenizer.Decode(withBOS); a != "<s> "+storiesText || b != a {
		t.Errorf("decodes differ:\n%q\n%q", a, b)
	}
	rep, err := Eval(context.Background(), EvalOptions{Models: []NamedModel{{"gguf", gg.Model}}, Ref: &NamedModel{"hf", hf.Model},
		Text: storiesText, Tokenizer: hf.Tokenizer, Ctx: 64})
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	rep.WriteTable(&sb)
	t.Logf("%d tokens\n%s", len(ids), sb.String())
	g := rep.Models[0]
	if rep.Windows != len(ids)/64 || rep.Windows < 3 {
		t.Errorf("%d windows of %d tokens", rep.Windows, len(ids))
	}
	if g.KL.Max > 1e-6 || g.KL.Top1 != 1 || !near(g.Perplexity, rep.Ref.Perplexity, 1e-5) {
		t.Errorf("gguf vs hf: %+v, perplexity %g vs %g", *g.KL, g.Perplexity, rep.Ref.Perplexity)
	}
	// a story model finds a story far likelier than chance (512 tokens)
	if rep.Ref.Perplexity > 30 {
		t.Errorf("perplexity %g on a TinyStories-like text", rep.Ref.Perplexity)
	}
}

func TestOpenRefusals(t *testing.T) {
	for _, p := range []string{stories + "README.md", stories + "missing.gguf", stories + "SHA256SUMS"} {
		if _, err := Open(cpu.New(), p, ""); err == nil {
			t.Errorf("%s opened", p)
		} else {
			t.Log(err)
		}
	}
	l, err := Open(cpu.New(), stories+"stories260K.bin", stories+"tok512.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Tokenizer == nil || l.Format != "llama2.c" || l.Context != 512 {
		t.Errorf("llama2.c: %+v", l)
	}
}

// Probe says, without loading weights, what Open says of a model: the same
// tokenizer and context, and the same refusals.
func TestProbeAgreesWithOpen(t *testing.T) {
	b, _, err := backend.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const text = "Once upon a time, Lily saw a big dog."
	for _, path := range []string{stories + "hf", stories + "stories260K.gguf"} {
		tok, n, err := Probe(path, "")
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		l, err := Open(b, path, "")
		if err != nil {
			t.Fatal(err)
		}
		if n != l.Context || !slices.Equal(tok.Encode(text), l.Tokenizer.Encode(text)) {
			t.Errorf("%s: Probe gives context %d and %v, Open %d and %v", path, n, tok.Encode(text), l.Context, l.Tokenizer.Encode(text))
		}
		l.Close()
	}
	bare := t.TempDir()
	data, err := os.ReadFile(stories + "hf/config.json")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(bare, "config.json"), data, 0o644)
	for _, c := range []struct{ path, want string }{
		{bare, "no tokenizer.json"},
		{stories + "stories260K.bin", "no tokenizer of its own"},
		{stories + "README.md", "unknown model format"},
	} {
		if _, _, err := Probe(c.path, ""); err == nil || !strings.Contains(err.Error(), c.want) || !inputerr.Is(err) {
			t.Errorf("%s: %v, want a bad-input error saying %q", c.path, err, c.want)
		}
	}
}
