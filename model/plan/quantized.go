package plan

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/quantkit/quantkit/internal/jsonobj"
	"github.com/quantkit/quantkit/model/safetensors"
)

// quantizedSuffixes end the names of tensors that only quantized
// checkpoints hold: compressed-tensors' packed codes and scales, GPTQ's
// and AWQ's qweight, quantkit's raw scales.
var quantizedSuffixes = []string{".weight_packed", ".weight_scale", ".weight_zero_point", ".qweight", ".qzeros", ".weight" + RawScale}

// Quantized reports whether a checkpoint is quantized already, and says
// how: a quantization_config in its config.json (compressed-tensors, GPTQ,
// AWQ, bitsandbytes, FP8: any), quantkit's raw-format metadata, or tensors
// named as only quantized checkpoints name them. Quantizing it again would
// take codes and scales for weights and write a checkpoint whose
// configuration describes neither.
func Quantized(configJSON []byte, meta map[string]string, tensors []safetensors.TensorInfo) (what string, ok bool) {
	if configJSON != nil {
		members, _ := jsonobj.Members(configJSON)
		for _, m := range members {
			if m.Key != "quantization_config" || string(m.Value) == "null" {
				continue
			}
			var qc struct {
				QuantMethod string `json:"quant_method"`
				Format      string `json:"format"`
			}
			json.Unmarshal(m.Value, &qc)
			what := "config.json has a quantization_config"
			if qc.QuantMethod != "" {
				what += fmt.Sprintf(", quant_method %q", qc.QuantMethod)
			}
			if qc.Format != "" {
				what += fmt.Sprintf(", format %q", qc.Format)
			}
			return what, true
		}
	}
	if f, ok := meta[MetaFormat]; ok {
		return fmt.Sprintf("its safetensors metadata has %s = %q", MetaFormat, f), true
	}
	for _, t := range tensors {
		for _, s := range quantizedSuffixes {
			if strings.HasSuffix(t.Name, s) {
				return fmt.Sprintf("it holds tensor %q", t.Name), true
			}
		}
	}
	return "", false
}
