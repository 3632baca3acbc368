// Package qat is quantization-aware training of nn.Nets: Train
// fine-tunes a calibrated net (nn/calib's PTQ gives its activation
// ranges) with fake quantization, so that the integer engine
// (nn/integer) loses less accuracy than after post-training
// quantization alone (see the comment in qat.go).
package qat
