//go:build cuda

package gpu

import (
	"fmt"
	"math"

	"gorgonia.org/cu"

	"github.com/quantkit/quantkit/backend"
)

// The gpu backend runs the operations of backend.LMOps with the kernels of
// cuda/lm.cu on its stream: every method validates its operands as the
// twins do (backend.CheckRMSNorm, ...), queues its kernel and returns, so
// that a forward pass keeps its activations on the device with no host
// synchronization between operations. The small host vectors (token ids,
// positions, row limits, RoPE frequencies) go through scratch buffers of
// their own, uploaded on the stream only when they differ from the last
// call's (RoPE's frequencies once per model, its positions once for q and
// k). What each kernel computes, and how closely to the twin, is in
// cuda/lm.cuh and cuda/README.md; backendtest.RunLM holds them to the
// twins' bounds.

var _ backend.LMOps = (*Backend)(nil)

// f32Operands returns bufs as live F32 buffers of b, named for errors.
func (b *Backend) f32Operands(op string, names []string, bufs ...backend.Buffer) ([]*Buffer, error) {
	out := make([]*Buffer, len(bufs))
	for i, buf := range bufs {
		x, err := b.typed(op, names[i], buf, backend.F32)
		if err != nil {
			return nil, err
		}
		out[i] = x
	}
	return out, nil
}

// int32Sizes reports an error unless every size fits the kernels' int
// parameters.
func (b *Backend) int32Sizes(op string, sizes ...int) error {
	for _, s := range sizes {
		if s > math.MaxInt32 {
			return b.errorf("%s: size %d exceeds the kernels' 32-bit sizes", op, s)
		}
	}
	return nil
}

// RMSNorm is backend.RMSNormF32 on device buffers (rmsnorm_f32: one block
// per row, the sum of squares in float32 with fmaf and a tree reduction);
// dst may be x. It returns once the kernel is queued.
func (b *Backend) RMSNorm(dst, x, weight backend.Buffer, rows, cols int, eps float32) error {
	ops, err := b.f32Operands("RMSNorm", []string{"dst", "x", "weight"}, dst, x, weight)
	if err != nil {
		return err
	}
	D, X, W := ops[0], ops[1], ops[2]
	if err := backend.CheckRMSNorm(D.n, X.n, W.n, rows, cols); err != nil {
		return b.errorf("%w", err)
	}
	if err := b.int32Sizes("RMSNorm", rows, cols); err != nil {
		return err
	}
	if rows == 0 {
		return nil
	}
	return b.do(func() error {
		return b.launch(&b.k.rmsNorm, rows, 1, lmRowThreads, 0, fmt.Sprintf("rows=%d cols=%d", rows, cols),
			ptrArg(X.ptr()), ptrArg(W.ptr()), ptrArg(D.ptr()), intArg(rows), intArg(cols), f32Arg(eps))
	})
}

// RoPE is backend.RoPEF32 on device buffers (rope_f32), bit for bit: the
// kernel computes cos and sin of each float32 angle in double and rounds
// them once, as the twin does. dst may be x. The angles must stay below
// 2^50 radians (float32(max pos)·max freq), far beyond any model's. It
// returns once the kernel is queued.
func (b *Backend) RoPE(dst, x backend.Buffer, r *backend.Rotary, pos []int32) error {
	ops, err := b.f32Operands("RoPE", []string{"dst", "x"}, dst, x)
	if err != nil {
		return err
	}
	D, X := ops[0], ops[1]
	if err := backend.CheckRoPE(D.n, X.n, r, pos); err != nil {
		return b.errorf("%w", err)
	}
	rows := len(pos)
	if rows == 0 {
		return nil
	}
	if err := b.int32Sizes("RoPE", rows, r.Heads*r.Dim); err != nil {
		return err
	}
	chunks := ceilDiv(r.Dim/2, lmRopeChunk)
	if chunks > b.maxGridY {
		return b.errorf("RoPE: dimension %d needs %d blocks per row, the grid allows %d", r.Dim, chunks, b.maxGridY)
	}
	var maxPos int32
	for _, p := range pos {
		maxPos = max(maxPos, p)
	}
	// Non-finite frequencies give NaN, as in the twin; finite angles
	// must lie in the kernel's range.
	var maxFreq float32
	for _, f := range r.Freqs {
		if a := float32(math.Abs(float64(f))); a <= math.MaxFloat32 {
			maxFreq = max(maxFreq, a)
		}
	}
	if a := float64(float32(maxPos) * maxFreq); a >= math.Ldexp(1, lmRopeMaxAngleLog2) && !math.IsInf(a, 0) {
		return b.errorf("RoPE: angle %g (position %d) exceeds the kernel's range of 2^%d", a, maxPos, lmRopeMaxAngleLog2)
	}
	// r.Scale multiplies cos and sin once each is rounded to float32 (0
	// means 1), as RoPEF32 does.
	mscale := r.Scale
	if mscale == 0 {
		mscale = 1
	}
	return b.do(func() error {
		pp, err := b.vector(&b.scratch.lmPos, asBytes(pos), "the positions")
		if err != nil {
			return err
		}
		fp, err := b.vector(&b.scratch.lmFreqs, asBytes(r.Freqs), "the RoPE frequencies")
		if err != nil {
			return err
		}
		return b.launch(&b.k.rope, rows, chunks, lmRopeThreads, 0,
			fmt.Sprintf("rows=%d heads=%d dim=%d interleaved=%v", rows, r.Heads, r.Dim, r.Interleaved),
			ptrArg(X.ptr()), ptrArg(D.ptr()), ptrArg(pp), ptrArg(fp), intArg(rows), intArg(r.Heads), intArg(r.Dim),
			boolArg(r.Interleaved), f32Arg(mscale))
	})
}

// elemGrid is the grid of the grid-stride kernels swiglu_f32 and add_f32
// over n elements (lm.cuh).
func (b *Backend) elemGrid(n int) int {
	return clampGrid(ceilDiv(n, lmElemThreads), lmElemBlocksPerSM*b.sms)
}

// SwiGLU is backend.SwiGLUF32 on device buffers (swiglu_f32; expf within
// 2 ulps of the correctly rounded exp); dst may be gate or up. It returns
// once the kernel is queued.
func (b *Backend) SwiGLU(dst, gate, up backend.Buffer) error {
	ops, err := b.f32Operands("SwiGLU", []string{"dst", "gate", "up"}, dst, gate, up)
	if err != nil {
		return err
	}
	D, G, U := ops[0], ops[1], ops[2]
	if err := backend.CheckSwiGLU(D.n, G.n, U.n); err != nil {
		return b.errorf("%w", err)
	}
	if D.n == 0 {
		return nil
	}
	return b.do(func() error {
		return b.launch(&b.k.swiGLU, b.elemGrid(D.n), 1, lmElemThreads, 0, fmt.Sprintf("n=%d", D.n),
			ptrArg(G.ptr()), ptrArg(U.ptr()), ptrArg(D.ptr()), longArg(D.n))
	})
}

// Softmax is backend.SoftmaxF32 on device buffers (softmax_f32: one block
// per row; the maximum propagates NaN as the twin's does); dst may be x.
// Columns past a row's limit are not read. It returns once the kernel is
// queued.
func (b *Backend) Softmax(dst, x backend.Buffer, rows, cols int, limit []int32) error {
	ops, err := b.f32Operands("Softmax", []string{"dst", "x"}, dst, x)
	if err != nil {
		return err
	}
	D, X := ops[0], ops[1]
	if err := backend.CheckSoftmax(D.n, X.n, rows, cols, limit); err != nil {
		return b.errorf("%w", err)
	}
	if err := b.int32Sizes("Softmax", rows, cols); err != nil {
		return err
	}
	if rows == 0 {
		return nil
	}
	return b.do(func() error {
		var lp cu.DevicePtr // null: every row has cols columns
		if limit != nil {
			var err error
			if lp, err = b.vector(&b.scratch.lmLimit, asBytes(limit), "the softmax limits"); err != nil {
				return err
			}
		}
		return b.launch(&b.k.softmax, rows, 1, lmRowThreads, 0, fmt.Sprintf("rows=%d cols=%d causal=%v", rows, cols, limit != nil),
			ptrArg(X.ptr()), ptrArg(D.ptr()), ptrArg(lp), intArg(rows), intArg(cols))
	})
}

// Embed is backend.EmbedF32 on device buffers (embed_f32), bit for bit.
// It returns once the kernel is queued.
func (b *Backend) Embed(dst, table backend.Buffer, ids []int32, dim int) error {
	ops, err := b.f32Operands("Embed", []string{"dst", "table"}, dst, table)
	if err != nil {
		return err
	}
	D, T := ops[0], ops[1]
	if err := backend.CheckEmbed(D.n, T.n, ids, dim); err != nil {
		return b.errorf("%w", err)
	}
	if err := b.int32Sizes("Embed", len(ids), dim); err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	return b.do(func() error {
		ip, err := b.vector(&b.scratch.lmIDs, asBytes(ids), "the token ids")
		if err != nil {
			return err
		}
		return b.launch(&b.k.embed, len(ids), 1, lmEmbedThreads, 0, fmt.Sprintf("tokens=%d dim=%d", len(ids), dim),
			ptrArg(T.ptr()), ptrArg(ip), ptrArg(D.ptr()), intArg(dim))
	})
}

// Attend is backend.AttentionF32 on device buffers (attend_f32: one block
// per (token, head), an online softmax over chunks of lmAttnChunk cached
// keys, within the twin's bound). Dim may be at most lmAttnMaxDim. It
// returns once the kernel is queued.
func (b *Backend) Attend(out, q, k, v backend.Buffer, a *backend.Attention) error {
	ops, err := b.f32Operands("Attend", []string{"out", "q", "K cache", "V cache"}, out, q, k, v)
	if err != nil {
		return err
	}
	O, Q, K, V := ops[0], ops[1], ops[2], ops[3]
	if err := a.Check(Q.n, O.n, K.n, V.n); err != nil {
		return b.errorf("%w", err)
	}
	if a.Dim > lmAttnMaxDim {
		return b.errorf("attention: head dimension %d exceeds the kernel's %d", a.Dim, lmAttnMaxDim)
	}
	if err := b.int32Sizes("Attend", a.Tokens*a.Heads, a.Start+a.Tokens); err != nil {
		return err
	}
	if a.Tokens == 0 {
		return nil
	}
	scale := a.Scale
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(a.Dim)))
	}
	// a.Window: 0 is none; token t sees the last Window positions up to
	// its own (keys p-Window < j ≤ p), as AttentionF32.
	window := a.Window
	return b.do(func() error {
		return b.launch(&b.k.attend, a.Tokens*a.Heads, 1, lmAttnThreads, (2*a.Dim+lmAttnChunk)*4,
			fmt.Sprintf("tokens=%d heads=%d kv_heads=%d dim=%d start=%d", a.Tokens, a.Heads, a.KVHeads, a.Dim, a.Start),
			ptrArg(Q.ptr()), ptrArg(K.ptr()), ptrArg(V.ptr()), ptrArg(O.ptr()), intArg(a.Tokens), intArg(a.Heads),
			intArg(a.KVHeads), intArg(a.Dim), intArg(a.Start), f32Arg(scale), intArg(window))
	})
}

// Add is backend.AddF32 on device buffers (add_f32), bit for bit; dst may
// be x, or y when it is as long as x. It returns once the kernel is
// queued.
func (b *Backend) Add(dst, x, y backend.Buffer) error {
	ops, err := b.f32Operands("Add", []string{"dst", "x", "y"}, dst, x, y)
	if err != nil {
		return err
	}
	D, X, Y := ops[0], ops[1], ops[2]
	if err := backend.CheckAdd(D.n, X.n, Y.n); err != nil {
		return b.errorf("%w", err)
	}
	if D.n == 0 {
		return nil
	}
	return b.do(func() error {
		return b.launch(&b.k.add, b.elemGrid(D.n), 1, lmElemThreads, 0, fmt.Sprintf("n=%d ny=%d", D.n, Y.n),
			ptrArg(X.ptr()), ptrArg(Y.ptr()), ptrArg(D.ptr()), longArg(D.n), longArg(Y.n))
	})
}

// QuantizeRows is backend.QuantizeRowsS8 on device buffers
// (quantize_rows_s8: one block per row), bit for bit: codes S8, scales
// and x F32. It returns once the kernel is queued.
func (b *Backend) QuantizeRows(codes, scales, x backend.Buffer, rows, cols int) error {
	C, err := b.typed("QuantizeRows", "codes", codes, backend.S8)
	if err != nil {
		return err
	}
	ops, err := b.f32Operands("QuantizeRows", []string{"scales", "x"}, scales, x)
	if err != nil {
		return err
	}
	S, X := ops[0], ops[1]
	if err := backend.CheckQuantizeRows(C.n, S.n, X.n, rows, cols); err != nil {
		return b.errorf("%w", err)
	}
	if err := b.int32Sizes("QuantizeRows", rows, cols); err != nil {
		return err
	}
	return b.do(func() error {
		return b.launch(&b.k.quantizeRows, rows, 1, lmRowThreads, 0, fmt.Sprintf("rows=%d cols=%d", rows, cols),
			ptrArg(X.ptr()), ptrArg(C.ptr()), ptrArg(S.ptr()), intArg(rows), intArg(cols))
	})
}
