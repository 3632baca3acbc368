package quantize

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/internal/fault"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/internal/output"
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/model/safetensors"
)

// MergeOptions say which parts Merge joins, and where to.
type MergeOptions struct {
	// Parts are part directories (OUT/part-I-of-N of a sharded Run) or
	// parts directories holding them.
	Parts []string
	// Output is the checkpoint directory to write; for GGUF parts, the
	// .gguf file.
	Output string
	// ShardSize is the most tensor data an output file holds; 0 means the
	// parts' own (their runs' ShardSize), so that the result equals one
	// unsharded run's output.
	ShardSize int64
	// Force replaces what is at Output (never a part).
	Force bool
	// Progress, if not nil, is called after each tensor is written.
	Progress func(Progress)
	// Log receives notes for the user; nil discards them.
	Log io.Writer
}

// MergeReport says what Merge joined.
type MergeReport struct {
	Output    string      `json:"output"`
	PlanHash  string      `json:"plan_hash"`
	Format    plan.Format `json:"format"`
	Parts     []string    `json:"parts"` // the part directories, part 0 first
	Tensors   int         `json:"tensors"`
	Bytes     int64       `json:"bytes"` // tensor data written
	ShardSize int64       `json:"shard_size"`
	Seconds   float64     `json:"seconds"`
}

// PartDirs expands Merge's arguments: a directory with part.json is a
// part, one without is searched for part-*-of-* directories.
func PartDirs(args []string) ([]string, error) {
	var dirs []string
	for _, a := range args {
		if _, err := os.Stat(filepath.Join(a, plan.PartFileName)); err == nil {
			dirs = append(dirs, a)
			continue
		}
		m, _ := filepath.Glob(filepath.Join(a, "part-*-of-*"))
		if len(m) == 0 {
			return nil, inputerr.Mark(fmt.Errorf("%s: not a part (no %s) and holds no part-*-of-* directories", a, plan.PartFileName))
		}
		dirs = append(dirs, m...)
	}
	return dirs, nil
}

// Merge joins the N parts of one plan (each once: the same plan hash in
// every part.json) into the checkpoint one unsharded run writes: the
// tensors in plan order, the same shard size, config.json and side files.
// Parts of a sharded RunGGUF (part.json of format "gguf") are joined into
// the one .gguf file an unsharded RunGGUF writes, byte for byte, at
// Output (a file; ShardSize must be 0). The output is written atomically,
// as Run writes it.
func Merge(ctx context.Context, opt MergeOptions) (*MergeReport, error) {
	if len(opt.Parts) == 0 {
		return nil, inputerr.Mark(fmt.Errorf("no parts to merge"))
	}
	if opt.ShardSize < 0 {
		return nil, inputerr.Mark(fmt.Errorf("shard size %d is negative", opt.ShardSize))
	}
	start := time.Now()
	dirs, err := PartDirs(opt.Parts)
	if err != nil {
		return nil, err
	}
	if isGGUFPart(dirs[0]) {
		return mergeGGUF(ctx, opt, dirs, start)
	}
	for _, d := range dirs[1:] {
		if isGGUFPart(d) {
			return nil, inputerr.Mark(fmt.Errorf("%s is a GGUF part but %s is a checkpoint part: merge the parts of one run", d, dirs[0]))
		}
	}
	manifests := make([]*plan.Part, len(dirs))
	ids := make([]partID, len(dirs))
	for i, d := range dirs {
		if manifests[i], err = plan.ReadPart(d); err != nil {
			return nil, inputerr.Mark(err)
		}
		ids[i] = partID{d, manifests[i].PlanHash, manifests[i].Index, manifests[i].Count}
	}
	if dirs, err = checkPartSet(ids); err != nil {
		return nil, err
	}
	byIndex := make([]*plan.Part, len(dirs))
	files := make([][]plan.PartFile, len(dirs))
	for _, info := range manifests {
		byIndex[info.Index], files[info.Index] = info, info.Files
	}
	if err := verifyParts(dirs, files); err != nil {
		return nil, inputerr.Mark(err)
	}
	first := byIndex[0]
	parts := map[int]*checkpoint.Checkpoint{}
	defer func() {
		for _, ck := range parts {
			ck.Close()
		}
	}()
	var inputs []string // every part's paths, which the output must not hold
	for i, d := range dirs {
		if !slices.Equal(byIndex[i].Tensors, first.Tensors) || byIndex[i].Format != first.Format {
			return nil, inputerr.Mark(fmt.Errorf("%s: part.json says plan %s like %s but lists other tensors or another format", d, first.PlanHash, dirs[0]))
		}
		ck, err := checkpoint.Open(d)
		if err != nil {
			return nil, inputerr.Mark(err)
		}
		parts[i] = ck
		inputs = append(inputs, output.CheckpointInputs(d, ck)...)
	}
	rep := &MergeReport{Output: opt.Output, PlanHash: first.PlanHash, Format: first.Format, ShardSize: opt.ShardSize, Parts: dirs}
	if rep.ShardSize == 0 {
		rep.ShardSize = cmp.Or(first.ShardSize, DefaultShardSize)
	}
	where := map[string]*checkpoint.Checkpoint{}
	var infos []safetensors.TensorInfo
	for _, name := range first.Tensors {
		for _, ck := range parts {
			if t, ok := ck.Tensor(name); ok {
				where[name] = ck
				infos = append(infos, t)
				break
			}
		}
		if where[name] == nil {
			return nil, inputerr.Mark(fmt.Errorf("no part holds tensor %q", name))
		}
		rep.Bytes += infos[len(infos)-1].End - infos[len(infos)-1].Begin
	}
	rep.Tensors = len(infos)
	out, need := opt.Output, rep.Bytes
	claim, err := output.Claim(opt.Log, out, opt.Force, need, inputs...)
	if err != nil {
		return nil, err
	}
	dir, err := atomicfile.TempDir(claim)
	if err != nil {
		return nil, err
	}
	defer dir.Abort() // nothing once committed
	w, err := checkpoint.Create(dir.Path, infos, rep.ShardSize, parts[0].Metadata())
	if err != nil {
		return nil, err
	}
	var done int64
	for i, name := range first.Tensors {
		if err := ctx.Err(); err != nil {
			w.Abort()
			return nil, err
		}
		ck := where[name]
		err := fault.Catch(func() error {
			b, err := ck.Bytes(name)
			if err == nil {
				err = w.WriteTensor(name, b)
			}
			done += int64(len(b))
			return err
		})
		if err != nil {
			w.Abort()
			return nil, output.NoSpace(out, need, ck.Explain(err))
		}
		if opt.Progress != nil {
			opt.Progress(Progress{Output: out, Tensor: name, BytesDone: done, BytesTotal: need, TensorsDone: i + 1, TensorsTotal: len(infos)})
		}
	}
	for _, ck := range parts {
		if err := ck.Changed(); err != nil {
			w.Abort()
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, output.NoSpace(out, need, err)
	}
	if err := parts[0].CopySideFiles(dir.Path); err != nil {
		return nil, err
	}
	if err := dir.Commit(); err != nil {
		return nil, err
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}
