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
	if d, a, b, ok := twice(len(g.Initializer), func(i int) string { return g.Initializer[i].Name }); ok {
		return fmt.Errorf("initializer[%d]: name %q used twice (also initializer[%d])", b, d, a)
	}
	for _, list := range []struct {
		kind string
		vs   []*ValueInfo
	}{{"input", g.Input}, {"output", g.Output}} {
		if d, a, b, ok := twice(len(list.vs), func(i int) string { return list.vs[i].Name }); ok {
			return fmt.Errorf("%s[%d]: name %q used twice (also %s[%d])", list.kind, b, d, list.kind, a)
		}
	}
	inits := make([]string, len(g.Initializer))
	for i, t := range g.Initializer {
		inits[i] = t.Name
	}
	slices.Sort(inits)

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

	for i, nd := range g.Node {
		if d, a, b, ok := twice(len(nd.Attribute), func(j int) string { return nd.Attribute[j].Name }); ok {
			return fmt.Errorf("node[%d] (%s).attribute[%d]: name %q used twice (also attribute[%d])", i, nd.Describe(), b, d, a)
		}
	}
	return nil
}

// twice finds a name that the n items (name(i) for i in [0, n)) hold more
// than once, the first in sorted order, and the positions of its first two
// items.
func twice(n int, name func(i int) string) (d string, first, second int, ok bool) {
	if n < 2 {
		return "", 0, 0, false
	}
	names := make([]string, n)
	for i := range names {
		names[i] = name(i)
	}
	slices.Sort(names)
	if d, ok = firstDuplicate(names); !ok {
		return "", 0, 0, false
	}
	first = -1
	for i := range n {
		if name(i) != d {
			continue
		}
		if first >= 0 {
			return d, first, i, true
		}
		first = i
	}
	return "", 0, 0, false // not reached: d is there twice
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
