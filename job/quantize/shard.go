package quantize

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/model/plan"
)

// The environment ResolveShard reads for "auto": a Slurm array task's
// index and the array's extent, a Kubernetes Indexed Job's completion
// index, and the count of parts where the engine does not give it.
const (
	EnvSlurmTaskID    = "SLURM_ARRAY_TASK_ID"
	EnvSlurmTaskCount = "SLURM_ARRAY_TASK_COUNT"
	EnvSlurmTaskMin   = "SLURM_ARRAY_TASK_MIN"
	EnvSlurmTaskMax   = "SLURM_ARRAY_TASK_MAX"
	EnvK8sIndex       = "JOB_COMPLETION_INDEX"
	EnvShardCount     = "QUANTKIT_SHARD_COUNT"
)

// ResolveShard reads a --shard value: "I/N" (ParseShard), or "auto" or
// "auto/N", which take the part index from the job engine's environment
// (getenv, os.Getenv in the CLI) and say where it came from:
//
//   - a Slurm array task: the index is SLURM_ARRAY_TASK_ID, so the array
//     is numbered from 0 (sbatch --array=0-N-1) and rerunning task K
//     alone (sbatch --array=K) writes part K again. The count is N from
//     "auto/N", else QUANTKIT_SHARD_COUNT, else SLURM_ARRAY_TASK_COUNT
//     when the array is all of 0..COUNT-1 (SLURM_ARRAY_TASK_MIN 0 and
//     SLURM_ARRAY_TASK_MAX COUNT-1). An array that is not (one that
//     starts at 1, or a rerun of some tasks) needs the count given: its
//     task IDs are not 0..N-1, and subtracting SLURM_ARRAY_TASK_MIN would
//     make a rerun of task K part 0.
//   - a Kubernetes Indexed Job: the index is JOB_COMPLETION_INDEX and the
//     count, which the pod is not told, is N from "auto/N" or
//     QUANTKIT_SHARD_COUNT (the Job's completions).
//
// A missing, malformed or out-of-range value is an input error naming
// the variable.
func ResolveShard(text string, getenv func(string) string) (*ShardSpec, string, error) {
	rest, auto := strings.CutPrefix(text, "auto")
	if !auto || (rest != "" && !strings.HasPrefix(rest, "/")) {
		s, err := ParseShard(text)
		return s, "", err
	}
	bad := func(format string, a ...any) (*ShardSpec, string, error) {
		return nil, "", inputerr.Mark(fmt.Errorf("auto: "+format, a...))
	}
	count, countFrom := 0, ""
	if n, ok := strings.CutPrefix(rest, "/"); ok {
		c, err := strconv.Atoi(n)
		if err != nil || c < 1 || c > plan.MaxParts {
			return bad("%q is not auto/N with N in [1, %d]", text, plan.MaxParts)
		}
		count, countFrom = c, "--shard "+text
	}
	if v := getenv(EnvShardCount); v != "" {
		c, err := strconv.Atoi(v)
		switch {
		case err != nil || c < 1 || c > plan.MaxParts:
			return bad("%s=%q is not a count of parts in [1, %d]", EnvShardCount, v, plan.MaxParts)
		case count != 0 && c != count:
			return bad("%s=%d but --shard %s: give the count once", EnvShardCount, c, text)
		}
		count, countFrom = c, EnvShardCount+"="+v
	}
	slurm, k8s := getenv(EnvSlurmTaskID), getenv(EnvK8sIndex)
	switch {
	case slurm != "" && k8s != "":
		return bad("both %s=%s (a Slurm array task) and %s=%s (a Kubernetes Indexed Job) are set: give --shard I/N", EnvSlurmTaskID, slurm, EnvK8sIndex, k8s)
	case slurm == "" && k8s == "":
		return bad("neither %s (a Slurm array job) nor %s (a Kubernetes Indexed Job) is set: run it as an array task, or give --shard I/N", EnvSlurmTaskID, EnvK8sIndex)
	}
	name, value := EnvSlurmTaskID, slurm
	if k8s != "" {
		name, value = EnvK8sIndex, k8s
	}
	index, err := strconv.Atoi(value)
	if err != nil || index < 0 {
		return bad("%s=%q is not an index (an integer ≥ 0)", name, value)
	}
	if count == 0 && k8s != "" {
		return bad("%s=%d (a Kubernetes Indexed Job) gives the index but not the count: give --shard auto/N or set %s=N, N being the Job's completions", EnvK8sIndex, index, EnvShardCount)
	}
	if count == 0 {
		if count, countFrom, err = slurmCount(getenv); err != nil {
			return nil, "", inputerr.Mark(fmt.Errorf("auto: %w", err))
		}
	}
	// An array numbered from 1 fails in every task, not only in its last.
	if hi, err := strconv.Atoi(getenv(EnvSlurmTaskMax)); slurm != "" && err == nil && hi >= count {
		return bad("%s=%d: the array's tasks go beyond the parts 0..%d (%d parts from %s): number the array from 0 (sbatch --array=0-%d)",
			EnvSlurmTaskMax, hi, count-1, count, countFrom, count-1)
	}
	if index >= count {
		return bad("%s=%d is not a part index of %d parts (from %s): the index must be in [0, %d)", name, index, count, countFrom, count)
	}
	return &ShardSpec{Index: index, Count: count}, fmt.Sprintf("%s=%d, %d parts from %s", name, index, count, countFrom), nil
}

// slurmCount is the count of parts of a Slurm array that is all of
// 0..SLURM_ARRAY_TASK_COUNT-1.
func slurmCount(getenv func(string) string) (int, string, error) {
	vars := map[string]int{}
	for _, name := range []string{EnvSlurmTaskCount, EnvSlurmTaskMin, EnvSlurmTaskMax} {
		v := getenv(name)
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, "", fmt.Errorf("%s=%q is not a task count or ID (older Slurm does not set it): give --shard auto/N or set %s=N", name, v, EnvShardCount)
		}
		vars[name] = n
	}
	n, lo, hi := vars[EnvSlurmTaskCount], vars[EnvSlurmTaskMin], vars[EnvSlurmTaskMax]
	if lo != 0 || hi != n-1 || n > plan.MaxParts {
		return 0, "", fmt.Errorf("the array's %d tasks are numbered %d to %d, not 0 to %d: the part index is the task ID, so number the array "+
			"from 0 (sbatch --array=0-%d), and give the count where only some tasks run (a rerun: sbatch --array=K with --shard auto/N or %s=N)",
			n, lo, hi, n-1, n-1, EnvShardCount)
	}
	return n, fmt.Sprintf("%s=%d", EnvSlurmTaskCount, n), nil
}

// writePart records the files of the part directory dir in p and writes
// p as dir's part.json.
func writePart(dir string, p *plan.Part) error {
	var err error
	if p.Files, err = plan.HashPartFiles(dir); err != nil {
		return err
	}
	b, err := p.Marshal()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, plan.PartFileName), b, 0o666)
}

// partID is what part.json says a part directory is.
type partID struct {
	dir      string
	planHash string
	index    int
	count    int
}

// checkPartSet checks that ids are the parts 0..N-1 of one plan, each
// once, and returns their directories by index. The plan is that of most
// parts (of the first among equals): each part of another plan is named
// as foreign, every missing index is listed.
func checkPartSet(ids []partID) ([]string, error) {
	type key struct {
		hash  string
		count int
	}
	groups := map[key][]partID{}
	var order []key
	for _, id := range ids {
		k := key{id.planHash, id.count}
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], id)
	}
	main := order[0]
	for _, k := range order[1:] {
		if len(groups[k]) > len(groups[main]) {
			main = k
		}
	}
	like := groups[main]
	var errs []error
	for _, id := range ids {
		if (key{id.planHash, id.count}) != main {
			errs = append(errs, fmt.Errorf("%s is part %d/%d of plan %s, not of plan %s (%d parts) like %s%s: it was quantized from "+
				"another input, with other flags or another count; remove it, or quantize part %d/%d again as the others were",
				id.dir, id.index, id.count, id.planHash, main.hash, main.count, like[0].dir, others(len(like)-1), id.index, id.count))
		}
	}
	if len(errs) > 0 {
		return nil, inputerr.Mark(errors.Join(errs...))
	}
	dirs := make([]string, main.count)
	for _, id := range like {
		if prev := dirs[id.index]; prev != "" {
			return nil, inputerr.Mark(fmt.Errorf("part %d/%d given twice (%s and %s)", id.index, id.count, prev, id.dir))
		}
		dirs[id.index] = id.dir
	}
	var missing []string
	for i, d := range dirs {
		if d == "" {
			missing = append(missing, strconv.Itoa(i))
		}
	}
	switch {
	case len(missing) == 1:
		return nil, inputerr.Mark(fmt.Errorf("part %s of %d (of plan %s) is missing: quantize it (--shard %s/%d, or rerun that array task)",
			missing[0], main.count, main.hash, missing[0], main.count))
	case len(missing) > 1:
		return nil, inputerr.Mark(fmt.Errorf("parts %s of %d (of plan %s) are missing: quantize them (--shard I/%d, or rerun those array tasks: sbatch --array=%s)",
			strings.Join(missing, ", "), main.count, main.hash, main.count, strings.Join(missing, ",")))
	}
	return dirs, nil
}

// others is " and n other part(s)", or nothing for n = 0.
func others(n int) string {
	switch n {
	case 0:
		return ""
	case 1:
		return " and 1 other part"
	}
	return fmt.Sprintf(" and %d other parts", n)
}

// verifyParts checks every part's files against its part.json (see
// plan.CheckPartFiles): the part index i of dirs recorded files[i].
// Errors name each part that differs.
func verifyParts(dirs []string, files [][]plan.PartFile) error {
	var errs []error
	for i, d := range dirs {
		if err := plan.CheckPartFiles(d, files[i]); err != nil {
			errs = append(errs, fmt.Errorf("part %d/%d (%s) is not as quantize wrote it; quantize it again (--shard %d/%d): %w", i, len(dirs), d, i, len(dirs), err))
		}
	}
	return errors.Join(errs...)
}
