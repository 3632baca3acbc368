//go:build integration

package llamacpp

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/model/gguf"
)

// TestDiffGGUF checks the comparison the quantization tests rely on: a
// faithful copy of stories260K.gguf (rewritten by model/gguf) is no
// difference, and each kind of change is reported by what it is in.
func TestDiffGGUF(t *testing.T) {
	f, err := gguf.Open(storiesGGUF)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	meta := f.Metadata()
	var tensors []gguf.Tensor
	for _, ti := range f.Tensors() {
		data, err := f.Bytes(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		tensors = append(tensors, gguf.Tensor{Name: ti.Name, Type: ti.Type, Dims: ti.Dims, Data: slices.Clone(data)})
	}
	dir := t.TempDir()
	write := func(name string, meta gguf.Metadata, tensors []gguf.Tensor) string {
		p := filepath.Join(dir, name)
		if err := gguf.WriteFile(p, meta, tensors); err != nil {
			t.Fatal(err)
		}
		return p
	}
	check := func(what, path string, want ...string) {
		t.Helper()
		diffs, err := diffGGUF(storiesGGUF, path)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) == 0 {
			if len(diffs) != 0 {
				t.Errorf("%s: differences reported:\n  %s", what, strings.Join(diffs, "\n  "))
			}
			return
		}
		if len(diffs) == 0 {
			t.Errorf("%s: no difference reported, want one mentioning %q", what, want)
			return
		}
		for _, w := range want {
			if !strings.Contains(diffs[0], w) {
				t.Errorf("%s: first difference %q does not mention %q", what, diffs[0], w)
			}
		}
	}

	check("faithful copy", write("copy.gguf", meta, tensors))

	flipped := slices.Clone(tensors)
	i := slices.IndexFunc(flipped, func(x gguf.Tensor) bool { return x.Name == "blk.1.attn_q.weight" })
	flipped[i].Data = slices.Clone(flipped[i].Data)
	flipped[i].Data[64*4*3+5*4+1] ^= 1 // row 3, element 5: F32 block 3*64+5
	check("flipped bit", write("flipped.gguf", meta, flipped),
		`tensor "blk.1.attn_q.weight"`, "at byte 789", "block 197 (row 3, elements 5..5)", "1 of 4096 blocks")

	changed := meta.Clone()
	for i := range changed {
		if changed[i].Key == "llama.context_length" {
			changed[i].Value = uint32(4096)
		}
	}
	check("changed value", write("changed.gguf", changed, tensors), `metadata "llama.context_length"`, "2048", "4096")

	retyped := meta.Clone()
	for i := range retyped {
		if retyped[i].Key == "llama.context_length" {
			retyped[i].Value = uint64(2048)
		}
	}
	check("changed type", write("retyped.gguf", retyped, tensors), "uint32", "uint64")

	dropped := slices.DeleteFunc(meta.Clone(), func(kv gguf.KV) bool { return kv.Key == "general.name" })
	check("dropped key", write("dropped.gguf", dropped, tensors), `metadata "general.name"`, "quantkit lacks it")

	reordered := meta.Clone()
	reordered[0], reordered[1] = reordered[1], reordered[0]
	check("reordered keys", write("reordered.gguf", reordered, tensors), "metadata order: pair 0")

	swapped := slices.Clone(tensors)
	swapped[0], swapped[1] = swapped[1], swapped[0]
	check("reordered tensors", write("swapped.gguf", meta, swapped), "tensor order: tensor 0")

	check("missing tensor", write("missing.gguf", meta, tensors[:len(tensors)-1]), tensors[len(tensors)-1].Name, "not in quantkit's")
}
