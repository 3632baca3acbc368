package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/internal/atomicfile"
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
	genJSONFlag   = &cli.BoolFlag{Name: "json", Usage: "print a JSON report instead of text"}
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
	Flags:  []cli.Flag{genLikeFlag, genParamsFlag, genDTypeFlag, genShardFlag, genSeedFlag, genOutFlag, genForceFlag, genJSONFlag},
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
	params, err := parseCount(c.String(genParamsFlag.Name))
	if err != nil {
		return fmt.Errorf("gen: --params: %w", err)
	}
	cfg := synth.LlamaLike(params)
	cfg.DType = strings.ToUpper(c.String(genDTypeFlag.Name))
	cfg.Seed = c.Uint64(genSeedFlag.Name)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("gen: --dtype: %w", err)
	}
	var opts synth.Options
	if opts.ShardSize, err = parseSize(c.String(genShardFlag.Name)); err != nil || opts.ShardSize <= 0 {
		return badInput(fmt.Errorf("gen: --shard-size: must be a positive size: %q", c.String(genShardFlag.Name)))
	}
	dir := c.String(genOutFlag.Name)
	claim, err := claimOutput(c.App.ErrWriter, dir, c.Bool(genForceFlag.Name), cfg.Bytes())
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	tmp, err := atomicfile.TempDir(claim)
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	defer tmp.Abort() // nothing once committed
	jsonOut := c.Bool(genJSONFlag.Name)
	progress, clear := progressLine(!jsonOut)
	last := int64(-1)
	opts.Progress = func(written, total int64) {
		if mb := written >> 20; mb != last && progress != nil {
			last = mb
			progress(int(mb), int(total>>20), "MiB")
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
		return fmt.Errorf("gen: %w", noSpace(dir, cfg.Bytes(), err))
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
	if jsonOut {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	writeGenReport(c.App.Writer, rep)
	return nil
}

func writeGenReport(w io.Writer, r GenReport) {
	c := r.Config
	fmt.Fprintf(w, "wrote %s in %s (%s/s)\n", r.Dir, r.Elapsed.Round(time.Millisecond), formatBytes(int64(r.Rate)))
	fmt.Fprintf(w, "  llama-like: %d layers, hidden %d, intermediate %d, %d heads (%d kv), vocab %d, %s, seed %d\n",
		c.Layers, c.Hidden, c.Intermediate, c.Heads, c.KVHeads, c.Vocab, c.DType, c.Seed)
	fmt.Fprintf(w, "  %d tensors, %s parameters (%d), %s of tensor data\n", r.Tensors, formatCount(r.Params), r.Params, formatBytes(r.Bytes))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range r.Files {
		fmt.Fprintf(tw, "  %s\t%s\n", f.Name, formatBytes(f.Bytes))
	}
	tw.Flush()
}

// parseCount parses a count with an optional suffix K, M or B (or k, m,
// b): 1000, 1.5B, 10M.
func parseCount(s string) (int64, error) {
	num, mul := strings.TrimSpace(s), 1.0
	if n := len(num); n > 0 {
		switch num[n-1] {
		case 'K', 'k':
			mul = 1e3
		case 'M', 'm':
			mul = 1e6
		case 'B', 'b':
			mul = 1e9
		}
		if mul != 1 {
			num = num[:n-1]
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v*mul < 1 || v*mul > 1e15 || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a count between 1 and 1e15 (a number with an optional suffix K, M or B)", s)
	}
	return int64(math.Round(v * mul)), nil
}

// sizeUnits are the suffixes parseSize accepts, longest first so that
// "GiB" is not read as "B".
var sizeUnits = []struct {
	suffix string
	mul    float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
	{"B", 1},
}

// parseSize parses a size in bytes with an optional unit, decimal (KB MB
// GB TB, or K M G T) or binary (KiB MiB GiB TiB), case-insensitive: 5GB,
// 500MB, 2GiB, 1048576.
func parseSize(s string) (int64, error) {
	num, mul := strings.TrimSpace(s), 1.0
	for _, u := range sizeUnits {
		if len(num) > len(u.suffix) && strings.EqualFold(num[len(num)-len(u.suffix):], u.suffix) {
			num, mul = strings.TrimSpace(num[:len(num)-len(u.suffix)]), u.mul
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || v*mul > 1<<62 || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a size (a number of bytes with an optional unit: 500MB, 5GB, 2GiB)", s)
	}
	return int64(v * mul), nil
}

// formatBytes writes n bytes with a decimal unit: 4.07 MB.
func formatBytes(n int64) string {
	const units = "kMGTPE"
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/1000, 0
	for v >= 999.5 && i < len(units)-1 {
		v /= 1000
		i++
	}
	return fmt.Sprintf("%.3g %cB", v, units[i])
}

// formatCount writes a count with a suffix K, M, B or T: 1.10B.
func formatCount(n int64) string {
	const units = "KMBT"
	if n < 1000 {
		return strconv.FormatInt(n, 10)
	}
	v, i := float64(n)/1000, 0
	for v >= 999.5 && i < len(units)-1 {
		v /= 1000
		i++
	}
	return fmt.Sprintf("%.3g%c", v, units[i])
}
