package checkpoint_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/ctensors"
	"github.com/quantkit/quantkit/model/safetensors"
	"github.com/quantkit/quantkit/quant"
)

// The way a quantize pipeline uses the two packages: plan every output
// tensor from the source's descriptions, then stream one weight at a time
// into a sharded checkpoint, update config.json and copy the side files;
// reading it back gives the same codes and parameters.
func TestQuantizePipeline(t *testing.T) {
	// A source checkpoint: two Linear weights to quantize, a norm and an
	// lm_head left in float.
	src := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 1))
	f32 := func(name string, shape ...int) safetensors.Tensor {
		n := 1
		for _, d := range shape {
			n *= d
		}
		data := make([]byte, 0, 4*n)
		for range n {
			data = binary.LittleEndian.AppendUint32(data, math.Float32bits(float32(rng.NormFloat64())))
		}
		return safetensors.Tensor{Name: name, DType: "F32", Shape: shape, Data: data}
	}
	source := []safetensors.Tensor{
		f32("model.layers.0.mlp.up_proj.weight", 24, 40),
		f32("model.layers.0.mlp.down_proj.weight", 40, 24),
		f32("model.norm.weight", 24),
		f32("lm_head.weight", 16, 24),
	}
	if err := safetensors.WriteFile(filepath.Join(src, checkpoint.SingleFileName), source, nil); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "config.json"), []byte(`{"model_type": "llama", "rms_norm_eps": 1e-06}`), 0o644)
	os.WriteFile(filepath.Join(src, "tokenizer.json"), []byte(`{"version": "1.0"}`), 0o644)

	in, err := checkpoint.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	scheme := quant.Scheme{Bits: 4, Signed: true, Symmetric: true, Granularity: quant.PerGroup, GroupSize: 8}
	format := ctensors.PackQuantized
	quantize := func(ti safetensors.TensorInfo) bool {
		return len(ti.Shape) == 2 && strings.HasSuffix(ti.Name, ".weight") && ti.Name != "lm_head.weight"
	}
	// Plan.
	var plan []safetensors.TensorInfo
	for _, ti := range in.Tensors() {
		if !quantize(ti) {
			plan = append(plan, ti)
			continue
		}
		infos, err := ctensors.Infos(ti.Name, ti.Shape, scheme, format, "BF16")
		if err != nil {
			t.Fatal(err)
		}
		plan = append(plan, infos...)
	}
	out := filepath.Join(t.TempDir(), "out")
	w, err := checkpoint.Create(out, plan, 1024, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Files()) < 2 {
		t.Fatalf("want several shards, got %q", w.Files())
	}
	// Stream.
	type result struct {
		codes []byte
		p     *quant.Params
	}
	want := map[string]result{}
	for _, ti := range in.Tensors() {
		if !quantize(ti) {
			b, _ := in.Bytes(ti.Name)
			if err := w.WriteTensor(ti.Name, b); err != nil {
				t.Fatal(err)
			}
			continue
		}
		x, _ := in.Float32(ti.Name)
		p, err := quant.FitMinMax(scheme, x, ti.Shape)
		if err != nil {
			t.Fatal(err)
		}
		if err := ctensors.RoundScales(p, "BF16"); err != nil {
			t.Fatal(err)
		}
		codes := make([]byte, scheme.PackedLen(len(x)))
		if err := quant.Quantize(codes, x, p); err != nil {
			t.Fatal(err)
		}
		ts, err := ctensors.EncodeWeight(ti.Name, codes, p, format, "BF16")
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range ts {
			if err := w.WriteTensor(tt.Name, tt.Data); err != nil {
				t.Fatal(err)
			}
		}
		want[ti.Name] = result{codes, p}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	qc, err := ctensors.QuantizationConfig(scheme, format, []string{"lm_head"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ctensors.UpdateConfig(in.Config(), qc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := in.CopySideFiles(out, "config.json"); err != nil {
		t.Fatal(err)
	}

	// Read back.
	got, err := checkpoint.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	c, ok, err := ctensors.ReadConfig(got.Config())
	if err != nil || !ok || c.Scheme != scheme || c.Format != format {
		t.Fatalf("ReadConfig: %+v %v %v", c, ok, err)
	}
	names := ctensors.QuantizedWeights(got.Tensors())
	if !slices.Equal(names, []string{"model.layers.0.mlp.down_proj.weight", "model.layers.0.mlp.up_proj.weight"}) {
		t.Fatalf("quantized weights %q", names)
	}
	for _, name := range names {
		codes, p, err := ctensors.DecodeWeight(name, c.Scheme, got)
		if err != nil {
			t.Fatal(err)
		}
		w := want[name]
		if !bytes.Equal(codes, w.codes) || !slices.Equal(p.Scales, w.p.Scales) || !slices.Equal(p.Shape, w.p.Shape) {
			t.Errorf("%s does not read back as written", name)
		}
	}
	for _, name := range []string{"model.norm.weight", "lm_head.weight"} {
		a, _ := in.Bytes(name)
		b, err := got.Bytes(name)
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s not copied through: %v", name, err)
		}
	}
	if side, _ := got.SideFiles(); !slices.Equal(side, []string{"config.json", "tokenizer.json"}) {
		t.Errorf("side files %q", side)
	}
}
