package npy

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The header of a .npy file is the repr of a Python dict. This file holds a
// parser for the subset of Python literals such a repr can contain. It
// never evaluates anything, bounds its recursion, and reports the byte
// offset of what it did not understand.

type pyKind int

const (
	pyString pyKind = iota
	pyInt
	pyBool
	pyNone
	pyTuple
	pyList
	pyDict
)

func (k pyKind) String() string {
	return [...]string{"a string", "an integer", "a bool", "None", "a tuple", "a list", "a dict"}[k]
}

// pyValue is one parsed literal.
type pyValue struct {
	kind  pyKind
	str   string    // pyString
	int   int64     // pyInt
	bool  bool      // pyBool
	items []pyValue // pyTuple, pyList; pyDict: keys and values alternate
	text  string    // the source text, for messages
}

// maxNesting bounds the depth of nested tuples, lists and dicts; a header
// needs 2 (a dict holding a shape tuple), structured dtypes a few more.
const maxNesting = 16

type pyParser struct {
	s   string
	pos int
}

func (p *pyParser) errorf(format string, args ...any) error {
	return fmt.Errorf("malformed header at byte %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *pyParser) skipSpace() {
	for p.pos < len(p.s) {
		switch p.s[p.pos] {
		case ' ', '\t', '\n', '\r', '\f', '\v':
			p.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (p *pyParser) peek() byte {
	p.skipSpace()
	if p.pos >= len(p.s) {
		return 0
	}
	return p.s[p.pos]
}

func (p *pyParser) describeNext() string {
	if p.pos >= len(p.s) {
		return "end of header"
	}
	r := p.s[p.pos:]
	if len(r) > 12 {
		r = r[:12] + "…"
	}
	return strconv.Quote(r)
}

func (p *pyParser) value(depth int) (pyValue, error) {
	if depth > maxNesting {
		return pyValue{}, p.errorf("nested more than %d deep", maxNesting)
	}
	start := p.pos
	var v pyValue
	var err error
	switch c := p.peek(); {
	case c == '\'' || c == '"':
		v, err = p.string()
	case c == '(':
		v, err = p.sequence(depth, '(', ')', pyTuple)
	case c == '[':
		v, err = p.sequence(depth, '[', ']', pyList)
	case c == '{':
		v, err = p.dict(depth)
	case c == '-' || c == '+' || (c >= '0' && c <= '9'):
		v, err = p.integer()
	case c == 'T' || c == 'F' || c == 'N':
		v, err = p.name()
	default:
		return pyValue{}, p.errorf("expected a value, found %s", p.describeNext())
	}
	if err != nil {
		return pyValue{}, err
	}
	v.text = strings.TrimSpace(p.s[start:p.pos])
	return v, nil
}

func (p *pyParser) string() (pyValue, error) {
	quote := p.s[p.pos]
	p.pos++
	var b strings.Builder
	for {
		if p.pos >= len(p.s) {
			return pyValue{}, p.errorf("unterminated string")
		}
		c := p.s[p.pos]
		p.pos++
		switch c {
		case quote:
			return pyValue{kind: pyString, str: b.String()}, nil
		case '\n':
			return pyValue{}, p.errorf("newline in string")
		case '\\':
			if p.pos >= len(p.s) {
				return pyValue{}, p.errorf("unterminated string")
			}
			e := p.s[p.pos]
			p.pos++
			switch e {
			case '\\', '\'', '"':
				b.WriteByte(e)
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			default:
				p.pos -= 2
				return pyValue{}, p.errorf("unsupported escape \\%c in string", e)
			}
		default:
			b.WriteByte(c)
		}
	}
}

func (p *pyParser) integer() (pyValue, error) {
	start := p.pos
	if c := p.s[p.pos]; c == '-' || c == '+' {
		p.pos++
	}
	digits := p.pos
	for p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
		p.pos++
	}
	if p.pos == digits {
		return pyValue{}, p.errorf("expected digits after sign")
	}
	text := p.s[start:p.pos]
	if p.pos < len(p.s) && (p.s[p.pos] == 'L' || p.s[p.pos] == 'l') {
		p.pos++ // Python 2 long, as numpy on Python 2 wrote shapes
	}
	if p.pos < len(p.s) && isNameByte(p.s[p.pos]) {
		return pyValue{}, p.errorf("malformed integer %s", p.describeNext())
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		p.pos = start
		return pyValue{}, p.errorf("integer %s out of range", text)
	}
	return pyValue{kind: pyInt, int: n}, nil
}

func isNameByte(c byte) bool {
	return c == '_' || c == '.' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func (p *pyParser) name() (pyValue, error) {
	start := p.pos
	for p.pos < len(p.s) && isNameByte(p.s[p.pos]) {
		p.pos++
	}
	switch p.s[start:p.pos] {
	case "True":
		return pyValue{kind: pyBool, bool: true}, nil
	case "False":
		return pyValue{kind: pyBool}, nil
	case "None":
		return pyValue{kind: pyNone}, nil
	}
	p.pos = start
	return pyValue{}, p.errorf("expected a value, found %s", p.describeNext())
}

// sequence parses a tuple or list. A parenthesised single value without a
// comma is that value, as in Python: (3) is 3, (3,) is a tuple.
func (p *pyParser) sequence(depth int, open, close byte, kind pyKind) (pyValue, error) {
	p.pos++ // open
	v := pyValue{kind: kind}
	comma := false
	for {
		if p.peek() == close {
			p.pos++
			break
		}
		item, err := p.value(depth + 1)
		if err != nil {
			return pyValue{}, err
		}
		v.items = append(v.items, item)
		switch p.peek() {
		case ',':
			p.pos++
			comma = true
			continue
		case close:
			p.pos++
		default:
			return pyValue{}, p.errorf("expected ',' or '%c', found %s", close, p.describeNext())
		}
		break
	}
	if kind == pyTuple && len(v.items) == 1 && !comma {
		return v.items[0], nil
	}
	return v, nil
}

func (p *pyParser) dict(depth int) (pyValue, error) {
	p.pos++ // {
	v := pyValue{kind: pyDict}
	for {
		if p.peek() == '}' {
			p.pos++
			return v, nil
		}
		key, err := p.value(depth + 1)
		if err != nil {
			return pyValue{}, err
		}
		if p.peek() != ':' {
			return pyValue{}, p.errorf("expected ':' after key %s, found %s", key.text, p.describeNext())
		}
		p.pos++
		val, err := p.value(depth + 1)
		if err != nil {
			return pyValue{}, err
		}
		v.items = append(v.items, key, val)
		switch p.peek() {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return v, nil
		default:
			return pyValue{}, p.errorf("expected ',' or '}', found %s", p.describeNext())
		}
	}
}

// header is the content of a .npy header dict.
type header struct {
	descr        string
	fortranOrder bool
	shape        []int
}

// parseHeader parses the header dict, checks that it holds exactly the
// three keys numpy writes, and checks their types and the shape.
func parseHeader(s string) (header, error) {
	p := &pyParser{s: s}
	if p.peek() != '{' {
		return header{}, p.errorf("expected '{', found %s", p.describeNext())
	}
	d, err := p.value(0)
	if err != nil {
		return header{}, err
	}
	if p.peek() != 0 {
		return header{}, p.errorf("unexpected %s after the dict", p.describeNext())
	}
	var h header
	seen := map[string]bool{}
	for i := 0; i < len(d.items); i += 2 {
		k, v := d.items[i], d.items[i+1]
		if k.kind != pyString {
			return header{}, fmt.Errorf("header key %s is %v, not a string", k.text, k.kind)
		}
		if seen[k.str] {
			return header{}, fmt.Errorf("header key %q appears twice", k.str)
		}
		seen[k.str] = true
		switch k.str {
		case "descr":
			switch v.kind {
			case pyString:
				h.descr = v.str
			case pyList:
				return header{}, fmt.Errorf("structured dtype %s not supported", clip(v.text))
			default:
				return header{}, fmt.Errorf("descr %s is %v, not a string", clip(v.text), v.kind)
			}
		case "fortran_order":
			if v.kind != pyBool {
				return header{}, fmt.Errorf("fortran_order %s is %v, not True or False", clip(v.text), v.kind)
			}
			h.fortranOrder = v.bool
		case "shape":
			if h.shape, err = parseShape(v); err != nil {
				return header{}, err
			}
		default:
			return header{}, fmt.Errorf("unexpected header key %q (want 'descr', 'fortran_order' and 'shape')", k.str)
		}
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return header{}, fmt.Errorf("header has no %q key", k)
		}
	}
	return h, nil
}

func parseShape(v pyValue) ([]int, error) {
	if v.kind != pyTuple {
		return nil, fmt.Errorf("shape %s is %v, not a tuple", clip(v.text), v.kind)
	}
	if len(v.items) > MaxDims {
		return nil, fmt.Errorf("shape has %d dimensions, more than the limit of %d", len(v.items), MaxDims)
	}
	shape := make([]int, len(v.items))
	for i, d := range v.items {
		if d.kind != pyInt {
			return nil, fmt.Errorf("shape %s: dimension %d is %v, not an integer", clip(v.text), i, d.kind)
		}
		if d.int < 0 {
			return nil, fmt.Errorf("shape %s: dimension %d is negative", clip(v.text), i)
		}
		if d.int > math.MaxInt {
			return nil, fmt.Errorf("shape %s: dimension %d is too large", clip(v.text), i)
		}
		shape[i] = int(d.int)
	}
	return shape, nil
}

// clip shortens source text for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// shapeRepr is Python's repr of the shape tuple: (), (3,), (3, 4).
func shapeRepr(shape []int) string {
	var b strings.Builder
	b.WriteByte('(')
	for i, d := range shape {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(d))
	}
	if len(shape) == 1 {
		b.WriteByte(',')
	}
	b.WriteByte(')')
	return b.String()
}
