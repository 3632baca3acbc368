package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/internal/output"
	"github.com/quantkit/quantkit/internal/units"
	"github.com/quantkit/quantkit/model/synth"
)

var (
	genLikeFlag   = &cli.StringFlag{Name: "like", Value: "llama", Usage: "architecture to imitate: llama (the only one so far)"}
	genParamsFlag = &cli.StringFlag{Name: "params", Value: "1B", Usage: "parameter budget, with an optional suffix K, M or B (1e3, 1e6, 1e9): 10M, 1.5B"}
	genDTypeFlag  = &cli.StringFlag{Name: "dtype", Value: "f32", Usage: "element type: f32, f16 or bf16"}
	genShardFlag  = &cli.StringFlag{Name: "shard-size", Value: "5GB", Usage: "split into shards of at most `SIZE` of tensor data (5GB, 500MB, 2GiB) with model.safetensors.index.json, as Hugging Face does; one model.safetensors when it all fits"}
	genSeedFlag   = &cli.Uint64Flag{Name: "seed", Usage: "seed of the weights: the same seed and shape give the same bytes"}
	genOutFlag    = &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the checkpoint to `DIR`", Required: true}
	genForceFlag  = &cli.BoolFlag{Name: "force", Usage: "replace DIR if it exists (an empty DIR needs no --force)"}
)

var genCommand = &cli.Command{
	Name:  "gen",
	Usage: "generate a synthetic Llama-like checkpoint for tests and benchmarks",
	Description: "Writes a Hugging Face LlamaForCausalLM checkpoint (safetensors and config.json)\n" +
		"of about --params parameters, with the widths of a real Llama-family model for that\n" +
		"size (see `go doc github.com/quantkit/quantkit/model/synth` for the table) and\n" +
		"weights with the heavy tails and outlier channels of trained models: Student-t\n" +
		"(ν = 6) scaled to 1/√fan-in, a few input channels ×5–20, RMSNorm weights 1 ± 0.05.\n" +
		"The data streams to disk block by block, so memory stays small whatever the size.\n" +
		"Sizes are decimal (5GB = 5·10⁹ bytes, as Hugging Face's max_shard_size) unless\n" +
		"written KiB, MiB, GiB, TiB.\n" +
		"\n" +
		"DIR is written as quantize writes its output: the space it needs is checked first, the\n" +
		"files go into a temporary directory beside DIR, which becomes DIR only when complete; an\n" +
		"existing DIR is refused unless --force (or empty), and Ctrl-C or SIGTERM leave nothing.",
	Flags:  []cli.Flag{genLikeFlag, genParamsFlag, genDTypeFlag, genShardFlag, genSeedFlag, genOutFlag, genForceFlag, jsonFlag, jsonOutFlag},
	Action: runGen,
}

// GenReport is what `quantkit gen --json` prints.
type GenReport struct {
	Dir     string        `json:"dir"`
	Config  synth.Config  `json:"config"`
	Files   []GenFile     `json:"files"`
	Tensors int           `json:"tensors"`
	Params  int64         `json:"params"`
	Bytes   int64         `json:"bytes"` // tensor data, without headers
	Seconds float64       `json:"seconds"`
	Rate    float64       `json:"bytes_per_second"`
	Elapsed time.Duration `json:"-"`
}

// GenFile is one file gen wrote.
type GenFile struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

func runGen(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("gen: unexpected arguments %q (the output directory goes after -o)", c.Args().Slice())
	}
	if like := c.String(genLikeFlag.Name); !strings.EqualFold(like, "llama") {
		return fmt.Errorf("gen: --like %q: only llama is supported", like)
	}
	params, err := units.ParseCount(c.String(genParamsFlag.Name))
	if err != nil {
		return badInput(fmt.Errorf("gen: --params: %w", err))
	}
	if params < synth.MinParams {
		return badInput(fmt.Errorf("gen: --params %s: the smallest checkpoint gen writes has %d parameters", c.String(genParamsFlag.Name), synth.MinParams))
	}
	if err := checkJSONOut(c); err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	cfg := synth.LlamaLike(params)
	cfg.DType = strings.ToUpper(c.String(genDTypeFlag.Name))
	cfg.Seed = c.Uint64(genSeedFlag.Name)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("gen: --dtype: %w", err)
	}
	var opts synth.Options
	if opts.ShardSize, err = units.ParseSize(c.String(genShardFlag.Name)); err != nil || opts.ShardSize <= 0 {
		return badInput(fmt.Errorf("gen: --shard-size: must be a positive size: %q", c.String(genShardFlag.Name)))
	}
	dir := c.String(genOutFlag.Name)
	claim, err := output.Claim(c.App.ErrWriter, dir, c.Bool(genForceFlag.Name), cfg.Bytes())
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	tmp, err := atomicfile.TempDir(claim)
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	defer tmp.Abort() // nothing once committed
	progress, clear := progressLine(!c.Bool(jsonFlag.Name))
	last := int64(-1)
	opts.Progress = func(written, total int64) {
		// MB, as the report's sizes (formatBytes) and --shard-size's.
		if mb := written / 1e6; mb != last && progress != nil {
			last = mb
			progress(int(mb), int(total/1e6), "MB")
		}
		afterWrite(dir)
	}
	start := time.Now()
	res, err := synth.Write(tmp.Path, cfg, opts)
	clear()
	if err == nil {
		err = tmp.Commit()
	}
	if err != nil {
		return fmt.Errorf("gen: %w", output.NoSpace(dir, cfg.Bytes(), err))
	}
	rep := GenReport{Dir: dir, Config: cfg, Tensors: res.Tensors, Params: res.Params, Bytes: res.Bytes, Elapsed: time.Since(start)}
	rep.Seconds = rep.Elapsed.Seconds()
	rep.Rate = float64(rep.Bytes) / max(rep.Seconds, 1e-9)
	for _, f := range res.Files {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			return fmt.Errorf("gen: %w", err)
		}
		rep.Files = append(rep.Files, GenFile{f, fi.Size()})
	}
	if err := report(c, rep, func(w io.Writer) error { writeGenReport(w, rep); return nil }); err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	return nil
}

func writeGenReport(w io.Writer, r GenReport) {
	c := r.Config
	fmt.Fprintf(w, "wrote %s in %s (%s/s)\n", r.Dir, r.Elapsed.Round(time.Millisecond), units.FormatBytes(int64(r.Rate)))
	fmt.Fprintf(w, "  llama-like: %d layers, hidden %d, intermediate %d, %d heads (%d kv), vocab %d, %s, seed %d\n",
		c.Layers, c.Hidden, c.Intermediate, c.Heads, c.KVHeads, c.Vocab, c.DType, c.Seed)
	fmt.Fprintf(w, "  %d tensors, %s parameters (%d), %s of tensor data\n", r.Tensors, units.FormatCount(r.Params), r.Params, units.FormatBytes(r.Bytes))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range r.Files {
		fmt.Fprintf(tw, "  %s\t%s\n", f.Name, units.FormatBytes(f.Bytes))
	}
	tw.Flush()
}
