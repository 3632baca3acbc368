//go:build !unix

package filetest

import "errors"

const nonblock = 0

func mkfifo(path string) error { return errors.New("named pipes are not files on this platform") }
