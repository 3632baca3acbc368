package safetensors

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Limits on what Open accepts.
const (
	// MaxHeaderLen bounds the JSON header's length in bytes (the Rust
	// crate's limit is 100 MB).
	MaxHeaderLen = 100 << 20
	// MaxDims bounds the number of dimensions of a tensor.
	MaxDims = 8
)

// metadataKey is the header key that holds string metadata, not a tensor.
const metadataKey = "__metadata__"

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name  string
	DType string // F64 F32 F16 BF16 I8 U8 I16 I32 I64 BOOL
	Shape []int  // outermost first; empty for a scalar
	// Begin and End are the tensor's byte range [Begin, End) in the data
	// buffer, which starts after the header (File.DataOffset in the file).
	Begin, End int64
}

// Len is the number of elements, the product of Shape (1 for a scalar).
func (t TensorInfo) Len() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// header is a parsed and validated header.
type header struct {
	tensors  []TensorInfo // sorted by Begin
	metadata map[string]string
	index    map[string]int // tensors by name, their index in tensors
}

// The header is read by a JSON parser of its own over the header's bytes
// (encoding/json's Decoder, which walks tokens, allocates some 100 bytes a
// token; its maps would keep the last of duplicate keys silently). It
// checks all of the JSON, as strictly as encoding/json, and allocates only
// what it keeps: tensor names, metadata, and a few words per tensor.
// Field names, dtypes, numbers and whatever is read through (unknown
// fields) are compared and checked in place.

// maxDepth bounds the nesting of JSON values, as encoding/json does.
const maxDepth = 10000

// place says where in the header the parser is, for messages: "header",
// `tensor "w"`, `tensor "w" shape`, `__metadata__["k"]`. It is a value, not
// a string, so that the parser builds none until it reports an error.
type place struct {
	kind  placeKind
	name  string // the tensor, or the metadata key
	field string // the tensor's field
}

type placeKind int

const (
	inHeader placeKind = iota
	inHeaderKey
	inTensor
	inMetadata
	inMetadataValue
)

func (p place) String() string {
	switch p.kind {
	case inHeaderKey:
		return "header key"
	case inTensor:
		if p.field != "" {
			return fmt.Sprintf("tensor %q %s", p.name, p.field)
		}
		return fmt.Sprintf("tensor %q", p.name)
	case inMetadata:
		return metadataKey
	case inMetadataValue:
		return fmt.Sprintf("%s[%q]", metadataKey, p.name)
	}
	return "header"
}

// scanner reads JSON from a header's bytes.
type scanner struct {
	b     []byte
	pos   int
	depth int // of the objects and arrays pos is in
}

func (s *scanner) space() {
	for s.pos < len(s.b) && isJSONSpace(rune(s.b[s.pos])) {
		s.pos++
	}
}

func (s *scanner) syntaxError(at place, format string, args ...any) error {
	return fmt.Errorf("header is not valid JSON at byte %d, in %v: %s", s.pos, at, fmt.Sprintf(format, args...))
}

func (s *scanner) endsEarly(at place) error {
	return fmt.Errorf("header JSON ends early, in %v", at)
}

// unexpected is the error for the byte at pos, which the JSON grammar does
// not allow there (context says what was looked for), or for the end.
func (s *scanner) unexpected(at place, context string) error {
	if s.pos >= len(s.b) {
		return s.endsEarly(at)
	}
	r, _ := utf8.DecodeRune(s.b[s.pos:])
	return s.syntaxError(at, "invalid character %s %s", strconv.QuoteRune(r), context)
}

// begin returns the first byte of the value at pos, after white space: one
// of { [ " t f n - and the digits.
func (s *scanner) begin(at place) (byte, error) {
	s.space()
	if s.pos < len(s.b) {
		switch c := s.b[s.pos]; c {
		case '{', '[', '"', 't', 'f', 'n', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			return c, nil
		}
	}
	return 0, s.unexpected(at, "looking for beginning of value")
}

// open reads the '{' or '[' that starts the value at pos; another value is
// an error that says what it is.
func (s *scanner) open(delim byte, at place) error {
	c, err := s.begin(at)
	if err != nil {
		return err
	}
	if c != delim {
		return s.wrongValue(at, fmt.Sprintf("'%c'", delim))
	}
	s.pos++
	return nil
}

// wrongValue is the error for the value at pos, which is valid JSON but
// not what the header needs there: "expected WANT, found VALUE".
func (s *scanner) wrongValue(at place, want string) error {
	c, err := s.begin(at)
	if err != nil {
		return err
	}
	var found string
	switch c {
	case '{', '[':
		found = fmt.Sprintf("'%c'", c)
	case '"':
		v, err := s.string(at, true)
		if err != nil {
			return err
		}
		found = strconv.Quote(string(v))
	case 't', 'f', 'n':
		v, err := s.literal(at)
		if err != nil {
			return err
		}
		found = string(v)
	default:
		v, err := s.number(at)
		if err != nil {
			return err
		}
		found = string(v)
	}
	return fmt.Errorf("%v: expected %s, found %s", at, want, found)
}

// more is called before each member of an object or element of an array
// whose opening delimiter has been read, n members or elements on: it
// reads the ',' before the next one and reports true, or reads the closing
// delimiter and reports false.
func (s *scanner) more(close byte, n int, at place) (bool, error) {
	s.space()
	if s.pos < len(s.b) {
		switch c := s.b[s.pos]; {
		case c == close:
			s.pos++
			return false, nil
		case n == 0:
			return true, nil
		case c == ',':
			s.pos++
			return true, nil
		}
	}
	if close == '}' {
		return false, s.unexpected(at, "after object key:value pair")
	}
	return false, s.unexpected(at, "after array element")
}

// key reads the key of an object's member and the ':' after it, and
// returns the key's value (see string).
func (s *scanner) key(at place) ([]byte, error) {
	s.space()
	if s.pos >= len(s.b) || s.b[s.pos] != '"' {
		return nil, s.unexpected(at, "looking for beginning of object key string")
	}
	k, err := s.string(at, true)
	if err != nil {
		return nil, err
	}
	s.space()
	if s.pos >= len(s.b) || s.b[s.pos] != ':' {
		return nil, s.unexpected(at, "after object key")
	}
	s.pos++
	return k, nil
}

// str reads the value at pos, which must be a string.
func (s *scanner) str(at place) ([]byte, error) {
	c, err := s.begin(at)
	if err != nil {
		return nil, err
	}
	if c != '"' {
		return nil, s.wrongValue(at, "a string")
	}
	return s.string(at, true)
}

// string reads the string literal at pos and, if decode, returns its
// value: a slice of the header where the literal has no escapes, or else
// a new slice no longer than the literal. It decodes escapes as
// encoding/json does (a lone surrogate becomes U+FFFD).
func (s *scanner) string(at place, decode bool) ([]byte, error) {
	s.pos++ // "
	start := s.pos
	var out []byte // the value, from the first escape on
	for s.pos < len(s.b) {
		c := s.b[s.pos]
		switch {
		case c == '"':
			s.pos++
			if out != nil {
				return out, nil
			}
			return s.b[start : s.pos-1], nil
		case c < 0x20:
			return nil, s.syntaxError(at, "invalid character %s in string literal", strconv.QuoteRune(rune(c)))
		case c != '\\':
			if out != nil {
				out = append(out, c)
			}
			s.pos++
			continue
		}
		if decode && out == nil {
			out = make([]byte, s.pos-start, s.literalEnd()-start)
			copy(out, s.b[start:s.pos])
		}
		r, err := s.escape(at)
		if err != nil {
			return nil, err
		}
		if out != nil {
			out = utf8.AppendRune(out, r)
		}
	}
	return nil, s.endsEarly(at)
}

// literalEnd returns where the string literal that pos is in ends (at its
// closing quote), or the end of the header.
func (s *scanner) literalEnd() int {
	for i := s.pos; i < len(s.b); i++ {
		switch s.b[i] {
		case '"':
			return i
		case '\\':
			i++
		}
	}
	return len(s.b)
}

// escape reads the escape sequence at pos and returns the rune it stands
// for; a surrogate pair is one escape, a lone surrogate U+FFFD.
func (s *scanner) escape(at place) (rune, error) {
	s.pos++ // backslash
	if s.pos >= len(s.b) {
		return 0, s.endsEarly(at)
	}
	c := s.b[s.pos]
	s.pos++
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
		r, err := s.hex4(at)
		if err != nil || !utf16.IsSurrogate(r) {
			return r, err
		}
		if s.pos+1 < len(s.b) && s.b[s.pos] == '\\' && s.b[s.pos+1] == 'u' {
			save := s.pos
			s.pos += 2
			r2, err := s.hex4(at)
			if err != nil {
				return 0, err
			}
			if d := utf16.DecodeRune(r, r2); d != unicode.ReplacementChar {
				return d, nil
			}
			s.pos = save // not a pair: the second escape stands alone
		}
		return unicode.ReplacementChar, nil
	}
	s.pos--
	return 0, s.unexpected(at, "in string escape code")
}

func (s *scanner) hex4(at place) (rune, error) {
	var r rune
	for range 4 {
		if s.pos >= len(s.b) {
			return 0, s.endsEarly(at)
		}
		c := s.b[s.pos]
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, s.unexpected(at, "in \\u hexadecimal character escape")
		}
		r = r<<4 | rune(c)
		s.pos++
	}
	return r, nil
}

// number reads the number at pos and returns its text.
func (s *scanner) number(at place) ([]byte, error) {
	start := s.pos
	if s.b[s.pos] == '-' {
		s.pos++
	}
	digits := func(context string) error {
		if s.pos >= len(s.b) || s.b[s.pos] < '0' || s.b[s.pos] > '9' {
			return s.unexpected(at, context)
		}
		for s.pos < len(s.b) && '0' <= s.b[s.pos] && s.b[s.pos] <= '9' {
			s.pos++
		}
		return nil
	}
	if s.pos < len(s.b) && s.b[s.pos] == '0' {
		s.pos++ // no leading zeros
	} else if err := digits("in numeric literal"); err != nil {
		return nil, err
	}
	if s.pos < len(s.b) && s.b[s.pos] == '.' {
		s.pos++
		if err := digits("after decimal point in numeric literal"); err != nil {
			return nil, err
		}
	}
	if s.pos < len(s.b) && (s.b[s.pos] == 'e' || s.b[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.b) && (s.b[s.pos] == '+' || s.b[s.pos] == '-') {
			s.pos++
		}
		if err := digits("in exponent of numeric literal"); err != nil {
			return nil, err
		}
	}
	return s.b[start:s.pos], nil
}

// literal reads true, false or null at pos.
func (s *scanner) literal(at place) ([]byte, error) {
	start := s.pos
	var want string
	switch s.b[s.pos] {
	case 't':
		want = "true"
	case 'f':
		want = "false"
	default:
		want = "null"
	}
	for i := range len(want) {
		if s.pos >= len(s.b) || s.b[s.pos] != want[i] {
			return nil, s.unexpected(at, "in literal "+want)
		}
		s.pos++
	}
	return s.b[start:s.pos], nil
}

// skip reads through the value at pos, checking it and keeping nothing.
func (s *scanner) skip(at place) error {
	c, err := s.begin(at)
	if err != nil {
		return err
	}
	switch c {
	case '{', '[':
		if s.depth++; s.depth > maxDepth {
			return s.syntaxError(at, "exceeded max depth")
		}
		s.pos++
		close := byte(']')
		if c == '{' {
			close = '}'
		}
		for n := 0; ; n++ {
			more, err := s.more(close, n, at)
			if err != nil {
				return err
			}
			if !more {
				break
			}
			if c == '{' {
				if _, err := s.key(at); err != nil {
					return err
				}
			}
			if err := s.skip(at); err != nil {
				return err
			}
		}
		s.depth--
		return nil
	case '"':
		_, err := s.string(at, false)
		return err
	case 't', 'f', 'n':
		_, err := s.literal(at)
		return err
	}
	_, err = s.number(at)
	return err
}

// parseHeader parses the JSON header and validates every tensor against a
// data buffer of dataLen bytes.
func parseHeader(text []byte, dataLen int64) (*header, error) {
	if !utf8.Valid(text) {
		return nil, errors.New("header is not valid UTF-8")
	}
	// Values are read through (skip) only in a tensor's object, itself in
	// the header's: two levels down, as encoding/json counts them.
	s := &scanner{b: text, depth: 2}
	top := place{kind: inHeader}
	if err := s.open('{', top); err != nil {
		return nil, err
	}
	h := &header{index: map[string]int{}}
	seenMetadata := false
	for n := 0; ; n++ {
		more, err := s.more('}', n, top)
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
		k, err := s.key(place{kind: inHeaderKey})
		if err != nil {
			return nil, err
		}
		if string(k) == metadataKey {
			if seenMetadata {
				return nil, fmt.Errorf("%s appears twice", metadataKey)
			}
			seenMetadata = true
			if h.metadata, err = s.metadata(); err != nil {
				return nil, err
			}
			continue
		}
		if _, dup := h.index[string(k)]; dup {
			return nil, fmt.Errorf("tensor %q appears twice", k)
		}
		name := string(k)
		h.index[name] = -1
		t, err := s.tensorInfo(name)
		if err != nil {
			return nil, err
		}
		if err := validateTensor(t, dataLen); err != nil {
			return nil, err
		}
		h.tensors = append(h.tensors, t)
	}
	// Only padding may follow the object.
	s.space()
	if s.pos < len(text) {
		return nil, fmt.Errorf("header has %q after its JSON object", clip(text[s.pos:]))
	}
	if err := sortAndCheckOverlaps(h.tensors); err != nil {
		return nil, err
	}
	for i, t := range h.tensors {
		h.index[t.Name] = i
	}
	return h, nil
}

func isJSONSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

func clip(b []byte) string {
	if len(b) > 20 {
		return string(b[:20]) + "…"
	}
	return string(b)
}

// metadata reads the value of __metadata__: an object of strings, or null
// (as Rust's Option allows).
func (s *scanner) metadata() (map[string]string, error) {
	at := place{kind: inMetadata}
	c, err := s.begin(at)
	if err != nil {
		return nil, err
	}
	if c == 'n' {
		_, err := s.literal(at) // null, or invalid JSON
		return nil, err
	}
	if c != '{' {
		return nil, s.wrongValue(at, "an object of strings")
	}
	s.pos++
	md := map[string]string{}
	for n := 0; ; n++ {
		more, err := s.more('}', n, at)
		if err != nil {
			return nil, err
		}
		if !more {
			return md, nil
		}
		k, err := s.key(at)
		if err != nil {
			return nil, err
		}
		if _, dup := md[string(k)]; dup {
			return nil, fmt.Errorf("%s: key %q appears twice", metadataKey, k)
		}
		key := string(k)
		v, err := s.str(place{kind: inMetadataValue, name: key})
		if err != nil {
			return nil, err
		}
		md[key] = string(v)
	}
}

// tensorInfo reads the object that describes tensor name.
func (s *scanner) tensorInfo(name string) (TensorInfo, error) {
	at := place{kind: inTensor, name: name}
	t := TensorInfo{Name: name}
	if err := s.open('{', at); err != nil {
		return t, err
	}
	const (
		seenDType = 1 << iota
		seenShape
		seenOffsets
	)
	seen := 0
	var others map[string]bool // unknown fields, for duplicates
	for n := 0; ; n++ {
		more, err := s.more('}', n, at)
		if err != nil {
			return t, err
		}
		if !more {
			break
		}
		k, err := s.key(at)
		if err != nil {
			return t, err
		}
		bit := 0
		switch string(k) {
		case "dtype":
			bit = seenDType
		case "shape":
			bit = seenShape
		case "data_offsets":
			bit = seenOffsets
		default:
			if others[string(k)] {
				return t, fmt.Errorf("%v: key %q appears twice", at, k)
			}
			if others == nil {
				others = map[string]bool{}
			}
			field := string(k)
			others[field] = true
			// Ignored, as the reference implementation ignores unknown fields.
			if err := s.skip(place{kind: inTensor, name: name, field: field}); err != nil {
				return t, err
			}
			continue
		}
		if seen&bit != 0 {
			return t, fmt.Errorf("%v: key %q appears twice", at, k)
		}
		seen |= bit
		switch bit {
		case seenDType:
			v, err := s.str(place{kind: inTensor, name: name, field: "dtype"})
			if err != nil {
				return t, err
			}
			if d := lookupDType(string(v)); d != nil {
				t.DType = d.name // the table's string: nothing to allocate
			} else {
				t.DType = string(v)
			}
		case seenShape:
			var dims [MaxDims]int64
			nd, err := s.intArray(dims[:], place{kind: inTensor, name: name, field: "shape"})
			if err != nil {
				return t, err
			}
			t.Shape = make([]int, nd)
			for i, d := range dims[:nd] {
				if d > math.MaxInt {
					return t, fmt.Errorf("%v: dimension %d is too large", at, d)
				}
				t.Shape[i] = int(d)
			}
		case seenOffsets:
			var offs [2]int64
			no, err := s.intArray(offs[:], place{kind: inTensor, name: name, field: "data_offsets"})
			if err != nil {
				return t, err
			}
			if no != 2 {
				return t, fmt.Errorf("%v: data_offsets has %d numbers, want 2", at, no)
			}
			t.Begin, t.End = offs[0], offs[1]
		}
	}
	for _, f := range []struct {
		bit  int
		name string
	}{{seenDType, "dtype"}, {seenShape, "shape"}, {seenOffsets, "data_offsets"}} {
		if seen&f.bit == 0 {
			return t, fmt.Errorf("%v has no %q", at, f.name)
		}
	}
	return t, nil
}

// intArray reads an array of at most len(dst) non-negative integers into
// dst and returns how many there were.
func (s *scanner) intArray(dst []int64, at place) (int, error) {
	if err := s.open('[', at); err != nil {
		return 0, err
	}
	for n := 0; ; n++ {
		more, err := s.more(']', n, at)
		if err != nil {
			return 0, err
		}
		if !more {
			return n, nil
		}
		if n == len(dst) {
			if at.field == "shape" {
				return 0, fmt.Errorf("%v has more than %d dimensions", at, len(dst))
			}
			return 0, fmt.Errorf("%v has more than %d numbers", at, len(dst))
		}
		c, err := s.begin(at)
		if err != nil {
			return 0, err
		}
		if c != '-' && (c < '0' || c > '9') {
			return 0, s.wrongValue(at, "an integer")
		}
		num, err := s.number(at)
		if err != nil {
			return 0, err
		}
		v, err := strconv.ParseInt(string(num), 10, 64)
		switch {
		case err != nil && errors.Is(err, strconv.ErrRange) && num[0] != '-':
			return 0, fmt.Errorf("%v: %s is too large", at, num)
		case err != nil && errors.Is(err, strconv.ErrRange):
			return 0, fmt.Errorf("%v: %s is negative", at, num)
		case err != nil:
			return 0, fmt.Errorf("%v: %s is not an integer", at, num)
		case v < 0:
			return 0, fmt.Errorf("%v: %s is negative", at, num)
		}
		dst[n] = v
	}
}

// byteSize returns the size in bytes of a tensor of dtype d and shape, or an
// error when it overflows int64.
func byteSize(d *dtype, shape []int) (int64, error) {
	n := int64(1)
	for _, dim := range shape {
		if dim < 0 {
			return 0, fmt.Errorf("shape %v has a negative dimension", shape)
		}
		if dim != 0 && n > math.MaxInt64/int64(dim) {
			return 0, fmt.Errorf("shape %v: element count overflows", shape)
		}
		n *= int64(dim)
	}
	if n > math.MaxInt64/int64(d.size) {
		return 0, fmt.Errorf("shape %v: size in bytes overflows", shape)
	}
	return n * int64(d.size), nil
}

func validateTensor(t TensorInfo, dataLen int64) error {
	d := lookupDType(t.DType)
	if d == nil {
		return fmt.Errorf("tensor %q: dtype %q not supported (supported: %s)", t.Name, t.DType, supportedDTypes())
	}
	if len(t.Shape) > MaxDims {
		return fmt.Errorf("tensor %q: shape has %d dimensions, more than %d", t.Name, len(t.Shape), MaxDims)
	}
	size, err := byteSize(d, t.Shape)
	if err != nil {
		return fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	if t.Begin > t.End {
		return fmt.Errorf("tensor %q: data_offsets [%d, %d] begin after they end", t.Name, t.Begin, t.End)
	}
	if t.End > dataLen {
		return fmt.Errorf("tensor %q: data_offsets [%d, %d] exceed the data buffer of %d bytes", t.Name, t.Begin, t.End, dataLen)
	}
	if t.End-t.Begin != size {
		return fmt.Errorf("tensor %q: %s %v needs %d bytes, data_offsets [%d, %d] hold %d", t.Name, t.DType, t.Shape, size, t.Begin, t.End, t.End-t.Begin)
	}
	return nil
}

// sortAndCheckOverlaps sorts tensors by data offset and fails if two
// tensors share a byte. Empty tensors share no bytes with anything.
func sortAndCheckOverlaps(ts []TensorInfo) error {
	slices.SortFunc(ts, func(a, b TensorInfo) int {
		switch {
		case a.Begin != b.Begin:
			return cmp.Compare(a.Begin, b.Begin)
		case a.End != b.End:
			return cmp.Compare(a.End, b.End)
		}
		return cmp.Compare(a.Name, b.Name)
	})
	last := -1 // the non-empty tensor reaching furthest so far
	for i, t := range ts {
		if t.Begin == t.End {
			continue
		}
		if last >= 0 && t.Begin < ts[last].End {
			p := ts[last]
			return fmt.Errorf("tensors %q [%d, %d] and %q [%d, %d] overlap", p.Name, p.Begin, p.End, t.Name, t.Begin, t.End)
		}
		if last < 0 || t.End > ts[last].End {
			last = i
		}
	}
	return nil
}
