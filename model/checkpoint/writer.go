package checkpoint

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/quantkit/quantkit/model/safetensors"
)

// tensorSize is the data size of t in bytes, from its dtype and shape.
func tensorSize(t safetensors.TensorInfo) (int64, error) {
	size, ok := safetensors.DTypeSize(t.DType)
	if !ok {
		return 0, fmt.Errorf("tensor %q: dtype %q not supported", t.Name, t.DType)
	}
	n := int64(size)
	for _, d := range t.Shape {
		if d < 0 {
			return 0, fmt.Errorf("tensor %q: negative dimension in shape %v", t.Name, t.Shape)
		}
		if d != 0 && n > math.MaxInt64/int64(d) {
			return 0, fmt.Errorf("tensor %q: shape %v: size in bytes overflows", t.Name, t.Shape)
		}
		n *= int64(d)
	}
	return n, nil
}

// PlanShards splits tensors, kept in the order given, into consecutive
// shards of at most maxShardBytes data bytes each, as transformers'
// max_shard_size does: a tensor goes into the current shard unless that
// would take the shard past the limit, and a tensor larger than the limit
// gets a shard of its own. maxShardBytes ≤ 0 means no limit. There is
// always at least one shard (an empty one for no tensors). Sizes come from
// dtype and shape; Begin and End are ignored. It fails on an unknown
// dtype, a negative dimension and a name given twice.
func PlanShards(tensors []safetensors.TensorInfo, maxShardBytes int64) ([][]safetensors.TensorInfo, error) {
	shards := [][]safetensors.TensorInfo{nil}
	var used int64
	seen := make(map[string]bool, len(tensors))
	for _, t := range tensors {
		if seen[t.Name] {
			return nil, fmt.Errorf("checkpoint: tensor %q appears twice", t.Name)
		}
		seen[t.Name] = true
		size, err := tensorSize(t)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
		last := len(shards) - 1
		if maxShardBytes > 0 && len(shards[last]) > 0 && size > maxShardBytes-used {
			shards = append(shards, nil)
			last++
			used = 0
		}
		t.Shape = slices.Clone(t.Shape)
		t.Begin, t.End = 0, 0
		shards[last] = append(shards[last], t)
		used += size
	}
	return shards, nil
}

// Writer writes a checkpoint tensor by tensor: Create lays out the shards,
// WriteTensor takes each tensor's data in the order given to Create, and
// Close finishes the last shard and writes the index. Errors are final:
// after one, every shard this Writer wrote is removed and every later call
// returns the same error. A Writer is not safe for concurrent use.
type Writer struct {
	dir      string
	shards   [][]safetensors.TensorInfo
	names    []string       // shard file names
	shardOf  map[string]int // tensor name → shard
	metadata map[string]string
	total    int64
	cur      int                 // shard being written; -1 before the first
	w        *safetensors.Writer // writing shard cur
	written  []string            // paths of complete shards
	err      error               // sticky
	done     bool
}

// Create starts a checkpoint in dir (created if missing) holding tensors
// in the order given, split by PlanShards(tensors, maxShardBytes) and named
// by ShardName. metadata, which may be nil, goes into every shard's
// __metadata__, with "format": "pt" added when absent (transformers refuses
// safetensors files without it). Create fails if dir already holds a
// checkpoint (model.safetensors, the index, or model-*-of-*.safetensors).
// Nothing appears in dir until a whole shard has been written.
func Create(dir string, tensors []safetensors.TensorInfo, maxShardBytes int64, metadata map[string]string) (*Writer, error) {
	shards, err := PlanShards(tensors, maxShardBytes)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	for _, e := range entries {
		shard, _ := filepath.Match("model-*-of-*.safetensors", e.Name())
		if shard || e.Name() == SingleFileName || e.Name() == IndexFileName {
			return nil, fmt.Errorf("checkpoint: %s already holds a checkpoint (%s); write into an empty directory", dir, e.Name())
		}
	}
	w := &Writer{dir: dir, shards: shards, shardOf: map[string]int{}, cur: -1}
	w.metadata = maps.Clone(metadata)
	if w.metadata == nil {
		w.metadata = map[string]string{}
	}
	if _, ok := w.metadata["format"]; !ok {
		w.metadata["format"] = "pt"
	}
	for i, shard := range shards {
		w.names = append(w.names, ShardName(i, len(shards)))
		for _, t := range shard {
			w.shardOf[t.Name] = i
			size, _ := tensorSize(t) // checked by PlanShards
			w.total += size
		}
	}
	return w, nil
}

// Files returns the names of the shard files, in order.
func (w *Writer) Files() []string { return slices.Clone(w.names) }

// Shards returns the planned shards, in order.
func (w *Writer) Shards() [][]safetensors.TensorInfo {
	out := make([][]safetensors.TensorInfo, len(w.shards))
	for i, shard := range w.shards {
		out[i] = make([]safetensors.TensorInfo, len(shard))
		for j, t := range shard {
			t.Shape = slices.Clone(t.Shape)
			out[i][j] = t
		}
	}
	return out
}

// WeightMap returns the index's weight_map: tensor name → shard file name.
func (w *Writer) WeightMap() map[string]string {
	m := make(map[string]string, len(w.shardOf))
	for name, i := range w.shardOf {
		m[name] = w.names[i]
	}
	return m
}

// TotalSize is the data size of all tensors, the index's total_size.
func (w *Writer) TotalSize() int64 { return w.total }

// WriteTensor writes the whole data of the named tensor, which must come
// after the tensors written so far in the order given to Create (empty
// tensors may be skipped). Moving on to a tensor of a later shard finishes
// the current shard, which fails if any of its data is missing.
func (w *Writer) WriteTensor(name string, data []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.done {
		return fmt.Errorf("checkpoint: %s: write after Close", w.dir)
	}
	i, ok := w.shardOf[name]
	if !ok {
		return w.fail(fmt.Errorf("no tensor %q in the plan", name))
	}
	if i < w.cur {
		return w.fail(fmt.Errorf("tensor %q written out of order: its shard %s is complete", name, w.names[i]))
	}
	if err := w.advance(i); err != nil {
		return err
	}
	if err := w.w.WriteTensor(name, data); err != nil {
		return w.fail(err)
	}
	return nil
}

// WriteTensorAt writes data at byte off of the named tensor, where the
// data written so far ends (see safetensors.Writer.WriteTensorAt): a tensor
// written in consecutive pieces, a block of rows at a time. The first
// piece of a tensor of a later shard finishes the current one.
func (w *Writer) WriteTensorAt(name string, off int64, data []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.done {
		return fmt.Errorf("checkpoint: %s: write after Close", w.dir)
	}
	i, ok := w.shardOf[name]
	if !ok {
		return w.fail(fmt.Errorf("no tensor %q in the plan", name))
	}
	if i < w.cur {
		return w.fail(fmt.Errorf("tensor %q written out of order: its shard %s is complete", name, w.names[i]))
	}
	if err := w.advance(i); err != nil {
		return err
	}
	if err := w.w.WriteTensorAt(name, off, data); err != nil {
		return w.fail(err)
	}
	return nil
}

// advance finishes shards until shard i is the one being written.
func (w *Writer) advance(i int) error {
	for w.cur < i {
		if err := w.finishShard(); err != nil {
			return err
		}
		w.cur++
		sw, err := safetensors.Create(filepath.Join(w.dir, w.names[w.cur]), w.shards[w.cur], w.metadata)
		if err != nil {
			return w.fail(err)
		}
		w.w = sw
	}
	return nil
}

func (w *Writer) finishShard() error {
	if w.w == nil {
		return nil
	}
	sw := w.w
	w.w = nil
	if err := sw.Close(); err != nil {
		return w.fail(err)
	}
	w.written = append(w.written, filepath.Join(w.dir, w.names[w.cur]))
	return nil
}

// Close finishes the last shard and, for more than one shard, writes the
// index. It fails, removing every shard written, if any tensor's data is
// missing. After an earlier error it returns that error.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.done {
		return nil
	}
	if err := w.advance(len(w.shards) - 1); err != nil {
		return err
	}
	if err := w.finishShard(); err != nil {
		return err
	}
	if len(w.shards) > 1 {
		if err := writeIndex(w.dir, w.WeightMap(), w.total); err != nil {
			return w.fail(err)
		}
	}
	w.done = true
	return nil
}

// Abort discards the checkpoint: the shard being written and every shard
// already written are removed. It is harmless after Close fails, and does
// nothing after Close succeeds.
func (w *Writer) Abort() {
	if !w.done && w.err == nil {
		w.fail(errors.New("aborted"))
	}
}

// fail records err, removes what this Writer wrote and returns err with
// context.
func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = fmt.Errorf("checkpoint: %s: %w", w.dir, err)
	}
	if w.w != nil {
		w.w.Abort()
		w.w = nil
	}
	for _, path := range w.written {
		os.Remove(path)
	}
	w.written = nil
	w.done = true
	return w.err
}
