// Package lmbench measures a decoder language model at several precisions
// on one device, as `quantkit bench lm` reports it: prefill tokens per
// second over a synthetic prompt, time to first token, decode tokens per
// second at batch 1 and at a batch of sequences, the memory of the
// weights, of the KV cache and of the whole process (peak RSS), and, with
// an energy counter (RAPL on the CPU, NVML on a GPU), joules per token,
// gross and idle-subtracted, with the window rules of `bench --energy`
// (energy.Measure).
//
// A float Hugging Face checkpoint is run at each precision from the same
// files (lm.LoadHFWith): fp32 (every weight widened to float32), bf16 (the
// checkpoint rounded to bfloat16, matrices kept in 16 bits), w8a16 and
// w4a16 (the projections quantized at load, int8 per channel and int4
// symmetric in groups, weight-only), w8a8 (int8 per-channel weights and
// int8 per-token activations, integer GEMMs). An already quantized input
// (a compressed-tensors or quantkit safetensors folder, a GGUF file, a
// llama2.c checkpoint) runs as it is, labelled by what it holds.
//
// Each precision of each round runs in a child process of the running
// program (Run re-executes it with ChildEnv set; the program's main, or a
// test's TestMain, hands over to ChildMain), which loads the model, warms
// up once and measures, and sends its figures back as JSON on a pipe. The
// kernel's high-water mark of resident memory (VmHWM) only grows within a
// process, so this is what makes a peak RSS per precision honest: the
// child's own peak (wait4's ru_maxrss), load included. Options.InProcess
// measures in the calling process instead (tests with fake energy
// counters), resetting the high-water mark through /proc/self/clear_refs
// where the kernel allows it.
package lmbench
