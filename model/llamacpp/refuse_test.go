package llamacpp

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/model/safetensors"
)

// copyStories copies the Hugging Face stories260K into a new directory.
func copyStories(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(storiesHF)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(storiesHF, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// editJSON rewrites dir/name through edit.
func editJSON(t *testing.T, dir, name string, edit func(m map[string]any)) {
	t.Helper()
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	if data, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// editTensors rewrites dir/model.safetensors through edit.
func editTensors(t *testing.T, dir string, edit func([]safetensors.Tensor) []safetensors.Tensor) {
	t.Helper()
	path := filepath.Join(dir, "model.safetensors")
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var ts []safetensors.Tensor
	for _, ti := range f.Tensors() {
		b, err := f.Bytes(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, safetensors.Tensor{Name: ti.Name, DType: ti.DType, Shape: ti.Shape, Data: append([]byte(nil), b...)})
	}
	f.Close()
	if err := safetensors.WriteFile(path, edit(ts), nil); err != nil {
		t.Fatal(err)
	}
}

func setKey(key string, v any) func(map[string]any) {
	return func(m map[string]any) {
		if v == nil {
			delete(m, key)
		} else {
			m[key] = v
		}
	}
}

// Every checkpoint that cannot be converted right is refused by Plan,
// before anything is written, with the file and the problem named.
func TestPlanRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  []string // in the error, besides the directory
	}{
		{"no config.json", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "config.json")) },
			[]string{"config.json: missing"}},
		{"no tokenizer.json", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "tokenizer.json")) },
			[]string{"tokenizer.json: missing", "tokenizer"}},
		{"another architecture", func(t *testing.T, dir string) {
			editJSON(t, dir, "config.json", setKey("architectures", []string{"Qwen2ForCausalLM"}))
		}, []string{"config.json", "architecture Qwen2ForCausalLM", "LlamaForCausalLM"}},
		{"no architectures", func(t *testing.T, dir string) { editJSON(t, dir, "config.json", setKey("architectures", nil)) },
			[]string{"config.json", "architectures is missing"}},
		{"model_type disagrees", func(t *testing.T, dir string) { editJSON(t, dir, "config.json", setKey("model_type", "mistral")) },
			[]string{"config.json", `model_type is "mistral"`}},
		{"no hidden_size", func(t *testing.T, dir string) { editJSON(t, dir, "config.json", setKey("hidden_size", nil)) },
			[]string{"config.json", "hidden_size is missing"}},
		{"kv heads do not divide", func(t *testing.T, dir string) { editJSON(t, dir, "config.json", setKey("num_key_value_heads", 3)) },
			[]string{"config.json", "num_attention_heads 8 is not a multiple of num_key_value_heads 3"}},
		{"zero heads", func(t *testing.T, dir string) { editJSON(t, dir, "config.json", setKey("num_attention_heads", 0)) },
			[]string{"config.json", "num_attention_heads is 0"}},
		{"odd head_dim", func(t *testing.T, dir string) { editJSON(t, dir, "config.json", setKey("head_dim", 7)) },
			[]string{"config.json", "head_dim 7 is odd"}},
		{"heads disagree with the tensors", func(t *testing.T, dir string) {
			editJSON(t, dir, "config.json", func(m map[string]any) { m["num_attention_heads"] = 4; m["num_key_value_heads"] = 4 })
		}, []string{"wrong shape", "q_proj.weight is [64 64], not [32 64]"}},
		{"dynamic RoPE", func(t *testing.T, dir string) {
			editJSON(t, dir, "config.json", setKey("rope_scaling", map[string]any{"type": "dynamic", "factor": 2.0}))
		}, []string{"config.json", `"dynamic"`}},
		{"not SiLU", func(t *testing.T, dir string) { editJSON(t, dir, "config.json", setKey("hidden_act", "gelu")) },
			[]string{"config.json", `hidden_act is "gelu"`}},
		{"quantized", func(t *testing.T, dir string) {
			editJSON(t, dir, "config.json", setKey("quantization_config", map[string]any{"quant_method": "gptq"}))
		}, []string{"config.json", "already quantized", "gptq"}},
		{"config.json not an object", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "config.json"), []byte("[1]"), 0o644)
		}, []string{"config.json"}},
		{"unigram tokenizer", func(t *testing.T, dir string) {
			editJSON(t, dir, "tokenizer.json", func(m map[string]any) { m["model"].(map[string]any)["type"] = "Unigram" })
		}, []string{"tokenizer.json", "Unigram"}},
		{"token beyond the vocabulary", func(t *testing.T, dir string) {
			editJSON(t, dir, "config.json", setKey("vocab_size", 500))
		}, []string{"tokenizer.json", "outside vocab_size 500"}},
		{"a tensor missing", func(t *testing.T, dir string) {
			editTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
				var out []safetensors.Tensor
				for _, x := range ts {
					if x.Name != "model.layers.3.mlp.up_proj.weight" {
						out = append(out, x)
					}
				}
				return out
			})
		}, []string{"tensors missing: model.layers.3.mlp.up_proj.weight"}},
		{"an unexpected tensor", func(t *testing.T, dir string) {
			editTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
				return append(ts, safetensors.Tensor{Name: "model.layers.5.mlp.up_proj.weight", DType: "F32", Shape: []int{1}, Data: make([]byte, 4)})
			})
		}, []string{"does not have: model.layers.5.mlp.up_proj.weight"}},
		{"untied without lm_head", func(t *testing.T, dir string) {
			editJSON(t, dir, "config.json", setKey("tie_word_embeddings", false))
		}, []string{"lm_head.weight"}},
		{"integer weights", func(t *testing.T, dir string) {
			editTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
				for i := range ts {
					if ts[i].Name == "model.norm.weight" {
						ts[i].DType = "I32"
					}
				}
				return ts
			})
		}, []string{"model.norm.weight is I32"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyStories(t)
			tc.setup(t, dir)
			before, _ := os.ReadDir(dir)
			c, err := Plan(dir, Options{})
			if err == nil {
				c.Close()
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, dir) {
				t.Errorf("the error does not name %s: %v", dir, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
			if after, _ := os.ReadDir(dir); len(after) != len(before) {
				t.Errorf("Plan changed %s", dir)
			}
		})
	}
}

// Plan takes a directory; a file or a missing path is refused.
func TestPlanNeedsADirectory(t *testing.T) {
	if _, err := Plan(filepath.Join(storiesHF, "config.json"), Options{}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a file: %v", err)
	}
	if _, err := Plan(filepath.Join(t.TempDir(), "none"), Options{}); err == nil {
		t.Error("a missing directory was accepted")
	}
}

// A failed Write leaves nothing behind.
func TestWriteLeavesNothingOnFailure(t *testing.T) {
	c, err := Plan(storiesHF, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir := t.TempDir()
	out := filepath.Join(dir, "x.gguf")
	c.Tensors[3].Source = "no.such.tensor"
	if err := Write(c, out, WriteOptions{}); err == nil || !strings.Contains(err.Error(), "no.such.tensor") {
		t.Errorf("Write with a bad source: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("%s holds %d entries after a failed Write", dir, len(entries))
	}
	if err := Write(c, out, WriteOptions{Type: 8}); err == nil {
		t.Error("Write accepted a quantized type")
	}
}
