package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// idx builds an idx file of unsigned bytes with the given dims and data.
func idx(magic uint32, dims []int, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, magic)
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, uint32(d))
	}
	return append(b, data...)
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func write(t *testing.T, dir, name string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// small writes a set of n images of 3×2 whose pixel j of image i is
// i·6+j, labelled i%3; gzipped or not.
func small(t *testing.T, dir, prefix string, n int, zip bool) {
	px := make([]byte, n*6)
	for i := range px {
		px[i] = byte(i)
	}
	lb := make([]byte, n)
	for i := range lb {
		lb[i] = byte(i % 3)
	}
	img, lab := idx(0x803, []int{n, 3, 2}, px), idx(0x801, []int{n}, lb)
	suffix := ""
	if zip {
		img, lab, suffix = gz(img), gz(lab), ".gz"
	}
	write(t, dir, prefix+"-images-idx3-ubyte"+suffix, img)
	write(t, dir, prefix+"-labels-idx1-ubyte"+suffix, lab)
}

func TestLoadDir(t *testing.T) {
	for _, zip := range []bool{false, true} {
		dir := t.TempDir()
		small(t, dir, "t10k", 5, zip)
		small(t, dir, "train", 7, zip)
		s, err := Load(dir, "test")
		if err != nil {
			t.Fatal(err)
		}
		if s.N != 5 || s.C != 1 || s.H != 3 || s.W != 2 || s.Classes != 3 || len(s.Pixels) != 30 ||
			!slices.Equal(s.Labels, []uint8{0, 1, 2, 0, 1}) || s.Pixels[29] != 29 {
			t.Errorf("gzip %v: %+v", zip, s)
		}
		if tr, err := Load(dir, "train"); err != nil || tr.N != 7 {
			t.Errorf("train split: %v", err)
		}
		dst := make([]float32, 2*6+1)
		dst[12] = -1 // guard
		s.Input(dst, []int{4, 1}, 0.5)
		for j := 0; j < 6; j++ {
			if dst[j] != float32(24+j)*0.5 || dst[6+j] != float32(6+j)*0.5 {
				t.Fatalf("Input: %v", dst)
			}
		}
		if dst[12] != -1 {
			t.Error("Input wrote past the batch")
		}
	}
}

func TestLoadErrors(t *testing.T) {
	good := idx(0x803, []int{2, 2, 2}, make([]byte, 8))
	labels := idx(0x801, []int{2}, []byte{0, 1})
	cases := []struct {
		name       string
		img, lab   []byte
		zip        bool
		file, want string
	}{
		{"truncated", good[:len(good)-3], labels, false, "images", "header says 2 images of 2×2 (24 bytes with the header) but the file has 21 bytes"},
		{"truncated gzip", gz(good[:len(good)-3]), labels, false, "images", "the data ends after 5 of 8 bytes"},
		{"cut gzip stream", gz(good)[:20], labels, false, "images", "images-idx3-ubyte"},
		{"extra gzip", gz(append(good, 1)), labels, false, "images", "more data than the header's 2 images"},
		{"short header", good[:10], labels, false, "images", "header of 16 bytes: file too short"},
		{"wrong magic", idx(0x801, []int{2, 2, 2}, make([]byte, 8)), labels, false, "images", "magic number 0x00000801, want 0x00000803"},
		{"labels as images", good, good, false, "labels", "magic number 0x00000803, want 0x00000801"},
		{"count mismatch", good, idx(0x801, []int{3}, []byte{0, 1, 2}), false, "labels", "holds 3 labels but"},
		{"huge header", idx(0x803, []int{1 << 30, 28, 28}, nil), labels, false, "images", "outside the limits"},
		{"zero side", idx(0x803, []int{1, 0, 28}, nil), labels, false, "images", "outside the limits"},
		{"bad gzip", []byte{0x1f, 0x8b, 0, 0}, labels, false, "images", "gzip"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		write(t, dir, "t10k-images-idx3-ubyte", c.img)
		write(t, dir, "t10k-labels-idx1-ubyte", c.lab)
		_, err := Load(dir, "test")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.file) {
			t.Errorf("%s: %v; want an error naming the %s file and containing %q", c.name, err, c.file, c.want)
		}
	}
	dir := t.TempDir()
	if _, err := Load(dir, "test"); err == nil || !strings.Contains(err.Error(), "no t10k-images-idx3-ubyte.gz or t10k-images-idx3-ubyte") {
		t.Errorf("empty directory: %v", err)
	}
	if _, err := Load(dir, "validation"); err == nil || !strings.Contains(err.Error(), "want train or test") {
		t.Errorf("bad split: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "nope"), "test"); err == nil || !strings.Contains(err.Error(), "neither mnist") {
		t.Errorf("missing directory: %v", err)
	}
	write(t, dir, "file", nil)
	if _, err := Load(filepath.Join(dir, "file"), "test"); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file as directory: %v", err)
	}
}

// QUANTKIT_DATA comes first, and a named set's labels must be under 10.
func TestEnvFirst(t *testing.T) {
	dir := t.TempDir()
	small(t, filepath.Join(dir, "fashion-mnist"), "t10k", 4, true)
	t.Setenv(Env, dir)
	s, err := Load("fashion-mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "fashion-mnist" || s.N != 4 || s.Classes != 10 || !strings.HasPrefix(s.ImageFile, dir) {
		t.Errorf("%+v", s)
	}
	write(t, filepath.Join(dir, "fashion-mnist"), "t10k-labels-idx1-ubyte.gz", gz(idx(0x801, []int{4}, []byte{0, 1, 12, 3})))
	if _, err := Load("fashion-mnist", "test"); err == nil || !strings.Contains(err.Error(), "a label is 12") {
		t.Errorf("label 12: %v", err)
	}
	// Nothing there, nothing installed: the error says where it looked.
	defer func(d string) { fashionDir = d }(fashionDir)
	fashionDir = filepath.Join(t.TempDir(), "none")
	t.Setenv(Env, t.TempDir())
	_, err = Load("fashion-mnist", "train")
	if err == nil || !strings.Contains(err.Error(), "dataset-fashion-mnist") || !strings.Contains(err.Error(), Env) {
		t.Errorf("missing set: %v", err)
	}
}

// The real MNIST test set, where it can be found or fetched.
func TestMNIST(t *testing.T) {
	t.Setenv(Env, "")
	s, err := Load("mnist", "test")
	if err != nil {
		t.Skipf("MNIST unreachable here (no module cache or proxy): %v", err)
	}
	if s.N != 10000 || s.H != 28 || s.W != 28 || s.C != 1 || s.Classes != 10 {
		t.Fatalf("%d images of %d×%d×%d, %d classes", s.N, s.C, s.H, s.W, s.Classes)
	}
	// The label counts of the MNIST test set, and its first labels.
	var count [10]int
	for _, l := range s.Labels {
		count[l]++
	}
	if count != [10]int{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009} {
		t.Errorf("label counts %v", count)
	}
	if !slices.Equal(s.Labels[:5], []uint8{7, 2, 1, 0, 4}) {
		t.Errorf("first labels %v", s.Labels[:5])
	}
	var sum int
	for _, p := range s.Pixels {
		sum += int(p)
	}
	if mean := float64(sum) / float64(len(s.Pixels)); mean < 33 || mean > 34 {
		t.Errorf("mean pixel %.2f, want about 33.3", mean)
	}
}

func TestVerifyMNIST(t *testing.T) {
	dir := t.TempDir()
	small(t, dir, "t10k", 3, true)
	if err := verifyMNIST(dir, "t10k"); err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Errorf("files other than MNIST's pass the pinned hashes: %v", err)
	}
}

// Fashion-MNIST from the Debian package, where it is installed.
func TestFashionMNIST(t *testing.T) {
	t.Setenv(Env, "")
	s, err := Load("fashion-mnist", "test")
	if err != nil {
		t.Skipf("Fashion-MNIST not installed here (Debian package dataset-fashion-mnist): %v", err)
	}
	var count [10]int
	for _, l := range s.Labels {
		count[l]++
	}
	if s.N != 10000 || s.H != 28 || s.W != 28 || count != [10]int{1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000} || s.Labels[0] != 9 {
		t.Errorf("%d images of %dx%d, label counts %v, first label %d", s.N, s.H, s.W, count, s.Labels[0])
	}
	if !strings.HasPrefix(s.ImageFile, FashionDir) {
		t.Errorf("read from %s", s.ImageFile)
	}
}
