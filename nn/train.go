package nn

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/quantkit/quantkit/quant"
)

// Samples is a labelled set of inputs for calibration and training.
// Fill writes the samples idx, one after the other, into dst in the net's
// input layout and scale (for a dataset.Set s:
// s.Input(dst, idx, net.InputScale)). Labels may be nil for calibration.
type Samples struct {
	N      int
	Labels []uint8
	Fill   func(dst []float32, idx []int)
}

func (s *Samples) check(needLabels bool) error {
	switch {
	case s == nil || s.Fill == nil:
		return errors.New("nn: no samples")
	case s.N <= 0:
		return fmt.Errorf("nn: %d samples", s.N)
	case needLabels && len(s.Labels) < s.N:
		return fmt.Errorf("nn: %d labels for %d samples", len(s.Labels), s.N)
	}
	return nil
}

// trainConvForward is y = conv(x) with weights w and biases b, one sample,
// by direct loops (rows of the output are axpys over rows of the input).
func trainConvForward(l *Conv2D, w, b, x []float32, in, out sampleShape, y []float32) {
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
					j0, j1 := trainConvCols(v, l.StrideW, l.PadL, in.W, out.W)
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

// trainConvCols is the range [j0, j1) of output columns whose input column
// j·stride+v−pad lies inside [0, inW).
func trainConvCols(v, stride, pad, inW, outW int) (j0, j1 int) {
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

// trainConvBackward adds to dx (when not nil), dw and db the gradients of
// the loss given dy for one sample.
func trainConvBackward(l *Conv2D, w, x []float32, in, out sampleShape, dy, dx, dw, db []float32) {
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
					j0, j1 := trainConvCols(v, l.StrideW, l.PadL, in.W, out.W)
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

// trainMaxPoolForward writes the window maxima of x into y and the index
// (into x) of each maximum into arg.
func trainMaxPoolForward(l *MaxPool, x []float32, in, out sampleShape, y []float32, arg []int32) {
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

// trainParams are the values a forward pass uses for the weighted layers:
// W[i], B[i] for Layers[i] (nil for the others). Fake quantization puts
// quantized weights here in place of the layer's own.
type trainParams struct {
	W, B [][]float32
}

func trainParamsOf(net *Net) trainParams {
	p := trainParams{W: make([][]float32, len(net.Layers)), B: make([][]float32, len(net.Layers))}
	for i, l := range net.Layers {
		switch l := l.(type) {
		case *Conv2D:
			p.W[i], p.B[i] = l.W, l.B
		case *Dense:
			p.W[i], p.B[i] = l.W, l.B
		}
	}
	return p
}

// trainTape holds one sample's activations for the backward pass, and
// its gradients.
type trainTape struct {
	acts [][]float32 // acts[i] enters Layers[i]; acts[len] is the output
	arg  [][]int32   // max pool argmax
	mask [][]bool    // fake quant ranges of acts[i] (nil without)
	grad [][]float32 // gradient with respect to acts[i]
	fq   bool        // the last forward fake-quantized
}

func newTrainTape(shapes []sampleShape) *trainTape {
	t := &trainTape{
		acts: make([][]float32, len(shapes)),
		arg:  make([][]int32, len(shapes)),
		mask: make([][]bool, len(shapes)),
		grad: make([][]float32, len(shapes)),
	}
	for i, s := range shapes {
		t.acts[i] = make([]float32, s.size())
		t.grad[i] = make([]float32, s.size())
		if i > 0 {
			t.arg[i-1] = make([]int32, s.size())
		}
	}
	return t
}

// trainActFQ fake-quantizes the tensor entering a layer in place,
// recording where the straight-through estimator passes gradients.
type trainActFQ func(layer int, x []float32, mask []bool)

// forward runs one sample x through net with parameters p, applying fq
// (when not nil) to the input of every Conv2D and Dense. It returns the
// output.
func (t *trainTape) forward(net *Net, shapes []sampleShape, p trainParams, x []float32, fq trainActFQ) []float32 {
	copy(t.acts[0], x)
	t.fq = fq != nil
	for i, l := range net.Layers {
		in, out := t.acts[i], t.acts[i+1]
		switch l := l.(type) {
		case *Conv2D:
			if fq != nil {
				if t.mask[i] == nil {
					t.mask[i] = make([]bool, len(in))
				}
				fq(i, in, t.mask[i])
			}
			trainConvForward(l, p.W[i], p.B[i], in, shapes[i], shapes[i+1], out)
		case *Dense:
			if fq != nil {
				if t.mask[i] == nil {
					t.mask[i] = make([]bool, len(in))
				}
				fq(i, in, t.mask[i])
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
		case *ReLU:
			for k, v := range in {
				out[k] = max(v, 0)
			}
		case *MaxPool:
			trainMaxPoolForward(l, in, shapes[i], shapes[i+1], out, t.arg[i])
		case *Flatten:
			copy(out, in)
		case *Softmax:
			softmaxRow(out, in)
		}
	}
	return t.acts[len(net.Layers)]
}

// trainLogitsLayer is the number of layers before a trailing Softmax:
// training takes the cross-entropy of the tensor they output.
func trainLogitsLayer(net *Net) int {
	n := len(net.Layers)
	for n > 0 {
		if _, ok := net.Layers[n-1].(*Softmax); !ok {
			break
		}
		n--
	}
	return n
}

// backward propagates grad[top] (set by the caller) down to the first
// layer, adding weight and bias gradients to gw, gb.
func (t *trainTape) backward(net *Net, shapes []sampleShape, p trainParams, top int, gw, gb [][]float32) {
	for i := top - 1; i >= 0; i-- {
		dy, dx := t.grad[i+1], t.grad[i]
		needDX := i > 0
		switch l := net.Layers[i].(type) {
		case *Conv2D:
			var d []float32
			if needDX {
				clear(dx)
				d = dx
			}
			trainConvBackward(l, p.W[i], t.acts[i], shapes[i], shapes[i+1], dy, d, gw[i], gb[i])
		case *Dense:
			if needDX {
				clear(dx)
			}
			in, w := t.acts[i], p.W[i]
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
		case *ReLU:
			y := t.acts[i+1]
			for k, g := range dy {
				if y[k] > 0 {
					dx[k] = g
				} else {
					dx[k] = 0
				}
			}
		case *MaxPool:
			clear(dx)
			for k, g := range dy {
				dx[t.arg[i][k]] += g
			}
		case *Flatten:
			copy(dx, dy)
		case *Softmax: // only inside the net; a trailing one is skipped
			y := t.acts[i+1]
			var s float32
			for k, g := range dy {
				s += g * y[k]
			}
			for k, g := range dy {
				dx[k] = y[k] * (g - s)
			}
		}
		if needDX {
			if m := t.mask[i]; m != nil && t.actFQ(net, i) {
				quant.FakeQuantBackward(dx, dx, m) // the straight-through estimator; lengths agree
			}
		}
	}
}

// actFQ reports whether the input of layer i was fake-quantized.
func (t *trainTape) actFQ(net *Net, i int) bool {
	switch net.Layers[i].(type) {
	case *Conv2D, *Dense:
		return t.fq && t.mask[i] != nil
	}
	return false
}

// trainCrossEntropy sets grad to the gradient of the softmax cross-entropy
// of logits against label, scaled by scale, and returns the loss.
func trainCrossEntropy(grad, logits []float32, label int, scale float32) float64 {
	softmaxRow(grad, logits)
	loss := -math.Log(math.Max(float64(grad[label]), 1e-30))
	for k := range grad {
		grad[k] *= scale
	}
	grad[label] -= scale
	return loss
}

// trainShards is the number of pieces a mini-batch is split into, each
// summed in order by one goroutine and then added in shard order, so that
// results do not depend on the number of cores.
const trainShards = 8

// trainWorkers is how many goroutines run shards.
func trainWorkers() int { return max(1, min(runtime.GOMAXPROCS(0), trainShards)) }

// trainParallel runs fn(worker, shard) for shards 0..n-1 on the workers.
func trainParallel(n int, fn func(worker, shard int)) {
	w := min(trainWorkers(), n)
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
