package quantize

import (
	"fmt"
	"math"

	"github.com/quantkit/quantkit/model/gguf"
)

// checkImatrix refuses what llama-quantize refuses in an importance
// matrix, and the mixes whose rules depend on one (not implemented).
func checkImatrix(opt GGUFOptions) error {
	m := opt.Imatrix
	if m == nil {
		return nil
	}
	name := opt.ImatrixFile
	if name == "" {
		name = "importance matrix"
	}
	if !m.Legacy && !m.HasMetadata {
		return fmt.Errorf("%s: a GGUF imatrix without imatrix.datasets, imatrix.chunk_count and imatrix.chunk_size (llama-quantize refuses it too)", name)
	}
	if len(m.Entries) == 0 {
		return fmt.Errorf("%s: no entries", name)
	}
	for _, e := range m.Entries {
		w, _ := m.Importance(e.Name)
		for i, v := range w {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("%s: entry %q: value %d is %v (llama-quantize refuses non-finite importance)", name, e.Name, i, v)
			}
		}
	}
	return nil
}

// tensorImportance is the importance tensor t is quantized with, as
// llama_model_quantize looks it up: the entry of its name, whose size must
// be the row length times the experts (ne[0]·ne[2]); nil where there is
// no entry, or where token_embd's does not fit.
func tensorImportance(opt GGUFOptions, t gguf.TensorInfo) ([]float32, error) {
	w, ok := opt.Imatrix.Importance(t.Name)
	if !ok {
		return nil, nil
	}
	want := int64(rowLen(t))
	if len(t.Dims) > 2 {
		want *= int64(t.Dims[2])
	}
	if int64(len(w)) != want {
		if t.Name == "token_embd.weight" || t.Name == "per_layer_token_embd.weight" {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: entry %q has %d values, the tensor's rows of %d (× %d experts) need %d",
			opt.ImatrixFile, t.Name, len(w), rowLen(t), max(1, want/max(1, rowLen(t))), want)
	}
	return w, nil
}

// imatrixKVs are the keys llama-quantize's tool adds when it has an
// imatrix (as overrides, after general.file_type): the file name (none
// when ImatrixFile is empty: an imatrix computed on the fly) and the
// first dataset (each cut to 127 bytes), the number of entries, and the
// number of chunks where known.
func imatrixKVs(opt GGUFOptions) []gguf.KV {
	m := opt.Imatrix
	if m == nil {
		return nil
	}
	cut := func(s string) string { return s[:min(len(s), 127)] }
	var kvs []gguf.KV
	if opt.ImatrixFile != "" { // none for one computed on the fly (quantize --calib)
		kvs = append(kvs, gguf.KV{Key: "quantize.imatrix.file", Value: cut(opt.ImatrixFile)})
	}
	if len(m.Datasets) > 0 {
		kvs = append(kvs, gguf.KV{Key: "quantize.imatrix.dataset", Value: cut(m.Datasets[0])})
	}
	kvs = append(kvs, gguf.KV{Key: "quantize.imatrix.entries_count", Value: uint32(len(m.Entries))})
	if m.ChunkCount > 0 {
		kvs = append(kvs, gguf.KV{Key: "quantize.imatrix.chunks_count", Value: uint32(m.ChunkCount)})
	}
	return kvs
}

// encodeWithImportance quantizes the rows of src (rows first.. of tensor
// out) with importance w, each expert's rows with its slice of w, as
// llama_tensor_quantize_impl passes them to ggml_quantize_chunk.
func encodeWithImportance(dst []byte, src []float32, out gguf.TensorInfo, first int64, w []float32) error {
	cols := rowLen(out)
	perExpert := int64(1)
	if len(out.Dims) > 1 {
		perExpert = int64(out.Dims[1])
	}
	rowBytes, err := out.Type.RowSize(cols)
	if err != nil {
		return err
	}
	rows := int64(len(src)) / cols
	for r := int64(0); r < rows; {
		e := (first + r) / perExpert
		n := min(rows-r, (e+1)*perExpert-(first+r)) // the rest of expert e's rows
		if err := gguf.EncodeRowsImportance(dst[r*rowBytes:(r+n)*rowBytes], src[r*cols:(r+n)*cols], out.Type, int(cols), w[e*cols:(e+1)*cols]); err != nil {
			return err
		}
		r += n
	}
	return nil
}
