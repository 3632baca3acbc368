package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// The regexes of the byte-level pre-tokenizers, as tokenizer.json spells
// them. Each is implemented by a hand-written scanner below.
const (
	gpt2Pattern   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Pattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// splitter is one of the recognised pre-tokenizer patterns.
type splitter int

const (
	splitNone   splitter = iota
	splitGPT2            // gpt2Pattern
	splitLlama3          // llama3Pattern (maxDigits 3)
	splitQwen2           // qwen2Pattern (maxDigits 1)
	// splitSmolLM is llama.cpp's split for SmolLM (and StarCoder,
	// Command-R, ...): first `\p{N}`, each number character a piece of its
	// own, then gpt2Pattern on each stretch between them, its lookahead
	// `\s+(?!\S)` ending at the stretch's end. It has no tokenizer.json
	// regex of its own (Hugging Face spells it Digits(individual_digits)
	// then ByteLevel), so only FromGGUF uses it.
	splitSmolLM
)

func patternSplitter(p string) (splitter, bool) {
	switch p {
	case gpt2Pattern:
		return splitGPT2, true
	case llama3Pattern:
		return splitLlama3, true
	case qwen2Pattern:
		return splitQwen2, true
	}
	return splitNone, false
}

func isL(r rune) bool { return unicode.IsLetter(r) }
func isN(r rune) bool { return unicode.IsNumber(r) }

// isS is \s as Oniguruma reads it in Unicode mode: the White_Space property.
func isS(r rune) bool { return unicode.IsSpace(r) }

func isNL(r rune) bool { return r == '\r' || r == '\n' }

// runeAt decodes the rune at s[i:], returning 0 width at the end.
func runeAt(s string, i int) (rune, int) {
	if i >= len(s) {
		return -1, 0
	}
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// span advances over runes satisfying f from i and returns the end.
func span(s string, i int, f func(rune) bool) int {
	for i < len(s) {
		r, w := runeAt(s, i)
		if !f(r) {
			break
		}
		i += w
	}
	return i
}

// contraction reports the length of 's 't 're 've 'm 'll 'd at s[i:] (a
// quote first), case-insensitively if fold.
func contraction(s string, i int, fold bool) int {
	if i+1 >= len(s) || s[i] != '\'' {
		return 0
	}
	lower := func(c byte) byte {
		if fold && 'A' <= c && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	switch lower(s[i+1]) {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v':
		if i+2 < len(s) && lower(s[i+2]) == 'e' {
			return 3
		}
	case 'l':
		if i+2 < len(s) && lower(s[i+2]) == 'l' {
			return 3
		}
	}
	return 0
}

// whitespace is `\s+(?!\S)|\s+` at i, where s[i] starts whitespace: the
// whole run if it reaches the end of s, else the run less its last rune
// when that leaves something, else the one rune.
func whitespace(s string, i int) int {
	end := span(s, i, isS)
	if end == len(s) {
		return end
	}
	_, w := utf8.DecodeLastRuneInString(s[i:end])
	if end-w > i {
		return end - w
	}
	return end
}

// next returns the end of the pre-token that starts at i (i < len(s)).
func (sp splitter) next(s string, i int) int {
	switch sp {
	case splitGPT2:
		return nextGPT2(s, i, false)
	case splitSmolLM:
		if r, w := runeAt(s, i); isN(r) {
			return i + w
		}
		return nextGPT2(s, i, true)
	}
	return nextLlama3(s, i, sp == splitQwen2)
}

// nextGPT2 is one match of gpt2Pattern at i. If digitsApart, s[i] is no
// number character and the match is that in the stretch of s up to the
// next number character (as after splitSmolLM's first split).
func nextGPT2(s string, i int, digitsApart bool) int {
	if n := contraction(s, i, false); n > 0 {
		return i + n
	}
	j := i
	if s[j] == ' ' {
		j++
	}
	r, w := runeAt(s, j)
	switch {
	case w == 0:
	case isL(r):
		return span(s, j+w, isL)
	case isN(r):
		if digitsApart {
			return j // " " before a digit: the stretch ends there
		}
		return span(s, j+w, isN)
	case !isS(r):
		return span(s, j+w, func(r rune) bool { return !isS(r) && !isL(r) && !isN(r) })
	}
	if digitsApart {
		// The stretch ends where the whitespace does if a number follows
		// it: the whole run is `\s+(?!\S)` at the stretch's end.
		end := span(s, i, isS)
		if r, w := runeAt(s, end); w > 0 && isN(r) {
			return end
		}
	}
	return whitespace(s, i)
}

// nextLlama3 is one match of llama3Pattern (qwen2Pattern if oneDigit) at i.
func nextLlama3(s string, i int, oneDigit bool) int {
	if n := contraction(s, i, true); n > 0 {
		return i + n
	}
	r, w := runeAt(s, i)
	if isL(r) {
		return span(s, i+w, isL)
	}
	if !isNL(r) && !isN(r) {
		if r2, w2 := runeAt(s, i+w); w2 > 0 && isL(r2) {
			return span(s, i+w+w2, isL)
		}
	}
	if isN(r) {
		end := i + w
		if !oneDigit {
			for k := 1; k < 3; k++ {
				r2, w2 := runeAt(s, end)
				if w2 == 0 || !isN(r2) {
					break
				}
				end += w2
			}
		}
		return end
	}
	j := i
	if r == ' ' {
		j++
	}
	if r2, w2 := runeAt(s, j); w2 > 0 && !isS(r2) && !isL(r2) && !isN(r2) {
		end := span(s, j+w2, func(r rune) bool { return !isS(r) && !isL(r) && !isN(r) })
		return span(s, end, isNL)
	}
	// r is whitespace here.
	end := span(s, i, isS)
	lastNL := -1
	for k := i; k < end; {
		r2, w2 := runeAt(s, k)
		if isNL(r2) {
			lastNL = k + w2
		}
		k += w2
	}
	if lastNL > 0 {
		return lastNL
	}
	return whitespace(s, i)
}
