package backendtest_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/backend/backendtest"
	"github.com/quantkit/quantkit/cpu"
)

// The suite must fail backends that break its contracts. Each mutant below
// breaks one; TestMutantsFail runs the suite on it in a child process (a
// failing subtest cannot be observed from inside the same test) and
// expects it to fail with the message of that contract.

// mutantEnv names the mutant a child process runs.
const mutantEnv = "BACKENDTEST_MUTANT"

func TestMutantsFail(t *testing.T) {
	if os.Getenv(mutantEnv) != "" {
		t.Skip("in a child")
	}
	for _, c := range []struct{ mutant, subtest, want string }{
		{"dirty", "AllocZeroes", "Alloc left"},
		{"copying", "HostBuffer", "after writing through the host slice"},
		{"clean", "AllocZeroes|HostBuffer|gemm-packed", ""},
		{"shifted", "gemm-packed", "C[0,1] ="},
	} {
		t.Run(c.mutant, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestMutant$/^("+c.subtest+")$", "-test.v")
			cmd.Env = append(os.Environ(), mutantEnv+"="+c.mutant)
			out, err := cmd.CombinedOutput()
			if c.want == "" {
				if err != nil {
					t.Fatalf("the suite failed the unbroken backend: %v\n%s", err, out)
				}
				return
			}
			if err == nil {
				t.Fatalf("the suite passed a %s backend:\n%s", c.mutant, out)
			}
			if !strings.Contains(string(out), c.want) {
				t.Errorf("the suite failed a %s backend without saying %q:\n%s", c.mutant, c.want, out)
			}
		})
	}
}

// TestMutant is the child: it runs the suite on the mutant mutantEnv names.
func TestMutant(t *testing.T) {
	var b backend.Backend
	switch os.Getenv(mutantEnv) {
	case "":
		t.Skip("run by TestMutantsFail")
	case "dirty":
		b = &dirty{Backend: cpu.New(), pool: map[[2]int][]backend.Buffer{}}
	case "copying":
		b = copying{cpu.New()}
	case "clean":
		b = cpu.New()
	case "shifted":
		b = shifted{cpu.New()}
	}
	backendtest.Run(t, b)
}

// dirty recycles freed buffers without zeroing them, as a device
// allocator that reuses memory would without a memset.
type dirty struct {
	*cpu.Backend
	pool map[[2]int][]backend.Buffer
}

func (d *dirty) Alloc(dt backend.DType, n int) (backend.Buffer, error) {
	k := [2]int{int(dt), n}
	if p := d.pool[k]; len(p) > 0 {
		d.pool[k] = p[:len(p)-1]
		return p[len(p)-1], nil
	}
	return d.Backend.Alloc(dt, n)
}

func (d *dirty) Free(b backend.Buffer) error {
	k := [2]int{int(b.DType()), b.Len()}
	d.pool[k] = append(d.pool[k], b)
	return nil
}

// copying claims host buffers whose accessors return copies.
type copying struct{ *cpu.Backend }

type copyBuf struct{ *cpu.Buffer }

func unwrap(b backend.Buffer) backend.Buffer {
	if c, ok := b.(copyBuf); ok {
		return c.Buffer
	}
	return b
}

func (c copyBuf) Slice(off, n int) backend.Buffer {
	return copyBuf{c.Buffer.Slice(off, n).(*cpu.Buffer)}
}
func (c copyBuf) F32() []float32 { return clone(c.Buffer.F32()) }
func (c copyBuf) S8() []int8     { return clone(c.Buffer.S8()) }
func (c copyBuf) U8() []uint8    { return clone(c.Buffer.U8()) }
func (c copyBuf) S32() []int32   { return clone(c.Buffer.S32()) }

func clone[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append(make([]T, 0, len(s)), s...)
}

func (c copying) Alloc(dt backend.DType, n int) (backend.Buffer, error) {
	b, err := c.Backend.Alloc(dt, n)
	if err != nil {
		return nil, err
	}
	return copyBuf{b.(*cpu.Buffer)}, nil
}
func (c copying) Free(b backend.Buffer) error { return c.Backend.Free(unwrap(b)) }
func (c copying) Upload(dst backend.Buffer, src any) error {
	return c.Backend.Upload(unwrap(dst), src)
}
func (c copying) Download(dst any, src backend.Buffer) error {
	return c.Backend.Download(dst, unwrap(src))
}
func (c copying) GemmF32(m, n, k int, a, b, cc backend.Buffer) error {
	return c.Backend.GemmF32(m, n, k, unwrap(a), unwrap(b), unwrap(cc))
}
