package ctensors

import (
	"github.com/quantkit/quantkit/internal/jsonobj"

	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/quantkit/quantkit/quant"
)

// configKey is the config.json key that holds the quantization config.
const configKey = "quantization_config"

// MaxConfigDepth bounds how deep config.json may nest, counting its own
// object as 1. Hugging Face configs nest 6 deep at most (a
// quantization_config's observer_kwargs); the bound keeps UpdateConfig's
// re-indented output, in which every line is indented two spaces a level,
// within a small multiple of its input.
const MaxConfigDepth = 16

// strategies maps quant's granularities to compressed-tensors' strategy
// names, one row each.
var strategies = []struct {
	g    quant.Granularity
	name string
}{
	{quant.PerTensor, "tensor"},
	{quant.PerChannel, "channel"},
	{quant.PerGroup, "group"},
}

func granularityOf(name string) (quant.Granularity, bool) {
	for _, row := range strategies {
		if row.name == name {
			return row.g, true
		}
	}
	return 0, false
}

func strategyName(g quant.Granularity) string {
	for _, row := range strategies {
		if row.g == g {
			return row.name
		}
	}
	return ""
}

// QuantizationConfig is the "quantization_config" object of config.json for
// weights quantized under s and written in format f, with one config group
// that targets every Linear layer except the modules in ignore (module
// names such as "lm_head", not tensor names). Its keys are exactly:
//
//	quant_method: "compressed-tensors", format: f,
//	quantization_status: "compressed",
//	config_groups: {group_0: {targets: ["Linear"],
//	    weights: {num_bits, type: "int", symmetric, strategy,
//	              group_size (null unless group), dynamic: false,
//	              observer: "minmax"},
//	    input_activations: null, output_activations: null}},
//	ignore, kv_cache_scheme: null, global_compression_ratio: null
func QuantizationConfig(s quant.Scheme, f Format, ignore []string) (map[string]any, error) {
	if _, err := newLayout("", []int{0, 0}, s, f, "F32"); err != nil {
		return nil, fmt.Errorf("ctensors: %w", err)
	}
	var groupSize any // null
	if s.Granularity == quant.PerGroup {
		groupSize = s.GroupSize
	}
	ign := append([]string{}, ignore...) // [] rather than null
	return map[string]any{
		"quant_method":        "compressed-tensors",
		"format":              string(f),
		"quantization_status": "compressed",
		"config_groups": map[string]any{
			"group_0": map[string]any{
				"targets": []string{"Linear"},
				"weights": map[string]any{
					"num_bits":   s.Bits,
					"type":       "int",
					"symmetric":  s.Symmetric,
					"strategy":   strategyName(s.Granularity),
					"group_size": groupSize,
					"dynamic":    false,
					"observer":   "minmax",
				},
				"input_activations":  nil,
				"output_activations": nil,
			},
		},
		"ignore":                   ign,
		"kv_cache_scheme":          nil,
		"global_compression_ratio": nil,
	}, nil
}

// UpdateConfig returns config.json with its "quantization_config" set to
// qc (replaced where it was, appended otherwise), or removed when qc is
// nil. Every other key is kept, in its order, with its numbers and strings
// exactly as written (no float round trip); the layout is re-indented with
// two spaces and a final newline, as Hugging Face writes config.json.
// config.json must be one JSON object without duplicate keys, nested at
// most MaxConfigDepth deep.
func UpdateConfig(configJSON []byte, qc map[string]any) ([]byte, error) {
	members, err := splitObject(configJSON)
	if err != nil {
		return nil, fmt.Errorf("ctensors: config.json: %w", err)
	}
	var value json.RawMessage
	if qc != nil {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(qc); err != nil {
			return nil, fmt.Errorf("ctensors: quantization_config: %w", err)
		}
		value = bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	}
	i := slices.IndexFunc(members, func(m jsonobj.Member) bool { return m.Key == configKey })
	switch {
	case qc == nil && i >= 0:
		members = slices.Delete(members, i, i+1)
	case qc == nil:
	case i >= 0:
		members[i].Value = value
	default:
		members = append(members, jsonobj.Member{Key: configKey, Value: value})
	}
	n := 2
	for _, m := range members {
		n += len(m.Key) + 4 + len(m.Value) // quotes, ':' and ','
	}
	compact := make([]byte, 0, n)
	compact = append(compact, '{')
	for i, m := range members {
		if i > 0 {
			compact = append(compact, ',')
		}
		compact = appendQuoted(compact, m.Key)
		compact = append(compact, ':')
		compact = append(compact, m.Value...)
	}
	compact = append(compact, '}')
	return indent(compact), nil
}

// Config is what ReadConfig reads back from a quantization_config.
type Config struct {
	Scheme  quant.Scheme
	Format  Format
	Targets []string // module types or names the scheme applies to
	Ignore  []string // modules left unquantized
	// InputActivations is the config group's input_activations, nil
	// when null or absent (weight-only quantization).
	InputActivations *Activations
}

// Activations is a config group's input_activations: how each targeted
// Linear's input is quantized when the model runs (compressed-tensors'
// QuantizationArgs, the keys that matter to the engine).
type Activations struct {
	Bits      int    // num_bits
	Type      string // "int" or "float"
	Symmetric bool
	Strategy  string // "token", "tensor", "channel", "group"
	GroupSize int    // 0 unless the group strategy
	Dynamic   bool   // scales computed from each input at run time
}

// DynamicTokenInt8 is the input activations of llm-compressor's W8A8
// scheme (compressed-tensors' INT8_W8A8 preset), which vLLM runs with
// int8 GEMMs: one int8 symmetric scale per token, computed at run time.
var DynamicTokenInt8 = Activations{Bits: 8, Type: "int", Symmetric: true, Strategy: "token", Dynamic: true}

// SetInputActivations sets the input_activations of the config group of
// qc, a quantization_config QuantizationConfig returned, to a, with the
// keys llm-compressor writes: num_bits, type, symmetric, strategy,
// group_size (null unless group), dynamic and observer (null when
// dynamic, as the scales are not observed).
func SetInputActivations(qc map[string]any, a Activations) error {
	groups, _ := qc["config_groups"].(map[string]any)
	g, _ := groups["group_0"].(map[string]any)
	if g == nil {
		return errors.New("ctensors: quantization_config has no config group group_0")
	}
	var groupSize, observer any // null
	if a.Strategy == "group" {
		groupSize = a.GroupSize
	}
	if !a.Dynamic {
		observer = "minmax"
	}
	g["input_activations"] = map[string]any{
		"num_bits":   a.Bits,
		"type":       a.Type,
		"symmetric":  a.Symmetric,
		"strategy":   a.Strategy,
		"group_size": groupSize,
		"dynamic":    a.Dynamic,
		"observer":   observer,
	}
	return nil
}

// ActOrderWeight is compressed-tensors' actorder "weight" (alias
// "static"), what GPTQ with activation order writes: the columns were
// quantized in order of decreasing Hessian diagonal, but each group keeps
// its columns in their original order, so the checkpoint needs no g_idx
// tensor and loads as any group-quantized one. ("group" reorders the
// groups too and needs a g_idx; quantkit does not write it.)
const ActOrderWeight = "weight"

// SetWeightsActOrder records in the weights arguments of qc, a
// quantization_config QuantizationConfig returned, the activation
// ordering its weights were quantized with: "actorder": order, or null
// when order is "".
func SetWeightsActOrder(qc map[string]any, order string) error {
	groups, _ := qc["config_groups"].(map[string]any)
	g, _ := groups["group_0"].(map[string]any)
	w, _ := g["weights"].(map[string]any)
	if w == nil {
		return errors.New("ctensors: quantization_config has no weights in config group group_0")
	}
	if order != "" && order != ActOrderWeight {
		return fmt.Errorf("ctensors: actorder %q: only %q (static activation order, no g_idx) is written", order, ActOrderWeight)
	}
	var v any // null
	if order != "" {
		v = order
	}
	w["actorder"] = v
	return nil
}

// ReadConfig reads the quantization_config of config.json: one written by
// QuantizationConfig, or by llm-compressor with a single config group of
// integer weights. ok is false when config.json has none. Missing weight
// arguments take compressed-tensors' defaults (8 bits, int, symmetric,
// strategy from group_size). Activation quantization settings do not
// change how the weights are stored; they are returned in
// Config.InputActivations (missing arguments with compressed-tensors'
// defaults: 8 bits, int, symmetric, strategy tensor, static).
func ReadConfig(configJSON []byte) (c Config, ok bool, err error) {
	c, ok, err = readConfig(configJSON)
	if err != nil {
		err = fmt.Errorf("ctensors: config.json: %w", err)
	}
	return c, ok, err
}

func readConfig(configJSON []byte) (Config, bool, error) {
	members, err := splitObject(configJSON)
	if err != nil {
		return Config{}, false, err
	}
	i := slices.IndexFunc(members, func(m jsonobj.Member) bool { return m.Key == configKey })
	if i < 0 || string(members[i].Value) == "null" {
		return Config{}, false, nil
	}
	var qc struct {
		QuantMethod  string       `json:"quant_method"`
		Format       string       `json:"format"`
		Status       string       `json:"quantization_status"`
		ConfigGroups configGroups `json:"config_groups"`
		Ignore       stringList   `json:"ignore"`
	}
	if err := json.Unmarshal(members[i].Value, &qc); err != nil {
		return Config{}, false, fmt.Errorf("%s: %w", configKey, err)
	}
	if qc.QuantMethod != "compressed-tensors" {
		return Config{}, false, fmt.Errorf("%s: quant_method %q is not compressed-tensors", configKey, qc.QuantMethod)
	}
	if qc.Status != "" && qc.Status != "compressed" {
		return Config{}, false, fmt.Errorf("%s: quantization_status %q: weights are not stored compressed", configKey, qc.Status)
	}
	if qc.ConfigGroups.n != 1 {
		return Config{}, false, fmt.Errorf("%s: %d config groups, only one is supported", configKey, qc.ConfigGroups.n)
	}
	c := Config{Format: Format(qc.Format), Ignore: qc.Ignore}
	name, g := qc.ConfigGroups.name, qc.ConfigGroups.group
	if g.Format != nil {
		if c.Format != "" && c.Format != Format(*g.Format) {
			return Config{}, false, fmt.Errorf("%s: %s: format %q disagrees with format %q", configKey, name, *g.Format, c.Format)
		}
		c.Format = Format(*g.Format)
	}
	w := g.Weights
	if w == nil {
		return Config{}, false, fmt.Errorf("%s: %s quantizes no weights", configKey, name)
	}
	c.Targets = g.Targets
	s := quant.Scheme{Bits: 8, Signed: true, Symmetric: true}
	if w.NumBits != nil {
		s.Bits = *w.NumBits
	}
	if w.Type != nil && *w.Type != "int" {
		return Config{}, false, fmt.Errorf("%s: %s: weight type %q is not int", configKey, name, *w.Type)
	}
	if w.Symmetric != nil {
		s.Symmetric = *w.Symmetric
	}
	if d := string(w.Dynamic); d != "" && d != "false" && d != "null" {
		return Config{}, false, fmt.Errorf("%s: %s: dynamic weights (%s) have no stored scales", configKey, name, d)
	}
	strategy := "tensor"
	switch {
	case w.Strategy != nil:
		strategy = *w.Strategy
	case w.GroupSize != nil && *w.GroupSize > 0:
		strategy = "group"
	case w.GroupSize != nil && *w.GroupSize == -1:
		strategy = "channel"
	}
	gran, ok := granularityOf(strategy)
	if !ok {
		return Config{}, false, fmt.Errorf("%s: %s: strategy %q not supported (tensor, channel or group)", configKey, name, strategy)
	}
	s.Granularity = gran
	if s.Granularity == quant.PerGroup {
		if w.GroupSize == nil {
			return Config{}, false, fmt.Errorf("%s: %s: group strategy without group_size", configKey, name)
		}
		s.GroupSize = *w.GroupSize
	}
	if err := s.Validate(); err != nil {
		return Config{}, false, fmt.Errorf("%s: %s: %w", configKey, name, err)
	}
	c.Scheme = s
	if a := g.InputActivations; a != nil {
		act := Activations{Bits: 8, Type: "int", Symmetric: true, Strategy: "tensor"}
		if a.NumBits != nil {
			act.Bits = *a.NumBits
		}
		if a.Type != nil {
			act.Type = *a.Type
		}
		if a.Symmetric != nil {
			act.Symmetric = *a.Symmetric
		}
		if a.Strategy != nil {
			act.Strategy = *a.Strategy
		}
		if a.GroupSize != nil && *a.GroupSize > 0 {
			act.GroupSize = *a.GroupSize
		}
		switch d := string(a.Dynamic); d {
		case "true":
			act.Dynamic = true
		case "", "false", "null":
		default: // "local" (per-tensor-group dynamic scales) and the like
			return Config{}, false, fmt.Errorf("%s: %s: input_activations dynamic %s not supported (true or false)", configKey, name, d)
		}
		c.InputActivations = &act
	}
	if _, err := c.Format.packed(); err != nil {
		return Config{}, false, fmt.Errorf("%s: %w", configKey, err)
	}
	return c, true, nil
}

// quantArgs is what ReadConfig reads of a QuantizationArgs object.
type quantArgs struct {
	NumBits   *int            `json:"num_bits"`
	Type      *string         `json:"type"`
	Symmetric *bool           `json:"symmetric"`
	Strategy  *string         `json:"strategy"`
	GroupSize *int            `json:"group_size"`
	Dynamic   json.RawMessage `json:"dynamic"`
}

// configGroup is what ReadConfig reads of a config group.
type configGroup struct {
	Targets          stringList `json:"targets"`
	Format           *string    `json:"format"`
	Weights          *quantArgs `json:"weights"`
	InputActivations *quantArgs `json:"input_activations"`
}

// IsDynamicTokenInt8 reports whether a is what DynamicTokenInt8 is:
// int8 symmetric scales per token computed at run time, which the
// engine runs as W8A8 with int8 weights per channel.
func (a *Activations) IsDynamicTokenInt8() bool {
	return a != nil && *a == DynamicTokenInt8
}

// configGroups is the config_groups object: only one group is supported,
// so only the first is decoded, and the others counted.
type configGroups struct {
	n     int
	name  string
	group configGroup
}

func (g *configGroups) UnmarshalJSON(b []byte) error {
	*g = configGroups{}
	if string(b) == "null" {
		return nil
	}
	if b[0] != '{' {
		return errors.New("config_groups is not an object")
	}
	return jsonobj.EachMember(b, func(k string, v []byte) error {
		if g.n++; g.n > 1 {
			return nil
		}
		g.name = k
		if err := json.Unmarshal(v, &g.group); err != nil {
			return fmt.Errorf("config_groups: %s: %w", g.name, err)
		}
		return nil
	})
}

// stringList is a JSON array of strings, decoded into a slice of exactly
// its length (encoding/json grows one by copies).
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*l = nil
		return nil
	}
	if b[0] != '[' {
		return fmt.Errorf("%.20s is not an array of strings", b)
	}
	n := 0
	jsonobj.EachElement(b, func([]byte) error { n++; return nil })
	out := make([]string, 0, n)
	err := jsonobj.EachElement(b, func(v []byte) error {
		if v[0] != '"' {
			return fmt.Errorf("element %d, %.20s, is not a string", len(out), v)
		}
		out = append(out, jsonobj.Unquote(v))
		return nil
	})
	*l = out
	return err
}
