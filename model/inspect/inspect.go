package inspect

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/quantkit/quantkit/model/format"
)

// Report is the report of one file: a CheckpointReport, a GGUFReport or an
// NPYReport.
type Report interface {
	// WriteText writes the report as text and tables for people.
	WriteText(w io.Writer) error
}

// Path reads the report of the file or checkpoint directory at path, by
// its format: what a file holds is told by its first bytes (a damaged
// file's by its extension), whatever its name. A file of another format
// (ONNX, PyTorch, JSON other than an index) is an error that names it; a
// named pipe or a device is refused, not read.
func Path(path string) (Report, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return Checkpoint(path)
	}
	d, err := format.Detect(path)
	if err != nil {
		return nil, err
	}
	switch {
	case d.Format == format.Safetensors, d.Format == format.JSON && strings.HasSuffix(path, ".json"):
		return Checkpoint(path) // a checkpoint, or its index
	case d.Format == format.GGUF:
		return GGUF(path)
	case d.Format == format.NPY:
		return NPY(path)
	case d.Format != nil:
		return nil, fmt.Errorf("%s is %s; inspect reads safetensors, GGUF and .npy", path, d.Format.Noun)
	case d.Size == 0:
		return nil, fmt.Errorf("%s is empty", path)
	}
	return nil, fmt.Errorf("%s is not a safetensors, GGUF or .npy file (it starts with %q)", path, d.Head)
}

// formatShape writes a shape as [2, 3].
func formatShape(shape []int) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
