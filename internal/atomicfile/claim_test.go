package atomicfile

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func mustWrite(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// onlyEntries fails unless dir holds exactly names (no temporaries).
func onlyEntries(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Fatalf("%s holds %v, want %v", dir, got, names)
	}
}

// newDirOutput writes a finished output directory for c, holding one file.
func newDirOutput(t *testing.T, c *Claim, data string) *Dir {
	t.Helper()
	d, err := TempDir(c)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(d.Path, "model.safetensors"), data)
	return d
}

// A directory made at OUT while a run writes is never removed: without
// permission to replace, the run fails and the directory keeps its files.
func TestDirCommitNeverRemovesWhatAppeared(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "out")
	c, err := NewClaim(out, false)
	if err != nil {
		t.Fatal(err)
	}
	d := newDirOutput(t, c, "new")
	mustWrite(t, filepath.Join(out, "precious.txt"), "notes")
	if err := d.Commit(); !errors.Is(err, ErrExists) {
		t.Fatalf("commit over a directory made during the run: %v, want ErrExists", err)
	}
	if got := mustRead(t, filepath.Join(out, "precious.txt")); got != "notes" {
		t.Fatalf("precious.txt = %q", got)
	}
	onlyEntries(t, root, "out")
	onlyEntries(t, out, "precious.txt")
}

// Two runs to one OUT: the second to finish fails, the first's output stays.
func TestTwoRunsOneOutput(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "out")
	c1, _ := NewClaim(out, false)
	c2, _ := NewClaim(out, false)
	d1, d2 := newDirOutput(t, c1, "first"), newDirOutput(t, c2, "second")
	if err := d1.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := d2.Commit(); !errors.Is(err, ErrExists) {
		t.Fatalf("second commit: %v, want ErrExists", err)
	}
	if got := mustRead(t, filepath.Join(out, "model.safetensors")); got != "first" {
		t.Fatalf("out holds %q, want the first run's", got)
	}
	onlyEntries(t, root, "out")
}

// With replace, what was there at the start is replaced; what replaced it
// during the run is not.
func TestReplaceOnlyWhatExistedAtStart(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "out")
	mustWrite(t, filepath.Join(out, "model.safetensors"), "old")
	c, err := NewClaim(out, true)
	if err != nil || !c.Existed() {
		t.Fatalf("claim: %v %v", c, err)
	}
	d := newDirOutput(t, c, "new")
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, filepath.Join(out, "model.safetensors")); got != "new" {
		t.Fatalf("out holds %q", got)
	}
	onlyEntries(t, root, "out")

	c, _ = NewClaim(out, true)
	d = newDirOutput(t, c, "newer")
	// Someone moves OUT away and puts their own directory there.
	if err := os.Rename(out, filepath.Join(root, "moved")); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(out, "precious.txt"), "notes")
	if err := d.Commit(); !errors.Is(err, ErrChanged) {
		t.Fatalf("commit over a replaced OUT: %v, want ErrChanged", err)
	}
	onlyEntries(t, out, "precious.txt")
	onlyEntries(t, root, "moved", "out")
}

// An empty directory at OUT may be taken without replace; one that got
// files during the run may not.
func TestEmptyDirectoryOutput(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "out")
	os.Mkdir(out, 0o755)
	c, err := NewClaim(out, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := newDirOutput(t, c, "x").Commit(); err != nil {
		t.Fatal(err)
	}
	onlyEntries(t, out, "model.safetensors")
	if _, err := NewClaim(out, false); !errors.Is(err, ErrExists) {
		t.Fatalf("claim of a full directory without replace: %v", err)
	}
	os.RemoveAll(out)
	os.Mkdir(out, 0o755)
	c, _ = NewClaim(out, false)
	d := newDirOutput(t, c, "y")
	mustWrite(t, filepath.Join(out, "precious.txt"), "notes")
	if err := d.Commit(); err == nil {
		t.Fatal("replaced a directory that got a file during the run")
	}
	onlyEntries(t, out, "precious.txt")
	onlyEntries(t, root, "out")
}

// The same rules for a single-file output.
func TestFileCommitWithClaim(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "m.gguf")
	c, _ := NewClaim(out, false)
	f, err := CreateFor(c)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("new")
	mustWrite(t, out, "precious")
	if err := f.Commit(); !errors.Is(err, ErrExists) {
		t.Fatalf("commit over a file made during the run: %v", err)
	}
	if got := mustRead(t, out); got != "precious" {
		t.Fatalf("out = %q", got)
	}
	onlyEntries(t, root, "m.gguf")

	os.Chmod(out, 0o640)
	c, _ = NewClaim(out, true)
	f, _ = CreateFor(c)
	f.WriteString("new")
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(out)
	if got := mustRead(t, out); got != "new" || fi.Mode().Perm() != 0o640 {
		t.Fatalf("out = %q, mode %v; want new, 0640 kept", got, fi.Mode())
	}
	onlyEntries(t, root, "m.gguf")
}

// An input at OUT or inside it is reported, through symbolic links too.
func TestClaimHolds(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "out")
	in := filepath.Join(out, "sub", "model.safetensors")
	mustWrite(t, in, "x")
	os.Symlink(filepath.Join(out, "sub"), filepath.Join(root, "link"))
	mustWrite(t, filepath.Join(root, "other", "m"), "y")
	c, _ := NewClaim(out, true)
	for _, p := range []string{out, in, filepath.Join(out, "sub"), filepath.Join(root, "link", "model.safetensors"), out + "/./sub/../sub"} {
		if !c.Holds(p) {
			t.Errorf("Holds(%s) = false", p)
		}
	}
	for _, p := range []string{root, filepath.Join(root, "other", "m")} {
		if c.Holds(p) {
			t.Errorf("Holds(%s) = true", p)
		}
	}
	c, _ = NewClaim(filepath.Join(root, "absent"), true)
	if c.Holds(in) {
		t.Error("an absent OUT holds an input")
	}
}

// deadPID is the PID of a process that has exited.
func deadPID(t *testing.T) int {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip(err)
	}
	return cmd.Process.Pid
}

// Temporaries of processes that are gone are removed by the next claim;
// those of a running process, or locked, stay.
func TestStaleTemporaries(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "out")
	dead := filepath.Join(root, ".out.tmp-"+strconv.Itoa(deadPID(t))+"-123")
	mine := filepath.Join(root, ".out.tmp-"+strconv.Itoa(os.Getpid())+"-456")
	legacy := filepath.Join(root, ".out.tmp-789")
	locked := filepath.Join(root, ".out.tmp-999999999-1")
	other := filepath.Join(root, ".other.tmp-1-1")
	for _, d := range []string{dead, mine, legacy, locked, other} {
		mustWrite(t, filepath.Join(d, "shard"), "data")
	}
	lf, err := os.Open(locked)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	lock(lf)
	c, err := NewClaim(out, false)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Stale, ",") != dead+","+legacy && strings.Join(c.Stale, ",") != legacy+","+dead {
		t.Fatalf("removed %v, want %s and %s", c.Stale, dead, legacy)
	}
	onlyEntries(t, root, filepath.Base(other), filepath.Base(mine), filepath.Base(locked))
}

// Outputs get 0666/0777 less the umask, as os.Create and os.Mkdir give.
func TestPermissionsFollowUmask(t *testing.T) {
	root := t.TempDir()
	c, _ := NewClaim(filepath.Join(root, "out"), false)
	d := newDirOutput(t, c, "x")
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(root, "out"))
	if fi.Mode().Perm() != 0o777&^umask {
		t.Errorf("directory mode %v, want %v", fi.Mode().Perm(), 0o777&^umask)
	}
	p := filepath.Join(root, "f")
	f, _ := Create(p)
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	fi, _ = os.Stat(p)
	if fi.Mode().Perm() != 0o666&^umask {
		t.Errorf("file mode %v, want %v", fi.Mode().Perm(), 0o666&^umask)
	}
}

// Cleanup removes every open temporary and refuses new ones (run in a
// child process: it ends the package's ability to write).
func TestCleanup(t *testing.T) {
	if dir := os.Getenv("ATOMICFILE_CLEANUP_DIR"); dir != "" {
		c, _ := NewClaim(filepath.Join(dir, "out"), false)
		d, _ := TempDir(c)
		f, _ := Create(filepath.Join(d.Path, "shard"))
		f.WriteString("x")
		g, _ := Create(filepath.Join(dir, "report.json"))
		if len(Live()) != 3 {
			t.Fatalf("live %v", Live())
		}
		if got := Cleanup(); len(got) != 3 {
			t.Fatalf("Cleanup removed %v", got)
		}
		if _, err := Create(filepath.Join(dir, "late")); err == nil {
			t.Fatal("Create after Cleanup succeeded")
		}
		g.Abort()
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCleanup$")
	cmd.Env = append(os.Environ(), "ATOMICFILE_CLEANUP_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	onlyEntries(t, dir)
}

// The fallback for filesystems without renameat2's flags keeps the rule.
func TestPortableNoReplace(t *testing.T) {
	root := t.TempDir()
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	mustWrite(t, a, "new")
	mustWrite(t, b, "precious")
	if err := portableNoReplace(a, b); !errors.Is(err, ErrExists) {
		t.Fatalf("file over file: %v", err)
	}
	os.Mkdir(filepath.Join(root, "d"), 0o755)
	if err := portableNoReplace(filepath.Join(root, "d"), b); !errors.Is(err, ErrExists) {
		t.Fatalf("directory over file: %v", err)
	}
	if err := portableNoReplace(a, filepath.Join(root, "c")); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, b); got != "precious" {
		t.Fatal(got)
	}
	onlyEntries(t, root, "b", "c", "d")
}

// A side output's temporary left by a killed process goes when the file
// is next written.
func TestCreateRemovesStaleTemporaries(t *testing.T) {
	root := t.TempDir()
	dead := filepath.Join(root, ".r.json.tmp-"+strconv.Itoa(deadPID(t))+"-1")
	mustWrite(t, dead, "half")
	if err := WriteFile(filepath.Join(root, "r.json"), []byte("{}"), 0o666); err != nil {
		t.Fatal(err)
	}
	onlyEntries(t, root, "r.json")
}
