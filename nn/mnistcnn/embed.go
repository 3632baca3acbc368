// Package mnistcnn carries the MNIST CNN of the ONNX model zoo as the
// built-in model of `quantkit demo`: Conv 5×5 (8) → ReLU → MaxPool 2 →
// Conv 5×5 (16) → ReLU → MaxPool 3 → MatMul 256×10, 5,994 float32
// parameters, raw pixels 0..255 in, logits out (98.91 % top-1 on the
// MNIST test set in float32).
//
// The file is the ONNX model zoo's mnist model (opset 7, exported by
// CNTK 2.5.1) as github.com/owulveryck/onnx-go v0.5.0 carries it
// (internal/examples/mnist), under that module's MIT licence.
package mnistcnn

import _ "embed"

// ONNX is the model file, 26,454 bytes, SHA-256
// 0d715376572e89832685c56a65ef1391f5f0b7dd31d61050c91ff3ecab16c032.
//
//go:embed mnist-cnn.onnx
var ONNX []byte
