package backend

import "fmt"

// The functions below run the operations of LMOps on any backend: its own
// method when it implements LMOps, else the Go twin on host memory
// (HostBuffers in place, other buffers through Download and Upload). They
// validate the operands first, so that every backend sees valid ones and
// a bad call fails the same way everywhere.

// RMSNorm runs RMSNormF32 on b's buffers; dst may be x.
func RMSNorm(b Backend, dst, x, weight Buffer, rows, cols int, eps float32) error {
	if err := checkF32(dst, x, weight); err != nil {
		return fmt.Errorf("rmsnorm: %w", err)
	}
	if err := CheckRMSNorm(dst.Len(), x.Len(), weight.Len(), rows, cols); err != nil {
		return err
	}
	if lm, ok := b.(LMOps); ok {
		return lm.RMSNorm(dst, x, weight, rows, cols, eps)
	}
	return viaHost(b, dst, []Buffer{x, weight}, func(d []float32, in [][]float32) {
		RMSNormF32(d, in[0], in[1], rows, cols, eps)
	})
}

// RoPE runs RoPEF32 on b's buffers; dst may be x.
func RoPE(b Backend, dst, x Buffer, r *Rotary, pos []int32) error {
	if err := checkF32(dst, x); err != nil {
		return fmt.Errorf("rope: %w", err)
	}
	if err := CheckRoPE(dst.Len(), x.Len(), r, pos); err != nil {
		return err
	}
	if lm, ok := b.(LMOps); ok {
		return lm.RoPE(dst, x, r, pos)
	}
	return viaHost(b, dst, []Buffer{x}, func(d []float32, in [][]float32) {
		RoPEF32(d, in[0], r, pos)
	})
}

// SwiGLU runs SwiGLUF32 on b's buffers; dst may be gate or up.
func SwiGLU(b Backend, dst, gate, up Buffer) error {
	if err := checkF32(dst, gate, up); err != nil {
		return fmt.Errorf("swiglu: %w", err)
	}
	if err := CheckSwiGLU(dst.Len(), gate.Len(), up.Len()); err != nil {
		return err
	}
	if lm, ok := b.(LMOps); ok {
		return lm.SwiGLU(dst, gate, up)
	}
	return viaHost(b, dst, []Buffer{gate, up}, func(d []float32, in [][]float32) {
		SwiGLUF32(d, in[0], in[1])
	})
}

// Softmax runs SoftmaxF32 on b's buffers; dst may be x.
func Softmax(b Backend, dst, x Buffer, rows, cols int, limit []int32) error {
	if err := checkF32(dst, x); err != nil {
		return fmt.Errorf("softmax: %w", err)
	}
	if err := CheckSoftmax(dst.Len(), x.Len(), rows, cols, limit); err != nil {
		return err
	}
	if lm, ok := b.(LMOps); ok {
		return lm.Softmax(dst, x, rows, cols, limit)
	}
	return viaHost(b, dst, []Buffer{x}, func(d []float32, in [][]float32) {
		SoftmaxF32(d, in[0], rows, cols, limit)
	})
}

// Embed runs EmbedF32 on b's buffers.
func Embed(b Backend, dst, table Buffer, ids []int32, dim int) error {
	if err := checkF32(dst, table); err != nil {
		return fmt.Errorf("embed: %w", err)
	}
	if err := CheckEmbed(dst.Len(), table.Len(), ids, dim); err != nil {
		return err
	}
	if lm, ok := b.(LMOps); ok {
		return lm.Embed(dst, table, ids, dim)
	}
	return viaHost(b, dst, []Buffer{table}, func(d []float32, in [][]float32) {
		EmbedF32(d, in[0], ids, dim)
	})
}

// Attend runs AttentionF32 on b's buffers.
func Attend(b Backend, out, q, k, v Buffer, a *Attention) error {
	if err := checkF32(out, q, k, v); err != nil {
		return fmt.Errorf("attention: %w", err)
	}
	if err := a.Check(q.Len(), out.Len(), k.Len(), v.Len()); err != nil {
		return err
	}
	if lm, ok := b.(LMOps); ok {
		return lm.Attend(out, q, k, v, a)
	}
	return viaHost(b, out, []Buffer{q, k, v}, func(d []float32, in [][]float32) {
		AttentionF32(d, in[0], in[1], in[2], a)
	})
}

func checkF32(bufs ...Buffer) error {
	for i, b := range bufs {
		if b == nil {
			return fmt.Errorf("operand %d is nil", i+1)
		}
		if b.DType() != F32 {
			return fmt.Errorf("operand %d is %v, want f32", i+1, b.DType())
		}
	}
	return nil
}

// viaHost runs fn on the host memory of out and ins when all of them are
// HostBuffers (so that an output that is also an input works in place),
// and otherwise on host copies: the inputs downloaded, the output written
// to a fresh slice (every twin writes all of its output) and uploaded.
func viaHost(b Backend, out Buffer, ins []Buffer, fn func(out []float32, ins [][]float32)) error {
	hosts := make([][]float32, len(ins))
	all := true
	for i, in := range ins {
		h, ok := Host[float32](in)
		hosts[i], all = h, all && ok
	}
	if ho, ok := Host[float32](out); ok && all {
		if err := b.Synchronize(); err != nil {
			return err
		}
		fn(ho, hosts)
		return nil
	}
	for i, in := range ins {
		hosts[i] = make([]float32, in.Len())
		if err := b.Download(hosts[i], in); err != nil {
			return err
		}
	}
	ho := make([]float32, out.Len())
	fn(ho, hosts)
	return b.Upload(out, ho)
}
