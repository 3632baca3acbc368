package ctensors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/alloctest"
	"github.com/quantkit/quantkit/internal/jsonobj"
	"github.com/quantkit/quantkit/quant"
)

// ReadConfig is held to allocating at most readFactor times the size of
// config.json plus allocSlack bytes, whatever it holds: it keeps the
// top-level keys and what it reads of quantization_config, and nothing per
// token. UpdateConfig also writes config.json re-indented, a line per
// value at two spaces a level, in which a value nested d deep takes up to
// d+2 times its bytes: its bound is MaxConfigDepth+2 larger.
const (
	readFactor   = 16
	updateFactor = readFactor + MaxConfigDepth + 2
	allocSlack   = 16 << 10
)

// configSeeds are config.json files as Hugging Face and llm-compressor
// write them, and edge cases.
var configSeeds = []string{
	hfConfig,
	`{"model_type": "llama", "quantization_config": {"quant_method": "compressed-tensors", "format": "pack-quantized",
		"quantization_status": "compressed", "version": "0.9.0", "sparsity_config": {},
		"config_groups": {"group_0": {"targets": ["Linear"], "format": "pack-quantized",
			"weights": {"num_bits": 4, "type": "int", "symmetric": true, "strategy": "group", "group_size": 128,
				"actorder": null, "dynamic": false, "observer": "minmax", "observer_kwargs": {}},
			"input_activations": null, "output_activations": null}},
		"ignore": ["lm_head", "re:.*\u0067ate$"], "kv_cache_scheme": null}}`,
	`{}`,
	`{"quantization_config": null, "a\"\u00e9": [1, {"b": []}], "c": -1.5e+300}`,
	`{"a": ` + strings.Repeat("[", MaxConfigDepth-1) + strings.Repeat("]", MaxConfigDepth-1) + `}`,
	`{"a": ` + strings.Repeat("[", MaxConfigDepth) + strings.Repeat("]", MaxConfigDepth) + `}`,
	`{"a": 1, "a": 2}`,
	`{"a": 1} x`,
}

// FuzzConfig gives ReadConfig and UpdateConfig arbitrary config.json
// bytes. Neither may panic, and each allocates within its bound above.
// What UpdateConfig accepts, it round-trips: ReadConfig reads back the
// config it put in, every other key is kept in order with its value (as
// JSON, compared compacted), writing the same config again changes
// nothing, and removing it leaves the other keys. UpdateConfig accepts
// every JSON object without duplicate keys nested at most MaxConfigDepth
// deep, as encoding/json's Decoder, the slow twin, finds them.
func FuzzConfig(f *testing.F) {
	for _, s := range configSeeds {
		f.Add([]byte(s))
	}
	qc, err := QuantizationConfig(quant.Int4PerGroup128, PackQuantized, []string{"lm_head"})
	if err != nil {
		f.Fatal(err)
	}
	want := Config{Scheme: quant.Int4PerGroup128, Format: PackQuantized, Targets: []string{"Linear"}, Ignore: []string{"lm_head"}}
	f.Fuzz(func(t *testing.T, in []byte) {
		if err := alloctest.Check("ReadConfig", len(in), readFactor, allocSlack, func() { ReadConfig(in) }); err != nil {
			t.Fatal(err)
		}
		var out []byte
		var uerr error
		if err := alloctest.Check("UpdateConfig", len(in), updateFactor, allocSlack, func() { out, uerr = UpdateConfig(in, qc) }); err != nil {
			t.Fatal(err)
		}
		members, merr := jsonobj.Members(in)
		depth, derr := nesting(in)
		if accept := merr == nil && derr == nil && depth <= MaxConfigDepth; accept != (uerr == nil) {
			t.Fatalf("UpdateConfig: %v; encoding/json: %v, depth %d (%v)", uerr, merr, depth, derr)
		}
		if uerr != nil {
			if !strings.HasPrefix(uerr.Error(), "ctensors: config.json: ") {
				t.Fatalf("error without context: %v", uerr)
			}
			return
		}
		// The layout is json.Indent's, the slow twin of indent.
		var ref bytes.Buffer
		if err := json.Indent(&ref, out, "", "  "); err != nil || !bytes.Equal(ref.Bytes(), out) {
			t.Fatalf("not as json.Indent lays it out (%v):\n%s\nwant\n%s", err, out, ref.Bytes())
		}
		c, ok, err := ReadConfig(out)
		if err != nil || !ok || c.Scheme != want.Scheme || c.Format != want.Format || !slices.Equal(c.Targets, want.Targets) || !slices.Equal(c.Ignore, want.Ignore) {
			t.Fatalf("ReadConfig of what UpdateConfig wrote: %+v %v %v\n%s", c, ok, err, out)
		}
		// quantization_config where it was, or last; the others as they were.
		withConfig := slices.Clone(members)
		if i := slices.IndexFunc(members, func(m jsonobj.Member) bool { return m.Key == configKey }); i >= 0 {
			withConfig[i].Value = nil
		} else {
			withConfig = append(withConfig, jsonobj.Member{Key: configKey})
		}
		others := slices.DeleteFunc(slices.Clone(members), func(m jsonobj.Member) bool { return m.Key == configKey })
		checkMembers(t, out, withConfig)
		again, err := UpdateConfig(out, qc)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("updating again: %v\n%s\nthen\n%s", err, out, again)
		}
		removed, err := UpdateConfig(out, nil)
		if err != nil {
			t.Fatalf("removing: %v", err)
		}
		checkMembers(t, removed, others)
	})
}

// checkMembers checks that config.json out holds the members want, in
// order, with the same values as JSON (but a nil Value: any value).
func checkMembers(t *testing.T, out []byte, want []jsonobj.Member) {
	t.Helper()
	got, err := jsonobj.Members(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(got) != len(want) {
		t.Fatalf("%d members, want %d:\n%s", len(got), len(want), out)
	}
	for i := range got {
		var a, b bytes.Buffer
		json.Compact(&a, got[i].Value)
		json.Compact(&b, want[i].Value)
		if got[i].Key != want[i].Key || want[i].Value != nil && !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatalf("member %d: %q: %s, want %q: %s", i, got[i].Key, a.Bytes(), want[i].Key, b.Bytes())
		}
	}
}

// nesting returns how deep the JSON in data nests, counted as
// encoding/json's Decoder finds its tokens: 1 for {}.
func nesting(data []byte) (int, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	depth, max := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return max, nil // the JSON's own errors are jsonobj's to find
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			max = maxInt(max, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// TestConfigAllocation gives ReadConfig and UpdateConfig configs of many
// small items and deep nesting: the bounds of FuzzConfig hold for each.
func TestConfigAllocation(t *testing.T) {
	const n = 20000
	var members, groups strings.Builder
	for i := range n {
		fmt.Fprintf(&members, `"%x":0,`, i)
		fmt.Fprintf(&groups, `"%x":{},`, i)
	}
	qc := func(s string) string {
		return `{"quantization_config":{"quant_method":"compressed-tensors",` + s + `}}`
	}
	qcfg, err := QuantizationConfig(quant.Int8PerChannel, IntQuantized, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, config := range map[string]string{
		"members":       "{" + members.String() + `"":0}`,
		"numbers":       `{"a":[` + strings.Repeat("0,", n) + `0]}`,
		"deep":          `{"a":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`,
		"deep numbers":  `{"a":` + strings.Repeat("[", MaxConfigDepth-1) + strings.Repeat("0,", n) + "0" + strings.Repeat("]", MaxConfigDepth-1) + `}`,
		"deep objects":  `{"a":` + strings.Repeat(`{"":`, MaxConfigDepth-1) + "0" + strings.Repeat("}", MaxConfigDepth-1) + `}`,
		"ignore":        qc(`"ignore":[` + strings.Repeat(`"",`, n) + `""]`),
		"targets":       qc(`"config_groups":{"g":{"targets":[` + strings.Repeat(`"",`, n) + `""]}}`),
		"config groups": qc(`"config_groups":{` + groups.String() + `"":{}}`),
	} {
		in := []byte(config)
		if err := alloctest.Check("ReadConfig", len(in), readFactor, allocSlack, func() { ReadConfig(in) }); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if err := alloctest.Check("UpdateConfig", len(in), updateFactor, allocSlack, func() { UpdateConfig(in, qcfg) }); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
