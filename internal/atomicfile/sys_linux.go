package atomicfile

import (
	"errors"

	"golang.org/x/sys/unix"
)

// renameNoReplace renames old to new unless new exists (renameat2 with
// RENAME_NOREPLACE), atomically; filesystems without the flag (NFS, some
// FUSE) take the portable way.
func renameNoReplace(old, new string) error {
	err := unix.Renameat2(unix.AT_FDCWD, old, unix.AT_FDCWD, new, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.ENOTSUP) {
		return portableNoReplace(old, new)
	}
	return linkError("rename", old, new, err)
}

// exchange swaps a and b atomically (renameat2 with RENAME_EXCHANGE); ok is
// false where the filesystem cannot.
func exchange(a, b string) (ok bool, err error) {
	err = unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.ENOTSUP) {
		return false, nil
	}
	return true, linkError("exchange", a, b, err)
}
