package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/internal/jsonout"
	"github.com/quantkit/quantkit/job/lmeval"
)

var (
	lmTokenizerFlag = &cli.StringFlag{Name: "tokenizer", Usage: "the tokenizer: a folder with tokenizer.json, a tokenizer.json or llama2.c's tokenizer.bin (needed for a llama2.c .bin model; default: the model's own)"}
	lmPromptFlag    = &cli.StringFlag{Name: "prompt", Aliases: []string{"p"}, Usage: "the text to continue (empty: start from BOS)"}
	lmNFlag         = &cli.IntFlag{Name: "n", Value: 128, Usage: "generate at most `N` tokens (fewer at EOS or the model's context)"}
	lmTempFlag      = &cli.Float64Flag{Name: "temp", Usage: "sampling temperature; 0 is greedy"}
	lmTopPFlag      = &cli.Float64Flag{Name: "top-p", Value: 1, Usage: "sample from the most likely tokens whose probabilities add up to `P`"}
	lmSeedFlag      = &cli.Uint64Flag{Name: "seed", Usage: "seed of the sampler"}
	lmTextFlag      = &cli.StringFlag{Name: "text", Usage: "the text itself (or give a FILE argument)"}
	lmIDsFlag       = &cli.BoolFlag{Name: "ids", Usage: "print only the ids, space-separated"}
	lmDecodeFlag    = &cli.StringFlag{Name: "decode", Usage: "decode `IDS` (space- or comma-separated; special tokens left out) instead of encoding"}
	lmEvalTextFlag  = &cli.StringFlag{Name: "text", Usage: "the text `FILE` to measure on", Required: true}
	lmCtxFlag       = &cli.IntFlag{Name: "ctx", Value: 512, Usage: "window length in tokens (the second half of each window is scored)"}
	lmRefFlag       = &cli.StringFlag{Name: "ref", Usage: "reference `MODEL`: report each model's KL divergence from it and top-1 agreement"}
	lmW8A8Flag      = &cli.BoolFlag{Name: "w8a8", Usage: "run an int8 per-channel checkpoint (quantkit quantize --scheme int8) as W8A8: the weights stay int8, each token's activations are quantized to int8 with one scale per token, and the matrix products are integer GEMMs; refused for a model without int8 per-channel weights (a float or int4 checkpoint, a GGUF or llama2.c file)"}
	lmExactFlag     = &cli.BoolFlag{Name: "exact", Usage: "multiply packed (quantized) weights by float32 activations, as their dequantized float copy would be; by default decode and prefill round each activation row to 8 bits in blocks of 32 and use integer dot products (as llama.cpp does: faster, a relative error of about 1/254 of each block's largest activation); the environment variable QUANTKIT_EXACT_PACKED=1 does the same"}
	lmFloat32Flag   = &cli.BoolFlag{Name: "float32", Usage: "widen every weight to float32 at load (4 bytes a weight, the float32 GEMMs): the float model on the dequantized weights; by default quantized and 16-bit weights stay packed in memory and are decoded a tile at a time inside the matrix products"}
	lmEvalW8A8Flag  = &cli.BoolFlag{Name: "w8a8", Usage: "run each MODEL that is an int8 per-channel checkpoint as W8A8 (int8 weights, activations quantized to int8 per token, integer GEMMs; named \"MODEL (w8a8)\" in the report); the other MODELs and the --ref run as without the flag; refused when no MODEL has int8 per-channel weights"}
)

// w8a8Help says what --w8a8 does, for the commands' descriptions.
const w8a8Help = "With --w8a8, an int8 per-channel checkpoint (what quantize --scheme int8 writes) runs as\n" +
	"W8A8: its projections stay int8 in memory, each token's activations are quantized to int8\n" +
	"(scale max|x|/127, rounded half to even) and the products are int8 GEMMs with int32\n" +
	"accumulators, scaled back per token and per output channel. Without it, quantized weights\n" +
	"stay packed in memory (int8/int4 codes with their scales, GGUF blocks, F16/BF16) and the\n" +
	"matrix products decode them a tile at a time against float32 activations (weight-only:\n" +
	"what the float model on the dequantized weights computes); --float32 widens them at load."

var lmCommand = &cli.Command{
	Name:  "lm",
	Usage: "run language models: generate text, tokenize, measure perplexity and KL divergence",
	Description: "MODEL is a Hugging Face folder (config.json, safetensors, tokenizer.json), a .gguf file\n" +
		"(its SentencePiece vocabulary is read from the metadata) or a llama2.c .bin checkpoint\n" +
		"(give its tokenizer.bin with --tokenizer).",
	Subcommands: []*cli.Command{
		{
			Name: "generate", Usage: "continue a prompt, streaming the text to stdout", ArgsUsage: "MODEL",
			Description: "Greedy by default; --temp T samples from softmax(logits/T), restricted by --top-p.\n" +
				"The prompt and the text stream to stdout, the timings (prompt and generation\n" +
				"tokens/s apart) to stderr at the end; --json prints the report instead.\n" + w8a8Help,
			Flags:  append([]cli.Flag{lmPromptFlag, lmNFlag, lmTempFlag, lmTopPFlag, lmSeedFlag, lmTokenizerFlag, lmW8A8Flag, lmFloat32Flag, lmExactFlag, deviceFlag, jsonFlag}, jobFlags...),
			Action: runLMGenerate,
		},
		{
			Name: "tokenize", Usage: "show the tokens of a text (or decode ids)", ArgsUsage: "MODEL [FILE]",
			Flags:  []cli.Flag{lmTextFlag, lmIDsFlag, lmDecodeFlag, lmTokenizerFlag, jsonFlag},
			Action: runLMTokenize,
		},
		{
			Name: "eval", Usage: "perplexity of models on a text and their KL divergence from a reference", ArgsUsage: "MODEL...",
			Description: "As llama-perplexity: the text is cut into windows of --ctx tokens, each starts with BOS\n" +
				"and is run from an empty cache, and the second half of each is scored. With --ref,\n" +
				"each model's next-token distributions are compared with the reference's: mean, 99th\n" +
				"percentile and max of KL(ref‖model), and how often their top tokens agree.\n" + w8a8Help + "\n" +
				"In lm eval, --w8a8 applies to each MODEL that has int8 per-channel weights (named\n" +
				"\"MODEL (w8a8)\"); the others and the --ref run as without it, so that one table compares\n" +
				"the original with its W8A8 and other quantizations.",
			Flags:  append([]cli.Flag{lmEvalTextFlag, lmCtxFlag, lmRefFlag, lmTokenizerFlag, lmEvalW8A8Flag, lmFloat32Flag, lmExactFlag, deviceFlag, jsonFlag, jsonOutFlag}, jobFlags...),
			Action: runLMEval,
		},
	},
}

func oneModel(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", badInput(fmt.Errorf("lm %s: want one MODEL argument, got %d", what, c.NArg()))
	}
	return c.Args().First(), nil
}

// applyExact makes the packed weights' products exact (cpu.SetExactPacked)
// when --exact is given, in this process and in the child processes it
// starts (bench lm's), which read QUANTKIT_EXACT_PACKED.
func applyExact(c *cli.Context) {
	if c.Bool(lmExactFlag.Name) {
		os.Setenv("QUANTKIT_EXACT_PACKED", "1")
		cpu.SetExactPacked(true)
	}
}

func runLMGenerate(c *cli.Context) error {
	applyExact(c)
	path, err := oneModel(c, "generate")
	if err != nil {
		return err
	}
	sink, err := jobSinkFrom(c, "lm-generate")
	if err != nil {
		return fmt.Errorf("lm generate: %w", err)
	}
	return onDeviceAsJob(c, sink, func(b backend.Backend) error {
		open := lmeval.OpenOptions{Tokenizer: c.String(lmTokenizerFlag.Name), Float32: c.Bool(lmFloat32Flag.Name)}
		if c.Bool(lmW8A8Flag.Name) {
			open.W8A8 = lmeval.W8A8Required
		}
		l, err := lmeval.OpenWith(b, path, open)
		if err != nil {
			return fmt.Errorf("lm generate: %w", err)
		}
		defer l.Close()
		if l.Tokenizer == nil {
			return badInput(fmt.Errorf("lm generate: %s has no tokenizer: give one with --tokenizer", path))
		}
		js := c.Bool(jsonFlag.Name)
		out := c.App.Writer
		opt := lmeval.GenerateOptions{Model: l.Model, Tokenizer: l.Tokenizer, Prompt: c.String(lmPromptFlag.Name), N: c.Int(lmNFlag.Name),
			Temp: c.Float64(lmTempFlag.Name), TopP: c.Float64(lmTopPFlag.Name), Seed: c.Uint64(lmSeedFlag.Name), Context: l.Context}
		if !js {
			io.WriteString(out, opt.Prompt)
			opt.OnToken = func(s string) { io.WriteString(out, s) }
		}
		rep, err := lmeval.Generate(c.Context, opt)
		if err != nil {
			if !js {
				fmt.Fprintln(out)
			}
			return fmt.Errorf("lm generate: %w", err)
		}
		if js {
			return jsonout.Write(out, rep)
		}
		fmt.Fprintln(out)
		return rep.WriteTable(c.App.ErrWriter)
	})
}

func runLMTokenize(c *cli.Context) error {
	if c.NArg() < 1 || c.NArg() > 2 {
		return badInput(fmt.Errorf("lm tokenize: want MODEL and an optional FILE, got %d arguments", c.NArg()))
	}
	tokPath := c.String(lmTokenizerFlag.Name)
	if tokPath == "" {
		tokPath = c.Args().First()
		if strings.HasSuffix(strings.ToLower(tokPath), ".gguf") {
			t, err := lmeval.GGUFTokenizer(tokPath)
			if err != nil {
				return fmt.Errorf("lm tokenize: %w", err)
			}
			return tokenize(c, t)
		}
		if st, err := os.Stat(tokPath); err == nil && !st.IsDir() {
			return badInput(fmt.Errorf("lm tokenize: %s: give the tokenizer of a llama2.c model with --tokenizer", tokPath))
		}
	}
	t, err := lmeval.LoadTokenizer(tokPath)
	if err != nil {
		return fmt.Errorf("lm tokenize: %w", err)
	}
	return tokenize(c, t)
}

type tokenizeReport struct {
	IDs    []int    `json:"ids"`
	Pieces []string `json:"pieces"`
	Text   string   `json:"text"`
}

func tokenize(c *cli.Context, t interface {
	Encode(string) []int
	DecodeSkipSpecial([]int) string
	Piece(int) string
	VocabSize() int
}) error {
	var rep tokenizeReport
	if c.IsSet(lmDecodeFlag.Name) {
		for _, f := range strings.FieldsFunc(c.String(lmDecodeFlag.Name), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }) {
			id, err := strconv.Atoi(f)
			if err != nil || id < 0 || id >= t.VocabSize() {
				return badInput(fmt.Errorf("lm tokenize: --decode: %q is not a token id in [0, %d)", f, t.VocabSize()))
			}
			rep.IDs = append(rep.IDs, id)
		}
		rep.Text = t.DecodeSkipSpecial(rep.IDs)
	} else {
		switch {
		case c.IsSet(lmTextFlag.Name) && c.NArg() == 2:
			return badInput(fmt.Errorf("lm tokenize: give --text or a FILE, not both"))
		case c.IsSet(lmTextFlag.Name):
			rep.Text = c.String(lmTextFlag.Name)
		case c.NArg() == 2:
			data, err := os.ReadFile(c.Args().Get(1))
			if err != nil {
				return badInput(fmt.Errorf("lm tokenize: %w", err))
			}
			rep.Text = string(data)
		default:
			return badInput(fmt.Errorf("lm tokenize: give --text TEXT, a FILE or --decode IDS"))
		}
		rep.IDs = t.Encode(rep.Text)
	}
	for _, id := range rep.IDs {
		rep.Pieces = append(rep.Pieces, t.Piece(id))
	}
	if c.Bool(jsonFlag.Name) {
		return jsonout.Write(c.App.Writer, rep)
	}
	w := c.App.Writer
	if c.IsSet(lmDecodeFlag.Name) {
		_, err := fmt.Fprintln(w, rep.Text)
		return err
	}
	if c.Bool(lmIDsFlag.Name) {
		s := make([]string, len(rep.IDs))
		for i, id := range rep.IDs {
			s[i] = strconv.Itoa(id)
		}
		_, err := fmt.Fprintln(w, strings.Join(s, " "))
		return err
	}
	for i, id := range rep.IDs {
		fmt.Fprintf(w, "%6d  %q\n", id, rep.Pieces[i])
	}
	_, err := fmt.Fprintf(w, "%d tokens\n", len(rep.IDs))
	return err
}

func runLMEval(c *cli.Context) error {
	applyExact(c)
	if c.NArg() == 0 {
		return badInput(fmt.Errorf("lm eval: name at least one MODEL"))
	}
	if err := checkJSONOut(c); err != nil {
		return badInput(fmt.Errorf("lm eval: %w", err))
	}
	if c.Bool(lmFloat32Flag.Name) && c.Bool(lmEvalW8A8Flag.Name) {
		return usageError{fmt.Errorf("lm eval: --float32 and --w8a8 exclude each other")}
	}
	textPath := c.String(lmEvalTextFlag.Name)
	data, err := os.ReadFile(textPath)
	if err != nil {
		return badInput(fmt.Errorf("lm eval: --text: %w", err))
	}
	if strings.TrimSpace(string(data)) == "" {
		return badInput(fmt.Errorf("lm eval: --text %s: the file is empty", textPath))
	}
	sink, err := jobSinkFrom(c, "lm-eval")
	if err != nil {
		return fmt.Errorf("lm eval: %w", err)
	}
	return onDeviceAsJob(c, sink, func(b backend.Backend) error {
		var opt lmeval.EvalOptions
		open := func(path string, w8a8 lmeval.W8A8Mode) (*lmeval.Loaded, error) {
			l, err := lmeval.OpenWith(b, path, lmeval.OpenOptions{Tokenizer: c.String(lmTokenizerFlag.Name), W8A8: w8a8, Float32: c.Bool(lmFloat32Flag.Name)})
			if err != nil {
				return nil, fmt.Errorf("lm eval: %w", err)
			}
			if opt.Tokenizer == nil && l.Tokenizer != nil {
				opt.Tokenizer = l.Tokenizer
			}
			return l, nil
		}
		var loaded []*lmeval.Loaded
		defer func() {
			for _, l := range loaded {
				l.Close()
			}
		}()
		if ref := c.String(lmRefFlag.Name); ref != "" {
			l, err := open(ref, lmeval.W8A8Off)
			if err != nil {
				return err
			}
			loaded = append(loaded, l)
			opt.Ref = &lmeval.NamedModel{Name: ref, Model: l.Model}
		}
		w8a8, anyW8A8 := lmeval.W8A8Off, false
		if c.Bool(lmEvalW8A8Flag.Name) {
			w8a8 = lmeval.W8A8WhereInt8
		}
		for _, p := range c.Args().Slice() {
			l, err := open(p, w8a8)
			if err != nil {
				return err
			}
			loaded = append(loaded, l)
			name := p
			if l.W8A8 {
				name, anyW8A8 = p+" (w8a8)", true
			}
			opt.Models = append(opt.Models, lmeval.NamedModel{Name: name, Model: l.Model})
		}
		if w8a8 != lmeval.W8A8Off && !anyW8A8 {
			return badInput(fmt.Errorf("lm eval: --w8a8: %w in any MODEL (%s); W8A8 runs the int8 per-channel checkpoints quantize --scheme int8 writes", lmeval.ErrNoInt8, strings.Join(c.Args().Slice(), ", ")))
		}
		if opt.Tokenizer == nil {
			return badInput(fmt.Errorf("lm eval: no model has a tokenizer: give one with --tokenizer"))
		}
		opt.Text, opt.Ctx = string(data), c.Int(lmCtxFlag.Name)
		update, finish := stepBar(c)
		opt.Progress = update
		rep, err := lmeval.Eval(c.Context, opt)
		finish()
		if err != nil {
			return fmt.Errorf("lm eval: %w", err)
		}
		return report(c, rep, rep.WriteTable)
	})
}
