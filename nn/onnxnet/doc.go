// Package onnxnet moves nn.Nets in and out of files: it lowers ONNX
// graphs (model/onnx) that are chains of supported operators to a Net,
// QDQ quantization included (Lower, Load), and writes a Net back as an
// ONNX graph, float or QDQ (Export, ExportQDQ, Save), or its quantized
// weights as safetensors (SaveSafetensors).
package onnxnet
