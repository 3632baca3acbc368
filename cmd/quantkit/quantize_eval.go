package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/job/lmeval"
	"github.com/quantkit/quantkit/job/quantize"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/tokenizer"
)

// quantize --eval FILE: once OUT is written, what quantizing cost, as
// `quantkit lm eval --ref IN OUT` measures it (job/lmeval), on the CPU.

var (
	quantEvalFlag = &cli.StringFlag{Name: "eval", Usage: "once OUT is written, measure on the text in `FILE` OUT's perplexity and KL divergence from IN " +
		"(as lm eval --ref IN OUT, on the CPU; a Llama-family IN; not with --dry-run, --shard, gguf-q8_0 or gguf-q4_0)"}
	quantEvalCtxFlag = &cli.IntFlag{Name: "eval-ctx", Usage: "with --eval: windows of `N` tokens (the second half of each is scored)",
		DefaultText: "512, or the model's context when shorter"}
)

// defaultEvalCtx is --eval-ctx's default, lm eval's --ctx.
const defaultEvalCtx = 512

// quantEval is --eval: what parseQuantEval checked before any quantization.
type quantEval struct {
	file   string // FILE
	orig   string // the reference: IN's folder, or IN the GGUF file
	tokens []int  // FILE's text, by the reference's tokenizer
	ctx    int    // the window
}

// parseQuantEval reads --eval and --eval-ctx (nil without --eval): it
// refuses them where they cannot apply and checks, before quantizing, that
// FILE holds text, that lm loads IN (a Llama-family checkpoint with its
// tokenizer, or a llama GGUF whose vocabulary it reads) and that the text
// fills a window. in is IN; format is --format.
func parseQuantEval(c *cli.Context, in, format string) (*quantEval, error) {
	if !c.IsSet(quantEvalFlag.Name) {
		if c.IsSet(quantEvalCtxFlag.Name) {
			return nil, errors.New("--eval-ctx needs --eval FILE")
		}
		return nil, nil
	}
	file := c.String(quantEvalFlag.Name)
	switch {
	case file == "":
		return nil, errors.New("--eval needs a text FILE")
	case c.Bool(quantDryFlag.Name):
		return nil, errors.New("--eval measures the model written, and --dry-run writes none: drop one of them")
	case c.IsSet(quantShardFlag.Name):
		return nil, errors.New("--eval measures a whole model, and --shard writes a part: join the parts with merge and run quantkit lm eval --ref IN on the result")
	}
	if typ, ok := ggufMixOf[plan.Format(format)]; ok {
		return nil, fmt.Errorf("--eval: --format %s writes Hugging Face tensor names in GGUF, which lm cannot load: use --format gguf --type %s", format, typ)
	}
	e := &quantEval{file: file}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--eval: %w", err)
	}
	if strings.TrimSpace(string(data)) == "" {
		return nil, fmt.Errorf("--eval %s: the file is empty", file)
	}
	tok, modelCtx, err := evalReference(e, in)
	if err != nil {
		return nil, fmt.Errorf("--eval: %w", err)
	}
	e.tokens = tok.EncodeWith(string(data), false)
	e.ctx = c.Int(quantEvalCtxFlag.Name)
	if !c.IsSet(quantEvalCtxFlag.Name) {
		e.ctx = defaultEvalCtx
		if modelCtx > 0 && modelCtx < e.ctx {
			e.ctx = modelCtx
		}
	}
	if e.ctx < 4 {
		return nil, fmt.Errorf("--eval-ctx %d: want at least 4 tokens", e.ctx)
	}
	if len(e.tokens) < e.ctx {
		return nil, fmt.Errorf("--eval %s: the text is %d tokens, shorter than one window of %d: give a longer text or a smaller --eval-ctx",
			file, len(e.tokens), e.ctx)
	}
	return e, nil
}

// evalReference sets e.orig from IN and returns its tokenizer and context
// length (0 when unknown), refusing an IN that lm would not load.
func evalReference(e *quantEval, in string) (*tokenizer.Tokenizer, int, error) {
	ref := in
	if st, err := os.Stat(in); err == nil && !st.IsDir() && !isGGUFFile(in) {
		ref = filepath.Dir(in) // a .safetensors or its index: config.json and the tokenizer sit beside it
	}
	tok, n, err := lmeval.Probe(ref, "")
	if err != nil {
		return nil, 0, err
	}
	e.orig = ref
	return tok, n, nil
}

// run measures out (the model quantize wrote) against the reference on the
// CPU backend, with a progress bar unless --json.
func (e *quantEval) run(c *cli.Context, out string) (*lmeval.EvalReport, error) {
	b, _, err := backend.Open("cpu")
	if err != nil {
		return nil, err
	}
	defer b.Close()
	ref, err := lmeval.Open(b, e.orig, "")
	if err != nil {
		return nil, err
	}
	defer ref.Close()
	// The output shares IN's vocabulary: read its tokenizer from IN's folder
	// rather than from a GGUF's metadata, which lm reads only for
	// SentencePiece vocabularies.
	tokPath := ""
	if !isGGUFFile(e.orig) {
		tokPath = e.orig
	}
	q, err := lmeval.Open(b, out, tokPath)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	update, finish := stepBar(c)
	defer finish()
	return lmeval.Eval(c.Context, lmeval.EvalOptions{
		Models: []lmeval.NamedModel{{Name: out, Model: q.Model}}, Ref: &lmeval.NamedModel{Name: e.orig, Model: ref.Model},
		Tokens: e.tokens, Ctx: e.ctx, Progress: update,
	})
}

// evalFailed is the error of an --eval that failed after OUT was written:
// OUT stays, and the error says so.
func evalFailed(out string, err error) error {
	return fmt.Errorf("wrote %s, but --eval failed: %w", out, err)
}

// writeEvalTable is the table of --eval after a quantize report's.
func writeEvalTable(w io.Writer, file string, rep *lmeval.EvalReport) error {
	if _, err := fmt.Fprintf(w, "\neval on %s (KL divergence from the input):\n", file); err != nil {
		return err
	}
	return rep.WriteTable(w)
}

// reportQuantized renders a quantize run's report, rep with its table; with
// --eval (ev not nil) it first evaluates out against the input, then adds
// the evaluation after the table and, through withEval, to the JSON.
func reportQuantized(c *cli.Context, ev *quantEval, out string, rep any, table func(io.Writer) error,
	withEval func(*lmeval.EvalReport) any) error {
	if ev == nil {
		return report(c, rep, table)
	}
	er, err := ev.run(c, out)
	if err != nil {
		return evalFailed(out, err)
	}
	return report(c, withEval(er), func(w io.Writer) error {
		if err := table(w); err != nil {
			return err
		}
		return writeEvalTable(w, ev.file, er)
	})
}

// quantizeEvalReport is quantize's JSON report with --eval: the job's
// report with an "eval" field (job/lmeval's report). The job's report types
// know nothing of language models; this command joins the two.
type quantizeEvalReport struct {
	*quantize.Report
	Eval *lmeval.EvalReport `json:"eval"`
}

// quantizeGGUFEvalReport is quantizeEvalReport for --format gguf.
type quantizeGGUFEvalReport struct {
	*quantize.GGUFReport
	Eval *lmeval.EvalReport `json:"eval"`
}
