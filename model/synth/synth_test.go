package synth

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/half"
	"github.com/quantkit/quantkit/model/checkpoint"
	"github.com/quantkit/quantkit/model/safetensors"
)

// tiny has every dimension different, so that a swapped one shows.
var tiny = Config{Layers: 2, Hidden: 16, Intermediate: 40, Heads: 4, KVHeads: 2, Vocab: 50, DType: "F32", Seed: 7}

func TestTensorsNamesShapes(t *testing.T) {
	got := tiny.Tensors()
	want := []struct {
		name  string
		shape []int
	}{{"model.embed_tokens.weight", []int{50, 16}}}
	for i := range 2 {
		p := "model.layers." + strconv.Itoa(i) + "."
		want = append(want, []struct {
			name  string
			shape []int
		}{
			{p + "input_layernorm.weight", []int{16}},
			{p + "self_attn.q_proj.weight", []int{16, 16}},
			{p + "self_attn.k_proj.weight", []int{8, 16}},
			{p + "self_attn.v_proj.weight", []int{8, 16}},
			{p + "self_attn.o_proj.weight", []int{16, 16}},
			{p + "post_attention_layernorm.weight", []int{16}},
			{p + "mlp.gate_proj.weight", []int{40, 16}},
			{p + "mlp.up_proj.weight", []int{40, 16}},
			{p + "mlp.down_proj.weight", []int{16, 40}},
		}...)
	}
	want = append(want, []struct {
		name  string
		shape []int
	}{{"model.norm.weight", []int{16}}, {"lm_head.weight", []int{50, 16}}}...)
	if len(got) != len(want) {
		t.Fatalf("%d tensors, want %d", len(got), len(want))
	}
	var params int64
	for i, w := range want {
		if got[i].Name != w.name || !slices.Equal(got[i].Shape, w.shape) || got[i].DType != "F32" {
			t.Errorf("tensor %d: %s %s %v, want %s F32 %v", i, got[i].Name, got[i].DType, got[i].Shape, w.name, w.shape)
		}
		params += got[i].Len()
	}
	if params != tiny.Params() {
		t.Errorf("Params() = %d, tensors hold %d", tiny.Params(), params)
	}
	if tiny.Bytes() != 4*params {
		t.Errorf("Bytes() = %d, want %d", tiny.Bytes(), 4*params)
	}
}

// The published parameter counts of the models the table copies.
func TestParamsOfRealModels(t *testing.T) {
	for _, tc := range []struct {
		name string
		want int64
	}{
		{"7B", 6_738_415_616}, // Llama-2-7B
		{"8B", 8_030_261_248}, // Llama-3-8B
	} {
		i := slices.IndexFunc(Shapes, func(s Shape) bool { return s.Name == tc.name })
		if got := Shapes[i].Config().Params(); got != tc.want {
			t.Errorf("%s: %d params, want %d", tc.name, got, tc.want)
		}
	}
}

func TestLlamaLike(t *testing.T) {
	// A row within 5% of the budget is the real model's shape, unchanged.
	if c := LlamaLike(7e9); c.Hidden != 4096 || c.Intermediate != 11008 || c.Layers != 32 || c.Heads != 32 || c.KVHeads != 32 || c.Vocab != 32000 {
		t.Errorf("7B: %+v", c)
	}
	if c := LlamaLike(1e6); c != Shapes[0].Config() {
		t.Errorf("1M: %+v", c)
	}
	// Else the row's widths with fewer or more layers.
	if c := LlamaLike(1e9); c.Hidden != 2048 || c.Intermediate != 8192 || c.Layers != 14 || c.Heads != 32 || c.KVHeads != 8 || c.Vocab != 32000 {
		t.Errorf("1B: %+v", c)
	}
	if c := LlamaLike(200e6); c.Hidden != 576 || c.Layers != 41 || c.Vocab != 49152 {
		t.Errorf("200M: %+v", c)
	}
	// Every budget from MinParams up is met within 5%, by a valid config.
	rnd := rand.New(rand.NewPCG(3, 3))
	budgets := []int64{MinParams, 1001, 1500, 4000, 10_000, 100_000, 586_000, 600_000, 1e6, 3e6, 1e7, 45e6, 1e8, 150e6, 200e6, 550e6, 1e9, 2e9, 5e10, 1e12, 1e15}
	for range 300 {
		budgets = append(budgets, int64(math.Exp(rnd.Float64()*math.Log(1e13/MinParams)))*MinParams)
	}
	for _, budget := range budgets {
		c := LlamaLike(budget)
		if err := c.Validate(); err != nil {
			t.Fatalf("LlamaLike(%d) = %+v: %v", budget, c, err)
		}
		if r := float64(c.Params()) / float64(budget); r < 0.95 || r > 1.05 {
			t.Errorf("LlamaLike(%d) has %d params (%+v)", budget, c.Params(), c)
		}
	}
	if c := LlamaLike(1); c.Validate() != nil {
		t.Errorf("LlamaLike(1) = %+v", c)
	}
}

func TestValidate(t *testing.T) {
	bad := []Config{
		{},
		{Layers: 1, Hidden: 10, Intermediate: 4, Heads: 3, KVHeads: 1, Vocab: 5, DType: "F32"},
		{Layers: 1, Hidden: 12, Intermediate: 4, Heads: 3, KVHeads: 2, Vocab: 5, DType: "F32"},
		{Layers: 1, Hidden: 12, Intermediate: 4, Heads: 3, KVHeads: 1, Vocab: 5, DType: "I8"},
	}
	for _, c := range bad {
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "synth: ") {
			t.Errorf("%+v: %v", c, err)
		}
	}
	if _, err := Write(t.TempDir(), bad[1], Options{}); err == nil {
		t.Error("Write accepted an invalid config")
	}
}

func readAll(t *testing.T, path string) (map[string][]byte, []safetensors.TensorInfo) {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	for _, ti := range f.Tensors() {
		b, _ := f.Bytes(ti.Name)
		out[ti.Name] = bytes.Clone(b)
	}
	return out, f.Tensors()
}

func TestWriteDeterministic(t *testing.T) {
	d1, d2, d3 := t.TempDir(), t.TempDir(), t.TempDir()
	res, err := Write(d1, tiny, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Files, []string{checkpoint.SingleFileName, checkpoint.ConfigFileName}) || res.Tensors != 21 || res.Params != tiny.Params() || res.Bytes != tiny.Bytes() {
		t.Errorf("result %+v", res)
	}
	if _, err := Write(d2, tiny, Options{Workers: 3}); err != nil {
		t.Fatal(err)
	}
	other := tiny
	other.Seed++
	if _, err := Write(d3, other, Options{}); err != nil {
		t.Fatal(err)
	}
	b1, _ := os.ReadFile(filepath.Join(d1, checkpoint.SingleFileName))
	b2, _ := os.ReadFile(filepath.Join(d2, checkpoint.SingleFileName))
	if !bytes.Equal(b1, b2) {
		t.Error("the same config written by 1 and by 3 workers differs")
	}
	a, infos := readAll(t, filepath.Join(d1, checkpoint.SingleFileName))
	c, _ := readAll(t, filepath.Join(d3, checkpoint.SingleFileName))
	for i, ti := range infos {
		if ti.Name != tiny.Tensors()[i].Name {
			t.Fatalf("tensor %d is %s, not in file order", i, ti.Name)
		}
		if bytes.Equal(a[ti.Name], c[ti.Name]) {
			t.Errorf("%s: the same with seeds 7 and 8", ti.Name)
		}
		// What was written is what Tensor gives, generated alone.
		vals, err := tiny.Tensor(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, 4*len(vals))
		encode(want, vals, "F32")
		if !bytes.Equal(a[ti.Name], want) {
			t.Errorf("%s: file differs from Tensor", ti.Name)
		}
	}
	for _, pair := range [][2]string{
		{"model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.q_proj.weight"},
		{"model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.o_proj.weight"},
		{"model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight"},
		{"model.embed_tokens.weight", "lm_head.weight"},
	} {
		if bytes.Equal(a[pair[0]], a[pair[1]]) {
			t.Errorf("%s and %s are the same", pair[0], pair[1])
		}
	}
	// Rows from the middle are the rows of the whole tensor.
	const name = "model.layers.1.mlp.down_proj.weight"
	whole, _ := tiny.Tensor(name)
	part := make([]float32, 3*40)
	if err := tiny.Rows(name, 5, part); err != nil || !slices.Equal(part, whole[5*40:8*40]) {
		t.Errorf("Rows(5..8) differ from the whole tensor's (%v)", err)
	}
	if err := tiny.Rows(name, 14, part); err == nil {
		t.Error("Rows past the end accepted")
	}
	if err := tiny.Rows("model.layers.2.mlp.down_proj.weight", 0, part); err == nil {
		t.Error("Rows of a missing tensor accepted")
	}
}

func TestWriteHalf(t *testing.T) {
	for _, dt := range []string{"F16", "BF16"} {
		cfg := tiny
		cfg.DType = dt
		dir := t.TempDir()
		if _, err := Write(dir, cfg, Options{}); err != nil {
			t.Fatal(err)
		}
		got, infos := readAll(t, filepath.Join(dir, checkpoint.SingleFileName))
		for _, ti := range infos {
			if ti.DType != dt {
				t.Fatalf("%s is %s", ti.Name, ti.DType)
			}
			vals, _ := cfg.Tensor(ti.Name)
			back := make([]float32, len(vals))
			if dt == "F16" {
				half.DecodeFloat16(back, got[ti.Name], binary.LittleEndian)
			} else {
				half.DecodeBFloat16(back, got[ti.Name], binary.LittleEndian)
			}
			for i := range vals {
				if d := math.Abs(float64(back[i] - vals[i])); d > math.Abs(float64(vals[i]))/100 {
					t.Fatalf("%s %s[%d] = %g, generated %g", dt, ti.Name, i, back[i], vals[i])
				}
			}
		}
	}
}

// moments returns the mean, standard deviation and kurtosis of x.
func moments(x []float32) (mean, std, kurt float64) {
	for _, v := range x {
		mean += float64(v)
	}
	mean /= float64(len(x))
	var m2, m4 float64
	for _, v := range x {
		d := float64(v) - mean
		m2 += d * d
		m4 += d * d * d * d
	}
	m2 /= float64(len(x))
	m4 /= float64(len(x))
	return mean, math.Sqrt(m2), m4 / (m2 * m2)
}

func TestHeavyTails(t *testing.T) {
	cfg := Config{Layers: 1, Hidden: 1024, Intermediate: 2048, Heads: 8, KVHeads: 8, Vocab: 16, DType: "F32", Seed: 1}
	o, _ := cfg.Tensor("model.layers.0.self_attn.o_proj.weight")
	mean, std, kurt := moments(o)
	t.Logf("o_proj: mean %.2g std %.4g kurtosis %.2f", mean, std, kurt)
	if math.Abs(mean) > 1e-4 || math.Abs(std*32-1) > 0.02 || kurt < 5 || kurt > 7.5 {
		t.Errorf("o_proj [1024, 1024]: mean %g, std %g (want 1/32), kurtosis %g (want ≈ 6)", mean, std, kurt)
	}
	g, _ := cfg.Tensor("model.layers.0.mlp.gate_proj.weight")
	_, _, kurt = moments(g)
	t.Logf("gate_proj: kurtosis %.1f", kurt)
	if kurt < 10 {
		t.Errorf("gate_proj with outlier columns: kurtosis %g, want well above 6", kurt)
	}
	// The outlier columns stand out: the largest column RMS is ≥ 5 times the median.
	colRMS := make([]float64, 1024)
	for i, v := range g {
		colRMS[i%1024] += float64(v) * float64(v)
	}
	sorted := slices.Clone(colRMS)
	slices.Sort(sorted)
	if r := math.Sqrt(sorted[1023] / sorted[512]); r < 5 || r > 21 {
		t.Errorf("largest column RMS / median = %.1f, want 5–20", r)
	}
	// The same channels are outliers in q_proj of the same model.
	q, _ := cfg.Tensor("model.layers.0.self_attn.q_proj.weight")
	top := slices.Index(colRMS, sorted[1023])
	var qTop, qAll float64
	for i, v := range q {
		qAll += float64(v) * float64(v)
		if i%1024 == top {
			qTop += float64(v) * float64(v)
		}
	}
	if qTop < 10*qAll/1024 {
		t.Errorf("channel %d is an outlier in gate_proj but not in q_proj", top)
	}
	n, _ := cfg.Tensor("model.layers.0.input_layernorm.weight")
	mean, std, _ = moments(n)
	if math.Abs(mean-1) > 0.01 || std < 0.03 || std > 0.07 {
		t.Errorf("norm weights: mean %g std %g, want 1 ± 0.05", mean, std)
	}
	e, _ := cfg.Tensor("model.embed_tokens.weight")
	if _, std, _ = moments(e); math.Abs(std/embedStd-1) > 0.1 {
		t.Errorf("embedding std %g, want %g", std, embedStd)
	}
}

func TestConfigJSON(t *testing.T) {
	dir := t.TempDir()
	cfg := tiny
	cfg.DType = "BF16"
	if _, err := Write(dir, cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, checkpoint.ConfigFileName))
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"model_type": "llama", "hidden_size": 16.0, "intermediate_size": 40.0, "num_hidden_layers": 2.0,
		"num_attention_heads": 4.0, "num_key_value_heads": 2.0, "vocab_size": 50.0, "torch_dtype": "bfloat16",
		"rms_norm_eps": 1e-5, "max_position_embeddings": 4096.0, "head_dim": 4.0, "tie_word_embeddings": false,
	}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("config.json %s = %v, want %v", k, c[k], v)
		}
	}
	if a, ok := c["architectures"].([]any); !ok || len(a) != 1 || a[0] != "LlamaForCausalLM" {
		t.Errorf("architectures = %v", c["architectures"])
	}
}

func TestWriteShards(t *testing.T) {
	dir := t.TempDir()
	// A stale single file from an earlier run must go.
	if _, err := Write(dir, tiny, Options{}); err != nil {
		t.Fatal(err)
	}
	single, _ := readAll(t, filepath.Join(dir, checkpoint.SingleFileName))
	const limit = 5000 // bytes: the 3200-byte embedding fills a shard, a layer's matrices need several
	res, err := Write(dir, tiny, Options{ShardSize: limit})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, checkpoint.SingleFileName)); !os.IsNotExist(err) {
		t.Errorf("stale %s left beside the shards", checkpoint.SingleFileName)
	}
	var idx struct {
		Metadata  map[string]int64  `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	data, err := os.ReadFile(filepath.Join(dir, checkpoint.IndexFileName))
	if err != nil || json.Unmarshal(data, &idx) != nil {
		t.Fatalf("index: %v\n%s", err, data)
	}
	if idx.Metadata["total_size"] != tiny.Bytes() || len(idx.WeightMap) != res.Tensors {
		t.Errorf("index: total_size %d, %d tensors; want %d, %d", idx.Metadata["total_size"], len(idx.WeightMap), tiny.Bytes(), res.Tensors)
	}
	shards := res.Files[:len(res.Files)-2]
	if len(shards) < 3 || res.Files[len(res.Files)-2] != checkpoint.IndexFileName {
		t.Fatalf("files %v", res.Files)
	}
	seen := 0
	for i, s := range shards {
		if s != checkpoint.ShardName(i, len(shards)) {
			t.Errorf("shard %d is %s", i, s)
		}
		got, infos := readAll(t, filepath.Join(dir, s))
		var size int64
		for _, ti := range infos {
			size += ti.End - ti.Begin
			if idx.WeightMap[ti.Name] != s {
				t.Errorf("%s is in %s, index says %s", ti.Name, s, idx.WeightMap[ti.Name])
			}
			if !bytes.Equal(got[ti.Name], single[ti.Name]) {
				t.Errorf("%s differs between single file and shard", ti.Name)
			}
			seen++
		}
		if size > limit && len(infos) > 1 {
			t.Errorf("%s holds %d bytes of data in %d tensors, over the limit %d", s, size, len(infos), limit)
		}
	}
	if seen != res.Tensors {
		t.Errorf("shards hold %d tensors, want %d", seen, res.Tensors)
	}
	// The checkpoint reader accepts it whole, config.json included.
	ck, err := checkpoint.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ck.Tensors()) != res.Tensors || len(ck.Files()) != len(shards) || ck.Config() == nil {
		t.Errorf("checkpoint.Open: %d tensors in %d files, config %q", len(ck.Tensors()), len(ck.Files()), ck.Config())
	}
	ck.Close()
	// Back to one file: the shards and index go.
	if _, err := Write(dir, tiny, Options{}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{checkpoint.ConfigFileName, checkpoint.SingleFileName}) {
		t.Errorf("directory holds %v", names)
	}
}

func TestWriteFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	cfg := tiny
	cfg.Layers = 1
	limit := cfg.Bytes() / 2
	plan, err := checkpoint.PlanShards(cfg.Tensors(), limit)
	if err != nil {
		t.Fatal(err)
	}
	// A directory where the second shard goes makes it fail.
	second := checkpoint.ShardName(1, len(plan))
	if err := os.Mkdir(filepath.Join(dir, second), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = Write(dir, cfg, Options{ShardSize: limit})
	if err == nil || !strings.Contains(err.Error(), second) {
		t.Fatalf("err = %v, want one naming the second shard", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		for _, e := range entries {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	if _, err := Write(filepath.Join(dir, second, "x", "\x00"), cfg, Options{}); err == nil {
		t.Error("bad directory accepted")
	}
}

// A cancelled write stops between blocks and leaves nothing, not even the
// shards it completed.
func TestWriteContextCancelled(t *testing.T) {
	dir := t.TempDir()
	cfg := LlamaLike(1_000_000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	opts := Options{ShardSize: cfg.Bytes() / 4, Progress: func(written, total int64) {
		calls++
		if written > total/2 {
			cancel()
		}
	}}
	_, err := WriteContext(ctx, dir, cfg, opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if want := len(cfg.Tensors()); calls >= want {
		t.Errorf("%d blocks written of at least %d: the write did not stop", calls, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}

func BenchmarkWrite10M(b *testing.B) {
	cfg := LlamaLike(10e6)
	dir := b.TempDir()
	b.SetBytes(cfg.Bytes())
	for b.Loop() {
		if _, err := Write(dir, cfg, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
