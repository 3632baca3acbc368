package checkpoint

import (
	"github.com/quantkit/quantkit/internal/jsonobj"

	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/internal/fault"
	"github.com/quantkit/quantkit/model/format"
	"github.com/quantkit/quantkit/model/safetensors"
)

// MaxConfigLen bounds the size of a config.json Open reads.
const MaxConfigLen = 16 << 20

// Checkpoint is an open checkpoint: one or more safetensors files read as
// one. Its methods may be called concurrently, except Close.
type Checkpoint struct {
	dir     string
	index   *Index              // nil for a single file
	names   []string            // shard file names relative to dir, sorted
	shards  []*safetensors.File // parallel to names
	stats   []os.FileInfo       // parallel to names: each shard when opened
	where   map[string]int      // tensor name → shard
	tensors []safetensors.TensorInfo
	config  json.RawMessage // nil when there is no config.json
}

// Open opens the checkpoint at path (a .safetensors file, an index .json
// file, or a directory holding either) and validates it; see the package
// documentation. Errors name the file and, where there is one, the tensor.
func Open(path string) (*Checkpoint, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	var c *Checkpoint
	switch {
	case fi.IsDir():
		single, err1 := os.Stat(filepath.Join(path, SingleFileName))
		index, err2 := os.Stat(filepath.Join(path, IndexFileName))
		switch {
		case err1 == nil && err2 == nil && !single.IsDir() && !index.IsDir():
			return nil, fmt.Errorf("checkpoint: %s holds both %s and %s, which transformers and vLLM would load differently; remove one", path, SingleFileName, IndexFileName)
		case err2 == nil:
			c, err = openIndex(filepath.Join(path, IndexFileName))
		case err1 == nil:
			c, err = openSingle(filepath.Join(path, SingleFileName))
		default:
			return nil, fmt.Errorf("checkpoint: %s holds neither %s nor %s", path, SingleFileName, IndexFileName)
		}
	case strings.HasSuffix(path, ".json"):
		c, err = openIndex(path)
	default:
		c, err = openSingle(path)
	}
	if err != nil {
		return nil, err
	}
	if err := c.readConfig(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func openSingle(path string) (*Checkpoint, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	c := &Checkpoint{dir: filepath.Dir(path), names: []string{filepath.Base(path)}, shards: []*safetensors.File{f}}
	if err := c.statShards(); err != nil {
		f.Close()
		return nil, err
	}
	c.tensors = f.Tensors()
	c.where = make(map[string]int, len(c.tensors))
	for _, t := range c.tensors {
		c.where[t.Name] = 0
	}
	return c, nil
}

func openIndex(path string) (*Checkpoint, error) {
	ix, err := ReadIndex(path)
	if err != nil {
		return nil, err
	}
	c := &Checkpoint{dir: filepath.Dir(path), index: ix}
	if err := c.openShards(path); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// openShards opens every shard the index names and checks the index
// against what the shards hold.
func (c *Checkpoint) openShards(indexPath string) error {
	errorf := func(format string, args ...any) error {
		return fmt.Errorf("checkpoint: %s: "+format, append([]any{indexPath}, args...)...)
	}
	tensorNames := slices.Sorted(maps.Keys(c.index.WeightMap))
	shardNames := map[string]bool{}
	for _, t := range tensorNames {
		shard := c.index.WeightMap[t]
		if !filepath.IsLocal(shard) {
			return errorf("weight_map: tensor %q: shard %q is not a path inside %s", t, shard, c.dir)
		}
		shardNames[shard] = true
	}
	c.names = slices.Sorted(maps.Keys(shardNames))
	byName := make(map[string]int, len(c.names))
	for i, name := range c.names {
		f, err := safetensors.Open(filepath.Join(c.dir, name))
		if err != nil {
			return errorf("shard %q: %w", name, err)
		}
		c.shards = append(c.shards, f)
		byName[name] = i
	}
	if err := c.statShards(); err != nil {
		return err
	}
	c.where = map[string]int{}
	for i, f := range c.shards {
		for _, t := range f.Tensors() {
			if j, dup := c.where[t.Name]; dup {
				return errorf("tensor %q is in both %s and %s", t.Name, c.names[j], c.names[i])
			}
			c.where[t.Name] = i
			c.tensors = append(c.tensors, t)
		}
	}
	for _, t := range tensorNames {
		shard := c.index.WeightMap[t]
		i, ok := c.where[t]
		switch {
		case !ok:
			return errorf("weight_map puts tensor %q in %s, which does not hold it", t, shard)
		case i != byName[shard]:
			return errorf("weight_map puts tensor %q in %s, but it is in %s", t, shard, c.names[i])
		}
	}
	for _, t := range c.tensors {
		if _, ok := c.index.WeightMap[t.Name]; !ok {
			return errorf("%s holds tensor %q, which weight_map does not list", c.names[c.where[t.Name]], t.Name)
		}
	}
	return nil
}

// statShards records each shard file as it is when opened, for Changed.
func (c *Checkpoint) statShards() error {
	c.stats = c.stats[:0]
	for _, name := range c.names {
		fi, err := os.Stat(filepath.Join(c.dir, name))
		if err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		c.stats = append(c.stats, fi)
	}
	return nil
}

// Changed returns an error naming the first shard file that is no longer
// what Open mapped (another size or modification time, or gone): the
// tensors read from it may mix old and new data. Writers of a converted
// checkpoint call it before they commit.
func (c *Checkpoint) Changed() error {
	for i, name := range c.names {
		path := filepath.Join(c.dir, name)
		fi, err := os.Stat(path)
		if err != nil || fi.Size() != c.stats[i].Size() || !fi.ModTime().Equal(c.stats[i].ModTime()) || !os.SameFile(fi, c.stats[i]) {
			return fmt.Errorf("checkpoint: %s changed or was truncated while reading; nothing was written from it", path)
		}
	}
	return nil
}

// Explain turns err, when it comes from reading a shard's memory after
// its file shrank (a fault caught by internal/fault, or EFAULT), into an
// error naming the file that changed; other errors pass as they are.
func (c *Checkpoint) Explain(err error) error {
	if err == nil || !fault.Is(err) {
		return err
	}
	if cerr := c.Changed(); cerr != nil {
		return cerr
	}
	return fmt.Errorf("checkpoint: %s: %w", c.dir, err)
}

// readConfig reads config.json beside the weights, if there is one.
func (c *Checkpoint) readConfig() error {
	path := filepath.Join(c.dir, ConfigFileName)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	data, err := format.ReadFile(path, MaxConfigLen)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if _, err := jsonobj.Members(data); err != nil {
		return fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	c.config = data
	return nil
}

// Close closes every shard. Slices from Bytes must not be used afterwards.
func (c *Checkpoint) Close() error {
	var errs []error
	for _, f := range c.shards {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

// Dir is the directory of the checkpoint: where its shards, index and side
// files are.
func (c *Checkpoint) Dir() string { return c.dir }

// Files returns the names of the shard files, relative to Dir, sorted.
func (c *Checkpoint) Files() []string { return slices.Clone(c.names) }

// Index returns a copy of the parsed index, or nil for a single file.
func (c *Checkpoint) Index() *Index {
	if c.index == nil {
		return nil
	}
	return &Index{Metadata: maps.Clone(c.index.Metadata), WeightMap: maps.Clone(c.index.WeightMap)}
}

// Tensors returns every tensor, sorted by shard file name and then by data
// offset, the order that reads each file front to back. Begin and End are
// offsets in the tensor's own shard.
func (c *Checkpoint) Tensors() []safetensors.TensorInfo {
	out := make([]safetensors.TensorInfo, len(c.tensors))
	for i, t := range c.tensors {
		t.Shape = slices.Clone(t.Shape)
		out[i] = t
	}
	return out
}

// Tensor returns the description of the named tensor.
func (c *Checkpoint) Tensor(name string) (safetensors.TensorInfo, bool) {
	t, _, ok := c.Lookup(name)
	return t, ok
}

// Lookup returns the description of the named tensor and the shard that
// holds it.
func (c *Checkpoint) Lookup(name string) (safetensors.TensorInfo, *safetensors.File, bool) {
	i, ok := c.where[name]
	if !ok {
		return safetensors.TensorInfo{}, nil, false
	}
	t, _ := c.shards[i].Tensor(name)
	return t, c.shards[i], true
}

// ShardOf returns the name, relative to Dir, of the shard that holds the
// named tensor.
func (c *Checkpoint) ShardOf(name string) (string, bool) {
	i, ok := c.where[name]
	if !ok {
		return "", false
	}
	return c.names[i], true
}

// Bytes returns the named tensor's raw data, as safetensors.File.Bytes.
func (c *Checkpoint) Bytes(name string) ([]byte, error) {
	i, ok := c.where[name]
	if !ok {
		return nil, fmt.Errorf("checkpoint: %s: no tensor %q", c.dir, name)
	}
	return c.shards[i].Bytes(name)
}

// Release lets the named tensor's pages leave resident memory, as
// safetensors.File.Release.
func (c *Checkpoint) Release(name string) {
	if i, ok := c.where[name]; ok {
		c.shards[i].Release(name)
	}
}

// ReleaseRange lets bytes [off, off+n) of the named tensor's data leave
// resident memory, as safetensors.File.ReleaseRange.
func (c *Checkpoint) ReleaseRange(name string, off, n int64) {
	if i, ok := c.where[name]; ok {
		c.shards[i].ReleaseRange(name, off, n)
	}
}

// Float32 returns the named tensor converted to float32, as
// safetensors.File.Float32.
func (c *Checkpoint) Float32(name string) ([]float32, error) {
	i, ok := c.where[name]
	if !ok {
		return nil, fmt.Errorf("checkpoint: %s: no tensor %q", c.dir, name)
	}
	var x []float32
	err := fault.Catch(func() (err error) {
		x, err = c.shards[i].Float32(name)
		return err
	})
	return x, c.Explain(err)
}

// Float32Into is Float32 into dst's memory where it fits, as
// safetensors.File.Float32Into.
func (c *Checkpoint) Float32Into(name string, dst []float32) ([]float32, error) {
	i, ok := c.where[name]
	if !ok {
		return nil, fmt.Errorf("checkpoint: %s: no tensor %q", c.dir, name)
	}
	var x []float32
	err := fault.Catch(func() (err error) {
		x, err = c.shards[i].Float32Into(name, dst)
		return err
	})
	return x, c.Explain(err)
}

// Float32RangeInto converts elements [lo, hi) of the named tensor into
// dst, as safetensors.File.Float32RangeInto.
func (c *Checkpoint) Float32RangeInto(name string, lo, hi int, dst []float32) error {
	i, ok := c.where[name]
	if !ok {
		return fmt.Errorf("checkpoint: %s: no tensor %q", c.dir, name)
	}
	return c.Explain(fault.Catch(func() error { return c.shards[i].Float32RangeInto(name, lo, hi, dst) }))
}

// ReadTensorAt reads len(dst) bytes of the named tensor's raw data, from
// byte off of it, as safetensors.File.ReadTensorAt.
func (c *Checkpoint) ReadTensorAt(name string, dst []byte, off int64) error {
	i, ok := c.where[name]
	if !ok {
		return fmt.Errorf("checkpoint: %s: no tensor %q", c.dir, name)
	}
	return c.Explain(fault.Catch(func() error { return c.shards[i].ReadTensorAt(name, dst, off) }))
}

// Metadata returns a copy of the __metadata__ of the first shard
// (transformers writes the same, {"format": "pt"}, into every shard).
func (c *Checkpoint) Metadata() map[string]string {
	if len(c.shards) == 0 {
		return nil
	}
	return c.shards[0].Metadata()
}

// Config returns a copy of config.json as it is on disk, or nil when the
// directory has none.
func (c *Checkpoint) Config() json.RawMessage { return slices.Clone(c.config) }

// sideFilePatterns are the files, beside the weights, that a converted
// checkpoint needs unchanged (or, for config.json, updated): the model
// configuration and everything a tokenizer loads. filepath.Match patterns.
var sideFilePatterns = []string{
	"config.json",
	"generation_config.json",
	"tokenizer*.json",
	"tokenizer*.model",
	"special_tokens_map.json",
	"added_tokens.json",
	"vocab.json",
	"vocab.txt",
	"merges.txt",
	"chat_template.json",
	"chat_template.jinja",
	"preprocessor_config.json",
}

// SideFiles returns the names, relative to Dir and sorted, of the side
// files present: config.json, generation_config.json, tokenizer*.json,
// tokenizer*.model, special_tokens_map.json, added_tokens.json, vocab
// files, merges.txt, chat templates and preprocessor_config.json.
func (c *Checkpoint) SideFiles() ([]string, error) {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !slices.ContainsFunc(sideFilePatterns, func(p string) bool {
			ok, _ := filepath.Match(p, e.Name())
			return ok
		}) {
			continue
		}
		// Follow links (the Hugging Face cache links every file).
		if fi, err := os.Stat(filepath.Join(c.dir, e.Name())); err == nil && fi.Mode().IsRegular() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// CopySideFiles copies every side file except those named in except (such
// as config.json, which a converter rewrites) into dir, each atomically,
// with mode 0666 less the umask. A side file that is not a regular file
// (a named pipe) is an error, not a wait.
func (c *Checkpoint) CopySideFiles(dir string, except ...string) error {
	names, err := c.SideFiles()
	if err != nil {
		return err
	}
	for _, name := range names {
		if slices.Contains(except, name) {
			continue
		}
		src, _, err := format.Open(filepath.Join(c.dir, name))
		if err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		err = atomicfile.Write(filepath.Join(dir, name), 0o666, func(f *os.File) error {
			_, err := io.Copy(f, src)
			return err
		})
		src.Close()
		if err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	return nil
}
