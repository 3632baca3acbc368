// Package nn holds small feed-forward networks (the CNNs and MLPs that
// ONNX exports of image classifiers reduce to) as a chain of layers, with
// the quantization that post-training calibration or quantization-aware
// training chose for them.
//
// A Net is the meeting point of everything else, each in a package of
// its own that imports this one:
//
//	nn/onnxnet  lowers model/onnx files to a Net and exports one (ONNX, QDQ, safetensors)
//	nn/float    float32 inference (with the fake quantization of a quantized Net)
//	nn/integer  integer inference of a quantized Net
//	nn/calib    activation statistics and post-training quantization (PTQ)
//	nn/qat      quantization-aware training (QAT)
//
// This package holds the graph and what they share: the layers, the
// shapes between them, the weight quantization that Quant describes,
// Samples, and Accuracy over any Forwarder.
//
// Layouts follow ONNX, so that lowering copies and export writes back
// without permutations: images are NCHW, convolution weights
// [OutC][InC][KH][KW], dense weights [Out][In] with In in the order of the
// NCHW flattening of the previous layer's output. Engines repack as they
// need (for example NHWC and im2col for a GEMM) and keep that private.
package nn

// Layer is one step of a Net: *Conv2D, *Dense, *ReLU, *MaxPool, *Flatten
// or *Softmax.
type Layer interface {
	layer()
}

// Conv2D is a 2-D convolution with bias (groups = 1, dilation = 1):
//
//	y[n,o,i,j] = B[o] + Σ_c Σ_u Σ_v W[o,c,u,v] · x[n, c, i·StrideH+u−PadT, j·StrideW+v−PadL]
//
// with x read as 0 outside the image.
type Conv2D struct {
	Name                   string // the ONNX node's name or its weight's, for reports
	InC, OutC, KH, KW      int
	StrideH, StrideW       int
	PadT, PadL, PadB, PadR int
	W                      []float32 // [OutC][InC][KH][KW]
	B                      []float32 // [OutC]; zeros when the model has no bias
}

// Dense is y[n,o] = B[o] + Σ_i W[o,i]·x[n,i].
type Dense struct {
	Name    string
	In, Out int
	W       []float32 // [Out][In]
	B       []float32 // [Out]
}

// ReLU is y = max(x, 0).
type ReLU struct{}

// MaxPool is the maximum over KH×KW windows at the given strides; padding
// cells are −∞ (never chosen). The output size is floor((H+PadT+PadB−KH)
// /StrideH)+1, as ONNX computes it with ceil_mode 0.
type MaxPool struct {
	KH, KW                 int
	StrideH, StrideW       int
	PadT, PadL, PadB, PadR int
}

// Flatten turns [N,C,H,W] into [N, C·H·W] in NCHW order.
type Flatten struct{}

// Softmax is the softmax over the last axis. It never changes the argmax;
// integer engines may leave it to the caller.
type Softmax struct{}

func (*Conv2D) layer()  {}
func (*Dense) layer()   {}
func (*ReLU) layer()    {}
func (*MaxPool) layer() {}
func (*Flatten) layer() {}
func (*Softmax) layer() {}

// Net is a chain of layers applied to inputs of shape Input (one sample:
// [C,H,W] for images, [F] for feature vectors).
type Net struct {
	Input  []int
	Layers []Layer

	// InputName and OutputName are the graph's input and output names, and
	// InputScale the factor the model expects pixels in 0..255 to be
	// multiplied by (1 for the MNIST model, which takes raw values; 1/255
	// for models trained on 0..1). Exporters keep the names.
	InputName, OutputName string
	InputScale            float32

	// Quant is nil for a float network.
	Quant *Quant
}

// ActQuant is the int8 quantization of an activation tensor:
// q = clamp(round(x/Scale) + ZeroPoint, −128, 127), x ≈ (q − ZeroPoint)·Scale.
// A zero Scale means the tensor stays in float.
type ActQuant struct {
	Scale     float32
	ZeroPoint int32
}

// Quant is how a Net is quantized.
type Quant struct {
	// WeightBits is 8 or 4: weights of Conv2D and Dense layers are signed,
	// symmetric, per output channel, codes in [−2^(b−1)+1, 2^(b−1)−1]
	// (−127..127, −7..7) so that negation is exact.
	WeightBits int
	// WeightScale[i] holds Layers[i]'s per-output-channel weight scales
	// (nil for layers without weights).
	WeightScale [][]float32
	// Act[i] quantizes the tensor entering Layers[i]; Act[len(Layers)]
	// the output. calib.PTQ sets the ones before each Conv2D and Dense;
	// integer engines may carry int8 codes through ReLU, MaxPool and
	// Flatten, which commute with a monotone quantization.
	Act []ActQuant
	// Method says how the activation ranges were chosen, for reports:
	// "max", "percentile", "entropy", "mse" or "qat".
	Method string
}
