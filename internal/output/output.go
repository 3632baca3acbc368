// Package output claims the path a job writes a checkpoint or file to,
// before anything is written: the checks every writing job (quantize,
// dequantize, merge, gen) shares, so that a run that could only fail or
// destroy something is refused at once.
package output

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/internal/inputerr"
	"github.com/quantkit/quantkit/internal/units"
	"github.com/quantkit/quantkit/model/checkpoint"
)

// Claim refuses an output path that exists unless force (an empty
// directory excepted: taking its place loses nothing); an output that is
// one of the inputs or holds one (with force it would be replaced, and
// the input with it); and an output that cannot fit: a run that would stop
// with "no space left on device" after minutes of work is refused at
// once, naming the space it needs and what is free. These refusals are
// marked inputerr. need is the size of the tensor data to be written;
// headers and side files are small beside it. Claim removes the
// temporaries that killed runs left beside out, saying so on log. The
// claim it returns is what the final rename may replace: what was at out
// now, and nothing that appears there later.
func Claim(log io.Writer, out string, force bool, need int64, inputs ...string) (*atomicfile.Claim, error) {
	claim, err := atomicfile.NewClaim(out, force)
	if errors.Is(err, atomicfile.ErrExists) {
		return nil, inputerr.Mark(fmt.Errorf("%s exists; --force replaces it", out))
	}
	if err != nil {
		return nil, err
	}
	for _, in := range inputs {
		if !claim.Holds(in) {
			continue
		}
		what := "holds the input " + in
		if a, err := os.Stat(in); err == nil {
			if b, err := os.Stat(out); err == nil && os.SameFile(a, b) {
				what = "is the input"
			}
		}
		return nil, inputerr.Mark(fmt.Errorf("%s %s: replacing it would destroy the input; write the output elsewhere", out, what))
	}
	if log != nil {
		for _, p := range claim.Stale {
			fmt.Fprintf(log, "quantkit: removed %s, the unfinished output of a run that was killed\n", p)
		}
	}
	dir := existingDir(filepath.Dir(filepath.Clean(out)))
	free, ok := FreeBytes(dir)
	if ok && need > free {
		return nil, inputerr.Mark(fmt.Errorf("%s: not enough space: the output needs %s, %s is free on the filesystem of %s",
			out, units.FormatBytes(need), units.FormatBytes(free), dir))
	}
	return claim, nil
}

// CheckpointInputs are the paths a run reading ck depends on: the
// argument it was opened from, its directory and its shard files.
func CheckpointInputs(arg string, ck *checkpoint.Checkpoint) []string {
	in := []string{arg, ck.Dir()}
	for _, f := range ck.Files() {
		in = append(in, filepath.Join(ck.Dir(), f))
	}
	return in
}

// existingDir is dir or its nearest ancestor that exists.
func existingDir(dir string) string {
	for {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return dir
		}
		dir = parent
	}
}

// FreeBytes is the space an unprivileged user may still write on the
// filesystem of dir; ok is false where that cannot be known. Tests
// replace it to reach the error of a disk that fills during a run.
var FreeBytes = statfsFree

// NoSpace rewrites an error of a full disk while writing out into one that
// says so plainly; the caller has already removed the partial output.
// Other errors are returned as they are.
func NoSpace(out string, need int64, err error) error {
	if !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EDQUOT) {
		return err
	}
	what := "no space left on device"
	if errors.Is(err, syscall.EDQUOT) {
		what = "disk quota exceeded"
	}
	return fmt.Errorf("%s: %s while writing the output (%s in all); nothing was kept: %w",
		out, what, units.FormatBytes(need), err)
}
