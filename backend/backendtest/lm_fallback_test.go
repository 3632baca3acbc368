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
