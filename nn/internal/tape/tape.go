// Package tape runs one sample at a time through an nn.Net by direct
// loops, forward (optionally fake-quantizing the input of every Conv2D
// and Dense) and backward, keeping what the backward pass needs: the
// float reference that training (nn/qat) and calibration (nn/calib)
// share. Batches are split into a fixed number of shards (Shards) so
// that sums do not depend on the number of cores.
package tape

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/quantkit/quantkit/nn"
	"github.com/quantkit/quantkit/nn/internal/kernel"
	"github.com/quantkit/quantkit/quant"
)

// convForward is y = conv(x) with weights w and biases b, one sample,
// by direct loops (rows of the output are axpys over rows of the input).
func convForward(l *nn.Conv2D, w, b, x []float32, in, out nn.Shape, y []float32) {
	ohw := out.H * out.W
	for o := range l.OutC {
		yo := y[o*ohw : (o+1)*ohw]
		for i := range yo {
			yo[i] = b[o]
		}
		for c := range l.InC {
			xc := x[c*in.H*in.W : (c+1)*in.H*in.W]
			for u := range l.KH {
				for v := range l.KW {
					wv := w[((o*l.InC+c)*l.KH+u)*l.KW+v]
					if wv == 0 {
						continue
					}
					j0, j1 := convCols(v, l.StrideW, l.PadL, in.W, out.W)
					for i := range out.H {
						ih := i*l.StrideH + u - l.PadT
						if ih < 0 || ih >= in.H {
							continue
						}
						xr := xc[ih*in.W : (ih+1)*in.W]
						yr := yo[i*out.W : (i+1)*out.W]
						if l.StrideW == 1 {
							off := v - l.PadL
							xs := xr[j0+off : j1+off]
							ys := yr[j0:j1]
							for j, xv := range xs {
								ys[j] += wv * xv
							}
							continue
						}
						for j := j0; j < j1; j++ {
							yr[j] += wv * xr[j*l.StrideW+v-l.PadL]
						}
					}
				}
			}
		}
	}
}

// convCols is the range [j0, j1) of output columns whose input column
// j·stride+v−pad lies inside [0, inW).
func convCols(v, stride, pad, inW, outW int) (j0, j1 int) {
	// j·stride ≥ pad−v and j·stride ≤ inW−1+pad−v.
	lo := pad - v
	if lo > 0 {
		j0 = (lo + stride - 1) / stride
	}
	hi := inW - 1 + pad - v
	if hi < 0 {
		return 0, 0
	}
	j1 = min(hi/stride+1, outW)
	return j0, max(j1, j0)
}

// convBackward adds to dx (when not nil), dw and db the gradients of
// the loss given dy for one sample.
func convBackward(l *nn.Conv2D, w, x []float32, in, out nn.Shape, dy, dx, dw, db []float32) {
	ohw := out.H * out.W
	for o := range l.OutC {
		dyo := dy[o*ohw : (o+1)*ohw]
		var sb float32
		for _, g := range dyo {
			sb += g
		}
		db[o] += sb
		for c := range l.InC {
			xc := x[c*in.H*in.W : (c+1)*in.H*in.W]
			var dxc []float32
			if dx != nil {
				dxc = dx[c*in.H*in.W : (c+1)*in.H*in.W]
			}
			for u := range l.KH {
				for v := range l.KW {
					wi := ((o*l.InC+c)*l.KH+u)*l.KW + v
					wv := w[wi]
					j0, j1 := convCols(v, l.StrideW, l.PadL, in.W, out.W)
					var sw float32
					for i := range out.H {
						ih := i*l.StrideH + u - l.PadT
						if ih < 0 || ih >= in.H {
							continue
						}
						gr := dyo[i*out.W : (i+1)*out.W]
						xr := xc[ih*in.W : (ih+1)*in.W]
						if l.StrideW == 1 {
							off := v - l.PadL
							xs := xr[j0+off : j1+off]
							gs := gr[j0:j1]
							for j, g := range gs {
								sw += g * xs[j]
							}
							if dxc != nil && wv != 0 {
								dxs := dxc[ih*in.W+j0+off : ih*in.W+j1+off]
								for j, g := range gs {
									dxs[j] += wv * g
								}
							}
							continue
						}
						for j := j0; j < j1; j++ {
							iw := j*l.StrideW + v - l.PadL
							sw += gr[j] * xr[iw]
							if dxc != nil {
								dxc[ih*in.W+iw] += wv * gr[j]
							}
						}
					}
					dw[wi] += sw
				}
			}
		}
	}
}

// maxPoolForward writes the window maxima of x into y and the index
// (into x) of each maximum into arg.
func maxPoolForward(l *nn.MaxPool, x []float32, in, out nn.Shape, y []float32, arg []int32) {
	for c := range in.C {
		xc := x[c*in.H*in.W:]
		for i := range out.H {
			for j := range out.W {
				best, bi := float32(math.Inf(-1)), -1
				for u := range l.KH {
					ih := i*l.StrideH + u - l.PadT
					if ih < 0 || ih >= in.H {
						continue
					}
					for v := range l.KW {
						iw := j*l.StrideW + v - l.PadL
						if iw < 0 || iw >= in.W {
							continue
						}
						if xv := xc[ih*in.W+iw]; xv > best || bi < 0 {
							best, bi = xv, ih*in.W+iw
						}
					}
				}
				k := (c*out.H+i)*out.W + j
				y[k] = best
				arg[k] = int32(c*in.H*in.W + bi)
			}
		}
	}
}

// Params are the values a forward pass uses for the weighted layers:
// W[i], B[i] for Layers[i] (nil for the others). Fake quantization puts
// quantized weights here in place of the layer's own.
type Params struct {
	W, B [][]float32
}

// ParamsOf are the layers' own weights and biases.
func ParamsOf(net *nn.Net) Params {
	p := Params{W: make([][]float32, len(net.Layers)), B: make([][]float32, len(net.Layers))}
	for i, l := range net.Layers {
		switch l := l.(type) {
		case *nn.Conv2D:
			p.W[i], p.B[i] = l.W, l.B
		case *nn.Dense:
			p.W[i], p.B[i] = l.W, l.B
		}
	}
	return p
}

// Tape holds one sample's activations for the backward pass, and
// its gradients.
type Tape struct {
	Acts [][]float32 // Acts[i] enters Layers[i]; Acts[len] is the output
	arg  [][]int32   // max pool argmax
	Mask [][]bool    // fake quant ranges of Acts[i] (nil without)
	Grad [][]float32 // gradient with respect to Acts[i]
	FQ   bool        // the last forward fake-quantized
}

// New is a tape for a net whose tensors have the shapes given (nn.Shapes).
func New(shapes []nn.Shape) *Tape {
	t := &Tape{
		Acts: make([][]float32, len(shapes)),
		arg:  make([][]int32, len(shapes)),
		Mask: make([][]bool, len(shapes)),
		Grad: make([][]float32, len(shapes)),
	}
	for i, s := range shapes {
		t.Acts[i] = make([]float32, s.Size())
		t.Grad[i] = make([]float32, s.Size())
		if i > 0 {
			t.arg[i-1] = make([]int32, s.Size())
		}
	}
	return t
}

// ActFQ fake-quantizes the tensor entering a layer in place,
// recording where the straight-through estimator passes gradients.
type ActFQ func(layer int, x []float32, mask []bool)

// Forward runs one sample x through net with parameters p, applying fq
// (when not nil) to the input of every Conv2D and Dense. It returns the
// output.
func (t *Tape) Forward(net *nn.Net, shapes []nn.Shape, p Params, x []float32, fq ActFQ) []float32 {
	copy(t.Acts[0], x)
	t.FQ = fq != nil
	for i, l := range net.Layers {
		in, out := t.Acts[i], t.Acts[i+1]
		switch l := l.(type) {
		case *nn.Conv2D:
			if fq != nil {
				if t.Mask[i] == nil {
					t.Mask[i] = make([]bool, len(in))
				}
				fq(i, in, t.Mask[i])
			}
			convForward(l, p.W[i], p.B[i], in, shapes[i], shapes[i+1], out)
		case *nn.Dense:
			if fq != nil {
				if t.Mask[i] == nil {
					t.Mask[i] = make([]bool, len(in))
				}
				fq(i, in, t.Mask[i])
			}
			w := p.W[i]
			for o := range l.Out {
				wo := w[o*l.In : (o+1)*l.In]
				var s float32
				for k, v := range wo {
					s += v * in[k]
				}
				out[o] = s + p.B[i][o]
			}
		case *nn.ReLU:
			for k, v := range in {
				out[k] = max(v, 0)
			}
		case *nn.MaxPool:
			maxPoolForward(l, in, shapes[i], shapes[i+1], out, t.arg[i])
		case *nn.Flatten:
			copy(out, in)
		case *nn.Softmax:
			kernel.Softmax(out, in)
		}
	}
	return t.Acts[len(net.Layers)]
}

// LogitsLayer is the number of layers before a trailing Softmax:
// training takes the cross-entropy of the tensor they output.
func LogitsLayer(net *nn.Net) int {
	n := len(net.Layers)
	for n > 0 {
		if _, ok := net.Layers[n-1].(*nn.Softmax); !ok {
			break
		}
		n--
	}
	return n
}

// Backward propagates Grad[top] (set by the caller) down to the first
// layer, adding weight and bias gradients to gw, gb.
func (t *Tape) Backward(net *nn.Net, shapes []nn.Shape, p Params, top int, gw, gb [][]float32) {
	for i := top - 1; i >= 0; i-- {
		dy, dx := t.Grad[i+1], t.Grad[i]
		needDX := i > 0
		switch l := net.Layers[i].(type) {
		case *nn.Conv2D:
			var d []float32
			if needDX {
				clear(dx)
				d = dx
			}
			convBackward(l, p.W[i], t.Acts[i], shapes[i], shapes[i+1], dy, d, gw[i], gb[i])
		case *nn.Dense:
			if needDX {
				clear(dx)
			}
			in, w := t.Acts[i], p.W[i]
			for o, g := range dy[:l.Out] {
				gb[i][o] += g
				if g == 0 {
					continue
				}
				gwo := gw[i][o*l.In : (o+1)*l.In]
				for k, v := range in {
					gwo[k] += g * v
				}
				if needDX {
					wo := w[o*l.In : (o+1)*l.In]
					for k, v := range wo {
						dx[k] += g * v
					}
				}
			}
		case *nn.ReLU:
			y := t.Acts[i+1]
			for k, g := range dy {
				if y[k] > 0 {
					dx[k] = g
				} else {
					dx[k] = 0
				}
			}
		case *nn.MaxPool:
			clear(dx)
			for k, g := range dy {
				dx[t.arg[i][k]] += g
			}
		case *nn.Flatten:
			copy(dx, dy)
		case *nn.Softmax: // only inside the net; a trailing one is skipped
			y := t.Acts[i+1]
			var s float32
			for k, g := range dy {
				s += g * y[k]
			}
			for k, g := range dy {
				dx[k] = y[k] * (g - s)
			}
		}
		if needDX {
			if m := t.Mask[i]; m != nil && t.actFQ(net, i) {
				quant.FakeQuantBackward(dx, dx, m) // the straight-through estimator; lengths agree
			}
		}
	}
}

// actFQ reports whether the input of layer i was fake-quantized.
func (t *Tape) actFQ(net *nn.Net, i int) bool {
	switch net.Layers[i].(type) {
	case *nn.Conv2D, *nn.Dense:
		return t.FQ && t.Mask[i] != nil
	}
	return false
}

// CrossEntropy sets grad to the gradient of the softmax cross-entropy
// of logits against label, scaled by scale, and returns the loss.
func CrossEntropy(grad, logits []float32, label int, scale float32) float64 {
	kernel.Softmax(grad, logits)
	loss := -math.Log(math.Max(float64(grad[label]), 1e-30))
	for k := range grad {
		grad[k] *= scale
	}
	grad[label] -= scale
	return loss
}

// Shards is the number of pieces a mini-batch is split into, each
// summed in order by one goroutine and then added in shard order, so that
// results do not depend on the number of cores.
const Shards = 8

// Workers is how many goroutines run shards.
func Workers() int { return max(1, min(runtime.GOMAXPROCS(0), Shards)) }

// Parallel runs fn(worker, shard) for shards 0..n-1 on the workers.
func Parallel(n int, fn func(worker, shard int)) {
	w := min(Workers(), n)
	var wg sync.WaitGroup
	for k := range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := k; s < n; s += w {
				fn(k, s)
			}
		}()
	}
	wg.Wait()
}

// ForwardBatch runs nb samples of x through the float net with the
// direct loops of training and writes the outputs into out; the
// reference float inference for tests and for nets the backend engines
// do not take.
func ForwardBatch(net *nn.Net, x []float32, nb int, out []float32) error {
	shapes, err := nn.Shapes(net)
	if err != nil {
		return err
	}
	in, on := shapes[0].Size(), shapes[len(shapes)-1].Size()
	if len(x) != nb*in || len(out) != nb*on {
		return fmt.Errorf("nn: forward of %d samples: %d inputs and %d outputs", nb, len(x), len(out))
	}
	p := ParamsOf(net)
	tapes := make([]*Tape, Workers())
	for k := range tapes {
		tapes[k] = New(shapes)
	}
	per := (nb + Shards - 1) / Shards
	Parallel(Shards, func(w, s int) {
		for k := s * per; k < min((s+1)*per, nb); k++ {
			copy(out[k*on:(k+1)*on], tapes[w].Forward(net, shapes, p, x[k*in:(k+1)*in], nil))
		}
	})
	return nil
}
