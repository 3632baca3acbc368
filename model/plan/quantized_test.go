package plan

import (
	"testing"

	"github.com/quantkit/quantkit/model/safetensors"
)

func TestQuantized(t *testing.T) {
	plain := []safetensors.TensorInfo{{Name: "model.layers.0.mlp.up_proj.weight"}, {Name: "model.norm.weight"}}
	for _, tc := range []struct {
		config string
		meta   map[string]string
		names  []string
		want   string
	}{
		{`{"model_type":"llama"}`, nil, nil, ""},
		{`{"quantization_config":null}`, map[string]string{"format": "pt"}, nil, ""},
		{`{"quantization_config":{"quant_method":"compressed-tensors","format":"pack-quantized"}}`, nil, nil,
			`config.json has a quantization_config, quant_method "compressed-tensors", format "pack-quantized"`},
		{`{"quantization_config":{"quant_method":"gptq","bits":4}}`, nil, nil, `config.json has a quantization_config, quant_method "gptq"`},
		{"", map[string]string{MetaFormat: RawFormat}, nil, `its safetensors metadata has quantkit.format = "quantkit-raw"`},
		{"", nil, []string{"m.layers.0.q_proj.weight_packed"}, `it holds tensor "m.layers.0.q_proj.weight_packed"`},
		{"", nil, []string{"m.layers.0.q_proj.qweight"}, `it holds tensor "m.layers.0.q_proj.qweight"`},
		{"", nil, []string{"m.layers.0.q_proj.weight.scale"}, `it holds tensor "m.layers.0.q_proj.weight.scale"`},
	} {
		tensors := plain
		for _, n := range tc.names {
			tensors = append(tensors, safetensors.TensorInfo{Name: n})
		}
		var cfg []byte
		if tc.config != "" {
			cfg = []byte(tc.config)
		}
		got, ok := Quantized(cfg, tc.meta, tensors)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("Quantized(%s, %v, %v) = %q, %v; want %q", tc.config, tc.meta, tc.names, got, ok, tc.want)
		}
	}
}
