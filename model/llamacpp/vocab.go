package llamacpp

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/quantkit/quantkit/model/gguf"
)

// Token types, as llama.cpp's GGUF writer numbers them (gguf-py's
// TokenType, llama.cpp's llama_token_type).
const (
	TokenNormal      int32 = 1
	TokenUnknown     int32 = 2
	TokenControl     int32 = 3
	TokenUserDefined int32 = 4
	TokenUnused      int32 = 5
	TokenByte        int32 = 6
)

// Vocab is a tokenizer as llama.cpp's GGUF keys carry it.
type Vocab struct {
	// Model is tokenizer.ggml.model: "llama" (SentencePiece-style BPE with
	// byte fallback, merged by token scores) or "gpt2" (byte-level BPE,
	// merged by Merges).
	Model string
	// Pre is tokenizer.ggml.pre: "default" for llama; for gpt2 the name of
	// the pre-tokenizer ("gpt-2", "llama-bpe", "smollm").
	Pre    string
	Tokens []string
	Scores []float32 // llama only
	Types  []int32
	Merges []string // gpt2 only: "left right", in rank order
	// Special are the special token ids (tokenizer.ggml.<kind>_token_id,
	// kind bos, eos, unk, sep, pad, cls, mask) in the order
	// convert_hf_to_gguf.py writes them.
	Special []SpecialToken
	// Add are tokenizer.ggml.add_<kind>_token, in convert's order.
	Add []AddToken
	// AddSpacePrefix is tokenizer_config.json's add_prefix_space, nil if
	// it has none.
	AddSpacePrefix *bool
	// ChatTemplate is tokenizer.chat_template, "" for none.
	ChatTemplate string
}

// SpecialToken is one special token id.
type SpecialToken struct {
	Kind string // bos, eos, unk, sep, pad, cls, mask
	ID   uint32
}

// AddToken is one add_<kind>_token flag.
type AddToken struct {
	Kind  string
	Value bool
}

// specialKinds are SpecialVocab's special_token_types, in its order.
var specialKinds = []string{"bos", "eos", "unk", "sep", "pad", "cls", "mask"}

// KVs returns the vocabulary's metadata in convert_hf_to_gguf.py's order.
func (v *Vocab) KVs() []gguf.KV {
	var kv []gguf.KV
	if v.AddSpacePrefix != nil {
		kv = append(kv, gguf.KV{Key: "tokenizer.ggml.add_space_prefix", Value: *v.AddSpacePrefix})
	}
	kv = append(kv,
		gguf.KV{Key: "tokenizer.ggml.model", Value: v.Model},
		gguf.KV{Key: "tokenizer.ggml.pre", Value: v.Pre},
		gguf.KV{Key: "tokenizer.ggml.tokens", Value: slices.Clone(v.Tokens)},
	)
	if v.Scores != nil {
		kv = append(kv, gguf.KV{Key: "tokenizer.ggml.scores", Value: slices.Clone(v.Scores)})
	}
	kv = append(kv, gguf.KV{Key: "tokenizer.ggml.token_type", Value: slices.Clone(v.Types)})
	if len(v.Merges) > 0 {
		kv = append(kv, gguf.KV{Key: "tokenizer.ggml.merges", Value: slices.Clone(v.Merges)})
	}
	for _, s := range v.Special {
		kv = append(kv, gguf.KV{Key: specialKey(s.Kind), Value: s.ID})
	}
	for _, a := range v.Add {
		kv = append(kv, gguf.KV{Key: "tokenizer.ggml.add_" + a.Kind + "_token", Value: a.Value})
	}
	if v.ChatTemplate != "" {
		kv = append(kv, gguf.KV{Key: "tokenizer.chat_template", Value: v.ChatTemplate})
	}
	return kv
}

// specialKey is the GGUF key of a special token id (llama.cpp spells
// "separator" as "seperator").
func specialKey(kind string) string {
	switch kind {
	case "unk":
		return "tokenizer.ggml.unknown_token_id"
	case "sep":
		return "tokenizer.ggml.seperator_token_id"
	case "pad":
		return "tokenizer.ggml.padding_token_id"
	}
	return "tokenizer.ggml." + kind + "_token_id"
}

// tokenizerJSON is the part of a Hugging Face tokenizer.json read here.
type tokenizerJSON struct {
	AddedTokens   []addedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         struct {
		Type         string          `json:"type"`
		Vocab        map[string]int  `json:"vocab"`
		Merges       json.RawMessage `json:"merges"`
		UnkToken     *string         `json:"unk_token"`
		ByteFallback bool            `json:"byte_fallback"`
		IgnoreMerges bool            `json:"ignore_merges"`
	} `json:"model"`
}

type addedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	Special    bool   `json:"special"`
	Normalized bool   `json:"normalized"`
}

// Tokenizer file names in a Hugging Face checkpoint directory.
const (
	TokenizerFile       = "tokenizer.json"
	TokenizerConfigFile = "tokenizer_config.json"
	ChatTemplateFile    = "chat_template.jinja"
)

var byteToken = regexp.MustCompile(`^<0x[0-9A-Fa-f]{2}>$`)

// ParseVocab converts a Hugging Face tokenizer (the contents of
// tokenizer.json and, where the checkpoint has one, tokenizer_config.json;
// nil where it has none) for a model of h's vocabulary size, as
// convert_hf_to_gguf.py does for the llama architecture:
//
//   - BPE with byte fallback (Llama 2, Mistral, TinyLlama: SentencePiece
//     converted to tokenizer.json) becomes tokenizer.ggml.model "llama"
//     with scores and token types as SentencePiece gives them
//     (_set_vocab_sentencepiece): the unknown token UNKNOWN, special added
//     tokens CONTROL, <0xNN> tokens BYTE, others NORMAL, ids without a token
//     "[PADn]" UNUSED. tokenizer.json has no scores; llama.cpp's
//     SentencePiece tokenizer merges by score, so the scores are derived
//     from the merges: the tokens the merges make, in the order of their
//     first merge, score 0, -1, -2, …, then the tokens no merge makes, in id
//     order, continue the count, and special, unknown and byte tokens score
//     0. For a tokenizer converted from SentencePiece BPE this gives back
//     SentencePiece's own scores. (convert's fallback for a checkpoint
//     without tokenizer.model, LlamaHfVocab, scores every token -1000,
//     which makes llama.cpp merge left to right instead.)
//   - Byte-level BPE without byte fallback (Llama 3, SmolLM) becomes
//     "gpt2" with the merges and the pre-tokenizer's llama.cpp name
//     (get_vocab_base): "gpt-2" for a bare ByteLevel, "llama-bpe" for Llama
//     3's split regex, "smollm" for single digits then ByteLevel. convert
//     recognises a pre-tokenizer by hashing the tokens of a test string;
//     here it is recognised by its definition, and any other is refused.
//
// The special token ids and add_bos/add_eos flags follow gguf-py's
// SpecialVocab: tokenizer_config.json's bos_token, eos_token… looked up
// among the added tokens, then config.json's *_token_id for kinds still
// unset, and the flags from the post-processor's template, then
// tokenizer_config.json's add_*_token. Errors name the file.
func ParseVocab(tokenizer, tokenizerConfig []byte, h *Hyper) (*Vocab, error) {
	var tj tokenizerJSON
	if err := json.Unmarshal(tokenizer, &tj); err != nil {
		return nil, fmt.Errorf("%s: %w", TokenizerFile, err)
	}
	var tc jsonObject
	if tokenizerConfig != nil {
		var err error
		if tc, err = parseObject(TokenizerConfigFile, tokenizerConfig); err != nil {
			return nil, err
		}
	}
	if tj.Model.Type != "BPE" {
		what := tj.Model.Type
		if what == "" {
			what = "no model type"
		}
		return nil, fmt.Errorf("%s: tokenizer model %s: llama.cpp's llama architecture takes BPE with byte fallback (SentencePiece style) or byte-level BPE", TokenizerFile, what)
	}
	if len(tj.Model.Vocab) == 0 {
		return nil, fmt.Errorf("%s: model.vocab is missing or empty", TokenizerFile)
	}
	merges, err := parseMerges(tj.Model.Merges)
	if err != nil {
		return nil, err
	}
	v := &Vocab{}
	if tc != nil && tc.present("add_prefix_space") {
		var b bool
		if _, err := tc.decode("add_prefix_space", &b); err != nil {
			return nil, fmt.Errorf("%s: %w", TokenizerConfigFile, err)
		}
		v.AddSpacePrefix = &b
	}
	n := h.Vocab
	byID := make([]string, n)
	has := make([]bool, n)
	for tok, id := range tj.Model.Vocab {
		if id < 0 || id >= n {
			return nil, fmt.Errorf("%s: token %q has id %d, outside vocab_size %d of config.json", TokenizerFile, tok, id, n)
		}
		if has[id] {
			return nil, fmt.Errorf("%s: tokens %q and %q share id %d", TokenizerFile, byID[id], tok, id)
		}
		byID[id], has[id] = tok, true
	}
	added := map[int]addedToken{}
	for _, a := range tj.AddedTokens {
		if a.ID < 0 || a.ID >= n {
			return nil, fmt.Errorf("%s: added token %q has id %d, outside vocab_size %d of config.json", TokenizerFile, a.Content, a.ID, n)
		}
		if has[a.ID] && byID[a.ID] != a.Content {
			return nil, fmt.Errorf("%s: added token %q has id %d, which the vocabulary gives to %q", TokenizerFile, a.Content, a.ID, byID[a.ID])
		}
		byID[a.ID], has[a.ID] = a.Content, true
		added[a.ID] = a
	}

	if tj.Model.ByteFallback {
		if err := v.spm(&tj, tc, merges, byID, has, added); err != nil {
			return nil, err
		}
	} else {
		if err := v.gpt2(&tj, merges, byID, has, added); err != nil {
			return nil, err
		}
	}
	if err := v.special(&tj, tc, h); err != nil {
		return nil, err
	}
	return v, nil
}

// parseMerges reads model.merges, either "a b" strings or ["a", "b"]
// pairs (transformers 4.45 on).
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		out := make([][2]string, len(strs))
		for i, s := range strs {
			// As llama.cpp splits them: at the first space after the
			// first byte.
			j := -1
			if len(s) > 1 {
				if k := strings.IndexByte(s[1:], ' '); k >= 0 {
					j = k + 1
				}
			}
			if j < 0 {
				return nil, fmt.Errorf("%s: merge %d %q is not two tokens separated by a space", TokenizerFile, i, s)
			}
			out[i] = [2]string{s[:j], s[j+1:]}
		}
		return out, nil
	}
	var pairs [][]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("%s: model.merges is neither a list of strings nor of pairs of strings", TokenizerFile)
	}
	out := make([][2]string, len(pairs))
	for i, p := range pairs {
		if len(p) != 2 {
			return nil, fmt.Errorf("%s: merge %d has %d parts, not 2", TokenizerFile, i, len(p))
		}
		out[i] = [2]string{p[0], p[1]}
	}
	return out, nil
}

// spm fills v as _set_vocab_sentencepiece would from the SentencePiece
// model tokenizer.json was converted from.
func (v *Vocab) spm(tj *tokenizerJSON, tc jsonObject, merges [][2]string, byID []string, has []bool, added map[int]addedToken) error {
	if dt := decoderType(tj.Decoder); dt != "Sequence" {
		return fmt.Errorf("%s: BPE with byte fallback but a %q decoder, not the Sequence of a SentencePiece-style tokenizer", TokenizerFile, dt)
	}
	n := len(byID)
	v.Model, v.Pre = "llama", "default"
	v.Tokens = make([]string, n)
	v.Scores = make([]float32, n)
	v.Types = make([]int32, n)
	unk := -1
	if tj.Model.UnkToken != nil {
		if id, ok := tj.Model.Vocab[*tj.Model.UnkToken]; ok {
			unk = id
		}
	}
	for i := range n {
		switch a, isAdded := added[i]; {
		case !has[i]:
			v.Tokens[i], v.Scores[i], v.Types[i] = "[PAD"+strconv.Itoa(i)+"]", -10000, TokenUnused
		case i == unk:
			v.Tokens[i], v.Types[i] = byID[i], TokenUnknown
		case isAdded && a.Special:
			v.Tokens[i], v.Types[i] = byID[i], TokenControl
		case isAdded:
			// added_tokens.json's treatment in convert: user-defined.
			v.Tokens[i], v.Scores[i], v.Types[i] = byID[i], -1000, TokenUserDefined
		case byteToken.MatchString(byID[i]):
			v.Tokens[i], v.Types[i] = byID[i], TokenByte
		default:
			v.Tokens[i], v.Types[i] = byID[i], TokenNormal
		}
	}
	// Scores of the normal tokens: merged tokens by first merge, then the
	// rest by id.
	order := make([]int, 0, n)
	seen := make([]bool, n)
	for _, m := range merges {
		id, ok := tj.Model.Vocab[m[0]+m[1]]
		if !ok || seen[id] || v.Types[id] != TokenNormal {
			continue
		}
		seen[id] = true
		order = append(order, id)
	}
	for i := range n {
		if !seen[i] && v.Types[i] == TokenNormal {
			order = append(order, i)
		}
	}
	for rank, id := range order {
		f := float32(rank)
		v.Scores[id] = -f // -0 for the first, as SentencePiece writes it
	}
	// tokenizer_config.json's added_tokens_decoder overrides, as in
	// _create_vocab_sentencepiece.
	if tc == nil || !tc.present("added_tokens_decoder") {
		return nil
	}
	var dec map[string]struct {
		Content string `json:"content"`
		Special bool   `json:"special"`
	}
	if _, err := tc.decode("added_tokens_decoder", &dec); err != nil {
		return fmt.Errorf("%s: %w", TokenizerConfigFile, err)
	}
	ids := make([]int, 0, len(dec))
	for k := range dec {
		id, err := strconv.Atoi(k)
		if err != nil || id < 0 {
			return fmt.Errorf("%s: added_tokens_decoder has key %q, not a token id", TokenizerConfigFile, k)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if id >= n {
			continue // convert ignores it, with a warning
		}
		d := dec[strconv.Itoa(id)]
		tok := d.Content
		if d.Special || looksSpecial(tok) {
			v.Types[id] = TokenControl
		} else {
			tok = strings.ReplaceAll(tok, "\u2581", " ")
			v.Types[id] = TokenUserDefined
		}
		v.Scores[id] = -1000
		v.Tokens[id] = tok
	}
	return nil
}

func decoderType(raw json.RawMessage) string {
	var d struct {
		Type string `json:"type"`
	}
	json.Unmarshal(raw, &d)
	return d.Type
}

// looksSpecial is convert's does_token_look_special.
func looksSpecial(tok string) bool {
	switch tok {
	case "<pad>", "<mask>", "<2mass>", "[@BOS@]":
		return true
	}
	return strings.HasPrefix(tok, "<|") && strings.HasSuffix(tok, "|>") ||
		strings.HasPrefix(tok, "<\uff5c") && strings.HasSuffix(tok, "\uff5c>") ||
		strings.HasPrefix(tok, "<unused") && strings.HasSuffix(tok, ">")
}

// gpt2 fills v as _set_vocab_gpt2 does.
func (v *Vocab) gpt2(tj *tokenizerJSON, merges [][2]string, byID []string, has []bool, added map[int]addedToken) error {
	pre, err := preTokenizerName(tj.PreTokenizer)
	if err != nil {
		return err
	}
	if len(merges) == 0 {
		return fmt.Errorf("%s: byte-level BPE without merges", TokenizerFile)
	}
	n := len(byID)
	v.Model, v.Pre = "gpt2", pre
	v.Tokens = make([]string, n)
	v.Types = make([]int32, n)
	for i := range n {
		a, isAdded := added[i]
		switch {
		case !has[i]:
			v.Tokens[i], v.Types[i] = "[PAD"+strconv.Itoa(i)+"]", TokenUnused
		case isAdded && (a.Special || looksSpecial(a.Content)):
			v.Tokens[i], v.Types[i] = byID[i], TokenControl
		case isAdded:
			v.Tokens[i], v.Types[i] = strings.ReplaceAll(byID[i], "\u2581", " "), TokenUserDefined
		default:
			v.Tokens[i], v.Types[i] = byID[i], TokenNormal
		}
	}
	v.Merges = make([]string, len(merges))
	for i, m := range merges {
		// gguf-py writes a space inside a token of a pair as U+0120.
		v.Merges[i] = strings.ReplaceAll(m[0], " ", "\u0120") + " " + strings.ReplaceAll(m[1], " ", "\u0120")
	}
	return nil
}

// llama3Split is the split regex of Llama 3's pre-tokenizer.
const llama3Split = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

type preTok struct {
	Type            string          `json:"type"`
	AddPrefixSpace  bool            `json:"add_prefix_space"`
	UseRegex        *bool           `json:"use_regex"`
	IndividualDigit bool            `json:"individual_digits"`
	Behavior        string          `json:"behavior"`
	Invert          bool            `json:"invert"`
	Pattern         json.RawMessage `json:"pattern"`
	Pretokenizers   []preTok        `json:"pretokenizers"`
}

func (p preTok) byteLevel(useRegex bool) bool {
	ur := p.UseRegex == nil || *p.UseRegex
	return p.Type == "ByteLevel" && !p.AddPrefixSpace && ur == useRegex
}

// preTokenizerName is the llama.cpp name of a byte-level BPE's
// pre_tokenizer.
func preTokenizerName(raw json.RawMessage) (string, error) {
	var p preTok
	if err := json.Unmarshal(raw, &p); err != nil || p.Type == "" {
		return "", fmt.Errorf("%s: byte-level BPE without a pre_tokenizer", TokenizerFile)
	}
	switch {
	case p.byteLevel(true):
		return "gpt-2", nil
	case p.Type == "Sequence" && len(p.Pretokenizers) == 2:
		a, b := p.Pretokenizers[0], p.Pretokenizers[1]
		var pat struct {
			Regex string `json:"Regex"`
		}
		json.Unmarshal(a.Pattern, &pat)
		if a.Type == "Split" && pat.Regex == llama3Split && a.Behavior == "Isolated" && !a.Invert && b.byteLevel(false) {
			return "llama-bpe", nil
		}
		if a.Type == "Digits" && a.IndividualDigit && b.byteLevel(true) {
			return "smollm", nil
		}
	}
	return "", fmt.Errorf("%s: pre_tokenizer %s is not one this converter knows the llama.cpp name of (GPT-2's ByteLevel, Llama 3's split, SmolLM's digits then ByteLevel)", TokenizerFile, clip(raw))
}

// special fills v.Special and v.Add as gguf-py's SpecialVocab does.
func (v *Vocab) special(tj *tokenizerJSON, tc jsonObject, h *Hyper) error {
	n := len(v.Tokens)
	set := func(kind string, id int) {
		if id < 0 || id >= n || slices.ContainsFunc(v.Special, func(s SpecialToken) bool { return s.Kind == kind }) {
			return
		}
		v.Special = append(v.Special, SpecialToken{kind, uint32(id)})
	}
	add := func(kind string, val bool) {
		for i := range v.Add {
			if v.Add[i].Kind == kind {
				v.Add[i].Value = val
				return
			}
		}
		v.Add = append(v.Add, AddToken{kind, val})
	}
	content := func(key string) string {
		if tc == nil || !tc.present(key) {
			return ""
		}
		var s string
		if err := json.Unmarshal(tc[key], &s); err == nil {
			return s
		}
		var o struct {
			Content string `json:"content"`
		}
		json.Unmarshal(tc[key], &o)
		return o.Content
	}
	bos, eos, cls := content("bos_token"), content("eos_token"), content("cls_token")
	if bos == "" && cls != "" {
		bos = cls
	}
	if eos == "" {
		eos = content("sep_token")
	}
	// The post-processor's template: is the first (last) element a special
	// token, and is it bos (eos)?
	if len(tj.PostProcessor) > 0 {
		var pp struct {
			Type       string            `json:"type"`
			Processors []json.RawMessage `json:"processors"`
		}
		json.Unmarshal(tj.PostProcessor, &pp)
		procs := pp.Processors
		if procs == nil {
			procs = []json.RawMessage{tj.PostProcessor}
		}
		for _, raw := range procs {
			var p struct {
				Type   string `json:"type"`
				Single []struct {
					SpecialToken *struct {
						ID string `json:"id"`
					} `json:"SpecialToken"`
				} `json:"single"`
			}
			json.Unmarshal(raw, &p)
			switch p.Type {
			case "RobertaProcessing":
				add("bos", true)
				add("eos", true)
				add("sep", true)
			case "TemplateProcessing":
				if len(p.Single) < 2 {
					continue
				}
				if f := p.Single[0].SpecialToken; f != nil && f.ID != "" {
					if tc == nil {
						bos = f.ID
					} else if bos == "" {
						bos = f.ID
					}
					add("bos", f.ID == bos || f.ID == cls)
				}
				if l := p.Single[len(p.Single)-1].SpecialToken; l != nil && l.ID != "" {
					if tc == nil || eos == "" {
						eos = l.ID
					}
					add("eos", l.ID == eos)
				}
			}
		}
	}
	if tc != nil {
		names := map[string]string{"bos": bos, "eos": eos}
		for _, kind := range specialKinds {
			if tc.present("add_" + kind + "_token") {
				var b bool
				if _, err := tc.decode("add_"+kind+"_token", &b); err == nil {
					add(kind, b)
				}
			}
			name, ok := names[kind]
			if !ok {
				name = content(kind + "_token")
			}
			if name == "" {
				continue
			}
			for _, a := range tj.AddedTokens {
				if a.Content == name {
					set(kind, a.ID)
					break
				}
			}
		}
		if tc.present("chat_template") {
			var s string
			if err := json.Unmarshal(tc["chat_template"], &s); err != nil {
				return fmt.Errorf("%s: chat_template is not a string (named templates are not carried over)", TokenizerConfigFile)
			}
			v.ChatTemplate = s
		}
	}
	for _, kind := range specialKinds {
		id := -1
		switch kind {
		case "bos":
			id = h.BOS
		case "eos":
			id = h.EOS
		case "pad":
			id = h.Pad
		}
		set(kind, id)
	}
	return nil
}
