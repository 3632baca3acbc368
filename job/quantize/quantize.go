package quantize

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
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/internal/output"
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/ctensors"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/plan"
)

// DefaultShardSize is the most tensor data an output shard holds unless
// told otherwise: Hugging Face's max_shard_size.
const DefaultShardSize = 5_000_000_000

// programImage is what of the program's resident memory the Go runtime's
// memory limit does not count (code, data, the runtime's own structures):
// part of plan.ProgramMemory. At 16 MiB, int4 group-128 runs on a 1B
// checkpoint under a 60 MiB budget peaked at 63.7 MiB RSS; at 28 MiB,
// 52 MiB, at the same speed.
const programImage = 28 << 20

// Device is the device the checkpoint jobs run on, as reports name it.
// Quantizing a checkpoint reads and writes every byte once and computes
// little on each (a scale, a rounding): it is bounded by memory and disk
// bandwidth, which a GPU would only add PCIe copies to.
const Device = "cpu"

// Options say what Run quantizes, how, and where to.
type Options struct {
	// Input is a .safetensors file, a model.safetensors.index.json or a
	// directory holding either.
	Input string
	// Output is the checkpoint directory to write (a .gguf file for the
	// gguf formats); with Shard, the parts directory that
	// part-I-of-N goes into.
	Output string
	// Plan says which tensors are quantized, under which scheme, into
	// which format.
	Plan plan.Options
	// Workers is the number of tensors processed at once; 0 means one per
	// core.
	Workers int
	// Shard, if not nil, writes only that part of the plan (see
	// plan.Plan.Part), for Merge to join.
	Shard *ShardSpec
	// ShardSize is the most tensor data an output file holds; 0 means
	// DefaultShardSize. Not used by the gguf formats (one file).
	ShardSize int64
	// Force replaces what is at Output (never the input).
	Force bool
	// AllowNonFinite quantizes weights holding NaN or ±Inf (NaN as 0, ±Inf
	// saturated) instead of failing.
	AllowNonFinite bool
	// MaxMemory is the memory budget the tensors are streamed in (see
	// plan.Plan.Stream): blocks of rows sized so that the blocks in
	// flight, the program and its buffers fit; 0 means
	// plan.DefaultMaxMemory. Not used by the gguf formats of RunGGUF.
	MaxMemory int64
	// Progress, if not nil, is called after each tensor is written.
	Progress func(Progress)
	// Log receives notes for the user (a killed run's output removed);
	// nil discards them.
	Log io.Writer
}

// Progress says how far a run is, after a tensor was written.
type Progress struct {
	Output       string // the path being written (the part directory, for a shard)
	Tensor       string // the tensor just written
	BytesDone    int64  // input bytes done
	BytesTotal   int64
	TensorsDone  int
	TensorsTotal int
}

// Report is what quantize plans and measures; its JSON is the --json
// output of the command.
type Report struct {
	Input    string      `json:"input"`
	Output   string      `json:"output"`
	Format   plan.Format `json:"format"`
	Scheme   string      `json:"scheme,omitempty"`
	Device   string      `json:"device,omitempty"` // "cpu" after a run; empty for a dry run
	Workers  int         `json:"workers"`
	DryRun   bool        `json:"dry_run"`
	Shard    *ShardSpec  `json:"shard"`
	PlanHash string      `json:"plan_hash"`
	Tensors  []Tensor    `json:"tensors"`
	Totals   Totals      `json:"totals"`
	// MemoryEstimate is the memory planned for, at most MaxMemory: the
	// program, the writers' buffers, the blocks in flight and the scales
	// of the tensor being written (Stream's Peak).
	MemoryEstimate int64           `json:"memory_estimate"`
	MaxMemory      int64           `json:"max_memory"`
	Stream         *plan.Streaming `json:"stream"`
	Seconds        float64         `json:"seconds"`
	GBPerSecond    float64         `json:"gb_per_s"`
	SQNR           *SQNRSummary    `json:"sqnr"`
}

// ShardSpec is part Index of Count.
type ShardSpec struct {
	Index int `json:"index"`
	Count int `json:"count"`
}

// ParseShard reads a part as "I/N", with 0 <= I < N.
func ParseShard(text string) (*ShardSpec, error) {
	a, b, ok := strings.Cut(text, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return nil, inputerr.Mark(fmt.Errorf("%q is not I/N with 0 <= I < N", text))
	}
	return &ShardSpec{Index: i, Count: n}, nil
}

// Dir is the directory of this part inside a parts directory.
func (s *ShardSpec) Dir(parts string) string {
	return filepath.Join(parts, fmt.Sprintf("part-%d-of-%d", s.Index, s.Count))
}

// Tensor is one plan item and, after a run, its measurements.
type Tensor struct {
	plan.Item
	SQNR      *float64 `json:"sqnr_db"` // nil when kept, exact or not run
	NonFinite int      `json:"nonfinite,omitempty"`
}

// Totals sum the tensors of the report.
type Totals struct {
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

// DryRun plans the run opt describes from the input's headers and returns
// its report (DryRun set, nothing measured), writing nothing.
func DryRun(opt Options) (*Report, error) {
	ck, _, rep, err := prepare(opt)
	if err != nil {
		return nil, err
	}
	ck.Close()
	rep.DryRun = true
	return rep, nil
}

// Run quantizes the checkpoint opt.Input into opt.Output, atomically: into
// a temporary beside it, moved into place only when complete (see
// package output for what an existing Output may be). It stops when ctx
// is done, removing the temporary. Errors about the input or the flags
// are marked inputerr.
func Run(ctx context.Context, opt Options) (*Report, error) {
	ck, p, rep, err := prepare(opt)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	claim, err := output.Claim(opt.Log, rep.Output, opt.Force, rep.Totals.BytesOut, output.CheckpointInputs(opt.Input, ck)...)
	if err != nil {
		return nil, err
	}
	rep.Device = Device
	start := time.Now()
	items := itemsOf(p, opt.Shard)
	// With a block in flight on every core, each kernel call runs on its
	// block's goroutine.
	kernels := cpu.QuantKernels{Serial: rep.Workers >= cpu.Threads()}
	ro := plan.RunOptions{Workers: rep.Workers, AllowNonFinite: opt.AllowNonFinite, Kernels: kernels, MaxMemory: rep.MaxMemory}
	// The Go heap's garbage counts too: collect it before it takes the
	// process past the planned peak, not at twice the live heap. The
	// runtime's limit leaves out the program's code and data.
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(max(rep.MemoryEstimate-programImage, 16<<20)))
	ro.Progress = func(item int, done int64, n int) {
		if opt.Progress != nil {
			opt.Progress(Progress{Output: rep.Output, Tensor: p.Items[item].Name, BytesDone: done, BytesTotal: rep.Totals.BytesIn,
				TensorsDone: n, TensorsTotal: len(items)})
		}
	}
	var stats []plan.Stats
	if plan.IsGGUF(p.Format) {
		stats, err = writeGGUF(ctx, ck, p, claim, ro)
	} else {
		stats, err = writeCheckpointDir(ctx, ck, p, items, opt, claim, ro)
	}
	if errors.Is(err, plan.ErrNonFinite) {
		err = inputerr.Mark(err)
	}
	if err != nil {
		return nil, output.NoSpace(rep.Output, rep.Totals.BytesOut, err)
	}
	rep.Seconds = time.Since(start).Seconds()
	if rep.Seconds > 0 {
		rep.GBPerSecond = float64(rep.Totals.BytesIn) / rep.Seconds / 1e9
	}
	rep.addStats(stats)
	return rep, nil
}

// prepare opens the input, checks it and the options, and plans the run.
func prepare(opt Options) (*checkpoint.Checkpoint, *plan.Plan, *Report, error) {
	if opt.Workers < 0 {
		return nil, nil, nil, inputerr.Mark(fmt.Errorf("%d workers", opt.Workers))
	}
	if opt.ShardSize < 0 {
		return nil, nil, nil, inputerr.Mark(fmt.Errorf("shard size %d is negative", opt.ShardSize))
	}
	if opt.MaxMemory < 0 {
		return nil, nil, nil, inputerr.Mark(fmt.Errorf("memory budget %d is negative", opt.MaxMemory))
	}
	if s := opt.Shard; s != nil {
		if s.Count < 1 || s.Index < 0 || s.Index >= s.Count {
			return nil, nil, nil, inputerr.Mark(fmt.Errorf("shard %d/%d: not I/N with 0 <= I < N", s.Index, s.Count))
		}
		if plan.IsGGUF(opt.Plan.Format) {
			return nil, nil, nil, inputerr.Mark(errors.New("--shard is not supported for the gguf formats"))
		}
	}
	ck, err := checkpoint.Open(opt.Input)
	if err != nil {
		return nil, nil, nil, inputerr.Mark(err)
	}
	if what, ok := plan.Quantized(ck.Config(), ck.Metadata(), ck.Tensors()); ok {
		ck.Close()
		return nil, nil, nil, inputerr.Mark(fmt.Errorf("%s is quantized already (%s): quantizing its codes and scales again would write a checkpoint "+
			"that is neither; start from the float checkpoint, or dequantize it first (quantkit dequantize %s -o FLOAT)", opt.Input, what, opt.Input))
	}
	p, err := plan.Build(ck.Tensors(), opt.Plan)
	if err != nil {
		ck.Close()
		return nil, nil, nil, inputerr.Mark(err)
	}
	rep := newReport(opt, p)
	if rep.Stream, err = p.Stream(itemsOf(p, opt.Shard), rep.Workers, opt.MaxMemory); err != nil {
		ck.Close()
		return nil, nil, nil, inputerr.Mark(fmt.Errorf("--max-memory: %w", err))
	}
	rep.MemoryEstimate, rep.MaxMemory = rep.Stream.Peak, rep.Stream.MaxMemory
	return ck, p, rep, nil
}

// itemsOf are the plan items a run writes: all, or those of one part.
func itemsOf(p *plan.Plan, s *ShardSpec) []int {
	if s == nil {
		return p.All()
	}
	return p.Part(s.Index, s.Count)
}

func shardSize(opt Options) int64 {
	if opt.ShardSize == 0 {
		return DefaultShardSize
	}
	return opt.ShardSize
}

// writeCheckpointDir writes the plan's items as the checkpoint directory
// claim.Path, atomically: into a temporary directory beside it, moved into
// place at the end (atomicfile.Claim.Install: never over anything but what
// the claim may replace).
func writeCheckpointDir(ctx context.Context, ck *checkpoint.Checkpoint, p *plan.Plan, items []int, opt Options, claim *atomicfile.Claim, ro plan.RunOptions) ([]plan.Stats, error) {
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
	w, err := checkpoint.Create(tmp.Path, p.SafetensorsInfos(items), shardSize(opt), meta)
	if err != nil {
		return nil, err
	}
	stats, err := plan.Run(ctx, p, items, ck, w, ro)
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		w.Abort()
		return nil, err
	}
	if err := WriteConfig(ck, p, tmp.Path); err != nil {
		return nil, err
	}
	if err := ck.CopySideFiles(tmp.Path, checkpoint.ConfigFileName); err != nil {
		return nil, err
	}
	if s := opt.Shard; s != nil {
		if err := writePart(tmp.Path, plan.NewPart(p, s.Index, s.Count, shardSize(opt))); err != nil {
			return nil, err
		}
	}
	return stats, tmp.Commit()
}

// WriteConfig writes config.json into dir: the input's, with the
// quantization_config of compressed-tensors.
func WriteConfig(ck *checkpoint.Checkpoint, p *plan.Plan, dir string) error {
	cfg := ck.Config()
	ct, isCT := plan.CTFormat(p.Format, p.Scheme)
	if cfg == nil {
		if !isCT {
			return nil
		}
		cfg = []byte("{}")
	}
	if isCT {
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

// ggufFileTypes are llama.cpp's llama_ftype values of the gguf formats
// (MOSTLY_Q8_0, MOSTLY_Q4_0).
var ggufFileTypes = map[plan.Format]uint32{plan.GGUFQ8_0: 7, plan.GGUFQ4_0: 2}

// writeGGUF writes the plan as the GGUF file claim.Path, atomically.
func writeGGUF(ctx context.Context, ck *checkpoint.Checkpoint, p *plan.Plan, claim *atomicfile.Claim, ro plan.RunOptions) ([]plan.Stats, error) {
	final := claim.Path
	if fi, err := os.Stat(final); err == nil && fi.IsDir() {
		return nil, inputerr.Mark(fmt.Errorf("%s is a directory; the gguf formats write one file", final))
	}
	var cfg struct {
		ModelType string `json:"model_type"`
		Name      string `json:"_name_or_path"`
	}
	if raw := ck.Config(); raw != nil {
		json.Unmarshal(raw, &cfg) // a config.json that says nothing names nothing
	}
	name := cfg.Name
	if name == "" {
		name = filepath.Base(ck.Dir())
	}
	meta := []gguf.KV{}
	if cfg.ModelType != "" {
		meta = append(meta, gguf.KV{Key: "general.architecture", Value: cfg.ModelType})
	}
	meta = append(meta,
		gguf.KV{Key: "general.name", Value: name},
		gguf.KV{Key: "general.file_type", Value: ggufFileTypes[p.Format]},
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
	stats, err := plan.Run(ctx, p, p.All(), ck, w, ro)
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

func newReport(opt Options, p *plan.Plan) *Report {
	workers := opt.Workers
	if workers == 0 {
		workers = cpu.Threads()
	}
	out := opt.Output
	if opt.Shard != nil {
		out = opt.Shard.Dir(opt.Output)
	}
	rep := &Report{Input: opt.Input, Output: out, Format: p.Format, Workers: workers,
		Shard: opt.Shard, PlanHash: p.Hash(), Tensors: []Tensor{}}
	if !plan.IsGGUF(p.Format) {
		rep.Scheme = p.Scheme.String()
	}
	for _, k := range itemsOf(p, opt.Shard) {
		it := p.Items[k]
		rep.Tensors = append(rep.Tensors, Tensor{Item: it})
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
	return rep
}

// addStats records a run's measurements, in the order of rep.Tensors.
func (rep *Report) addStats(stats []plan.Stats) {
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
