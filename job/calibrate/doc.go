// Package calibrate is the activation calibration pipeline behind
// `quantkit calibrate`: it reads activation samples (.npy files,
// .safetensors files) and saved histograms (.hist.json), bins |x| of every
// tensor on a backend into mergeable quant.Histograms, and runs the chosen
// quant calibrators on them, giving each tensor's amax and the scale of a
// signed symmetric scheme.
//
// Run does the work and returns a Report; the report writes itself as a
// table (WriteTable), as the histograms it was computed from
// (WriteHistograms, which Run reads back, so calibration can be spread over
// machines and merged exactly) and as a TensorRT calibration cache
// (WriteTRTCache). Tensors of the same name in several files are batches of
// one activation. NaN and ±Inf are left out of the histograms and counted;
// finite float64 samples beyond float32's range become ±Inf, are counted
// as non-finite too, and are reported through Options.Warn.
//
// Errors name the file and the tensor. Errors about the input (a damaged
// file, a tensor without finite values, an option out of range) match
// inputerr.ErrInput, so that a caller that retries failed work on another device
// knows not to; errors of the backend do not.
package calibrate
