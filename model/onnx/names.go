package onnx

import (
	"fmt"
	"slices"
)

// CheckNames reports a name that g uses twice where onnx.proto wants it
// unique and readers look values up by it (so that one of the two would
// silently win): two initializers, two graph inputs or two graph outputs
// of one name; a node output (other than "", an omitted optional output)
// that another node output, an initializer or a graph input also defines;
// two attributes of one node of one name. An initializer may also be a
// graph input. The error names both places:
// `initializer[3]: name "w" used twice (also initializer[0])`.
//
// It sorts copies of the names, so its memory is a slice header per name
// whatever the graph holds.
func (g *Graph) CheckNames() error {
	if g == nil {
		return nil
	}
	inits := make([]string, len(g.Initializer))
	for i, t := range g.Initializer {
		inits[i] = t.Name
	}
	slices.Sort(inits)
	if d, ok := firstDuplicate(inits); ok {
		first := -1
		for i, t := range g.Initializer {
			if t.Name != d {
				continue
			}
			if first >= 0 {
				return fmt.Errorf("initializer[%d]: name %q used twice (also initializer[%d])", i, d, first)
			}
			first = i
		}
	}
	for _, list := range []struct {
		name string
		vs   []*ValueInfo
	}{{"input", g.Input}, {"output", g.Output}} {
		if err := uniqueValueInfos(list.name, list.vs); err != nil {
			return err
		}
	}

	// What nodes define, initializers and inputs included.
	n := len(g.Initializer) + len(g.Input)
	for _, nd := range g.Node {
		n += len(nd.Output)
	}
	defined := make([]string, 0, n)
	defined = append(defined, inits...)
	for _, v := range g.Input {
		if _, found := slices.BinarySearch(inits, v.Name); !found {
			defined = append(defined, v.Name)
		}
	}
	for _, nd := range g.Node {
		for _, o := range nd.Output {
			if o != "" {
				defined = append(defined, o)
			}
		}
	}
	slices.Sort(defined)
	if d, ok := firstDuplicate(defined); ok {
		return nodeOutputTwice(g, d)
	}

	var attrs []string
	for i, nd := range g.Node {
		if len(nd.Attribute) < 2 {
			continue
		}
		attrs = attrs[:0]
		for _, a := range nd.Attribute {
			attrs = append(attrs, a.Name)
		}
		slices.Sort(attrs)
		if d, ok := firstDuplicate(attrs); ok {
			first := -1
			for j, a := range nd.Attribute {
				if a.Name != d {
					continue
				}
				if first >= 0 {
					return fmt.Errorf("node[%d] (%s).attribute[%d]: name %q used twice (also attribute[%d])", i, nd.Describe(), j, d, first)
				}
				first = j
			}
		}
	}
	return nil
}

// firstDuplicate is the first name that sorted holds twice.
func firstDuplicate(sorted []string) (string, bool) {
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			return sorted[i], true
		}
	}
	return "", false
}

func uniqueValueInfos(kind string, vs []*ValueInfo) error {
	names := make([]string, len(vs))
	for i, v := range vs {
		names[i] = v.Name
	}
	slices.Sort(names)
	d, ok := firstDuplicate(names)
	if !ok {
		return nil
	}
	first := -1
	for i, v := range vs {
		if v.Name != d {
			continue
		}
		if first >= 0 {
			return fmt.Errorf("%s[%d]: name %q used twice (also %s[%d])", kind, i, d, kind, first)
		}
		first = i
	}
	return nil
}

// nodeOutputTwice is the error for a name d defined twice, at least once
// by a node: the second definition in the order initializers, inputs,
// nodes, with the first.
func nodeOutputTwice(g *Graph, d string) error {
	var first string
	for i, t := range g.Initializer {
		if t.Name == d {
			first = fmt.Sprintf("initializer[%d]", i)
			break
		}
	}
	if first == "" {
		for i, v := range g.Input {
			if v.Name == d {
				first = fmt.Sprintf("input[%d]", i)
				break
			}
		}
	}
	for i, nd := range g.Node {
		for j, o := range nd.Output {
			if o != d {
				continue
			}
			here := fmt.Sprintf("node[%d] (%s).output[%d]", i, nd.Describe(), j)
			if first != "" {
				return fmt.Errorf("%s: name %q used twice (also %s)", here, d, first)
			}
			first = here
		}
	}
	return fmt.Errorf("name %q used twice", d) // not reached: d is defined twice
}
