package imatrix

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/job/lmeval"
	"github.com/quantkit/quantkit/lm"
	"github.com/quantkit/quantkit/model/imatrix"
)

const (
	storiesHF   = "../../testdata/llm/stories260K/hf"
	storiesGGUF = "../../testdata/llm/stories260K/stories260K.gguf"
)

// storiesText is n stories stories260K writes itself (sampled from "Once
// upon a time", temperature 1, top-p 0.95, seeds 1…n), in-distribution
// calibration text.
func storiesText(t *testing.T, n int) string {
	t.Helper()
	return storiesTextSeeds(t, 1, n)
}

// storiesTextSeeds is storiesText with seeds from seed on.
func storiesTextSeeds(t *testing.T, seed uint64, n int) string {
	t.Helper()
	ld, err := lmeval.Open(cpu.New(), storiesHF, "")
	if err != nil {
		t.Fatal(err)
	}
	defer ld.Close()
	var b strings.Builder
	for i := range n {
		rep, err := lmeval.Generate(context.Background(), lmeval.GenerateOptions{Model: ld.Model, Tokenizer: ld.Tokenizer,
			Prompt: "Once upon a time", N: 300, Temp: 1, TopP: 0.95, Seed: seed + uint64(i)})
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("Once upon a time" + rep.Text + "\n")
	}
	return b.String()
}

// TestChunks checks the cutting against llama-imatrix's rules written out
// by hand: whole chunks only, the limit, the skip, BOS in front of each,
// and the refusals of fewer than two chunks.
func TestChunks(t *testing.T) {
	ids := make([]int, 23)
	for i := range ids {
		ids[i] = 100 + i
	}
	got, n, err := Chunks(ids, 5, 0, 0, 1)
	want := []int{1, 101, 102, 103, 104, 1, 106, 107, 108, 109, 1, 111, 112, 113, 114, 1, 116, 117, 118, 119}
	if err != nil || n != 4 || !slices.Equal(got, want) {
		t.Errorf("Chunks = %v, %d, %v; want %v, 4", got, n, err, want)
	}
	if ids[5] != 105 {
		t.Error("Chunks wrote its input")
	}
	got, n, _ = Chunks(ids, 5, 2, 1, -1) // skip one chunk, at most two, no BOS
	if want := []int{105, 106, 107, 108, 109, 110, 111, 112, 113, 114}; n != 2 || !slices.Equal(got, want) {
		t.Errorf("skip 1, 2 chunks, no BOS = %v, %d; want %v", got, n, want)
	}
	if _, _, err := Chunks(ids, 12, 0, 0, 1); err == nil {
		t.Error("23 tokens in chunks of 12 (fewer than 2·12) accepted")
	}
	if _, _, err := Chunks(ids, 5, 0, 3, 1); err == nil { // (3+2)·5 ≥ 23
		t.Error("skipping 3 chunks of 5 of 23 tokens accepted")
	}
	if _, _, err := Chunks(ids, 0, 0, 0, 1); err == nil {
		t.Error("chunks of 0 accepted")
	}
}

// TestReadText checks llama.cpp's -f rule (one trailing newline dropped)
// and the refusals.
func TestReadText(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.txt")
	os.WriteFile(p, []byte("one\ntwo\n\n"), 0o666)
	if s, err := ReadText(p); err != nil || s != "one\ntwo\n" {
		t.Errorf("ReadText = %q, %v", s, err)
	}
	empty := filepath.Join(dir, "e.txt")
	os.WriteFile(empty, []byte(" \n"), 0o666)
	jl := filepath.Join(dir, "d.jsonl")
	os.WriteFile(jl, []byte(`{"text":"x"}`), 0o666)
	for _, p := range []string{empty, jl, filepath.Join(dir, "none.txt")} {
		if _, err := ReadText(p); err == nil {
			t.Errorf("ReadText(%s) accepted", p)
		}
	}
}

// TestRunAgainstTranscription computes the importance matrix of stories260K
// (its Hugging Face folder) on generated text with Run and with a float64
// transcription of the Llama forward pass kept here (RMSNorm, rotate-half
// RoPE, grouped-query causal attention, SwiGLU), summing x² of each
// projection's input as llama-imatrix does: every entry's sums within a
// relative 1e-4 (float32 against float64 arithmetic through five layers),
// counts equal to chunks × ctx, q/k/v equal and gate/up equal.
func TestRunAgainstTranscription(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "calib.txt")
	os.WriteFile(text, []byte(storiesText(t, 2)), 0o666)
	const ctx = 64
	got, rep, err := Run(context.Background(), Options{Model: storiesHF, Calib: text, Ctx: ctx, Chunks: 4, ProcessOutput: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Chunks != 4 || rep.Tokens != 4*ctx || got.ChunkCount != 4 || got.ChunkSize != ctx || !slices.Equal(got.Datasets, []string{text}) {
		t.Fatalf("report %+v, file chunks %d of %d, datasets %q", rep, got.ChunkCount, got.ChunkSize, got.Datasets)
	}
	ld, err := lmeval.Open(cpu.New(), storiesHF, "")
	if err != nil {
		t.Fatal(err)
	}
	defer ld.Close()
	s, _ := ReadText(text)
	all, bos := Tokenize(ld.Tokenizer, s)
	if bos != 1 || all[0] != 1 {
		t.Fatalf("BOS %d, first token %d: want 1", bos, all[0])
	}
	ids, n, _ := Chunks(all, ctx, 4, 0, bos)
	want := transcribe(ld.Model.Config, ld.Model.Weights, ids, n, ctx)
	// stories260K's Hugging Face folder ties its lm_head: no output.weight.
	if len(got.Entries) != len(want) {
		t.Errorf("%d entries, want %d", len(got.Entries), len(want))
	}
	worst := 0.0
	for name, w := range want {
		e, ok := got.Entry(name)
		if !ok {
			t.Errorf("no entry %s", name)
			continue
		}
		if len(e.Counts) != 1 || e.Counts[0] != int64(n*ctx) || len(e.Sums) != len(w) {
			t.Errorf("%s: counts %v, %d sums; want %d, %d", name, e.Counts, len(e.Sums), n*ctx, len(w))
			continue
		}
		for j, v := range w {
			d := math.Abs(float64(e.Sums[j])-v) / max(v, 1e-6)
			worst = max(worst, d)
			if d > 1e-4 {
				t.Errorf("%s[%d] = %g, transcription %g", name, j, e.Sums[j], v)
				break
			}
		}
	}
	t.Logf("largest relative difference %.3g", worst)
	for l := range ld.Model.Config.Layers {
		q, _ := got.Entry(fmt.Sprintf("blk.%d.attn_q.weight", l))
		v, _ := got.Entry(fmt.Sprintf("blk.%d.attn_v.weight", l))
		g, _ := got.Entry(fmt.Sprintf("blk.%d.ffn_gate.weight", l))
		u, _ := got.Entry(fmt.Sprintf("blk.%d.ffn_up.weight", l))
		if !slices.Equal(q.Sums, v.Sums) || !slices.Equal(g.Sums, u.Sums) {
			t.Errorf("layer %d: q and v, or gate and up, differ", l)
		}
	}
}

// transcribe is the importance sums (float64) of the Llama model c, w on
// seqs sequences of T ids, by a plain float64 forward pass.
func transcribe(c lm.Config, w *lm.Weights, ids []int, seqs, T int) map[string][]float64 {
	H, D, ff := c.Hidden, c.HeadDim, c.Intermediate
	out := map[string][]float64{}
	add := func(names []string, x []float64) {
		for _, n := range names {
			if out[n] == nil {
				out[n] = make([]float64, len(x))
			}
			for j, v := range x {
				out[n][j] += v * v
			}
		}
	}
	f64 := func(x []float32) []float64 {
		y := make([]float64, len(x))
		for i, v := range x {
			y[i] = float64(v)
		}
		return y
	}
	matvec := func(wt []float32, x []float64, rows int) []float64 {
		y := make([]float64, rows)
		cols := len(x)
		for r := range rows {
			for j, v := range x {
				y[r] += float64(wt[r*cols+j]) * v
			}
		}
		return y
	}
	norm := func(x []float64, g []float32) []float64 {
		var s float64
		for _, v := range x {
			s += v * v
		}
		k := 1 / math.Sqrt(s/float64(len(x))+c.RMSNormEps)
		y := make([]float64, len(x))
		for i, v := range x {
			y[i] = v * k * float64(g[i])
		}
		return y
	}
	rope := func(x []float64, heads, pos int) {
		for h := range heads {
			v := x[h*D : (h+1)*D]
			for i := range D / 2 {
				a := float64(pos) * math.Pow(c.RopeTheta, -2*float64(i)/float64(D))
				x0, x1 := v[i], v[i+D/2]
				v[i], v[i+D/2] = x0*math.Cos(a)-x1*math.Sin(a), x1*math.Cos(a)+x0*math.Sin(a)
			}
		}
	}
	for s := range seqs {
		x := make([][]float64, T)
		for p := range T {
			id := ids[s*T+p]
			x[p] = f64(w.Embed[id*H : (id+1)*H])
		}
		for l := range c.Layers {
			L := &w.Layers[l]
			name := func(n string) []string { return []string{fmt.Sprintf("blk.%d.%s.weight", l, n)} }
			ks, vs := make([][]float64, T), make([][]float64, T)
			qs := make([][]float64, T)
			for p := range T {
				xn := norm(x[p], L.AttnNorm)
				add(append(append(name("attn_q"), name("attn_k")...), name("attn_v")...), xn)
				qs[p], ks[p], vs[p] = matvec(L.Q, xn, c.QDim()), matvec(L.K, xn, c.KVDim()), matvec(L.V, xn, c.KVDim())
				rope(qs[p], c.Heads, p)
				rope(ks[p], c.KVHeads, p)
			}
			for p := range T {
				att := make([]float64, c.QDim())
				for h := range c.Heads {
					kh := h / (c.Heads / c.KVHeads)
					sc := make([]float64, p+1)
					m := math.Inf(-1)
					for t := 0; t <= p; t++ {
						for i := range D {
							sc[t] += qs[p][h*D+i] * ks[t][kh*D+i]
						}
						sc[t] /= math.Sqrt(float64(D))
						m = max(m, sc[t])
					}
					var z float64
					for t := range sc {
						sc[t] = math.Exp(sc[t] - m)
						z += sc[t]
					}
					for t := range sc {
						for i := range D {
							att[h*D+i] += sc[t] / z * vs[t][kh*D+i]
						}
					}
				}
				add(name("attn_output"), att)
				o := matvec(L.O, att, H)
				for i := range H {
					x[p][i] += o[i]
				}
				hn := norm(x[p], L.MLPNorm)
				add(append(name("ffn_gate"), name("ffn_up")...), hn)
				g, u := matvec(L.Gate, hn, ff), matvec(L.Up, hn, ff)
				a := make([]float64, ff)
				for i := range ff {
					a[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
				}
				add(name("ffn_down"), a)
				d := matvec(L.Down, a, H)
				for i := range H {
					x[p][i] += d[i]
				}
			}
		}
	}
	return out
}

// TestWriteFormats writes a small file in both formats and reads it back:
// GGUF keeps sums and counts; the legacy .dat keeps the importance
// (sums/count) as llama-quantize reads it.
func TestWriteFormats(t *testing.T) {
	acc := imatrix.NewAccumulator()
	if err := acc.Add("blk.0.attn_q.weight", []float32{1, 2, 3, 4, 5, 6}, 3); err != nil {
		t.Fatal(err)
	}
	f := acc.File(2, "calib.txt")
	dir := t.TempDir()
	for _, format := range Formats() {
		p := filepath.Join(dir, "m."+format)
		if err := Write(p, format, f); err != nil {
			t.Fatal(err)
		}
		g, err := imatrix.Read(p)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := g.Importance("blk.0.attn_q.weight")
		if want := []float32{17.0 / 2, 29.0 / 2, 45.0 / 2}; !slices.Equal(w, want) {
			t.Errorf("%s: importance %v, want %v", format, w, want)
		}
	}
	if err := Write(filepath.Join(dir, "x"), "bin", f); err == nil {
		t.Error("format bin accepted")
	}
}

// TestRunRefuses checks bad input: no calibration file, text shorter than
// two chunks, JSONL for chunks, a model lm cannot open.
func TestRunRefuses(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short.txt")
	os.WriteFile(short, []byte("Once upon a time, there was a cat."), 0o666)
	jl := filepath.Join(dir, "d.jsonl")
	os.WriteFile(jl, []byte(`{"text":"Once upon a time"}`), 0o666)
	for _, tc := range []struct {
		opt  Options
		want string
	}{
		{Options{Model: storiesHF}, "no calibration data"},
		{Options{Model: storiesHF, Calib: filepath.Join(dir, "none.txt")}, "none.txt"},
		{Options{Model: storiesHF, Calib: short, Ctx: 64}, "fewer than the 128"},
		{Options{Model: storiesHF, Calib: jl}, "windows"},
		{Options{Model: dir, Calib: short}, "safetensors"},
	} {
		_, _, err := Run(context.Background(), tc.opt)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v; want an error with %q", tc.opt, err, tc.want)
		}
	}
}
