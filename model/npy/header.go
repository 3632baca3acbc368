package npy

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The header of a .npy file is the repr of a Python dict. This file holds a
// parser for the subset of Python literals such a repr can contain. It
// never evaluates anything, bounds its recursion, and reports the byte
// offset of what it did not understand.
//
// It allocates little whatever the header holds. parseHeader reads the
// dict a pair at a time and stops at the first key that is not one of the
// three numpy writes, or that repeats. Only the values of those keys are
// kept (the items of a tuple or list, the value of a string), and no more
// items in all than keepBudget, more than a valid header needs; the rest
// of the header is checked and skipped, keeping only the kind and source
// text of each value for messages. Strings without escapes are slices of
// the header, and one with escapes is sized once.

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
	kind pyKind
	str  string // pyString, where kept
	int  int64  // pyInt
	bool bool   // pyBool
	// items are the items of a tuple or list, where kept, and n counts
	// them (kept or not).
	items []pyValue
	n     int
	text  string // the source text, for messages
}

// maxNesting bounds the depth of nested tuples, lists and dicts; a header
// needs 2 (a dict holding a shape tuple), structured dtypes a few more.
const maxNesting = 16

// keepBudget bounds the items the parser keeps in all: a valid header
// keeps the shape's at most MaxDims (and one per pair of parentheses
// around it, "((2, 3))" being (2, 3)); another value that keeps any is an
// error as soon as it is parsed.
const keepBudget = 2 * MaxDims

type pyParser struct {
	s    string
	pos  int
	kept int // items kept so far, at most keepBudget
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

// value parses a literal nested in depth tuples, lists and dicts. Unless
// keep, it keeps neither the value of a string nor the items of a tuple or
// list: their kinds and source text are all messages need. A dict's
// content is never kept.
func (p *pyParser) value(depth int, keep bool) (pyValue, error) {
	if depth > maxNesting {
		return pyValue{}, p.errorf("nested more than %d deep", maxNesting)
	}
	start := p.pos
	var v pyValue
	var err error
	switch c := p.peek(); {
	case c == '\'' || c == '"':
		v, err = p.string(keep)
	case c == '(':
		v, err = p.sequence(depth, '(', ')', pyTuple, keep)
	case c == '[':
		v, err = p.sequence(depth, '[', ']', pyList, keep)
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

// string parses a string literal. Unless keep, it only checks it and
// leaves str empty.
func (p *pyParser) string(keep bool) (pyValue, error) {
	quote := p.s[p.pos]
	p.pos++
	start := p.pos
	var b strings.Builder
	escaped := false // b holds the value so far: there was an escape
	for {
		if p.pos >= len(p.s) {
			return pyValue{}, p.errorf("unterminated string")
		}
		c := p.s[p.pos]
		p.pos++
		switch c {
		case quote:
			v := pyValue{kind: pyString}
			switch {
			case escaped:
				v.str = b.String()
			case keep:
				v.str = p.s[start : p.pos-1]
			}
			return v, nil
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
			case 'n':
				e = '\n'
			case 't':
				e = '\t'
			default:
				p.pos -= 2
				return pyValue{}, p.errorf("unsupported escape \\%c in string", e)
			}
			if keep && !escaped {
				// The value is at most as long as the literal: size b
				// once rather than let it grow by copies.
				b.Grow(p.literalEnd(quote) - start)
				b.WriteString(p.s[start : p.pos-2])
				escaped = true
			}
			if escaped {
				b.WriteByte(e)
			}
		default:
			if escaped {
				b.WriteByte(c)
			}
		}
	}
}

// literalEnd returns where the string literal that p.pos is in ends: at
// its closing quote, or where the string is found to be unterminated.
func (p *pyParser) literalEnd(quote byte) int {
	for i := p.pos; i < len(p.s); i++ {
		switch p.s[i] {
		case quote, '\n':
			return i
		case '\\':
			i++
		}
	}
	return len(p.s)
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

// sequence parses a tuple or list, keeping its items if keep (while the
// budget lasts). A parenthesised single value without a comma is that
// value, as in Python: (3) is 3, (3,) is a tuple.
func (p *pyParser) sequence(depth int, open, close byte, kind pyKind, keep bool) (pyValue, error) {
	p.pos++ // open
	v := pyValue{kind: kind}
	var first pyValue
	comma := false
	for {
		if p.peek() == close {
			p.pos++
			break
		}
		item, err := p.value(depth+1, keep && p.kept < keepBudget)
		if err != nil {
			return pyValue{}, err
		}
		if v.n == 0 {
			first = item
		}
		v.n++
		if keep && p.kept < keepBudget {
			v.items = append(v.items, item)
			p.kept++
		}
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
	if kind == pyTuple && v.n == 1 && !comma {
		return first, nil
	}
	return v, nil
}

// dict parses a dict nested in a header value, checking and skipping its
// content.
func (p *pyParser) dict(depth int) (pyValue, error) {
	p.pos++ // {
	for {
		if p.peek() == '}' {
			p.pos++
			return pyValue{kind: pyDict}, nil
		}
		if _, err := p.key(depth); err != nil {
			return pyValue{}, err
		}
		if _, err := p.value(depth+1, false); err != nil {
			return pyValue{}, err
		}
		if done, err := p.next(); done || err != nil {
			return pyValue{kind: pyDict}, err
		}
	}
}

// key parses a key of a dict nested in depth values, and the ':' after it.
func (p *pyParser) key(depth int) (pyValue, error) {
	k, err := p.value(depth+1, true)
	if err != nil {
		return pyValue{}, err
	}
	if p.peek() != ':' {
		return pyValue{}, p.errorf("expected ':' after key %s, found %s", k.text, p.describeNext())
	}
	p.pos++
	return k, nil
}

// next consumes what follows a pair of a dict: ',' (done is false) or '}'
// (done is true).
func (p *pyParser) next() (done bool, err error) {
	switch p.peek() {
	case ',':
		p.pos++
		return false, nil
	case '}':
		p.pos++
		return true, nil
	}
	return false, p.errorf("expected ',' or '}', found %s", p.describeNext())
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
	p.pos++
	var h header
	var seen [3]bool // descr, fortran_order, shape
	for {
		if p.peek() == '}' {
			p.pos++
			break
		}
		k, err := p.key(0)
		if err != nil {
			return header{}, err
		}
		if k.kind != pyString {
			return header{}, fmt.Errorf("header key %s is %v, not a string", k.text, k.kind)
		}
		i := slices.Index(headerKeys, k.str)
		if i < 0 {
			return header{}, fmt.Errorf("unexpected header key %q (want 'descr', 'fortran_order' and 'shape')", k.str)
		}
		if seen[i] {
			return header{}, fmt.Errorf("header key %q appears twice", k.str)
		}
		seen[i] = true
		v, err := p.value(1, true)
		if err != nil {
			return header{}, err
		}
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
		}
		done, err := p.next()
		if err != nil {
			return header{}, err
		}
		if done {
			break
		}
	}
	if p.peek() != 0 {
		return header{}, p.errorf("unexpected %s after the dict", p.describeNext())
	}
	for i, k := range headerKeys {
		if !seen[i] {
			return header{}, fmt.Errorf("header has no %q key", k)
		}
	}
	return h, nil
}

// headerKeys are the keys of a header dict.
var headerKeys = []string{"descr", "fortran_order", "shape"}

func parseShape(v pyValue) ([]int, error) {
	if v.kind != pyTuple {
		return nil, fmt.Errorf("shape %s is %v, not a tuple", clip(v.text), v.kind)
	}
	if v.n > MaxDims {
		return nil, fmt.Errorf("shape has %d dimensions, more than the limit of %d", v.n, MaxDims)
	}
	if v.n > len(v.items) {
		// Not reached: the header's other values leave keepBudget enough.
		return nil, fmt.Errorf("shape %s: nested too deep", clip(v.text))
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
