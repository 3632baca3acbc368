package ggufmix

import (
	"fmt"
	"strings"

	"github.com/quantkit/quantkit/model/gguf"
)

// Mix is one of llama-quantize's file types, by its value of llama.cpp's
// enum llama_ftype: what general.file_type holds in the file it writes.
type Mix uint32

// The mixes this package knows, by their llama_ftype values.
const (
	F32    Mix = 0  // LLAMA_FTYPE_ALL_F32
	F16    Mix = 1  // LLAMA_FTYPE_MOSTLY_F16
	Q4_0   Mix = 2  // LLAMA_FTYPE_MOSTLY_Q4_0
	Q4_1   Mix = 3  // LLAMA_FTYPE_MOSTLY_Q4_1
	Q8_0   Mix = 7  // LLAMA_FTYPE_MOSTLY_Q8_0
	Q5_0   Mix = 8  // LLAMA_FTYPE_MOSTLY_Q5_0
	Q5_1   Mix = 9  // LLAMA_FTYPE_MOSTLY_Q5_1
	Q2_K   Mix = 10 // LLAMA_FTYPE_MOSTLY_Q2_K
	Q3_K_S Mix = 11 // LLAMA_FTYPE_MOSTLY_Q3_K_S
	Q3_K_M Mix = 12 // LLAMA_FTYPE_MOSTLY_Q3_K_M
	Q3_K_L Mix = 13 // LLAMA_FTYPE_MOSTLY_Q3_K_L
	Q4_K_S Mix = 14 // LLAMA_FTYPE_MOSTLY_Q4_K_S
	Q4_K_M Mix = 15 // LLAMA_FTYPE_MOSTLY_Q4_K_M
	Q5_K_S Mix = 16 // LLAMA_FTYPE_MOSTLY_Q5_K_S
	Q5_K_M Mix = 17 // LLAMA_FTYPE_MOSTLY_Q5_K_M
	Q6_K   Mix = 18 // LLAMA_FTYPE_MOSTLY_Q6_K
	BF16   Mix = 32 // LLAMA_FTYPE_MOSTLY_BF16
)

// mixRow is one row of the table of mixes: llama-quantize's name, the
// base type (llama_ftype_get_default_type) and its one-line description.
type mixRow struct {
	mix  Mix
	name string
	base gguf.Type
	desc string
}

// mixes lists the mixes in llama-quantize's order (QUANT_OPTIONS).
var mixes = []mixRow{
	{Q4_0, "Q4_0", gguf.TypeQ4_0, "4.5 bits per weight: blocks of 32, a scale each; output.weight Q6_K"},
	{Q4_1, "Q4_1", gguf.TypeQ4_1, "5 bpw: blocks of 32, a scale and a minimum each; output.weight Q6_K"},
	{Q5_0, "Q5_0", gguf.TypeQ5_0, "5.5 bpw: blocks of 32; output.weight Q6_K"},
	{Q5_1, "Q5_1", gguf.TypeQ5_1, "6 bpw: blocks of 32 with minimums; output.weight Q6_K"},
	{Q2_K, "Q2_K", gguf.TypeQ2_K, "Q2_K; Q3_K for attn_output and ffn_down, attn_v Q3_K (Q4_K with 4+ query heads per KV head); output.weight Q6_K"},
	{Q3_K_S, "Q3_K_S", gguf.TypeQ3_K, "Q3_K; output.weight Q6_K"},
	{Q3_K_M, "Q3_K_M", gguf.TypeQ3_K, "Q3_K; attn_v Q5_K in the first 2 layers, Q4_K after; attn_output Q4_K; ffn_down Q5_K in the first 1/16, Q4_K after; output.weight Q6_K"},
	{Q3_K_L, "Q3_K_L", gguf.TypeQ3_K, "Q3_K; Q5_K for attn_v, attn_output and ffn_down; output.weight Q6_K"},
	{Q4_K_S, "Q4_K_S", gguf.TypeQ4_K, "Q4_K; Q5_K for the first 4 attn_v and the first 1/8 of ffn_down; output.weight Q6_K"},
	{Q4_K_M, "Q4_K_M", gguf.TypeQ4_K, "Q4_K; Q6_K for attn_v and ffn_down in use_more_bits layers and output.weight"},
	{Q5_K_S, "Q5_K_S", gguf.TypeQ5_K, "Q5_K; output.weight Q6_K"},
	{Q5_K_M, "Q5_K_M", gguf.TypeQ5_K, "Q5_K; Q6_K for attn_v and ffn_down in use_more_bits layers and output.weight"},
	{Q6_K, "Q6_K", gguf.TypeQ6_K, "Q6_K everywhere (6.56 bpw)"},
	{Q8_0, "Q8_0", gguf.TypeQ8_0, "Q8_0 everywhere (8.5 bpw)"},
	{F16, "F16", gguf.TypeF16, "float16"},
	{BF16, "BF16", gguf.TypeBF16, "bfloat16"},
	{F32, "F32", gguf.TypeF32, "float32"},
}

// aliases are llama-quantize's other names for mixes.
var aliases = map[string]Mix{"Q3_K": Q3_K_M, "Q4_K": Q4_K_M, "Q5_K": Q5_K_M}

func (m Mix) row() *mixRow {
	for i := range mixes {
		if mixes[i].mix == m {
			return &mixes[i]
		}
	}
	return nil
}

// String is llama-quantize's name of the mix ("Q4_K_M").
func (m Mix) String() string {
	if r := m.row(); r != nil {
		return r.name
	}
	return fmt.Sprintf("file type %d", uint32(m))
}

// Valid reports whether m is one of the mixes of this package.
func (m Mix) Valid() bool { return m.row() != nil }

// FileType is the general.file_type llama-quantize writes for m.
func (m Mix) FileType() uint32 { return uint32(m) }

// Base is the mix's base type (llama_ftype_get_default_type): the type of
// every quantized tensor no rule says otherwise for.
func (m Mix) Base() gguf.Type {
	if r := m.row(); r != nil {
		return r.base
	}
	return 0
}

// Description says in a line what the mix gives which tensors.
func (m Mix) Description() string {
	if r := m.row(); r != nil {
		return r.desc
	}
	return ""
}

// Mixes returns the mixes in llama-quantize's order.
func Mixes() []Mix {
	out := make([]Mix, len(mixes))
	for i, r := range mixes {
		out[i] = r.mix
	}
	return out
}

// Names returns the mixes' names, aliases excluded, in llama-quantize's
// order.
func Names() []string {
	out := make([]string, len(mixes))
	for i, r := range mixes {
		out[i] = r.name
	}
	return out
}

// ParseMix returns the mix named name, as llama-quantize reads its type
// argument: any case, Q3_K, Q4_K and Q5_K meaning Q3_K_M, Q4_K_M and
// Q5_K_M.
func ParseMix(name string) (Mix, error) {
	up := strings.ToUpper(name)
	if m, ok := aliases[up]; ok {
		return m, nil
	}
	for _, r := range mixes {
		if r.name == up {
			return r.mix, nil
		}
	}
	return 0, fmt.Errorf("unknown type %q: llama-quantize's types here are %s (Q3_K, Q4_K and Q5_K mean Q3_K_M, Q4_K_M and Q5_K_M)", name, strings.Join(Names(), ", "))
}

// quantized is ggml_is_quantized: every type but the float and integer
// ones.
func quantized(t gguf.Type) bool {
	switch t {
	case gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16, gguf.TypeF64,
		gguf.TypeI8, gguf.TypeI16, gguf.TypeI32, gguf.TypeI64:
		return false
	}
	return true
}
