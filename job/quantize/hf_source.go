package quantize

import (
	"fmt"

	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/llamacpp"
)

// HFSource is a Hugging Face Llama-family checkpoint as the GGUF file
// convert_hf_to_gguf.py would make of it (model/llamacpp: llama.cpp's
// tensor names, the Q/K permutation, the hyperparameters and the
// tokenizer), at the checkpoint's own precision: each tensor keeps its
// dtype (F32, F16 or BF16), and those convert stores as F32 (norms,
// vectors) are F32. RunGGUF then quantizes it as llama-quantize would
// that file, so a checkpoint goes to Q4_K_M in one pass, with no
// intermediate file.
type HFSource struct {
	c     *llamacpp.Conversion
	infos []gguf.TensorInfo
	byGG  map[string]*llamacpp.Tensor
}

// OpenHFSource plans the conversion of the checkpoint in dir
// (llamacpp.Plan), refusing what it cannot convert before anything is
// read.
func OpenHFSource(dir string) (*HFSource, error) {
	c, err := llamacpp.Plan(dir, llamacpp.Options{})
	if err != nil {
		return nil, err
	}
	s := &HFSource{c: c, byGG: map[string]*llamacpp.Tensor{}}
	for i := range c.Tensors {
		t := &c.Tensors[i]
		typ := gguf.TypeF32
		if !t.KeepF32 && t.Source != "" {
			var ok bool
			if typ, ok = gguf.ParseType(t.SourceType); !ok || (typ != gguf.TypeF32 && typ != gguf.TypeF16 && typ != gguf.TypeBF16) {
				c.Close()
				return nil, fmt.Errorf("%s: tensor %s is %s: only F32, F16 and BF16 checkpoints are converted", dir, t.Source, t.SourceType)
			}
		}
		s.infos = append(s.infos, gguf.TensorInfo{Name: t.Name, Type: typ, Dims: append([]int(nil), t.Dims...)})
		s.byGG[t.Name] = t
	}
	return s, nil
}

// Metadata is convert_hf_to_gguf.py's, file type and all; RunGGUF sets
// the file type of the mix, as llama-quantize does.
func (s *HFSource) Metadata() gguf.Metadata {
	return gguf.Metadata(s.c.Metadata(llamacpp.FileTypeAllF32))
}

// Tensors are the GGUF tensors in convert_hf_to_gguf.py's order.
func (s *HFSource) Tensors() []gguf.TensorInfo { return s.infos }

// ReadFloat32 reads rows of a tensor (llamacpp.Conversion.ReadRows) and
// lets their input pages go (ReleaseRows).
func (s *HFSource) ReadFloat32(name string, first int64, dst []float32) error {
	t, ok := s.byGG[name]
	if !ok {
		return fmt.Errorf("%s: no tensor %q", s.c.Input, name)
	}
	if err := s.c.ReadRows(t, int(first), dst); err != nil {
		return err
	}
	cols := 1
	if len(t.Dims) > 0 {
		cols = max(t.Dims[0], 1)
	}
	s.c.ReleaseRows(t, int(first), len(dst)/cols) // read: let its pages go
	return nil
}

// Paths are the checkpoint's directory and shards, which the output may
// not be or hold.
func (s *HFSource) Paths() []string { return s.c.Files() }

// Release lets the named tensor's input pages leave resident memory.
func (s *HFSource) Release(name string) {
	if t, ok := s.byGG[name]; ok {
		s.c.Release(t)
	}
}

// Changed returns an error naming the first shard that is no longer what
// was opened.
func (s *HFSource) Changed() error { return s.c.Changed() }

// Close closes the checkpoint.
func (s *HFSource) Close() error { return s.c.Close() }
