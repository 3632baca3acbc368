// Package experiment runs quantization experiments on image classifiers
// (the CNN and MLP chains of package nn) over labelled image sets (package
// dataset): the jobs behind `quantkit demo`, `quantkit qat` and `quantkit
// eval`.
//
//   - Run compares FP32, post-training quantization (int8 weights with
//     every calibrator, int4 weights with the calibrator that does best on
//     held-out training images) and quantization-aware training on the
//     test set: accuracy, weight bytes, latency, throughput and energy.
//   - QAT calibrates a model, fine-tunes it with fake quantization and
//     returns the quantized model with the accuracies of FP32, PTQ and QAT;
//     SaveModel writes it as QDQ ONNX or safetensors.
//   - Eval measures one model's top-1 accuracy and throughput, in float32
//     (fake quantization for a QDQ model) or in integer arithmetic.
//
// Run and QAT share one use of the training images (see Common): a seeded
// permutation whose last ValImages are held out to choose a calibrator on,
// whose first CalibImages of the rest calibrate, and whose rest (the
// calibration images included) trains QAT. The test split is only ever
// evaluated on.
//
// The jobs take the backend to compute on and write nothing to the
// terminal: progress lines go to Common.Log, warnings to Common.Warn and
// progress bars to Common.Progress. Errors about the caller's input (a
// model or data set that cannot be read or does not fit, options out of
// range) satisfy errors.Is(err, inputerr.ErrInput); running again on another
// device would not change them.
//
// Reports carry JSON tags for scripts and render themselves for people:
// WriteTable, and Report.Plot for a picture.
package experiment
