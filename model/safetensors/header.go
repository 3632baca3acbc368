package safetensors

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
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
}

// parseHeader parses the JSON header and validates every tensor against a
// data buffer of dataLen bytes.
func parseHeader(text []byte, dataLen int64) (*header, error) {
	if !utf8.Valid(text) {
		return nil, errors.New("header is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	if err := expectDelim(dec, '{', "header"); err != nil {
		return nil, err
	}
	h := &header{}
	seen := map[string]bool{}
	for dec.More() {
		name, err := stringToken(dec, "header key")
		if err != nil {
			return nil, err
		}
		if seen[name] {
			if name == metadataKey {
				return nil, fmt.Errorf("%s appears twice", metadataKey)
			}
			return nil, fmt.Errorf("tensor %q appears twice", name)
		}
		seen[name] = true
		if name == metadataKey {
			if h.metadata, err = parseMetadata(dec); err != nil {
				return nil, err
			}
			continue
		}
		t, err := parseTensorInfo(dec, name)
		if err != nil {
			return nil, err
		}
		if err := validateTensor(t, dataLen); err != nil {
			return nil, err
		}
		h.tensors = append(h.tensors, t)
	}
	if err := expectDelim(dec, '}', "header"); err != nil {
		return nil, err
	}
	// Only padding may follow the object.
	rest := text[dec.InputOffset():]
	if i := bytes.IndexFunc(rest, func(r rune) bool { return !isJSONSpace(r) }); i >= 0 {
		return nil, fmt.Errorf("header has %q after its JSON object", clip(rest[i:]))
	}
	if err := sortAndCheckOverlaps(h.tensors); err != nil {
		return nil, err
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

// jsonError turns the decoder's error into one that says where it was.
func jsonError(dec *json.Decoder, err error, what string) error {
	if err == io.EOF {
		return fmt.Errorf("header JSON ends early, in %s", what)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("header is not valid JSON at byte %d, in %s: %v", se.Offset, what, err)
	}
	return fmt.Errorf("header is not valid JSON at byte %d, in %s: %v", dec.InputOffset(), what, err)
}

func expectDelim(dec *json.Decoder, d json.Delim, what string) error {
	tok, err := dec.Token()
	if err != nil {
		return jsonError(dec, err, what)
	}
	if tok != d {
		return fmt.Errorf("%s: expected '%v', found %s", what, d, describe(tok))
	}
	return nil
}

func stringToken(dec *json.Decoder, what string) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", jsonError(dec, err, what)
	}
	s, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("%s: expected a string, found %s", what, describe(tok))
	}
	return s, nil
}

func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		return fmt.Sprintf("'%v'", v)
	case string:
		return strconv.Quote(v)
	case nil:
		return "null"
	}
	return fmt.Sprint(tok)
}

// skipValue consumes one JSON value of any kind.
func skipValue(dec *json.Decoder, what string) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return jsonError(dec, err, what)
		}
		if d, ok := tok.(json.Delim); ok {
			if d == '{' || d == '[' {
				depth++
			} else {
				depth--
			}
		}
		if depth == 0 {
			return nil
		}
	}
}

func parseMetadata(dec *json.Decoder) (map[string]string, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonError(dec, err, metadataKey)
	}
	if tok == nil {
		return nil, nil // "__metadata__": null, as Rust's Option allows
	}
	if tok != json.Delim('{') {
		return nil, fmt.Errorf("%s: expected an object of strings, found %s", metadataKey, describe(tok))
	}
	md := map[string]string{}
	for dec.More() {
		k, err := stringToken(dec, metadataKey)
		if err != nil {
			return nil, err
		}
		if _, dup := md[k]; dup {
			return nil, fmt.Errorf("%s: key %q appears twice", metadataKey, k)
		}
		v, err := stringToken(dec, fmt.Sprintf("%s[%q]", metadataKey, k))
		if err != nil {
			return nil, err
		}
		md[k] = v
	}
	if err := expectDelim(dec, '}', metadataKey); err != nil {
		return nil, err
	}
	return md, nil
}

func parseTensorInfo(dec *json.Decoder, name string) (TensorInfo, error) {
	where := fmt.Sprintf("tensor %q", name)
	t := TensorInfo{Name: name}
	if err := expectDelim(dec, '{', where); err != nil {
		return t, err
	}
	seen := map[string]bool{}
	for dec.More() {
		key, err := stringToken(dec, where)
		if err != nil {
			return t, err
		}
		if seen[key] {
			return t, fmt.Errorf("%s: key %q appears twice", where, key)
		}
		seen[key] = true
		switch key {
		case "dtype":
			if t.DType, err = stringToken(dec, where+" dtype"); err != nil {
				return t, err
			}
		case "shape":
			dims, err := intArray(dec, where+" shape", MaxDims)
			if err != nil {
				return t, err
			}
			t.Shape = make([]int, len(dims))
			for i, d := range dims {
				if d > math.MaxInt {
					return t, fmt.Errorf("%s: dimension %d is too large", where, d)
				}
				t.Shape[i] = int(d)
			}
		case "data_offsets":
			offs, err := intArray(dec, where+" data_offsets", 2)
			if err != nil {
				return t, err
			}
			if len(offs) != 2 {
				return t, fmt.Errorf("%s: data_offsets has %d numbers, want 2", where, len(offs))
			}
			t.Begin, t.End = offs[0], offs[1]
		default:
			// Ignored, as the reference implementation ignores unknown fields.
			if err := skipValue(dec, where+" "+key); err != nil {
				return t, err
			}
		}
	}
	if err := expectDelim(dec, '}', where); err != nil {
		return t, err
	}
	for _, k := range []string{"dtype", "shape", "data_offsets"} {
		if !seen[k] {
			return t, fmt.Errorf("%s has no %q", where, k)
		}
	}
	return t, nil
}

// intArray reads an array of at most max non-negative integers.
func intArray(dec *json.Decoder, what string, max int) ([]int64, error) {
	if err := expectDelim(dec, '[', what); err != nil {
		return nil, err
	}
	var out []int64
	for dec.More() {
		if len(out) == max {
			if max == MaxDims {
				return nil, fmt.Errorf("%s has more than %d dimensions", what, max)
			}
			return nil, fmt.Errorf("%s has more than %d numbers", what, max)
		}
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonError(dec, err, what)
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%s: expected an integer, found %s", what, describe(tok))
		}
		n, err := strconv.ParseInt(num.String(), 10, 64)
		switch {
		case err != nil && errors.Is(err, strconv.ErrRange) && num.String()[0] != '-':
			return nil, fmt.Errorf("%s: %s is too large", what, num)
		case err != nil && errors.Is(err, strconv.ErrRange):
			return nil, fmt.Errorf("%s: %s is negative", what, num)
		case err != nil:
			return nil, fmt.Errorf("%s: %s is not an integer", what, num)
		case n < 0:
			return nil, fmt.Errorf("%s: %s is negative", what, num)
		}
		out = append(out, n)
	}
	if err := expectDelim(dec, ']', what); err != nil {
		return nil, err
	}
	return out, nil
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
