package onnx

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// encodeUnchecked is Encode without its checks, for files that Encode
// rightly refuses to write.
func encodeUnchecked(m *Model) []byte {
	b := appendInt(nil, 1, m.IRVersion)
	b = appendMessage(b, 7, encodeGraph(m.Graph))
	for _, o := range m.OpsetImport {
		b = appendMessage(b, 8, appendInt(appendString(nil, 1, o.Domain), 2, o.Version))
	}
	return b
}

// namesModel is a small valid chain x → Conv(w, b) → y → Relu → z.
func namesModel() *Model {
	return &Model{IRVersion: 7, OpsetImport: []OperatorSet{{"", 13}}, Graph: &Graph{
		Node: []*Node{
			{Input: []string{"x", "w", "b"}, Output: []string{"y"}, Name: "conv", OpType: "Conv",
				Attribute: []*Attribute{IntsAttr("pads", 0, 0, 0, 0), IntAttr("group", 1)}},
			{Input: []string{"y"}, Output: []string{"z"}, Name: "relu", OpType: "Relu"},
		},
		Initializer: []*Tensor{
			NewFloat("w", []int64{1, 1, 1, 1}, []float32{2}),
			NewFloat("b", []int64{1}, []float32{1}),
		},
		// An initializer may also be a graph input.
		Input:  []*ValueInfo{{Name: "x", ElemType: DataFloat}, {Name: "w", ElemType: DataFloat}},
		Output: []*ValueInfo{{Name: "z", ElemType: DataFloat}},
	}}
}

// duplicateNameModels are models that use one name for two things, each
// with the name the error must give.
func duplicateNameModels() []struct {
	name, dup string
	m         *Model
} {
	var cases []struct {
		name, dup string
		m         *Model
	}
	add := func(name, dup string, edit func(g *Graph)) {
		m := namesModel()
		edit(m.Graph)
		cases = append(cases, struct {
			name, dup string
			m         *Model
		}{name, dup, m})
	}
	add("initializer", "w", func(g *Graph) {
		g.Initializer = append(g.Initializer, NewFloat("w", []int64{1, 1, 1, 1}, []float32{float32(3)}))
	})
	add("input", "x", func(g *Graph) { g.Input = append(g.Input, &ValueInfo{Name: "x", ElemType: DataFloat}) })
	add("output", "z", func(g *Graph) { g.Output = append(g.Output, &ValueInfo{Name: "z", ElemType: DataFloat}) })
	add("node output", "y", func(g *Graph) { g.Node[1].Output = []string{"y"}; g.Output[0].Name = "y" })
	add("two outputs of one node", "y", func(g *Graph) { g.Node[0].Output = []string{"y", "y"} })
	add("node output is an initializer", "b", func(g *Graph) { g.Node[1].Output = []string{"b"}; g.Output[0].Name = "b" })
	add("node output is a graph input", "x", func(g *Graph) { g.Node[1].Output = []string{"x"}; g.Output[0].Name = "x" })
	add("attribute", "pads", func(g *Graph) {
		g.Node[0].Attribute = append(g.Node[0].Attribute, IntsAttr("pads", 1, 1, 1, 1))
	})
	return cases
}

// Names that onnx.proto wants unique and that readers look up (the
// initializers, graph inputs and outputs, node outputs, a node's
// attributes) are refused when used twice, by Decode, Read and Encode,
// with an error naming the name (and the file).
func TestDuplicateNames(t *testing.T) {
	if b, err := Encode(namesModel()); err != nil {
		t.Fatal(err)
	} else if _, err := Decode(b); err != nil {
		t.Fatalf("the model without duplicates: %v", err)
	}
	dir := t.TempDir()
	for _, c := range duplicateNameModels() {
		data := encodeUnchecked(c.m)
		_, err := Decode(data)
		if err == nil || !strings.Contains(err.Error(), `"`+c.dup+`"`) || !strings.Contains(err.Error(), "twice") {
			t.Errorf("%s: Decode: %v; want an error naming %q twice", c.name, err, c.dup)
		}
		path := filepath.Join(dir, "dup.onnx")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Read(path); err == nil || !strings.HasPrefix(err.Error(), "onnx: "+path+": ") || !strings.Contains(err.Error(), `"`+c.dup+`"`) {
			t.Errorf("%s: Read: %v; want an error naming the file and %q", c.name, err, c.dup)
		}
		if _, err := Encode(c.m); err == nil || !strings.Contains(err.Error(), `"`+c.dup+`"`) {
			t.Errorf("%s: Encode: %v", c.name, err)
		}
		if err := c.m.Graph.CheckNames(); err == nil {
			t.Errorf("%s: CheckNames passed", c.name)
		}
	}
	// Omitted optional outputs ("") may repeat.
	m := namesModel()
	m.Graph.Node[1].Output = []string{"z", "", ""}
	if _, err := Decode(encodeUnchecked(m)); err != nil {
		t.Errorf("empty optional outputs: %v", err)
	}
}
