package ctensors

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/quant"
)

func TestQuantizationConfigExactJSON(t *testing.T) {
	for _, c := range []struct {
		scheme string
		format Format
		ignore []string
		want   string
	}{
		{"int4-sym-group128", PackQuantized, []string{"lm_head"},
			`{"config_groups":{"group_0":{"input_activations":null,"output_activations":null,"targets":["Linear"],` +
				`"weights":{"dynamic":false,"group_size":128,"num_bits":4,"observer":"minmax","strategy":"group","symmetric":true,"type":"int"}}},` +
				`"format":"pack-quantized","global_compression_ratio":null,"ignore":["lm_head"],"kv_cache_scheme":null,` +
				`"quant_method":"compressed-tensors","quantization_status":"compressed"}`},
		{"int8-asym-channel", IntQuantized, nil,
			`{"config_groups":{"group_0":{"input_activations":null,"output_activations":null,"targets":["Linear"],` +
				`"weights":{"dynamic":false,"group_size":null,"num_bits":8,"observer":"minmax","strategy":"channel","symmetric":false,"type":"int"}}},` +
				`"format":"int-quantized","global_compression_ratio":null,"ignore":[],"kv_cache_scheme":null,` +
				`"quant_method":"compressed-tensors","quantization_status":"compressed"}`},
		{"int8-sym-tensor", PackQuantized, []string{"lm_head", "model.embed_tokens"},
			`{"config_groups":{"group_0":{"input_activations":null,"output_activations":null,"targets":["Linear"],` +
				`"weights":{"dynamic":false,"group_size":null,"num_bits":8,"observer":"minmax","strategy":"tensor","symmetric":true,"type":"int"}}},` +
				`"format":"pack-quantized","global_compression_ratio":null,"ignore":["lm_head","model.embed_tokens"],"kv_cache_scheme":null,` +
				`"quant_method":"compressed-tensors","quantization_status":"compressed"}`},
	} {
		t.Run(c.scheme, func(t *testing.T) {
			qc, err := QuantizationConfig(mustScheme(t, c.scheme), c.format, c.ignore)
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(qc)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != c.want {
				t.Errorf("got\n%s\nwant\n%s", b, c.want)
			}
		})
	}
	if _, err := QuantizationConfig(mustScheme(t, "uint8-asym-tensor"), IntQuantized, nil); err == nil {
		t.Error("unsigned scheme accepted")
	}
	if _, err := QuantizationConfig(quant.Int8PerChannel, "fp8", nil); err == nil {
		t.Error("unknown format accepted")
	}
}

const hfConfig = `{
  "architectures": ["LlamaForCausalLM"],
  "rms_norm_eps": 1e-05,
  "rope_theta": 500000.0,
  "hidden_size": 4096,
  "name": "<a & b>",
  "torch_dtype": "bfloat16"
}`

func TestUpdateConfig(t *testing.T) {
	qc, err := QuantizationConfig(quant.Int4PerGroup128, PackQuantized, []string{"lm_head"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := UpdateConfig([]byte(hfConfig), qc)
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	// Keys in their order, quantization_config appended, values as written.
	var order []int
	for _, k := range []string{`"architectures"`, `"rms_norm_eps": 1e-05`, `"rope_theta": 500000.0`, `"hidden_size": 4096`, `"name": "<a & b>"`, `"torch_dtype"`, `"quantization_config"`} {
		i := strings.Index(text, k)
		if i < 0 {
			t.Fatalf("%s missing from\n%s", k, text)
		}
		order = append(order, i)
	}
	if !slices.IsSorted(order) {
		t.Errorf("key order changed:\n%s", text)
	}
	if !strings.HasSuffix(text, "}\n") || !strings.Contains(text, "\n  \"hidden_size\": 4096,\n") {
		t.Errorf("not two-space indented with a final newline:\n%s", text)
	}
	c, ok, err := ReadConfig(out)
	if err != nil || !ok {
		t.Fatalf("ReadConfig: %v %v", ok, err)
	}
	if c.Scheme != quant.Int4PerGroup128 || c.Format != PackQuantized || !slices.Equal(c.Ignore, []string{"lm_head"}) || !slices.Equal(c.Targets, []string{"Linear"}) {
		t.Errorf("ReadConfig = %+v", c)
	}
	// Replacing keeps the position and leaves no second copy.
	qc8, _ := QuantizationConfig(quant.Int8PerChannel, IntQuantized, nil)
	moved := strings.Replace(string(out), "{\n", "{\n  \"first\": 1,\n", 1)
	again, err := UpdateConfig([]byte(moved), qc8)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(again), "quantization_config"); n != 1 {
		t.Errorf("%d quantization_config keys", n)
	}
	if c, _, _ := ReadConfig(again); c.Scheme != quant.Int8PerChannel || c.Format != IntQuantized {
		t.Errorf("after replacing: %+v", c)
	}
	var m map[string]any
	if err := json.Unmarshal(again, &m); err != nil || len(m) != 8 {
		t.Errorf("%d keys (%v), want 8", len(m), err)
	}
	// nil removes it, giving back the original keys.
	removed, err := UpdateConfig(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(removed), "quantization") {
		t.Errorf("not removed:\n%s", removed)
	}
	if _, ok, err := ReadConfig(removed); ok || err != nil {
		t.Errorf("ReadConfig of an unquantized config: %v %v", ok, err)
	}
	for _, bad := range []struct{ text, want string }{
		{`[1]`, "not a JSON object"},
		{`{"a": 1, "a": 2}`, `key "a" appears twice`},
		{`{"a": 1} {}`, "data after the JSON object"},
		{`{"a": }`, "not valid JSON"},
		{``, "not valid JSON"},
	} {
		if _, err := UpdateConfig([]byte(bad.text), qc); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("UpdateConfig(%q): %v, want %q", bad.text, err, bad.want)
		}
	}
}

func TestReadConfig(t *testing.T) {
	wrap := func(qc string) []byte { return []byte(`{"model_type": "llama", "quantization_config": ` + qc + `}`) }
	// As llm-compressor writes W4A16: a per-group format, extra keys, defaults.
	c, ok, err := ReadConfig(wrap(`{"quant_method": "compressed-tensors", "format": "pack-quantized",
		"quantization_status": "compressed", "version": "0.9.0", "sparsity_config": {},
		"config_groups": {"group_0": {"targets": ["Linear"], "format": "pack-quantized",
			"weights": {"num_bits": 4, "type": "int", "symmetric": true, "strategy": "group", "group_size": 128,
				"actorder": null, "block_structure": null, "dynamic": false, "observer": "minmax", "observer_kwargs": {}},
			"input_activations": null, "output_activations": null}},
		"ignore": ["lm_head"], "kv_cache_scheme": null}`))
	if err != nil || !ok || c.Scheme != quant.Int4PerGroup128 || c.Format != PackQuantized {
		t.Fatalf("llm-compressor config: %+v %v %v", c, ok, err)
	}
	// W8A8 from llm-compressor: activation settings do not matter here.
	c, _, err = ReadConfig(wrap(`{"quant_method": "compressed-tensors", "format": "int-quantized",
		"config_groups": {"g": {"targets": ["Linear"], "weights": {"num_bits": 8, "strategy": "channel"},
			"input_activations": {"num_bits": 8, "strategy": "token", "dynamic": true}}}}`))
	if err != nil || c.Scheme != quant.Int8PerChannel || !c.InputActivations.IsDynamicTokenInt8() {
		t.Fatalf("W8A8 config: %+v %v", c, err)
	}
	// Static per-tensor activations are read, and are not W8A8's.
	c, _, err = ReadConfig(wrap(`{"quant_method": "compressed-tensors", "format": "int-quantized",
		"config_groups": {"g": {"targets": ["Linear"], "weights": {"num_bits": 8, "strategy": "channel"},
			"input_activations": {"num_bits": 8, "symmetric": false}}}}`))
	if want := (Activations{Bits: 8, Type: "int", Strategy: "tensor"}); err != nil || c.InputActivations == nil || *c.InputActivations != want || c.InputActivations.IsDynamicTokenInt8() {
		t.Fatalf("static activations: %+v %v", c.InputActivations, err)
	}
	// Defaults: no strategy with a group size is the group strategy.
	c, _, err = ReadConfig(wrap(`{"quant_method": "compressed-tensors", "format": "pack-quantized",
		"config_groups": {"g": {"targets": ["Linear"], "weights": {"num_bits": 4, "symmetric": false, "group_size": 32}}}}`))
	if want := (quant.Scheme{Bits: 4, Signed: true, Granularity: quant.PerGroup, GroupSize: 32}); err != nil || c.Scheme != want {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	for _, bad := range []struct{ qc, want string }{
		{`{"quant_method": "gptq"}`, `quant_method "gptq" is not compressed-tensors`},
		{`{"quant_method": "compressed-tensors", "quantization_status": "frozen"}`, "not stored compressed"},
		{`{"quant_method": "compressed-tensors", "config_groups": {}}`, "0 config groups"},
		{`{"quant_method": "compressed-tensors", "format": "pack-quantized", "config_groups": {"a": {"targets": ["Linear"]}}}`, "quantizes no weights"},
		{`{"quant_method": "compressed-tensors", "format": "float-quantized", "config_groups": {"a": {"weights": {"type": "float"}}}}`, `weight type "float" is not int`},
		{`{"quant_method": "compressed-tensors", "format": "pack-quantized", "config_groups": {"a": {"weights": {"strategy": "block"}}}}`, `strategy "block" not supported`},
		{`{"quant_method": "compressed-tensors", "format": "pack-quantized", "config_groups": {"a": {"weights": {"strategy": "group"}}}}`, "group strategy without group_size"},
		{`{"quant_method": "compressed-tensors", "format": "pack-quantized", "config_groups": {"a": {"weights": {"num_bits": 2}}}}`, "2 bits not supported"},
		{`{"quant_method": "compressed-tensors", "format": "pack-quantized", "config_groups": {"a": {"weights": {"dynamic": true}}}}`, "dynamic weights"},
		{`{"quant_method": "compressed-tensors", "format": "marlin-24", "config_groups": {"a": {"weights": {}}}}`, `format "marlin-24" not supported`},
		{`{"quant_method": "compressed-tensors", "format": "int-quantized", "config_groups": {"a": {"format": "pack-quantized", "weights": {}}}}`, "disagrees"},
		{`{"quant_method": 4}`, "cannot unmarshal"},
		{`{"quant_method": "compressed-tensors", "format": "int-quantized", "config_groups": {"a": {"weights": {}, "input_activations": {"dynamic": "local"}}}}`, `input_activations dynamic "local" not supported`},
	} {
		if _, _, err := ReadConfig(wrap(bad.qc)); err == nil || !strings.HasPrefix(err.Error(), "ctensors: config.json: ") || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ReadConfig(%s): %v, want %q", bad.qc, err, bad.want)
		}
	}
	if _, ok, err := ReadConfig([]byte(`{"quantization_config": null}`)); ok || err != nil {
		t.Errorf("null quantization_config: %v %v", ok, err)
	}
}

// Every scheme QuantizationConfig accepts reads back as itself.
func TestConfigRoundTrip(t *testing.T) {
	for _, text := range []string{"int8-sym-channel", "int8-asym-tensor", "int8-sym-group64", "int4-asym-group32", "int4-sym-channel", "int4-sym-tensor"} {
		s := mustScheme(t, text)
		for _, f := range []Format{IntQuantized, PackQuantized} {
			qc, err := QuantizationConfig(s, f, []string{"lm_head"})
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := UpdateConfig([]byte(`{}`), qc)
			if err != nil {
				t.Fatal(err)
			}
			c, ok, err := ReadConfig(cfg)
			if err != nil || !ok || c.Scheme != s || c.Format != f {
				t.Errorf("%s %s: read back %+v %v %v", text, f, c, ok, err)
			}
		}
	}
}

// A W8A8 quantization_config (SetInputActivations) reads back with
// llm-compressor's dynamic per-token int8 activations, and its
// input_activations object has the keys llm-compressor writes.
func TestW8A8ConfigRoundTrip(t *testing.T) {
	qc, err := QuantizationConfig(quant.Int8PerChannel, IntQuantized, []string{"lm_head"})
	if err != nil {
		t.Fatal(err)
	}
	if err := SetInputActivations(qc, DynamicTokenInt8); err != nil {
		t.Fatal(err)
	}
	cfg, err := UpdateConfig([]byte(`{"model_type": "llama"}`), qc)
	if err != nil {
		t.Fatal(err)
	}
	c, ok, err := ReadConfig(cfg)
	if err != nil || !ok || c.Scheme != quant.Int8PerChannel || c.Format != IntQuantized || !c.InputActivations.IsDynamicTokenInt8() {
		t.Fatalf("read back %+v %v %v from\n%s", c, ok, err, cfg)
	}
	var parsed struct {
		QC struct {
			Groups map[string]struct {
				Act map[string]any `json:"input_activations"`
			} `json:"config_groups"`
		} `json:"quantization_config"`
	}
	if err := json.Unmarshal(cfg, &parsed); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"num_bits": 8.0, "type": "int", "symmetric": true, "strategy": "token", "group_size": nil, "dynamic": true, "observer": nil}
	if got := parsed.QC.Groups["group_0"].Act; !reflect.DeepEqual(got, want) {
		t.Errorf("input_activations %v, want %v", got, want)
	}
	// Weight-only: none.
	qc, _ = QuantizationConfig(quant.Int8PerChannel, IntQuantized, nil)
	cfg, _ = UpdateConfig([]byte(`{}`), qc)
	if c, _, err := ReadConfig(cfg); err != nil || c.InputActivations != nil {
		t.Errorf("weight-only config: activations %+v, %v", c.InputActivations, err)
	}
	if err := SetInputActivations(map[string]any{}, DynamicTokenInt8); err == nil {
		t.Error("SetInputActivations took a map without a config group")
	}
}

// TestActOrderConfig checks the actorder key GPTQ's checkpoints carry:
// "weight" in the weights arguments (beside the others, unchanged), null
// when cleared, read back as the same scheme; other orders are refused.
func TestActOrderConfig(t *testing.T) {
	qc, err := QuantizationConfig(quant.Int4PerGroup128, PackQuantized, []string{"lm_head"})
	if err != nil {
		t.Fatal(err)
	}
	if err := SetWeightsActOrder(qc, ActOrderWeight); err != nil {
		t.Fatal(err)
	}
	cfg, err := UpdateConfig([]byte(`{}`), qc)
	if err != nil {
		t.Fatal(err)
	}
	want := `"weights":{"actorder":"weight","dynamic":false,"group_size":128,"num_bits":4,"observer":"minmax","strategy":"group","symmetric":true,"type":"int"}`
	if compact := strings.Join(strings.Fields(string(cfg)), ""); !strings.Contains(compact, want) {
		t.Errorf("config.json\n%s\nwant weights %s", cfg, want)
	}
	if c, ok, err := ReadConfig(cfg); err != nil || !ok || c.Scheme != quant.Int4PerGroup128 {
		t.Errorf("read back %+v %v %v", c, ok, err)
	}
	if err := SetWeightsActOrder(qc, ""); err != nil {
		t.Fatal(err)
	}
	w := qc["config_groups"].(map[string]any)["group_0"].(map[string]any)["weights"].(map[string]any)
	if v, ok := w["actorder"]; !ok || v != nil {
		t.Errorf("cleared actorder %v (present %v), want null", v, ok)
	}
	if err := SetWeightsActOrder(qc, "group"); err == nil {
		t.Error(`actorder "group" accepted without a g_idx`)
	}
	if err := SetWeightsActOrder(map[string]any{}, ActOrderWeight); err == nil {
		t.Error("SetWeightsActOrder took a map without weights")
	}
}
