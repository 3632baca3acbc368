package imatrix

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/model/gguf"
)

// TestAccumulatorByHand: two batches into one tensor, one into another,
// against sums worked out by hand.
func TestAccumulatorByHand(t *testing.T) {
	a := NewAccumulator()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.Add("blk.0.ffn_up.weight", []float32{1, 2, 3, -1}, 2)) // rows (1,2) (3,−1)
	must(a.Add("blk.0.ffn_up.weight", []float32{0.5, 0}, 2))      // row (0.5,0)
	must(a.Add("blk.0.attn_q.weight", []float32{-2, 0, 4}, 3))
	f := a.File(2, "calib.txt")
	want := []Entry{
		{Name: "blk.0.attn_q.weight", Sums: []float32{4, 0, 16}, Counts: []int64{1}},
		{Name: "blk.0.ffn_up.weight", Sums: []float32{1 + 9 + 0.25, 4 + 1 + 0}, Counts: []int64{3}},
	}
	if !reflect.DeepEqual(f.Entries, want) {
		t.Fatalf("entries %+v, want %+v", f.Entries, want)
	}
	if f.ChunkCount != 1 || f.ChunkSize != 2 || !reflect.DeepEqual(f.Datasets, []string{"calib.txt"}) {
		t.Errorf("chunks %d of %d, datasets %q", f.ChunkCount, f.ChunkSize, f.Datasets)
	}
	w, ok := f.Importance("blk.0.ffn_up.weight")
	if !ok || w[0] != float32(10.25)/3 || w[1] != float32(5)/3 {
		t.Errorf("importance %v, want [10.25/3 5/3]", w)
	}
	if _, ok := f.Importance("blk.1.ffn_up.weight"); ok {
		t.Error("importance of a tensor never added")
	}
	if err := a.Add("blk.0.ffn_up.weight", []float32{1, 2, 3}, 3); err == nil {
		t.Error("a row length change was accepted")
	}
	if err := a.Add("x", []float32{1, 2, 3}, 2); err == nil {
		t.Error("a partial row was accepted")
	}
	if err := a.Add("blk.0.attn_q.weight", []float32{1, float32(math.Inf(1)), 0}, 3); err == nil || !strings.Contains(err.Error(), "column 1") {
		t.Errorf("an infinite activation: %v", err)
	}
	if g := a.File(2); g.Entries[0].Sums[0] != 4 {
		t.Errorf("a refused Add changed the sums: %v", g.Entries[0].Sums)
	}
}

// moeFile has a dense entry and a two-expert one whose second expert saw
// no tokens.
func moeFile() *File {
	return &File{
		Entries: []Entry{
			{Name: "blk.0.ffn_down_exps.weight", Sums: []float32{2, 4, 6, 8, 10, 12}, Counts: []int64{2, 0}},
			{Name: "blk.0.attn_k.weight", Sums: []float32{1.5, 0, 3e30, 1e-30}, Counts: []int64{512}},
		},
		Datasets: []string{"a.txt", "b.txt"}, ChunkCount: 7, ChunkSize: 512, HasMetadata: true,
	}
}

func TestGGUFRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "imatrix.gguf")
	in := moeFile()
	if err := WriteGGUF(path, in); err != nil {
		t.Fatal(err)
	}
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	want := moeFile()
	want.Entries[0], want.Entries[1] = want.Entries[1], want.Entries[0] // name order
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("read back %+v, want %+v", f, want)
	}
	// The layout llama-imatrix writes: sums columns × experts, counts 1 × experts.
	g, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var got []string
	for _, ti := range g.Tensors() {
		got = append(got, ti.Name+fmt.Sprint(ti.Dims))
	}
	wantT := []string{"blk.0.attn_k.weight.in_sum2[4]", "blk.0.attn_k.weight.counts[1]",
		"blk.0.ffn_down_exps.weight.in_sum2[3 2]", "blk.0.ffn_down_exps.weight.counts[1 2]"}
	if !reflect.DeepEqual(got, wantT) {
		t.Errorf("tensors %q, want %q", got, wantT)
	}
	if s, _ := g.String("general.type"); s != "imatrix" {
		t.Errorf("general.type %q", s)
	}
	w, _ := f.Importance("blk.0.ffn_down_exps.weight")
	if !reflect.DeepEqual(w, []float32{1, 2, 3, 1, 1, 1}) {
		t.Errorf("expert importance %v, want [1 2 3 1 1 1] (an expert without tokens gets 1s)", w)
	}
}

// legacyBytes is a .dat file written by hand from the format's
// description: two entries, then chunk count 3 and dataset "wiki.txt".
func legacyBytes() []byte {
	var b bytes.Buffer
	put := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	put(int32(2))
	put(int32(len("output.weight")))
	b.WriteString("output.weight")
	put(int32(3))          // ncall
	put(int32(2))          // nval
	put([]float32{6, 1.5}) // Σx²/count·ncall
	put(int32(len("blk.0.attn_q.weight")))
	b.WriteString("blk.0.attn_q.weight")
	put(int32(0))
	put(int32(1))
	put([]float32{0.25})
	put(int32(3))
	put(int32(len("wiki.txt")))
	b.WriteString("wiki.txt")
	return b.Bytes()
}

func TestLegacyRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "imatrix.dat")
	if err := os.WriteFile(path, legacyBytes(), 0o666); err != nil {
		t.Fatal(err)
	}
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	want := &File{Legacy: true, ChunkCount: 3, Datasets: []string{"wiki.txt"}, Entries: []Entry{
		{Name: "blk.0.attn_q.weight", Sums: []float32{0.25}, Counts: []int64{0}},
		{Name: "output.weight", Sums: []float32{6, 1.5}, Counts: []int64{3}},
	}}
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("read %+v, want %+v", f, want)
	}
	// llama-quantize divides by ncall, and keeps the values where ncall is 0.
	if w, _ := f.Importance("output.weight"); !reflect.DeepEqual(w, []float32{2, 0.5}) {
		t.Errorf("importance %v, want [2 0.5]", w)
	}
	if w, _ := f.Importance("blk.0.attn_q.weight"); !reflect.DeepEqual(w, []float32{0.25}) {
		t.Errorf("importance %v, want [0.25]", w)
	}
	// Written back, the same bytes.
	var out bytes.Buffer
	if err := WriteLegacy(&out, f); err != nil {
		t.Fatal(err)
	}
	// Entries come out in name order: compare by reading again.
	g, err := readLegacy(out.Bytes())
	if err != nil || !reflect.DeepEqual(g, want) {
		t.Errorf("legacy round trip: %+v, %v", g, err)
	}
}

// TestLegacyFromSums: written from sums and counts, the values are
// Σx²/count·ncall with ncall = ⌈count/chunk size⌉, and llama-quantize's
// importance comes back to Σx²/count (within the roundings).
func TestLegacyFromSums(t *testing.T) {
	in := moeFile()
	var out bytes.Buffer
	if err := WriteLegacy(&out, in); err != nil {
		t.Fatal(err)
	}
	f, err := readLegacy(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	k, _ := f.Entry("blk.0.attn_k.weight")
	if k.Counts[0] != 1 || !reflect.DeepEqual(k.Sums, []float32{1.5 / 512, 0, 3e30 / 512, float32(1e-30) / 512}) {
		t.Errorf("attn_k: ncall %d, values %v", k.Counts[0], k.Sums)
	}
	e, _ := f.Entry("blk.0.ffn_down_exps.weight")
	// max count 2 → ncall 1; the empty expert stores 1.
	if e.Counts[0] != 1 || !reflect.DeepEqual(e.Sums, []float32{1, 2, 3, 1, 1, 1}) {
		t.Errorf("experts: ncall %d, values %v", e.Counts[0], e.Sums)
	}
	if f.ChunkCount != 7 || !reflect.DeepEqual(f.Datasets, []string{"b.txt"}) {
		t.Errorf("chunk count %d, datasets %q", f.ChunkCount, f.Datasets)
	}
}

func TestReadRefusesMalformed(t *testing.T) {
	dir := t.TempDir()
	good := legacyBytes()
	cases := map[string][]byte{
		"empty":            nil,
		"zero entries":     {0, 0, 0, 0},
		"truncated values": good[:40],
		"negative name":    append([]byte{1, 0, 0, 0}, 0xff, 0xff, 0xff, 0xff),
		"no values":        func() []byte { b := bytes.Clone(good); binary.LittleEndian.PutUint32(b[4+4+13+4:], 0); return b }(),
	}
	for name, data := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".dat")
		if err := os.WriteFile(path, data, 0o666); err != nil {
			t.Fatal(err)
		}
		_, err := Read(path)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %v (want one naming %s)", name, err, path)
		}
	}
	// GGUF: sums without counts, F16 sums, no entries at all.
	for name, tensors := range map[string][]gguf.Tensor{
		"sums without counts": {{Name: "a.in_sum2", Type: gguf.TypeF32, Dims: []int{1}, Data: f32Bytes([]float32{1})}},
		"F16 sums": {{Name: "a.in_sum2", Type: gguf.TypeF16, Dims: []int{2}, Data: []byte{0, 0x3c, 0, 0x3c}},
			{Name: "a.counts", Type: gguf.TypeF32, Dims: []int{1}, Data: f32Bytes([]float32{1})}},
		"a model, not an imatrix": {{Name: "blk.0.attn_q.weight", Type: gguf.TypeF32, Dims: []int{1}, Data: f32Bytes([]float32{1})}},
		"sums not whole rows": {{Name: "a.in_sum2", Type: gguf.TypeF32, Dims: []int{3}, Data: f32Bytes([]float32{1, 2, 3})},
			{Name: "a.counts", Type: gguf.TypeF32, Dims: []int{1, 2}, Data: f32Bytes([]float32{1, 1})}},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".gguf")
		if err := gguf.WriteFile(path, nil, tensors); err != nil {
			t.Fatal(err)
		}
		_, err := Read(path)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %v (want one naming %s)", name, err, path)
		}
	}
	if _, err := Read(filepath.Join(dir, "missing.dat")); err == nil {
		t.Error("a missing file was read")
	}
}
