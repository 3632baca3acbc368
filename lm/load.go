package lm

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"unsafe"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/internal/mmap"
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/ctensors"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/llamacpp"
	"github.com/quantkit/quantkit/quant"
)

// LoadHF reads a Hugging Face LlamaForCausalLM, MistralForCausalLM or
// Qwen2ForCausalLM checkpoint (a folder of safetensors in F32, F16 or BF16
// with its config.json, or the path checkpoint.Open takes) and uploads it
// to b. Qwen2's q, k and v biases are read; Mistral's and Qwen2's
// sliding windows are applied per layer as transformers applies them
// (Config.SlidingWindow). rope_scaling "llama3" (Llama 3.1 and later) is
// applied as per-frequency factors (Config.RopeFactors); linear, dynamic
// and yarn as Config.Rope; longrope is refused.
//
// It also reads what `quantkit quantize` writes: compressed-tensors
// checkpoints (int-quantized and pack-quantized) and quantkit's raw
// safetensors format. Their quantized matrices stay quantized in memory
// (PackedWeight rows; those in a layout without one, per-channel along
// axis 1, are dequantized), and so do F16/BF16 matrices in 16 bits, so the
// model computes what the float model computes on the dequantized weights
// with a fraction of its memory. LoadHFWith takes LoadOptions to widen
// everything to float32 or to run int8 per-channel projections as W8A8.
//
// A compressed-tensors checkpoint whose quantization_config declares
// dynamic per-token int8 input activations (llm-compressor's W8A8, what
// `quantkit quantize --method smoothquant` and --w8a8 write) runs as W8A8
// without being asked, as vLLM runs it: its int8 per-channel projections
// load as with LoadOptions.Int8 (unless LoadOptions.Float32).
func LoadHF(b backend.Backend, path string) (*Model, error) {
	return LoadHFWith(b, path, LoadOptions{})
}

// ReadHFConfig reads the config.json of the Hugging Face checkpoint in dir
// as LoadHF does (the architectures and options it accepts; a
// quantization_config aside), without reading any weight. context is
// max_position_embeddings.
func ReadHFConfig(dir string) (c Config, context int, err error) {
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return Config{}, 0, fmt.Errorf("lm: %s: no config.json: %w", dir, err)
	}
	c, h, err := parseHFConfig(dir, raw)
	if err != nil {
		return Config{}, 0, err
	}
	return c, h.Context, nil
}

// parseHFConfig turns the config.json raw of the checkpoint in dir into a
// Config, refusing what LoadHF cannot run.
func parseHFConfig(dir string, raw json.RawMessage) (Config, *llamacpp.Hyper, error) {
	if raw == nil {
		return Config{}, nil, fmt.Errorf("lm: %s: no config.json", dir)
	}
	if _, quant, err := ctensors.ReadConfig(raw); err == nil && quant {
		// The quantization_config says how the weights are stored, which
		// quantizedWeights reads; the hyperparameters are the rest.
		var err error
		if raw, err = ctensors.UpdateConfig(raw, nil); err != nil {
			return Config{}, nil, fmt.Errorf("lm: %s: %w", dir, err)
		}
	}
	h, err := llamacpp.ParseConfigWith("config.json", raw, llamacpp.ParseOptions{Qwen2: true, Dynamic: true})
	if err != nil {
		return Config{}, nil, fmt.Errorf("lm: %s: %w", dir, err)
	}
	factors, rope, err := ropeFromHyper(h)
	if err != nil {
		return Config{}, nil, fmt.Errorf("lm: %s: %w", dir, err)
	}
	if h.MLPBias {
		return Config{}, nil, fmt.Errorf("lm: %s: mlp_bias is not supported yet", dir)
	}
	return Config{
		Hidden: h.Hidden, Intermediate: h.Intermediate, Layers: h.Layers,
		Heads: h.Heads, KVHeads: h.KVHeads, HeadDim: h.HeadDim, Vocab: h.Vocab,
		RMSNormEps: h.RMSNormEps, RopeTheta: h.RopeTheta, BOS: h.BOS, EOS: h.EOS,
		RopeFactors: factors,
		Rope:        rope, SlidingWindow: h.SlidingWindow, WindowLayers: h.WindowLayers,
	}, h, nil
}

// declaresW8A8 reports whether config.json's quantization_config quantizes
// the inputs of the Linears to int8 per token at run time (W8A8).
func declaresW8A8(config []byte) bool {
	cc, ok, err := ctensors.ReadConfig(config)
	return err == nil && ok && cc.InputActivations.IsDynamicTokenInt8()
}

// LoadHFWith is LoadHF with options (LoadOptions): by default the
// quantized projections stay quantized in memory (PackedWeight rows of
// codes and scales, multiplied by backend.GemmPacked), and F16/BF16 ones
// stay 16-bit; Int8 runs int8 per-channel projections as W8A8; Float32
// converts everything to float32 at load.
func LoadHFWith(b backend.Backend, path string, opt LoadOptions) (m *Model, err error) {
	ck, err := checkpoint.Open(path)
	if err != nil {
		return nil, err
	}
	// The model may keep 16-bit weights in the checkpoint's mapping: then
	// it closes the checkpoint itself. The weights it keeps otherwise go
	// into arena (arena.go), which it frees on Close.
	mapped := false
	arena := new(mmap.Arena)
	defer func() {
		if !mapped || err != nil {
			ck.Close()
		}
		if err != nil {
			arena.Free()
		}
	}()
	c, h, err := parseHFConfig(ck.Dir(), ck.Config())
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil { // before any weight is read
		return nil, fmt.Errorf("%w (%s)", err, ck.Dir())
	}
	if opt.Float32 && (opt.BF16 || opt.Quantize != nil || opt.Int8) {
		return nil, fmt.Errorf("lm: %s: Float32 excludes BF16, Quantize and Int8", ck.Dir())
	}
	if !opt.Float32 && declaresW8A8(ck.Config()) {
		opt.Int8 = true
	}
	quantized, err := quantizedWeights(ck)
	if err != nil {
		return nil, fmt.Errorf("lm: %s: %w", ck.Dir(), err)
	}
	// headScheme quantizes the head where QuantizeHead asks: Quantize's
	// scheme, or int8 per channel on a checkpoint quantized already.
	headScheme := opt.Quantize
	if opt.QuantizeHead && headScheme == nil {
		if len(quantized) == 0 || opt.Float32 {
			return nil, fmt.Errorf("lm: %s: QuantizeHead without Quantize on a checkpoint with no quantized weight", ck.Dir())
		}
		s := quant.Int8PerChannel
		headScheme = &s
	}
	var names []string // sorted, for releasePrefix
	for _, t := range ck.Tensors() {
		names = append(names, t.Name)
	}
	slices.Sort(names)
	var errs []error
	// codeScratch holds a quantized weight's codes while they are
	// converted (dequantized, packed, quantized), one weight at a time.
	var codeScratch []byte
	get := func(name string) []float32 {
		read := func() ([]float32, error) { return ck.Float32(name) }
		if dec, ok := quantized[name]; ok {
			read = func() ([]float32, error) {
				codes, p, err := dec(codeScratch)
				if err != nil {
					return nil, err
				}
				codeScratch = codes
				return dequantize(codes, p)
			}
		}
		x, err := read()
		if err != nil {
			errs = append(errs, err)
		}
		if opt.BF16 && x != nil {
			// Norms and biases too, as a bfloat16 checkpoint has them.
			data := make([]byte, 2*len(x))
			err := gguf.EncodeFloat32(data, x, gguf.TypeBF16)
			if err == nil {
				err = gguf.DecodeFloat32(x, data, gguf.TypeBF16)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
		return x
	}
	// temp reads a float matrix that is converted rather than kept
	// (quantized or rounded at load) into scratch memory reused from one
	// matrix to the next, so that loading makes no float32 garbage of the
	// model's size; the slice is valid until the next call.
	var scratch []float32
	// head names the lm_head matrix when QuantizeHead quantizes it.
	head := map[string]bool{}
	// dropScratch lets the scratch go and, when it was large, returns the
	// freed memory to the system at once (the runtime would keep it
	// resident until its scavenger got to it).
	dropScratch := func() {
		big := 4*cap(scratch)+cap(codeScratch) > 64<<20
		scratch, codeScratch = nil, nil
		if big {
			debug.FreeOSMemory()
		}
	}
	temp := func(name string) []float32 {
		if _, ok := quantized[name]; ok {
			return get(name)
		}
		x, err := ck.Float32Into(name, scratch)
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		scratch = x
		return x
	}
	// matrix reads a weight matrix: packed where it is quantized in a
	// row layout or 16-bit and b multiplies by its format, as int8 codes
	// where opt.Int8 asks for W8A8 and i8 is not nil, else float32.
	matrix := func(name string, rows, cols int, f *[]float32, pk **PackedWeight, i8 **Int8Weight) {
		if info, ok := ck.Tensor(name); ok && !slices.Equal(info.Shape, []int{rows, cols}) {
			if _, q := quantized[name]; !q { // stored as codes: the decoder checks the shape
				errs = append(errs, fmt.Errorf("%s: %s has shape %v, want [%d %d]", ck.Dir(), name, info.Shape, rows, cols))
				return
			}
		}
		if _, ok := quantized[name]; ok {
			// The model holds its own copy of what it reads from the
			// mapping (codes, scales): the pages go, so that resident
			// memory is the model's, not the file's twice.
			defer releasePrefix(ck, names, name)
		}
		if dec, ok := quantized[name]; ok && !opt.Float32 {
			codes, p, err := dec(codeScratch)
			if err != nil {
				errs = append(errs, err)
				return
			}
			codeScratch = codes
			if !slices.Equal(p.Shape, []int{rows, cols}) {
				errs = append(errs, fmt.Errorf("%s: %s has shape %v, want [%d %d]", ck.Dir(), name, p.Shape, rows, cols))
				return
			}
			if opt.Int8 && i8 != nil {
				if w := asInt8(arena, codes, p); w != nil {
					*i8 = w
					return
				}
			}
			if rf, rows, err := quant.PackRows(codes, p); err == nil && backend.Packs(b, rf) {
				*pk = &PackedWeight{Format: rf, Data: keepBytes(arena, rows)}
				return
			}
			if *f, err = dequantize(codes, p); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
			*f = keepF32(arena, *f)
			return
		}
		scheme := opt.Quantize // of a float projection
		if head[name] {
			scheme = headScheme
		} else if i8 == nil {
			scheme = nil
		}
		if scheme != nil {
			if _, q := quantized[name]; !q && rowWise(*scheme) {
				if err := quantizeRows(b, arena, ck, name, rows, cols, *scheme, opt.Int8 && i8 != nil, &scratch, &codeScratch, f, pk, i8); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", ck.Dir(), err))
				}
				return
			}
			x := temp(name)
			if x == nil {
				return
			}
			if err := quantizeInto(b, arena, name, x, rows, cols, *scheme, opt.Int8 && i8 != nil, &codeScratch, f, pk, i8); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", ck.Dir(), err))
			}
			return
		}
		if opt.BF16 && backend.Packs(b, gguf.TypeBF16) {
			if _, q := quantized[name]; !q {
				// A block of rows at a time, as quantizeRows reads.
				data := arenaBytes(arena, 2*rows*cols)
				block := max(1, quantizeRowsBlock/cols) * cols
				for lo := 0; lo < rows*cols; lo += block {
					hi := min(rows*cols, lo+block)
					if cap(scratch) < hi-lo {
						scratch = make([]float32, hi-lo)
					}
					x := scratch[:hi-lo]
					err := ck.Float32RangeInto(name, lo, hi, x)
					if err == nil {
						err = gguf.EncodeFloat32(data[2*lo:2*hi], x, gguf.TypeBF16)
					}
					if err != nil {
						errs = append(errs, fmt.Errorf("%s: %s: %w", ck.Dir(), name, err))
						return
					}
				}
				*pk = &PackedWeight{Format: gguf.TypeBF16, Data: data}
				return
			}
			if x := temp(name); x != nil {
				data := arenaBytes(arena, 2*len(x))
				if err := gguf.EncodeFloat32(data, x, gguf.TypeBF16); err != nil {
					errs = append(errs, fmt.Errorf("%s: %s: %w", ck.Dir(), name, err))
				}
				*pk = &PackedWeight{Format: gguf.TypeBF16, Data: data}
			}
			return
		}
		if info, ok := ck.Tensor(name); ok && !opt.Float32 {
			if t, ok := map[string]gguf.Type{"F16": gguf.TypeF16, "BF16": gguf.TypeBF16}[info.DType]; ok && backend.Packs(b, t) {
				data, err := ck.Bytes(name)
				if err != nil {
					errs = append(errs, err)
					return
				}
				*pk, mapped = &PackedWeight{Format: t, Data: data}, true
				return
			}
		}
		if info, ok := ck.Tensor(name); ok && info.DType == "F32" && !opt.BF16 && quantized[name] == nil {
			x, err := ck.Float32Into(name, arenaF32(arena, rows*cols)) // no heap copy on the way
			if err != nil {
				errs = append(errs, err)
			}
			*f = x
			return
		}
		*f = keepF32(arena, get(name))
	}
	H, qd, kvd, ff := c.Hidden, c.QDim(), c.KVDim(), c.Intermediate
	if opt.QuantizeHead {
		// The matrix the head multiplies by: the embedding when tied.
		head["lm_head.weight"], head["model.embed_tokens.weight"] = !h.Tied, h.Tied
	}
	w := &Weights{Norm: get("model.norm.weight")}
	// The head first: when it is converted (quantized, rounded) it is the
	// largest matrix through the scratch, which is then given back to the
	// system before the rest is read, so that it does not stand on top of
	// the whole model's weights at the peak.
	if !h.Tied {
		matrix("lm_head.weight", c.Vocab, H, &w.LMHead, &w.LMHeadPacked, nil)
		dropScratch()
	}
	matrix("model.embed_tokens.weight", c.Vocab, H, &w.Embed, &w.EmbedPacked, nil)
	dropScratch()
	for i := range h.Layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		l := Layer{
			AttnNorm: get(p + "input_layernorm.weight"),
			MLPNorm:  get(p + "post_attention_layernorm.weight"),
		}
		i8, pk := &Int8Layer{}, &PackedLayer{}
		matrix(p+"self_attn.q_proj.weight", qd, H, &l.Q, &pk.Q, &i8.Q)
		matrix(p+"self_attn.k_proj.weight", kvd, H, &l.K, &pk.K, &i8.K)
		matrix(p+"self_attn.v_proj.weight", kvd, H, &l.V, &pk.V, &i8.V)
		matrix(p+"self_attn.o_proj.weight", H, qd, &l.O, &pk.O, &i8.O)
		matrix(p+"mlp.gate_proj.weight", ff, H, &l.Gate, &pk.Gate, &i8.Gate)
		matrix(p+"mlp.up_proj.weight", ff, H, &l.Up, &pk.Up, &i8.Up)
		matrix(p+"mlp.down_proj.weight", H, ff, &l.Down, &pk.Down, &i8.Down)
		if *i8 != (Int8Layer{}) {
			l.Int8 = i8
		}
		if *pk != (PackedLayer{}) {
			l.Packed = pk
		}
		if h.AttnBias || h.QKVBias {
			l.QBias, l.KBias = get(p+"self_attn.q_proj.bias"), get(p+"self_attn.k_proj.bias")
			l.VBias = get(p + "self_attn.v_proj.bias")
		}
		if h.AttnBias {
			l.OBias = get(p + "self_attn.o_proj.bias")
		}
		w.Layers = append(w.Layers, l)
	}
	dropScratch()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("lm: %w", err)
	}
	// The backend's row order where it has one: the packed projections
	// are the arena's (or the heap's) here, never the checkpoint's mapping.
	if err := repackProjections(b, c, w); err != nil {
		return nil, err
	}
	m, err = New(b, c, w)
	if err == nil {
		m.closers = append(m.closers, arena.Free)
		if mapped {
			m.closers = append(m.closers, ck.Close)
		}
	}
	return m, err
}

// quantizeInto quantizes the float weight x [rows, cols] with s, by
// round-to-nearest with min-max scales (quant.FitMinMax), into *i8 when
// int8 asks for W8A8 and s is int8 symmetric per channel, else into *pk
// (packed rows; *f, dequantized, where the layout has no rows or b does
// not multiply by them). The codes go through *codeScratch, reused.
func quantizeInto(b backend.Backend, arena *mmap.Arena, name string, x []float32, rows, cols int, s quant.Scheme, int8 bool,
	codeScratch *[]byte, f *[]float32, pk **PackedWeight, i8 **Int8Weight) error {
	p, err := quant.FitMinMax(s, x, []int{rows, cols})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if n := s.PackedLen(len(x)); cap(*codeScratch) < n {
		*codeScratch = make([]byte, n)
	}
	codes := (*codeScratch)[:s.PackedLen(len(x))]
	if err := quant.Quantize(codes, x, p); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if int8 {
		if w := asInt8(arena, codes, p); w != nil {
			*i8 = w
			return nil
		}
	}
	if rf, data, err := quant.PackRows(codes, p); err == nil && backend.Packs(b, rf) {
		if arena != nil {
			data = keepBytes(arena, data)
		}
		*pk = &PackedWeight{Format: rf, Data: data}
		return nil
	}
	if *f, err = dequantize(codes, p); err == nil && arena != nil {
		*f = keepF32(arena, *f)
	}
	return err
}

// rowWise reports whether s gives each row of a [rows, cols] weight
// scales of its own (per channel on axis 0, or per group), so that the
// weight can be quantized a block of rows at a time with the same result.
func rowWise(s quant.Scheme) bool {
	return s.Granularity == quant.PerGroup || s.Granularity == quant.PerChannel && s.Axis == 0
}

// quantizeRowsBlock is the float32s a block of rows holds at most (16 MB;
// a variable for the tests).
var quantizeRowsBlock = 4 << 20

// quantizeRows is quantizeInto for a row-wise scheme (rowWise), reading
// the float weight name [rows, cols] from ck a block of rows at a time
// into *scratch (checkpoint.Float32RangeInto, which lets the block's pages
// go), so that only one block of float32 is in memory whatever the
// matrix's size (the lm_head of a large vocabulary is gigabytes). The
// result is what quantizeInto gives for the whole matrix, byte for byte:
// each row's scales depend on that row alone. The output goes straight
// into arena.
func quantizeRows(b backend.Backend, arena *mmap.Arena, ck *checkpoint.Checkpoint, name string, rows, cols int, s quant.Scheme,
	int8 bool, scratch *[]float32, codeScratch *[]byte, f *[]float32, pk **PackedWeight, i8 **Int8Weight) error {
	block := max(1, quantizeRowsBlock/cols)
	var (
		out    *Int8Weight     // int8
		format quant.RowFormat // packed rows
		data   []byte
		fl     []float32 // neither: dequantized
	)
	for r0 := 0; r0 < rows; r0 += block {
		r1 := min(rows, r0+block)
		n := (r1 - r0) * cols
		if cap(*scratch) < n {
			*scratch = make([]float32, n)
		}
		x := (*scratch)[:n]
		if err := ck.Float32RangeInto(name, r0*cols, r1*cols, x); err != nil {
			return err
		}
		var bf []float32
		var bpk *PackedWeight
		var bi8 *Int8Weight
		if err := quantizeInto(b, nil, name, x, r1-r0, cols, s, int8, codeScratch, &bf, &bpk, &bi8); err != nil {
			return err
		}
		switch {
		case bi8 != nil:
			if r0 == 0 {
				out = &Int8Weight{Codes: int8View(arenaBytes(arena, rows*cols)), Scales: make([]float32, 0, rows)}
			}
			if out == nil {
				return fmt.Errorf("%s: rows %d to %d quantized otherwise than the first", name, r0, r1)
			}
			copy(out.Codes[r0*cols:], bi8.Codes)
			out.Scales = append(out.Scales, bi8.Scales...)
		case bpk != nil:
			rf, ok := bpk.Format.(quant.RowFormat)
			if r0 == 0 && ok {
				format, data = rf, arenaBytes(arena, rows*len(bpk.Data)/(r1-r0))
			}
			if data == nil || rf != format {
				return fmt.Errorf("%s: rows %d to %d packed as %v, the first as %v", name, r0, r1, bpk.Format, format)
			}
			copy(data[r0*(len(data)/rows):], bpk.Data)
		default:
			if r0 == 0 {
				fl = arenaF32(arena, rows*cols)
			}
			if fl == nil {
				return fmt.Errorf("%s: rows %d to %d quantized otherwise than the first", name, r0, r1)
			}
			copy(fl[r0*cols:], bf)
		}
	}
	switch {
	case out != nil:
		*i8 = out
	case data != nil:
		*pk = &PackedWeight{Format: format, Data: data}
	default:
		*f = fl
	}
	return nil
}

// int8View is b as int8s.
func int8View(b []byte) []int8 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*int8)(unsafe.Pointer(&b[0])), len(b))
}

// releasePrefix releases the pages of every tensor of ck whose name
// begins with name: a quantized weight's codes, scales and zero points
// (name.weight_packed, name.weight_scale, ...). names are ck's tensor
// names, sorted, where those of one weight stand together.
func releasePrefix(ck *checkpoint.Checkpoint, names []string, name string) {
	for i, _ := slices.BinarySearch(names, name); i < len(names) && strings.HasPrefix(names[i], name); i++ {
		ck.Release(names[i])
	}
}

// LoadGGUF reads a llama.cpp GGUF file of architecture llama (Llama and
// Mistral) or qwen2 whose tensors gguf.DecodeFloat32 converts (F32, F16,
// BF16, Q8_0, Q4_0, K-quants, …) and puts it on b: the matrices in their
// own block type (PackedWeight with gguf.Type as the format, used in place
// in the file's mapping, which the model keeps until Close), the rest in
// float32. For llama, the q and k rows (and biases), which llama.cpp keeps
// in the interleaved RoPE layout, are put back in Hugging Face's order
// (llamacpp.UnpermuteQK; whole encoded rows for packed ones, which makes
// them the only copies); qwen2 (llama.cpp's NEOX rope type) keeps Hugging
// Face's order already. The q, k, v and o biases are read where present
// (Qwen2's q, k and v). A rope_freqs.weight tensor (Llama 3's "llama3"
// RoPE scaling) becomes Config.RopeFactors; rope.scaling.type linear and
// yarn become Config.Rope (ggufRope).
func LoadGGUF(b backend.Backend, path string) (*Model, error) {
	return LoadGGUFWith(b, path, LoadOptions{})
}

// LoadGGUFWith is LoadGGUF with options: Float32 dequantizes every tensor
// to float32 at load (Int8, BF16 and Quantize are refused: they apply to
// Hugging Face checkpoints).
func LoadGGUFWith(b backend.Backend, path string, opt LoadOptions) (m *Model, err error) {
	if opt.Int8 || opt.BF16 || opt.Quantize != nil {
		return nil, fmt.Errorf("lm: %s: a GGUF file runs in its own types: Int8, BF16 and Quantize apply to Hugging Face checkpoints", path)
	}
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	mapped := false
	arena := new(mmap.Arena) // the copies the model keeps (arena.go)
	defer func() {
		if !mapped || err != nil {
			f.Close()
		}
		if err != nil {
			arena.Free()
		}
	}()
	arch, _ := f.String("general.architecture")
	if arch != "llama" && arch != "qwen2" {
		return nil, fmt.Errorf("lm: %s: architecture %q, want llama or qwen2", path, arch)
	}
	md := f.Metadata()
	num := func(key string, def int) int {
		if v, ok := f.Int(arch + "." + key); ok {
			return int(v)
		}
		return def
	}
	flt := func(key string, def float64) float64 {
		if v, ok := md.Float32(arch + "." + key); ok {
			return float64(v)
		}
		return def
	}
	emb, ok := f.Tensor("token_embd.weight")
	if !ok || len(emb.Dims) != 2 {
		return nil, fmt.Errorf("lm: %s: no 2-D token_embd.weight", path)
	}
	c := Config{
		Hidden: num("embedding_length", 0), Intermediate: num("feed_forward_length", 0),
		Layers: num("block_count", 0), Heads: num("attention.head_count", 0),
		Vocab:      emb.Dims[1],
		RMSNormEps: flt("attention.layer_norm_rms_epsilon", 1e-5),
		RopeTheta:  flt("rope.freq_base", 10000),
		BOS:        -1, EOS: -1,
	}
	c.KVHeads = num("attention.head_count_kv", c.Heads)
	if c.Heads > 0 {
		c.HeadDim = num("attention.key_length", c.Hidden/c.Heads)
	}
	if v, ok := f.Int("tokenizer.ggml.bos_token_id"); ok {
		c.BOS = int(v)
	}
	if v, ok := f.Int("tokenizer.ggml.eos_token_id"); ok {
		c.EOS = int(v)
	}
	if rd := num("rope.dimension_count", c.HeadDim); rd != c.HeadDim {
		return nil, fmt.Errorf("lm: %s: partial RoPE (%d of %d) is not supported", path, rd, c.HeadDim)
	}
	if c.Rope, err = ggufRope(f, arch, path, num("context_length", 0)); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	var errs []error
	// copied names the tensors the model holds copies of, whose mapped
	// pages are released once read, and once more before the model is
	// made: the page cache may keep a file in large folios, and a fault
	// in the next tensor maps the whole folio again, pages of the last
	// one included.
	var copied []string
	release := func(name string) {
		f.Release(name)
		copied = append(copied, name)
	}
	get := func(name string) []float32 {
		info, ok := f.Tensor(name)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: no tensor %s", path, name))
			return nil
		}
		src, err := f.Bytes(name)
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		dst := arenaF32(arena, int(info.Len()))
		if err := gguf.DecodeFloat32(dst, src, info.Type); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", path, name, err))
		}
		// The model holds the float32 copy: the mapped pages go, so the
		// tensor is not resident twice.
		release(name)
		return dst
	}
	// llama keeps q and k rows in the interleaved RoPE layout.
	permuted := arch == "llama"
	// matrix reads the weight name [rows, cols] into *pk, in its own
	// block type, unless it is F32 or opt.Float32 asks for float32 (or b
	// does not multiply by the type): then into *x. heads > 0 marks q and
	// k, whose rows go back to Hugging Face's order in a llama file.
	matrix := func(name string, rows, cols, heads int, x *[]float32, pk **PackedWeight) {
		info, ok := f.Tensor(name)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: no tensor %s", path, name))
			return
		}
		if len(info.Dims) != 2 || info.Dims[0] != cols || info.Dims[1] != rows {
			errs = append(errs, fmt.Errorf("%s: %s has dims %v, want [%d %d] (ggml order)", path, name, info.Dims, cols, rows))
			return
		}
		if !permuted {
			heads = 0
		}
		if heads > 0 {
			if err := llamacpp.CheckQK(rows, heads); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s: %v", path, name, err))
				return
			}
		}
		if info.Type == gguf.TypeF32 || opt.Float32 || !info.Type.CanDecode() || !backend.Packs(b, info.Type) {
			*x = get(name)
			if heads > 0 && *x != nil {
				// In place through a transient copy: *x is the arena's.
				llamacpp.UnpermuteQK(*x, slices.Clone(*x), rows, heads)
			}
			return
		}
		data, err := f.Bytes(name)
		if err != nil {
			errs = append(errs, err)
			return
		}
		// The backend's row order, where it has one for the projections
		// (not the embedding table, decoded row by row): in a copy that
		// replaces the mapped pages, as the q and k rows' reordering.
		repack := name != "token_embd.weight" && repacks(b, info.Type, rows, cols)
		var rerr error
		switch {
		case heads > 0:
			dst := arenaBytes(arena, len(data))
			llamacpp.UnpermuteQKBytes(dst, data, rows, heads)
			data = dst
			release(name) // the reordered copy is the model's
			if repack {
				rerr = b.(packedRepacker).RepackPacked(data, data, info.Type, rows, cols)
			}
		case repack:
			dst := arenaBytes(arena, len(data))
			rerr = b.(packedRepacker).RepackPacked(dst, data, info.Type, rows, cols)
			data = dst
			release(name)
		default:
			mapped = true
		}
		if rerr != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", path, name, rerr))
			return
		}
		*pk = &PackedWeight{Format: info.Type, Data: data, repacked: repack}
	}
	// bias reads an optional bias of rows values (q and k ones
	// unpermuted as their rows are).
	bias := func(name string, rows, heads int) []float32 {
		if _, ok := f.Tensor(name); !ok {
			return nil
		}
		x := get(name)
		if x == nil || !permuted || heads == 0 {
			return x
		}
		if err := llamacpp.CheckQK(rows, heads); err != nil || len(x) != rows {
			errs = append(errs, fmt.Errorf("%s: %s of %d values in %d heads: %v", path, name, len(x), heads, err))
			return x
		}
		dst := make([]float32, len(x))
		llamacpp.UnpermuteQK(dst, x, rows, heads)
		return dst
	}
	if _, ok := f.Tensor("blk.0.attn_qkv.weight"); ok {
		return nil, fmt.Errorf("lm: %s: fused blk.N.attn_qkv tensors are not supported (separate attn_q, attn_k and attn_v are)", path)
	}
	if _, ok := f.Tensor("output.bias"); ok {
		return nil, fmt.Errorf("lm: %s: output.bias (an lm_head bias) is not supported", path)
	}
	H, qd, kvd, ff := c.Hidden, c.QDim(), c.KVDim(), c.Intermediate
	w := &Weights{Norm: get("output_norm.weight")}
	matrix("token_embd.weight", c.Vocab, H, 0, &w.Embed, &w.EmbedPacked)
	if _, ok := f.Tensor("output.weight"); ok {
		matrix("output.weight", c.Vocab, H, 0, &w.LMHead, &w.LMHeadPacked)
	}
	if _, ok := f.Tensor(llamacpp.NameRopeFreqs + ".weight"); ok {
		c.RopeFactors = get(llamacpp.NameRopeFreqs + ".weight")
	}
	for i := range c.Layers {
		p := fmt.Sprintf("blk.%d.", i)
		l := Layer{
			AttnNorm: get(p + "attn_norm.weight"), MLPNorm: get(p + "ffn_norm.weight"),
			QBias: bias(p+"attn_q.bias", qd, c.Heads), KBias: bias(p+"attn_k.bias", kvd, c.KVHeads),
			VBias: bias(p+"attn_v.bias", kvd, 0), OBias: bias(p+"attn_output.bias", H, 0),
		}
		pk := &PackedLayer{}
		matrix(p+"attn_q.weight", qd, H, c.Heads, &l.Q, &pk.Q)
		matrix(p+"attn_k.weight", kvd, H, c.KVHeads, &l.K, &pk.K)
		matrix(p+"attn_v.weight", kvd, H, 0, &l.V, &pk.V)
		matrix(p+"attn_output.weight", H, qd, 0, &l.O, &pk.O)
		matrix(p+"ffn_gate.weight", ff, H, 0, &l.Gate, &pk.Gate)
		matrix(p+"ffn_up.weight", ff, H, 0, &l.Up, &pk.Up)
		matrix(p+"ffn_down.weight", H, ff, 0, &l.Down, &pk.Down)
		if *pk != (PackedLayer{}) {
			l.Packed = pk
		}
		w.Layers = append(w.Layers, l)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("lm: %w", err)
	}
	for _, name := range copied {
		f.Release(name)
	}
	m, err = New(b, c, w)
	if err == nil {
		m.closers = append(m.closers, arena.Free)
		if mapped {
			m.closers = append(m.closers, f.Close)
		}
	}
	return m, err
}

// LoadLlama2C reads a llama2.c checkpoint (run.c's format: a header of 7
// int32, dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative
// for an untied classifier) and seq_len, then the float32 weights in run.c's
// order) and uploads it to b. llama2.c fixes rms_norm_eps 1e-5, rope_theta
// 10000, BOS 1 and EOS 2. Its q and k rows are in the interleaved RoPE
// layout, as llama.cpp's, and are put back in Hugging Face's order.
func LoadLlama2C(b backend.Backend, path string) (*Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("lm: %w", err)
	}
	if len(data) < 28 {
		return nil, fmt.Errorf("lm: %s: %d bytes, shorter than the llama2.c header", path, len(data))
	}
	var hd [7]int
	for i := range hd {
		hd[i] = int(int32(binary.LittleEndian.Uint32(data[4*i:])))
	}
	for i, v := range hd {
		if v < -1<<20 || v > 1<<20 {
			return nil, fmt.Errorf("lm: %s: header value %d (%d) out of range: not a llama2.c checkpoint", path, i, v)
		}
	}
	tied := hd[5] > 0
	c := Config{
		Hidden: hd[0], Intermediate: hd[1], Layers: hd[2], Heads: hd[3], KVHeads: hd[4],
		Vocab: hd[5], RMSNormEps: 1e-5, RopeTheta: 10000, BOS: 1, EOS: 2,
	}
	if !tied {
		c.Vocab = -c.Vocab
	}
	seqLen := hd[6]
	if c.Heads > 0 {
		c.HeadDim = c.Hidden / c.Heads
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	if c.HeadDim*c.Heads != c.Hidden || seqLen < 0 {
		return nil, fmt.Errorf("lm: %s: dim %d is not %d heads of a whole size, or seq_len %d", path, c.Hidden, c.Heads, seqLen)
	}
	L, H, q, kv, ff := c.Layers, c.Hidden, c.QDim(), c.KVDim(), c.Intermediate
	need := int64(c.Vocab)*int64(H) + int64(L)*int64(2*H+q*H+2*kv*H+H*q+3*ff*H) + int64(H) + int64(seqLen)*int64(c.HeadDim)
	if !tied {
		need += int64(c.Vocab) * int64(H)
	}
	if have := int64(len(data)-28) / 4; have < need {
		return nil, fmt.Errorf("lm: %s: %d floats of weights, the header asks for %d", path, have, need)
	}
	off := 28
	next := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[off+4*i:]))
		}
		off += 4 * n
		return x
	}
	perLayer := func(n int, fix func([]float32) []float32) [][]float32 {
		out := make([][]float32, L)
		for i := range out {
			out[i] = next(n)
			if fix != nil {
				out[i] = fix(out[i])
			}
		}
		return out
	}
	unpermute := func(heads int) func([]float32) []float32 {
		return func(x []float32) []float32 {
			dst := make([]float32, len(x))
			llamacpp.UnpermuteQK(dst, x, heads*c.HeadDim, heads)
			return dst
		}
	}
	w := &Weights{Embed: next(c.Vocab * H)}
	attnNorm := perLayer(H, nil)
	wq := perLayer(q*H, unpermute(c.Heads))
	wk := perLayer(kv*H, unpermute(c.KVHeads))
	wv := perLayer(kv*H, nil)
	wo := perLayer(H*q, nil)
	mlpNorm := perLayer(H, nil)
	w1 := perLayer(ff*H, nil)
	w2 := perLayer(H*ff, nil)
	w3 := perLayer(ff*H, nil)
	w.Norm = next(H)
	off += 4 * seqLen * c.HeadDim // freq_cis_real and freq_cis_imag, seq_len × head_size/2 each
	if !tied {
		w.LMHead = next(c.Vocab * H)
	}
	for i := range L {
		w.Layers = append(w.Layers, Layer{
			AttnNorm: attnNorm[i], Q: wq[i], K: wk[i], V: wv[i], O: wo[i],
			MLPNorm: mlpNorm[i], Gate: w1[i], Down: w2[i], Up: w3[i],
		})
	}
	return New(b, c, w)
}
