//go:build !unix

package main

func statfsFree(string) (int64, bool) { return 0, false }
