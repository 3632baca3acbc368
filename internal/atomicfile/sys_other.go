//go:build !linux

package atomicfile

func renameNoReplace(old, new string) error { return portableNoReplace(old, new) }

func exchange(a, b string) (bool, error) { return false, nil }
