//go:build !unix

package output

func statfsFree(string) (int64, bool) { return 0, false }
