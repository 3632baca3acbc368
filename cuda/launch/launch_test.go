package launch

import (
	"regexp"
	"strconv"
	"testing"
)

// Names are unique, and each derived row's value is what its expression
// gives from the other rows.
func TestTable(t *testing.T) {
	vals := map[string]int{}
	goNames := map[string]bool{}
	for _, s := range Table {
		for _, c := range s.Consts {
			if _, dup := vals[c.C]; dup {
				t.Errorf("%s twice", c.C)
			}
			if goNames[c.Go] {
				t.Errorf("Go name %s twice", c.Go)
			}
			vals[c.C], goNames[c.Go] = c.Value, true
		}
	}
	for _, s := range Table {
		for _, c := range s.Consts {
			if c.Expr == "" {
				continue
			}
			got, err := eval(c.Expr, vals)
			if err != nil {
				t.Errorf("%s = %s: %v", c.C, c.Expr, err)
			} else if got != c.Value {
				t.Errorf("%s is %d, its expression %s gives %d", c.C, c.Value, c.Expr, got)
			}
		}
	}
}

// The generated files carry every row once.
func TestRender(t *testing.T) {
	cuh, gosrc := string(CUH()), string(Go())
	for _, s := range Table {
		for _, c := range s.Consts {
			d := regexp.MustCompile(`(?m)^#define `+c.C+` (\d+) //`).FindAllStringSubmatch(cuh, -1)
			if len(d) != 1 || d[0][1] != strconv.Itoa(c.Value) {
				t.Errorf("launch.cuh: %s: %v", c.C, d)
			}
			g := regexp.MustCompile(`(?m)^\t`+c.Go+` += (\d+) +// `+c.C+`:`).FindAllStringSubmatch(gosrc, -1)
			if len(g) != 1 || g[0][1] != strconv.Itoa(c.Value) {
				t.Errorf("constants_gen.go: %s: %v", c.Go, g)
			}
		}
	}
}

// eval evaluates + - * / and parentheses over integers and names.
func eval(e string, vals map[string]int) (int, error) {
	p := &parser{toks: regexp.MustCompile(`[A-Z0-9_]+|[-+*/()]`).FindAllString(e, -1), vals: vals}
	v, err := p.sum()
	if err == nil && p.i != len(p.toks) {
		err = strconv.ErrSyntax
	}
	return v, err
}

type parser struct {
	toks []string
	i    int
	vals map[string]int
}

func (p *parser) sum() (int, error) {
	v, err := p.product()
	for err == nil && p.i < len(p.toks) && (p.toks[p.i] == "+" || p.toks[p.i] == "-") {
		op := p.toks[p.i]
		p.i++
		var w int
		if w, err = p.product(); op == "+" {
			v += w
		} else {
			v -= w
		}
	}
	return v, err
}

func (p *parser) product() (int, error) {
	v, err := p.atom()
	for err == nil && p.i < len(p.toks) && (p.toks[p.i] == "*" || p.toks[p.i] == "/") {
		op := p.toks[p.i]
		p.i++
		var w int
		if w, err = p.atom(); err == nil && op == "*" {
			v *= w
		} else if err == nil {
			v /= w
		}
	}
	return v, err
}

func (p *parser) atom() (int, error) {
	if p.i >= len(p.toks) {
		return 0, strconv.ErrSyntax
	}
	tok := p.toks[p.i]
	p.i++
	if tok == "(" {
		v, err := p.sum()
		if err == nil && (p.i >= len(p.toks) || p.toks[p.i] != ")") {
			return 0, strconv.ErrSyntax
		}
		p.i++
		return v, err
	}
	if v, err := strconv.Atoi(tok); err == nil {
		return v, nil
	}
	v, ok := p.vals[tok]
	if !ok {
		return 0, strconv.ErrSyntax
	}
	return v, nil
}
