package calibrate

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/model/format"
	"github.com/quantkit/quantkit/model/npy"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/model/safetensors"
	"github.com/quantkit/quantkit/quant"
)

// HistogramSuffix is the end of the names of the files Run reads as saved
// histograms (Report.WriteHistograms).
const HistogramSuffix = ".hist.json"

// reader feeds the files of a run into one histogram per tensor.
type reader struct {
	opt  Options
	acts map[string]*Tensor
}

// get returns the activation of the tensor name read from path, or an
// error when its name is unusable.
func (r *reader) get(path, name string) (*Tensor, error) {
	if r.opt.TRTNames {
		if err := TRTNameError(name); err != nil {
			return nil, badInput(fmt.Errorf("%s: %w", path, err))
		}
	}
	a := r.acts[name]
	if a == nil {
		a = &Tensor{Name: name, Histogram: quant.NewHistogram(r.opt.Bins)}
		r.acts[name] = a
	}
	a.Files = append(a.Files, path)
	return a, nil
}

// npyTensorName is the name of the tensor of a .npy file: the file's,
// without directory and extension.
func npyTensorName(path string) string { return strings.TrimSuffix(filepath.Base(path), ".npy") }

// read feeds the tensors of one file into their histograms. Errors about
// the file are marked inputerr.ErrInput; errors of the backend are not.
func (r *reader) read(ctx context.Context, path string) error {
	only := r.opt.Tensor
	switch {
	case strings.HasSuffix(path, HistogramSuffix):
		names, hs, err := loadHistograms(path)
		if err != nil {
			return badInput(err)
		}
		found := false
		for _, name := range names {
			if only != "" && name != only {
				continue
			}
			found = true
			a, err := r.get(path, name)
			if err != nil {
				return err
			}
			if err := a.Histogram.Merge(hs[name]); err != nil {
				return badInput(fmt.Errorf("%s: tensor %q: %w", path, name, err))
			}
		}
		if !found {
			return badInput(fmt.Errorf("%s: no tensor named %q", path, only))
		}
		return nil
	case strings.HasSuffix(path, ".npy"):
		arr, err := npy.ReadFile(path)
		if err != nil {
			return badInput(err)
		}
		x, err := arr.Float32()
		if err != nil {
			return badInput(fmt.Errorf("%s: %w", path, err))
		}
		a, err := r.get(path, npyTensorName(path))
		if err != nil {
			return err
		}
		if order, ok := npyFloat64Order(arr.DType); ok {
			a.Float64Overflow += float64Overflows(arr.Data, order, x)
		}
		if err := addSamples(ctx, r.opt.Backend, a.Histogram, x); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	case strings.HasSuffix(path, ".safetensors"):
		f, err := safetensors.Open(path)
		if err != nil {
			return badInput(err)
		}
		defer f.Close()
		found := false
		for _, t := range f.Tensors() {
			if only != "" && t.Name != only {
				continue
			}
			if !plan.IsFloatDType(t.DType) {
				if only != "" {
					return badInput(fmt.Errorf("%s: tensor %q is %s, not a float tensor", path, t.Name, t.DType))
				}
				continue
			}
			found = true
			x, err := f.Float32(t.Name)
			if err != nil {
				return badInput(err)
			}
			a, err := r.get(path, t.Name)
			if err != nil {
				return err
			}
			if t.DType == "F64" {
				raw, err := f.Bytes(t.Name)
				if err != nil {
					return badInput(err)
				}
				a.Float64Overflow += float64Overflows(raw, binary.LittleEndian, x)
			}
			if err := addSamples(ctx, r.opt.Backend, a.Histogram, x); err != nil {
				return fmt.Errorf("%s: tensor %q: %w", path, t.Name, err)
			}
		}
		if !found {
			if only != "" {
				return badInput(fmt.Errorf("%s: no tensor named %q", path, only))
			}
			return badInput(fmt.Errorf("%s: no float tensors", path))
		}
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		return badInput(err)
	}
	return badInput(fmt.Errorf("%s: unknown format (want .npy, .safetensors or %s)", path, HistogramSuffix))
}

// npyFloat64Order returns the byte order of a float64 .npy dtype such as
// "<f8", and false for other dtypes.
func npyFloat64Order(dtype string) (binary.ByteOrder, bool) {
	switch dtype {
	case "<f8":
		return binary.LittleEndian, true
	case ">f8":
		return binary.BigEndian, true
	case "=f8", "f8":
		return binary.NativeEndian, true
	}
	return nil, false
}

// float64Overflows counts the finite float64 values of raw (in order)
// that are ±Inf in x, their conversion to float32:
//
//	for i := range x { if x[i] is ±Inf && raw[i] is finite { n++ } }
func float64Overflows(raw []byte, order binary.ByteOrder, x []float32) int64 {
	var n int64
	for i, v := range x {
		if math.IsInf(float64(v), 0) && 8*i+8 <= len(raw) {
			if d := math.Float64frombits(order.Uint64(raw[8*i:])); !math.IsInf(d, 0) && !math.IsNaN(d) {
				n++
			}
		}
	}
	return n
}

// addSamples bins x on the backend: its abs-max first, so the histogram
// can grow, then its counts straight into the histogram's bins. Samples
// larger than the device's free memory go in chunks, each one batch.
func addSamples(ctx context.Context, b backend.Backend, h *quant.Histogram, x []float32) error {
	chunk := backend.ChunkLen(b, len(x), 4)
	for len(x) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(chunk, len(x))
		if err := addChunk(b, h, x[:n]); err != nil {
			return err
		}
		x = x[n:]
	}
	return nil
}

func addChunk(b backend.Backend, h *quant.Histogram, x []float32) error {
	buf, err := b.Alloc(backend.F32, len(x))
	if err != nil {
		return err
	}
	defer b.Free(buf)
	if err := b.Upload(buf, x); err != nil {
		return err
	}
	amax, err := b.AbsMax(buf)
	if err != nil {
		return err
	}
	return h.AddWith(amax, func(width float32, counts []int64) (int64, error) {
		return b.HistogramAbs(buf, width, counts)
	})
}

// loadHistograms reads a .hist.json file (quant.ReadHistograms); errors
// name the file.
func loadHistograms(path string) ([]string, map[string]*quant.Histogram, error) {
	f, _, err := format.Open(path) // a named pipe is refused, not waited on
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	names, hs, err := quant.ReadHistograms(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return names, hs, nil
}
