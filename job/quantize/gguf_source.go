package quantize

import (
	"fmt"
	"os"

	"github.com/quantkit/quantkit/internal/fault"
	"github.com/quantkit/quantkit/model/gguf"
)

// GGUFSource is a model RunGGUF can write as a GGUF file: tensors already
// under their GGUF names, shapes and types, readable as float32 rows, and
// the metadata key/value pairs (architecture, hyperparameters, tokenizer)
// to carry over. A GGUF file is one (OpenGGUFSource); a Hugging Face
// checkpoint seen through llama.cpp's naming and transforms is another.
type GGUFSource interface {
	// Metadata returns the key/value pairs to write, in order.
	Metadata() gguf.Metadata
	// Tensors returns the tensors in the source's order: Name, Type (the
	// type of the data the source holds; an F32, F16 or BF16 tensor can
	// be converted, any other only copied) and Dims in ggml order, Dims[0]
	// the row length. Offset and Size are ignored.
	Tensors() []gguf.TensorInfo
	// ReadFloat32 fills dst with the rows of the named tensor starting at
	// row first (a row is Dims[0] elements, rows run over the other
	// dimensions), len(dst)/Dims[0] of them. It is called concurrently.
	ReadFloat32(name string, first int64, dst []float32) error
	// Paths are the files the source reads, which the output may not
	// replace.
	Paths() []string
	// Close releases the source.
	Close() error
}

// RawGGUFSource is a GGUFSource that can also give a tensor's data as it
// is, in its type, so that a tensor whose type does not change is copied
// byte for byte rather than converted.
type RawGGUFSource interface {
	GGUFSource
	// Bytes returns the whole data of the named tensor, valid until Close.
	Bytes(name string) ([]byte, error)
}

// releaser is a source that can let a tensor's input pages go once it has
// been written (a memory-mapped file), so that a pass over a large model
// holds only the tensors in flight, as llama-quantize does.
type releaser interface {
	Release(name string)
}

// rangeReleaser is a releaser that can let part of a tensor's pages go:
// a tensor copied block by block then holds one block at a time.
type rangeReleaser interface {
	ReleaseRange(name string, off, n int64)
}

// changer is a source that can tell whether its files changed since it
// opened them: RunGGUF asks before it commits, so that an output never
// mixes old and new input data.
type changer interface {
	Changed() error
}

// GGUFFile is a GGUF file as a RawGGUFSource.
type GGUFFile struct {
	path  string
	f     *gguf.File
	stat  os.FileInfo // the file as opened, for Changed
	infos map[string]gguf.TensorInfo
}

// OpenGGUFSource opens the GGUF file at path (validating its header; see
// gguf.Open).
func OpenGGUFSource(path string) (*GGUFFile, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &GGUFFile{path: path, f: f, stat: st, infos: map[string]gguf.TensorInfo{}}
	for _, t := range f.Tensors() {
		s.infos[t.Name] = t
	}
	return s, nil
}

// File is the open GGUF file.
func (s *GGUFFile) File() *gguf.File { return s.f }

// Metadata returns the file's key/value pairs in file order.
func (s *GGUFFile) Metadata() gguf.Metadata { return s.f.Metadata() }

// Tensors returns the file's tensors in header order.
func (s *GGUFFile) Tensors() []gguf.TensorInfo { return s.f.Tensors() }

// Paths is the file.
func (s *GGUFFile) Paths() []string { return []string{s.path} }

// Close closes the file.
func (s *GGUFFile) Close() error { return s.f.Close() }

// Release lets the named tensor's pages leave resident memory.
func (s *GGUFFile) Release(name string) { s.f.Release(name) }

// ReleaseRange lets bytes [off, off+n) of the named tensor's data leave
// resident memory.
func (s *GGUFFile) ReleaseRange(name string, off, n int64) { s.f.ReleaseRange(name, off, n) }

// Changed returns an error naming the file when it is no longer what was
// opened (another size or modification time, or gone).
func (s *GGUFFile) Changed() error {
	fi, err := os.Stat(s.path)
	if err != nil || fi.Size() != s.stat.Size() || !fi.ModTime().Equal(s.stat.ModTime()) || !os.SameFile(fi, s.stat) {
		return fmt.Errorf("%s changed or was truncated while reading; nothing was written from it", s.path)
	}
	return nil
}

// explain turns a fault reading the mapped file (it shrank) into an error
// naming the file.
func (s *GGUFFile) explain(err error) error {
	if err != nil && fault.Is(err) {
		if cerr := s.Changed(); cerr != nil {
			return cerr
		}
		return fmt.Errorf("%s: %w", s.path, err)
	}
	return err
}

// Bytes returns the tensor's data: a view into the mapped file.
func (s *GGUFFile) Bytes(name string) ([]byte, error) { return s.f.Bytes(name) }

// ReadFloat32 decodes rows of the named tensor (gguf.DecodeFloat32) and
// lets their pages leave resident memory.
func (s *GGUFFile) ReadFloat32(name string, first int64, dst []float32) error {
	t, ok := s.infos[name]
	if !ok {
		return fmt.Errorf("%s: no tensor %q", s.path, name)
	}
	b, err := s.f.Bytes(name)
	if err != nil {
		return err
	}
	cols := rowLen(t)
	row, err := t.Type.RowSize(cols)
	if err != nil {
		return fmt.Errorf("%s: tensor %q: %w", s.path, name, err)
	}
	if cols == 0 {
		return nil
	}
	n := int64(len(dst)) / cols
	if first < 0 || int64(len(dst))%cols != 0 || (first+n)*row > int64(len(b)) {
		return fmt.Errorf("%s: tensor %q: rows %d to %d are out of range", s.path, name, first, first+n)
	}
	err = fault.Catch(func() error { return gguf.DecodeFloat32(dst, b[first*row:(first+n)*row], t.Type) })
	if err != nil && !fault.Is(err) {
		return fmt.Errorf("%s: tensor %q: %w", s.path, name, err)
	}
	if err == nil {
		s.f.ReleaseRange(name, first*row, n*row) // read: let its pages go
	}
	return s.explain(err)
}

// rowLen is the length of a tensor's rows, Dims[0] (1 for a scalar).
func rowLen(t gguf.TensorInfo) int64 {
	if len(t.Dims) == 0 {
		return 1
	}
	return int64(t.Dims[0])
}
