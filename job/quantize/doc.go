// Package quantize holds the checkpoint jobs: Run quantizes a checkpoint
// (DryRun plans it without writing), Dequantize turns a quantized one back
// into floats, Merge joins the parts of sharded runs, Generate writes a
// synthetic Llama-like checkpoint (model/synth) as Run writes its output,
// and Bench measures Run against the I/O it cannot avoid. RunGGUF (PlanGGUF
// for a dry run) writes a GGUF file as llama-quantize does, to one of its
// mixes (model/ggufmix), from a GGUF file or any GGUFSource. Each takes an
// Options value and returns a report with JSON tags and a WriteTable
// method for people; the quantkit command only parses flags into the
// options (with ParseShard and quant.ParseSchemeParts) and prints the
// report, as a table or as JSON.
//
// The jobs run on the CPU, on every core: quantizing a checkpoint reads
// and writes each byte once and does little arithmetic on it (a scale per
// row or group, a rounding per weight), so it is bounded by memory and
// disk bandwidth. A GPU would add a copy over PCIe each way to a job that
// waits on memory already; it could pay only with the whole per-tensor
// chain (fit, quantize, dequantize for the SQNR, encode) on the device,
// pinned host buffers and copies overlapped with the disk.
//
// The per-tensor work is model/plan's (plan.Run, with the cpu package's
// kernels), streamed in blocks of rows within Options.MaxMemory whatever
// the largest tensor (plan.Plan.Stream; the report's memory_estimate is
// the planned peak, and the Go runtime's memory limit is set to it for
// the run); this package opens the input, claims the output (package
// output: existing outputs, outputs that hold the input, free space), and
// writes everything into a temporary that becomes the output only when
// complete. Errors about the user's input are marked with inputerr.
package quantize
