package quantize

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/model/plan"
)

// TestMergeChecksParts: a part records its files, and merge refuses, naming
// the part, a set with parts missing, a part of another plan (however it
// is listed), and a part whose file was corrupted, truncated, removed or
// joined by another; the part quantized again merges into the one run's
// output, byte for byte.
func TestMergeChecksParts(t *testing.T) {
	in := synthModel(t)
	dir := t.TempDir()
	one, parts, other := filepath.Join(dir, "one"), filepath.Join(dir, "parts"), filepath.Join(dir, "other")
	opt := Options{Input: in, Plan: plan.Options{Format: plan.CompressedTensors, Scheme: scheme(t, "int4-sym-group32")}, ShardSize: 1e6}
	mustRun(t, withOutput(opt, one, nil))
	p := func(root string, i int) string { return (&ShardSpec{i, 4}).Dir(root) }
	for i := range 4 {
		mustRun(t, withOutput(opt, parts, &ShardSpec{i, 4}))
	}
	o := opt
	o.Plan.Scheme = scheme(t, "int8-sym-channel")
	mustRun(t, withOutput(o, other, &ShardSpec{2, 4}))

	info, err := plan.ReadPart(p(parts, 1))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range info.Files {
		names = append(names, f.Name)
	}
	if !slices.Contains(names, "model.safetensors") || !slices.Contains(names, "config.json") || slices.Contains(names, plan.PartFileName) {
		t.Errorf("part 1 records the files %v", names)
	}
	if err := plan.CheckPartFiles(p(parts, 1), info.Files); err != nil {
		t.Errorf("part 1 as written: %v", err)
	}

	merged := filepath.Join(dir, "merged")
	refuse := func(what string, args []string, want ...string) {
		t.Helper()
		_, err := Merge(context.Background(), MergeOptions{Parts: args, Output: merged})
		for _, w := range want {
			if err == nil || !strings.Contains(err.Error(), w) || !inputerr.Is(err) {
				t.Errorf("%s: %v, want an input error mentioning %q", what, err, w)
			}
		}
		if _, err := os.Stat(merged); err == nil {
			t.Fatalf("%s: the output was written", what)
		}
	}
	refuse("two missing", []string{p(parts, 0), p(parts, 2)}, "parts 1, 3 of 4 (of plan ", "sbatch --array=1,3")
	refuse("one missing", []string{p(parts, 0), p(parts, 1), p(parts, 3)}, "part 2 of 4 (of plan ", "--shard 2/4")
	// The foreign part is named whether it comes first or not.
	refuse("foreign last", []string{p(parts, 0), p(parts, 1), p(other, 2), p(parts, 3)}, p(other, 2)+" is part 2/4 of plan ", "and 2 other parts")
	refuse("foreign first", []string{p(other, 2), p(parts, 0), p(parts, 1), p(parts, 3)}, p(other, 2)+" is part 2/4 of plan ", "like "+p(parts, 0))

	// Damage part 3's largest file four ways; each is named.
	st := filepath.Join(p(parts, 3), "model.safetensors")
	good, err := os.ReadFile(st)
	if err != nil {
		t.Fatal(err)
	}
	flipped := slices.Clone(good)
	flipped[len(flipped)/2] ^= 1
	for _, tc := range []struct {
		name   string
		damage func() error
		want   string
	}{
		{"bit flip", func() error { return os.WriteFile(st, flipped, 0o666) }, "model.safetensors: SHA-256 "},
		{"truncated", func() error { return os.WriteFile(st, good[:len(good)-7], 0o666) }, "bytes, part.json records"},
		{"removed", func() error { return os.Remove(st) }, "model.safetensors: missing"},
		{"foreign file", func() error { return os.WriteFile(filepath.Join(p(parts, 3), "extra.json"), nil, 0o666) }, "extra.json: not one of the files"},
	} {
		if err := tc.damage(); err != nil {
			t.Fatal(err)
		}
		refuse(tc.name, []string{parts}, "part 3/4 ("+p(parts, 3)+") is not as quantize wrote it", tc.want)
		os.Remove(filepath.Join(p(parts, 3), "extra.json"))
		if err := os.WriteFile(st, good, 0o666); err != nil {
			t.Fatal(err)
		}
	}

	// Part 3 quantized again, alone, after its damage: the merge equals
	// the one run, file for file.
	if err := os.WriteFile(st, flipped, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(p(parts, 3)); err != nil {
		t.Fatal(err)
	}
	mustRun(t, withOutput(opt, parts, &ShardSpec{3, 4}))
	if _, err := Merge(context.Background(), MergeOptions{Parts: []string{parts}, Output: merged}); err != nil {
		t.Fatal(err)
	}
	for _, name := range entries(t, one) {
		a, err1 := os.ReadFile(filepath.Join(one, name))
		b, err2 := os.ReadFile(filepath.Join(merged, name))
		if err1 != nil || err2 != nil || string(a) != string(b) {
			t.Errorf("%s: merged differs from one run (%v, %v)", name, err1, err2)
		}
	}
	if a, b := entries(t, one), entries(t, merged); !slices.Equal(a, b) {
		t.Errorf("one run wrote %v, the merge %v", a, b)
	}
}

func TestResolveShard(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	slurm := func(id, count, lo, hi string, more ...string) func(string) string {
		return env(append([]string{EnvSlurmTaskID, id, EnvSlurmTaskCount, count, EnvSlurmTaskMin, lo, EnvSlurmTaskMax, hi}, more...)...)
	}
	for _, tc := range []struct {
		text string
		env  func(string) string
		want ShardSpec
		from string
	}{
		{"2/5", env(EnvSlurmTaskID, "0"), ShardSpec{2, 5}, ""},
		{"auto", slurm("3", "4", "0", "3"), ShardSpec{3, 4}, "SLURM_ARRAY_TASK_ID=3, 4 parts from SLURM_ARRAY_TASK_COUNT=4"},
		{"auto", slurm("0", "4", "0", "3"), ShardSpec{0, 4}, ""},
		// A rerun of task 2 alone is part 2, given the count either way.
		{"auto/4", slurm("2", "1", "2", "2"), ShardSpec{2, 4}, "SLURM_ARRAY_TASK_ID=2, 4 parts from --shard auto/4"},
		{"auto/4", slurm("1", "2", "1", "3"), ShardSpec{1, 4}, ""}, // a rerun of tasks 1 and 3
		{"auto", slurm("2", "1", "2", "2", EnvShardCount, "4"), ShardSpec{2, 4}, "SLURM_ARRAY_TASK_ID=2, 4 parts from QUANTKIT_SHARD_COUNT=4"},
		{"auto/4", slurm("2", "1", "2", "2", EnvShardCount, "4"), ShardSpec{2, 4}, ""},
		{"auto/8", env(EnvK8sIndex, "7"), ShardSpec{7, 8}, "JOB_COMPLETION_INDEX=7, 8 parts from --shard auto/8"},
		{"auto", env(EnvK8sIndex, "0", EnvShardCount, "3"), ShardSpec{0, 3}, ""},
	} {
		s, from, err := ResolveShard(tc.text, tc.env)
		if err != nil || *s != tc.want || (tc.from != "" && from != tc.from) {
			t.Errorf("ResolveShard(%q) = %v, %q, %v; want %v, %q", tc.text, s, from, err, tc.want, tc.from)
		}
	}
	for _, tc := range []struct {
		text string
		env  func(string) string
		want string
	}{
		{"auto", env(), "neither SLURM_ARRAY_TASK_ID"},
		{"auto/4", env(), "neither SLURM_ARRAY_TASK_ID"},
		{"auto", env(EnvSlurmTaskID, "1", EnvK8sIndex, "1"), "both"},
		{"auto", env(EnvK8sIndex, "2"), "gives the index but not the count"},
		{"auto", env(EnvK8sIndex, "x", EnvShardCount, "3"), `JOB_COMPLETION_INDEX="x" is not an index`},
		{"auto", env(EnvK8sIndex, "-1", EnvShardCount, "3"), "is not an index"},
		{"auto", env(EnvK8sIndex, "3", EnvShardCount, "3"), "JOB_COMPLETION_INDEX=3 is not a part index of 3 parts (from QUANTKIT_SHARD_COUNT=3)"},
		{"auto/0", env(EnvK8sIndex, "0"), "not auto/N"},
		{"auto/x", env(EnvK8sIndex, "0"), "not auto/N"},
		{"auto/", env(EnvK8sIndex, "0"), "not auto/N"},
		{"auto/2/3", env(EnvK8sIndex, "0"), "not auto/N"},
		{"auto", env(EnvK8sIndex, "0", EnvShardCount, "0"), "QUANTKIT_SHARD_COUNT=\"0\""},
		{"auto/3", env(EnvK8sIndex, "0", EnvShardCount, "4"), "give the count once"},
		{"autox", env(EnvK8sIndex, "0"), "I/N"},
		// A rerun of task 2 alone, without the count: refused, not part 0 of 1.
		{"auto", slurm("2", "1", "2", "2"), "numbered 2 to 2, not 0 to 0"},
		// An array from 1: its task IDs are not the part indices.
		{"auto", slurm("4", "4", "1", "4"), "number the array from 0 (sbatch --array=0-3)"},
		{"auto", env(EnvSlurmTaskID, "1"), `SLURM_ARRAY_TASK_COUNT="" is not`},
		{"auto", slurm("1", "x", "0", "3"), "SLURM_ARRAY_TASK_COUNT=\"x\""},
		{"auto/4", slurm("4", "5", "0", "4"), "SLURM_ARRAY_TASK_MAX=4: the array's tasks go beyond the parts 0..3"},
		{"auto/4", env(EnvSlurmTaskID, "4"), "SLURM_ARRAY_TASK_ID=4 is not a part index of 4 parts"},
		// An array from 1 with the count: every task fails, task 1 too.
		{"auto/4", slurm("1", "4", "1", "4"), "number the array from 0 (sbatch --array=0-3)"},
	} {
		if s, _, err := ResolveShard(tc.text, tc.env); err == nil || !inputerr.Is(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ResolveShard(%q) = %v, %v; want an input error mentioning %q", tc.text, s, err, tc.want)
		}
	}
}
