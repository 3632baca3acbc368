//go:build integration

package llamacpp

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/quantkit/quantkit/model/gguf"
)

// maxDiffs caps the differences diffGGUF lists.
const maxDiffs = 12

// diffGGUF compares quantkit's GGUF (got) with llama.cpp's (want) and
// returns the differences, most telling first, at most maxDiffs; none when
// the files are byte-identical. It compares the parts first (version,
// alignment, every metadata key and value in order, every tensor's name,
// type, dims, offset and data), so a difference is named by what it is in,
// then, when the parts agree, the bytes (padding, header encoding).
func diffGGUF(want, got string) ([]string, error) {
	w, err := gguf.Open(want)
	if err != nil {
		return nil, fmt.Errorf("llama.cpp's output: %w", err)
	}
	defer w.Close()
	g, err := gguf.Open(got)
	if err != nil {
		return []string{fmt.Sprintf("quantkit's output does not open: %v", err)}, nil
	}
	defer g.Close()

	var diffs []string
	add := func(format string, args ...any) { diffs = append(diffs, fmt.Sprintf(format, args...)) }
	if w.Version() != g.Version() {
		add("GGUF version: llama.cpp %d, quantkit %d", w.Version(), g.Version())
	}
	if w.Alignment() != g.Alignment() {
		add("alignment: llama.cpp %d, quantkit %d", w.Alignment(), g.Alignment())
	}
	diffs = append(diffs, diffMetadata(w.Metadata(), g.Metadata())...)
	td, err := diffTensors(w, g)
	if err != nil {
		return nil, err
	}
	diffs = append(diffs, td...)
	if len(diffs) == 0 {
		if d, err := diffBytes(want, got, w.DataOffset()); err != nil {
			return nil, err
		} else if d != "" {
			diffs = append(diffs, d)
		}
	}
	if len(diffs) > maxDiffs {
		diffs = append(diffs[:maxDiffs], fmt.Sprintf("… and %d more differences", len(diffs)-maxDiffs))
	}
	return diffs, nil
}

// diffMetadata lists the keys one file has and the other lacks, the values
// that differ, and, when the key sets agree, the first key out of order.
func diffMetadata(want, got gguf.Metadata) []string {
	var diffs []string
	wk, gk := keys(want), keys(got)
	for _, k := range wk {
		if _, ok := got.Value(k); !ok {
			v, _ := want.Value(k)
			diffs = append(diffs, fmt.Sprintf("metadata %q: llama.cpp has %s, quantkit lacks it", k, showValue(v)))
		}
	}
	for _, k := range gk {
		if _, ok := want.Value(k); !ok {
			v, _ := got.Value(k)
			diffs = append(diffs, fmt.Sprintf("metadata %q: quantkit has %s, llama.cpp lacks it", k, showValue(v)))
		}
	}
	for _, k := range wk {
		wv, _ := want.Value(k)
		gv, ok := got.Value(k)
		if ok && !reflect.DeepEqual(wv, gv) {
			diffs = append(diffs, fmt.Sprintf("metadata %q: llama.cpp %s, quantkit %s%s", k, showValue(wv), showValue(gv), firstElementDiff(wv, gv)))
		}
	}
	if len(diffs) == 0 && !slices.Equal(wk, gk) {
		for i := range wk {
			if wk[i] != gk[i] {
				diffs = append(diffs, fmt.Sprintf("metadata order: pair %d is %q in llama.cpp's file, %q in quantkit's (llama.cpp's order: %s)", i, wk[i], gk[i], strings.Join(wk, ", ")))
				break
			}
		}
	}
	return diffs
}

func keys(m gguf.Metadata) []string {
	ks := make([]string, len(m))
	for i, kv := range m {
		ks[i] = kv.Key
	}
	return ks
}

// showValue prints v with its GGUF type, an array as its length and first
// elements.
func showValue(v any) string {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice {
		n := rv.Len()
		head := rv.Slice(0, min(n, 4)).Interface()
		more := ""
		if n > 4 {
			more = " …"
		}
		return fmt.Sprintf("%T of %d %v%s", v, n, head, more)
	}
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q (string)", s)
	}
	return fmt.Sprintf("%v (%T)", v, v)
}

// firstElementDiff says where two arrays of one type first differ.
func firstElementDiff(a, b any) string {
	ra, rb := reflect.ValueOf(a), reflect.ValueOf(b)
	if ra.Kind() != reflect.Slice || rb.Kind() != reflect.Slice || ra.Type() != rb.Type() {
		return ""
	}
	for i := 0; i < min(ra.Len(), rb.Len()); i++ {
		if !reflect.DeepEqual(ra.Index(i).Interface(), rb.Index(i).Interface()) {
			return fmt.Sprintf("; first different element [%d]: llama.cpp %#v, quantkit %#v", i, ra.Index(i).Interface(), rb.Index(i).Interface())
		}
	}
	return fmt.Sprintf("; equal up to the shorter length %d", min(ra.Len(), rb.Len()))
}

// diffTensors compares the tensor lists in file order and the data of the
// tensors both have.
func diffTensors(w, g *gguf.File) ([]string, error) {
	var diffs []string
	wt, gt := w.Tensors(), g.Tensors()
	names := func(ts []gguf.TensorInfo) []string {
		out := make([]string, len(ts))
		for i, t := range ts {
			out[i] = t.Name
		}
		return out
	}
	if wn, gn := names(wt), names(gt); !slices.Equal(wn, gn) {
		for _, n := range wn {
			if !slices.Contains(gn, n) {
				diffs = append(diffs, fmt.Sprintf("tensor %q: in llama.cpp's file, not in quantkit's", n))
			}
		}
		for _, n := range gn {
			if !slices.Contains(wn, n) {
				diffs = append(diffs, fmt.Sprintf("tensor %q: in quantkit's file, not in llama.cpp's", n))
			}
		}
		if len(diffs) == 0 {
			for i := range wn {
				if wn[i] != gn[i] {
					diffs = append(diffs, fmt.Sprintf("tensor order: tensor %d is %q in llama.cpp's file, %q in quantkit's", i, wn[i], gn[i]))
					break
				}
			}
		}
	}
	for _, a := range wt {
		b, ok := g.Tensor(a.Name)
		if !ok {
			continue
		}
		if a.Type != b.Type || !slices.Equal(a.Dims, b.Dims) {
			diffs = append(diffs, fmt.Sprintf("tensor %q: llama.cpp %v %v, quantkit %v %v", a.Name, a.Type, a.Dims, b.Type, b.Dims))
			continue
		}
		if a.Offset != b.Offset {
			diffs = append(diffs, fmt.Sprintf("tensor %q: data offset llama.cpp %d, quantkit %d", a.Name, a.Offset, b.Offset))
		}
		wb, err := w.Bytes(a.Name)
		if err != nil {
			return nil, err
		}
		gb, err := g.Bytes(b.Name)
		if err != nil {
			return nil, err
		}
		if d := diffData(a, wb, gb); d != "" {
			diffs = append(diffs, d)
		}
	}
	return diffs, nil
}

// diffData locates the first differing byte of a tensor's data: its block,
// row and column, with both blocks in hex, and counts the blocks that
// differ.
func diffData(t gguf.TensorInfo, want, got []byte) string {
	i := firstDiff(want, got)
	if i < 0 {
		return ""
	}
	bs, ts := t.Type.BlockSize(), t.Type.TypeSize()
	if bs <= 0 || ts <= 0 {
		return fmt.Sprintf("tensor %q (%v): data differs first at byte %d", t.Name, t.Type, i)
	}
	rowBytes := t.Dims[0] / bs * ts
	block := i / ts
	nDiff := 0
	for b := 0; b+ts <= len(want); b += ts {
		if !bytes.Equal(want[b:b+ts], got[b:b+ts]) {
			nDiff++
		}
	}
	lo := block * ts
	return fmt.Sprintf("tensor %q (%v %v): data differs first at byte %d: block %d (row %d, elements %d..%d), byte %d of the block; %d of %d blocks differ\n    llama.cpp % x\n    quantkit  % x",
		t.Name, t.Type, t.Dims, i, block, i/rowBytes, (i%rowBytes)/ts*bs, (i%rowBytes)/ts*bs+bs-1, i-lo, nDiff, len(want)/ts,
		want[lo:lo+ts], got[lo:lo+ts])
}

// firstDiff is the index of the first byte where a and b differ, the
// shorter length when one is a prefix of the other, or -1 when equal.
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// diffBytes compares the files byte for byte.
func diffBytes(want, got string, dataOffset int64) (string, error) {
	a, err := os.ReadFile(want)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(got)
	if err != nil {
		return "", err
	}
	i := firstDiff(a, b)
	if i < 0 {
		return "", nil
	}
	where := "the header"
	if int64(i) >= dataOffset {
		where = fmt.Sprintf("the data section (its byte %d: padding, as every tensor's data is equal)", int64(i)-dataOffset)
	}
	return fmt.Sprintf("files differ at byte %d, in %s; sizes llama.cpp %d, quantkit %d", i, where, len(a), len(b)), nil
}
