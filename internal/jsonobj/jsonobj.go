// Package jsonobj reads a JSON object as its members in order, rejecting
// what encoding/json would let pass silently: duplicate keys and data after
// the object. Checkpoint indexes, config.json files, part.json and
// histogram files are read with it, so that keys keep their order when a
// file is rewritten.
//
// The input is untrusted, so the reading allocates only what it returns:
// the text is checked with json.Valid, which allocates nothing, and is then
// walked byte by byte with the grammar taken as given (encoding/json's
// Decoder allocates about a hundred bytes a token). Values alias the input.
// Only text that is not valid JSON goes through a Decoder, for its error
// message.
package jsonobj

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Member is one key and its raw value.
type Member struct {
	Key   string
	Value json.RawMessage
}

// Members splits a JSON object into its members, in order, and fails
// on anything else, on a duplicate key (which encoding/json would resolve
// silently) and on data after the object. The values alias data.
func Members(data []byte) ([]Member, error) {
	if !json.Valid(data) {
		return nil, invalid(data)
	}
	i := SkipSpace(data, 0)
	if data[i] != '{' {
		return nil, errors.New("not a JSON object")
	}
	obj := data[i:]
	n := 0
	EachMember(obj, func(string, []byte) error { n++; return nil })
	members := make([]Member, 0, n)
	seen := make(map[string]struct{}, n)
	err := EachMember(obj, func(key string, v []byte) error {
		if _, dup := seen[key]; dup {
			return fmt.Errorf("key %q appears twice", key)
		}
		seen[key] = struct{}{}
		members = append(members, Member{key, v})
		return nil
	})
	return members, err
}

// invalid says what is wrong with data, which json.Valid refused, naming
// the member where it goes wrong: the walk a json.Decoder makes.
func invalid(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("not valid JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("not valid JSON: %w", err)
		}
		key := tok.(string) // inside an object, dec.Token gives keys as strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("key %q: not valid JSON: %w", key, err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("not valid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return errors.New("not valid JSON")
}

// EachMember calls f with the key (decoded) and the raw value of each
// member of the JSON object that starts obj, in order, and stops at the
// first error. obj must be valid JSON (json.Valid).
func EachMember(obj []byte, f func(key string, value []byte) error) error {
	i := SkipSpace(obj, 1)
	for obj[i] != '}' {
		k := StringEnd(obj, i)
		key := unquote(obj[i:k])
		i = SkipSpace(obj, SkipSpace(obj, k)+1) // past ':'
		end := ValueEnd(obj, i)
		if err := f(key, obj[i:end:end]); err != nil {
			return err
		}
		if i = SkipSpace(obj, end); obj[i] == ',' {
			i = SkipSpace(obj, i+1)
		}
	}
	return nil
}

// EachElement calls f with each element of the JSON array that starts
// arr, in order, and stops at the first error. arr must be valid JSON.
func EachElement(arr []byte, f func(value []byte) error) error {
	i := SkipSpace(arr, 1)
	for arr[i] != ']' {
		end := ValueEnd(arr, i)
		if err := f(arr[i:end:end]); err != nil {
			return err
		}
		if i = SkipSpace(arr, end); arr[i] == ',' {
			i = SkipSpace(arr, i+1)
		}
	}
	return nil
}

// IsSpace reports whether c is JSON white space.
func IsSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// SkipSpace returns the index of the first byte at or after i that is not
// white space.
func SkipSpace(b []byte, i int) int {
	for i < len(b) && IsSpace(b[i]) {
		i++
	}
	return i
}

// StringEnd returns the end of the valid string literal that starts at
// b[i].
func StringEnd(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// ValueEnd returns the end of the valid value that starts at b[i].
func ValueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return StringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = StringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	for i < len(b) && !IsSpace(b[i]) && b[i] != ',' && b[i] != '}' && b[i] != ']' {
		i++
	}
	return i
}

// Depth returns how deep the JSON in b nests, counting the brackets
// outside strings: 0 for a scalar, 1 for [] or {}. b need not be valid, so
// a caller can bound the depth before json.Valid, whose stack grows with
// it.
func Depth(b []byte) int {
	d, deepest := 0, 0
	inString := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			if d++; d > deepest {
				deepest = d
			}
		case c == '}' || c == ']':
			d--
		}
	}
	return deepest
}

// Unquote returns the value of a valid JSON string literal, as
// encoding/json decodes it.
func Unquote(lit []byte) string { return unquote(lit) }

func unquote(lit []byte) string {
	body := lit[1 : len(lit)-1]
	if utf8.Valid(body) && bytes.IndexByte(body, '\\') < 0 {
		return string(body)
	}
	var s string
	json.Unmarshal(lit, &s) // cannot fail on a valid literal
	return s
}
