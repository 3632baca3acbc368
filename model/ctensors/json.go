package ctensors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/quantkit/quantkit/internal/jsonobj"
)

// splitObject splits the JSON object in data into its members, in order,
// as jsonobj.Members does (which allocates only what it returns: config.json
// is untrusted), after bounding its nesting by MaxConfigDepth. The values
// alias data.
func splitObject(data []byte) ([]jsonobj.Member, error) {
	// Depth first: json.Valid's stack grows with it.
	if d := jsonobj.Depth(data); d > MaxConfigDepth {
		return nil, fmt.Errorf("nests %d deep, more than the limit of %d", d, MaxConfigDepth)
	}
	return jsonobj.Members(data)
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
		if jsonobj.IsSpace(c) {
			continue
		}
		if needIndent && c != '}' && c != ']' {
			needIndent = false
			depth++
			w.newline(depth)
		}
		switch c {
		case '"':
			end := jsonobj.StringEnd(src, i)
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
