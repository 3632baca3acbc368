package imatrix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/job/llmq"
	"github.com/quantkit/quantkit/job/lmeval"
	"github.com/quantkit/quantkit/lm"
	"github.com/quantkit/quantkit/model/imatrix"
	"github.com/quantkit/quantkit/tokenizer"
)

// DefaultCtx is llama-imatrix's default --ctx-size: the tokens a chunk.
const DefaultCtx = 512

// Options say what Run computes the importance matrix of, and on what.
type Options struct {
	// Model is what lmeval.Open opens: a Hugging Face folder, a .gguf
	// file or a llama2.c .bin; Tokenizer, when not empty, overrides its
	// tokenizer (and is needed for a llama2.c checkpoint).
	Model, Tokenizer string
	// Calib is the calibration file: plain text for llama-imatrix's
	// chunks; text, JSONL or .npy ids for windows (Samples > 0).
	Calib string
	// Ctx is the chunk length in tokens (llama-imatrix's --ctx-size);
	// 0 means DefaultCtx. Chunks is the most chunks used (--chunks; 0:
	// all), Skip the chunks skipped first (--chunk).
	Ctx, Chunks, Skip int
	// Samples > 0 takes job/llmq's calibration windows instead of
	// chunks: Samples sequences of SeqLen tokens (0: llmq.DefaultSeqLen)
	// at offsets drawn with Seed.
	Samples, SeqLen int
	Seed            uint64
	// ProcessOutput also collects output.weight's input, as
	// llama-imatrix --process-output (models with an lm_head of their own).
	ProcessOutput bool
	// Backend runs the layers; nil means the CPU.
	Backend backend.Backend
	// Progress, if not nil, is called after each layer.
	Progress func(layer, layers int)
}

// Report is what Run did; its JSON is the imatrix command's --json output.
type Report struct {
	Model  string `json:"model"`
	Calib  string `json:"calib"`
	Device string `json:"device"`
	// Mode is "chunks" (llama-imatrix's) or "windows" (llmq's).
	Mode      string `json:"mode"`
	Selection string `json:"selection"`
	// TextTokens are the tokens of the calibration text (or of the
	// stream the windows are cut from).
	TextTokens int `json:"text_tokens"`
	ChunkSize  int `json:"chunk_size"`
	Chunks     int `json:"chunks"`
	// Tokens is every entry's count: Chunks·ChunkSize.
	Tokens  int `json:"tokens"`
	Entries int `json:"entries"`
	Layers  int `json:"layers"`
	// HiddenBytes is the hidden states' memory (every chunk at once).
	HiddenBytes  int64   `json:"hidden_bytes"`
	Seconds      float64 `json:"seconds"`
	TokensPerSec float64 `json:"tokens_per_s"`
	Output       string  `json:"output,omitempty"`
}

// WriteTable writes the report for people.
func (r *Report) WriteTable(w io.Writer) error {
	_, err := fmt.Fprintf(w, "importance matrix of %s on %s (%s)\n"+
		"  %s\n"+
		"  %d entries, %d layers, %d chunks of %d tokens = %d tokens each (text: %d tokens)\n"+
		"  %.2f s, %.0f tokens/s; hidden states %.1f MiB\n",
		r.Model, r.Calib, r.Device, r.Selection, r.Entries, r.Layers, r.Chunks, r.ChunkSize, r.Tokens, r.TextTokens,
		r.Seconds, r.TokensPerSec, float64(r.HiddenBytes)/(1<<20))
	if err == nil && r.Output != "" {
		_, err = fmt.Fprintf(w, "  written to %s\n", r.Output)
	}
	return err
}

// Run computes the importance matrix opt describes (see the package
// documentation for how the text is cut). The File's dataset is
// opt.Calib as given, its chunk size and count as the report says.
func Run(ctx context.Context, opt Options) (*imatrix.File, *Report, error) {
	start := time.Now()
	if opt.Calib == "" {
		return nil, nil, inputerr.Mark(errors.New("imatrix: no calibration data (--calib FILE)"))
	}
	if opt.Ctx < 0 || opt.Chunks < 0 || opt.Skip < 0 || opt.Samples < 0 || opt.SeqLen < 0 {
		return nil, nil, inputerr.Mark(fmt.Errorf("imatrix: negative sizes: ctx %d, chunks %d, skip %d, samples %d, seq-len %d",
			opt.Ctx, opt.Chunks, opt.Skip, opt.Samples, opt.SeqLen))
	}
	if _, err := os.Stat(opt.Calib); err != nil {
		return nil, nil, inputerr.Mark(fmt.Errorf("imatrix: %w", err))
	}
	b := opt.Backend
	if b == nil {
		b = cpu.New()
	}
	// The model on the host (the cpu backend places weights in place);
	// the layers run on b.
	ld, err := lmeval.Open(cpu.New(), opt.Model, opt.Tokenizer)
	if err != nil {
		return nil, nil, err
	}
	defer ld.Close()
	if ld.Tokenizer == nil {
		return nil, nil, inputerr.Mark(fmt.Errorf("imatrix: %s has no tokenizer of its own: give one (--tokenizer)", opt.Model))
	}
	cfg := ld.Model.Config
	rep := &Report{Model: opt.Model, Calib: opt.Calib, Device: b.Name(), Layers: cfg.Layers}
	var ids []int
	var seqs, T int
	if opt.Samples > 0 {
		c, err := llmq.LoadCalibration(llmq.CalibOptions{Path: opt.Calib, Samples: opt.Samples, SeqLen: opt.SeqLen, Seed: opt.Seed},
			ld.Tokenizer, ld.Tokenizer.BOS(), ld.Tokenizer.EOS(), cfg.Vocab)
		if err != nil {
			return nil, nil, err
		}
		ids, seqs, T = c.IDs, c.Samples, c.SeqLen
		rep.Mode, rep.Selection, rep.TextTokens = "windows", c.Selection, c.Tokens
	} else {
		text, err := ReadText(opt.Calib)
		if err != nil {
			return nil, nil, err
		}
		T = opt.Ctx
		if T == 0 {
			T = DefaultCtx
		}
		all, bos := Tokenize(ld.Tokenizer, text)
		rep.TextTokens = len(all)
		if ids, seqs, err = Chunks(all, T, opt.Chunks, opt.Skip, bos); err != nil {
			return nil, nil, inputerr.Mark(fmt.Errorf("imatrix: %s: %w", opt.Calib, err))
		}
		rep.Mode = "chunks"
		rep.Selection = fmt.Sprintf("%d consecutive chunks of %d tokens after skipping %d, as llama-imatrix cuts them", seqs, T, opt.Skip)
		if bos >= 0 {
			rep.Selection += " (the first token of each is BOS)"
		}
	}
	for i, id := range ids {
		if id < 0 || id >= cfg.Vocab {
			return nil, nil, inputerr.Mark(fmt.Errorf("imatrix: %s: token %d at %d is outside the model's vocabulary of %d", opt.Calib, id, i, cfg.Vocab))
		}
	}
	rep.ChunkSize, rep.Chunks, rep.Tokens = T, seqs, seqs*T
	rep.HiddenBytes = int64(len(ids)) * int64(cfg.Hidden) * 4
	acc := imatrix.NewAccumulator()
	if err := Collect(ctx, b, cfg, ld.Model.Weights, ids, seqs, T, opt.ProcessOutput, acc, opt.Progress); err != nil {
		return nil, nil, err
	}
	f := acc.File(T, opt.Calib)
	f.ChunkCount = seqs
	rep.Entries = len(f.Entries)
	rep.Seconds = time.Since(start).Seconds()
	if rep.Seconds > 0 {
		rep.TokensPerSec = float64(rep.Tokens) / rep.Seconds
	}
	return f, rep, nil
}

// ReadText reads a calibration file as llama-imatrix's -f reads it: the
// whole file, one trailing newline dropped. JSONL and .npy files are
// refused: llama-imatrix's chunks take plain text (Options.Samples reads
// those).
func ReadText(path string) (string, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl", ".npy", ".safetensors":
		return "", inputerr.Mark(fmt.Errorf("imatrix: %s: llama-imatrix's chunks are cut from plain text; for JSONL documents or token ids use windows (--calib-samples, --calib-len)", path))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", inputerr.Mark(fmt.Errorf("imatrix: %w", err))
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return "", inputerr.Mark(fmt.Errorf("imatrix: %s is empty", path))
	}
	return strings.TrimSuffix(string(data), "\n"), nil
}

// Tokenize is the ids of text with the tokenizer's special tokens, as
// llama-imatrix tokenizes its text (common_tokenize with add_special), and
// the BOS id that begins every chunk: the tokenizer's BOS where it adds
// one, else -1.
func Tokenize(tok *tokenizer.Tokenizer, text string) (ids []int, bos int) {
	bos = -1
	if pre := tok.Encode(""); len(pre) > 0 && tok.BOS() >= 0 && pre[0] == tok.BOS() {
		bos = tok.BOS()
	}
	return tok.Encode(text), bos
}

// Chunks cuts ids as llama-imatrix's compute_imatrix does: skip·ctx ids
// dropped, then n = min(maxChunks (0: no limit), len/ctx) consecutive
// chunks of ctx ids, each with its first id replaced by bos when bos ≥ 0.
// It returns the n·ctx ids, chunk after chunk, and n; fewer than 2·ctx
// ids after the skip are refused, as llama-imatrix refuses them.
func Chunks(ids []int, ctx, maxChunks, skip, bos int) ([]int, int, error) {
	if ctx <= 0 {
		return nil, 0, fmt.Errorf("chunks of %d tokens", ctx)
	}
	if skip > 0 {
		if (skip+2)*ctx >= len(ids) {
			return nil, 0, fmt.Errorf("%d tokens: not enough left after skipping %d chunks of %d (llama-imatrix refuses it too)", len(ids), skip, ctx)
		}
		ids = ids[skip*ctx:]
	}
	if len(ids) < 2*ctx {
		return nil, 0, fmt.Errorf("%d tokens, fewer than the %d that llama-imatrix needs for chunks of %d (2 chunks): give more text or a smaller --ctx", len(ids), 2*ctx, ctx)
	}
	n := len(ids) / ctx
	if maxChunks > 0 {
		n = min(n, maxChunks)
	}
	out := append([]int(nil), ids[:n*ctx]...)
	if bos >= 0 {
		for i := 0; i < n; i++ {
			out[i*ctx] = bos
		}
	}
	return out, n, nil
}

// inputNames are the GGUF names (without "blk.N.") of the weights that
// read each lm.LinearInput.
var inputNames = map[lm.LinearInput][]string{
	lm.QKVInput:    {"attn_q", "attn_k", "attn_v"},
	lm.OInput:      {"attn_output"},
	lm.GateUpInput: {"ffn_gate", "ffn_up"},
	lm.DownInput:   {"ffn_down"},
}

// TensorNames are the GGUF names of the weights of layer that read in,
// in llama.cpp's naming ("blk.0.attn_q.weight").
func TensorNames(layer int, in lm.LinearInput) []string {
	var out []string
	for _, n := range inputNames[in] {
		out = append(out, fmt.Sprintf("blk.%d.%s.weight", layer, n))
	}
	return out
}

// Collect runs the model c, w over ids (seqs sequences of T tokens, each
// from position 0) layer by layer on b (lm.Block) and adds each
// projection's input rows to acc under its GGUF name (TensorNames), and,
// with output, the final norm's output to output.weight where w has an
// lm_head of its own. progress, if not nil, is called after each layer.
func Collect(ctx context.Context, b backend.Backend, c lm.Config, w *lm.Weights, ids []int, seqs, T int, output bool,
	acc *imatrix.Accumulator, progress func(layer, layers int)) error {
	if len(ids) != seqs*T || seqs <= 0 || T <= 0 {
		return fmt.Errorf("imatrix: %d ids are not %d sequences of %d", len(ids), seqs, T)
	}
	h, err := embed(w, c.Hidden, ids)
	if err != nil {
		return err
	}
	for i := range c.Layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		blk, err := lm.NewBlock(b, c, i, &w.Layers[i])
		if err != nil {
			return err
		}
		tap := func(in lm.LinearInput, x []float32, rows, cols int) error {
			for _, name := range TensorNames(i, in) {
				if err := acc.Add(name, x[:rows*cols], cols); err != nil {
					return err
				}
			}
			return nil
		}
		err = blk.Forward(h, seqs, T, tap)
		if err = errors.Join(err, blk.Close()); err != nil {
			return err
		}
		if progress != nil {
			progress(i+1, c.Layers)
		}
	}
	if output && (w.LMHead != nil || w.LMHeadPacked != nil) {
		rmsNorm(h, w.Norm, c.Hidden, c.RMSNormEps)
		return acc.Add("output.weight", h, c.Hidden)
	}
	return nil
}

// embed is the embedding rows of ids, decoded from a packed table where
// the model keeps it packed.
func embed(w *lm.Weights, hidden int, ids []int) ([]float32, error) {
	if w.Embed != nil || w.EmbedPacked == nil {
		return lm.Embed(w.Embed, hidden, ids)
	}
	p := w.EmbedPacked
	rb, err := p.Format.RowBytes(hidden)
	if err != nil {
		return nil, fmt.Errorf("imatrix: the embedding table: %w", err)
	}
	vocab := len(p.Data) / rb
	out := make([]float32, len(ids)*hidden)
	for i, id := range ids {
		if id < 0 || id >= vocab {
			return nil, fmt.Errorf("imatrix: token %d out of range [0, %d)", id, vocab)
		}
		p.Format.DecodeRows(out[i*hidden:(i+1)*hidden], p.Data[id*rb:(id+1)*rb], hidden)
	}
	return out, nil
}

// rmsNorm normalizes each row of x in place: x·g/√(mean(x²)+eps), the
// mean in float64 as ggml's rms_norm sums.
func rmsNorm(x, g []float32, hidden int, eps float64) {
	for r := 0; r < len(x); r += hidden {
		row := x[r : r+hidden]
		var s float64
		for _, v := range row {
			s += float64(v) * float64(v)
		}
		scale := float32(1 / math.Sqrt(s/float64(hidden)+eps))
		for j := range row {
			row[j] = row[j] * scale * g[j]
		}
	}
}

// Formats are the file formats Write writes.
func Formats() []string { return []string{"gguf", "dat"} }

// Write writes f to path in format "gguf" (llama-imatrix's default) or
// "dat" (its legacy --output-format dat), atomically.
func Write(path, format string, f *imatrix.File) error {
	switch format {
	case "gguf":
		return imatrix.WriteGGUF(path, f)
	case "dat":
		var buf bytes.Buffer
		if err := imatrix.WriteLegacy(&buf, f); err != nil {
			return err
		}
		if err := atomicfile.WriteFile(path, buf.Bytes(), 0o666); err != nil {
			return fmt.Errorf("imatrix: %w", err)
		}
		return nil
	}
	return inputerr.Mark(fmt.Errorf("imatrix: format %q: want gguf or dat", format))
}
