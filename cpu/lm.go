package cpu

import (
	"fmt"

	"github.com/quantkit/quantkit/backend"
)

// The CPU backend runs the operations of backend.LMOps with the generic
// Go twins of package backend on its buffers' memory, except attention,
// which has kernels of its own (attention.go) and runs on Threads()
// goroutines, SwiGLU (a vectorized exp, elem_swiglu.go) and RoPE (each
// position's rotation computed once for all heads); the others are
// single passes over memory and run on the caller's goroutine.

var _ backend.LMOps = (*Backend)(nil)

// operandNames name f32s's operands in its errors (formatted once, not
// on every call of a decode step's ops).
var operandNames = [...]string{"operand 1", "operand 2", "operand 3", "operand 4"}

// f32s returns the memory of F32 cpu buffers, in order.
func f32s(op string, bufs ...backend.Buffer) ([][]float32, error) {
	out := make([][]float32, len(bufs))
	for i, b := range bufs {
		var name string
		if i < len(operandNames) {
			name = operandNames[i]
		} else {
			name = fmt.Sprintf("operand %d", i+1)
		}
		cb, err := buf(op, name, b, backend.F32)
		if err != nil {
			return nil, err
		}
		out[i] = cb.f32
	}
	return out, nil
}

// RMSNorm is backend.RMSNormF32 on cpu buffers; dst may be x.
func (*Backend) RMSNorm(dst, x, weight backend.Buffer, rows, cols int, eps float32) error {
	s, err := f32s("RMSNorm", dst, x, weight)
	if err != nil {
		return err
	}
	if err := backend.CheckRMSNorm(len(s[0]), len(s[1]), len(s[2]), rows, cols); err != nil {
		return fmt.Errorf("cpu: %w", err)
	}
	backend.RMSNormF32(s[0], s[1], s[2], rows, cols, eps)
	return nil
}

// RoPE is backend.RoPEF32 on cpu buffers, bit for bit (ropeF32); dst may
// be x.
func (*Backend) RoPE(dst, x backend.Buffer, r *backend.Rotary, pos []int32) error {
	s, err := f32s("RoPE", dst, x)
	if err != nil {
		return err
	}
	if err := backend.CheckRoPE(len(s[0]), len(s[1]), r, pos); err != nil {
		return fmt.Errorf("cpu: %w", err)
	}
	ropeF32(s[0], s[1], r, pos)
	return nil
}

// SwiGLU is backend.SwiGLUF32 on cpu buffers, within the twin's error
// bound rather than bit for bit: exp as attention computes it,
// vectorized (swiglu). dst may be gate or up.
func (*Backend) SwiGLU(dst, gate, up backend.Buffer) error {
	s, err := f32s("SwiGLU", dst, gate, up)
	if err != nil {
		return err
	}
	if err := backend.CheckSwiGLU(len(s[0]), len(s[1]), len(s[2])); err != nil {
		return fmt.Errorf("cpu: %w", err)
	}
	swiglu(s[0], s[1], s[2])
	return nil
}

// Softmax is backend.SoftmaxF32 on cpu buffers; dst may be x.
func (*Backend) Softmax(dst, x backend.Buffer, rows, cols int, limit []int32) error {
	s, err := f32s("Softmax", dst, x)
	if err != nil {
		return err
	}
	if err := backend.CheckSoftmax(len(s[0]), len(s[1]), rows, cols, limit); err != nil {
		return fmt.Errorf("cpu: %w", err)
	}
	backend.SoftmaxF32(s[0], s[1], rows, cols, limit)
	return nil
}

// Embed is backend.EmbedF32 on cpu buffers.
func (*Backend) Embed(dst, table backend.Buffer, ids []int32, dim int) error {
	s, err := f32s("Embed", dst, table)
	if err != nil {
		return err
	}
	if err := backend.CheckEmbed(len(s[0]), len(s[1]), ids, dim); err != nil {
		return fmt.Errorf("cpu: %w", err)
	}
	backend.EmbedF32(s[0], s[1], ids, dim)
	return nil
}

// Attend is backend.AttentionF32 on cpu buffers, within the twin's error
// bound rather than bit for bit: the vectorized, cache-blocked attention
// of attention.go (online softmax over blocks of keys, shared among
// Threads() goroutines by KV head and token block). A query's result
// does not depend on the thread count.
func (*Backend) Attend(out, q, k, v backend.Buffer, a *backend.Attention) error {
	s, err := f32s("Attend", out, q, k, v)
	if err != nil {
		return err
	}
	if err := a.Check(len(s[1]), len(s[0]), len(s[2]), len(s[3])); err != nil {
		return fmt.Errorf("cpu: %w", err)
	}
	attendF32(s[0], s[1], s[2], s[3], a)
	return nil
}

// Add is backend.AddF32 on cpu buffers; dst may be x, or y when it is as
// long as x.
func (*Backend) Add(dst, x, y backend.Buffer) error {
	s, err := f32s("Add", dst, x, y)
	if err != nil {
		return err
	}
	if err := backend.CheckAdd(len(s[0]), len(s[1]), len(s[2])); err != nil {
		return fmt.Errorf("cpu: %w", err)
	}
	backend.AddF32(s[0], s[1], s[2])
	return nil
}
