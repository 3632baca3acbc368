package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/quantkit/quantkit/job/quantize"
)

// The parts of the Kubernetes objects the tests read; yaml.v3 decodes
// unknown fields away, so each manifest is also decoded into a map and
// its keys compared with these (knownFields), catching a misspelt field
// that Kubernetes would reject or, worse, ignore.
type object struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   metadata `yaml:"metadata"`
}

type metadata struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
}

type job struct {
	object `yaml:",inline"`
	Spec   struct {
		CompletionMode       string `yaml:"completionMode"`
		Completions          *int   `yaml:"completions"`
		Parallelism          *int   `yaml:"parallelism"`
		BackoffLimit         *int   `yaml:"backoffLimit"`
		BackoffLimitPerIndex *int   `yaml:"backoffLimitPerIndex"`
		Template             struct {
			Metadata metadata `yaml:"metadata"`
			Spec     podSpec  `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	RestartPolicy string      `yaml:"restartPolicy"`
	Containers    []container `yaml:"containers"`
	Volumes       []struct {
		Name                  string `yaml:"name"`
		PersistentVolumeClaim struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim"`
	} `yaml:"volumes"`
}

type container struct {
	Name      string   `yaml:"name"`
	Image     string   `yaml:"image"`
	Command   []string `yaml:"command"`
	Args      []string `yaml:"args"`
	Env       []envVar `yaml:"env"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type envVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom struct {
		ResourceFieldRef struct {
			Resource string `yaml:"resource"`
			Divisor  string `yaml:"divisor"`
		} `yaml:"resourceFieldRef"`
	} `yaml:"valueFrom"`
}

type claim struct {
	object `yaml:",inline"`
	Spec   struct {
		AccessModes []string `yaml:"accessModes"`
		Resources   struct {
			Requests map[string]string `yaml:"requests"`
		} `yaml:"resources"`
	} `yaml:"spec"`
}

// decode reads the one YAML document of file into v, refusing fields v
// does not know.
func decode(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("kubernetes", file))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var more any
	if err := dec.Decode(&more); err == nil {
		t.Fatalf("%s holds more than one document", file)
	}
}

// env is c's variable name (the zero envVar if none).
func (c container) env(name string) envVar {
	if i := slices.IndexFunc(c.Env, func(e envVar) bool { return e.Name == name }); i >= 0 {
		return c.Env[i]
	}
	return envVar{}
}

// mount is where c mounts the volume of pod p that is claim claimName.
func (p podSpec) mount(t *testing.T, c container, claimName string) string {
	t.Helper()
	for _, v := range p.Volumes {
		if v.PersistentVolumeClaim.ClaimName != claimName {
			continue
		}
		for _, m := range c.VolumeMounts {
			if m.Name == v.Name {
				return m.MountPath
			}
		}
	}
	t.Fatalf("container %s mounts no volume of claim %s", c.Name, claimName)
	return ""
}

// TestKubernetesManifests: quantize-job.yaml is an Indexed Job of N
// completions, N in parallel, whose QUANTKIT_SHARD_COUNT is N, so that
// --shard auto in pod K is part K of N (quantize.ResolveShard on the
// pod's environment); merge-job.yaml merges the directory the parts are
// written to, from the same ReadWriteMany claim.
func TestKubernetesManifests(t *testing.T) {
	var pvc claim
	var q, m job
	decode(t, "volume.yaml", &pvc)
	decode(t, "quantize-job.yaml", &q)
	decode(t, "merge-job.yaml", &m)

	if pvc.APIVersion != "v1" || pvc.Kind != "PersistentVolumeClaim" || pvc.Metadata.Name == "" ||
		!slices.Equal(pvc.Spec.AccessModes, []string{"ReadWriteMany"}) || pvc.Spec.Resources.Requests["storage"] == "" {
		t.Errorf("volume.yaml: %+v, want a ReadWriteMany PersistentVolumeClaim with a size", pvc)
	}
	for _, j := range []job{q, m} {
		if j.APIVersion != "batch/v1" || j.Kind != "Job" || j.Metadata.Name == "" {
			t.Errorf("%s: %s %s, want a batch/v1 Job", j.Metadata.Name, j.APIVersion, j.Kind)
		}
		if p := j.Spec.Template.Spec; p.RestartPolicy != "Never" || len(p.Containers) != 1 || p.Containers[0].Image == "" {
			t.Errorf("%s: restartPolicy %q, %d containers, want Never (a failed pod is a new pod) and one container with an image",
				j.Metadata.Name, p.RestartPolicy, len(p.Containers))
		}
		for k, v := range j.Metadata.Labels {
			if j.Spec.Template.Metadata.Labels[k] != v {
				t.Errorf("%s: the pods lack the Job's label %s=%s", j.Metadata.Name, k, v)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	s := q.Spec
	c := s.Template.Spec.Containers[0]
	count := c.env(quantize.EnvShardCount).Value
	n, err := strconv.Atoi(count)
	switch {
	case s.CompletionMode != "Indexed":
		t.Errorf("quantize-job.yaml: completionMode %q, want Indexed (JOB_COMPLETION_INDEX in each pod)", s.CompletionMode)
	case s.Completions == nil || s.Parallelism == nil || *s.Completions != *s.Parallelism:
		t.Errorf("quantize-job.yaml: completions %s, parallelism %s, want them equal", show(s.Completions), show(s.Parallelism))
	case err != nil || n != *s.Completions:
		t.Errorf("quantize-job.yaml: %s=%q, want completions, %d", quantize.EnvShardCount, count, *s.Completions)
	case s.BackoffLimitPerIndex == nil || *s.BackoffLimitPerIndex < 1:
		t.Errorf("quantize-job.yaml: backoffLimitPerIndex %s, want a failed index retried alone", show(s.BackoffLimitPerIndex))
	}
	if t.Failed() {
		t.FailNow()
	}
	for k := range n {
		env := map[string]string{quantize.EnvK8sIndex: strconv.Itoa(k), quantize.EnvShardCount: count}
		sh, _, err := quantize.ResolveShard("auto", func(k string) string { return env[k] })
		if err != nil || sh.Index != k || sh.Count != n {
			t.Errorf("pod %d: --shard auto is %+v, %v; want part %d/%d", k, sh, err, k, n)
		}
	}
	if cpus := c.env("CPUS").ValueFrom.ResourceFieldRef; cpus.Resource != "requests.cpu" || cpus.Divisor != "1" || c.Resources.Requests["cpu"] == "" {
		t.Errorf("quantize-job.yaml: CPUS from %+v, cpu request %q; want whole CPUs of the request", cpus, c.Resources.Requests["cpu"])
	}
	data := s.Template.Spec.mount(t, c, pvc.Metadata.Name)
	if got := m.Spec.Template.Spec.mount(t, m.Spec.Template.Spec.Containers[0], pvc.Metadata.Name); got != data {
		t.Errorf("the merge Job mounts the volume at %s, the quantize Job at %s", got, data)
	}
	if m.Spec.CompletionMode == "Indexed" || (m.Spec.Completions != nil && *m.Spec.Completions != 1) {
		t.Errorf("merge-job.yaml: %s, %s completions; want one pod", m.Spec.CompletionMode, show(m.Spec.Completions))
	}
	if want := []string{"quantkit", "merge", data + "/parts", "-o", data + "/out"}; !slices.Equal(m.Spec.Template.Spec.Containers[0].Command, want) {
		t.Errorf("merge-job.yaml runs %q, want %q", m.Spec.Template.Spec.Containers[0].Command, want)
	}

	// The quantize pod's script, run by sh with a stand-in quantkit that
	// prints its arguments, the volume a temporary directory.
	if !slices.Equal(c.Command, []string{"sh", "-c"}) || len(c.Args) != 1 {
		t.Fatalf("quantize-job.yaml: command %q, args %q; want sh -c SCRIPT", c.Command, c.Args)
	}
	dir := t.TempDir()
	script := strings.ReplaceAll(c.Args[0], data+"/", dir+"/")
	bin := standIn(t, "quantkit")
	run := func(k int) string {
		t.Helper()
		cmd := exec.Command("sh", "-c", script)
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "JOB_COMPLETION_INDEX="+strconv.Itoa(k),
			quantize.EnvShardCount+"="+count, "CPUS=4")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("pod %d: %v\n%s", k, err, out)
		}
		return string(out)
	}
	if got, want := run(1), "quantkit quantize "+dir+"/in -o "+dir+"/parts --shard auto --workers 4"; !strings.HasPrefix(got, want) {
		t.Errorf("pod 1 runs %q, want %q…", got, want)
	}
	// A part that is there (its part.json written last, atomically) is
	// not quantized again: a Job applied again quantizes only the others.
	part := filepath.Join(dir, "parts", "part-1-of-"+count)
	if err := os.MkdirAll(part, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(part, "part.json"), []byte("{}"), 0o666); err != nil {
		t.Fatal(err)
	}
	if got := run(1); strings.Contains(got, "quantkit quantize") || !strings.Contains(got, "there already") {
		t.Errorf("pod 1, its part there: %q, want no quantize", got)
	}
	if got := run(2); !strings.Contains(got, "quantkit quantize") {
		t.Errorf("pod 2, part 1 there: %q, want a quantize", got)
	}
}

// standIn makes a directory holding an executable name that prints its
// name and arguments, one line, and, for sbatch, a job ID (100, 101, …).
func standIn(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range names {
		script := "#!/bin/sh\necho \"" + name + " $*\"\n"
		if name == "sbatch" {
			script = "#!/bin/sh\necho \"sbatch $*\" >>\"$SBATCH_LOG\"\n" +
				"n=$(wc -l <\"$SBATCH_LOG\")\necho $((99 + n))\n"
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o777); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// show is *p, or "absent".
func show(p *int) string {
	if p == nil {
		return "absent"
	}
	return strconv.Itoa(*p)
}

// TestSlurmScripts runs deploy/slurm's scripts against stand-ins for
// sbatch and quantkit: submit.sh submits the array of N tasks with
// QUANTKIT_SHARD_COUNT=N and the merge after it (afterok, cancelled if a
// task fails), or only the tasks -k names; each task runs quantize
// --shard auto on its CPUs, the merge job merge. The real engine runs
// them in scripts/integration/slurm.sh.
func TestSlurmScripts(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	bin := standIn(t, "sbatch", "quantkit")
	here, err := filepath.Abs("slurm")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	run := func(env []string, script string, args ...string) (string, string, error) {
		t.Helper()
		cmd := exec.Command("bash", append([]string{filepath.Join(here, script)}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), append([]string{"PATH=" + bin + ":" + os.Getenv("PATH"), "QUANTKIT=", "SBATCH_LOG=" + filepath.Join(dir, "sbatch.log")}, env...)...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		return out.String(), errOut.String(), err
	}
	sbatchLog := func() []string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, "sbatch.log"))
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dir, "sbatch.log"))
		return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	in, parts, out := filepath.Join(dir, "in"), filepath.Join(dir, "parts"), filepath.Join(dir, "out")

	stdout, stderr, err := run(nil, "submit.sh", "-n", "4", "-s", "--partition=cpu", "in", "parts", "out", "--scheme", "int4")
	if err != nil || stdout != "100 101\n" {
		t.Fatalf("submit.sh: %q, %v\n%s", stdout, err, stderr)
	}
	want := []string{
		"sbatch --parsable --array=0-3 --export=ALL,QUANTKIT_SHARD_COUNT=4 --partition=cpu " + here + "/quantize.sbatch " + in + " " + parts + " --scheme int4",
		"sbatch --parsable --dependency=afterok:100 --kill-on-invalid-dep=yes --partition=cpu " + here + "/merge.sbatch " + parts + " " + out,
	}
	if got := sbatchLog(); !slices.Equal(got, want) {
		t.Errorf("submit.sh ran\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(stderr, "-n 4 -k K -s --partition=cpu "+in+" "+parts+" "+out+" --scheme int4") {
		t.Errorf("submit.sh does not say how to rerun a task:\n%s", stderr)
	}
	if _, stderr, err := run(nil, "submit.sh", "-n", "4", "-k", "1,3", "in", "parts", "out"); err != nil {
		t.Fatalf("submit.sh -k 1,3: %v\n%s", err, stderr)
	}
	if got := sbatchLog(); len(got) != 2 || !strings.HasPrefix(got[0], "sbatch --parsable --array=1,3 --export=ALL,QUANTKIT_SHARD_COUNT=4 ") ||
		!strings.Contains(got[1], "--dependency=afterok:100 ") {
		t.Errorf("submit.sh -k 1,3 ran %q", got)
	}
	for _, args := range [][]string{{"-n", "0", "a", "b", "c"}, {"-n", "x", "a", "b", "c"}, {"-n", "4", "-k", "4", "a", "b", "c"}, {"-n", "4", "-k", "1-2", "a", "b", "c"}, {"-n", "4", "a", "b"}} {
		if _, stderr, err := run(nil, "submit.sh", args...); err == nil || !strings.Contains(stderr, "submit.sh") && !strings.Contains(stderr, "-n N") {
			t.Errorf("submit.sh %q: %v, %q; want a refusal", args, err, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "sbatch.log")); err == nil {
		t.Errorf("a refused submit.sh ran sbatch: %q", sbatchLog())
	}

	task := []string{"QUANTKIT=" + bin + "/quantkit", "SLURM_ARRAY_TASK_ID=2", "SLURM_CPUS_PER_TASK=3"}
	if stdout, stderr, err := run(task, "quantize.sbatch", in, parts, "--scheme", "int4"); err != nil || stdout != "quantkit quantize "+in+" -o "+parts+" --shard auto --workers 3 --scheme int4\n" {
		t.Errorf("quantize.sbatch: %q, %v\n%s", stdout, err, stderr)
	}
	if stdout, _, err := run(task[:2], "quantize.sbatch", in, parts); err != nil || stdout != "quantkit quantize "+in+" -o "+parts+" --shard auto\n" {
		t.Errorf("quantize.sbatch without SLURM_CPUS_PER_TASK: %q, %v", stdout, err)
	}
	if stdout, stderr, err := run(task, "merge.sbatch", parts, out, "--force"); err != nil || stdout != "quantkit merge "+parts+" -o "+out+" --force\n" {
		t.Errorf("merge.sbatch: %q, %v\n%s", stdout, err, stderr)
	}
	for _, script := range []string{"quantize.sbatch", "merge.sbatch"} {
		if _, stderr, err := run(task, script, "x"); err == nil || !strings.Contains(stderr, "usage") {
			t.Errorf("%s with one argument: %v, %q; want its usage", script, err, stderr)
		}
	}
}
