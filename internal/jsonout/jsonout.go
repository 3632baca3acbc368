// Package jsonout writes a command's report as JSON, the one way every
// command does: indented, to standard output (--json) or to a file
// replaced atomically (--json-out FILE), so that a reader of the file never
// sees half a report.
package jsonout

import (
	"encoding/json"
	"io"
	"os"

	"github.com/quantkit/quantkit/internal/atomicfile"
)

// Write writes v to w as indented JSON, ending in a newline.
func Write(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // "<f4" as it is, not "\u003cf4"
	return enc.Encode(v)
}

// WriteFile writes v to path as Write does, through a temporary file
// renamed over path once complete: on failure path is left as it was.
func WriteFile(path string, v any) error {
	return atomicfile.Write(path, 0o666, func(f *os.File) error { return Write(f, v) })
}
