package quantize

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/quantkit/quantkit/cpu"
	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/internal/fault"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/internal/output"
	"github.com/quantkit/quantkit/internal/units"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/ggufmix"
	"github.com/quantkit/quantkit/model/imatrix"
	"github.com/quantkit/quantkit/model/plan"
)

// GGUFQuantizationVersion is general.quantization_version as llama-quantize
// writes it (GGML_QNT_VERSION).
const GGUFQuantizationVersion = 2

// ggufChunkElems is how many elements a GGUF job converts at once (a
// block of whole rows, at least one): 4 MiB of float32. A variable for
// the tests, which make it small.
var ggufChunkElems int64 = 1 << 20

// GGUFOptions say what RunGGUF writes: a model quantized to one of
// llama-quantize's mixes, as llama-quantize writes it.
type GGUFOptions struct {
	// Input is the GGUF file to read, when Source is nil; with Source, it
	// only names the input in the report.
	Input string
	// Source, if not nil, supplies the tensors and metadata instead of
	// the file Input (a Hugging Face checkpoint under llama.cpp's names,
	// for example). RunGGUF and PlanGGUF do not close it.
	Source GGUFSource
	// Output is the .gguf file to write; with Shard, the parts directory
	// that part-I-of-N goes into.
	Output string
	// Mix is the llama-quantize type (ggufmix.ParseMix).
	Mix ggufmix.Mix
	// Pure gives every quantized tensor the mix's base type, as
	// llama-quantize's --pure.
	Pure bool
	// Imatrix, if not nil, is an importance matrix (imatrix.Read) that
	// guides the quantizers, as llama-quantize --imatrix: each quantized
	// tensor with an entry is quantized with its importance
	// (gguf.EncodeRowsImportance), a tensor without one as without an
	// imatrix; an entry whose size is not the tensor's row length times
	// its experts is refused (token_embd's is ignored), as are non-finite
	// values and a GGUF imatrix without its imatrix.* keys; with it the Q4_0
	// and Q5_0 mixes make ffn_down of the first 1/8 of the layers Q4_1 and
	// Q5_1, as llama-quantize does.
	// The output records it as llama-quantize does (quantize.imatrix.*).
	Imatrix *imatrix.File
	// ImatrixFile is the imatrix's file name as the user gave it, recorded
	// as quantize.imatrix.file; empty for one computed on the fly (by
	// job/imatrix, quantize --calib), which records no file, only its
	// dataset (the calibration file), entries and chunks.
	ImatrixFile string
	// Workers is the number of blocks of rows converted at once; 0 means
	// one per core.
	Workers int
	// MaxMemory is the memory budget the blocks are sized to (2·Workers
	// of them in flight, the program and the writer's buffers); 0 means
	// plan.DefaultMaxMemory.
	MaxMemory int64
	// Force replaces what is at Output (never the input).
	Force bool
	// Shard, if not nil, writes only that part's share of the tensors
	// (GGUFPartOf) into Shard.Dir(Output): a GGUF file of those tensors,
	// GGUFPartFile, and part.json (GGUFPart); MergeGGUF joins the parts
	// into the file one unsharded run writes.
	Shard *ShardSpec
	// Progress, if not nil, is called after each tensor is written.
	Progress func(Progress)
	// Log receives notes for the user; nil discards them.
	Log io.Writer
}

// GGUFReport is what a GGUF job plans and measures; its JSON is the
// --json output of the command.
type GGUFReport struct {
	Input    string `json:"input"`
	Output   string `json:"output"`
	Mix      string `json:"type"`
	FileType uint32 `json:"file_type"`
	Pure     bool   `json:"pure"`
	Device   string `json:"device,omitempty"` // "cpu" after a run; empty for a dry run
	Workers  int    `json:"workers"`
	DryRun   bool   `json:"dry_run"`
	// Shard is the part written, nil for the whole file.
	Shard *ShardSpec `json:"shard"`
	// PlanHash identifies the whole plan (GGUFPlanHash): parts of one
	// plan carry it in part.json, and merge joins only parts that agree.
	PlanHash string `json:"plan_hash"`
	// Tensors are in the order they are written: llama-quantize's (see
	// ggufmix.Order); for a shard, only the part's.
	Tensors []GGUFTensor `json:"tensors"`
	Totals  GGUFTotals   `json:"totals"`
	// MemoryEstimate is the memory planned for, at most MaxMemory: the
	// program (plan.ProgramMemory), the writer's buffers and 2·Workers
	// blocks of rows in flight.
	MemoryEstimate int64 `json:"memory_estimate"`
	MaxMemory      int64 `json:"max_memory"`
	// Unsupported lists the output types this build cannot encode yet; a
	// run is refused while it is not empty.
	Unsupported []string `json:"unsupported"`
	Seconds     float64  `json:"seconds"`
	GBPerSecond float64  `json:"gb_per_s"`
}

// GGUFTensor is one tensor of a GGUF job.
type GGUFTensor struct {
	Name string `json:"name"`
	// Dims are in ggml order (row length first), as llama.cpp prints them.
	Dims       []int  `json:"dims"`
	InputType  string `json:"input_type"`
	OutputType string `json:"output_type"`
	// Action is "quantize" (to a block type), "convert" (to another
	// float type) or "copy" (the type is kept: the bytes are copied).
	Action   string `json:"action"`
	Reason   string `json:"reason"`
	Fallback bool   `json:"fallback"`
	// Importance says the tensor is quantized with an importance
	// matrix entry (GGUFOptions.Imatrix).
	Importance bool  `json:"importance,omitempty"`
	BytesIn    int64 `json:"bytes_in"`
	BytesOut   int64 `json:"bytes_out"`
}

// GGUFTotals sum the tensors of a GGUF report.
type GGUFTotals struct {
	Tensors   int   `json:"tensors"`
	Quantized int   `json:"quantized"`
	Converted int   `json:"converted"`
	Copied    int   `json:"copied"`
	Fallbacks int   `json:"fallbacks"`
	Elements  int64 `json:"elements"`
	BytesIn   int64 `json:"bytes_in"`
	BytesOut  int64 `json:"bytes_out"`
	// BitsPerWeight is 8·BytesOut/Elements, as llama-quantize reports it.
	BitsPerWeight float64 `json:"bits_per_weight"`
	Ratio         float64 `json:"ratio"`
}

// ggufJob is a planned GGUF job.
type ggufJob struct {
	src    GGUFSource
	raw    RawGGUFSource // src, if it gives raw bytes
	owned  bool          // src was opened here
	meta   gguf.Metadata
	infos  []gguf.TensorInfo // output tensors, in output order
	inputs []gguf.TensorInfo // the same tensors as the source has them
	rep    *GGUFReport
	opt    GGUFOptions
	// all are every output tensor of the plan, in output order, and
	// partOf the part each goes to (GGUFPartOf), when sharded.
	all    []gguf.TensorInfo
	partOf []int
	// importance holds each quantized tensor's importance (columns ×
	// experts), by name; absent: quantized without.
	importance map[string][]float32

	// chunkElems is the most elements a block of rows holds (budget).
	chunkElems int64
}

// PlanGGUF chooses every tensor's type and reports it, with the sizes,
// writing nothing: llama-quantize's --dry-run.
func PlanGGUF(opt GGUFOptions) (*GGUFReport, error) {
	j, err := planGGUF(opt)
	if err != nil {
		return nil, err
	}
	j.close()
	j.rep.DryRun = true
	return j.rep, nil
}

// ggufTensorElems is the number of elements of a tensor of the report.
func ggufTensorElems(t GGUFTensor) int64 {
	n := int64(1)
	for _, d := range t.Dims {
		n *= int64(d)
	}
	return n
}

// total sums rep.Tensors into rep.Totals.
func (rep *GGUFReport) total() {
	tot := GGUFTotals{}
	for _, t := range rep.Tensors {
		switch t.Action {
		case "copy":
			tot.Copied++
		case "quantize":
			tot.Quantized++
		default:
			tot.Converted++
		}
		if t.Fallback {
			tot.Fallbacks++
		}
		tot.Tensors++
		tot.Elements += ggufTensorElems(t)
		tot.BytesIn += t.BytesIn
		tot.BytesOut += t.BytesOut
	}
	if tot.BytesIn > 0 {
		tot.Ratio = float64(tot.BytesOut) / float64(tot.BytesIn)
	}
	if tot.Elements > 0 {
		tot.BitsPerWeight = 8 * float64(tot.BytesOut) / float64(tot.Elements)
	}
	rep.Totals = tot
}

// RunGGUF writes opt.Source (or the GGUF file opt.Input) quantized to
// opt.Mix as the GGUF file opt.Output, as llama-quantize does: the
// metadata carried over in order, general.quantization_version and
// general.file_type set (moved to the end, as llama.cpp's gguf_set_val
// does), split keys removed; the tensors in llama-quantize's order, each
// of the type ggufmix.Choose gives it, aligned to general.alignment (32
// by default). The conversion runs on every core, a few blocks of rows in
// flight. The file is written atomically (see package output for what an
// existing Output may be) and the run stops when ctx is done, leaving
// nothing. A mix whose types this build cannot encode, a quantized input
// tensor that would change type, and NaN or ±Inf in a tensor to convert
// are refused, before anything is written for the first two.
func RunGGUF(ctx context.Context, opt GGUFOptions) (*GGUFReport, error) {
	j, err := planGGUF(opt)
	if err != nil {
		return nil, err
	}
	defer j.close()
	rep := j.rep
	if len(rep.Unsupported) > 0 {
		var which []string
		for _, t := range rep.Tensors {
			if slices.Contains(rep.Unsupported, t.OutputType) && len(which) < 3 {
				which = append(which, t.Name+" → "+t.OutputType)
			}
		}
		return nil, inputerr.Mark(fmt.Errorf("%s to %s: this build cannot encode %s yet (%s); nothing was written",
			rep.Input, rep.Mix, strings.Join(rep.Unsupported, ", "), strings.Join(which, ", ")))
	}
	final := rep.Output
	if fi, err := os.Stat(final); err == nil && fi.IsDir() && opt.Shard == nil {
		return nil, inputerr.Mark(fmt.Errorf("%s is a directory; a GGUF output is one file", final))
	}
	claim, err := output.Claim(opt.Log, final, opt.Force, rep.Totals.BytesOut, j.src.Paths()...)
	if err != nil {
		return nil, err
	}
	rep.Device = Device
	start := time.Now()
	if opt.Shard != nil {
		err = j.writePart(ctx, claim, opt.Progress)
	} else {
		err = j.write(ctx, claim, opt.Progress)
	}
	if err != nil {
		return nil, output.NoSpace(final, rep.Totals.BytesOut, err)
	}
	rep.Seconds = time.Since(start).Seconds()
	if rep.Seconds > 0 {
		rep.GBPerSecond = float64(rep.Totals.BytesIn) / rep.Seconds / 1e9
	}
	return rep, nil
}

func (j *ggufJob) close() {
	if j.owned {
		j.src.Close()
	}
}

// convertible are the input types a tensor can be converted from, as
// llama-quantize converts them (F32 as it is, F16 and BF16 widened).
func convertible(t gguf.Type) bool {
	return t == gguf.TypeF32 || t == gguf.TypeF16 || t == gguf.TypeBF16
}

// planGGUF opens the source and chooses the types.
func planGGUF(opt GGUFOptions) (*ggufJob, error) {
	if opt.Workers < 0 {
		return nil, inputerr.Mark(fmt.Errorf("%d workers", opt.Workers))
	}
	if !opt.Mix.Valid() {
		return nil, inputerr.Mark(fmt.Errorf("unknown type %v", opt.Mix))
	}
	if opt.Output == "" {
		return nil, inputerr.Mark(errors.New("no output file"))
	}
	if s := opt.Shard; s != nil && (s.Count < 1 || s.Count > plan.MaxParts || s.Index < 0 || s.Index >= s.Count) {
		return nil, inputerr.Mark(fmt.Errorf("shard %d/%d: not I/N with 0 <= I < N <= %d", s.Index, s.Count, plan.MaxParts))
	}
	j := &ggufJob{src: opt.Source, opt: opt}
	if j.src == nil {
		f, err := OpenGGUFSource(opt.Input)
		if err != nil {
			return nil, inputerr.Mark(err)
		}
		j.src, j.owned = f, true
	}
	ok := false
	defer func() {
		if !ok {
			j.close()
		}
	}()
	j.raw, _ = j.src.(RawGGUFSource)
	in := j.src.Metadata()
	model, err := ggufmix.ModelFromMetadata(in)
	if err != nil {
		return nil, inputerr.Mark(fmt.Errorf("%s: %w", opt.Input, err))
	}
	tensors := j.src.Tensors()
	mt := make([]ggufmix.Tensor, len(tensors))
	names := make([]string, len(tensors))
	for i, t := range tensors {
		mt[i] = ggufmix.Tensor{Name: t.Name, Type: t.Type, Dims: t.Dims}
		names[i] = t.Name
	}
	if err := checkImatrix(opt); err != nil {
		return nil, inputerr.Mark(err)
	}
	j.importance = map[string][]float32{}
	model.Imatrix = opt.Imatrix != nil
	choices, err := ggufmix.Choose(opt.Mix, mt, model, opt.Pure)
	if err != nil {
		return nil, inputerr.Mark(fmt.Errorf("%s: %w", opt.Input, err))
	}
	workers := opt.Workers
	if workers == 0 {
		workers = cpu.Threads()
	}
	rep := &GGUFReport{Input: opt.Input, Output: opt.Output, Mix: opt.Mix.String(), FileType: opt.Mix.FileType(),
		Pure: opt.Pure, Workers: workers, Shard: opt.Shard, Tensors: []GGUFTensor{}, Unsupported: []string{}}
	for _, i := range ggufmix.Order(names) {
		t, c := tensors[i], choices[i]
		// ggml writes ggml_n_dims dimensions: trailing 1s dropped.
		dims := slices.Clone(t.Dims[:min(len(t.Dims), ggufmix.NDims(t.Dims))])
		if len(dims) == 0 {
			dims = []int{1}
		}
		out := gguf.TensorInfo{Name: t.Name, Type: c.Type, Dims: dims}
		bin, err1 := sizeOf(t.Type, t.Dims)
		bout, err2 := sizeOf(c.Type, dims)
		if err := errors.Join(err1, err2); err != nil {
			return nil, inputerr.Mark(fmt.Errorf("%s: tensor %q: %w", opt.Input, t.Name, err))
		}
		rt := GGUFTensor{Name: t.Name, Dims: slices.Clone(dims), InputType: t.Type.String(), OutputType: c.Type.String(),
			Reason: c.Reason, Fallback: c.Fallback, BytesIn: bin, BytesOut: bout}
		switch {
		case c.Type == t.Type:
			rt.Action = "copy"
			if j.raw == nil && !convertible(t.Type) {
				return nil, inputerr.Mark(fmt.Errorf("%s: tensor %q: %v data cannot be copied from this source", opt.Input, t.Name, t.Type))
			}
		case !convertible(t.Type):
			return nil, inputerr.Mark(fmt.Errorf("%s: tensor %q is %v: only F32, F16 and BF16 tensors are converted (llama-quantize, too, "+
				"refuses to requantize without --allow-requantize); start from the F32, F16 or BF16 file", opt.Input, t.Name, t.Type))
		case isBlockType(c.Type):
			rt.Action = "quantize"
		default:
			rt.Action = "convert"
		}
		if opt.Imatrix != nil && rt.Action == "quantize" {
			w, err := tensorImportance(opt, t)
			if err != nil {
				return nil, inputerr.Mark(err)
			}
			if w != nil {
				j.importance[t.Name] = w
				rt.Importance = true
			}
		}
		if rt.Action != "copy" && !c.Type.CanEncode() && !slices.Contains(rep.Unsupported, c.Type.String()) {
			rep.Unsupported = append(rep.Unsupported, c.Type.String())
		}
		rep.Tensors = append(rep.Tensors, rt)
		j.infos = append(j.infos, out)
		j.inputs = append(j.inputs, t)
	}
	j.meta = ggufMetadata(in, opt.Mix, imatrixKVs(opt))
	j.rep = rep
	if rep.PlanHash, err = j.planHash(); err != nil {
		return nil, err
	}
	if s := opt.Shard; s != nil {
		j.restrict(s)
	}
	rep.total()
	if err := j.budget(opt.MaxMemory); err != nil {
		return nil, err
	}
	ok = true
	return j, nil
}

// ggufElemBytes is the most memory an element of a block in flight
// holds: its float32 and its encoding (4 bytes at most, F32), or for a
// copy its bytes in the input (4·ggufChunkElems at most a block).
const ggufElemBytes = 8

// budget sizes the blocks of rows to maxMemory (0: plan.DefaultMaxMemory):
// at most ggufChunkElems elements each, 2·workers of them in flight.
func (j *ggufJob) budget(maxMemory int64) error {
	if maxMemory == 0 {
		maxMemory = plan.DefaultMaxMemory
	}
	if maxMemory < 0 {
		return inputerr.Mark(fmt.Errorf("memory budget %d is negative", maxMemory))
	}
	var maxRow int64 = 1
	for _, t := range j.infos {
		maxRow = max(maxRow, rowLen(t))
	}
	slots := int64(2 * j.rep.Workers)
	const fixed = plan.ProgramMemory + 2<<20
	elems := min(ggufChunkElems, (maxMemory-fixed)/(slots*ggufElemBytes))
	if elems < maxRow { // a block is at least a row
		return inputerr.Mark(fmt.Errorf("--max-memory: a memory budget of %s is too small for rows of %d values, %d blocks in flight with %d workers; give at least %s",
			units.FormatBytes(maxMemory), maxRow, slots, j.rep.Workers, units.FormatBytes(fixed+slots*ggufElemBytes*maxRow)))
	}
	j.chunkElems = elems
	j.rep.MaxMemory, j.rep.MemoryEstimate = maxMemory, fixed+slots*ggufElemBytes*elems
	return nil
}

func isBlockType(t gguf.Type) bool {
	return t != gguf.TypeF32 && t != gguf.TypeF16 && t != gguf.TypeBF16 && t.BlockSize() > 1
}

// sizeOf is the size in bytes of a tensor of type t and dims.
func sizeOf(t gguf.Type, dims []int) (int64, error) {
	n := int64(1)
	for _, d := range dims[min(1, len(dims)):] {
		if d < 0 || (d > 0 && n > math.MaxInt64/int64(d)) {
			return 0, fmt.Errorf("dimensions %v overflow", dims)
		}
		n *= int64(d)
	}
	cols := int64(1)
	if len(dims) > 0 {
		cols = int64(dims[0])
	}
	row, err := t.RowSize(cols)
	if err != nil {
		return 0, err
	}
	if n > 0 && row > math.MaxInt64/n {
		return 0, fmt.Errorf("dimensions %v overflow", dims)
	}
	return row * n, nil
}

// ggufMetadata is what llama-quantize writes: the input's pairs in order
// (gguf_set_kv), less the split keys, with general.quantization_version
// and then general.file_type set, each removed and appended as
// gguf_set_val_u32 does.
func ggufMetadata(in gguf.Metadata, mix ggufmix.Mix, extra []gguf.KV) gguf.Metadata {
	drop := map[string]bool{"general.quantization_version": true, "general.file_type": true,
		"split.no": true, "split.count": true, "split.tensors.count": true}
	for _, kv := range extra {
		drop[kv.Key] = true
	}
	var out gguf.Metadata
	for _, kv := range in {
		if !drop[kv.Key] {
			out = append(out, kv)
		}
	}
	out = append(out,
		gguf.KV{Key: "general.quantization_version", Value: uint32(GGUFQuantizationVersion)},
		gguf.KV{Key: "general.file_type", Value: mix.FileType()})
	return append(out, extra...)
}

// ggufChunk is a block of whole rows of one output tensor.
type ggufChunk struct {
	tensor      int // index into j.infos
	first, rows int64
	rowBytes    int64 // a row's bytes, for a copy (0: converted)
	last        bool  // the tensor's last chunk
	done        chan ggufResult
}

type ggufResult struct {
	data []byte
	buf  *[]byte // to give back to the pool after writing; nil for a view
	err  error
}

// chunks splits the output tensors into blocks of whole rows.
func (j *ggufJob) chunks() []*ggufChunk {
	var out []*ggufChunk
	for i, t := range j.infos {
		cols := max(1, rowLen(t))
		rows := t.Len() / cols
		if t.Len() == 0 {
			rows = 0
		}
		per, rowBytes := max(1, j.chunkElems/cols), int64(0)
		if t.Type == j.inputs[i].Type && j.raw != nil && rows > 0 {
			// Copied as views of the source, in blocks of rows of at most
			// the bytes of a converted chunk's float32, each let go once
			// written.
			rowBytes = j.rep.Tensors[i].BytesOut / rows
			per = max(1, 4*j.chunkElems/max(rowBytes, 1))
		}
		if rows == 0 {
			out = append(out, &ggufChunk{tensor: i, last: true})
		}
		for r := int64(0); r < rows; r += per {
			out = append(out, &ggufChunk{tensor: i, first: r, rows: min(per, rows-r), rowBytes: rowBytes, last: r+per >= rows})
		}
	}
	for _, c := range out {
		c.done = make(chan ggufResult, 1)
	}
	return out
}

// write converts and writes every tensor into the file claim.Path.
func (j *ggufJob) write(ctx context.Context, claim *atomicfile.Claim, progress func(Progress)) error {
	final := claim.Path
	if err := os.MkdirAll(filepath.Dir(final), 0o777); err != nil {
		return err
	}
	f, err := atomicfile.CreateFor(claim)
	if err != nil {
		return fmt.Errorf("%s: %w", final, err)
	}
	defer f.Abort() // nothing once committed
	if err := j.writeTo(ctx, f, final, progress); err != nil {
		return err
	}
	if ch, ok := j.src.(changer); ok {
		if err := ch.Changed(); err != nil {
			return err
		}
	}
	return f.Commit()
}

// writeTo writes the GGUF file (header, then every tensor converted) to
// out; name is the path that progress reports and errors name.
func (j *ggufJob) writeTo(ctx context.Context, out io.Writer, name string, progress func(Progress)) error {
	bw := bufio.NewWriterSize(out, 1<<20)
	w, err := gguf.NewWriter(bw, j.meta, j.infos)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := j.convert(ctx, w, name, progress); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// convert runs the chunks through the workers and writes their results in
// order. At most 2·workers chunks are in flight, so memory is bounded by
// the chunk size, not by the tensors.
func (j *ggufJob) convert(ctx context.Context, w *gguf.Writer, final string, progress func(Progress)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := j.chunks()
	workers := j.rep.Workers
	slots := make(chan struct{}, 2*workers)
	work := make(chan *ggufChunk)
	order := make(chan *ggufChunk, 2*workers)
	go func() { // the producer: chunks in order, as slots free up
		defer close(work)
		defer close(order)
		for _, c := range chunks {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			order <- c
			select {
			case work <- c:
			case <-ctx.Done():
				return
			}
		}
	}()
	var pool sync.Pool
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var fbuf []float32
			for c := range work {
				c.done <- j.convertChunk(c, &fbuf, &pool)
			}
		}()
	}
	defer wg.Wait()
	defer cancel() // before wg.Wait: the workers stop taking chunks
	var done int64
	tensorsDone := 0
	for c := range order {
		var r ggufResult
		select {
		case r = <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if r.err != nil {
			return r.err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// A copy's data is a view of the mapped input, read here, and
		// let go once written.
		if err := fault.Catch(func() error { _, err := w.Write(r.data); return err }); err != nil {
			if fault.Is(err) {
				if ch, ok := j.src.(changer); ok {
					if cerr := ch.Changed(); cerr != nil {
						return cerr
					}
				}
			}
			return err
		}
		if r.buf != nil {
			pool.Put(r.buf)
		} else if rr, ok := j.src.(rangeReleaser); ok && c.rowBytes > 0 {
			rr.ReleaseRange(j.inputs[c.tensor].Name, c.first*c.rowBytes, c.rows*c.rowBytes)
		}
		<-slots
		if c.last {
			if r, ok := j.src.(releaser); ok {
				r.Release(j.inputs[c.tensor].Name) // every chunk of it is written
			}
			t := j.rep.Tensors[c.tensor]
			done += t.BytesIn
			tensorsDone++
			if progress != nil {
				progress(Progress{Output: final, Tensor: t.Name, BytesDone: done, BytesTotal: j.rep.Totals.BytesIn,
					TensorsDone: tensorsDone, TensorsTotal: len(j.infos)})
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if tensorsDone != len(j.infos) {
		return fmt.Errorf("%s: %d of %d tensors written", final, tensorsDone, len(j.infos))
	}
	return nil
}

// convertChunk reads a chunk's rows as float32 and encodes them in the
// output type, or gives the tensor's bytes for a copy.
func (j *ggufJob) convertChunk(c *ggufChunk, fbuf *[]float32, pool *sync.Pool) ggufResult {
	in, out := j.inputs[c.tensor], j.infos[c.tensor]
	if in.Type == out.Type && j.raw != nil {
		b, err := j.raw.Bytes(in.Name)
		if err == nil && int64(len(b)) != j.rep.Tensors[c.tensor].BytesOut {
			err = fmt.Errorf("%s: tensor %q holds %d bytes, its type and dimensions call for %d", j.rep.Input, in.Name, len(b), j.rep.Tensors[c.tensor].BytesOut)
		}
		if err == nil && c.rowBytes > 0 {
			b = b[c.first*c.rowBytes : (c.first+c.rows)*c.rowBytes]
		}
		return ggufResult{data: b, err: err}
	}
	cols := rowLen(out)
	n := c.rows * cols
	if int64(cap(*fbuf)) < n {
		*fbuf = make([]float32, n)
	}
	src := (*fbuf)[:n]
	if err := j.src.ReadFloat32(in.Name, c.first, src); err != nil {
		return ggufResult{err: err}
	}
	if out.Type != gguf.TypeF32 || in.Type != gguf.TypeF32 {
		for k, v := range src {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				row := c.first + int64(k)/cols
				return ggufResult{err: inputerr.Mark(fmt.Errorf("%s: tensor %q: row %d holds %v: llama.cpp rejects the %v data that would make; "+
					"fix the input", j.rep.Input, in.Name, row, v, out.Type))}
			}
		}
	}
	size, err := out.Type.RowSize(n)
	if err != nil {
		return ggufResult{err: fmt.Errorf("tensor %q: %w", in.Name, err)}
	}
	bp, _ := pool.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	if int64(cap(*bp)) < size {
		*bp = make([]byte, size)
	}
	dst := (*bp)[:size]
	if w := j.importance[in.Name]; w != nil {
		err = encodeWithImportance(dst, src, out, c.first, w)
	} else {
		err = gguf.EncodeFloat32(dst, src, out.Type)
	}
	if err != nil {
		return ggufResult{err: fmt.Errorf("tensor %q: %w", in.Name, err)}
	}
	return ggufResult{data: dst, buf: bp}
}
