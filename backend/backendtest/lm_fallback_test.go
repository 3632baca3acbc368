package backendtest_test

import (
	"testing"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/backend/backendtest"
	"github.com/quantkit/quantkit/cpu"
)

// TestLMFallback runs RunLM on backends without LMOps, as the gpu backend
// is: one whose buffers are host memory (the twins run in place) and one
// whose buffers are not (the twins run on copies moved with Download and
// Upload).
func TestLMFallback(t *testing.T) {
	t.Run("host", func(t *testing.T) {
		b := struct{ backend.Backend }{cpu.New()}
		if _, ok := backend.Backend(b).(backend.LMOps); ok {
			t.Fatal("the wrapper still has LMOps")
		}
		backendtest.RunLM(t, b)
	})
	t.Run("device", func(t *testing.T) { backendtest.RunLM(t, opaque{cpu.New()}) })
}

// TestPackedFallback runs RunGemmPacked on backends without PackedGemmer,
// in host memory and not, and on one whose GemmPacked reads the wrong
// rows, which the suite must fail (in a child process, as TestMutantsFail
// runs its mutants).
func TestPackedFallback(t *testing.T) {
	t.Run("host", func(t *testing.T) { backendtest.RunGemmPacked(t, struct{ backend.Backend }{cpu.New()}) })
	t.Run("device", func(t *testing.T) { backendtest.RunGemmPacked(t, opaque{cpu.New()}) })
}

// shifted multiplies by the packed rows one place on, as a kernel with a
// wrong row stride would.
type shifted struct{ *cpu.Backend }

func (s shifted) GemmPacked(m int, a backend.Buffer, w *backend.Packed, c backend.Buffer) error {
	if w.N < 2 {
		return s.Backend.GemmPacked(m, a, w, c)
	}
	rb, _ := w.Format.RowBytes(w.K)
	v := *w
	v.Data = w.Data.Slice(rb, (w.N-1)*rb)
	v.N = w.N - 1
	cs := make([]float32, m*v.N)
	cb, _ := s.Backend.Wrap(cs)
	if err := s.Backend.GemmPacked(m, a, &v, cb); err != nil {
		return err
	}
	out, _ := backend.Host[float32](c)
	for i := range m {
		copy(out[i*w.N:i*w.N+v.N], cs[i*v.N:(i+1)*v.N])
	}
	return nil
}

// opaque is the cpu backend with buffers that hide their host memory, as
// device memory does; it has only what RunLM uses.
type opaque struct{ *cpu.Backend }

type opaqueBuf struct{ b backend.Buffer }

func (o opaqueBuf) DType() backend.DType { return o.b.DType() }
func (o opaqueBuf) Len() int             { return o.b.Len() }
func (o opaqueBuf) Slice(off, n int) backend.Buffer {
	return opaqueBuf{o.b.Slice(off, n)}
}

func (o opaque) Alloc(dt backend.DType, n int) (backend.Buffer, error) {
	b, err := o.Backend.Alloc(dt, n)
	return opaqueBuf{b}, err
}
func (o opaque) Free(b backend.Buffer) error { return o.Backend.Free(b.(opaqueBuf).b) }
func (o opaque) Upload(dst backend.Buffer, src any) error {
	return o.Backend.Upload(dst.(opaqueBuf).b, src)
}
func (o opaque) Download(dst any, src backend.Buffer) error {
	return o.Backend.Download(dst, src.(opaqueBuf).b)
}

// The LMOps methods of the embedded cpu backend are hidden, so that
// callers fall back.
func (opaque) RMSNorm()      {}
func (opaque) RoPE()         {}
func (opaque) SwiGLU()       {}
func (opaque) Softmax()      {}
func (opaque) Embed()        {}
func (opaque) Attend()       {}
func (opaque) Add()          {}
func (opaque) QuantizeRows() {}

// And so are the packed GEMM and the wrapping of host memory.
func (opaque) GemmPacked() {}
func (opaque) Packs()      {}
func (opaque) Wrap()       {}
