package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quantkit/quantkit/internal/inputerr"
)

// treeSum is a digest of every file under root (names, modes and
// contents), to check that a run left an input or a bystander untouched.
func treeSum(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		line := rel + " " + d.Type().String()
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			line += " " + hex.EncodeToString(h[:8])
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// entries lists dir's names.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// writers are the commands that write a checkpoint, each as a function of
// the output path, with the inputs they need made once.
func writers(t *testing.T) map[string]func(out string) []string {
	in := synthModel(t)
	q := filepath.Join(t.TempDir(), "q")
	mustRun(t, "quantize", in, "-o", q)
	parts := filepath.Join(t.TempDir(), "parts")
	mustRun(t, "quantize", in, "-o", parts, "--shard", "0/2")
	mustRun(t, "quantize", in, "-o", parts, "--shard", "1/2")
	return map[string]func(string) []string{
		"quantize": func(out string) []string { return []string{"quantize", in, "-o", out} },
		"quantize-gguf": func(out string) []string {
			return []string{"quantize", in, "-o", out, "--format", "gguf", "--type", "Q8_0"}
		},
		"dequantize": func(out string) []string { return []string{"dequantize", q, "-o", out} },
		"merge":      func(out string) []string { return []string{"merge", parts, "-o", out} },
		"gen":        func(out string) []string { return []string{"gen", "--params", "1M", "-o", out} },
	}
}

func withWriteHook(t *testing.T, hook func(out string)) {
	writeHook = hook
	t.Cleanup(func() { writeHook = nil })
}

// onFirstWrite runs f once, after the first tensor the next run writes.
func onFirstWrite(t *testing.T, f func()) {
	var once sync.Once
	withWriteHook(t, func(string) { once.Do(f) })
}

// Something made at OUT while a run writes is never removed or replaced:
// the run fails saying so, and what appeared keeps its contents.
func TestOutputAppearingDuringRunIsKept(t *testing.T) {
	for name, args := range writers(t) {
		root := t.TempDir()
		out := filepath.Join(root, "out")
		onFirstWrite(t, func() {
			if name == "quantize-gguf" {
				os.WriteFile(out, []byte("notes"), 0o644)
			} else {
				os.Mkdir(out, 0o755)
				os.WriteFile(filepath.Join(out, "precious.txt"), []byte("notes"), 0o644)
			}
		})
		msg, err := run(t, args(out)...)
		if err == nil || !strings.Contains(err.Error(), out+" appeared during the run and was left as it is") {
			t.Errorf("%s: error %v, want one saying %s appeared\n%s", name, err, out, msg)
		}
		precious := filepath.Join(out, "precious.txt")
		if name == "quantize-gguf" {
			precious = out
		}
		if b, err := os.ReadFile(precious); err != nil || string(b) != "notes" {
			t.Errorf("%s: %s is %q, %v; want the notes kept", name, precious, b, err)
		}
		if got := entries(t, root); len(got) != 1 {
			t.Errorf("%s: %s holds %v, want only out", name, root, got)
		}
	}
}

// With --force, what was at OUT at the start is replaced, and nothing that
// took its place during the run.
func TestForceReplacesOnlyWhatExistedAtStart(t *testing.T) {
	for name, args := range writers(t) {
		root := t.TempDir()
		out := filepath.Join(root, "out")
		mustRun(t, args(out)...)
		mustRun(t, append(args(out), "--force")...) // replaces the first
		onFirstWrite(t, func() {
			os.Rename(out, filepath.Join(root, "moved"))
			os.WriteFile(out, []byte("notes"), 0o644)
		})
		msg, err := run(t, append(args(out), "--force")...)
		if err == nil || !strings.Contains(err.Error(), out+" was replaced by something else during the run") {
			t.Errorf("%s: error %v, want one saying %s was replaced\n%s", name, err, out, msg)
		}
		if b, err := os.ReadFile(out); err != nil || string(b) != "notes" {
			t.Errorf("%s: %s is %q, %v; want the notes kept", name, out, b, err)
		}
		if got := strings.Join(entries(t, root), ","); got != "moved,out" {
			t.Errorf("%s: %s holds %v", name, root, got)
		}
		writeHook = nil
	}
}

// Two runs to one OUT: the second to finish fails and the first's output
// stays whole.
func TestTwoRunsOneOutput(t *testing.T) {
	w := writers(t)
	root := t.TempDir()
	out := filepath.Join(root, "out")
	other := filepath.Join(t.TempDir(), "other")
	mustRun(t, w["quantize"](other)...)
	want := treeSum(t, other)
	onFirstWrite(t, func() {
		writeHook = nil
		mustRun(t, w["quantize"](out)...) // finishes first
	})
	if _, err := run(t, w["quantize"](out)...); err == nil || !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second run to one output: %v", err)
	}
	if got := treeSum(t, out); got != want {
		t.Fatalf("the first run's output changed:\n%s\nwant\n%s", got, want)
	}
	if got := entries(t, root); len(got) != 1 {
		t.Fatalf("%s holds %v", root, got)
	}
}

// OUT equal to IN, or holding it, is refused even with --force, and the
// input stays as it was.
func TestOutputIsInputRefused(t *testing.T) {
	in := synthModel(t)
	q := filepath.Join(t.TempDir(), "q")
	mustRun(t, "quantize", in, "-o", q)
	parts := filepath.Join(t.TempDir(), "parts")
	mustRun(t, "quantize", in, "-o", parts, "--shard", "0/2")
	mustRun(t, "quantize", in, "-o", parts, "--shard", "1/2")
	os.Symlink(in, filepath.Join(t.TempDir(), "link"))
	link := filepath.Join(filepath.Dir(in), "..", "in-link")
	os.Symlink(in, link)
	sums := map[string]string{in: treeSum(t, in), q: treeSum(t, q), parts: treeSum(t, parts)}
	for _, args := range [][]string{
		{"quantize", in, "-o", in, "--force"},
		{"quantize", filepath.Join(in, "model.safetensors"), "-o", in, "--force"},
		{"quantize", in, "-o", filepath.Dir(in), "--force"},
		{"quantize", link, "-o", in, "--force"},
		{"quantize", in, "-o", filepath.Join(in, "model.safetensors"), "--format", "gguf-q8_0", "--force"},
		{"dequantize", q, "-o", q, "--force"},
		{"merge", parts, "-o", parts, "--force"},
		{"merge", filepath.Join(parts, "part-0-of-2"), filepath.Join(parts, "part-1-of-2"), "-o", filepath.Join(parts, "part-1-of-2"), "--force"},
	} {
		msg, err := run(t, args...)
		if err == nil || !strings.Contains(err.Error(), "replacing it would destroy the input") || !errors.Is(err, inputerr.ErrInput) {
			t.Errorf("%v: error %v, want a refusal\n%s", args, err, msg)
		}
	}
	for dir, want := range sums {
		if got := treeSum(t, dir); got != want {
			t.Errorf("%s changed:\n%s\nwant\n%s", dir, got, want)
		}
	}
}

// quantkitProcess starts the test binary as quantkit with args, each
// tensor written slowed down by slow.
func quantkitProcess(t *testing.T, slow time.Duration, umask string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	if umask != "" {
		cmd = exec.Command("sh", append([]string{"-c", `umask "$1"; shift; exec "$@"`, "sh", umask, os.Args[0]}, args...)...)
	}
	cmd.Env = append(os.Environ(), "QUANTKIT_TEST_MAIN=1", "QUANTKIT_TEST_SLOW="+slow.String())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

// waitForTemp waits until dir holds a temporary of out (the run has begun
// writing) and returns its name.
func waitForTemp(t *testing.T, dir, out string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range entries(t, dir) {
			if strings.HasPrefix(n, "."+filepath.Base(out)+".tmp-") {
				return n
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no temporary of %s appeared in %s", out, dir)
	return ""
}

// SIGINT and SIGTERM stop every writing command with 130 and 143, one
// line, and nothing left behind.
func TestInterruptLeavesNothing(t *testing.T) {
	w := writers(t)
	for _, name := range []string{"quantize", "quantize-gguf", "dequantize", "merge", "gen"} {
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
			root := t.TempDir()
			out := filepath.Join(root, "out")
			cmd, msg := quantkitProcess(t, 50*time.Millisecond, "", w[name](out)...)
			waitForTemp(t, root, out)
			time.Sleep(60 * time.Millisecond)
			cmd.Process.Signal(sig)
			err := cmd.Wait()
			code := 128 + int(sig)
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != code {
				t.Errorf("%s, %v: %v, want exit status %d\n%s", name, sig, err, code, msg)
			}
			if lines := strings.Split(strings.TrimSpace(msg.String()), "\n"); len(lines) != 1 ||
				!strings.HasPrefix(lines[0], "quantkit: ") || !strings.Contains(lines[0], "unfinished output") {
				t.Errorf("%s, %v: printed %q, want one line saying what became of the output", name, sig, msg)
			}
			if got := entries(t, root); len(got) != 0 {
				t.Errorf("%s, %v: left %v", name, sig, got)
			}
		}
	}
}

// After SIGKILL the temporary stays; the next run to that output removes
// it, says so, and succeeds.
func TestKilledRunCleanedUpByNext(t *testing.T) {
	w := writers(t)
	for _, name := range []string{"quantize", "quantize-gguf", "gen"} {
		root := t.TempDir()
		out := filepath.Join(root, "out")
		cmd, _ := quantkitProcess(t, 50*time.Millisecond, "", w[name](out)...)
		tmp := waitForTemp(t, root, out)
		cmd.Process.Kill()
		cmd.Wait()
		if got := entries(t, root); len(got) != 1 || got[0] != tmp {
			t.Fatalf("%s: after SIGKILL %s holds %v, want %s", name, root, got, tmp)
		}
		msg := mustRun(t, w[name](out)...)
		if !strings.Contains(msg, "removed "+filepath.Join(root, tmp)+", the unfinished output of a run that was killed") {
			t.Errorf("%s: the rerun did not say it removed %s:\n%s", name, tmp, msg)
		}
		if got := entries(t, root); len(got) != 1 || got[0] != "out" {
			t.Errorf("%s: after the rerun %s holds %v", name, root, got)
		}
	}
}

// Outputs are created 0777/0666 less the umask, as any program's.
func TestOutputModesFollowUmask(t *testing.T) {
	w := writers(t)
	for _, tc := range []struct {
		umask     string
		dir, file os.FileMode
	}{{"022", 0o755, 0o644}, {"027", 0o750, 0o640}, {"002", 0o775, 0o664}} {
		for _, name := range []string{"quantize", "quantize-gguf", "dequantize", "gen"} {
			root := t.TempDir()
			out := filepath.Join(root, "out")
			cmd, msg := quantkitProcess(t, 0, tc.umask, w[name](out)...)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("%s: %v\n%s", name, err, msg)
			}
			filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
				fi, _ := d.Info()
				want := tc.file
				if d.IsDir() {
					want = tc.dir
				}
				if fi.Mode().Perm() != want {
					t.Errorf("umask %s, %s: %s has mode %v, want %v", tc.umask, name, p, fi.Mode().Perm(), want)
				}
				return nil
			})
		}
	}
}

// gen checks the space first like quantize, and splits at 5 GB by default
// as Hugging Face does.
func TestGenChecksSpace(t *testing.T) {
	withFreeBytes(t, func(string) (int64, bool) { return 1000, true })
	dir := t.TempDir()
	out := filepath.Join(dir, "g")
	msg, err := run(t, "gen", "--params", "1M", "-o", out)
	if err == nil || !strings.Contains(err.Error(), out+": not enough space: the output needs 4.07 MB, 1 kB is free") {
		t.Errorf("gen on a full disk: %v\n%s", err, msg)
	}
	emptyDir(t, dir)
	if genShardFlag.Value != "5GB" {
		t.Errorf("gen --shard-size defaults to %q, want 5GB", genShardFlag.Value)
	}
}

// An input truncated or rewritten during a run ends it with an error
// naming the file, not a crash (SIGBUS from the memory map), and leaves
// nothing behind.
func TestInputChangedDuringRun(t *testing.T) {
	for _, name := range []string{"quantize", "quantize-gguf", "dequantize", "merge"} {
		for _, how := range []string{"truncate", "rewrite"} {
			w := writers(t)
			args := w[name]("")
			src := args[1] // the input checkpoint or parts directory
			var shard string
			filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
				if shard == "" && strings.HasSuffix(p, ".safetensors") {
					shard = p
				}
				return nil
			})
			root := t.TempDir()
			out := filepath.Join(root, "out")
			onFirstWrite(t, func() {
				if how == "truncate" {
					os.Truncate(shard, 4096)
					return
				}
				// The same size, other bytes, a later modification time.
				b, _ := os.ReadFile(shard)
				os.WriteFile(shard, b, 0o644)
				later := time.Now().Add(time.Second)
				os.Chtimes(shard, later, later)
			})
			msg, err := run(t, w[name](out)...)
			if err == nil || !strings.Contains(err.Error(), shard+" changed or was truncated while reading") {
				t.Errorf("%s, %s: error %v, want one naming %s\n%s", name, how, err, shard, msg)
			}
			if got := entries(t, root); len(got) != 0 {
				t.Errorf("%s, %s: left %v", name, how, got)
			}
			writeHook = nil
		}
	}
}

// --json-out FILE: a path that cannot be written is refused before any
// work; one that fails at the end still leaves the summary printed.
func TestQuantizeJSONPath(t *testing.T) {
	in := synthModel(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "q")
	for _, bad := range []string{filepath.Join(dir, "nodir", "r.json"), dir} {
		msg, err := run(t, "quantize", in, "-o", out, "--json-out", bad)
		if err == nil || !strings.Contains(err.Error(), "--json-out "+bad) || !errors.Is(err, inputerr.ErrInput) {
			t.Errorf("--json-out %s: error %v\n%s", bad, err, msg)
		}
		emptyDir(t, dir)
	}
	side := filepath.Join(t.TempDir(), "reports")
	os.Mkdir(side, 0o755)
	withWriteHook(t, func(string) { os.RemoveAll(side) })
	msg, err := run(t, "quantize", in, "-o", out, "--json-out", filepath.Join(side, "r.json"))
	if err == nil || !strings.Contains(err.Error(), "--json-out") || !strings.Contains(msg, "SQNR: min") {
		t.Errorf("--json-out failing at the end: error %v, want it with the summary printed\n%s", err, msg)
	}
	if _, err := os.Stat(filepath.Join(out, "model.safetensors")); err != nil {
		t.Errorf("the checkpoint was not kept: %v", err)
	}
}

// bench checkpoint's scratch directory (gigabytes for its default input)
// goes with Ctrl-C too, even on the forced way out (no grace: quantkit
// exits at once, the command's own clean-up never runs).
func TestBenchCheckpointInterrupted(t *testing.T) {
	t.Setenv("QUANTKIT_TEST_GRACE", "0")
	in := synthModel(t)
	work := t.TempDir()
	cmd, msg := quantkitProcess(t, 50*time.Millisecond, "", "bench", "checkpoint", "--input", in, "--workdir", work, "--rounds", "3")
	deadline := time.Now().Add(20 * time.Second)
	for len(entries(t, work)) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Errorf("%v, want exit status 130\n%s", err, msg)
	}
	if got := entries(t, work); len(got) != 0 {
		t.Errorf("left %v in the work directory\n%s", got, msg)
	}
}
