package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/ctensors"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/quant"
)

var (
	quantOutFlag    = &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the quantized model to `OUT` (a directory; a .gguf file for the gguf formats)"}
	quantSchemeFlag = &cli.StringFlag{Name: "scheme", Value: "int8", Usage: "int8 or int4"}
	quantGranFlag   = &cli.StringFlag{Name: "granularity", Usage: "channel, tensor or group:N (default channel for int8, group:128 for int4)"}
	quantSymFlag    = &cli.BoolFlag{Name: "symmetric", Usage: "symmetric quantization, zero point 0 (the default)"}
	quantAsymFlag   = &cli.BoolFlag{Name: "asymmetric", Usage: "asymmetric quantization, with zero points"}
	quantFormatFlag = &cli.StringFlag{Name: "format", Value: string(plan.CompressedTensors), Usage: "compressed-tensors, compressed-tensors-packed (int8 too pack-quantized, as vLLM loads weight-only int8), safetensors, gguf-q8_0 or gguf-q4_0"}
	quantInclFlag   = &cli.StringFlag{Name: "include", Usage: "quantize exactly the 2-D floating-point tensors whose names match `REGEX` (replaces the default rule)"}
	quantExclFlag   = &cli.StringFlag{Name: "exclude", Usage: "keep the tensors whose names match `REGEX`"}
	quantWorkFlag   = &cli.IntFlag{Name: "workers", Usage: "tensors processed at once (default: the number of CPUs)"}
	quantDryFlag    = &cli.BoolFlag{Name: "dry-run", Usage: "print the plan, sizes and memory estimate; write nothing"}
	quantJSONFlag   = &cli.StringFlag{Name: "json", Usage: "also write the report as JSON to `FILE` (- for stdout, instead of the summary)"}
	quantForceFlag  = &cli.BoolFlag{Name: "force", Usage: "replace OUT if it exists"}
	quantSizeFlag   = &cli.StringFlag{Name: "shard-size", Value: "5GB", Usage: "output shards of at most `SIZE` of tensor data (5GB, 500MB, 2GiB)"}
	quantShardFlag  = &cli.StringFlag{Name: "shard", Usage: "quantize only part `I/N` (I in 0..N-1) into OUT/part-I-of-N; join the parts with merge"}
	quantNonFinFlag = &cli.BoolFlag{Name: "allow-nonfinite", Usage: "quantize weights with NaN/Inf (NaN as 0, ±Inf saturated to the largest finite magnitude) instead of failing"}
)

var quantizeCommand = &cli.Command{
	Name:      "quantize",
	Usage:     "quantize a checkpoint's Linear weights to int8 or int4 (compressed-tensors, safetensors or GGUF)",
	ArgsUsage: "IN -o OUT",
	Description: "IN is a .safetensors file, a model.safetensors.index.json or a directory holding either.\n" +
		"The plan is made first from the headers alone (--dry-run prints it): by default every 2-D\n" +
		"floating-point *.weight is quantized except embeddings and lm_head, as llm-compressor does\n" +
		"(see `quantkit inspect`); norms, biases, embeddings and lm_head keep their dtype, byte for\n" +
		"byte. --include replaces that rule, --exclude keeps what it matches. Then the tensors are\n" +
		"streamed: read one at a time (memory-mapped), min-max fitted, quantized on --device by\n" +
		"--workers workers at once, measured (SQNR of the dequantized weight against the original)\n" +
		"and written in plan order. At most workers+1 tensors are in flight, so memory is about\n" +
		"workers+1 of the largest tensors × (8 bytes a parameter + their output), not the model.\n" +
		"\n" +
		"Formats (--format):\n" +
		"  compressed-tensors  what llm-compressor writes and vLLM loads: W (int-quantized, int8) or\n" +
		"                      W_packed + W_shape (pack-quantized, int4), W_scale (in the weight's\n" +
		"                      dtype when F16/BF16, else F32), W_zero_point when asymmetric;\n" +
		"                      config.json gets quantization_config (ignore: kept Linear layers).\n" +
		"  compressed-tensors-packed  the same with int8 too pack-quantized (W_packed, four codes\n" +
		"                      an int32): the form vLLM loads for weight-only int8, which it reads\n" +
		"                      int-quantized only as W8A8 (with quantized activations).\n" +
		"  safetensors         quant's raw layout: W (I8 codes, or U8 packed two 4-bit codes a byte,\n" +
		"                      low nibble first), W.scale F32, W.zero_point I32 when asymmetric;\n" +
		"                      __metadata__ quantkit.format = quantkit-raw, quantkit.scheme and\n" +
		"                      quantkit.tensors (each W's original shape and dtype).\n" +
		"  gguf-q8_0, gguf-q4_0  one GGUF file OUT: 2-D quantized weights as Q8_0/Q4_0 blocks of\n" +
		"                      32 (a weight whose rows are not a multiple of 32 stays F32), the rest\n" +
		"                      in their dtype. Tensor names stay Hugging Face's (not llama.cpp's), so\n" +
		"                      llama.cpp cannot run the file as a model; general.architecture comes\n" +
		"                      from config.json's model_type. The scheme flags do not apply.\n" +
		"\n" +
		"OUT is written atomically: into a temporary directory .OUT.tmp-PID-* beside it, moved to\n" +
		"OUT only when everything (shards, index, config.json, side files) is written. An existing\n" +
		"OUT is refused unless --force (an empty directory excepted); the final move never removes\n" +
		"anything else: without --force it goes only into an absent name (a directory made at OUT\n" +
		"meanwhile, or a second run's output, is kept and this run fails), with --force it replaces\n" +
		"only what was at OUT when the run began. OUT may not be IN or hold it, even with --force.\n" +
		"Ctrl-C, SIGTERM or SIGHUP stop the workers, remove the temporary output and exit with\n" +
		"130, 143 or 129; after a SIGKILL the next run to the same OUT removes what was left and\n" +
		"says so. An input truncated or rewritten during the run is an error naming it. A\n" +
		"checkpoint that is quantized already is refused (dequantize it first).\n" +
		"\n" +
		"NaN/Inf: a weight to quantize that holds NaN or ±Inf is an error naming the tensor, unless\n" +
		"--allow-nonfinite: then NaN becomes 0 and ±Inf the tensor's largest finite magnitude, and\n" +
		"the count is reported. Kept tensors are copied as they are.\n" +
		"\n" +
		"--shard I/N quantizes plan items I, I+N, I+2N, … (item k goes to part k mod N) into\n" +
		"OUT/part-I-of-N, with part.json holding the plan hash; `quantkit merge OUT/part-*` joins the\n" +
		"N parts into the checkpoint one run would write. Not for the gguf formats.\n" +
		"\n" +
		"--json FILE writes {input, output, format, scheme, device, workers, dry_run, shard: {index,\n" +
		"count} | null, plan_hash, tensors: [{name, dtype, shape, action: quantize|keep, reason,\n" +
		"scheme, scale_dtype, outputs: [{name, dtype, shape, bytes}], bytes_in, bytes_out, sqnr_db\n" +
		"(null when exact or not run), nonfinite}], totals: {tensors, quantized, kept, bytes_in,\n" +
		"bytes_out, ratio}, memory_estimate, seconds, gb_per_s, sqnr: {min_db, mean_db, worst:\n" +
		"[{name, sqnr_db}]} | null}.",
	Flags: []cli.Flag{quantOutFlag, quantSchemeFlag, quantGranFlag, quantSymFlag, quantAsymFlag, quantFormatFlag,
		quantInclFlag, quantExclFlag, deviceFlag, quantWorkFlag, quantDryFlag, quantJSONFlag, quantForceFlag,
		quantSizeFlag, quantShardFlag, quantNonFinFlag},
	Action: runQuantize,
}

// QuantizeReport is what quantize measures; --json writes it.
type QuantizeReport struct {
	Input          string            `json:"input"`
	Output         string            `json:"output"`
	Format         plan.Format       `json:"format"`
	Scheme         string            `json:"scheme,omitempty"`
	Device         string            `json:"device,omitempty"`
	Workers        int               `json:"workers"`
	DryRun         bool              `json:"dry_run"`
	Shard          *ShardSpec        `json:"shard"`
	PlanHash       string            `json:"plan_hash"`
	Tensors        []QuantizedTensor `json:"tensors"`
	Totals         QuantizeTotals    `json:"totals"`
	MemoryEstimate int64             `json:"memory_estimate"`
	Seconds        float64           `json:"seconds"`
	GBPerSecond    float64           `json:"gb_per_s"`
	SQNR           *SQNRSummary      `json:"sqnr"`
}

// ShardSpec is part Index of Count.
type ShardSpec struct {
	Index int `json:"index"`
	Count int `json:"count"`
}

// QuantizedTensor is one plan item and, after a run, its measurements.
type QuantizedTensor struct {
	plan.Item
	SQNR      *float64 `json:"sqnr_db"` // nil when kept, exact or not run
	NonFinite int      `json:"nonfinite,omitempty"`
}

// QuantizeTotals sum the tensors of the report.
type QuantizeTotals struct {
	Tensors   int     `json:"tensors"`
	Quantized int     `json:"quantized"`
	Kept      int     `json:"kept"`
	BytesIn   int64   `json:"bytes_in"`
	BytesOut  int64   `json:"bytes_out"`
	Ratio     float64 `json:"ratio"`
}

// SQNRSummary summarises the quantized tensors' SQNR.
type SQNRSummary struct {
	MinDB  float64      `json:"min_db"`
	MeanDB float64      `json:"mean_db"`
	Worst  []TensorSQNR `json:"worst"` // the 5 lowest, lowest first
}

// TensorSQNR is one tensor's SQNR.
type TensorSQNR struct {
	Name string  `json:"name"`
	DB   float64 `json:"sqnr_db"`
}

// quantizeJob is everything runQuantize parsed from the command line.
type quantizeJob struct {
	in, out        string
	opt            plan.Options
	workers        int
	shard          *ShardSpec
	shardSize      int64
	force, dry     bool
	allowNonFinite bool
	quiet          bool // no progress bar
}

func parseQuantizeFlags(c *cli.Context) (*quantizeJob, error) {
	args, err := interspersed(c)
	if err != nil {
		return nil, err
	}
	if len(args) != 1 || c.String(quantOutFlag.Name) == "" {
		return nil, errors.New("give one input checkpoint and the output: quantize IN -o OUT")
	}
	if path := c.String(quantJSONFlag.Name); path != "" {
		if err := checkOutputFile(quantJSONFlag.Name, path, true); err != nil {
			return nil, err
		}
	}
	j := &quantizeJob{in: args[0], out: c.String(quantOutFlag.Name), workers: c.Int(quantWorkFlag.Name),
		force: c.Bool(quantForceFlag.Name), dry: c.Bool(quantDryFlag.Name), allowNonFinite: c.Bool(quantNonFinFlag.Name)}
	j.opt.Format = plan.Format(c.String(quantFormatFlag.Name))
	if !slices.Contains(plan.FormatNames(), string(j.opt.Format)) {
		return nil, fmt.Errorf("--format %s: not one of %s", j.opt.Format, strings.Join(plan.FormatNames(), ", "))
	}
	s, err := parseSchemeFlags(c.String(quantSchemeFlag.Name), c.String(quantGranFlag.Name), c.Bool(quantAsymFlag.Name))
	if err != nil {
		return nil, err
	}
	if c.Bool(quantSymFlag.Name) && c.Bool(quantAsymFlag.Name) {
		return nil, errors.New("--symmetric and --asymmetric exclude each other")
	}
	j.opt.Scheme = s
	for _, f := range []struct {
		flag *cli.StringFlag
		dst  **regexp.Regexp
	}{{quantInclFlag, &j.opt.Include}, {quantExclFlag, &j.opt.Exclude}} {
		if v := c.String(f.flag.Name); v != "" {
			re, err := regexp.Compile(v)
			if err != nil {
				return nil, fmt.Errorf("--%s: %w", f.flag.Name, err)
			}
			*f.dst = re
		}
	}
	if j.workers < 0 {
		return nil, errors.New("--workers must be positive")
	}
	if j.shardSize, err = parseSize(c.String(quantSizeFlag.Name)); err != nil || j.shardSize <= 0 {
		return nil, fmt.Errorf("--shard-size: must be a positive size: %q", c.String(quantSizeFlag.Name))
	}
	if v := c.String(quantShardFlag.Name); v != "" {
		if j.shard, err = parseShard(v); err != nil {
			return nil, err
		}
		if plan.IsGGUF(j.opt.Format) {
			return nil, errors.New("--shard is not supported for the gguf formats")
		}
	}
	return j, nil
}

// parseSchemeFlags turns --scheme, --granularity and --asymmetric into a
// quant scheme.
func parseSchemeFlags(scheme, gran string, asym bool) (quant.Scheme, error) {
	s := quant.Scheme{Signed: true, Symmetric: !asym}
	switch scheme {
	case "int8":
		s.Bits = 8
	case "int4":
		s.Bits = 4
	default:
		return s, fmt.Errorf("--scheme %s: not int8 or int4", scheme)
	}
	if gran == "" {
		gran = "channel"
		if s.Bits == 4 {
			gran = "group:128"
		}
	}
	switch {
	case gran == "channel":
		s.Granularity = quant.PerChannel
	case gran == "tensor":
		s.Granularity = quant.PerTensor
	case strings.HasPrefix(gran, "group:"):
		n, err := strconv.Atoi(strings.TrimPrefix(gran, "group:"))
		if err != nil || n < 1 {
			return s, fmt.Errorf("--granularity %s: the group size must be a positive integer", gran)
		}
		s.Granularity, s.GroupSize = quant.PerGroup, n
	default:
		return s, fmt.Errorf("--granularity %s: not channel, tensor or group:N", gran)
	}
	if err := s.Validate(); err != nil {
		return s, fmt.Errorf("scheme %s: %w", s, err)
	}
	return s, nil
}

func parseShard(v string) (*ShardSpec, error) {
	a, b, ok := strings.Cut(v, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return nil, fmt.Errorf("--shard %s: not I/N with 0 <= I < N", v)
	}
	return &ShardSpec{Index: i, Count: n}, nil
}

// partDir is the directory of part i of n inside a parts directory.
func partDir(parts string, s *ShardSpec) string {
	return filepath.Join(parts, fmt.Sprintf("part-%d-of-%d", s.Index, s.Count))
}

func runQuantize(c *cli.Context) error {
	j, err := parseQuantizeFlags(c)
	if err != nil {
		return badInput(fmt.Errorf("quantize: %w", err))
	}
	if err := quantize(c, j); err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	return nil
}

func quantize(c *cli.Context, j *quantizeJob) error {
	rep, err := quantizeCheckpoint(c, j)
	if err != nil {
		return err
	}
	return finishReport(c, rep, j.dry)
}

// quantizeCheckpoint runs the job (or, for a dry run, only plans it) and
// returns its report without printing it.
func quantizeCheckpoint(c *cli.Context, j *quantizeJob) (*QuantizeReport, error) {
	ck, err := checkpoint.Open(j.in)
	if err != nil {
		return nil, badInput(err)
	}
	defer ck.Close()
	if what, ok := plan.Quantized(ck.Config(), ck.Metadata(), ck.Tensors()); ok {
		return nil, badInput(fmt.Errorf("%s is quantized already (%s): quantizing its codes and scales again would write a checkpoint "+
			"that is neither; start from the float checkpoint, or dequantize it first (quantkit dequantize %s -o FLOAT)", j.in, what, j.in))
	}
	p, err := plan.Build(ck.Tensors(), j.opt)
	if err != nil {
		return nil, badInput(err)
	}
	items := p.All()
	final := j.out
	if j.shard != nil {
		items = p.Part(j.shard.Index, j.shard.Count)
		final = partDir(j.out, j.shard)
	}
	if j.workers == 0 {
		j.workers = cpu.Threads()
	}
	rep := newQuantizeReport(j, p, items, final)
	if j.dry {
		return rep, nil
	}
	claim, err := claimOutput(c.App.ErrWriter, final, j.force, rep.Totals.BytesOut, checkpointInputs(j.in, ck)...)
	if err != nil {
		return nil, err
	}
	var stats []plan.Stats
	start := time.Now()
	err = onDevice(c, func(b backend.Backend) error {
		rep.Device = b.Name()
		start = time.Now()
		opt := plan.RunOptions{Workers: j.workers, AllowNonFinite: j.allowNonFinite, Quantize: backendQuantize(b)}
		progress, clear := quantizeProgress(p.BytesIn, len(items), j.quiet)
		defer clear()
		opt.Progress = func(item int, done int64, n int) {
			if progress != nil {
				progress(done, n, p.Items[item].Name)
			}
			afterWrite(final)
		}
		var err error
		if plan.IsGGUF(p.Format) {
			stats, err = writeGGUF(c.Context, ck, p, claim, opt)
		} else {
			stats, err = writeCheckpointDir(c.Context, ck, p, items, j, claim, opt)
		}
		if errors.Is(err, plan.ErrNonFinite) {
			err = badInput(err)
		}
		return noSpace(final, rep.Totals.BytesOut, err)
	})
	if err != nil {
		return nil, err
	}
	rep.Seconds = time.Since(start).Seconds()
	if rep.Seconds > 0 {
		rep.GBPerSecond = float64(rep.Totals.BytesIn) / rep.Seconds / 1e9
	}
	rep.addStats(stats)
	return rep, nil
}

// backendQuantize quantizes on b: cpu.Quantize directly on the CPU, else
// through device buffers, one tensor at a time (workers take turns).
func backendQuantize(b backend.Backend) plan.QuantizeFunc {
	if b.Name() == "cpu" {
		return cpu.Quantize
	}
	var mu sync.Mutex
	return func(codes []byte, x []float32, p *quant.Params) error {
		mu.Lock()
		defer mu.Unlock()
		xb, err := b.Alloc(backend.F32, len(x))
		if err != nil {
			return err
		}
		defer b.Free(xb)
		cb, err := b.Alloc(backend.U8, len(codes))
		if err != nil {
			return err
		}
		defer b.Free(cb)
		if err := b.Upload(xb, x); err != nil {
			return err
		}
		if err := b.Quantize(cb, xb, p); err != nil {
			return err
		}
		return b.Download(codes, cb)
	}
}

// writeCheckpointDir writes the plan's items as the checkpoint directory
// claim.Path, atomically: into a temporary directory beside it, moved into
// place at the end (atomicfile.Claim.Install: never over anything but what
// the claim may replace).
func writeCheckpointDir(ctx context.Context, ck *checkpoint.Checkpoint, p *plan.Plan, items []int, j *quantizeJob, claim *atomicfile.Claim, opt plan.RunOptions) ([]plan.Stats, error) {
	meta := p.RawMetadata()
	if meta == nil {
		meta = map[string]string{}
	}
	meta["quantkit.plan_hash"] = p.Hash()
	tmp, err := atomicfile.TempDir(claim)
	if err != nil {
		return nil, err
	}
	defer tmp.Abort() // nothing once committed
	w, err := checkpoint.Create(tmp.Path, p.SafetensorsInfos(items), j.shardSize, meta)
	if err != nil {
		return nil, err
	}
	stats, err := plan.Run(ctx, p, items, ck, w, opt)
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		w.Abort()
		return nil, err
	}
	if err := writeConfig(ck, p, tmp.Path); err != nil {
		return nil, err
	}
	if err := ck.CopySideFiles(tmp.Path, checkpoint.ConfigFileName); err != nil {
		return nil, err
	}
	if j.shard != nil {
		if err := writePartInfo(tmp.Path, p, j); err != nil {
			return nil, err
		}
	}
	return stats, tmp.Commit()
}

// writeConfig writes config.json into dir: the input's, with the
// quantization_config of compressed-tensors.
func writeConfig(ck *checkpoint.Checkpoint, p *plan.Plan, dir string) error {
	cfg := ck.Config()
	if cfg == nil {
		if _, ok := plan.CTFormat(p.Format, p.Scheme); !ok {
			return nil
		}
		cfg = []byte("{}")
	}
	if ct, ok := plan.CTFormat(p.Format, p.Scheme); ok {
		qc, err := ctensors.QuantizationConfig(p.Scheme, ct, p.Ignore())
		if err != nil {
			return err
		}
		if cfg, err = ctensors.UpdateConfig(cfg, qc); err != nil {
			return err
		}
	}
	return atomicfile.WriteFile(filepath.Join(dir, checkpoint.ConfigFileName), cfg, 0o666)
}

// writeGGUF writes the plan as the GGUF file claim.Path, atomically.
func writeGGUF(ctx context.Context, ck *checkpoint.Checkpoint, p *plan.Plan, claim *atomicfile.Claim, opt plan.RunOptions) ([]plan.Stats, error) {
	final := claim.Path
	if fi, err := os.Stat(final); err == nil && fi.IsDir() {
		return nil, badInput(fmt.Errorf("%s is a directory; the gguf formats write one file", final))
	}
	var cfg struct {
		ModelType string `json:"model_type"`
		Name      string `json:"_name_or_path"`
	}
	if raw := ck.Config(); raw != nil {
		json.Unmarshal(raw, &cfg)
	}
	name := cfg.Name
	if name == "" {
		name = filepath.Base(ck.Dir())
	}
	fileType := map[plan.Format]uint32{plan.GGUFQ8_0: 7, plan.GGUFQ4_0: 2}[p.Format] // llama_ftype MOSTLY_Q8_0, MOSTLY_Q4_0
	meta := []gguf.KV{}
	if cfg.ModelType != "" {
		meta = append(meta, gguf.KV{Key: "general.architecture", Value: cfg.ModelType})
	}
	meta = append(meta,
		gguf.KV{Key: "general.name", Value: name},
		gguf.KV{Key: "general.file_type", Value: fileType},
		gguf.KV{Key: "general.quantization_version", Value: uint32(2)},
		gguf.KV{Key: "quantkit.plan_hash", Value: p.Hash()})
	if err := os.MkdirAll(filepath.Dir(final), 0o777); err != nil {
		return nil, err
	}
	f, err := atomicfile.CreateFor(claim)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", final, err)
	}
	defer f.Abort() // nothing once committed
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := gguf.NewWriter(bw, meta, p.GGUFInfos(p.All()))
	if err != nil {
		return nil, err
	}
	stats, err := plan.Run(ctx, p, p.All(), ck, w, opt)
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Commit()
	}
	if err != nil {
		return nil, err
	}
	return stats, nil
}

// quantizeProgress is a progress bar of bytes and tensors with an ETA on
// stderr, when it is a terminal.
func quantizeProgress(total int64, tensors int, quiet bool) (func(done int64, n int, name string), func()) {
	if quiet || !isTerminal(os.Stderr) {
		return nil, func() {}
	}
	start := time.Now()
	return func(done int64, n int, name string) {
			const width = 24
			fill := int(width * done / max(total, 1))
			eta := ""
			if done > 0 {
				left := time.Duration(float64(time.Since(start)) / float64(done) * float64(total-done))
				eta = " ETA " + left.Round(time.Second).String()
			}
			fmt.Fprintf(os.Stderr, "\r\033[K[%s%s] %s/%s, %d/%d tensors%s %s", strings.Repeat("█", fill), strings.Repeat("·", width-fill),
				formatBytes(done), formatBytes(total), n, tensors, eta, name)
		}, func() {
			fmt.Fprint(os.Stderr, "\r\033[K")
		}
}

func newQuantizeReport(j *quantizeJob, p *plan.Plan, items []int, final string) *QuantizeReport {
	rep := &QuantizeReport{Input: j.in, Output: final, Format: p.Format, Workers: j.workers, DryRun: j.dry,
		Shard: j.shard, PlanHash: p.Hash(), Tensors: []QuantizedTensor{}}
	if !plan.IsGGUF(p.Format) {
		rep.Scheme = p.Scheme.String()
	}
	var sub plan.Plan
	for _, k := range items {
		it := p.Items[k]
		rep.Tensors = append(rep.Tensors, QuantizedTensor{Item: it})
		sub.Items = append(sub.Items, it)
		t := &rep.Totals
		t.Tensors++
		if it.Action == plan.Quantize {
			t.Quantized++
		} else {
			t.Kept++
		}
		t.BytesIn += it.BytesIn
		t.BytesOut += it.BytesOut
	}
	if rep.Totals.BytesIn > 0 {
		rep.Totals.Ratio = float64(rep.Totals.BytesOut) / float64(rep.Totals.BytesIn)
	}
	rep.MemoryEstimate = sub.MemoryEstimate(j.workers)
	return rep
}

// addStats records a run's measurements, in the order of rep.Tensors.
func (rep *QuantizeReport) addStats(stats []plan.Stats) {
	var all []TensorSQNR
	var sum float64
	for i, st := range stats {
		t := &rep.Tensors[i]
		t.NonFinite = st.NonFinite
		if t.Action != plan.Quantize || math.IsInf(st.SQNR, 0) || math.IsNaN(st.SQNR) {
			continue
		}
		v := st.SQNR
		t.SQNR = &v
		all = append(all, TensorSQNR{t.Name, v})
		sum += v
	}
	if len(all) == 0 {
		return
	}
	slices.SortStableFunc(all, func(a, b TensorSQNR) int { return cmpFloat(a.DB, b.DB) })
	rep.SQNR = &SQNRSummary{MinDB: all[0].DB, MeanDB: sum / float64(len(all)), Worst: all[:min(5, len(all))]}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// finishReport writes the report: the plan (dry run) or the summary for
// people, unless --json - puts the JSON on stdout instead, and then the
// JSON to the --json file, so that a file that cannot be written costs
// the table nothing.
func finishReport(c *cli.Context, rep *QuantizeReport, plan bool) error {
	path := c.String(quantJSONFlag.Name)
	if path != "-" {
		if plan {
			writeQuantizePlan(c.App.Writer, rep)
		} else {
			writeQuantizeSummary(c.App.Writer, rep)
		}
	}
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err := c.App.Writer.Write(b)
		return err
	}
	if err := atomicfile.WriteFile(path, b, 0o666); err != nil {
		return fmt.Errorf("--json: %w", err)
	}
	return nil
}

func writeQuantizePlan(w io.Writer, r *QuantizeReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "tensor\taction\tscheme / reason\tbytes in → out")
	for _, t := range r.Tensors {
		what := t.Scheme
		if t.Action == "keep" {
			what = t.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s → %s\n", t.Name, t.Action, what, formatBytes(t.BytesIn), formatBytes(t.BytesOut))
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%s → %s (%s", r.Input, r.Output, r.Format)
	if r.Scheme != "" {
		fmt.Fprintf(w, ", %s", r.Scheme)
	}
	fmt.Fprintf(w, "): %d tensors, %d quantized, %d kept; %s → %s (ratio %.3f)\n", r.Totals.Tensors, r.Totals.Quantized, r.Totals.Kept,
		formatBytes(r.Totals.BytesIn), formatBytes(r.Totals.BytesOut), r.Totals.Ratio)
	fmt.Fprintf(w, "memory: about %s for tensor data with %d workers (workers+1 largest tensors in flight)\n", formatBytes(r.MemoryEstimate), r.Workers)
	fmt.Fprintln(w, "dry run: nothing written")
}

func writeQuantizeSummary(w io.Writer, r *QuantizeReport) {
	fmt.Fprintf(w, "%s → %s (%s", r.Input, r.Output, r.Format)
	if r.Scheme != "" {
		fmt.Fprintf(w, ", %s", r.Scheme)
	}
	fmt.Fprintf(w, ") on %s, %d workers\n", r.Device, r.Workers)
	fmt.Fprintf(w, "size: %s → %s (ratio %.3f), %d tensors quantized, %d kept\n", formatBytes(r.Totals.BytesIn), formatBytes(r.Totals.BytesOut),
		r.Totals.Ratio, r.Totals.Quantized, r.Totals.Kept)
	fmt.Fprintf(w, "time: %.2f s, %.3f GB/s\n", r.Seconds, r.GBPerSecond)
	if r.SQNR != nil {
		fmt.Fprintf(w, "SQNR: min %.1f dB, mean %.1f dB; worst:\n", r.SQNR.MinDB, r.SQNR.MeanDB)
		for _, t := range r.SQNR.Worst {
			fmt.Fprintf(w, "  %-50s %.1f dB\n", t.Name, t.DB)
		}
	}
	var kept, nonFinite []string
	for _, t := range r.Tensors {
		if t.Action == plan.Keep {
			kept = append(kept, fmt.Sprintf("  %s: %s", t.Name, t.Reason))
		}
		if t.NonFinite > 0 {
			nonFinite = append(nonFinite, fmt.Sprintf("  %s: %d NaN/Inf values quantized as 0 / saturated", t.Name, t.NonFinite))
		}
	}
	if len(kept) > 0 {
		fmt.Fprintf(w, "kept unquantized (%d):\n%s\n", len(kept), strings.Join(kept, "\n"))
	}
	if len(nonFinite) > 0 {
		fmt.Fprintf(w, "non-finite values (--allow-nonfinite):\n%s\n", strings.Join(nonFinite, "\n"))
	}
}

// interspersed returns the command's positional arguments, parsing flags
// that follow them (urfave/cli stops at the first argument, but
// `quantize IN -o OUT` is the natural order).
func interspersed(c *cli.Context) ([]string, error) {
	var args []string
	rest := c.Args().Slice()
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			return append(args, rest[i+1:]...), nil
		}
		if len(a) < 2 || a[0] != '-' {
			args = append(args, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		var flag cli.Flag
		for _, f := range c.Command.Flags {
			if slices.Contains(f.Names(), name) {
				flag = f
			}
		}
		if flag == nil {
			return nil, fmt.Errorf("flag provided but not defined: %s", a)
		}
		if _, isBool := flag.(*cli.BoolFlag); isBool && !hasValue {
			value, hasValue = "true", true
		}
		if !hasValue {
			if i+1 == len(rest) {
				return nil, fmt.Errorf("flag needs an argument: %s", a)
			}
			i++
			value = rest[i]
		}
		if err := c.Set(flag.Names()[0], value); err != nil {
			return nil, fmt.Errorf("%s: %w", a, err)
		}
	}
	return args, nil
}
