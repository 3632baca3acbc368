package ggufmix

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/quantkit/quantkit/model/gguf"
)

// Tensor is what Choose needs of a tensor: its GGUF name, its type in the
// input and its dimensions in ggml order (Dims[0], ne[0], is the row
// length).
type Tensor struct {
	Name string
	Type gguf.Type
	Dims []int
}

// Model is what the rules need of the model: its architecture (the value
// of general.architecture), its layer count ({arch}.block_count), its
// expert count ({arch}.expert_count, 0 for a dense model) and its
// attention head counts (for the 70B rule).
type Model struct {
	Arch    string
	Layers  int
	Experts int
	Heads   int
	HeadsKV int
	// Imatrix says that an importance matrix is given (llama-quantize's
	// has_imatrix), which changes the Q4_0 and Q5_0 mixes' ffn_down.
	Imatrix bool
}

// ModelFromMetadata reads Model from a GGUF file's metadata, as llama.cpp's
// loader does; general.architecture and {arch}.block_count are required.
func ModelFromMetadata(meta gguf.Metadata) (Model, error) {
	arch, ok := meta.String(gguf.KeyArchitecture)
	if !ok || arch == "" {
		return Model{}, fmt.Errorf("no %s (a string) in the metadata: llama-quantize's rules need the architecture", gguf.KeyArchitecture)
	}
	m := Model{Arch: arch}
	n, ok := meta.Int(arch + ".block_count")
	if !ok || n < 1 || n > 1<<20 {
		return Model{}, fmt.Errorf("no valid %s.block_count in the metadata: llama-quantize's rules need the layer count", arch)
	}
	m.Layers = int(n)
	if e, ok := meta.Int(arch + ".expert_count"); ok && e >= 0 && e <= 1<<20 {
		m.Experts = int(e)
	}
	m.Heads = firstInt(meta, arch+".attention.head_count")
	m.HeadsKV = m.Heads // llama.cpp's default where the key is missing
	if _, ok := meta.Value(arch + ".attention.head_count_kv"); ok {
		m.HeadsKV = firstInt(meta, arch+".attention.head_count_kv")
	}
	return m, nil
}

// firstInt reads a count that may be per layer (an array): llama.cpp's
// n_head() is layer 0's.
func firstInt(meta gguf.Metadata, key string) int {
	if n, ok := meta.Int(key); ok && n >= 0 && n <= 1<<30 {
		return int(n)
	}
	v, _ := meta.Value(key)
	switch a := v.(type) {
	case []uint32:
		if len(a) > 0 {
			return int(a[0])
		}
	case []int32:
		if len(a) > 0 && a[0] >= 0 {
			return int(a[0])
		}
	}
	return 0
}

// is70B is llama.cpp's model.type == LLM_TYPE_70B, as the loaders of the
// architectures that set it decide it.
func (m Model) is70B() bool {
	switch m.Arch {
	case "llama":
		return m.Experts != 8 && m.Layers == 80 && m.Heads != m.HeadsKV
	case "deci", "olmo", "qwen2":
		return m.Layers == 80
	case "jais2":
		return m.Layers == 68
	}
	return false
}

// gqa is llama.cpp's n_gqa(): query heads per KV head (0 without KV
// heads).
func (m Model) gqa() int {
	if m.HeadsKV == 0 {
		return 0
	}
	return m.Heads / m.HeadsKV
}

// Choice is the type one tensor gets, and why.
type Choice struct {
	// Type is the tensor's type in the output: its input type where it is
	// not quantized.
	Type gguf.Type
	// Quantized says llama-quantize quantizes the tensor (it may still
	// keep its type, as an F16 weight in the F16 mix does); false: it is
	// copied as it is.
	Quantized bool
	// Fallback says the type the rules chose did not fit the row length
	// and Type is tensor_type_fallback's.
	Fallback bool
	// Reason says in words why the tensor gets Type.
	Reason string
}

// Choose returns the type of each tensor (in the order given) when the
// model is quantized to mix, as llama-quantize chooses it; pure is its
// --pure: every quantized tensor gets the mix's base type (still falling
// back where the rows are not whole blocks). It fails on a mix it does not
// know, a model without layers, and (as llama-quantize does) an expert
// tensor whose layer cannot be read from its name.
func Choose(mix Mix, tensors []Tensor, model Model, pure bool) ([]Choice, error) {
	if !mix.Valid() {
		return nil, fmt.Errorf("unknown mix %v", mix)
	}
	if model.Layers < 1 {
		return nil, fmt.Errorf("model %q has no layers: llama-quantize's rules need the layer count", model.Arch)
	}
	s := &state{mix: mix, model: model, tied: true, nFFN: model.Layers}
	names := make([]string, len(tensors))
	for i, t := range tensors {
		names[i] = t.Name
		switch c := category(t.Name); {
		case isAttnV(c):
			s.nAttnV++
		case c == catOutput:
			s.tied = false
		}
	}
	out := make([]Choice, len(tensors))
	for _, i := range Order(names) {
		c, err := s.choose(tensors[i], pure)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", tensors[i].Name, err)
		}
		out[i] = c
	}
	return out, nil
}

// Order returns the indices of names in llama-quantize's order
// (llama_model_loader's weight_name_comparer): by the layer N of a name
// starting "blk.N.", names without one (-1) first, then by name.
func Order(names []string) []int {
	idx := make([]int, len(names))
	layers := make([]int, len(names))
	for i, n := range names {
		idx[i] = i
		layers[i] = -1
		if l, ok := blockLayer(n); ok {
			layers[i] = l
		}
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		if c := cmp.Compare(layers[a], layers[b]); c != 0 {
			return c
		}
		return strings.Compare(names[a], names[b])
	})
	return idx
}

// blockLayer is sscanf(name, "blk.%d.", &layer) == 1: "blk." then a
// decimal integer (after optional white space and sign); what follows it
// does not matter.
func blockLayer(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return 0, false
	}
	rest = strings.TrimLeft(rest, " \t\n\v\f\r")
	neg := false
	if rest != "" && (rest[0] == '+' || rest[0] == '-') {
		neg = rest[0] == '-'
		rest = rest[1:]
	}
	n, digits := 0, 0
	for digits < len(rest) && rest[digits] >= '0' && rest[digits] <= '9' {
		if n < 1<<30 {
			n = n*10 + int(rest[digits]-'0')
		}
		digits++
	}
	if digits == 0 {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

// The tensor categories of llama-quant.cpp (tensor_get_category).
type tensorCategory int

const (
	catOther tensorCategory = iota
	catTokenEmbd
	catAttnQ
	catAttnV
	catAttnK
	catAttnQKV
	catAttnKVB
	catAttnOutput
	catFFNUp
	catFFNGate
	catFFNDown
	catOutput
)

// category is tensor_get_category: exact names first, then the first
// substring that matches, in llama.cpp's order.
func category(name string) tensorCategory {
	switch name {
	case "output.weight":
		return catOutput
	case "token_embd.weight", "per_layer_token_embd.weight":
		return catTokenEmbd
	}
	for _, r := range []struct {
		sub string
		cat tensorCategory
	}{
		{"attn_qkv.weight", catAttnQKV},
		{"attn_kv_b.weight", catAttnKVB},
		{"attn_v.weight", catAttnV},
		{"attn_k.weight", catAttnK},
		{"attn_q.weight", catAttnQ},
		{"attn_output.weight", catAttnOutput},
		{"ffn_up", catFFNUp},
		{"ffn_gate", catFFNGate},
		{"ffn_down", catFFNDown},
	} {
		if strings.Contains(name, r.sub) {
			return r.cat
		}
	}
	return catOther
}

// isAttnV is category_is_attn_v: the tensors that hold V.
func isAttnV(c tensorCategory) bool { return c == catAttnV || c == catAttnQKV || c == catAttnKVB }

// nDims is ggml_n_dims: the dimensions up to the last one above 1, at
// least 1.
func nDims(dims []int) int {
	for i := len(dims) - 1; i >= 1; i-- {
		if dims[i] > 1 {
			return i + 1
		}
	}
	return 1
}

// NDims is ggml_n_dims of dims (ggml order): the number of dimensions
// ggml writes for the tensor, trailing 1s dropped, at least 1.
func NDims(dims []int) int { return nDims(dims) }

// kept lists the substrings of the names llama-quantize never quantizes
// (tensor_allows_quantization), with why.
var kept = []struct{ sub, why string }{
	{"_norm.weight", "a norm"},
	{"ffn_gate_inp.weight", "the expert router"},
	{"ffn_gate_tid2eid.weight", "a token-to-expert table"},
	{"altup", "small (altup)"},
	{"laurel", "small (laurel)"},
	{"per_layer_model_proj", "small (per_layer_model_proj)"},
	{"ssm_conv1d", "a small conv1d"},
	{"shortconv.conv.weight", "a small conv"},
	{"indexer.k_proj.weight", "a small indexer projection"},
	{"indexer.q_proj.weight", "a small indexer projection"},
	{"time_mix_first.weight", "a small RWKV weight"},
	{"time_mix_w0.weight", "a small RWKV weight"},
	{"time_mix_w1.weight", "a small RWKV weight"},
	{"time_mix_w2.weight", "a small RWKV weight"},
	{"time_mix_v0.weight", "a small RWKV weight"},
	{"time_mix_v1.weight", "a small RWKV weight"},
	{"time_mix_v2.weight", "a small RWKV weight"},
	{"time_mix_a0.weight", "a small RWKV weight"},
	{"time_mix_a1.weight", "a small RWKV weight"},
	{"time_mix_a2.weight", "a small RWKV weight"},
	{"time_mix_g1.weight", "a small RWKV weight"},
	{"time_mix_g2.weight", "a small RWKV weight"},
	{"time_mix_decay_w1.weight", "a small RWKV weight"},
	{"time_mix_decay_w2.weight", "a small RWKV weight"},
	{"time_mix_lerp_fused.weight", "a small RWKV weight"},
	{"attn_rel_b.weight", "a relative position bias"},
	{".position_embd", "a multimodal position embedding"},
	{"sam.pos_embd", "a multimodal tensor"},
	{"sam.neck.", "a multimodal tensor"},
	{"sam.net_", "a multimodal tensor"},
	{".rel_pos", "a multimodal tensor"},
	{".patch_embd", "a multimodal tensor"},
	{".patch_merger", "a multimodal tensor"},
	{"a.rvq.codebook", "an audio codebook"},
	{"mm.a.code_embd", "an audio codebook"},
}

// keepReason is tensor_allows_quantization negated: why llama-quantize
// copies the tensor as it is, or "" if it quantizes it.
func keepReason(t Tensor) string {
	if nDims(t.Dims) < 2 {
		return "1-D"
	}
	name := t.Name
	// name.rfind("weight") == name.size() - 6, unsigned: a 5-byte name
	// passes (both sides are npos).
	if !strings.HasSuffix(name, "weight") && len(name) != 5 {
		return "not a weight"
	}
	switch name {
	case "position_embd.weight":
		return "the position embedding"
	case "token_types.weight":
		return "the token types"
	}
	for _, k := range kept {
		if strings.Contains(name, k.sub) {
			return k.why
		}
	}
	return ""
}

// state is quantize_state_impl's counters.
type state struct {
	mix   Mix
	model Model
	tied  bool // no output.weight: token_embd is the output too
	// nAttnV counts the V tensors, iAttnV those chosen so far; nFFN is
	// the layer count and iFFN* count the FFN tensors chosen so far.
	nAttnV, iAttnV                   int
	nFFN, iFFNDown, iFFNGate, iFFNUp int
}

func (s *state) choose(t Tensor, pure bool) (Choice, error) {
	if why := keepReason(t); why != "" {
		return Choice{Type: t.Type, Reason: why + ": kept as " + t.Type.String()}, nil
	}
	base := s.mix.Base()
	if !quantized(base) {
		return Choice{Type: base, Quantized: true, Reason: fmt.Sprintf("%s: the mix's type", base)}, nil
	}
	typ, reason := base, ""
	if pure {
		reason = fmt.Sprintf("%s: --pure", base)
	} else {
		var err error
		if typ, reason, err = s.rule(t, base); err != nil {
			return Choice{}, err
		}
	}
	c := Choice{Type: typ, Quantized: true, Reason: reason}
	fb, note, err := fallback(t, typ)
	if err != nil {
		return Choice{}, err
	}
	if fb != typ {
		c.Type, c.Fallback = fb, true
		c.Reason = reason + "; " + note
	}
	return c, nil
}

// useMoreBits is llama.cpp's use_more_bits: the first and last eighth of
// the layers and every third layer between.
func useMoreBits(i, n int) bool {
	return i < n/8 || i >= 7*n/8 || (i-n/8)%3 == 2
}

// layerInfo is llama.cpp's layer_info: the layer is the count of such
// tensors seen so far, or for a model with experts (whose tensors need
// not come in layer order) the N of the name's "blk.N.".
func (s *state) layerInfo(i, n int, name string) (int, int, error) {
	if max(1, s.model.Experts) > 1 {
		l, ok := blockLayer(name)
		if !ok {
			return 0, 0, fmt.Errorf("failed to determine the layer of the tensor (no blk.N. in its name)")
		}
		if l < 0 || l >= n {
			return 0, 0, fmt.Errorf("bad layer %d: must be in [0, %d)", l, n)
		}
		i = l
	}
	return i, n, nil
}

// rule is llama_tensor_get_type_impl for the mixes of this package: the
// type of a quantized tensor before the fallback, and why.
func (s *state) rule(t Tensor, base gguf.Type) (gguf.Type, string, error) {
	mix, arch := s.mix, s.model.Arch
	falcon := arch == "falcon"
	eightExperts := s.model.Experts == 8
	typ, reason := base, fmt.Sprintf("%s: the mix's type", base)
	set := func(t gguf.Type, format string, args ...any) {
		typ, reason = t, fmt.Sprintf("%s: ", t)+fmt.Sprintf(format, args...)
	}
	cat := category(t.Name)
	switch {
	case cat == catOutput || (s.tied && cat == catTokenEmbd):
		what := "output.weight"
		if cat == catTokenEmbd {
			what = t.Name + ", tied to the output (no output.weight),"
		}
		nx, qk := dim0(t), base.BlockSize()
		switch {
		case falcon:
			set(gguf.TypeQ8_0, "%s for Falcon", what)
		case nx%qk != 0:
			set(gguf.TypeQ8_0, "%s with %d columns, not a multiple of %s's %d", what, nx, base, qk)
		case base != gguf.TypeQ8_0:
			set(gguf.TypeQ6_K, "%s in every mix but Q8_0", what)
		default:
			set(gguf.TypeQ8_0, "%s in the Q8_0 mix", what)
		}
	case cat == catTokenEmbd:
		// No rule of these mixes changes an untied token_embd.
	case isAttnV(cat):
		i, n := s.iAttnV, s.nAttnV
		what := "attn_v"
		if cat != catAttnV {
			what = map[tensorCategory]string{catAttnQKV: "attn_qkv", catAttnKVB: "attn_kv_b"}[cat] + " (holding V)"
		}
		switch {
		case mix == Q2_K && s.model.gqa() >= 4:
			set(gguf.TypeQ4_K, "%s in Q2_K with %d query heads per KV head (4 or more)", what, s.model.gqa())
		case mix == Q2_K:
			set(gguf.TypeQ3_K, "%s in Q2_K", what)
		case mix == Q3_K_M && i < 2:
			set(gguf.TypeQ5_K, "%s %d of %d: the first 2 in Q3_K_M", what, i, n)
		case mix == Q3_K_M:
			set(gguf.TypeQ4_K, "%s in Q3_K_M after the first 2", what)
		case mix == Q3_K_L:
			set(gguf.TypeQ5_K, "%s in Q3_K_L", what)
		case (mix == Q4_K_M || mix == Q5_K_M) && useMoreBits(i, n):
			set(gguf.TypeQ6_K, "%s %d of %d, a use_more_bits layer, in %s", what, i, n, mix)
		case mix == Q4_K_S && i < 4:
			set(gguf.TypeQ5_K, "%s %d of %d: the first 4 in Q4_K_S", what, i, n)
		}
		if s.model.is70B() && (typ == gguf.TypeQ3_K || typ == gguf.TypeQ4_K) {
			set(gguf.TypeQ5_K, "%s of a 70B model, whose attn_v is 8 times smaller than attn_q", what)
		}
		if eightExperts {
			set(gguf.TypeQ8_0, "%s of an 8-expert model", what)
		}
		s.iAttnV++
	case cat == catAttnK:
		if eightExperts {
			set(gguf.TypeQ8_0, "attn_k of an 8-expert model")
		}
	case cat == catFFNDown:
		i, n, err := s.layerInfo(s.iFFNDown, s.nFFN, t.Name)
		if err != nil {
			return 0, "", err
		}
		more := useMoreBits(i, n)
		switch {
		case mix == Q2_K:
			set(gguf.TypeQ3_K, "ffn_down in Q2_K")
		case mix == Q3_K_M && i < n/16:
			set(gguf.TypeQ5_K, "ffn_down in layer %d of %d, the first 1/16, in Q3_K_M", i, n)
		case mix == Q3_K_M && (!falcon || more):
			set(gguf.TypeQ4_K, "ffn_down in layer %d of %d in Q3_K_M", i, n)
		case mix == Q3_K_M:
			set(gguf.TypeQ3_K, "ffn_down in layer %d of %d, not a use_more_bits layer, of Falcon in Q3_K_M", i, n)
		case mix == Q3_K_L && falcon:
			set(gguf.TypeQ4_K, "ffn_down of Falcon in Q3_K_L")
		case mix == Q3_K_L:
			set(gguf.TypeQ5_K, "ffn_down in Q3_K_L")
		case mix == Q4_K_M && falcon:
			switch {
			case i < n/16:
				set(gguf.TypeQ6_K, "ffn_down in layer %d of %d, the first 1/16, of Falcon in Q4_K_M", i, n)
			case more:
				set(gguf.TypeQ5_K, "ffn_down in layer %d of %d, a use_more_bits layer, of Falcon in Q4_K_M", i, n)
			default:
				set(gguf.TypeQ4_K, "ffn_down of Falcon in Q4_K_M")
			}
		case mix == Q4_K_M:
			if more {
				set(gguf.TypeQ6_K, "ffn_down in layer %d of %d, a use_more_bits layer, in Q4_K_M", i, n)
			}
		case mix == Q5_K_M && more:
			set(gguf.TypeQ6_K, "ffn_down in layer %d of %d, a use_more_bits layer, in Q5_K_M", i, n)
		case mix == Q4_K_S && !falcon && i < n/8:
			set(gguf.TypeQ5_K, "ffn_down in layer %d of %d, the first 1/8, in Q4_K_S", i, n)
		case (mix == Q4_0 || mix == Q5_0) && s.model.Imatrix && i < n/8:
			// llama.cpp: "guard against craziness in the first few
			// ffn_down layers", with an imatrix only.
			t := map[Mix]gguf.Type{Q4_0: gguf.TypeQ4_1, Q5_0: gguf.TypeQ5_1}[mix]
			set(t, "ffn_down in layer %d of %d, the first 1/8, in %s with an importance matrix", i, n, mix)
		}
		s.iFFNDown++
	case cat == catAttnOutput:
		switch {
		case falcon:
			if mix == Q3_K_L {
				set(gguf.TypeQ4_K, "attn_output of Falcon in Q3_K_L")
			}
		case eightExperts:
			switch mix {
			case Q2_K, Q3_K_S, Q3_K_M, Q4_K_S, Q4_K_M:
				set(gguf.TypeQ5_K, "attn_output of an 8-expert model in %s", mix)
			}
		case mix == Q2_K:
			set(gguf.TypeQ3_K, "attn_output in Q2_K")
		case mix == Q3_K_M:
			set(gguf.TypeQ4_K, "attn_output in Q3_K_M")
		case mix == Q3_K_L:
			set(gguf.TypeQ5_K, "attn_output in Q3_K_L")
		}
	case cat == catFFNGate:
		if _, _, err := s.layerInfo(s.iFFNGate, s.nFFN, t.Name); err != nil {
			return 0, "", err
		}
		s.iFFNGate++
	case cat == catFFNUp:
		if _, _, err := s.layerInfo(s.iFFNUp, s.nFFN, t.Name); err != nil {
			return 0, "", err
		}
		s.iFFNUp++
	}
	return typ, reason, nil
}

func dim0(t Tensor) int {
	if len(t.Dims) == 0 {
		return 1
	}
	return t.Dims[0]
}

// fallback is tensor_type_fallback: the type a tensor whose row length
// typ's blocks do not divide gets instead, and a note saying so.
func fallback(t Tensor, typ gguf.Type) (gguf.Type, string, error) {
	ncols, qk := dim0(t), typ.BlockSize()
	if qk == 0 {
		return 0, "", fmt.Errorf("unknown type %v", typ)
	}
	if ncols%qk == 0 {
		return typ, "", nil
	}
	fb := typ
	switch typ {
	case gguf.TypeIQ1_S, gguf.TypeIQ1_M, gguf.TypeIQ2_XXS, gguf.TypeIQ2_XS, gguf.TypeIQ2_S,
		gguf.TypeIQ3_XXS, gguf.TypeIQ3_S, gguf.TypeIQ4_XS:
		fb = gguf.TypeIQ4_NL
	case gguf.TypeQ2_K, gguf.TypeQ3_K, gguf.TypeTQ1_0, gguf.TypeTQ2_0:
		fb = gguf.TypeQ4_0
	case gguf.TypeQ4_K:
		fb = gguf.TypeQ5_0
	case gguf.TypeQ5_K:
		fb = gguf.TypeQ5_1
	case gguf.TypeQ6_K:
		fb = gguf.TypeQ8_0
	default:
		if qk > 32 {
			return 0, "", fmt.Errorf("no fallback type is defined for %v, whose blocks of %d do not divide the %d columns", typ, qk, ncols)
		}
	}
	if ncols%fb.BlockSize() != 0 {
		if fb != typ {
			return gguf.TypeF16, fmt.Sprintf("%d columns, a multiple of neither %s's %d nor %s's %d: fell back to F16", ncols, typ, qk, fb, fb.BlockSize()), nil
		}
		return gguf.TypeF16, fmt.Sprintf("%d columns, not a multiple of %s's %d: fell back to F16", ncols, typ, qk), nil
	}
	return fb, fmt.Sprintf("%d columns, not a multiple of %s's %d: fell back to %s", ncols, typ, qk, fb), nil
}
