package checkpoint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/model/safetensors"
)

// testTensors are tensors of several dtypes and sizes, with data that
// tells them apart.
func testTensors() []safetensors.Tensor {
	mk := func(name, dtype string, shape ...int) safetensors.Tensor {
		size, _ := safetensors.DTypeSize(dtype)
		n := size
		for _, d := range shape {
			n *= d
		}
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(len(name) + i)
		}
		return safetensors.Tensor{Name: name, DType: dtype, Shape: shape, Data: data}
	}
	return []safetensors.Tensor{
		mk("model.embed_tokens.weight", "BF16", 16, 8), // 256 bytes
		mk("model.layers.0.self_attn.q_proj.weight", "I8", 8, 8),
		mk("model.layers.0.self_attn.q_proj.weight_scale", "F32", 8, 1),
		mk("model.layers.0.mlp.down_proj.weight_packed", "I32", 8, 2),
		mk("model.layers.0.mlp.down_proj.weight_shape", "I64", 2),
		mk("model.norm.weight", "F16", 8),
		mk("empty", "F32", 0, 3),
		mk("lm_head.weight", "BF16", 16, 8),
	}
}

func infosOf(ts []safetensors.Tensor) []safetensors.TensorInfo {
	var infos []safetensors.TensorInfo
	for _, t := range ts {
		infos = append(infos, safetensors.TensorInfo{Name: t.Name, DType: t.DType, Shape: t.Shape})
	}
	return infos
}

// writeCheckpoint writes ts into dir through a Writer.
func writeCheckpoint(t *testing.T, dir string, ts []safetensors.Tensor, maxShardBytes int64) *Writer {
	t.Helper()
	w, err := Create(dir, infosOf(ts), maxShardBytes, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range ts {
		if err := w.WriteTensor(tt.Name, tt.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestRoundTrip(t *testing.T) {
	ts := testTensors()
	for _, c := range []struct {
		name  string
		max   int64
		files []string
	}{
		{"one shard", 0, []string{"model.safetensors"}},
		// 256 | 64+32+64+16+16+0 = 192 | 256
		{"three shards", 256, []string{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			config := `{"architectures": ["LlamaForCausalLM"], "rms_norm_eps": 1e-05}`
			for name, text := range map[string]string{
				"config.json": config, "tokenizer.json": "{}", "tokenizer_config.json": "{}",
				"generation_config.json": "{}", "special_tokens_map.json": "{}", "README.md": "x",
			} {
				os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644)
			}
			w := writeCheckpoint(t, dir, ts, c.max)
			if !slices.Equal(w.Files(), c.files) {
				t.Fatalf("files %q, want %q", w.Files(), c.files)
			}
			var total int64
			for _, tt := range ts {
				total += int64(len(tt.Data))
			}
			if w.TotalSize() != total {
				t.Errorf("TotalSize %d, want %d", w.TotalSize(), total)
			}
			want := append(slices.Clone(c.files), "README.md", "config.json", "generation_config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json")
			if len(c.files) > 1 {
				want = append(want, IndexFileName)
			}
			slices.Sort(want)
			if got := dirNames(t, dir); !slices.Equal(got, want) {
				t.Errorf("directory holds %q, want %q (no temporary files)", got, want)
			}
			paths := []string{dir, filepath.Join(dir, c.files[0])}
			if len(c.files) > 1 {
				paths[1] = filepath.Join(dir, IndexFileName)
				idx, err := os.ReadFile(paths[1])
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(idx, []byte("{\n  \"metadata\": {\n    \"total_size\": "+fmt.Sprint(total)+"\n  },\n  \"weight_map\": {\n")) || !bytes.HasSuffix(idx, []byte("}\n")) {
					t.Errorf("index:\n%s", idx)
				}
			}
			for _, path := range paths {
				cp, err := Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer cp.Close()
				checkContent(t, cp, ts, w)
				if string(cp.Config()) != config {
					t.Errorf("Config() = %s", cp.Config())
				}
				if md := cp.Metadata(); md["format"] != "pt" {
					t.Errorf("Metadata() = %v", md)
				}
				if ix := cp.Index(); (ix != nil) != (len(c.files) > 1) {
					t.Errorf("Index() = %v", ix)
				} else if ix != nil {
					if n, ok := ix.TotalSize(); !ok || n != total {
						t.Errorf("index total_size %d %v", n, ok)
					}
				}
				side, err := cp.SideFiles()
				if err != nil {
					t.Fatal(err)
				}
				wantSide := []string{"config.json", "generation_config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"}
				if !slices.Equal(side, wantSide) {
					t.Errorf("SideFiles() = %q, want %q", side, wantSide)
				}
				out := t.TempDir()
				if err := cp.CopySideFiles(out, "config.json"); err != nil {
					t.Fatal(err)
				}
				if got := dirNames(t, out); !slices.Equal(got, wantSide[1:]) {
					t.Errorf("copied %q, want %q", got, wantSide[1:])
				}
			}
		})
	}
}

// checkContent checks that cp holds exactly ts, in writing order, each in
// the shard the Writer planned.
func checkContent(t *testing.T, cp *Checkpoint, ts []safetensors.Tensor, w *Writer) {
	t.Helper()
	if !slices.Equal(cp.Files(), w.Files()) {
		t.Errorf("Files() = %q, want %q", cp.Files(), w.Files())
	}
	infos := cp.Tensors()
	if len(infos) != len(ts) {
		t.Fatalf("%d tensors, want %d", len(infos), len(ts))
	}
	wm := w.WeightMap()
	for i, info := range infos {
		src := ts[i]
		if info.Name != src.Name || info.DType != src.DType || !slices.Equal(info.Shape, src.Shape) {
			t.Errorf("tensor %d: %s %s %v, want %s %s %v", i, info.Name, info.DType, info.Shape, src.Name, src.DType, src.Shape)
		}
		b, err := cp.Bytes(src.Name)
		if err != nil || !bytes.Equal(b, src.Data) {
			t.Errorf("Bytes(%q): %v", src.Name, err)
		}
		if shard, ok := cp.ShardOf(src.Name); !ok || shard != wm[src.Name] {
			t.Errorf("ShardOf(%q) = %q, want %q", src.Name, shard, wm[src.Name])
		}
		got, f, ok := cp.Lookup(src.Name)
		if !ok || got.Begin != info.Begin {
			t.Errorf("Lookup(%q) = %+v, %v", src.Name, got, ok)
		} else if fb, _ := f.Bytes(src.Name); !bytes.Equal(fb, src.Data) {
			t.Errorf("Lookup(%q) gave the wrong shard", src.Name)
		}
	}
	if _, ok := cp.Tensor("nope"); ok {
		t.Error("Tensor of a missing name succeeded")
	}
	if _, err := cp.Bytes("nope"); err == nil || !strings.Contains(err.Error(), `no tensor "nope"`) {
		t.Errorf("Bytes of a missing name: %v", err)
	}
	if v, err := cp.Float32("model.norm.weight"); err != nil || len(v) != 8 {
		t.Errorf("Float32: %v %v", v, err)
	}
}

func TestPlanShards(t *testing.T) {
	u8 := func(name string, n int) safetensors.TensorInfo {
		return safetensors.TensorInfo{Name: name, DType: "U8", Shape: []int{n}}
	}
	names := func(shards [][]safetensors.TensorInfo) string {
		var parts []string
		for _, s := range shards {
			var ns []string
			for _, t := range s {
				ns = append(ns, t.Name)
			}
			parts = append(parts, strings.Join(ns, ","))
		}
		return strings.Join(parts, "|")
	}
	in := []safetensors.TensorInfo{u8("a", 4), u8("b", 4), u8("c", 4), u8("big", 10), u8("d", 1), u8("e", 0), u8("f", 7)}
	for _, c := range []struct {
		max  int64
		want string
	}{
		{8, "a,b|c|big|d,e,f"},
		{12, "a,b,c|big,d,e|f"},
		{0, "a,b,c,big,d,e,f"},
		{-1, "a,b,c,big,d,e,f"},
		{1, "a|b|c|big|d,e|f"},
	} {
		shards, err := PlanShards(in, c.max)
		if err != nil {
			t.Fatal(err)
		}
		if got := names(shards); got != c.want {
			t.Errorf("max %d: %s, want %s", c.max, got, c.want)
		}
	}
	if shards, err := PlanShards(nil, 8); err != nil || len(shards) != 1 || len(shards[0]) != 0 {
		t.Errorf("no tensors: %v %v", shards, err)
	}
	for _, c := range []struct {
		in   []safetensors.TensorInfo
		want string
	}{
		{[]safetensors.TensorInfo{u8("a", 1), u8("a", 2)}, `tensor "a" appears twice`},
		{[]safetensors.TensorInfo{{Name: "x", DType: "F8", Shape: []int{1}}}, `tensor "x": dtype "F8" not supported`},
		{[]safetensors.TensorInfo{u8("n", -1)}, `tensor "n": negative dimension`},
		{[]safetensors.TensorInfo{{Name: "o", DType: "F64", Shape: []int{1 << 62, 4}}}, `tensor "o": shape [4611686018427387904 4]: size in bytes overflows`},
	} {
		if _, err := PlanShards(c.in, 8); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("PlanShards: %v, want %q", err, c.want)
		}
	}
}

func TestShardName(t *testing.T) {
	for _, c := range []struct {
		i, n int
		want string
	}{
		{0, 1, "model.safetensors"},
		{0, 2, "model-00001-of-00002.safetensors"},
		{11, 12, "model-00012-of-00012.safetensors"},
	} {
		if got := ShardName(c.i, c.n); got != c.want {
			t.Errorf("ShardName(%d, %d) = %q, want %q", c.i, c.n, got, c.want)
		}
	}
}

// validSharded writes, by hand, a two-shard checkpoint: a and b in shard
// 1, c in shard 2.
func validSharded(t *testing.T) (dir string, index map[string]any) {
	t.Helper()
	dir = t.TempDir()
	u8 := func(name string) safetensors.Tensor {
		return safetensors.Tensor{Name: name, DType: "U8", Shape: []int{1}, Data: []byte{1}}
	}
	s1, s2 := "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
	if err := safetensors.WriteFile(filepath.Join(dir, s1), []safetensors.Tensor{u8("a"), u8("b")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, s2), []safetensors.Tensor{u8("c")}, nil); err != nil {
		t.Fatal(err)
	}
	index = map[string]any{"metadata": map[string]any{"total_size": 3}, "weight_map": map[string]any{"a": s1, "b": s1, "c": s2}}
	writeJSON(t, filepath.Join(dir, IndexFileName), index)
	return dir, index
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOpenErrors(t *testing.T) {
	s1, s2 := "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
	u8 := func(names ...string) []safetensors.Tensor {
		var ts []safetensors.Tensor
		for _, n := range names {
			ts = append(ts, safetensors.Tensor{Name: n, DType: "U8", Shape: []int{1}, Data: []byte{1}})
		}
		return ts
	}
	writeShard := func(t *testing.T, dir, name string, tensors ...string) {
		if err := safetensors.WriteFile(filepath.Join(dir, name), u8(tensors...), nil); err != nil {
			t.Fatal(err)
		}
	}
	setWeightMap := func(t *testing.T, dir string, index map[string]any, wm map[string]any) {
		index["weight_map"] = wm
		writeJSON(t, filepath.Join(dir, IndexFileName), index)
	}
	writeIndexText := func(t *testing.T, dir, text string) {
		os.WriteFile(filepath.Join(dir, IndexFileName), []byte(text), 0o644)
	}
	for _, c := range []struct {
		name   string
		change func(t *testing.T, dir string, index map[string]any)
		open   string // path under dir to open; "" for dir
		want   string
	}{
		{"missing path", nil, "nope", "nope: no such file or directory"},
		{"neither file", func(t *testing.T, dir string, _ map[string]any) { os.Remove(filepath.Join(dir, IndexFileName)) }, "", "holds neither model.safetensors nor model.safetensors.index.json"},
		{"both files", func(t *testing.T, dir string, _ map[string]any) { writeShard(t, dir, SingleFileName, "a") }, "", "holds both model.safetensors and model.safetensors.index.json"},
		{"index not JSON", func(t *testing.T, dir string, _ map[string]any) { writeIndexText(t, dir, `{"weight_map": {`) }, "", "model.safetensors.index.json: key \"weight_map\": not valid JSON"},
		{"index not an object", func(t *testing.T, dir string, _ map[string]any) { writeIndexText(t, dir, `[]`) }, "", "model.safetensors.index.json: not a JSON object"},
		{"junk after index", func(t *testing.T, dir string, _ map[string]any) {
			writeIndexText(t, dir, `{"weight_map": {"a": "x"}} 1`)
		}, "", "data after the JSON object"},
		{"duplicate tensor", func(t *testing.T, dir string, _ map[string]any) {
			writeIndexText(t, dir, `{"weight_map": {"a": "`+s1+`", "a": "`+s2+`"}}`)
		}, "", `weight_map: key "a" appears twice`},
		{"duplicate weight_map", func(t *testing.T, dir string, _ map[string]any) {
			writeIndexText(t, dir, `{"weight_map": {}, "weight_map": {}}`)
		}, "", `key "weight_map" appears twice`},
		{"no weight_map", func(t *testing.T, dir string, _ map[string]any) { writeIndexText(t, dir, `{"metadata": {}}`) }, "", "no weight_map"},
		{"empty weight_map", func(t *testing.T, dir string, _ map[string]any) { writeIndexText(t, dir, `{"weight_map": {}}`) }, "", "weight_map is empty"},
		{"weight_map not object", func(t *testing.T, dir string, _ map[string]any) { writeIndexText(t, dir, `{"weight_map": []}`) }, "", "weight_map: not a JSON object"},
		{"metadata not object", func(t *testing.T, dir string, _ map[string]any) {
			writeIndexText(t, dir, `{"metadata": 3, "weight_map": {"a": "x"}}`)
		}, "", "metadata: not a JSON object"},
		{"shard not a string", func(t *testing.T, dir string, ix map[string]any) {
			setWeightMap(t, dir, ix, map[string]any{"a": 1})
		}, "", `weight_map: tensor "a": shard 1 is not a string`},
		{"shard outside", func(t *testing.T, dir string, ix map[string]any) {
			setWeightMap(t, dir, ix, map[string]any{"a": s1, "b": s1, "c": "../" + s2})
		}, "", `weight_map: tensor "c": shard "../model-00002-of-00002.safetensors" is not a path inside`},
		{"shard absolute", func(t *testing.T, dir string, ix map[string]any) {
			setWeightMap(t, dir, ix, map[string]any{"a": s1, "b": s1, "c": filepath.Join(dir, s2)})
		}, "", `weight_map: tensor "c": shard "/`},
		{"shard missing", func(t *testing.T, dir string, _ map[string]any) { os.Remove(filepath.Join(dir, s2)) }, "", `shard "model-00002-of-00002.safetensors": safetensors: open ` + "DIR/" + s2 + `: no such file`},
		{"shard corrupt", func(t *testing.T, dir string, _ map[string]any) {
			os.WriteFile(filepath.Join(dir, s2), []byte("garbage!garbage!"), 0o644)
		}, "", `shard "model-00002-of-00002.safetensors": safetensors: DIR/` + s2 + `: header length`},
		{"tensor missing from its shard", func(t *testing.T, dir string, ix map[string]any) {
			setWeightMap(t, dir, ix, map[string]any{"a": s1, "b": s1, "c": s2, "d": s2})
		}, "", `weight_map puts tensor "d" in model-00002-of-00002.safetensors, which does not hold it`},
		{"tensor in another shard", func(t *testing.T, dir string, ix map[string]any) {
			setWeightMap(t, dir, ix, map[string]any{"a": s1, "b": s2, "c": s2})
		}, "", `weight_map puts tensor "b" in model-00002-of-00002.safetensors, but it is in model-00001-of-00002.safetensors`},
		{"tensor in two shards", func(t *testing.T, dir string, _ map[string]any) { writeShard(t, dir, s2, "c", "a") }, "", `tensor "a" is in both model-00001-of-00002.safetensors and model-00002-of-00002.safetensors`},
		{"tensor not in weight_map", func(t *testing.T, dir string, _ map[string]any) { writeShard(t, dir, s2, "c", "z") }, "", `model-00002-of-00002.safetensors holds tensor "z", which weight_map does not list`},
		{"config not an object", func(t *testing.T, dir string, _ map[string]any) {
			os.WriteFile(filepath.Join(dir, "config.json"), []byte(`["x"]`), 0o644)
		}, "", "DIR/config.json: not a JSON object"},
		{"config duplicate key", func(t *testing.T, dir string, _ map[string]any) {
			os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"a": 1, "a": 2}`), 0o644)
		}, "", `DIR/config.json: key "a" appears twice`},
		{"single file invalid", func(t *testing.T, dir string, _ map[string]any) {
			os.WriteFile(filepath.Join(dir, "x.safetensors"), []byte("short"), 0o644)
		}, "x.safetensors", "x.safetensors: file size 5 is smaller than the 8-byte header length"},
		{"index opened directly", func(t *testing.T, dir string, _ map[string]any) { writeIndexText(t, dir, `{"weight_map": {}}`) }, IndexFileName, "weight_map is empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, index := validSharded(t)
			if c.change != nil {
				c.change(t, dir, index)
			}
			cp, err := Open(filepath.Join(dir, c.open))
			if err == nil {
				cp.Close()
				t.Fatal("Open succeeded")
			}
			want := strings.ReplaceAll(c.want, "DIR", dir)
			if !strings.HasPrefix(err.Error(), "checkpoint: ") || !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		})
	}
	// The unchanged checkpoint opens, from the directory and the index.
	dir, _ := validSharded(t)
	for _, path := range []string{dir, filepath.Join(dir, IndexFileName)} {
		cp, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, ti := range cp.Tensors() {
			names = append(names, ti.Name)
		}
		if !slices.Equal(names, []string{"a", "b", "c"}) || cp.Config() != nil {
			t.Errorf("tensors %q, config %s", names, cp.Config())
		}
		cp.Close()
	}
}

func TestWriterErrors(t *testing.T) {
	ts := testTensors()
	infos := infosOf(ts)
	t.Run("directory holds a checkpoint", func(t *testing.T) {
		for _, name := range []string{SingleFileName, IndexFileName, "model-00002-of-00007.safetensors"} {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, name), nil, 0o644)
			if _, err := Create(dir, infos, 0, nil); err == nil || !strings.Contains(err.Error(), "already holds a checkpoint ("+name+")") {
				t.Errorf("%s: %v", name, err)
			}
		}
	})
	t.Run("plan error", func(t *testing.T) {
		if _, err := Create(t.TempDir(), append(infos, infos[0]), 0, nil); err == nil || !strings.Contains(err.Error(), "appears twice") {
			t.Errorf("duplicate: %v", err)
		}
	})
	// Each failure leaves the directory as it was: empty.
	for _, c := range []struct {
		name string
		run  func(w *Writer) error
		want string
	}{
		{"unknown tensor", func(w *Writer) error { return w.WriteTensor("nope", nil) }, `no tensor "nope" in the plan`},
		{"out of order within a shard", func(w *Writer) error {
			w.WriteTensor(ts[0].Name, ts[0].Data)
			return w.WriteTensor(ts[2].Name, ts[2].Data)
		}, `written out of order: tensor "model.layers.0.self_attn.q_proj.weight" is next`},
		{"out of order across shards", func(w *Writer) error {
			w.WriteTensor(ts[0].Name, ts[0].Data)
			for _, tt := range ts[1:6] {
				if err := w.WriteTensor(tt.Name, tt.Data); err != nil {
					return err
				}
			}
			return w.WriteTensor(ts[0].Name, ts[0].Data)
		}, "its shard model-00001-of-00003.safetensors is complete"},
		{"wrong size", func(w *Writer) error { return w.WriteTensor(ts[0].Name, ts[0].Data[1:]) }, "needs 256 bytes, got 255"},
		{"skipping a shard's data", func(w *Writer) error {
			w.WriteTensor(ts[0].Name, ts[0].Data)
			return w.WriteTensor(ts[7].Name, ts[7].Data)
		}, "closed after 0 of 192 data bytes"},
		{"Close with data missing", func(w *Writer) error {
			for _, tt := range ts[:6] {
				w.WriteTensor(tt.Name, tt.Data)
			}
			return w.Close()
		}, "closed after 0 of 256 data bytes"},
		{"Abort", func(w *Writer) error {
			for _, tt := range ts[:7] {
				w.WriteTensor(tt.Name, tt.Data)
			}
			w.Abort()
			return w.Close()
		}, "aborted"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			w, err := Create(dir, infos, 256, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = c.run(w)
			if err == nil || !strings.HasPrefix(err.Error(), "checkpoint: "+dir+": ") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
			// Sticky, and the directory is empty again.
			if err2 := w.Close(); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("Close after the error: %v", err2)
			}
			if err2 := w.WriteTensor(ts[0].Name, ts[0].Data); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("WriteTensor after the error: %v", err2)
			}
			if names := dirNames(t, dir); len(names) != 0 {
				t.Errorf("left behind %q", names)
			}
		})
	}
	t.Run("after Close", func(t *testing.T) {
		dir := t.TempDir()
		w := writeCheckpoint(t, dir, ts, 256)
		if err := w.WriteTensor(ts[0].Name, ts[0].Data); err == nil || !strings.Contains(err.Error(), "write after Close") {
			t.Errorf("write after Close: %v", err)
		}
		w.Abort() // does nothing after a successful Close
		if err := w.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if n := len(dirNames(t, dir)); n != 4 {
			t.Errorf("%d files after Abort following Close, want 4", n)
		}
	})
	t.Run("no tensors", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "new", "dir")
		w, err := Create(dir, nil, 0, map[string]string{"format": "mlx", "k": "v"})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		cp, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer cp.Close()
		if md := cp.Metadata(); md["format"] != "mlx" || md["k"] != "v" || len(cp.Tensors()) != 0 {
			t.Errorf("metadata %v, tensors %v", md, cp.Tensors())
		}
	})
}

// WriteTensorAt writes tensors in pieces across shards: the checkpoint
// reads back as written, and a piece of a tensor whose shard is complete
// fails.
func TestWriterPieces(t *testing.T) {
	data := map[string][]byte{"a": bytes.Repeat([]byte{1, 2, 3, 4}, 10), "b": bytes.Repeat([]byte{5, 6, 7, 8}, 30), "c": {9, 9, 9, 9}}
	infos := []safetensors.TensorInfo{{Name: "a", DType: "F32", Shape: []int{10}}, {Name: "b", DType: "F32", Shape: []int{30}},
		{Name: "c", DType: "F32", Shape: []int{1}}}
	dir := t.TempDir()
	w, err := Create(dir, infos, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Files()) != 3 {
		t.Fatalf("shards %v", w.Files())
	}
	for _, ti := range infos {
		b := data[ti.Name]
		for off := 0; off < len(b); off += 7 {
			if err := w.WriteTensorAt(ti.Name, int64(off), b[off:min(off+7, len(b))]); err != nil {
				t.Fatalf("%s at %d: %v", ti.Name, off, err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ck, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	for name, want := range data {
		if got, err := ck.Bytes(name); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %v %v, want %v", name, got, err, want)
		}
		got := make([]byte, 5)
		if err := ck.ReadTensorAt(name, got[:min(5, len(want)-1)], 1); err != nil || !bytes.Equal(got[:min(5, len(want)-1)], want[1:min(6, len(want))]) {
			t.Errorf("%s: ReadTensorAt %v %v", name, got, err)
		}
	}
	w, err = Create(t.TempDir(), infos, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		if err := w.WriteTensorAt(name, 0, data[name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteTensorAt("a", 0, data["a"]); err == nil || !strings.Contains(err.Error(), "complete") {
		t.Errorf("a piece of a complete shard: %v", err)
	}
}
