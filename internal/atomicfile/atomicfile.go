// Package atomicfile writes files and directories so that a reader sees
// either what was there before or the complete new output, never a
// half-written one, and so that nothing is replaced that the caller was
// not told to replace.
//
// Data goes to a temporary beside its destination, named
// ".NAME.tmp-PID-RANDOM" and locked (flock) while it is written, which is
// synced and moved into place only on success. A Claim, taken at the start
// of a run, records what the destination held then: the final move goes
// only into an absent name (renameat2 RENAME_NOREPLACE on Linux), or, when
// the caller may replace the destination (--force), it swaps in the new
// output only while the destination is still what the Claim saw
// (RENAME_EXCHANGE, then a check), and removes the old one after. What
// appeared at the destination during the run is never removed.
//
// Temporaries of a process that was killed are found by the next Claim or
// Create for the same destination (their process is gone and their lock is
// free) and removed. Cleanup removes this process's own, for a signal handler.
// Files and directories are created with the permissions of os.Create and
// os.Mkdir: 0666 and 0777 less the umask.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// File is a temporary file beside its destination, which it replaces on
// Commit. Errors from its methods name the temporary file; callers add the
// destination's context.
type File struct {
	*os.File
	path  string
	claim *Claim // nil: Commit replaces whatever is at path
	done  bool
	// written counts the bytes of Write, started those already handed to
	// the disk by startWriteback.
	written, started int64
}

// writeBehind is how many bytes Write lets accumulate before it asks the
// kernel to start writing them out. Without it a multi-gigabyte output
// sits in the page cache until Commit's sync, which then writes all of it
// while nothing else runs; with it, the disk works while the data is
// still being computed, and the final sync has little left to do.
const writeBehind = 32 << 20

// Write is os.File's Write, for sequential writers (bufio over a File),
// starting the disk's writeback of every writeBehind bytes as they pass.
func (f *File) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.written += int64(n)
	if f.written-f.started >= writeBehind {
		startWriteback(f.File, f.started, f.written-f.started)
		f.started = f.written
	}
	return n, err
}

// tempPrefix is the name prefix of this process's temporaries for the
// destination base name: ".base.tmp-PID-".
func tempPrefix(base string) string {
	return "." + base + ".tmp-" + strconv.Itoa(os.Getpid()) + "-"
}

// Create starts a temporary file that Commit renames to path, replacing
// whatever file is there then. It keeps the permissions of an existing
// file at path (0666 less the umask otherwise) and refuses to replace
// anything but a regular file. It is for side outputs (reports, caches),
// which replace an earlier version as a shell redirection does; outputs
// that must not replace anything unasked use CreateFor.
func Create(path string) (*File, error) {
	perm := 0o666 &^ umask
	if fi, err := os.Stat(path); err == nil {
		if !fi.Mode().IsRegular() {
			return nil, errors.New("not a regular file")
		}
		perm = fi.Mode().Perm()
	}
	return create(path, perm, nil)
}

// CreateFor starts a temporary file that Commit moves to c's path as
// c.Install does. The permissions are those of the file c replaces, or
// 0666 less the umask.
func CreateFor(c *Claim) (*File, error) {
	perm := 0o666 &^ umask
	if c.prev != nil {
		if !c.prev.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file", c.Path)
		}
		perm = c.prev.Mode().Perm()
	}
	return create(c.Path, perm, c)
}

func create(path string, perm os.FileMode, c *Claim) (*File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if c == nil {
		// What a killed writer of the same file left (a claim has done
		// this already, and reported it).
		RemoveStale(path)
	}
	f, err := os.CreateTemp(dir, tempPrefix(base)+"*")
	if err != nil {
		return nil, err
	}
	if err := register(f.Name()); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	lock(f)
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		unregister(f.Name())
		return nil, err
	}
	return &File{File: f, path: path, claim: c}, nil
}

// Commit syncs and closes the temporary file and moves it to the
// destination; on any failure it removes it. A second call does nothing.
func (f *File) Commit() error {
	if f.done {
		return nil
	}
	f.done = true
	tmp := f.Name()
	defer unregister(tmp)
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if f.claim != nil {
			err = f.claim.Install(tmp)
		} else {
			err = os.Rename(tmp, f.path)
		}
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// Abort closes and removes the temporary file, leaving the destination as
// it was. It is harmless after Commit or Abort.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.Close()
	os.Remove(f.Name())
	unregister(f.Name())
}

// WriteFile is os.WriteFile made atomic.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Write(path, perm, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// Write creates a temporary file beside path, lets fill write it, and
// renames it to path with permissions perm (less the umask) when fill and
// the sync succeed; otherwise it removes the temporary file and returns
// the error, prefixed with path.
func Write(path string, perm os.FileMode, fill func(f *os.File) error) error {
	f, err := Create(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err = fill(f.File); err == nil {
		err = f.Chmod(perm &^ umask)
	}
	if err != nil {
		f.Abort()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Claim is a destination as it was when a run began: absent, an empty
// directory, or something the caller may replace.
type Claim struct {
	Path string
	// Stale lists the temporaries of Path that NewClaim removed: left by
	// runs that were killed (their process is gone, their lock free).
	Stale []string
	prev  os.FileInfo // what may be replaced; nil: nothing
	empty bool        // Path was an empty directory
}

// ErrExists is the error of NewClaim and Install for a destination that
// holds something they may not replace.
var ErrExists = fs.ErrExist

// ErrChanged is the error of Install when the destination is no longer
// what the claim saw at the start.
var ErrChanged = errors.New("changed during the run")

// NewClaim records what is at path now and removes stale temporaries of
// path. Without replace, path must be absent or an empty directory (which
// a directory output may take the place of: nothing is lost); otherwise
// the error wraps ErrExists. With replace, what is at path now is what
// Install may replace, and nothing else.
func NewClaim(path string, replace bool) (*Claim, error) {
	c := &Claim{Path: filepath.Clean(path)}
	fi, err := os.Lstat(c.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	case replace:
		c.prev = fi
	case fi.IsDir() && isEmptyDir(c.Path):
		c.empty = true
	default:
		return nil, fmt.Errorf("%s: %w", c.Path, ErrExists)
	}
	if c.Stale, err = RemoveStale(c.Path); err != nil {
		return nil, err
	}
	return c, nil
}

// Existed reports whether the destination held something the claim may
// replace (with replace set) when it was taken.
func (c *Claim) Existed() bool { return c.prev != nil }

// Holds reports whether the path, or one of its ancestors, is the
// file or directory the claim may replace: an input there would be
// destroyed by Install. Symbolic links in path are followed.
func (c *Claim) Holds(path string) bool {
	if c.prev == nil {
		return false
	}
	p, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	for {
		if fi, err := os.Stat(p); err == nil && os.SameFile(fi, c.prev) {
			return true
		}
		if fi, err := os.Lstat(p); err == nil && os.SameFile(fi, c.prev) {
			return true
		}
		parent := filepath.Dir(p)
		if parent == p {
			return false
		}
		p = parent
	}
}

// Install moves the finished temporary tmp (a file or a directory beside
// the destination) to the destination. When the claim may replace
// nothing, it moves only into an absent name (or in place of an empty
// directory, if that is what the claim saw); when it may replace what was
// there at the start, it swaps the two only if the destination still is
// that, then removes the old one. Otherwise it fails, wrapping ErrExists
// or ErrChanged, and leaves both tmp and the destination as they are.
func (c *Claim) Install(tmp string) error {
	if c.prev == nil {
		err := renameNoReplace(tmp, c.Path)
		if err != nil && errors.Is(err, fs.ErrExist) && c.empty {
			// rename(2) puts a directory in place of an empty one only
			// (os.Rename refuses every existing directory).
			if fi, serr := os.Lstat(tmp); serr == nil && fi.IsDir() {
				if syscall.Rename(tmp, c.Path) == nil {
					return nil
				}
			}
		}
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s appeared during the run and was left as it is: %w", c.Path, ErrExists)
		}
		return err
	}
	swapped, err := exchange(tmp, c.Path)
	if errors.Is(err, fs.ErrNotExist) {
		// What was to be replaced is gone already: move into the
		// absent name.
		return (&Claim{Path: c.Path}).Install(tmp)
	}
	if err != nil {
		return err
	}
	old := tmp
	if !swapped {
		old = tmp + ".old"
		if err := os.Rename(c.Path, old); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return (&Claim{Path: c.Path}).Install(tmp)
			}
			return err
		}
		register(old)
		defer unregister(old)
	}
	if fi, err := os.Lstat(old); err != nil || !os.SameFile(fi, c.prev) {
		// Someone put something else there: give it back.
		if swapped {
			exchange(tmp, c.Path)
		} else {
			os.Rename(old, c.Path)
		}
		return fmt.Errorf("%s was replaced by something else during the run and was left as it is: %w", c.Path, ErrChanged)
	}
	if !swapped {
		if err := renameNoReplace(tmp, c.Path); err != nil {
			os.Rename(old, c.Path)
			return err
		}
	}
	return os.RemoveAll(old)
}

// Dir is a temporary directory that becomes a claim's destination on
// Commit.
type Dir struct {
	Path  string // the temporary directory, to write into
	claim *Claim
	lock  *os.File // open on Path, holding its lock
	done  bool
}

// TempDir makes an empty, locked temporary directory beside c's path
// (creating the parent directories), with permissions 0777 less the umask.
func TempDir(c *Claim) (*Dir, error) {
	parent, base := filepath.Split(c.Path)
	if parent == "" {
		parent = "."
	}
	if err := os.MkdirAll(parent, 0o777); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, tempPrefix(base)+"*")
	if err != nil {
		return nil, err
	}
	if err := register(tmp); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	d := &Dir{Path: tmp, claim: c}
	if err := os.Chmod(tmp, 0o777&^umask); err != nil {
		d.Abort()
		return nil, err
	}
	if d.lock, err = os.Open(tmp); err == nil {
		lock(d.lock)
	}
	return d, nil
}

// Commit moves the directory to the claim's destination (Claim.Install);
// on failure it removes it. A second call does nothing.
func (d *Dir) Commit() error {
	if d.done {
		return nil
	}
	err := d.claim.Install(d.Path)
	if err != nil {
		d.Abort()
		return err
	}
	d.done = true
	d.release()
	unregister(d.Path)
	return nil
}

// Abort removes the directory and everything in it. It is harmless after
// Commit or Abort.
func (d *Dir) Abort() {
	if d.done {
		return
	}
	d.done = true
	d.release()
	os.RemoveAll(d.Path)
	unregister(d.Path)
}

func (d *Dir) release() {
	if d.lock != nil {
		d.lock.Close()
		d.lock = nil
	}
}

// RemoveStale removes the temporaries of the destination path that no
// running process owns: named ".BASE.tmp-PID-…" where process PID does not
// exist on this machine (or with no PID, as older versions named them), and
// not locked. It returns the paths it removed.
func RemoveStale(path string) ([]string, error) {
	dir, base := filepath.Split(filepath.Clean(path))
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	prefix := "." + base + ".tmp-"
	var removed []string
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		if pid, _, ok := strings.Cut(rest, "-"); ok {
			if n, err := strconv.Atoi(pid); err == nil && processAlive(n) {
				continue
			}
		}
		p := filepath.Join(dir, e.Name())
		if !unlocked(p) {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return removed, fmt.Errorf("removing stale temporary %s: %w", p, err)
		}
		removed = append(removed, p)
	}
	return removed, nil
}

func isEmptyDir(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	return len(names) == 0 && err != nil
}

// portableNoReplace renames old to new unless new exists, where the
// filesystem has no atomic way to say so: a file is hard-linked (link(2)
// fails atomically on an existing name) and its old name removed; a
// directory is renamed after a check, as rename(2) puts a directory only in
// place of an empty one and loses nothing.
func portableNoReplace(old, new string) error {
	fi, err := os.Lstat(old)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		err := os.Link(old, new)
		if err == nil {
			return os.Remove(old)
		}
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		// No hard links here (FAT, some network filesystems).
	}
	if _, err := os.Lstat(new); err == nil {
		return linkError("rename", old, new, fs.ErrExist)
	}
	return os.Rename(old, new)
}

func linkError(op, old, new string, err error) error {
	if err == nil {
		return nil
	}
	return &os.LinkError{Op: op, Old: old, New: new, Err: err}
}
