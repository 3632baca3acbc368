package tokenizer

import (
	"fmt"
	"math"
	"strings"

	"github.com/quantkit/quantkit/model/gguf"
)

// llama.cpp's token types (tokenizer.ggml.token_type).
const (
	ggufNormal      = 1
	ggufUnknown     = 2
	ggufControl     = 3
	ggufUserDefined = 4
	ggufByte        = 6
)

// ggufPre is what llama.cpp does for a "gpt2" vocabulary's
// tokenizer.ggml.pre, among what this package does: the regex split
// (src/llama-vocab.cpp's regex_exprs for the name's pre type) and whether
// a pre-token that is a whole token is taken as it is (ignore_merges).
type ggufPre struct {
	split        splitter
	ignoreMerges bool
}

// ggufPres lists the names llama.cpp (v0.4.0 of node-llama-cpp 3.21.1)
// maps to a pre type whose split this package has; names whose pre type
// also adds a SEP token or drops BOS (jina-v1-en, jina-v2-code,
// roberta-bpe, chatglm-bpe, glm4) are left out.
var ggufPres = map[string]ggufPre{
	// LLAMA_VOCAB_PRE_TYPE_GPT2, MPT, OLMO, JAIS, TRILLION, GRANITE_DOCLING:
	// the GPT-2 regex.
	"gpt-2": {split: splitGPT2}, "phi-2": {split: splitGPT2}, "jina-es": {split: splitGPT2},
	"jina-de": {split: splitGPT2}, "gigachat": {split: splitGPT2}, "jina-v2-es": {split: splitGPT2},
	"jina-v2-de": {split: splitGPT2}, "a.x-4.0": {split: splitGPT2}, "mellum": {split: splitGPT2},
	"modern-bert": {split: splitGPT2}, "exaone4": {split: splitGPT2}, "mpt": {split: splitGPT2},
	"olmo": {split: splitGPT2}, "jais": {split: splitGPT2}, "trillion": {split: splitGPT2},
	"granite-docling": {split: splitGPT2},
	// LLAMA3 (with ignore_merges), then DBRX and SMAUG (the same regex,
	// without).
	"llama3": {splitLlama3, true}, "llama-v3": {splitLlama3, true}, "llama-bpe": {splitLlama3, true},
	"falcon3": {splitLlama3, true}, "falcon-h1": {splitLlama3, true}, "pixtral": {splitLlama3, true},
	"midm-2.0": {splitLlama3, true}, "lfm2": {splitLlama3, true}, "jina-v5-nano": {splitLlama3, true},
	"dbrx": {split: splitLlama3}, "smaug-bpe": {split: splitLlama3},
	// QWEN2, STABLELM2, HUNYUAN, SOLAR_OPEN and GROK_2: the Qwen2 regex.
	"qwen2": {split: splitQwen2}, "deepseek-r1-qwen": {split: splitQwen2}, "kormo": {split: splitQwen2},
	"f2llmv2": {split: splitQwen2}, "megrez": {split: splitQwen2}, "stablelm2": {split: splitQwen2},
	"hunyuan": {split: splitQwen2}, "solar-open": {split: splitQwen2}, "grok-2": {split: splitQwen2},
	// SMOLLM, STARCODER, REFACT, COMMAND_R, CODESHELL, EXAONE, MINERVA,
	// MELLUM2: `\p{N}` then the GPT-2 regex.
	"smollm": {split: splitSmolLM}, "starcoder": {split: splitSmolLM}, "refact": {split: splitSmolLM},
	"command-r": {split: splitSmolLM}, "codeshell": {split: splitSmolLM}, "exaone": {split: splitSmolLM},
	"minerva-7b": {split: splitSmolLM}, "mellum2": {split: splitSmolLM},
}

// FromGGUF builds the tokenizer that a GGUF file's tokenizer.ggml.* keys
// describe; name (the file) is for errors. Two models are supported:
//
//   - "llama": SentencePiece with tokens, scores and token types, encoded
//     as llama.cpp's SPM tokenizer does: a "▁" in front of each text
//     segment (unless add_space_prefix is false), " " as "▁", then the
//     adjacent pair whose concatenation is a normal token of the highest
//     score merged first, leftmost among equals; characters with no token
//     become their "<0xNN>" byte tokens. Decoding is that of a Llama
//     tokenizer.json of the same vocabulary (▁ as space, byte tokens,
//     then the text's first leading space stripped): Decode of [BOS,
//     "▁Once"] is "<s> Once", DecodeSkipSpecial's is "Once".
//   - "gpt2": byte-level BPE with tokens and merges, split by the regex
//     that tokenizer.ggml.pre names as llama.cpp does (GPT-2's, Llama 3's,
//     Qwen2's or SmolLM's, under the names of ggufPres; others are
//     refused).
//
// Control, user-defined and unknown tokens are matched in the text before
// anything else, as llama.cpp does with special tokens parsed; control and
// unknown ones are special. Encode adds BOS/EOS as add_bos_token and
// add_eos_token say (llama.cpp's defaults: BOS for "llama", none for
// "gpt2").
func FromGGUF(name string, meta gguf.Metadata) (*Tokenizer, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("tokenizer: %s: %s", name, fmt.Sprintf(format, args...))
	}
	model, _ := meta.String("tokenizer.ggml.model")
	if model != "llama" && model != "gpt2" {
		return nil, fail("tokenizer.ggml.model %q is not supported (only \"llama\" and \"gpt2\")", model)
	}
	pieces, ok := meta.Strings("tokenizer.ggml.tokens")
	if !ok || len(pieces) == 0 {
		return nil, fail("no tokenizer.ggml.tokens")
	}
	n := len(pieces)
	if n > math.MaxInt32 {
		return nil, fail("%d tokens", n)
	}
	types := make([]int32, n)
	for i := range types {
		types[i] = ggufNormal
	}
	if v, ok := meta.Value("tokenizer.ggml.token_type"); ok {
		tt, ok := v.([]int32)
		if !ok || len(tt) != n {
			return nil, fail("tokenizer.ggml.token_type is not one int32 per token")
		}
		copy(types, tt)
	}
	id := func(key string, def int) (int32, error) {
		v, ok := meta.Int(key)
		if !ok {
			return int32(def), nil
		}
		if v < 0 || v >= int64(n) {
			return 0, fail("%s %d is out of range (%d tokens)", key, v, n)
		}
		return int32(v), nil
	}
	t := &Tokenizer{name: name, pieces: pieces, special: make([]bool, n), unk: -1,
		vocab: make(map[string]int32, n), runeIDs: make(map[rune]int32)}
	for i := n - 1; i >= 0; i-- { // the first of equal pieces wins
		t.vocab[pieces[i]] = int32(i)
	}
	for i, p := range pieces {
		switch types[i] {
		case ggufControl, ggufUnknown, ggufUserDefined:
			t.special[i] = types[i] != ggufUserDefined
			if p == "" {
				continue
			}
			t.added = append(t.added, AddedToken{ID: i, Content: p, Special: t.special[i]})
		}
	}
	for k, a := range t.added {
		t.addedBy[a.Content[0]] = append(t.addedBy[a.Content[0]], k)
	}
	for _, ks := range t.addedBy {
		sortLongestFirst(t.added, ks)
	}

	defBOS, defEOS, defUnk, defAddBOS := -1, -1, -1, false
	if model == "llama" {
		defBOS, defEOS, defUnk, defAddBOS = 1, 2, 0, true
		if n < 3 {
			defBOS, defEOS, defUnk = -1, -1, -1
		}
	}
	var err error
	if t.bos, err = id("tokenizer.ggml.bos_token_id", defBOS); err != nil {
		return nil, err
	}
	if t.eos, err = id("tokenizer.ggml.eos_token_id", defEOS); err != nil {
		return nil, err
	}
	addBOS, ok := meta.Bool("tokenizer.ggml.add_bos_token")
	if !ok {
		addBOS = defAddBOS
	}
	addEOS, _ := meta.Bool("tokenizer.ggml.add_eos_token")
	if addBOS && t.bos >= 0 {
		t.prefix = []int{int(t.bos)}
	}
	if addEOS && t.eos >= 0 {
		t.suffix = []int{int(t.eos)}
	}

	if model == "gpt2" {
		return t, t.ggufByteLevel(meta, fail)
	}
	if t.unk, err = id("tokenizer.ggml.unknown_token_id", defUnk); err != nil {
		return nil, err
	}
	v, _ := meta.Value("tokenizer.ggml.scores")
	scores, ok := v.([]float32)
	if !ok || len(scores) != n {
		return nil, fail("no tokenizer.ggml.scores of one float32 per token")
	}
	for i, s := range scores {
		if math.IsNaN(float64(s)) {
			return nil, fail("token %d has a NaN score", i)
		}
	}
	t.kind = SentencePiece
	t.prepend = true
	if b, ok := meta.Bool("tokenizer.ggml.add_space_prefix"); ok {
		t.prepend = b
	}
	t.replaceSpace, t.spaceRune = true, '▁'
	t.byteFallback, t.decodeBytes, t.decodeMeta = true, true, true
	t.stripLeading = 1
	for i, p := range pieces {
		if r := []rune(p); len(r) == 1 && types[i] == ggufNormal && t.vocab[p] == int32(i) {
			t.setRuneID(r[0], int32(i))
		}
	}
	for b := range 256 {
		bid, ok := t.vocab[fmt.Sprintf("<0x%02X>", b)]
		if !ok {
			if t.unk < 0 {
				return nil, fail("no <0x%02X> byte token and no unknown token", b)
			}
			bid = t.unk
		}
		t.byteIDs[b] = bid
	}
	t.scoreMerges(scores, func(id int) bool { return types[id] == ggufNormal })
	t.setSpaceSplits()
	return t, nil
}

// ggufByteLevel completes a "gpt2" tokenizer from its merges and
// pre-tokenizer name.
func (t *Tokenizer) ggufByteLevel(meta gguf.Metadata, fail func(string, ...any) error) error {
	t.kind = ByteLevel
	t.decodeByteLvl = true
	pre, _ := meta.String("tokenizer.ggml.pre")
	p, ok := ggufPres[pre]
	if !ok {
		return fail("tokenizer.ggml.pre %q is not supported (only those whose split is GPT-2's, Llama 3's, Qwen2's or SmolLM's, such as \"gpt-2\", \"llama-bpe\", \"qwen2\" and \"smollm\")", pre)
	}
	t.split, t.ignoreMerges = p.split, p.ignoreMerges
	merges, ok := meta.Strings("tokenizer.ggml.merges")
	if !ok || len(merges) == 0 {
		return fail("a gpt2 vocabulary without tokenizer.ggml.merges")
	}
	for rank, m := range merges {
		a, b, ok := strings.Cut(m, " ")
		if !ok || strings.Contains(b, " ") {
			return fail("merge %d %q is not two tokens", rank, m)
		}
		if err := t.addMerge(rank, a, b); err != nil {
			return fail("%v", err)
		}
	}
	for b := range 256 {
		id, ok := t.vocab[string(byteToRune[b])]
		if !ok {
			return fail("byte-level vocabulary lacks the character %q of byte 0x%02X", byteToRune[b], b)
		}
		t.byteRuneIDs[b] = id
	}
	return nil
}
