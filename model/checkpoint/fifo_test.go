//go:build unix

package checkpoint

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A named pipe where an index or config.json belongs is refused at once:
// opening it for reading would wait forever for a writer.
func TestNamedPipeRefused(t *testing.T) {
	for _, name := range []string{IndexFileName, ConfigFileName} {
		dir := t.TempDir()
		if name == ConfigFileName {
			writeCheckpointFile(t, filepath.Join(dir, SingleFileName))
		}
		if err := syscall.Mkfifo(filepath.Join(dir, name), 0o644); err != nil {
			t.Skip(err)
		}
		done := make(chan error, 1)
		go func() {
			c, err := Open(dir)
			if err == nil {
				c.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), name+": not a regular file (a named pipe)") {
				t.Errorf("%s as a pipe: error %v", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Open hangs on %s as a named pipe", name)
		}
	}
}

// writeCheckpointFile writes a one-tensor safetensors file.
func writeCheckpointFile(t *testing.T, path string) {
	t.Helper()
	hdr := `{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`
	b := []byte{byte(len(hdr)), 0, 0, 0, 0, 0, 0, 0}
	b = append(append(b, hdr...), 0, 0, 0, 0)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
