package tokenizer

import (
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// Kind is the form of a tokenizer.
type Kind int

const (
	// SentencePiece is BPE over text with " " as "▁", with byte fallback.
	SentencePiece Kind = iota + 1
	// ByteLevel is GPT-2's byte-level BPE with a regex pre-tokenizer.
	ByteLevel
	// Llama2C is llama2.c's tokenizer.bin, merged by score.
	Llama2C
)

func (k Kind) String() string {
	switch k {
	case SentencePiece:
		return "sentencepiece"
	case ByteLevel:
		return "byte-level"
	case Llama2C:
		return "llama2.c"
	}
	return "unknown"
}

// AddedToken is a token matched in the raw text before BPE.
type AddedToken struct {
	ID      int
	Content string
	Special bool // special tokens are left out by DecodeSkipSpecial
	LStrip  bool // swallows the whitespace before it
	RStrip  bool // swallows the whitespace after it
}

const metaspace = "▁"

// Tokenizer encodes text to token ids and decodes them. It is safe for
// concurrent use.
type Tokenizer struct {
	name   string // the file it came from, for errors
	kind   Kind
	pieces []string // by id
	vocab  map[string]int32
	merges mergeTable

	special []bool // by id
	added   []AddedToken
	// addedBy lists the added tokens by their first byte, longest first,
	// so that matching is leftmost-longest as in the Hugging Face library.
	addedBy [256][]int

	unk          int32 // -1 if none
	fuseUnk      bool
	byteFallback bool
	byteIDs      [256]int32 // "<0xNN>" ids when byteFallback
	runeIDs      map[rune]int32
	asciiIDs     [utf8.RuneSelf]int32 // runeIDs of ASCII, plus 1 (0: none)
	ignoreMerges bool

	// SentencePiece normalization.
	prepend       bool // put "▁" in front of each text segment
	prependFirst  bool // only in front of the segment at offset 0
	prependUnless bool // not when the segment already starts with "▁" (Metaspace)
	replaceSpace  bool // " " becomes "▁"
	spaceRune     rune // what " " becomes: '▁', or ' ' for llama2.c
	spaceID       int32
	// spaceSplits: no token has the space rune after something else, so
	// no merge crosses the start of a run of spaces.
	spaceSplits bool

	// Byte-level pre-tokenization.
	split          splitter
	addPrefixSpace bool
	byteRuneIDs    [256]int32 // id of the character each byte maps to

	bos, eos       int32 // -1 if none
	prefix, suffix []int // ids Encode puts around the text

	// Decoding.
	decodeMeta    bool // "▁" decodes to " "
	decodeBytes   bool // "<0xNN>" decodes to its byte
	decodeByteLvl bool // GPT-2 byte-level decoding
	stripLeading  int  // spaces removed from the start of the decoded text
	stripAfterBOS bool // llama2.c: a piece's leading space right after BOS goes
	cleanUpSpaces bool // transformers' clean_up_tokenization
	// encoders is a free list of Encode's scratch, each with its cache of
	// merged words. Not a sync.Pool: that drops its contents at every
	// other garbage collection, and with them the caches, which on real
	// text (many distinct words) roughly halved the speed.
	encMu    sync.Mutex
	encoders []*encoder
}

// Name is the file the tokenizer was read from.
func (t *Tokenizer) Name() string { return t.name }

// Kind is the tokenizer's form.
func (t *Tokenizer) Kind() Kind { return t.kind }

// VocabSize is the number of ids, added tokens included.
func (t *Tokenizer) VocabSize() int { return len(t.pieces) }

// BOS is the beginning-of-sequence id, or -1.
func (t *Tokenizer) BOS() int { return int(t.bos) }

// EOS is the end-of-sequence id, or -1.
func (t *Tokenizer) EOS() int { return int(t.eos) }

// Piece is the vocabulary string of id ("" if out of range).
func (t *Tokenizer) Piece(id int) string {
	if id < 0 || id >= len(t.pieces) {
		return ""
	}
	return t.pieces[id]
}

// ID is the id of a vocabulary string.
func (t *Tokenizer) ID(piece string) (int, bool) {
	id, ok := t.vocab[piece]
	return int(id), ok
}

// IsSpecial reports whether id is a special token.
func (t *Tokenizer) IsSpecial(id int) bool {
	return id >= 0 && id < len(t.special) && t.special[id]
}

// AddedTokens are the tokens matched before BPE.
func (t *Tokenizer) AddedTokens() []AddedToken { return append([]AddedToken(nil), t.added...) }

// encoder is the per-goroutine scratch of Encode, with a cache of the ids
// of byte-level pre-tokens.
type encoder struct {
	m     merger
	syms  []int32
	cache map[string][]int32
}

const maxCache = 1 << 16

// Encode is the ids of text with the BOS/EOS tokens the tokenizer adds, as
// the Hugging Face library's encode with add_special_tokens.
func (t *Tokenizer) Encode(text string) []int {
	return t.EncodeWith(text, true)
}

// EncodeWith is Encode, adding the BOS/EOS tokens only if addSpecial.
// Added tokens in text are matched either way.
func (t *Tokenizer) EncodeWith(text string, addSpecial bool) []int {
	e := t.getEncoder()
	defer t.putEncoder(e)
	out := make([]int, 0, len(text)/3+4)
	if addSpecial {
		out = append(out, t.prefix...)
	}
	start := 0   // of the pending text segment
	segEnd := -1 // where the segment ends when an added token begins
	for i := 0; i < len(text); {
		cands := t.addedBy[text[i]]
		matched := -1
		for _, k := range cands {
			if strings.HasPrefix(text[i:], t.added[k].Content) {
				matched = k
				break
			}
		}
		if matched < 0 {
			i++
			continue
		}
		a := t.added[matched]
		segEnd = i
		if a.LStrip {
			for segEnd > start {
				r, w := utf8.DecodeLastRuneInString(text[start:segEnd])
				if !isS(r) {
					break
				}
				segEnd -= w
			}
		}
		out = t.encodeSegment(e, out, text[start:segEnd], start == 0)
		out = append(out, a.ID)
		i += len(a.Content)
		if a.RStrip {
			i = span(text, i, isS)
		}
		start = i
	}
	out = t.encodeSegment(e, out, text[start:], start == 0)
	if addSpecial {
		out = append(out, t.suffix...)
	}
	return out
}

// maxEncoders bounds the free list: more goroutines than that encoding at
// once make encoders that are dropped after use.
const maxEncoders = 64

func (t *Tokenizer) getEncoder() *encoder {
	t.encMu.Lock()
	defer t.encMu.Unlock()
	if n := len(t.encoders); n > 0 {
		e := t.encoders[n-1]
		t.encoders = t.encoders[:n-1]
		return e
	}
	return &encoder{cache: make(map[string][]int32)}
}

func (t *Tokenizer) putEncoder(e *encoder) {
	t.encMu.Lock()
	defer t.encMu.Unlock()
	if len(t.encoders) < maxEncoders {
		t.encoders = append(t.encoders, e)
	}
}

// encodeSegment appends the ids of a text segment free of added tokens.
func (t *Tokenizer) encodeSegment(e *encoder, out []int, s string, atStart bool) []int {
	if s == "" {
		return out
	}
	if t.kind == ByteLevel {
		return t.encodeByteLevel(e, out, s)
	}
	syms := e.syms[:0]
	if t.prepend && (atStart || !t.prependFirst) && !(t.prependUnless && (s[0] == ' ' || strings.HasPrefix(s, metaspace))) {
		syms = t.appendRune(syms, t.spaceRune)
	}
	for _, r := range s {
		if r == ' ' && t.replaceSpace {
			r = t.spaceRune
		}
		syms = t.appendRune(syms, r)
	}
	e.syms = syms
	if !t.spaceSplits {
		for _, id := range e.m.apply(syms, &t.merges) {
			out = append(out, int(id))
		}
		return out
	}
	// Merges cannot cross the start of a run of spaces (see spaceSplits),
	// so each run-and-word is merged, and cached, on its own.
	for i := 0; i < len(syms); {
		j := i + 1
		for j < len(syms) && (syms[j] != t.spaceID || syms[j-1] == t.spaceID) {
			j++
		}
		out = e.mergeCached(out, syms[i:j], &t.merges)
		i = j
	}
	return out
}

// mergeCached appends the merged ids of the symbols chunk, through the
// cache, keyed by the symbols' bytes.
func (e *encoder) mergeCached(out []int, chunk []int32, merges *mergeTable) []int {
	key := unsafe.String((*byte)(unsafe.Pointer(&chunk[0])), 4*len(chunk))
	if ids, ok := e.cache[key]; ok {
		for _, id := range ids {
			out = append(out, int(id))
		}
		return out
	}
	key = strings.Clone(key)
	merged := e.m.apply(chunk, merges)
	if len(e.cache) >= maxCache {
		clear(e.cache)
	}
	e.cache[key] = append([]int32(nil), merged...)
	for _, id := range merged {
		out = append(out, int(id))
	}
	return out
}

// setRuneID records id as the token of the one-character piece r.
func (t *Tokenizer) setRuneID(r rune, id int32) {
	t.runeIDs[r] = id
	if r >= 0 && r < utf8.RuneSelf {
		t.asciiIDs[r] = id + 1
	}
}

// appendRune appends the symbol of r: its token, else its bytes' fallback
// tokens, else the unknown token (fused with an unknown before it).
func (t *Tokenizer) appendRune(syms []int32, r rune) []int32 {
	if r < utf8.RuneSelf {
		if id := t.asciiIDs[r]; id > 0 {
			return append(syms, id-1)
		}
	} else if id, ok := t.runeIDs[r]; ok {
		return append(syms, id)
	}
	if t.byteFallback {
		var b [utf8.UTFMax]byte
		n := utf8.EncodeRune(b[:], r)
		for _, c := range b[:n] {
			syms = append(syms, t.byteIDs[c])
		}
		return syms
	}
	if t.unk < 0 {
		return syms
	}
	if t.fuseUnk && len(syms) > 0 && syms[len(syms)-1] == t.unk {
		return syms
	}
	return append(syms, t.unk)
}

func (t *Tokenizer) encodeByteLevel(e *encoder, out []int, s string) []int {
	if t.addPrefixSpace && s[0] != ' ' {
		s = " " + s
	}
	for i := 0; i < len(s); {
		j := len(s)
		if t.split != splitNone {
			j = t.split.next(s, i)
		}
		word := s[i:j]
		i = j
		if ids, ok := e.cache[word]; ok {
			for _, id := range ids {
				out = append(out, int(id))
			}
			continue
		}
		syms := e.syms[:0]
		for k := 0; k < len(word); k++ {
			syms = append(syms, t.byteRuneIDs[word[k]])
		}
		if t.ignoreMerges {
			var sb strings.Builder
			for k := 0; k < len(word); k++ {
				sb.WriteRune(byteToRune[word[k]])
			}
			if id, ok := t.vocab[sb.String()]; ok {
				syms = append(syms[:0], id)
			}
		}
		syms = e.m.apply(syms, &t.merges)
		e.syms = syms
		if len(e.cache) >= maxCache {
			clear(e.cache)
		}
		e.cache[strings.Clone(word)] = append([]int32(nil), syms...)
		for _, id := range syms {
			out = append(out, int(id))
		}
	}
	return out
}

// Decode is the text of ids, special tokens included, as the Hugging Face
// library's decode. Ids out of range are left out.
func (t *Tokenizer) Decode(ids []int) string { return t.decode(ids, false) }

// DecodeSkipSpecial is Decode leaving out special tokens, as the Hugging
// Face library's decode with skip_special_tokens. For SentencePiece
// tokenizers (tokenizer.json, GGUF and llama2.c's) it strips the text's
// first leading space as a Llama tokenizer.json's decoder does, whether or
// not a BOS preceded it: [BOS, "▁Once"] and ["▁Once"] both decode to
// "Once".
//
// Byte-fallback tokens ("<0xNN>") decode as the Hugging Face library (in
// Rust, which transformers uses) does: each run of them as its bytes if
// they are valid UTF-8, else as one U+FFFD per token. (@huggingface/
// tokenizers in JavaScript gives one U+FFFD per ill-formed subpart
// instead; the two agree on valid UTF-8.)
func (t *Tokenizer) DecodeSkipSpecial(ids []int) string { return t.decode(ids, true) }

func (t *Tokenizer) decode(ids []int, skipSpecial bool) string {
	var sb strings.Builder
	var pend []byte // byte-fallback bytes not yet written
	flush := func() {
		if len(pend) == 0 {
			return
		}
		if utf8.Valid(pend) {
			sb.Write(pend)
		} else {
			for range pend {
				sb.WriteRune(utf8.RuneError)
			}
		}
		pend = pend[:0]
	}
	var raw []byte // byte-level bytes
	prevBOS := false
	// A piece's leading space right after BOS goes (llama2.c's decode),
	// except when special tokens are skipped: then, as the Hugging Face
	// library's Strip or Metaspace decoder does on what is left, the text's
	// first leading space goes.
	afterBOS, strip := t.stripAfterBOS, t.stripLeading
	if skipSpecial && afterBOS {
		afterBOS, strip = false, max(strip, 1)
	}
	for _, id := range ids {
		if id < 0 || id >= len(t.pieces) || (skipSpecial && t.special[id]) {
			continue
		}
		p := t.pieces[id]
		if t.decodeByteLvl {
			for _, r := range p {
				if b, ok := runeToByte[r]; ok {
					raw = append(raw, b)
				} else {
					raw = utf8.AppendRune(raw, r)
				}
			}
			continue
		}
		if afterBOS && prevBOS {
			if q := strings.TrimPrefix(p, " "); q != p || !t.decodeMeta {
				p = q
			} else {
				p = strings.TrimPrefix(p, metaspace)
			}
		}
		prevBOS = int32(id) == t.bos
		if t.decodeBytes {
			if b, ok := byteToken(p); ok {
				pend = append(pend, b)
				continue
			}
		}
		flush()
		if t.decodeMeta {
			p = strings.ReplaceAll(p, metaspace, " ")
		}
		sb.WriteString(p)
	}
	flush()
	out := sb.String()
	if t.decodeByteLvl {
		out = lossyUTF8(raw)
	}
	for k := 0; k < strip && strings.HasPrefix(out, " "); k++ {
		out = out[1:]
	}
	if t.cleanUpSpaces {
		for _, r := range cleanUp {
			out = strings.ReplaceAll(out, r[0], r[1])
		}
	}
	return out
}

// cleanUp is transformers' clean_up_tokenization, applied in order.
var cleanUp = [][2]string{{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
	{" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}}

// byteToken parses "<0xNN>".
func byteToken(p string) (byte, bool) {
	if len(p) != 6 || p[0] != '<' || p[1] != '0' || p[2] != 'x' || p[5] != '>' {
		return 0, false
	}
	h := func(c byte) (byte, bool) {
		switch {
		case '0' <= c && c <= '9':
			return c - '0', true
		case 'A' <= c && c <= 'F':
			return c - 'A' + 10, true
		case 'a' <= c && c <= 'f':
			return c - 'a' + 10, true
		}
		return 0, false
	}
	hi, ok1 := h(p[3])
	lo, ok2 := h(p[4])
	return hi<<4 | lo, ok1 && ok2
}

// setSpaceSplits decides spaceSplits once the vocabulary and spaceRune are
// known.
func (t *Tokenizer) setSpaceSplits() {
	id, ok := t.runeIDs[t.spaceRune]
	if !ok {
		return
	}
	sp := string(t.spaceRune)
	splits := true
	t.merges.each(func(m merge) {
		if strings.Contains(strings.TrimLeft(t.pieces[m.id], sp), sp) {
			splits = false
		}
	})
	if splits {
		t.spaceID, t.spaceSplits = id, true
	}
}
