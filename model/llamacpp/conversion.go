package llamacpp

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/format"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/safetensors"
)

// Architecture is the llama.cpp architecture this package writes.
const Architecture = "llama"

// QuantizationVersion is general.quantization_version, ggml's
// GGML_QNT_VERSION.
const QuantizationVersion = 2

// Metadata keys the caller's file type decides.
const (
	KeyFileType            = "general.file_type"
	KeyQuantizationVersion = "general.quantization_version"
)

// File types (general.file_type, llama_ftype) of unquantized files.
const (
	FileTypeAllF32     uint32 = 0
	FileTypeMostlyF16  uint32 = 1
	FileTypeMostlyBF16 uint32 = 32
)

// MaxSideFile bounds the JSON side files read (tokenizer.json is the
// largest: 17 MB for Llama 3, 33 MB for Gemma).
const MaxSideFile = 256 << 20

// Tensor is one tensor of the GGUF file a Conversion describes.
type Tensor struct {
	// Name is llama.cpp's name ("blk.0.attn_q.weight").
	Name string
	// Source is the tensor's name in the input (the Hugging Face name, or
	// the GGUF name for FromGGUF); "" for a tensor computed from the
	// config (rope_freqs.weight of llama3 RoPE scaling).
	Source string
	// Dims are the GGUF dimensions, innermost first (ggml's ne): a
	// Hugging Face [rows, cols] weight has Dims [cols, rows].
	Dims []int
	// SourceType is the input's element type: a safetensors dtype (F32,
	// F16, BF16) or a GGUF type name.
	SourceType string
	// KeepF32 is set for tensors convert_hf_to_gguf.py stores as F32
	// whatever the file type (vectors, norms, biases: KeepF32).
	KeepF32 bool
	// QKHeads, when positive, says the rows are reordered from Hugging
	// Face's to llama.cpp's by PermuteQK with this many heads (attn_q:
	// the attention heads; attn_k: the key/value heads).
	QKHeads int

	values []float32 // a computed tensor's values
}

// Len is the number of elements.
func (t *Tensor) Len() int64 {
	n := int64(1)
	for _, d := range t.Dims {
		n *= int64(d)
	}
	return n
}

// Rows is the number of rows (Len / Dims[0]; 1 for a scalar).
func (t *Tensor) Rows() int {
	if len(t.Dims) == 0 || t.Dims[0] == 0 {
		return 1
	}
	return int(t.Len() / int64(t.Dims[0]))
}

// Conversion is what a GGUF file for llama.cpp holds, planned from a
// Hugging Face checkpoint (Plan) or from a GGUF file (FromGGUF): the
// tensors, where each comes from and how, and the metadata. It keeps its
// input open for Float32 until Close.
type Conversion struct {
	// Input is the directory or file planned from.
	Input string
	// Hyper and Vocab are what Plan read; nil for FromGGUF.
	Hyper *Hyper
	Vocab *Vocab
	// Tensors are in the order convert_hf_to_gguf.py writes them: computed
	// tensors first, then the input's in name order within each shard
	// (FromGGUF: the file's order).
	Tensors []Tensor

	meta    []gguf.KV // placeholders (nil Value) where the file type goes
	fromHF  bool
	ck      *checkpoint.Checkpoint
	gf      *gguf.File
	tensors map[string]int
}

// Options tune Plan.
type Options struct {
	// Name is general.name; "" takes config.json's _name_or_path when it
	// is a Hugging Face model id, else the directory's name.
	Name string
}

// Metadata returns the file's metadata for the given general.file_type.
// For Plan it is convert_hf_to_gguf.py's, in its order, file type and
// quantization version included where convert writes them. For FromGGUF
// it is the input's, every key carried over in order, then
// general.quantization_version and general.file_type set as llama-quantize
// sets them (removed and appended).
func (c *Conversion) Metadata(fileType uint32) []gguf.KV {
	out := make([]gguf.KV, 0, len(c.meta)+2)
	for _, kv := range c.meta {
		switch {
		case kv.Key == KeyFileType && c.fromHF:
			kv.Value = fileType
		case kv.Key == KeyQuantizationVersion && c.fromHF:
			kv.Value = uint32(QuantizationVersion)
		case kv.Key == KeyFileType || kv.Key == KeyQuantizationVersion:
			continue
		}
		out = append(out, gguf.KV{Key: kv.Key, Value: cloneValue(kv.Value)})
	}
	if !c.fromHF {
		out = append(out, gguf.KV{Key: KeyQuantizationVersion, Value: uint32(QuantizationVersion)},
			gguf.KV{Key: KeyFileType, Value: fileType})
	}
	return out
}

func cloneValue(v any) any {
	return gguf.Metadata{{Key: "", Value: v}}.Clone()[0].Value
}

// Tensor returns the tensor named name (llama.cpp's name).
func (c *Conversion) Tensor(name string) (*Tensor, bool) {
	i, ok := c.tensors[name]
	if !ok {
		return nil, false
	}
	return &c.Tensors[i], true
}

// Float32 returns t's values in the GGUF layout (rows permuted where
// QKHeads says so), converted to float32, which holds F16 and BF16
// exactly.
func (c *Conversion) Float32(t *Tensor) ([]float32, error) {
	switch {
	case t.Source == "":
		return slices.Clone(t.values), nil
	case c.gf != nil:
		return c.gf.Float32(t.Source)
	}
	x, err := c.ck.Float32(t.Source)
	if err != nil {
		return nil, err
	}
	if int64(len(x)) != t.Len() {
		return nil, fmt.Errorf("llamacpp: %s: %s has %d values, the plan %d", c.Input, t.Source, len(x), t.Len())
	}
	if t.QKHeads > 0 {
		y := make([]float32, len(x))
		PermuteQK(y, x, t.Rows(), t.QKHeads)
		x = y
	}
	return x, nil
}

// Release lets t's input pages leave resident memory once it has been
// read.
func (c *Conversion) Release(t *Tensor) {
	if c.ck != nil && t.Source != "" {
		c.ck.Release(t.Source)
	}
}

// ReleaseRows lets the input pages of rows [first, first+n) of t go, once
// they are read (ReadRows), so that a tensor converted block by block
// holds one block of its input at a time, not all it has read. Rows a
// Q/K permutation takes from elsewhere are left for Release.
func (c *Conversion) ReleaseRows(t *Tensor, first, n int) {
	if t.Source == "" || t.QKHeads > 0 || n <= 0 {
		return
	}
	rows := int64(max(t.Rows(), 1))
	switch {
	case c.ck != nil:
		if info, ok := c.ck.Tensor(t.Source); ok {
			rb := (info.End - info.Begin) / rows
			c.ck.ReleaseRange(t.Source, int64(first)*rb, int64(n)*rb)
		}
	case c.gf != nil:
		if info, ok := c.gf.Tensor(t.Source); ok {
			rb := int64(info.Size) / rows
			c.gf.ReleaseRange(t.Source, int64(first)*rb, int64(n)*rb)
		}
	}
}

// Files are the paths of the files c reads: the Hugging Face
// checkpoint's directory and its shards, or the GGUF file.
func (c *Conversion) Files() []string {
	if c.ck == nil {
		return []string{c.Input}
	}
	files := []string{c.Input, c.ck.Dir()}
	for _, f := range c.ck.Files() {
		files = append(files, filepath.Join(c.ck.Dir(), f))
	}
	return files
}

// Changed returns an error naming the first input file that is no longer
// what was opened (checkpoint.Checkpoint.Changed); nil for a GGUF input,
// whose reader checks its own.
func (c *Conversion) Changed() error {
	if c.ck != nil {
		return c.ck.Changed()
	}
	return nil
}

// Close closes the input.
func (c *Conversion) Close() error {
	var err error
	if c.ck != nil {
		err = c.ck.Close()
	}
	if c.gf != nil {
		err = errors.Join(err, c.gf.Close())
	}
	return err
}

// readSide reads dir/name, a small JSON side file; ok is false where there
// is no such file.
func readSide(dir, name string) (data []byte, ok bool, err error) {
	path := filepath.Join(dir, name)
	f, fi, err := format.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	if fi.Size() > MaxSideFile {
		return nil, true, fmt.Errorf("%s: %d bytes, more than the %d this converter reads", path, fi.Size(), MaxSideFile)
	}
	data, err = io.ReadAll(io.LimitReader(f, MaxSideFile+1))
	if err != nil {
		return nil, true, fmt.Errorf("%s: %w", path, err)
	}
	return data, true, nil
}

// Plan reads the Hugging Face checkpoint in dir (config.json, the
// safetensors weights, tokenizer.json, tokenizer_config.json, and
// generation_config.json and chat_template.jinja where present) and plans
// its conversion to llama.cpp's llama architecture as convert_hf_to_gguf.py
// does it. It refuses, before anything is written, a checkpoint it cannot
// convert right: no config.json or tokenizer.json, another architecture,
// missing or malformed hyperparameters, head counts that do not divide, a
// RoPE scaling or tokenizer it cannot carry, tensors missing, unexpected,
// of the wrong shape or of a type other than F32, F16, BF16 or F64. The
// error names the file and what is wrong.
func Plan(dir string, opts Options) (*Conversion, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("llamacpp: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("llamacpp: %s is not a directory: a Hugging Face checkpoint is a directory with config.json, the weights and the tokenizer", dir)
	}
	side := func(name string, required string) ([]byte, error) {
		data, ok, err := readSide(dir, name)
		if err != nil {
			return nil, fmt.Errorf("llamacpp: %w", err)
		}
		if !ok && required != "" {
			return nil, fmt.Errorf("llamacpp: %s: missing: %s", filepath.Join(dir, name), required)
		}
		return data, nil
	}
	cfgData, err := side(checkpoint.ConfigFileName, "it gives the architecture and the hyperparameters")
	if err != nil {
		return nil, err
	}
	h, err := ParseConfig(filepath.Join(dir, checkpoint.ConfigFileName), cfgData)
	if err != nil {
		return nil, fmt.Errorf("llamacpp: %w", err)
	}
	tokData, err := side(TokenizerFile, "the tokenizer goes into the GGUF file, and this converter reads it from tokenizer.json")
	if err != nil {
		return nil, err
	}
	tcData, err := side(TokenizerConfigFile, "")
	if err != nil {
		return nil, err
	}
	v, err := ParseVocab(tokData, tcData, h)
	if err != nil {
		// ParseVocab's errors start with the file's name.
		return nil, fmt.Errorf("llamacpp: %s%c%w", dir, filepath.Separator, err)
	}
	if v.ChatTemplate == "" {
		tmpl, err := side(ChatTemplateFile, "")
		if err != nil {
			return nil, err
		}
		v.ChatTemplate = string(tmpl)
	}
	genData, err := side("generation_config.json", "")
	if err != nil {
		return nil, err
	}
	var gen jsonObject
	if genData != nil {
		if gen, err = parseObject(filepath.Join(dir, "generation_config.json"), genData); err != nil {
			return nil, fmt.Errorf("llamacpp: %w", err)
		}
	}

	ck, err := checkpoint.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("llamacpp: %w", err)
	}
	c := &Conversion{Input: dir, Hyper: h, Vocab: v, fromHF: true, ck: ck}
	if err := c.planTensors(); err != nil {
		where := dir
		if files := ck.Files(); len(files) == 1 {
			where = filepath.Join(dir, files[0])
		}
		ck.Close()
		return nil, fmt.Errorf("llamacpp: %s: %w", where, err)
	}
	c.meta = hfMetadata(h, v, gen, modelName(opts.Name, h, dir))
	return c, nil
}

// modelName is general.name.
func modelName(name string, h *Hyper, dir string) string {
	if name != "" {
		return name
	}
	if n := h.NameOrPath; n != "" && strings.Count(n, "/") <= 1 && !strings.HasPrefix(n, ".") && !filepath.IsAbs(n) {
		return n
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	return filepath.Base(abs)
}

// expected is one tensor a llama checkpoint must (or may) have.
type expected struct {
	shape    []int // Hugging Face shape, outermost first
	heads    int   // QKHeads
	optional bool  // lm_head of a tied model
}

// expectedTensors lists the Hugging Face tensors of h, with their shapes.
func expectedTensors(h *Hyper) map[string]expected {
	e := map[string]expected{
		"model.embed_tokens.weight": {shape: []int{h.Vocab, h.Hidden}},
		"model.norm.weight":         {shape: []int{h.Hidden}},
		"lm_head.weight":            {shape: []int{h.Vocab, h.Hidden}, optional: h.Tied},
	}
	q, kv := h.Heads*h.HeadDim, h.KVHeads*h.HeadDim
	for i := range h.Layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		e[p+"input_layernorm.weight"] = expected{shape: []int{h.Hidden}}
		e[p+"post_attention_layernorm.weight"] = expected{shape: []int{h.Hidden}}
		e[p+"self_attn.q_proj.weight"] = expected{shape: []int{q, h.Hidden}, heads: h.Heads}
		e[p+"self_attn.k_proj.weight"] = expected{shape: []int{kv, h.Hidden}, heads: h.KVHeads}
		e[p+"self_attn.v_proj.weight"] = expected{shape: []int{kv, h.Hidden}}
		e[p+"self_attn.o_proj.weight"] = expected{shape: []int{h.Hidden, q}}
		e[p+"mlp.gate_proj.weight"] = expected{shape: []int{h.Intermediate, h.Hidden}}
		e[p+"mlp.up_proj.weight"] = expected{shape: []int{h.Intermediate, h.Hidden}}
		e[p+"mlp.down_proj.weight"] = expected{shape: []int{h.Hidden, h.Intermediate}}
		if h.AttnBias {
			e[p+"self_attn.q_proj.bias"] = expected{shape: []int{q}, heads: h.Heads}
			e[p+"self_attn.k_proj.bias"] = expected{shape: []int{kv}, heads: h.KVHeads}
			e[p+"self_attn.v_proj.bias"] = expected{shape: []int{kv}}
			e[p+"self_attn.o_proj.bias"] = expected{shape: []int{h.Hidden}}
		}
		if h.MLPBias {
			e[p+"mlp.gate_proj.bias"] = expected{shape: []int{h.Intermediate}}
			e[p+"mlp.up_proj.bias"] = expected{shape: []int{h.Intermediate}}
			e[p+"mlp.down_proj.bias"] = expected{shape: []int{h.Hidden}}
		}
	}
	return e
}

// ignored are tensors convert_hf_to_gguf.py drops.
func ignored(name string) bool {
	return strings.HasSuffix(name, ".attention.masked_bias") || strings.HasSuffix(name, ".attention.bias") ||
		strings.HasSuffix(name, ".rotary_emb.inv_freq")
}

// convertible are the safetensors dtypes taken (convert turns any but F16
// and F32 into F32).
var convertible = []string{"F32", "F16", "BF16", "F64"}

// list names at most a few items.
func list(items []string) string {
	const most = 8
	if len(items) > most {
		return strings.Join(items[:most], ", ") + fmt.Sprintf(" and %d more", len(items)-most)
	}
	return strings.Join(items, ", ")
}

func (c *Conversion) planTensors() error {
	h := c.Hyper
	want := expectedTensors(h)
	infos := c.ck.Tensors()
	shard := func(name string) string { s, _ := c.ck.ShardOf(name); return s }
	// convert reads the shards in name order and each shard's tensors in
	// name order.
	slices.SortFunc(infos, func(a, b safetensors.TensorInfo) int {
		if d := strings.Compare(shard(a.Name), shard(b.Name)); d != 0 {
			return d
		}
		return strings.Compare(a.Name, b.Name)
	})
	var unexpected, badShape, badType []string
	found := map[string]bool{}
	if h.Rope.Type == "llama3" {
		c.Tensors = append(c.Tensors, Tensor{Name: NameRopeFreqs + ".weight", Dims: []int{h.HeadDim / 2}, SourceType: "F32",
			KeepF32: true, values: Llama3RopeFactors(h)})
	}
	for _, ti := range infos {
		if ignored(ti.Name) {
			continue
		}
		e, ok := want[ti.Name]
		if !ok {
			unexpected = append(unexpected, ti.Name)
			continue
		}
		found[ti.Name] = true
		if !slices.Equal(ti.Shape, e.shape) {
			badShape = append(badShape, fmt.Sprintf("%s is %v, not %v", ti.Name, ti.Shape, e.shape))
			continue
		}
		if !slices.Contains(convertible, ti.DType) {
			badType = append(badType, ti.Name+" is "+ti.DType)
			continue
		}
		name, _, _ := GGUFName(ti.Name)
		dims := slices.Clone(ti.Shape)
		slices.Reverse(dims)
		c.Tensors = append(c.Tensors, Tensor{Name: name, Source: ti.Name, Dims: dims, SourceType: ti.DType,
			KeepF32: KeepF32(name, len(dims)), QKHeads: e.heads})
	}
	var missing []string
	for name, e := range want {
		if !found[name] && !e.optional {
			missing = append(missing, name)
		}
	}
	slices.SortFunc(missing, compareNatural)
	var errs []string
	if len(missing) > 0 {
		what := "tensors missing: "
		if slices.Contains(missing, "lm_head.weight") {
			what = "tensors missing (lm_head.weight is needed as tie_word_embeddings is false): "
		}
		errs = append(errs, what+list(missing))
	}
	if len(unexpected) > 0 {
		errs = append(errs, fmt.Sprintf("tensors a %s of this config.json does not have: %s", h.Architecture, list(unexpected)))
	}
	if len(badShape) > 0 {
		errs = append(errs, "tensors of the wrong shape for config.json: "+list(badShape))
	}
	if len(badType) > 0 {
		errs = append(errs, "tensors of a type this converter does not take (F32, F16, BF16, F64): "+list(badType))
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	c.index()
	return nil
}

func (c *Conversion) index() {
	c.tensors = make(map[string]int, len(c.Tensors))
	for i, t := range c.Tensors {
		c.tensors[t.Name] = i
	}
}

// compareNatural orders names with their numbers compared as numbers, so
// that layer 2 comes before layer 10 in messages.
func compareNatural(a, b string) int {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if d := len(na) - len(nb); d != 0 {
				return d
			}
			if d := strings.Compare(na, nb); d != 0 {
				return d
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func digits(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// hfMetadata is the metadata convert_hf_to_gguf.py writes for a llama
// model, in its order, with placeholders for the file type and the
// quantization version.
func hfMetadata(h *Hyper, v *Vocab, gen jsonObject, name string) []gguf.KV {
	a := Architecture + "."
	kv := []gguf.KV{
		{Key: gguf.KeyArchitecture, Value: Architecture},
		{Key: "general.type", Value: "model"},
	}
	// Sampling defaults from generation_config.json (gguf-py's Metadata).
	if gen != nil {
		var k int
		if ok, err := gen.decode("top_k", &k); ok && err == nil {
			kv = append(kv, gguf.KV{Key: "general.sampling.top_k", Value: int32(k)})
		}
		for _, f := range []struct{ json, key string }{
			{"top_p", "general.sampling.top_p"},
			{"min_p", "general.sampling.min_p"},
			{"temperature", "general.sampling.temp"},
			{"repetition_penalty", "general.sampling.penalty_repeat"},
		} {
			var x float64
			if ok, err := gen.decode(f.json, &x); ok && err == nil {
				kv = append(kv, gguf.KV{Key: f.key, Value: float32(x)})
			}
		}
	}
	kv = append(kv,
		gguf.KV{Key: "general.name", Value: name},
		gguf.KV{Key: a + "block_count", Value: uint32(h.Layers)},
		gguf.KV{Key: a + "context_length", Value: uint32(h.Context)},
		gguf.KV{Key: a + "embedding_length", Value: uint32(h.Hidden)},
		gguf.KV{Key: a + "feed_forward_length", Value: uint32(h.Intermediate)},
		gguf.KV{Key: a + "attention.head_count", Value: uint32(h.Heads)},
		gguf.KV{Key: a + "attention.head_count_kv", Value: uint32(h.KVHeads)},
	)
	switch r := h.Rope; r.Type {
	case "linear":
		kv = append(kv,
			gguf.KV{Key: a + "rope.scaling.type", Value: "linear"},
			gguf.KV{Key: a + "rope.scaling.factor", Value: float32(r.Factor)})
	case "yarn":
		kv = append(kv,
			gguf.KV{Key: a + "rope.scaling.type", Value: "yarn"},
			gguf.KV{Key: a + "rope.scaling.factor", Value: float32(r.Factor)},
			gguf.KV{Key: a + "rope.scaling.original_context_length", Value: uint32(r.OrigContext)})
		for _, f := range []struct {
			key string
			v   float64
		}{{"rope.scaling.yarn_ext_factor", r.YarnExtFactor}, {"rope.scaling.yarn_attn_factor", r.YarnAttnFactor},
			{"rope.scaling.yarn_beta_fast", r.YarnBetaFast}, {"rope.scaling.yarn_beta_slow", r.YarnBetaSlow}} {
			if f.v == f.v { // not NaN: given
				kv = append(kv, gguf.KV{Key: a + f.key, Value: float32(f.v)})
			}
		}
	}
	kv = append(kv,
		gguf.KV{Key: a + "rope.freq_base", Value: float32(h.RopeTheta)},
		gguf.KV{Key: a + "attention.layer_norm_rms_epsilon", Value: float32(h.RMSNormEps)},
	)
	if h.HasHeadDim {
		kv = append(kv,
			gguf.KV{Key: a + "attention.key_length", Value: uint32(h.HeadDim)},
			gguf.KV{Key: a + "attention.value_length", Value: uint32(h.HeadDim)})
	}
	kv = append(kv,
		gguf.KV{Key: KeyFileType},
		gguf.KV{Key: a + "vocab_size", Value: uint32(h.Vocab)},
		gguf.KV{Key: a + "rope.dimension_count", Value: uint32(h.HeadDim)},
		gguf.KV{Key: KeyQuantizationVersion},
	)
	return append(kv, v.KVs()...)
}

// FromGGUF describes a GGUF file (F32, F16 or BF16, as convert_hf_to_gguf.py
// writes them) in the same terms as Plan: its metadata and tokenizer as
// they are, its tensors as they are, in file order, no transform. It
// refuses a file without general.architecture.
func FromGGUF(path string) (*Conversion, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("llamacpp: %w", err)
	}
	if _, ok := f.String(gguf.KeyArchitecture); !ok {
		f.Close()
		return nil, fmt.Errorf("llamacpp: %s: no %s: not a model llama.cpp can load", path, gguf.KeyArchitecture)
	}
	c := &Conversion{Input: path, gf: f, meta: f.Metadata()}
	for _, ti := range f.Tensors() {
		c.Tensors = append(c.Tensors, Tensor{Name: ti.Name, Source: ti.Name, Dims: slices.Clone(ti.Dims),
			SourceType: ti.Type.String(), KeepF32: KeepF32(ti.Name, len(ti.Dims))})
	}
	c.index()
	return c, nil
}
