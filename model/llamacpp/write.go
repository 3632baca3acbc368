package llamacpp

import (
	"bufio"
	"fmt"

	"github.com/quantkit/quantkit/internal/atomicfile"
	"github.com/quantkit/quantkit/model/gguf"
)

// WriteOptions tune Write.
type WriteOptions struct {
	// Type is the type of the tensors that are not KeepF32: gguf.TypeF32
	// (the default), gguf.TypeF16 or gguf.TypeBF16, as convert_hf_to_gguf.py's
	// --outtype f32, f16, bf16. KeepF32 tensors are F32 whatever Type is.
	Type gguf.Type
	// Claim, if not nil, is the output's claim (internal/output.Claim):
	// the file is committed as the claim allows. Otherwise Write replaces
	// a regular file at the path.
	Claim *atomicfile.Claim
	// Progress, if not nil, is called after each tensor with the tensor
	// bytes written so far and the total.
	Progress func(written, total int64)
}

// FileType is general.file_type for a file whose tensors are of type t
// where not KeepF32.
func FileType(t gguf.Type) (uint32, error) {
	switch t {
	case gguf.TypeF32:
		return FileTypeAllF32, nil
	case gguf.TypeF16:
		return FileTypeMostlyF16, nil
	case gguf.TypeBF16:
		return FileTypeMostlyBF16, nil
	}
	return 0, fmt.Errorf("llamacpp: %s is not an unquantized file type (F32, F16, BF16)", t)
}

// Layout returns the GGUF tensors c becomes with the non-KeepF32 tensors
// of type t, in file order (Offset and Size are left to gguf.Create).
func (c *Conversion) Layout(t gguf.Type) []gguf.TensorInfo {
	infos := make([]gguf.TensorInfo, len(c.Tensors))
	for i := range c.Tensors {
		typ := t
		if c.Tensors[i].KeepF32 {
			typ = gguf.TypeF32
		}
		infos[i] = gguf.TensorInfo{Name: c.Tensors[i].Name, Type: typ, Dims: append([]int(nil), c.Tensors[i].Dims...)}
	}
	return infos
}

// Write writes c as an unquantized GGUF file at path, tensor by tensor
// (one tensor's values in memory at a time), through a temporary file
// renamed into place only when complete: nothing appears at path on
// failure.
func Write(c *Conversion, path string, opts WriteOptions) error {
	ft, err := FileType(opts.Type)
	if err != nil {
		return err
	}
	infos := c.Layout(opts.Type)
	var f *atomicfile.File
	if opts.Claim != nil {
		f, err = atomicfile.CreateFor(opts.Claim)
	} else {
		f, err = atomicfile.Create(path)
	}
	if err != nil {
		return fmt.Errorf("llamacpp: %s: %w", path, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Abort()
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := gguf.NewWriter(bw, c.Metadata(ft), infos)
	if err != nil {
		return fmt.Errorf("llamacpp: %s: %w", path, err)
	}
	var total, written int64
	for _, ti := range w.Tensors() {
		total += ti.Size
	}
	var buf []byte
	for i := range c.Tensors {
		t := &c.Tensors[i]
		x, err := c.Float32(t)
		if err != nil {
			return fmt.Errorf("llamacpp: %s: %w", path, err)
		}
		size, err := infos[i].Type.RowSize(int64(len(x)))
		if err != nil {
			return fmt.Errorf("llamacpp: %s: %s: %w", path, t.Name, err)
		}
		if int64(cap(buf)) < size {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if err := gguf.EncodeFloat32(buf, x, infos[i].Type); err != nil {
			return fmt.Errorf("llamacpp: %s: %s: %w", path, t.Name, err)
		}
		if err := w.WriteTensor(t.Name, buf); err != nil {
			return fmt.Errorf("llamacpp: %s: %w", path, err)
		}
		c.Release(t)
		written += size
		if opts.Progress != nil {
			opts.Progress(written, total)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("llamacpp: %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("llamacpp: %s: %w", path, err)
	}
	ok = true
	if err := f.Commit(); err != nil {
		return fmt.Errorf("llamacpp: %s: %w", path, err)
	}
	return nil
}
