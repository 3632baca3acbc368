package inspect

import (
	"fmt"
	"io"

	"github.com/quantkit/quantkit/internal/units"
	"github.com/quantkit/quantkit/model/npy"
)

// NPYReport describes a NumPy .npy file.
type NPYReport struct {
	Format     string `json:"format"` // "npy"
	Path       string `json:"path"`
	Version    int    `json:"version"`
	DType      string `json:"dtype"` // as the file gives it: "<f4"
	Type       string `json:"type"`  // numpy's name: "float32"
	Shape      []int  `json:"shape"`
	Elements   int64  `json:"elements"`
	Bytes      int64  `json:"bytes"`
	DataOffset int64  `json:"data_offset"`
}

// NPY reads the report of the .npy file at path from its header.
func NPY(path string) (NPYReport, error) {
	h, err := npy.ReadHeader(path)
	if err != nil {
		return NPYReport{}, err
	}
	return NPYReport{Format: "npy", Path: path, Version: h.Version, DType: h.DType, Type: h.Type, Shape: h.Shape,
		Elements: int64(h.Len()), Bytes: h.DataLen, DataOffset: h.DataOffset}, nil
}

// WriteText writes one line: the dtype, shape (as numpy writes it),
// elements and bytes.
func (r NPYReport) WriteText(w io.Writer) error {
	shape := formatShape(r.Shape) // as numpy writes it: (2, 3), (3,), ()
	shape = "(" + shape[1:len(shape)-1] + ")"
	if len(r.Shape) == 1 {
		shape = shape[:len(shape)-1] + ",)"
	}
	_, err := fmt.Fprintf(w, "%s: NumPy .npy v%d.0, %s (%s), shape %s, %d elements, %s of data\n",
		r.Path, r.Version, r.DType, r.Type, shape, r.Elements, units.FormatBytes(r.Bytes))
	return err
}
