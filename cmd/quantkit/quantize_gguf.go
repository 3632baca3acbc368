package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/job/lmeval"
	"github.com/quantkit/quantkit/job/quantize"
	"github.com/quantkit/quantkit/model/format"
	"github.com/quantkit/quantkit/model/ggufmix"
	"github.com/quantkit/quantkit/model/imatrix"
	"github.com/quantkit/quantkit/model/llamacpp"
	"github.com/quantkit/quantkit/model/plan"
)

// quantize --format gguf: GGUF for llama.cpp, from a GGUF or a Hugging
// Face Llama checkpoint (job/quantize RunGGUF).

// runQuantizeGGUF is quantize --format gguf.
func runQuantizeGGUF(c *cli.Context) error {
	opt, err := parseQuantizeGGUFFlags(c)
	if err != nil {
		return badInput(fmt.Errorf("quantize: %w", err))
	}
	if opt.Source != nil {
		defer opt.Source.Close()
	}
	ev, err := parseQuantEval(c, opt.Input, ggufFormat)
	if err != nil {
		return badInput(fmt.Errorf("quantize: %w", err))
	}
	var rep *quantize.GGUFReport
	if c.Bool(quantDryFlag.Name) {
		rep, err = quantize.PlanGGUF(*opt)
	} else {
		var done func()
		opt.Progress, done = tensorProgress()
		rep, err = quantize.RunGGUF(c.Context, *opt)
		done()
	}
	if err == nil {
		err = reportQuantized(c, ev, rep.Output, rep, func(w io.Writer) error { return writeGGUFTable(w, rep) },
			func(er *lmeval.EvalReport) any { return quantizeGGUFEvalReport{rep, er} })
	}
	if err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	return nil
}

// writeGGUFTable is the report's table and, for a part, which part of
// which plan it is and how to join the parts.
func writeGGUFTable(w io.Writer, rep *quantize.GGUFReport) error {
	if err := rep.WriteTable(w); err != nil {
		return err
	}
	if s := rep.Shard; s != nil {
		_, err := fmt.Fprintf(w, "part %d of %d of plan %s; when all are written: quantkit merge %s -o OUT.gguf\n",
			s.Index, s.Count, rep.PlanHash, filepath.Join(filepath.Dir(rep.Output), "part-*"))
		return err
	}
	return nil
}

func parseQuantizeGGUFFlags(c *cli.Context) (*quantize.GGUFOptions, error) {
	args := c.Args().Slice()
	if len(args) != 1 || c.String(quantOutFlag.Name) == "" {
		return nil, errors.New("give one input and the output: quantize IN -o OUT.gguf --format gguf --type TYPE")
	}
	if err := checkCPUDevice(c); err != nil {
		return nil, err
	}
	if err := checkJSONOut(c); err != nil {
		return nil, err
	}
	for _, f := range []cli.Flag{quantSchemeFlag, quantGranFlag, quantSymFlag, quantAsymFlag, quantSizeFlag,
		quantInclFlag, quantExclFlag, quantNonFinFlag} {
		if name := f.Names()[0]; c.IsSet(name) {
			return nil, fmt.Errorf("--%s does not apply to --format gguf, whose --type chooses every tensor's type as llama-quantize does: drop --%s", name, name)
		}
	}
	in := args[0]
	var hf string // the Hugging Face checkpoint's directory, when IN is one
	if !isGGUFFile(in) {
		fi, err := os.Stat(in)
		switch {
		case err != nil:
			return nil, err
		case fi.IsDir():
			hf = in
		case strings.HasSuffix(in, ".safetensors") || strings.HasSuffix(in, ".json"):
			hf = filepath.Dir(in) // config.json and the tokenizer sit beside it
		default:
			return nil, fmt.Errorf("%s is neither a GGUF file (no GGUF magic) nor a Hugging Face checkpoint", in)
		}
	}
	if !c.IsSet(quantTypeFlag.Name) {
		return nil, fmt.Errorf("--format gguf needs --type: %s", strings.Join(ggufmix.Names(), ", "))
	}
	mix, err := ggufmix.ParseMix(c.String(quantTypeFlag.Name))
	if err != nil {
		return nil, fmt.Errorf("--type: %w", err)
	}
	if c.Int(ckptWorkFlag.Name) < 0 {
		return nil, errors.New("--workers must be positive")
	}
	opt := &quantize.GGUFOptions{Input: in, Output: c.String(quantOutFlag.Name), Mix: mix, Pure: c.Bool(quantPureFlag.Name),
		Workers: c.Int(ckptWorkFlag.Name), Force: c.Bool(quantForceFlag.Name), Log: c.App.ErrWriter}
	if opt.MaxMemory, err = parseMaxMemory(c); err != nil {
		return nil, err
	}
	if path := c.String(quantImatrixFlag.Name); path != "" {
		if opt.Imatrix, err = imatrix.Read(path); err != nil {
			return nil, err
		}
		opt.ImatrixFile = path
	}
	if err := ggufCalibImatrix(c, opt, hf); err != nil {
		return nil, err
	}
	if opt.Shard, err = parseShard(c); err != nil {
		return nil, err
	}
	if hf != "" {
		src, err := quantize.OpenHFSource(hf)
		if err != nil {
			return nil, err
		}
		opt.Source = src
	}
	return opt, nil
}

// ggufMixOf is the --type of --format gguf that writes, for llama.cpp,
// what --format gguf-q8_0 or gguf-q4_0 writes for other tools.
var ggufMixOf = map[plan.Format]string{plan.GGUFQ8_0: "Q8_0", plan.GGUFQ4_0: "Q4_0"}

// noteLlamaGGUF tells the user of --format gguf-q8_0 or gguf-q4_0 whose
// input --format gguf can convert (llamacpp.Plan succeeds) that this
// writes Hugging Face names that llama.cpp cannot run, and what would.
func noteLlamaGGUF(log io.Writer, in string, f plan.Format) {
	typ, ok := ggufMixOf[f]
	if !ok || log == nil {
		return
	}
	dir := in
	if fi, err := os.Stat(in); err != nil {
		return
	} else if !fi.IsDir() {
		dir = filepath.Dir(in)
	}
	conv, err := llamacpp.Plan(dir, llamacpp.Options{})
	if err != nil {
		return
	}
	conv.Close()
	fmt.Fprintf(log, "quantkit: note: %s is a Llama-family checkpoint: --format %s writes Hugging Face tensor names, a container for other tools "+
		"that llama.cpp cannot run; for a file llama.cpp, ollama or LM Studio run, use --format gguf --type %s\n", in, f, typ)
}

// isGGUFFile reports whether path is a regular file that starts with
// GGUF's magic.
func isGGUFFile(path string) bool {
	d, err := format.Detect(path)
	return err == nil && d.ByContent && d.Format == format.GGUF
}
