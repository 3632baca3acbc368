package ctensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/quantkit/quantkit/internal/jsonobj"
)

// config.json is untrusted: these helpers read it allocating only what is
// kept (the keys and the parts of quantization_config that are read), not
// per token as encoding/json's Decoder does. The input is first checked
// with json.Valid, which allocates nothing, and is then walked by byte
// with the grammar taken as given.

// splitObject splits the JSON object in data into its members, in order,
// failing as jsonobj.Members does on anything else, on a duplicate key
// and on data after the object, and on nesting deeper than
// MaxConfigDepth. The values alias data.
func splitObject(data []byte) ([]jsonobj.Member, error) {
	// Depth first: json.Valid's stack grows with it.
	if d := depth(data); d > MaxConfigDepth {
		return nil, fmt.Errorf("nests %d deep, more than the limit of %d", d, MaxConfigDepth)
	}
	if !json.Valid(data) {
		if _, err := jsonobj.Members(data); err != nil {
			return nil, err // its message says what is wrong
		}
		return nil, errors.New("not valid JSON")
	}
	i := skipSpace(data, 0)
	if data[i] != '{' {
		return nil, errors.New("not a JSON object")
	}
	n := 0
	eachMember(data[i:], func(_, _ []byte) error { n++; return nil })
	members := make([]jsonobj.Member, 0, n)
	seen := make(map[string]struct{}, n)
	err := eachMember(data[i:], func(k, v []byte) error {
		key := unquote(k)
		if _, dup := seen[key]; dup {
			return fmt.Errorf("key %q appears twice", key)
		}
		seen[key] = struct{}{}
		members = append(members, jsonobj.Member{Key: key, Value: v})
		return nil
	})
	return members, err
}

// eachMember calls f with the key (a string literal) and value of each
// member of the valid JSON object that starts obj, in order, and stops at
// the first error.
func eachMember(obj []byte, f func(key, value []byte) error) error {
	i := skipSpace(obj, 1)
	for obj[i] != '}' {
		k := stringEnd(obj, i)
		key := obj[i:k]
		i = skipSpace(obj, skipSpace(obj, k)+1) // past ':'
		end := valueEnd(obj, i)
		if err := f(key, obj[i:end:end]); err != nil {
			return err
		}
		if i = skipSpace(obj, end); obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
	return nil
}

// eachElement calls f with each element of the valid JSON array that
// starts arr, in order, and stops at the first error.
func eachElement(arr []byte, f func(value []byte) error) error {
	i := skipSpace(arr, 1)
	for arr[i] != ']' {
		end := valueEnd(arr, i)
		if err := f(arr[i:end:end]); err != nil {
			return err
		}
		if i = skipSpace(arr, end); arr[i] == ',' {
			i = skipSpace(arr, i+1)
		}
	}
	return nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// stringEnd returns the end of the string literal that starts at b[i].
func stringEnd(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// valueEnd returns the end of the value that starts at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	for i < len(b) && !isSpace(b[i]) && b[i] != ',' && b[i] != '}' && b[i] != ']' {
		i++
	}
	return i
}

// depth returns how deep the JSON in b nests, counting the brackets
// outside strings: 0 for a scalar, 1 for [] or {}. b need not be valid.
func depth(b []byte) int {
	d, max := 0, 0
	inString := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			if d++; d > max {
				max = d
			}
		case c == '}' || c == ']':
			d--
		}
	}
	return max
}

// unquote returns the value of a valid JSON string literal as
// encoding/json decodes it.
func unquote(lit []byte) string {
	body := lit[1 : len(lit)-1]
	if utf8.Valid(body) && !containsByte(body, '\\') {
		return string(body)
	}
	var s string
	json.Unmarshal(lit, &s) // cannot fail on a valid literal
	return s
}

func containsByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

// appendQuoted appends s as a JSON string literal, as an encoding/json
// Encoder with SetEscapeHTML(false) writes it.
func appendQuoted(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			var b bytes.Buffer // the rare key that needs escaping
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			enc.Encode(s) // cannot fail for a string
			return append(dst, bytes.TrimSuffix(b.Bytes(), []byte("\n"))...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// indent re-indents the valid, compact JSON in src as json.Indent(dst,
// src, "", "  ") does, with a final newline, into a slice of exactly that
// size.
func indent(src []byte) []byte {
	var w indenter
	w.counting = true
	w.run(src)
	w.out = make([]byte, 0, w.n+1)
	w.counting = false
	w.run(src)
	return append(w.out, '\n')
}

// indenter writes, or only counts, json.Indent's output.
type indenter struct {
	out      []byte
	n        int
	counting bool
}

func (w *indenter) put(b ...byte) {
	if w.counting {
		w.n += len(b)
		return
	}
	w.out = append(w.out, b...)
}

func (w *indenter) newline(depth int) {
	if w.counting {
		w.n += 1 + 2*depth
		return
	}
	w.out = append(w.out, '\n')
	for range depth {
		w.out = append(w.out, ' ', ' ')
	}
}

// run is json.Indent's loop: white space outside strings is dropped, a
// line break follows '{', '[' and ',' and precedes '}' and ']', except
// that an empty object or array stays {} or [].
func (w *indenter) run(src []byte) {
	depth := 0
	needIndent := false // after '{' or '[': indent unless it closes at once
	for i := 0; i < len(src); i++ {
		c := src[i]
		if isSpace(c) {
			continue
		}
		if needIndent && c != '}' && c != ']' {
			needIndent = false
			depth++
			w.newline(depth)
		}
		switch c {
		case '"':
			end := stringEnd(src, i)
			w.put(src[i:end]...)
			i = end - 1
		case '{', '[':
			needIndent = true
			w.put(c)
		case ',':
			w.put(c)
			w.newline(depth)
		case ':':
			w.put(c, ' ')
		case '}', ']':
			if needIndent {
				needIndent = false
			} else {
				depth--
				w.newline(depth)
			}
			w.put(c)
		default:
			w.put(c)
		}
	}
}
