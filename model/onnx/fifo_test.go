package onnx

import (
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/filetest"
)

// A named pipe with no writer would block a plain open for ever: Read
// must refuse it as not a regular file, at once.
func TestReadFIFO(t *testing.T) {
	path := filetest.NamedPipe(t, "model.onnx")
	err := filetest.Within(t, path, func() error {
		_, err := Read(path)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("FIFO: %v; want an error naming the file and saying it is not a regular file", err)
	}
}
