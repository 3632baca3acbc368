package quantize

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/internal/output"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/ggufmix"
	"github.com/quantkit/quantkit/model/plan"
)

// shardAll runs parts 0..n-1 of opt into parts, in reverse order.
func shardAll(t *testing.T, opt GGUFOptions, parts string, n int) []*GGUFReport {
	t.Helper()
	reps := make([]*GGUFReport, n)
	for i := n - 1; i >= 0; i-- {
		o := opt
		o.Output, o.Shard = parts, &ShardSpec{Index: i, Count: n}
		rep, err := RunGGUF(context.Background(), o)
		if err != nil {
			t.Fatalf("part %d/%d: %v", i, n, err)
		}
		reps[i] = rep
	}
	return reps
}

// TestGGUFShardMerge: the parts of a sharded run, merged, are the file
// one run writes, byte for byte, for a GGUF input (with a K-quant mix and
// llama-quantize's digest where it is known) and a Hugging Face
// checkpoint, with as many parts as fit and more parts than tensors.
func TestGGUFShardMerge(t *testing.T) {
	dir := t.TempDir()
	synth := filepath.Join(dir, "synth-f16.gguf")
	synthLlama(t, synth)
	hf, err := OpenHFSource("../../testdata/llm/stories260K/hf")
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	cases := []struct {
		name   string
		opt    GGUFOptions
		digest string // llama-quantize's, where known
		counts []int
	}{
		{"synth Q4_K_M", GGUFOptions{Input: synth, Mix: ggufmix.Q4_K_M}, llamaQuantizeDigests["synth Q4_K_M"], []int{1, 2, 3, 5}},
		{"stories260K Q8_0", GGUFOptions{Input: stories260K, Mix: ggufmix.Q8_0}, llamaQuantizeDigests["stories260K Q8_0"], []int{2, 60}},
		{"hf Q8_0 pure", GGUFOptions{Input: "stories260K/hf", Source: hf, Mix: ggufmix.Q8_0, Pure: true}, "", []int{4}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opt.Workers = 2
			pl, err := PlanGGUF(withGGUFOutput(tc.opt, filepath.Join(t.TempDir(), "x.gguf")))
			if err != nil {
				t.Fatal(err)
			}
			if len(pl.Unsupported) > 0 {
				t.Skipf("this build cannot encode %v", pl.Unsupported)
			}
			one := filepath.Join(t.TempDir(), "one.gguf")
			rep, err := RunGGUF(context.Background(), withGGUFOutput(tc.opt, one))
			if err != nil {
				t.Fatal(err)
			}
			want := fileDigest(t, one)
			if tc.digest != "" && want != tc.digest {
				t.Fatalf("one run: sha256 %s, llama-quantize's %s", want, tc.digest)
			}
			for _, n := range tc.counts {
				parts := filepath.Join(t.TempDir(), "parts")
				reps := shardAll(t, tc.opt, parts, n)
				tensors := 0
				for i, r := range reps {
					if r.PlanHash != rep.PlanHash || r.Shard.Index != i || r.Output != (&ShardSpec{i, n}).Dir(parts) {
						t.Errorf("%d parts: part %d: plan %s (one run %s), shard %+v, output %s", n, i, r.PlanHash, rep.PlanHash, r.Shard, r.Output)
					}
					if got := entries(t, r.Output); !slices.Equal(got, []string{GGUFPartFile, plan.PartFileName}) {
						t.Errorf("part %d holds %v", i, got)
					}
					tensors += r.Totals.Tensors
				}
				if tensors != rep.Totals.Tensors {
					t.Errorf("%d parts write %d tensors, one run %d", n, tensors, rep.Totals.Tensors)
				}
				merged := filepath.Join(t.TempDir(), "merged.gguf")
				var seen []string
				mrep, err := Merge(context.Background(), MergeOptions{Parts: []string{parts}, Output: merged,
					Progress: func(p Progress) { seen = append(seen, p.Tensor) }})
				if err != nil {
					t.Fatalf("%d parts: %v", n, err)
				}
				if got := fileDigest(t, merged); got != want {
					t.Errorf("%d parts merged: sha256 %s, one run's %s", n, got, want)
				}
				if mrep.PlanHash != rep.PlanHash || len(mrep.Parts) != n || mrep.Tensors != rep.Totals.Tensors ||
					mrep.Bytes != rep.Totals.BytesOut || mrep.Format != "gguf" || len(seen) != mrep.Tensors {
					t.Errorf("%d parts: merge report %+v, %d progress calls", n, mrep, len(seen))
				}
			}
		})
	}
}

func withGGUFOutput(opt GGUFOptions, out string) GGUFOptions {
	opt.Output = out
	return opt
}

// TestGGUFMergeRefusals: parts of two plans, a part missing or given
// twice, a checkpoint part among GGUF parts, a part file that does not
// hold what part.json says, --shard-size: each refused with an error
// that says so, before anything is written; a cancelled merge leaves
// nothing.
func TestGGUFMergeRefusals(t *testing.T) {
	dir := t.TempDir()
	parts, other := filepath.Join(dir, "parts"), filepath.Join(dir, "other")
	opt := GGUFOptions{Input: stories260K, Mix: ggufmix.Q8_0, Workers: 2}
	reps := shardAll(t, opt, parts, 3)
	o := opt
	o.Mix = ggufmix.Q4_0
	oreps := shardAll(t, o, other, 3)
	if oreps[0].PlanHash == reps[0].PlanHash {
		t.Fatal("Q8_0 and Q4_0 share a plan hash")
	}
	ck := filepath.Join(dir, "ck")
	mustRun(t, Options{Input: synthModel(t), Output: ck, Plan: plan.Options{Format: plan.CompressedTensors, Scheme: scheme(t, "int8-sym-channel")}, Shard: &ShardSpec{0, 2}})
	p := func(root string, i int) string { return (&ShardSpec{i, 3}).Dir(root) }
	// A part whose file lacks a tensor: part 1's file with part 2's part.json.
	bad := filepath.Join(dir, "bad")
	if err := os.MkdirAll(bad, 0o777); err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{filepath.Join(p(parts, 1), GGUFPartFile): GGUFPartFile, filepath.Join(p(parts, 2), plan.PartFileName): plan.PartFileName} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bad, dst), b, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	// The same, with part.json's files recorded for the file it holds.
	rerecorded := filepath.Join(dir, "rerecorded")
	if err := os.CopyFS(rerecorded, os.DirFS(bad)); err != nil {
		t.Fatal(err)
	}
	info, err := ReadGGUFPart(rerecorded)
	if err != nil {
		t.Fatal(err)
	}
	if info.Files, err = plan.HashPartFiles(rerecorded); err != nil {
		t.Fatal(err)
	}
	if b, err := info.Marshal(); err != nil || os.WriteFile(filepath.Join(rerecorded, plan.PartFileName), b, 0o666) != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.gguf")
	for _, tc := range []struct {
		name  string
		opt   MergeOptions
		want  string
		input bool
	}{
		{"missing", MergeOptions{Parts: []string{p(parts, 0), p(parts, 2)}}, "part 1 of 3 (of plan " + reps[0].PlanHash + ") is missing", true},
		{"twice", MergeOptions{Parts: []string{p(parts, 0), p(parts, 1), p(parts, 1), p(parts, 2)}}, "part 1/3 given twice", true},
		{"two plans", MergeOptions{Parts: []string{p(parts, 0), p(other, 1), p(parts, 2)}}, "not of plan " + reps[0].PlanHash, true},
		{"checkpoint part", MergeOptions{Parts: []string{p(parts, 0), filepath.Join(ck, "part-0-of-2")}}, "not a GGUF part", true},
		{"checkpoint first", MergeOptions{Parts: []string{filepath.Join(ck, "part-0-of-2"), p(parts, 0)}}, "is a GGUF part but", true},
		{"wrong file", MergeOptions{Parts: []string{p(parts, 0), p(parts, 1), bad}}, "part 2/3 (" + bad + ") is not as quantize wrote it", true},
		{"wrong file, recorded", MergeOptions{Parts: []string{p(parts, 0), p(parts, 1), rerecorded}}, "holds tensor", true},
		{"shard size", MergeOptions{Parts: []string{parts}, ShardSize: 1 << 20}, "--shard-size does not apply", true},
	} {
		tc.opt.Output = out
		_, err := Merge(context.Background(), tc.opt)
		if err == nil || !strings.Contains(err.Error(), tc.want) || inputerr.Is(err) != tc.input {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%s: the output was written", tc.name)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, err = Merge(ctx, MergeOptions{Parts: []string{parts}, Output: out, Progress: func(p Progress) {
		if p.TensorsDone == 5 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled merge: %v", err)
	}
	if got := entries(t, dir); !slices.Equal(got, []string{"bad", "ck", "other", "parts", "rerecorded"}) {
		t.Errorf("left behind: %v", got)
	}
	// The merged output may not be a part.
	if _, err := Merge(context.Background(), MergeOptions{Parts: []string{parts}, Output: filepath.Join(p(parts, 0), GGUFPartFile), Force: true}); err == nil || !strings.Contains(err.Error(), "is the input") {
		t.Errorf("output = a part's file: %v", err)
	}
	// A part directory that exists is refused without --force.
	o = opt
	o.Output, o.Shard = parts, &ShardSpec{0, 3}
	if _, err := RunGGUF(context.Background(), o); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("part over an existing one: %v", err)
	}
	o.Shard = &ShardSpec{3, 3}
	if _, err := RunGGUF(context.Background(), o); err == nil || !inputerr.Is(err) {
		t.Errorf("part 3/3: %v", err)
	}
}

// TestGGUFShardCancel: a part cancelled mid-run leaves nothing.
func TestGGUFShardCancel(t *testing.T) {
	parts := filepath.Join(t.TempDir(), "parts")
	ctx, cancel := context.WithCancel(context.Background())
	_, err := RunGGUF(ctx, GGUFOptions{Input: stories260K, Output: parts, Mix: ggufmix.Q8_0, Workers: 2, Shard: &ShardSpec{0, 2},
		Progress: func(p Progress) {
			if p.TensorsDone == 3 {
				cancel()
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled part: %v", err)
	}
	if got := entries(t, filepath.Dir(parts)); len(got) > 1 || (len(got) == 1 && len(entries(t, parts)) != 0) {
		t.Errorf("left behind: %v", got)
	}
}

// naivePartOf is GGUFPartOf as the loop it stands for: tensors by
// decreasing cost (output order among equals), each to the first part
// of least cost.
func naivePartOf(costs []int64, n int) []int {
	out := make([]int, len(costs))
	load := make([]int64, n)
	done := make([]bool, len(costs))
	for range costs {
		k := -1
		for i, c := range costs {
			if !done[i] && (k < 0 || c > costs[k]) {
				k = i
			}
		}
		p := 0
		for i := range load {
			if load[i] < load[p] {
				p = i
			}
		}
		out[k], done[k] = p, true
		load[p] += costs[k]
	}
	return out
}

func TestGGUFPartOf(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, tc := range []struct{ tensors, parts int }{{0, 1}, {1, 3}, {7, 1}, {50, 3}, {291, 7}, {100, 100}} {
		costs := make([]int64, tc.tensors)
		for i := range costs {
			costs[i] = int64(rng.IntN(5)) << rng.IntN(20) // ties and zeros
		}
		if got, want := GGUFPartOf(costs, tc.parts), naivePartOf(costs, tc.parts); !slices.Equal(got, want) {
			t.Errorf("%d tensors in %d parts: %v, want %v", tc.tensors, tc.parts, got, want)
		}
	}
	// On a Llama's tensors (synthLlama's plan), the parts are within a few
	// percent of each other where cutting every third tensor is not.
	in := filepath.Join(t.TempDir(), "in.gguf")
	synthLlama(t, in)
	rep, err := PlanGGUF(GGUFOptions{Input: in, Output: "x.gguf", Mix: ggufmix.Q8_0})
	if err != nil {
		t.Fatal(err)
	}
	costs := make([]int64, len(rep.Tensors))
	for i, tn := range rep.Tensors {
		costs[i] = tn.BytesIn
	}
	spread := func(part func(i int) int) float64 {
		load := make([]int64, 3)
		for i, c := range costs {
			load[part(i)] += c
		}
		return float64(slices.Max(load)) / float64(slices.Min(load))
	}
	by := GGUFPartOf(costs, 3)
	balanced, everyThird := spread(func(i int) int { return by[i] }), spread(func(i int) int { return i % 3 })
	if balanced > 1.05 || everyThird < 1.5 {
		t.Errorf("largest/smallest part: %.3f balanced, %.3f every third", balanced, everyThird)
	}
}

func TestParseGGUFPart(t *testing.T) {
	good := `{"plan_hash": "0123abcd", "index": 1, "count": 2, "format": "gguf", "type": "Q4_K_M", "pure": false,
		"tensors": [{"name": "a", "type": "Q4_K", "dims": [256, 2], "part": 0}, {"name": "b", "type": "F32", "dims": [4], "part": 1}],
		"files": [{"name": "part.gguf", "size": 9, "sha256": "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"}]}`
	if p, err := ParseGGUFPart([]byte(good)); err != nil || p.Index != 1 || len(p.Tensors) != 2 || p.Tensors[0].Dims[0] != 256 {
		t.Fatalf("%+v, %v", p, err)
	}
	for _, tc := range []struct{ from, to, want string }{
		{`"pure": false,`, `"pure": false, "extra": 1,`, "unknown field"},
		{`"pure": false,`, ``, "present, want all"},
		{`"index": 1,`, `"index": 1, "index": 0,`, "twice"},
		{`"format": "gguf"`, `"format": "safetensors"`, "format"},
		{`"index": 1`, `"index": 2`, "index 2"},
		{`"type": "Q4_K_M"`, `"type": "Q3_X"`, "unknown type"},
		{`"name": "b"`, `"name": "a"`, "listed twice"},
		{`"type": "F32"`, `"type": "F99"`, "unknown type"},
		{`"dims": [4]`, `"dims": []`, "0 dims"},
		{`"dims": [4]`, `"dims": [4, 4611686018427387904, 4]`, "overflow"},
		{`"part": 1`, `"part": 2`, "part 2"},
		{`"part": 1}`, `"part": 1, "x": 0}`, "unknown field"},
		{`"0123abcd"`, `"XYZ"`, "hexadecimal"},
		{`"files":`, `"nofiles":`, `unknown field "nofiles"`},
		{good[strings.Index(good, `,
		"files"`):], `}`, `no "files"`},
		{`"size": 9`, `"size": -9`, "negative"},
		{`"name": "part.gguf"`, `"name": "part.json"`, "not that of a file"},
	} {
		if !strings.Contains(good, tc.from) {
			t.Fatalf("%q not in the part", tc.from)
		}
		bad := strings.Replace(good, tc.from, tc.to, 1)
		if _, err := ParseGGUFPart([]byte(bad)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s → %s: %v, want %q", tc.from, tc.to, err, tc.want)
		}
	}
}

// TestGGUFPlanHash: the plan hash changes with the input's values (not
// only its header), the mix and --pure, and not with the output path or
// the workers.
func TestGGUFPlanHash(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.gguf"), filepath.Join(dir, "b.gguf")
	synthLlama(t, a)
	data, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	ti, _ := f.Tensor("blk.3.ffn_down.weight")
	off := f.DataOffset() + ti.Offset + ti.Size - 2 // the last row's last element
	f.Close()
	data[off] ^= 1
	if err := os.WriteFile(b, data, 0o666); err != nil {
		t.Fatal(err)
	}
	hash := func(in string, mix ggufmix.Mix, pure bool, out string, workers int) string {
		rep, err := PlanGGUF(GGUFOptions{Input: in, Output: out, Mix: mix, Pure: pure, Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		return rep.PlanHash
	}
	base := hash(a, ggufmix.Q4_K_M, false, "x.gguf", 1)
	for name, h := range map[string]string{
		"other values": hash(b, ggufmix.Q4_K_M, false, "x.gguf", 1),
		"other mix":    hash(a, ggufmix.Q5_K_M, false, "x.gguf", 1),
		"pure":         hash(a, ggufmix.Q4_K_M, true, "x.gguf", 1),
	} {
		if h == base {
			t.Errorf("%s: the same plan hash %s", name, h)
		}
	}
	if h := hash(a, ggufmix.Q4_K_M, false, "y.gguf", 3); h != base {
		t.Errorf("another output and worker count: plan %s, was %s", h, base)
	}
}

// TestGGUFShardMergeSpace: a part and a merge that cannot fit are refused
// before anything is written, naming the space they need.
func TestGGUFShardMergeSpace(t *testing.T) {
	dir := t.TempDir()
	parts, out := filepath.Join(dir, "parts"), filepath.Join(dir, "out.gguf")
	opt := GGUFOptions{Input: stories260K, Mix: ggufmix.Q8_0, Workers: 2}
	shardAll(t, opt, parts, 2)
	prev := output.FreeBytes
	output.FreeBytes = func(string) (int64, bool) { return 1000, true }
	t.Cleanup(func() { output.FreeBytes = prev })
	if _, err := Merge(context.Background(), MergeOptions{Parts: []string{parts}, Output: out}); err == nil || !strings.Contains(err.Error(), "not enough space") || !inputerr.Is(err) {
		t.Errorf("merge: %v", err)
	}
	opt.Output, opt.Shard = filepath.Join(dir, "more"), &ShardSpec{0, 2}
	if _, err := RunGGUF(context.Background(), opt); err == nil || !strings.Contains(err.Error(), "not enough space") {
		t.Errorf("part: %v", err)
	}
	if got := entries(t, dir); !slices.Equal(got, []string{"parts"}) {
		t.Errorf("written: %v", got)
	}
}

// FuzzParseGGUFPart: part.json of a GGUF part is refused or parsed, never
// a panic, and what parses marshals back to what parses the same.
func FuzzParseGGUFPart(f *testing.F) {
	f.Add([]byte(`{"plan_hash":"ab","index":0,"count":1,"format":"gguf","type":"Q8_0","pure":false,"tensors":[],"files":[]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"tensors":[{"name":"a","type":"F32","dims":[1],"part":0}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseGGUFPart(data)
		if err != nil {
			return
		}
		b, err := p.Marshal()
		if err != nil {
			t.Fatalf("accepted part does not marshal: %v", err)
		}
		if _, err := ParseGGUFPart(b); err != nil {
			t.Fatalf("a part's own marshalling is refused: %v\n%s", err, b)
		}
	})
}
