package llamacpp

import (
	"fmt"

	"github.com/quantkit/quantkit/internal/fault"
	"github.com/quantkit/quantkit/model/gguf"
	"github.com/quantkit/quantkit/model/safetensors"
)

// ReadRows fills dst with rows first, first+1, … of t in the GGUF layout
// (len(dst)/Dims[0] rows of Dims[0] values), decoding only those rows of
// the input: a Hugging Face q or k projection's rows are taken through
// QKRow, so that no tensor need be read whole. It is safe for concurrent
// use, and it equals the matching rows of Float32(t).
func (c *Conversion) ReadRows(t *Tensor, first int, dst []float32) error {
	cols := 1
	if len(t.Dims) > 0 {
		cols = t.Dims[0]
	}
	rows := t.Rows()
	if cols <= 0 || len(dst)%cols != 0 || first < 0 || first+len(dst)/cols > rows {
		return fmt.Errorf("llamacpp: %s: rows %d..%d of %s, which has %d rows of %d", c.Input, first, first+len(dst)/max(cols, 1), t.Name, rows, cols)
	}
	n := len(dst) / cols
	switch {
	case t.Source == "":
		copy(dst, t.values[first*cols:(first+n)*cols])
		return nil
	case c.gf != nil:
		info, ok := c.gf.Tensor(t.Source)
		if !ok {
			return fmt.Errorf("llamacpp: %s: no tensor %q", c.Input, t.Source)
		}
		b, err := c.gf.Bytes(t.Source)
		if err != nil {
			return err
		}
		rowBytes, err := info.Type.RowSize(int64(cols))
		if err != nil {
			return fmt.Errorf("llamacpp: %s: %s: %w", c.Input, t.Source, err)
		}
		return fault.Catch(func() error {
			return gguf.DecodeFloat32(dst, b[int64(first)*rowBytes:], info.Type)
		})
	}
	b, err := c.ck.Bytes(t.Source)
	if err != nil {
		return err
	}
	size := len(b) / max(rows*cols, 1) // bytes per element
	rowBytes := cols * size
	err = fault.Catch(func() error {
		for r := range n {
			src := first + r
			if t.QKHeads > 0 {
				src = QKRow(src, rows, t.QKHeads)
			}
			if err := safetensors.DecodeFloat32(dst[r*cols:(r+1)*cols], b[src*rowBytes:(src+1)*rowBytes], t.SourceType); err != nil {
				return err
			}
		}
		return nil
	})
	return c.ck.Explain(err)
}
