//go:build cuda

package gpu

import (
	"fmt"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/quantkit/quantkit/backend"
	"github.com/quantkit/quantkit/gpu/internal/cublas"
)

var (
	_ backend.VendorGemmer = (*Backend)(nil)
	_ backend.DeviceCopier = (*Backend)(nil)
)

// vendorState is the backend's cuBLAS and cuBLASLt handles, made on the
// owner goroutine when a vendor GEMM is first prepared, bound to the
// backend's stream so that vendor GEMMs queue, and are timed, like the
// backend's own kernels. Owned by the owner goroutine.
type vendorState struct {
	h         *cublas.Handle
	err       error   // making the handles failed: every later preparation says so
	workspace *Buffer // cuBLASLt's workspace
}

// destroy frees the handles; teardown calls it before the stream goes.
// The workspace is a live allocation, which teardown frees.
func (v *vendorState) destroy() {
	if v.h != nil {
		v.h.Destroy()
		v.h = nil
	}
}

// VendorGemms lists the cuBLAS and cuBLASLt GEMMs whose library loaded
// (cublas.Kinds), and says in note what did not load.
func (b *Backend) VendorGemms() (kinds []backend.VendorGemmKind, note string) {
	lib := cublas.Load()
	for _, k := range cublas.Kinds {
		if lib.Has(k) {
			kinds = append(kinds, vendorKind(lib, k))
		}
	}
	return kinds, lib.Note
}

func vendorKind(lib *cublas.Lib, k cublas.Kind) backend.VendorGemmKind {
	return backend.VendorGemmKind{Name: k.Name, Impl: k.Impl, Precision: k.Precision, Describe: k.Describe() + ", " + lib.Library(k)}
}

// vendorGemm is a prepared cuBLAS or cuBLASLt GEMM on this backend.
type vendorGemm struct {
	b       *Backend
	name    string // the kind and size, for errors
	plan    *cublas.Plan
	a, bt   cu.DevicePtr // the inputs as the library reads them
	c       cu.DevicePtr
	ws      cu.DevicePtr
	convert []backend.Buffer // 16-bit copies of A and B, freed by Close
}

// PrepareVendorGemm readies the vendor GEMM kind (a name of cublas.Kinds)
// on quantkit's operands: for BF16 and FP16 it downloads A and B, rounds
// them to the 16-bit type (to nearest, ties to even) on the host and
// uploads the copies; on the owner goroutine it makes the handles (once)
// and the kind's cuBLASLt descriptors.
func (b *Backend) PrepareVendorGemm(kind string, m, n, k int, a, bt, c backend.Buffer) (backend.VendorGemm, error) {
	ck, ok := cublas.KindNamed(kind)
	if !ok {
		return nil, b.errorf("PrepareVendorGemm: unknown kind %q", kind)
	}
	lib := cublas.Load()
	if !lib.Has(ck) {
		return nil, b.errorf("%s: %s", kind, lib.Note)
	}
	if err := backend.CheckVendorGemm(vendorKind(lib, ck), m, n, k, a, bt, c); err != nil {
		return nil, b.errorf("%w", err)
	}
	if err := ck.CheckCall(m, n, k); err != nil {
		return nil, b.errorf("%s: %w", kind, err)
	}
	bufs := [3]backend.Buffer{a, bt, c}
	var ptrs [3]cu.DevicePtr
	for i, name := range []string{"A", "B", "C"} {
		x, err := b.own(kind, name, bufs[i])
		if err != nil {
			return nil, err
		}
		ptrs[i] = x.ptr()
	}
	g := &vendorGemm{b: b, name: fmt.Sprintf("%s m=%d n=%d k=%d", kind, m, n, k), a: ptrs[0], bt: ptrs[1], c: ptrs[2]}
	if ck.InputBytes() == 2 {
		for i, x := range []backend.Buffer{a, bt} {
			host := make([]float32, x.Len())
			if err := b.Download(host, x); err != nil {
				g.Close()
				return nil, err
			}
			conv, err := b.Alloc(backend.U8, 2*x.Len())
			if err != nil {
				g.Close()
				return nil, err
			}
			g.convert = append(g.convert, conv)
			if err := b.Upload(conv, ck.EncodeInput(host)); err != nil {
				g.Close()
				return nil, err
			}
			if i == 0 {
				g.a = conv.(*Buffer).ptr()
			} else {
				g.bt = conv.(*Buffer).ptr()
			}
		}
	}
	err := b.do(func() error {
		h, err := b.vendorHandle()
		if err != nil {
			return err
		}
		if ck.Lt() {
			if b.vendor.workspace == nil {
				ws, err := b.allocOwned(backend.U8, cublas.WorkspaceBytes, "cuBLASLt's workspace")
				if err != nil {
					return err
				}
				b.vendor.workspace = ws
			}
			g.ws = b.vendor.workspace.ptr()
		}
		g.plan, err = h.Prepare(ck, m, n, k)
		if err != nil {
			return b.errorf("%s: %w", g.name, err)
		}
		return nil
	})
	if err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// vendorHandle makes the handles on first use, on the owner goroutine,
// where the backend's context is current.
func (b *Backend) vendorHandle() (*cublas.Handle, error) {
	v := &b.vendor
	if v.h == nil && v.err == nil {
		stream := uintptr(unsafe.Pointer(b.stream.C()))
		h, err := cublas.Load().NewHandle(stream)
		if err != nil {
			v.err = b.errorf("%w", err)
		}
		v.h = h
	}
	return v.h, v.err
}

// allocOwned is Alloc on the owner goroutine.
func (b *Backend) allocOwned(dt backend.DType, n int, what string) (*Buffer, error) {
	a := &allocation{bytes: int64(n) * int64(dt.Size())}
	p, err := b.memAlloc(a.bytes, what)
	if err != nil {
		return nil, err
	}
	a.ptr = p
	b.live[a] = struct{}{}
	return &Buffer{b: b, a: a, dt: dt, n: n}, nil
}

// Run queues the GEMM on the backend's stream.
func (g *vendorGemm) Run() error {
	b := g.b
	return b.do(func() error {
		if err := g.plan.Run(uintptr(g.a), uintptr(g.bt), uintptr(g.c), uintptr(g.ws)); err != nil {
			return b.errorf("%s: %w", g.name, err)
		}
		b.lastLaunch = g.name
		return nil
	})
}

// Close frees the plan and the converted inputs, after the queued work.
func (g *vendorGemm) Close() error {
	b := g.b
	var first error
	if g.plan != nil {
		first = b.do(func() error {
			g.plan.Close()
			return nil
		})
		g.plan = nil
	}
	for _, x := range g.convert {
		if err := b.Free(x); err != nil && first == nil {
			first = err
		}
	}
	g.convert = nil
	return first
}

// CopyDevice queues a device-to-device copy of src into dst (same type
// and length) on the stream: the bandwidth the memory-bound kernels are
// measured against.
func (b *Backend) CopyDevice(dst, src backend.Buffer) error {
	d, err := b.own("CopyDevice", "destination", dst)
	if err != nil {
		return err
	}
	s, err := b.own("CopyDevice", "source", src)
	if err != nil {
		return err
	}
	if d.dt != s.dt || d.n != s.n {
		return b.errorf("CopyDevice: %d %v into %d %v", s.n, s.dt, d.n, d.dt)
	}
	if d.n == 0 {
		return nil
	}
	return b.do(func() error {
		if err := cu.MemcpyDtoDAsync(d.ptr(), s.ptr(), d.Bytes(), b.stream); err != nil {
			return b.asyncErr(fmt.Sprintf("CopyDevice of %d %v", d.n, d.dt), err)
		}
		return nil
	})
}
