package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"github.com/quantkit/quantkit/internal/testenv"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/internal/alloctest"
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
		{"truncated", good[:len(good)-3], labels, false, "images", "header declares 2 images of 2×2 (24 bytes with the header) but the file has 21 bytes"},
		{"truncated gzip", gz(good[:len(good)-3]), labels, false, "images", "header declares 2 images of 2×2 (8 bytes) but the data ends after 5 bytes"},
		{"cut gzip stream", gz(good)[:20], labels, false, "images", "images-idx3-ubyte"},
		{"extra gzip", gz(append(good, 1)), labels, false, "images", "more data than the header's 2 images"},
		{"cut gzip trailer", gz(good)[:len(gz(good))-4], labels, false, "images", "the gzip stream is cut short after the header's 2 images of 2×2"},
		{"short raw labels", good, labels[:9], false, "labels", "header declares 2 labels (10 bytes with the header) but the file has 9 bytes"},
		{"short header", good[:10], labels, false, "images", "header of 16 bytes: file too short"},
		{"wrong magic", idx(0x801, []int{2, 2, 2}, make([]byte, 8)), labels, false, "images", "magic number 0x00000801, want 0x00000803"},
		{"labels as images", good, good, false, "labels", "magic number 0x00000803, want 0x00000801"},
		{"count mismatch", good, idx(0x801, []int{3}, []byte{0, 1, 2}), false, "labels", "declares 3 labels but"},
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
		testenv.Missing(t, "MNIST unreachable here (no module cache or proxy): %v", err)
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

// hostile is a gzipped idx image file of about 300 bytes whose header
// declares the most images of the largest sides the limits allow (256 TiB
// of pixels), followed by 64 KiB of zeros.
func hostile() []byte {
	return gz(idx(0x803, []int{MaxImages, MaxSide, MaxSide}, make([]byte, 1<<16)))
}

// The bound a reader is held to: allocFactor times the bytes its input
// holds (decompressed, for gzip) plus allocSlack for fixed costs (read
// buffers, the gzip decompressor, the first chunk of a body).
const (
	allocFactor = 4
	allocSlack  = 1 << 20
)

// A header that declares 256 TiB costs what the file holds, not what it
// declares: reading the 300-byte file allocates less than 2 MiB and fails
// at the end of its data, naming the file.
func TestHostileGzipAllocation(t *testing.T) {
	img := hostile()
	if len(img) > 400 {
		t.Fatalf("the hostile file has %d bytes", len(img))
	}
	dir := t.TempDir()
	write(t, dir, "t10k-images-idx3-ubyte.gz", img)
	write(t, dir, "t10k-labels-idx1-ubyte.gz", gz(idx(0x801, []int{MaxImages}, make([]byte, 10))))
	var err error
	if e := alloctest.Check("LoadDir", len(img), allocFactor, 2<<20, func() { _, err = LoadDir(dir, "test") }); e != nil {
		t.Error(e)
	}
	want := "t10k-images-idx3-ubyte.gz: header declares 16777216 images of 4096×4096 (281474976710656 bytes) but the data ends after 65536 bytes"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("%v; want an error containing %q", err, want)
	}
}

// A corrupt gzip stream is reported as such, even where it decompresses
// to more bytes than the header declares.
func TestCorruptGzip(t *testing.T) {
	good := idx(0x803, []int{2, 2, 2}, make([]byte, 8))
	labels := idx(0x801, []int{2}, []byte{0, 1})
	// The CRC-32 in the trailer of a stream one byte longer than declared.
	longer := gz(append(slices.Clone(good), 7))
	longer[len(longer)-8] ^= 0xff
	// A stream whose deflate data turns to garbage after the declared data.
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(good)
	w.Flush()
	garbage := append(buf.Bytes(), 0xff, 0xff, 0xff, 0xff)
	// A stream whose checksum is wrong, its length right.
	badSum := gz(good)
	badSum[len(badSum)-8] ^= 0xff
	for _, c := range []struct {
		name string
		img  []byte
		want string
	}{
		{"checksum, more data", longer, "t10k-images-idx3-ubyte.gz: gzip: invalid checksum"},
		{"flate garbage", garbage, "t10k-images-idx3-ubyte.gz: gzip: flate: corrupt input"},
		{"checksum", badSum, "t10k-images-idx3-ubyte.gz: gzip: invalid checksum"},
	} {
		dir := t.TempDir()
		write(t, dir, "t10k-images-idx3-ubyte.gz", c.img)
		write(t, dir, "t10k-labels-idx1-ubyte.gz", gz(labels))
		if _, err := Load(dir, "test"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error containing %q", c.name, err, c.want)
		}
	}
}

// The image and label files must declare the same count, which is checked
// before either body is read.
func TestCountsCheckedFirst(t *testing.T) {
	dir := t.TempDir()
	// 1000 images declared, 2 there; 3 labels.
	write(t, dir, "t10k-images-idx3-ubyte.gz", gz(idx(0x803, []int{1000, 2, 2}, make([]byte, 8))))
	write(t, dir, "t10k-labels-idx1-ubyte.gz", gz(idx(0x801, []int{3}, []byte{0, 1, 2})))
	_, err := Load(dir, "test")
	if err == nil || !strings.Contains(err.Error(), "t10k-labels-idx1-ubyte.gz declares 3 labels but") ||
		!strings.Contains(err.Error(), "t10k-images-idx3-ubyte.gz declares 1000 images") {
		t.Errorf("%v; want the counts of both files", err)
	}
}

// gzipCorruptAfter is a gzipped idx file whose header declares n records of
// unit bytes and whose stream holds the first k of them (byte j of the
// data is j) and then turns to garbage.
func gzipCorruptAfter(magic uint32, dims []int, k, unit int) []byte {
	data := make([]byte, k*unit)
	for j := range data {
		data[j] = byte(j)
	}
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(idx(magic, dims, data))
	w.Flush()
	return append(buf.Bytes(), 0xff, 0xff, 0xff, 0xff)
}

// LoadDirLimit and LoadLimit decompress only the first images: what
// follows them is not read, so it may be corrupt, or missing.
func TestLoadLimit(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "t10k-images-idx3-ubyte.gz", gzipCorruptAfter(0x803, []int{1000, 3, 2}, 4, 6))
	write(t, dir, "t10k-labels-idx1-ubyte.gz", gzipCorruptAfter(0x801, []int{1000}, 4, 1))
	for _, limit := range []int{1, 4} {
		s, err := LoadDirLimit(dir, "test", limit)
		if err != nil {
			t.Fatalf("limit %d: %v", limit, err)
		}
		if s.N != limit || len(s.Pixels) != limit*6 || len(s.Labels) != limit || s.Pixels[limit*6-1] != byte(limit*6-1) ||
			s.Labels[limit-1] != byte(limit-1) || s.Classes != limit {
			t.Errorf("limit %d: %+v", limit, s)
		}
	}
	if _, err := LoadLimit(dir, "test", 5); err == nil || !strings.Contains(err.Error(), "t10k-images-idx3-ubyte.gz: gzip: flate: corrupt input") {
		t.Errorf("limit 5, past the good data: %v", err)
	}
	if _, err := LoadDir(dir, "test"); err == nil || !strings.Contains(err.Error(), "gzip: flate: corrupt input") {
		t.Errorf("no limit: %v", err)
	}
	// A limit above the count reads the whole set and checks its end.
	small(t, dir, "train", 3, false)
	if s, err := LoadLimit(dir, "train", 10); err != nil || s.N != 3 {
		t.Errorf("limit 10 of 3: %v", err)
	}
	// Raw files are still held to the size their header declares.
	write(t, dir, "train-images-idx3-ubyte", idx(0x803, []int{3, 3, 2}, make([]byte, 17)))
	if _, err := LoadLimit(dir, "train", 1); err == nil || !strings.Contains(err.Error(), "but the file has 33 bytes") {
		t.Errorf("short raw file, limit 1: %v", err)
	}
}

// inflated is how many bytes the reader could see in b: b's length, or
// what the gzip stream in b decompresses to before it ends or fails, when
// that is more.
func inflated(b []byte) int {
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		return len(b)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return len(b)
	}
	n, _ := io.Copy(io.Discard, zr)
	return max(len(b), int(n))
}

// FuzzReadIdx feeds arbitrary bytes, as they are and gzipped, to the idx
// reader as images and as labels, with a limit or none. It must not panic;
// it must return either an error naming the file or exactly the data the
// header declares; and it must allocate no more than allocFactor times what
// the input holds (decompressed) plus allocSlack, whatever the header
// declares.
func FuzzReadIdx(f *testing.F) {
	f.Add(hostile(), uint16(0))
	f.Add(gz(idx(0x803, []int{100000, 28, 28}, make([]byte, 784))), uint16(0)) // 78 MB declared, 1 image there
	f.Add(idx(0x803, []int{2, 3, 2}, make([]byte, 12)), uint16(0))
	f.Add(idx(0x803, []int{2, 3, 2}, make([]byte, 12)), uint16(1))
	f.Add(idx(0x801, []int{3}, []byte{0, 1, 2}), uint16(0))
	f.Add(idx(0x801, []int{MaxImages}, []byte{0, 1, 2}), uint16(0))
	f.Add(idx(0x803, []int{MaxImages, MaxSide, MaxSide}, nil), uint16(0))
	f.Add(idx(0x803, []int{1, 0, 28}, nil), uint16(0))
	f.Add(gz(idx(0x801, []int{3}, []byte{0, 1, 2})), uint16(0))
	f.Add(gzipCorruptAfter(0x803, []int{1000, 3, 2}, 4, 6), uint16(4))
	badSum := gz(idx(0x801, []int{3}, []byte{0, 1, 2}))
	badSum[len(badSum)-8] ^= 0xff
	f.Add(badSum, uint16(0))
	f.Add([]byte{0x1f, 0x8b}, uint16(0))
	f.Add([]byte{}, uint16(0))
	const path = "fuzz-idx-ubyte"
	f.Fuzz(func(t *testing.T, b []byte, limit uint16) {
		for _, in := range [][]byte{b, gz(b)} {
			holds := inflated(in)
			for _, rank := range []int{1, 3} {
				var x *idxFile
				var data []byte
				var err error
				if e := alloctest.Check(fmt.Sprintf("rank-%d reader", rank), holds, allocFactor, allocSlack, func() {
					x, err = readIDX(bytes.NewReader(in), int64(len(in)), path, rank)
					if err == nil {
						data, err = x.body(int(limit))
					}
				}); e != nil {
					t.Fatalf("%v (input %d bytes, %d decompressed)", e, len(in), holds)
				}
				if err != nil {
					if !strings.HasPrefix(err.Error(), "dataset: "+path+": ") {
						t.Fatalf("error not naming the file: %v", err)
					}
					continue
				}
				k := x.n
				if limit > 0 && int(limit) < k {
					k = int(limit)
				}
				if len(x.dims) != rank || len(data) != k*x.unit {
					t.Fatalf("dims %v, %d records of %d bytes, %d bytes of data", x.dims, k, x.unit, len(data))
				}
				// Uncompressed input is the header and the data, exactly.
				if head := 4 + 4*rank; !x.gzipped && (len(in) != head+x.n*x.unit || !bytes.Equal(data, in[head:head+len(data)])) {
					t.Fatalf("%d bytes of input, header of %d, %d bytes of data read", len(in), head, len(data))
				}
			}
		}
	})
}

// A data set of no images is an error, for every command that loads one
// (an accuracy of 0 / 0 would read as a result).
func TestEmptySetRefused(t *testing.T) {
	for _, zip := range []bool{false, true} {
		dir := t.TempDir()
		small(t, dir, "t10k", 0, zip)
		if _, err := LoadDir(dir, "test"); err == nil || !strings.Contains(err.Error(), "holds no images") {
			t.Errorf("zip %v: %v, want an error saying the set is empty", zip, err)
		}
	}
}
