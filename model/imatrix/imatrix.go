package imatrix

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/quantkit/quantkit/model/gguf"
)

// Limits on what Read accepts, so a corrupt header cannot make it allocate
// without bound.
const (
	maxEntries = 1 << 20
	maxNameLen = 1 << 16
	maxValues  = 1 << 30
)

// Entry is one tensor's statistics.
type Entry struct {
	// Name is the weight tensor's GGUF name.
	Name string
	// Sums holds, per expert e and input column j, Sums[e·cols+j]: the
	// sum of x_j² over Counts[e] activation rows (in a legacy file, the
	// stored values Σx²/count·ncall).
	Sums []float32
	// Counts holds one count per expert (one for a dense tensor): the
	// number of activation rows summed (in a legacy file, {ncall}, the
	// number of chunks).
	Counts []int64
}

// File is an importance matrix.
type File struct {
	// Entries are in name order (the order llama-imatrix writes them).
	Entries []Entry
	// Datasets name the calibration data (llama-imatrix's -f files).
	Datasets []string
	// ChunkCount is the number of chunks (of ChunkSize tokens) processed.
	ChunkCount int
	// ChunkSize is the tokens per chunk (0 in legacy files).
	ChunkSize int
	// Legacy says the entries came from (and hold the meaning of) the
	// legacy .dat format.
	Legacy bool
	// HasMetadata says a GGUF file had all three imatrix.* keys;
	// llama-quantize refuses a GGUF imatrix without them.
	HasMetadata bool
}

// Entry returns the entry for the tensor name.
func (f *File) Entry(name string) (*Entry, bool) {
	i, ok := slices.BinarySearchFunc(f.Entries, name, func(e Entry, n string) int { return strings.Compare(e.Name, n) })
	if !ok {
		return nil, false
	}
	return &f.Entries[i], true
}

// Importance returns the importance of each column of the tensor name
// (per expert, experts one after the other), as llama-quantize's
// load_imatrix computes it from the file: for GGUF Sums[e·cols+j] /
// Counts[e], or 1 for an expert with no count; for legacy files the
// values / ncall, or the values where ncall ≤ 0. ok is false when the file
// has no entry for name.
func (f *File) Importance(name string) (w []float32, ok bool) {
	e, ok := f.Entry(name)
	if !ok {
		return nil, false
	}
	w = make([]float32, len(e.Sums))
	if f.Legacy {
		var ncall int64
		if len(e.Counts) > 0 {
			ncall = e.Counts[0]
		}
		for i, v := range e.Sums {
			if ncall > 0 {
				w[i] = v / float32(ncall)
			} else {
				w[i] = v
			}
		}
		return w, true
	}
	cols := len(e.Sums) / max(1, len(e.Counts))
	for x, c := range e.Counts {
		for i := x * cols; i < (x+1)*cols; i++ {
			if c > 0 {
				w[i] = e.Sums[i] / float32(c)
			} else {
				w[i] = 1
			}
		}
	}
	return w, true
}

// check validates an entry's shape: values present, a whole number of
// columns per count.
func (e *Entry) check() error {
	if e.Name == "" {
		return errors.New("entry with an empty name")
	}
	if len(e.Sums) == 0 {
		return fmt.Errorf("entry %q has no values", e.Name)
	}
	if len(e.Counts) == 0 || len(e.Sums)%len(e.Counts) != 0 {
		return fmt.Errorf("entry %q: %d values are not whole rows for %d counts", e.Name, len(e.Sums), len(e.Counts))
	}
	return nil
}

// Read reads the importance matrix at path, in either format; it refuses
// (naming the file and the problem) a file that is neither, a truncated
// one, an entry without values or with sums and counts that do not match,
// and a GGUF one with non-F32 data.
func Read(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("imatrix: %w", err)
	}
	var f *File
	if bytes.HasPrefix(data, []byte("GGUF")) {
		f, err = readGGUF(path)
	} else {
		f, err = readLegacy(data)
	}
	if err != nil {
		return nil, fmt.Errorf("imatrix: %s: %w", path, err)
	}
	return f, nil
}

// readLegacy parses the .dat format as common_imatrix_load_legacy does.
func readLegacy(data []byte) (*File, error) {
	r := bytes.NewReader(data)
	i32 := func(what string) (int32, error) {
		var v int32
		if err := binary.Read(r, binary.LittleEndian, &v); err != nil {
			return 0, fmt.Errorf("legacy format: truncated reading %s", what)
		}
		return v, nil
	}
	n, err := i32("the entry count")
	if err != nil {
		return nil, errors.New("neither GGUF nor the legacy format: shorter than 4 bytes")
	}
	if n < 1 || n > maxEntries {
		return nil, fmt.Errorf("neither GGUF nor the legacy format: entry count %d", n)
	}
	f := &File{Legacy: true}
	for i := range int(n) {
		l, err := i32(fmt.Sprintf("the name length of entry %d", i+1))
		if err != nil {
			return nil, err
		}
		if l < 0 || l > maxNameLen || int(l) > r.Len() {
			return nil, fmt.Errorf("legacy format: entry %d: name length %d", i+1, l)
		}
		name := make([]byte, l)
		_, _ = io.ReadFull(r, name)
		ncall, err := i32(fmt.Sprintf("ncall of %q", name))
		if err != nil {
			return nil, err
		}
		nval, err := i32(fmt.Sprintf("the value count of %q", name))
		if err != nil {
			return nil, err
		}
		if nval < 1 || nval > maxValues || int64(nval)*4 > int64(r.Len()) {
			return nil, fmt.Errorf("legacy format: entry %q: %d values (%d bytes left)", name, nval, r.Len())
		}
		e := Entry{Name: string(name), Sums: make([]float32, nval), Counts: []int64{int64(ncall)}}
		_ = binary.Read(r, binary.LittleEndian, e.Sums)
		f.Entries = append(f.Entries, e)
	}
	if r.Len() > 0 { // the optional chunk count and dataset
		if c, err := i32("the chunk count"); err == nil {
			f.ChunkCount = int(c)
			if l, err := i32("the dataset name length"); err == nil && l > 0 {
				if int(l) > r.Len() {
					return nil, fmt.Errorf("legacy format: dataset name of %d bytes, %d left", l, r.Len())
				}
				ds := make([]byte, l)
				_, _ = io.ReadFull(r, ds)
				// C reads it as a NUL-terminated string.
				if k := bytes.IndexByte(ds, 0); k >= 0 {
					ds = ds[:k]
				}
				f.Datasets = []string{string(ds)}
			}
		}
	}
	return f, f.normalize()
}

// normalize sorts the entries by name (llama.cpp keeps them in a
// std::map: a name given twice keeps the last values) and checks them.
func (f *File) normalize() error {
	byName := map[string]int{}
	var out []Entry
	for _, e := range f.Entries {
		if i, ok := byName[e.Name]; ok {
			out[i] = e
			continue
		}
		byName[e.Name] = len(out)
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	f.Entries = out
	for i := range f.Entries {
		if err := f.Entries[i].check(); err != nil {
			return err
		}
	}
	return nil
}

const (
	sumSuffix   = ".in_sum2"
	countSuffix = ".counts"
)

// readGGUF parses the GGUF format as common_imatrix_load does.
func readGGUF(path string) (*File, error) {
	g, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer g.Close()
	tensors := g.Tensors()
	if len(tensors) == 0 {
		return nil, errors.New("GGUF imatrix with no tensors")
	}
	f := &File{}
	ds, okD := g.Strings("imatrix.datasets")
	if okD {
		f.Datasets = ds
	}
	cc, okC := g.Uint32("imatrix.chunk_count")
	cs, okS := g.Uint32("imatrix.chunk_size")
	_, hasD := g.Value("imatrix.datasets")
	_, hasC := g.Value("imatrix.chunk_count")
	_, hasS := g.Value("imatrix.chunk_size")
	f.HasMetadata = hasD && hasC && hasS
	if (hasC && !okC) || (hasS && !okS) {
		return nil, errors.New("imatrix.chunk_count and imatrix.chunk_size must be uint32")
	}
	f.ChunkCount, f.ChunkSize = int(cc), int(cs)
	sums := map[string]gguf.TensorInfo{}
	counts := map[string]gguf.TensorInfo{}
	for _, t := range tensors {
		switch {
		case strings.HasSuffix(t.Name, sumSuffix):
			sums[strings.TrimSuffix(t.Name, sumSuffix)] = t
		case strings.HasSuffix(t.Name, countSuffix):
			counts[strings.TrimSuffix(t.Name, countSuffix)] = t
		}
	}
	for name, st := range sums {
		ct, ok := counts[name]
		if !ok {
			return nil, fmt.Errorf("tensor %s%s has no %s%s", name, sumSuffix, name, countSuffix)
		}
		if st.Type != gguf.TypeF32 || ct.Type != gguf.TypeF32 {
			return nil, fmt.Errorf("entry %q: sums are %v and counts %v, both must be F32", name, st.Type, ct.Type)
		}
		s, err := g.Float32(st.Name)
		if err != nil {
			return nil, err
		}
		c, err := g.Float32(ct.Name)
		if err != nil {
			return nil, err
		}
		e := Entry{Name: name, Sums: s, Counts: make([]int64, len(c))}
		for i, v := range c {
			if !(v >= 0 && v < 1<<62) {
				return nil, fmt.Errorf("entry %q: count %v", name, v)
			}
			e.Counts[i] = int64(math.Round(float64(v))) // std::lround
		}
		f.Entries = append(f.Entries, e)
	}
	for name := range counts {
		if _, ok := sums[name]; !ok {
			return nil, fmt.Errorf("tensor %s%s has no %s%s", name, countSuffix, name, sumSuffix)
		}
	}
	if len(f.Entries) == 0 {
		return nil, errors.New("GGUF file without imatrix entries (no NAME.in_sum2 tensors): not an importance matrix")
	}
	return f, f.normalize()
}

// WriteGGUF writes f to path in llama-imatrix's GGUF format (atomically:
// nothing appears at path on failure). Entries read from a legacy file are
// converted as llama-imatrix converts them when it loads one (sums ×
// ChunkSize, counts = ncall × ChunkSize), which needs ChunkSize > 0.
func WriteGGUF(path string, f *File) error {
	meta := []gguf.KV{
		{Key: "general.type", Value: "imatrix"},
		{Key: "imatrix.datasets", Value: append([]string{}, f.Datasets...)},
		{Key: "imatrix.chunk_count", Value: uint32(f.ChunkCount)},
		{Key: "imatrix.chunk_size", Value: uint32(f.ChunkSize)},
	}
	if f.ChunkCount < 0 || f.ChunkCount > math.MaxUint32 || f.ChunkSize < 0 || f.ChunkSize > math.MaxUint32 {
		return fmt.Errorf("imatrix: %s: chunk count %d or size %d out of range", path, f.ChunkCount, f.ChunkSize)
	}
	if f.Legacy && f.ChunkSize <= 0 {
		return fmt.Errorf("imatrix: %s: converting legacy entries to GGUF needs the chunk size", path)
	}
	g := *f
	if err := g.normalize(); err != nil {
		return fmt.Errorf("imatrix: %s: %w", path, err)
	}
	var tensors []gguf.Tensor
	for _, e := range g.Entries {
		sums, counts := e.Sums, e.Counts
		if f.Legacy {
			sums = make([]float32, len(e.Sums))
			for i, v := range e.Sums {
				sums[i] = float32(v * float32(f.ChunkSize))
			}
			counts = []int64{e.Counts[0] * int64(f.ChunkSize)}
		}
		nmat := len(counts)
		c := make([]float32, nmat)
		for i, v := range counts {
			c[i] = float32(v)
		}
		// ggml writes ggml_n_dims dimensions: a trailing 1 dropped.
		sdims, cdims := []int{len(sums) / nmat, nmat}, []int{1, nmat}
		if nmat == 1 {
			sdims, cdims = sdims[:1], cdims[:1]
		}
		tensors = append(tensors,
			gguf.Tensor{Name: e.Name + sumSuffix, Type: gguf.TypeF32, Dims: sdims, Data: f32Bytes(sums)},
			gguf.Tensor{Name: e.Name + countSuffix, Type: gguf.TypeF32, Dims: cdims, Data: f32Bytes(c)})
	}
	if err := gguf.WriteFile(path, meta, tensors); err != nil {
		return fmt.Errorf("imatrix: %w", err)
	}
	return nil
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// WriteLegacy writes f to out in the legacy .dat format, as llama-imatrix
// --output-format dat does: per entry ncall = ⌈max(Counts)/ChunkSize⌉ and
// the values Sums/count·ncall (1·ncall for an expert with no count), then
// ChunkCount and the last dataset name. Entries read from a legacy file
// are written as they are.
func WriteLegacy(out io.Writer, f *File) error {
	g := *f
	if err := g.normalize(); err != nil {
		return fmt.Errorf("imatrix: %w", err)
	}
	if !f.Legacy && f.ChunkSize <= 0 {
		return errors.New("imatrix: the legacy format needs the chunk size (ncall = tokens / chunk size)")
	}
	w := bufio.NewWriter(out)
	put := func(v any) { _ = binary.Write(w, binary.LittleEndian, v) }
	put(int32(len(g.Entries)))
	for _, e := range g.Entries {
		put(int32(len(e.Name)))
		w.WriteString(e.Name)
		vals, ncall := e.Sums, int32(0)
		if f.Legacy {
			ncall = int32(e.Counts[0])
		} else {
			ncall = int32((slices.Max(e.Counts) + int64(f.ChunkSize) - 1) / int64(f.ChunkSize))
			cols := len(e.Sums) / len(e.Counts)
			vals = make([]float32, len(e.Sums))
			for i, v := range e.Sums {
				count := float32(e.Counts[i/cols])
				if count == 0 {
					v, count = 1, 1
				}
				vals[i] = float32(v/count) * float32(ncall)
			}
		}
		put(ncall)
		put(int32(len(vals)))
		put(vals)
	}
	put(int32(f.ChunkCount))
	var ds string
	if len(f.Datasets) > 0 {
		ds = f.Datasets[len(f.Datasets)-1]
	}
	put(int32(len(ds)))
	w.WriteString(ds)
	return w.Flush()
}
