package tokenizer

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Load reads dir/tokenizer.json and, if present, dir/tokenizer_config.json.
func Load(dir string) (*Tokenizer, error) {
	return LoadFile(filepath.Join(dir, "tokenizer.json"))
}

// LoadFile reads a tokenizer.json and the tokenizer_config.json beside it,
// if there is one.
func LoadFile(path string) (*Tokenizer, error) {
	tj, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	cpath := filepath.Join(filepath.Dir(path), "tokenizer_config.json")
	cj, err := os.ReadFile(cpath)
	if errors.Is(err, fs.ErrNotExist) {
		cj = nil
	} else if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return Parse(path, tj, cj)
}

type component struct {
	Type           string            `json:"type"`
	Normalizers    []json.RawMessage `json:"normalizers"`
	Pretokenizers  []json.RawMessage `json:"pretokenizers"`
	Decoders       []json.RawMessage `json:"decoders"`
	Processors     []json.RawMessage `json:"processors"`
	Prepend        string            `json:"prepend"`
	Pattern        struct{ String, Regex *string }
	Content        string `json:"content"`
	Start          int    `json:"start"`
	Stop           int    `json:"stop"`
	AddPrefixSpace *bool  `json:"add_prefix_space"`
	UseRegex       *bool  `json:"use_regex"`
	Replacement    string `json:"replacement"`
	PrependScheme  string `json:"prepend_scheme"`
	Split          *bool  `json:"split"`
	Behavior       string `json:"behavior"`
	Invert         bool   `json:"invert"`
	Single         []struct {
		SpecialToken *struct{ ID string } `json:"SpecialToken"`
		Sequence     *struct{ ID string } `json:"Sequence"`
	} `json:"single"`
	SpecialTokens map[string]struct {
		IDs []int `json:"ids"`
	} `json:"special_tokens"`
}

type fileJSON struct {
	AddedTokens []struct {
		ID         int    `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Special    bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         struct {
		Type         string            `json:"type"`
		Vocab        map[string]int    `json:"vocab"`
		Merges       []json.RawMessage `json:"merges"`
		UnkToken     *string           `json:"unk_token"`
		FuseUnk      bool              `json:"fuse_unk"`
		ByteFallback bool              `json:"byte_fallback"`
		IgnoreMerges bool              `json:"ignore_merges"`
		Prefix       *string           `json:"continuing_subword_prefix"`
		Suffix       *string           `json:"end_of_word_suffix"`
	} `json:"model"`
}

type configJSON struct {
	BOS          json.RawMessage `json:"bos_token"`
	EOS          json.RawMessage `json:"eos_token"`
	AddBOS       *bool           `json:"add_bos_token"`
	AddEOS       *bool           `json:"add_eos_token"`
	CleanUpSpace *bool           `json:"clean_up_tokenization_spaces"`
}

// tokenName reads a config token: a string or {"content": ...}.
func tokenName(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct{ Content string }
	if json.Unmarshal(raw, &o) == nil {
		return o.Content
	}
	return ""
}

// components flattens a component that may be a Sequence.
func components(raw json.RawMessage) ([]component, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	if c.Type != "Sequence" {
		return []component{c}, nil
	}
	var out []component
	for _, list := range [][]json.RawMessage{c.Normalizers, c.Pretokenizers, c.Decoders, c.Processors} {
		for _, r := range list {
			cs, err := components(r)
			if err != nil {
				return nil, err
			}
			out = append(out, cs...)
		}
	}
	return out, nil
}

// Parse builds a tokenizer from the text of a tokenizer.json and, if not
// nil, a tokenizer_config.json; name is the file for error messages.
func Parse(name string, tokenizerJSON, configJSONText []byte) (*Tokenizer, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("tokenizer: %s: %s", name, fmt.Sprintf(format, args...))
	}
	var f fileJSON
	if err := json.Unmarshal(tokenizerJSON, &f); err != nil {
		return nil, fail("%v", err)
	}
	m := &f.Model
	if m.Type != "BPE" {
		if m.Type == "" {
			return nil, fail("model has no type (only BPE is supported)")
		}
		return nil, fail("model type %q is not supported (only BPE is)", m.Type)
	}
	if m.Prefix != nil && *m.Prefix != "" || m.Suffix != nil && *m.Suffix != "" {
		return nil, fail("BPE with continuing_subword_prefix or end_of_word_suffix is not supported")
	}
	t := &Tokenizer{name: name, unk: -1, bos: -1, eos: -1, fuseUnk: m.FuseUnk,
		byteFallback: m.ByteFallback, ignoreMerges: m.IgnoreMerges, cleanUpSpaces: true,
		vocab: make(map[string]int32, len(m.Vocab)), runeIDs: make(map[rune]int32)}
	size := 0
	for s, id := range m.Vocab {
		if id < 0 || id > math.MaxInt32-1 {
			return nil, fail("vocab id %d of %q out of range", id, s)
		}
		size = max(size, id+1)
	}
	for _, a := range f.AddedTokens {
		if a.ID < 0 || a.ID > math.MaxInt32-1 {
			return nil, fail("added token id %d of %q out of range", a.ID, a.Content)
		}
		size = max(size, a.ID+1)
	}
	t.pieces = make([]string, size)
	t.special = make([]bool, size)
	for s, id := range m.Vocab {
		t.pieces[id] = s
		t.vocab[s] = int32(id)
	}
	for _, a := range f.AddedTokens {
		if a.Content == "" {
			return nil, fail("added token %d is empty", a.ID)
		}
		if a.SingleWord {
			return nil, fail("added token %q: single_word is not supported", a.Content)
		}
		t.pieces[a.ID] = a.Content
		t.vocab[a.Content] = int32(a.ID)
		t.special[a.ID] = a.Special
		t.added = append(t.added, AddedToken{ID: a.ID, Content: a.Content, Special: a.Special, LStrip: a.LStrip, RStrip: a.RStrip})
	}
	for k, a := range t.added {
		t.addedBy[a.Content[0]] = append(t.addedBy[a.Content[0]], k)
	}
	for _, ks := range t.addedBy {
		sortLongestFirst(t.added, ks)
	}
	for s, id := range m.Vocab {
		if r := []rune(s); len(r) == 1 {
			t.setRuneID(r[0], int32(id))
		}
	}
	if m.UnkToken != nil {
		id, ok := t.vocab[*m.UnkToken]
		if !ok {
			return nil, fail("unk_token %q is not in the vocabulary", *m.UnkToken)
		}
		t.unk = id
	}
	if t.byteFallback {
		for b := range 256 {
			id, ok := t.vocab[fmt.Sprintf("<0x%02X>", b)]
			if !ok {
				if t.unk < 0 {
					return nil, fail("byte_fallback without a <0x%02X> token or an unk_token", b)
				}
				id = t.unk
			}
			t.byteIDs[b] = id
		}
	}
	if err := t.parseMerges(m.Merges); err != nil {
		return nil, fail("%v", err)
	}

	// Normalizer and pre-tokenizer decide the form.
	norms, err := components(f.Normalizer)
	if err != nil {
		return nil, fail("normalizer: %v", err)
	}
	for _, n := range norms {
		switch {
		case n.Type == "Prepend" && n.Prepend == metaspace:
			t.prepend = true
		case n.Type == "Replace" && n.Pattern.String != nil && *n.Pattern.String == " " && n.Content == metaspace:
			t.replaceSpace = true
		default:
			return nil, fail("normalizer %s is not supported (only Prepend \"▁\" and Replace \" \" with \"▁\")", describe(n))
		}
	}
	pres, err := components(f.PreTokenizer)
	if err != nil {
		return nil, fail("pre_tokenizer: %v", err)
	}
	for _, p := range pres {
		switch {
		case p.Type == "Metaspace" && (p.Replacement == metaspace || p.Replacement == ""):
			if p.Split != nil && *p.Split {
				return nil, fail("pre_tokenizer Metaspace with split is not supported")
			}
			t.replaceSpace = true
			t.prepend = p.PrependScheme == "always" || p.PrependScheme == "first" ||
				(p.PrependScheme == "" && (p.AddPrefixSpace == nil || *p.AddPrefixSpace))
			t.prependFirst = p.PrependScheme == "first"
			t.prependUnless = true
		case p.Type == "ByteLevel":
			t.kind = ByteLevel
			t.addPrefixSpace = p.AddPrefixSpace != nil && *p.AddPrefixSpace
			if p.UseRegex == nil || *p.UseRegex {
				if t.split != splitNone {
					return nil, fail("pre_tokenizer: two regex splits")
				}
				t.split = splitGPT2
			}
		case p.Type == "Split" && p.Pattern.Regex != nil && !p.Invert && p.Behavior == "Isolated":
			sp, ok := patternSplitter(*p.Pattern.Regex)
			if !ok {
				return nil, fail("pre_tokenizer Split pattern %q is not supported (only GPT-2's, Llama 3's and Qwen2's)", *p.Pattern.Regex)
			}
			if t.split != splitNone {
				return nil, fail("pre_tokenizer: two regex splits")
			}
			t.split = sp
		default:
			return nil, fail("pre_tokenizer %s is not supported", describe(p))
		}
	}
	if t.kind == ByteLevel {
		if t.prepend || t.replaceSpace {
			return nil, fail("a byte-level pre_tokenizer with a SentencePiece normalizer is not supported")
		}
		for b := range 256 {
			id, ok := t.vocab[string(byteToRune[b])]
			if !ok {
				return nil, fail("byte-level vocabulary lacks the character %q of byte 0x%02X", byteToRune[b], b)
			}
			t.byteRuneIDs[b] = id
		}
	} else {
		if !t.replaceSpace {
			return nil, fail("neither a byte-level pre_tokenizer nor a SentencePiece-style \"▁\" normalizer or Metaspace: not a form this package supports")
		}
		t.kind = SentencePiece
		t.spaceRune = '▁'
		t.setSpaceSplits()
	}

	decs, err := components(f.Decoder)
	if err != nil {
		return nil, fail("decoder: %v", err)
	}
	for _, d := range decs {
		switch {
		case d.Type == "ByteLevel" && t.kind == ByteLevel:
			t.decodeByteLvl = true
		case d.Type == "Replace" && d.Pattern.String != nil && *d.Pattern.String == metaspace && d.Content == " ":
			t.decodeMeta = true
		case d.Type == "Metaspace":
			t.decodeMeta = true
			if d.PrependScheme != "never" {
				t.stripLeading = 1
			}
		case d.Type == "ByteFallback":
			t.decodeBytes = true
		case d.Type == "Fuse":
		case d.Type == "Strip" && d.Content == " " && d.Stop == 0:
			t.stripLeading = d.Start
		default:
			return nil, fail("decoder %s is not supported", describe(d))
		}
	}

	procs, err := components(f.PostProcessor)
	if err != nil {
		return nil, fail("post_processor: %v", err)
	}
	for _, p := range procs {
		switch p.Type {
		case "ByteLevel":
		case "TemplateProcessing":
			seen := false
			for _, it := range p.Single {
				switch {
				case it.Sequence != nil:
					seen = true
				case it.SpecialToken != nil:
					st, ok := p.SpecialTokens[it.SpecialToken.ID]
					if !ok {
						return nil, fail("post_processor: template token %q is not among its special_tokens", it.SpecialToken.ID)
					}
					if seen {
						t.suffix = append(t.suffix, st.IDs...)
					} else {
						t.prefix = append(t.prefix, st.IDs...)
					}
				}
			}
		default:
			return nil, fail("post_processor %s is not supported", describe(p))
		}
	}
	for _, id := range slices.Concat(t.prefix, t.suffix) {
		if id < 0 || id >= len(t.pieces) {
			return nil, fail("post_processor: id %d out of range", id)
		}
	}
	if len(t.prefix) > 0 {
		t.bos = int32(t.prefix[0])
	}
	if len(t.suffix) > 0 {
		t.eos = int32(t.suffix[len(t.suffix)-1])
	}
	if configJSONText != nil {
		var c configJSON
		if err := json.Unmarshal(configJSONText, &c); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %v", filepath.Join(filepath.Dir(name), "tokenizer_config.json"), err)
		}
		if s := tokenName(c.BOS); s != "" {
			if id, ok := t.vocab[s]; ok {
				t.bos = id
			}
		}
		if s := tokenName(c.EOS); s != "" {
			if id, ok := t.vocab[s]; ok {
				t.eos = id
			}
		}
		// transformers' Llama tokenizers rebuild the template from these.
		if c.AddBOS != nil {
			t.prefix = slices.DeleteFunc(t.prefix, func(id int) bool { return id == int(t.bos) })
			if *c.AddBOS && t.bos >= 0 {
				t.prefix = append([]int{int(t.bos)}, t.prefix...)
			}
		}
		if c.AddEOS != nil {
			t.suffix = slices.DeleteFunc(t.suffix, func(id int) bool { return id == int(t.eos) })
			if *c.AddEOS && t.eos >= 0 {
				t.suffix = append(t.suffix, int(t.eos))
			}
		}
		if c.CleanUpSpace != nil {
			t.cleanUpSpaces = *c.CleanUpSpace
		}
	}
	return t, nil
}

func describe(c component) string {
	b, _ := json.Marshal(c.Type)
	return string(b)
}

func (t *Tokenizer) parseMerges(raw []json.RawMessage) error {
	t.merges.reserve(len(raw))
	for rank, r := range raw {
		var a, b string
		var s string
		var pair []string
		if json.Unmarshal(r, &s) == nil {
			var ok bool
			a, b, ok = strings.Cut(s, " ")
			if !ok || strings.Contains(b, " ") {
				return fmt.Errorf("merge %d %q is not two tokens", rank, s)
			}
		} else if json.Unmarshal(r, &pair) == nil && len(pair) == 2 {
			a, b = pair[0], pair[1]
		} else {
			return fmt.Errorf("merge %d %s is neither \"a b\" nor [\"a\", \"b\"]", rank, r)
		}
		if err := t.addMerge(rank, a, b); err != nil {
			return err
		}
	}
	return nil
}

// addMerge adds the merge of rank (a, b), unless the pair has one already.
func (t *Tokenizer) addMerge(rank int, a, b string) error {
	ia, ok1 := t.vocab[a]
	ib, ok2 := t.vocab[b]
	ic, ok3 := t.vocab[a+b]
	if !ok1 || !ok2 || !ok3 {
		return fmt.Errorf("merge %d (%q, %q): a token is not in the vocabulary", rank, a, b)
	}
	k := pairKey(ia, ib)
	if _, dup := t.merges.get(k); !dup {
		t.merges.set(k, merge{int32(rank), ic})
	}
	return nil
}

// sortLongestFirst orders the added tokens ks (indices into added) longest
// first, for leftmost-longest matching.
func sortLongestFirst(added []AddedToken, ks []int) {
	sort.SliceStable(ks, func(i, j int) bool { return len(added[ks[i]].Content) > len(added[ks[j]].Content) })
}

// LoadLlama2C reads llama2.c's tokenizer.bin: an int32 max token length,
// then per token a float32 score, an int32 length and the bytes. Ids 0, 1
// and 2 are <unk>, BOS and EOS; ids 3 to 258 are the bytes. Encode adds
// BOS, as llama2.c's generate does.
func LoadLlama2C(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return ParseLlama2C(path, data)
}

// ParseLlama2C is LoadLlama2C on the file's bytes.
func ParseLlama2C(name string, data []byte) (*Tokenizer, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("tokenizer: %s: %s", name, fmt.Sprintf(format, args...))
	}
	rd := bytes.NewReader(data)
	var maxLen int32
	if err := binary.Read(rd, binary.LittleEndian, &maxLen); err != nil {
		return nil, fail("reading the header: %v", err)
	}
	if maxLen <= 0 || maxLen > 1<<16 {
		return nil, fail("max token length %d is not plausible", maxLen)
	}
	var pieces []string
	var scores []float32
	for rd.Len() > 0 {
		var rec struct {
			Score float32
			Len   int32
		}
		if err := binary.Read(rd, binary.LittleEndian, &rec); err != nil {
			return nil, fail("token %d: %v", len(pieces), err)
		}
		if rec.Len < 0 || rec.Len > maxLen || int(rec.Len) > rd.Len() {
			return nil, fail("token %d: length %d (max %d, %d bytes left)", len(pieces), rec.Len, maxLen, rd.Len())
		}
		b := make([]byte, rec.Len)
		rd.Read(b)
		if math.IsNaN(float64(rec.Score)) {
			return nil, fail("token %d: score is NaN", len(pieces))
		}
		pieces = append(pieces, string(b))
		scores = append(scores, rec.Score)
	}
	if len(pieces) < 259 {
		return nil, fail("%d tokens: fewer than the 3 special and 256 byte tokens", len(pieces))
	}
	t := &Tokenizer{name: name, kind: Llama2C, pieces: pieces, special: make([]bool, len(pieces)),
		vocab: make(map[string]int32, len(pieces)), runeIDs: make(map[rune]int32),
		unk: 0, bos: 1, eos: 2, prefix: []int{1}, byteFallback: true, prepend: true, spaceRune: ' ',
		decodeBytes: true, stripAfterBOS: true}
	t.special[0], t.special[1], t.special[2] = true, true, true
	for i := len(pieces) - 1; i >= 0; i-- { // the first of equal pieces wins
		t.vocab[pieces[i]] = int32(i)
		if r := []rune(pieces[i]); len(r) == 1 && i >= 3 {
			t.setRuneID(r[0], int32(i))
		}
	}
	for b := range 256 {
		t.byteIDs[b] = int32(b + 3)
	}
	t.scoreMerges(scores, func(int) bool { return true })
	t.setSpaceSplits()
	return t, nil
}

func cmpF(a, b float32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// scoreMerges fills the merge table from the pieces' scores, as
// SentencePiece-by-score encoders (llama2.c, llama.cpp's SPM) merge: the
// adjacent pair whose concatenation is a token (one that result allows)
// with the highest score, leftmost among equals. Ranks ordered by score
// (equal scores, equal ranks) and the heap's leftmost tie-break do the
// same.
func (t *Tokenizer) scoreMerges(scores []float32, result func(id int) bool) {
	distinct := slices.Clone(scores)
	slices.SortFunc(distinct, func(a, b float32) int { return -cmpF(a, b) })
	distinct = slices.Compact(distinct)
	rankOf := make(map[float32]int32, len(distinct))
	for i, s := range distinct {
		rankOf[s] = int32(i)
	}
	for id, p := range t.pieces {
		if t.vocab[p] != int32(id) || !result(id) {
			continue
		}
		for k := 1; k < len(p); k++ {
			a, ok1 := t.vocab[p[:k]]
			b, ok2 := t.vocab[p[k:]]
			if ok1 && ok2 {
				t.merges.set(pairKey(a, b), merge{rankOf[scores[id]], int32(id)})
			}
		}
	}
}
