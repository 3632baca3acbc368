package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/quantkit/quantkit/internal/units"
	"github.com/quantkit/quantkit/job/llmq"
	"github.com/quantkit/quantkit/job/lmeval"
	"github.com/quantkit/quantkit/job/quantize"
	"github.com/quantkit/quantkit/model/ggufmix"
	"github.com/quantkit/quantkit/model/plan"
	"github.com/quantkit/quantkit/quant"
)

var (
	quantOutFlag    = &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the quantized model to `OUT` (a directory; a .gguf file for the gguf formats; with --shard, the parts directory)"}
	quantSchemeFlag = &cli.StringFlag{Name: "scheme", Value: "int8", Usage: "int8 or int4"}
	quantGranFlag   = &cli.StringFlag{Name: "granularity", Usage: "channel, tensor or group:N", DefaultText: "channel for int8, group:128 for int4"}
	quantSymFlag    = &cli.BoolFlag{Name: "symmetric", Usage: "symmetric quantization, zero point 0 (the default)", DisableDefaultText: true}
	quantAsymFlag   = &cli.BoolFlag{Name: "asymmetric", Usage: "asymmetric quantization, with zero points"}
	quantFormatFlag = &cli.StringFlag{Name: "format", Value: string(plan.CompressedTensors), Usage: "compressed-tensors, compressed-tensors-packed (int8 too pack-quantized, as vLLM loads weight-only int8), safetensors, gguf (a GGUF file llama.cpp runs, from a GGUF or a Llama-family checkpoint, with one of llama-quantize's --type mixes), gguf-q8_0 or gguf-q4_0 (Hugging Face names: a tensor container for other tools, not a model llama.cpp runs)"}
	quantTypeFlag   = &cli.StringFlag{Name: "type", Usage: "with --format gguf: llama-quantize's `TYPE`: " + strings.Join(ggufmix.Names(), ", ") + " (Q3_K, Q4_K, Q5_K: the _M mixes)"}
	quantPureFlag   = &cli.BoolFlag{Name: "pure", Usage: "with --format gguf: every quantized tensor gets TYPE's base type, as llama-quantize --pure (rows that are not whole blocks still fall back)"}
	quantInclFlag   = &cli.StringFlag{Name: "include", Usage: "quantize exactly the 2-D floating-point tensors whose names match `REGEX` (replaces the default rule)"}
	quantExclFlag   = &cli.StringFlag{Name: "exclude", Usage: "keep the tensors whose names match `REGEX`"}
	quantDryFlag    = &cli.BoolFlag{Name: "dry-run", Usage: "print the plan, sizes and memory estimate; write nothing"}
	quantForceFlag  = &cli.BoolFlag{Name: "force", Usage: "replace OUT if it exists"}
	quantSizeFlag   = &cli.StringFlag{Name: "shard-size", Value: "5GB", Usage: "output shards of at most `SIZE` of tensor data (5GB, 500MB, 2GiB)"}
	quantShardFlag  = &cli.StringFlag{Name: "shard", Usage: "quantize only part `I/N` (I in 0..N-1) into OUT/part-I-of-N; join the parts with merge (not for gguf-q8_0, gguf-q4_0). " +
		"auto or auto/N: I (and N) from a Slurm array task or a Kubernetes Indexed Job (see below)"}
	quantNonFinFlag = &cli.BoolFlag{Name: "allow-nonfinite", Usage: "quantize weights with NaN/Inf (NaN as 0, ±Inf saturated to the largest finite magnitude) instead of failing"}

	// Calibrated quantization (job/llmq).
	quantMethodFlag   = &cli.StringFlag{Name: "method", Value: "rtn", Usage: "rtn, mse, gptq, awq, awq+gptq, smoothquant or smoothquant+gptq (see CALIBRATED QUANTIZATION)"}
	quantAlphaFlag    = &cli.Float64Flag{Name: "alpha", Usage: "smoothquant: a fixed migration strength α in (0, 1], s_j = max|X_j|^α / max|W_j|^(1−α), at q/k/v and gate/up; by default α is chosen per layer and input, of none and α = 0.05, 0.1, …, 1, by the quantized Linears' output error on the calibration data, also at down and o", DefaultText: "searched"}
	quantW8A8Flag     = &cli.BoolFlag{Name: "w8a8", Usage: "write W8A8 as llm-compressor does: int8 per-channel weights with dynamic per-token int8 input activations in the quantization_config (vLLM and quantkit lm run it in int8); needs --scheme int8 --format compressed-tensors", DefaultText: "true for smoothquant with int8 per-channel weights, else false"}
	quantCalibFlag    = &cli.StringFlag{Name: "calib", Usage: "the calibrated methods' data: `FILE` of plain text, JSONL with a \"text\" field, or .npy token ids (int32/int64)"}
	quantCalibNFlag   = &cli.IntFlag{Name: "calib-samples", Value: llmq.DefaultSamples, Usage: "calibration windows (seeded random offsets in the tokenized --calib text)"}
	quantCalibTFlag   = &cli.IntFlag{Name: "calib-len", Value: llmq.DefaultSeqLen, Usage: "tokens a calibration window"}
	quantSeedFlag     = &cli.Uint64Flag{Name: "seed", Usage: "seed of the calibration windows", DefaultText: "0, the same windows every run"}
	quantActOrderFlag = &cli.BoolFlag{Name: "actorder", Value: true, Usage: "gptq: process columns by descending Hessian diagonal (static groups; --actorder=false: in order)"}
	quantGPTQScales   = &cli.StringFlag{Name: "gptq-scales", Value: "mse", Usage: "gptq: how group or channel scales are fitted: mse (the clipping search of --method mse, llm-compressor's mse observer) or minmax (llm-compressor's default observer)"}
	quantGPTQSeq      = &cli.BoolFlag{Name: "gptq-sequential", Usage: "gptq: quantize a layer's projections in four stages (q/k/v, o, gate/up, down), each input's Hessian collected on the layer with the earlier stages quantized (llm-compressor's sequential update; 4 passes a layer)"}
	quantGPTQDamp     = &cli.Float64Flag{Name: "gptq-damp", Value: 0.01, Usage: "gptq: dampening, the fraction of the Hessian's mean diagonal added to its diagonal"}
	quantGPTQAsym     = &cli.BoolFlag{Name: "gptq-asymmetric", Usage: "gptq: target the float model's outputs from the quantized model's inputs (GPTAQ's asymmetric calibration): the float hidden states travel beside the quantized ones (both as float16 then: the memory of one stream in float32; one more forward pass a layer); implies --gptq-sequential; wants varied calibration text (warns below 2,500 distinct tokens). Unset: on from 2,500 distinct calibration tokens, where it wins; --gptq-asymmetric=false: llm-compressor's schedule"}
	quantAWQAsym      = &cli.BoolFlag{Name: "awq-asymmetric", Usage: "awq: after the scale search, target the float model's outputs from the quantized model's inputs as --gptq-asymmetric does (the float hidden states beside the quantized ones, both as float16; the four stages in turn, each stage's scaled weights moved by GPTAQ's correction and clipped on its quantized inputs before rounding to nearest; warns below 2,500 distinct tokens). Unset: on from 2,500 distinct calibration tokens; --awq-asymmetric=false: AutoAWQ's schedule, all of a layer's projections from the float layer's inputs, no float target"}
	quantUpdatedFlag  = &cli.BoolFlag{Name: "gptq-updated-scales", Usage: "gptq: fit group scales on the error-updated weights (the GPTQ paper) instead of the original ones (llm-compressor)"}
)

// quantImatrixFlag is --imatrix (with --format gguf).
var quantImatrixFlag = &cli.StringFlag{Name: "imatrix", Usage: "with --format gguf: quantize with llama.cpp's importance matrix `FILE` (llama-imatrix's .gguf or .dat), as llama-quantize --imatrix, byte for byte"}

var quantizeCommand = &cli.Command{
	Name:      "quantize",
	Usage:     "quantize a checkpoint's Linear weights to int8 or int4 (compressed-tensors, safetensors or GGUF)",
	ArgsUsage: "IN -o OUT",
	Description: "IN is a .safetensors file, a model.safetensors.index.json or a directory holding either;\n" +
		"or, with --format gguf --type TYPE, a .gguf file (see GGUF below).\n" +
		"\n" +
		"The plan is made first from the headers alone (--dry-run prints it): by default every 2-D\n" +
		"floating-point *.weight is quantized except embeddings and lm_head, as llm-compressor does\n" +
		"(see `quantkit inspect`); norms, biases, embeddings and lm_head keep their dtype, byte for\n" +
		"byte. --include replaces that rule, --exclude keeps what it matches. Then the tensors are\n" +
		"streamed in blocks of rows: read (pread into recycled buffers, so the input's pages do not\n" +
		"stay resident), min-max fitted (a per-tensor scale after a pass over the whole tensor),\n" +
		"quantized on the CPU by --workers workers at once, measured (SQNR of the dequantized\n" +
		"weight against the original) and written in plan order; kept tensors are copied in blocks\n" +
		"too. --max-memory SIZE (256MiB) sizes the blocks (at most 4 MiB of input each) so that\n" +
		"workers+1 of them in flight (up to 8 when the budget holds them, for the workers to run\n" +
		"ahead of a stalled write), the scales of the tensor being written (they follow its codes\n" +
		"in the file), the writers' buffers and 40 MiB for the program fit in it, whatever the\n" +
		"largest tensor; the Go heap is held to that peak too. --dry-run prints the planned peak,\n" +
		"and a budget too small for one block of some tensor is refused, naming it. The output is\n" +
		"byte for byte what quantizing each tensor whole gives. With --format gguf the blocks (at\n" +
		"most 1M values, copies included, 2·workers in flight) are sized to --max-memory too.\n" +
		"\n" +
		"Formats (--format):\n" +
		"  compressed-tensors  what llm-compressor writes and vLLM loads: W (int-quantized, int8) or\n" +
		"                      W_packed + W_shape (pack-quantized, int4), W_scale (in the weight's\n" +
		"                      dtype when F16/BF16, else F32), W_zero_point when asymmetric;\n" +
		"                      config.json gets quantization_config (ignore: kept Linear layers).\n" +
		"  compressed-tensors-packed  the same with int8 too pack-quantized (W_packed, four codes\n" +
		"                      an int32): the form vLLM loads for weight-only int8, which it reads\n" +
		"                      int-quantized only as W8A8 (with quantized activations).\n" +
		"  safetensors         quant's raw layout: W (I8 codes, or U8 packed two 4-bit codes a byte,\n" +
		"                      low nibble first), W.scale F32, W.zero_point I32 when asymmetric;\n" +
		"                      __metadata__ quantkit.format = quantkit-raw, quantkit.scheme and\n" +
		"                      quantkit.tensors (each W's original shape and dtype).\n" +
		"  gguf-q8_0, gguf-q4_0  a tensor container for other tools, not a model llama.cpp runs: one\n" +
		"                      GGUF file OUT of any architecture's checkpoint, 2-D quantized weights\n" +
		"                      as Q8_0/Q4_0 blocks of 32 (a weight whose rows are not a multiple of\n" +
		"                      32 stays F32), the rest in their dtype, under Hugging Face's tensor\n" +
		"                      names, without llama.cpp's metadata or tokenizer (general.architecture\n" +
		"                      is config.json's model_type). For a file llama.cpp, ollama or LM Studio\n" +
		"                      run, use --format gguf --type Q8_0 (or Q4_0, Q4_K_M, ...): quantize says\n" +
		"                      so when IN is a checkpoint that --format gguf converts. --scheme,\n" +
		"                      --granularity, --symmetric, --asymmetric, --shard-size and --shard do\n" +
		"                      not apply (refused).\n" +
		"\n" +
		"GGUF (--format gguf --type TYPE [--pure]): IN is an F32, F16 or BF16 .gguf file (from\n" +
		"llama.cpp's convert_hf_to_gguf.py, say), or a Hugging Face Llama-family checkpoint\n" +
		"(LlamaForCausalLM, MistralForCausalLM: Llama 2/3, Mistral, TinyLlama, SmolLM) with its\n" +
		"config.json, tokenizer.json and tokenizer_config.json, converted as convert_hf_to_gguf.py\n" +
		"does (llama.cpp's tensor names, the Q/K row permutation, norms in F32, tied embeddings\n" +
		"without output.weight, the hyperparameters and the tokenizer) at its own precision, in the\n" +
		"same pass; a checkpoint it cannot convert is refused up front, naming what is missing.\n" +
		"OUT is the .gguf file llama-quantize IN OUT TYPE would write, with llama-quantize's per-tensor rules (llama.cpp release v0.4.0, as bundled\n" +
		"with node-llama-cpp 3.21.1): only weights of 2 or more dimensions are quantized (norms,\n" +
		"1-D tensors, the expert router and positional tables are copied); output.weight gets Q6_K\n" +
		"(Q8_0 in Q8_0); in Q4_K_M and Q5_K_M attn_v and ffn_down get Q6_K in the layers\n" +
		"use_more_bits picks (the first and last eighth, every third between), Q4_K_S gives Q5_K to\n" +
		"the first 4 attn_v and the first eighth of ffn_down; Q2_K gives Q3_K to attn_output,\n" +
		"ffn_down and attn_v (Q4_K with 4 or more query heads per KV head), Q3_K_M gives Q5_K to\n" +
		"the first 2 attn_v and the first sixteenth of ffn_down and Q4_K to the other attn_v,\n" +
		"ffn_down and attn_output, Q3_K_L gives Q5_K to all three; a type whose blocks do not\n" +
		"divide a tensor's rows falls back (Q2_K and Q3_K to Q4_0, Q4_K to Q5_0, Q5_K to Q5_1,\n" +
		"Q6_K to Q8_0, then F16). --pure\n" +
		"skips the rules but not the fallbacks. Every key-value (tokenizer included) is carried\n" +
		"over, general.file_type and general.quantization_version (2) are set, the tensors are\n" +
		"written in llama-quantize's order (by layer, then name), aligned to general.alignment (32\n" +
		"by default): for the mixes whose types quantkit encodes, the file is byte for byte\n" +
		"llama-quantize's. --dry-run prints each tensor's type and why.\n" +
		"Quantized input tensors (requantizing) and NaN/Inf in a tensor to convert are refused.\n" +
		"\n" +
		"OUT is written atomically: into a temporary directory .OUT.tmp-PID-* beside it, moved to\n" +
		"OUT only when everything (shards, index, config.json, side files) is written. An existing\n" +
		"OUT is refused unless --force (an empty directory excepted); the final move never removes\n" +
		"anything else: without --force it goes only into an absent name (a directory made at OUT\n" +
		"meanwhile, or a second run's output, is kept and this run fails), with --force it replaces\n" +
		"only what was at OUT when the run began. OUT may not be IN or hold it, even with --force.\n" +
		"Ctrl-C, SIGTERM or SIGHUP stop the workers, remove the temporary output and exit with\n" +
		"130, 143 or 129; after a SIGKILL the next run to the same OUT removes what was left and\n" +
		"says so. An input truncated or rewritten during the run is an error naming it. A\n" +
		"checkpoint that is quantized already is refused (dequantize it first).\n" +
		"\n" +
		"NaN/Inf: a weight to quantize that holds NaN or ±Inf is an error naming the tensor, unless\n" +
		"--allow-nonfinite: then NaN becomes 0 and ±Inf the tensor's largest finite magnitude, and\n" +
		"the count is reported. Kept tensors are copied as they are.\n" +
		"\n" +
		"--shard I/N quantizes plan items I, I+N, I+2N, … (item k goes to part k mod N) into\n" +
		"OUT/part-I-of-N, with part.json holding the plan hash; `quantkit merge OUT/part-*` joins the\n" +
		"N parts into the checkpoint one run would write. With --format gguf, OUT is the parts\n" +
		"directory and the tensors are balanced by bytes: the largest first, each to the part with\n" +
		"the fewest bytes so far (every N-th tensor would give one part every FFN matrix of a Llama\n" +
		"and another only norms); OUT/part-I-of-N holds part.gguf (the metadata and the part's\n" +
		"tensors) and part.json (the plan hash, of the input's header and first and last rows, the\n" +
		"type, --pure and every tensor's type and part), and `quantkit merge OUT/part-* -o F.gguf`\n" +
		"writes the file one run would write, byte for byte. Not for gguf-q8_0 and gguf-q4_0.\n" +
		"part.json also records every file of the part, its size and SHA-256: merge checks them all\n" +
		"first and names each part that is missing, of another plan, or changed since it was written.\n" +
		"\n" +
		"--shard auto (or auto/N) takes the part from the job engine, so that one command serves every\n" +
		"task of an array (deploy/slurm and deploy/kubernetes hold ready-made jobs):\n" +
		"  Slurm array     I is SLURM_ARRAY_TASK_ID: number the array from 0 (sbatch --array=0-N-1), so\n" +
		"                  that a task rerun alone (sbatch --array=K) writes part K again. N is auto/N,\n" +
		"                  else QUANTKIT_SHARD_COUNT, else SLURM_ARRAY_TASK_COUNT when the array is all\n" +
		"                  of 0..N-1 (a rerun of some tasks needs N given).\n" +
		"  Kubernetes      I is JOB_COMPLETION_INDEX of an Indexed Job; N, which a pod is not told, is\n" +
		"                  auto/N or QUANTKIT_SHARD_COUNT (the Job's completions).\n" +
		"A missing or malformed variable is an error naming it; the part chosen is printed on stderr.\n" +
		"\n" +
		"Importance matrices (--format gguf): --imatrix FILE quantizes with llama-imatrix's file;\n" +
		"--calib FILE computes one on IN first, as `quantkit imatrix` does: the text cut in chunks of\n" +
		"--calib-ctx tokens (512), at most --calib-chunks of them, as llama-imatrix cuts it; or, with\n" +
		"--calib-samples N, --calib-len T or --seed S, N windows of T tokens at seeded offsets, the\n" +
		"selection every calibrated --method takes.\n" +
		"\n" +
		"--eval FILE measures, once OUT is written, what quantizing cost on the text in FILE, as\n" +
		"`quantkit lm eval --ref IN OUT --text FILE` does: OUT's perplexity and the mean, 99th\n" +
		"percentile and max of KL(IN‖OUT) and top-1 agreement, in windows of --eval-ctx tokens\n" +
		"(512, or the model's context when shorter), on the CPU. IN must be a model lm runs (a\n" +
		"Llama-family checkpoint with config.json and tokenizer.json, or a llama GGUF); FILE, IN and\n" +
		"the window are checked before quantizing. Not with --dry-run, --shard, gguf-q8_0 or gguf-q4_0\n" +
		"(Hugging Face names lm cannot load). The report gains eval (lm eval's JSON report).\n" +
		"\n" +
		"Checkpoint quantization runs on the CPU, on every core (--device gpu is refused): it is\n" +
		"memory-bound, each weight read, scaled, rounded and written once, and a GPU would add\n" +
		"PCIe copies to a job bounded by memory and disk bandwidth.\n" +
		"\n" +
		"--json prints, instead of the table, and --json-out FILE writes, beside it, {input,\n" +
		"output, format, scheme, device, workers, dry_run, shard: {index, count} | null, plan_hash,\n" +
		"tensors: [{name, dtype, shape, action: quantize|keep, reason,\n" +
		"scheme, scale_dtype, outputs: [{name, dtype, shape, bytes}], bytes_in, bytes_out, sqnr_db\n" +
		"(null when exact or not run), nonfinite}], totals: {tensors, quantized, kept, bytes_in,\n" +
		"bytes_out, ratio}, memory_estimate (the planned peak), max_memory, stream: {workers, max_memory,\n" +
		"in_flight, block_bytes, tail_bytes, peak_bytes}, seconds, gb_per_s, sqnr: {min_db, mean_db, worst:\n" +
		"[{name, sqnr_db}]} | null}. With --format gguf: {input, output, type, file_type, pure, device,\n" +
		"workers, dry_run, shard: {index, count} | null, plan_hash, tensors (a part's only, with --shard): [{name, dims (ggml order: row length first), input_type,\n" +
		"output_type, action: quantize|convert|copy, reason, fallback, bytes_in, bytes_out}], totals:\n" +
		"{tensors, quantized, converted, copied, fallbacks, elements, bytes_in, bytes_out,\n" +
		"bits_per_weight, ratio}, memory_estimate, max_memory, unsupported: [types this build cannot encode],\n" +
		"seconds, gb_per_s}.\n" +
		"\n" +
		"CALIBRATED QUANTIZATION (--method mse|gptq|awq|smoothquant…; rtn, the default, is everything above): IN is a float\n" +
		"Llama, Mistral or Qwen2 checkpoint that `quantkit lm` runs; OUT is compressed-tensors (or\n" +
		"compressed-tensors-packed) with a per-channel or per-group scheme, written as above. The\n" +
		"model is processed layer by layer: only one layer's float weights are read at a time.\n" +
		"  mse   data-free: each channel's or group's clipping ratio (1 down to 0.5, 51 steps) that\n" +
		"        minimises the weight's squared round-trip error; never worse than rtn per channel.\n" +
		"  gptq  GPTQ as llm-compressor runs it: --calib FILE is tokenized with IN's tokenizer (plain\n" +
		"        text: one document; JSONL: one per line; each as BOS text EOS, concatenated) and\n" +
		"        --calib-samples windows of --calib-len tokens are cut at offsets drawn with --seed\n" +
		"        (a .npy [n, t] of ids: n rows drawn, each cut to --calib-len; [t]: a stream); text\n" +
		"        shorter than one window is refused. The windows are embedded and run through each\n" +
		"        layer, collecting H = 2/n·Σ xxᵀ per distinct projection input (q/k/v, o, gate/up,\n" +
		"        down); each projection is quantized with 1 % dampening, float64 Cholesky of H⁻¹,\n" +
		"        blocks of 128 columns, static activation order (--actorder) and group scales\n" +
		"        (--gptq-scales: mse's clipping search, or min-max) from the original weights\n" +
		"        (--gptq-updated-scales: from the updated ones); a Hessian that is not positive\n" +
		"        definite falls back to rtn with a warning. The quantized layer computes the next\n" +
		"        layer's inputs. By default, when the calibration windows cover 2,500 distinct\n" +
		"        tokens or more, gptq targets the float model (--gptq-asymmetric, GPTAQ): the float\n" +
		"        hidden states travel beside the quantized ones (both as float16 then, the memory\n" +
		"        of one stream in float32), the four stages (q/k/v, o, gate/up, down) are\n" +
		"        quantized in turn, and each stage's weights are first moved to those whose\n" +
		"        outputs from the quantized inputs best match the float model's: on stories260K\n" +
		"        int4 group 32, mean KL 0.42–0.50 of rtn's over seven calibration seeds (0.46 on\n" +
		"        average) against 0.53–0.60 without. On fewer distinct tokens the correction\n" +
		"        overfits: llm-compressor's schedule then, as with --gptq-asymmetric=false (the\n" +
		"        dry run tokenizes the text to say which). Memory: one layer's weights, its\n" +
		"        Hessians, the calibration activations and a chunk's scratch (chunks of 512 rows;\n" +
		"        awq and smoothquant: their searches' 4096 tokens instead of the Hessians; --dry-run\n" +
		"        says how much, the Go heap is held to that + 20 % and collected at 5 % growth).\n" +
		"        Not with --include, --exclude, --shard, --allow-nonfinite or the gguf formats.\n" +
		"  awq   AWQ (--calib as gptq): per input channel scales s = x̄^r / w̄^(1−r) (x̄ the mean |x|\n" +
		"        over the calibration tokens, w̄ the mean |W| normalised by its group's max, as\n" +
		"        AutoAWQ), r on a grid of 20 in [0, 1), with and without the weight term, chosen by\n" +
		"        the output error of what consumes them (attention output for q/k/v, MLP output for\n" +
		"        gate/up, down_proj's for down, o_proj's for o: under grouped attention, unlike\n" +
		"        AutoAWQ, the query heads sharing a kv head share its scales) on the first 4096\n" +
		"        calibration tokens; folded into the norms, up_proj and v_proj, so OUT is a plain\n" +
		"        checkpoint. Then, as AutoAWQ's auto_clip, every projection but q/k gets per row\n" +
		"        and group the clipping max (1, 0.95, …, 0.55 of its max |W|) of least output error\n" +
		"        on the scaled calibration inputs, q/k mse's clip, and rtn; the search measures each\n" +
		"        candidate with that same quantizer (awq+gptq: gptq instead, with --gptq-scales,\n" +
		"        which the search then uses). By default, from 2,500 distinct calibration tokens\n" +
		"        (--awq-asymmetric), awq then targets the float model as gptq does: the float\n" +
		"        hidden states travel beside the quantized ones and the four stages (q/k/v, o,\n" +
		"        gate/up, down) are quantized in turn, each stage's scaled weights first moved by\n" +
		"        GPTAQ's correction and clipped on its inputs from the quantized earlier stages;\n" +
		"        on stories260K int4 group 32 that takes mean KL from 0.61–0.66 to 0.47–0.48 of\n" +
		"        rtn's. On fewer distinct tokens, or with --awq-asymmetric=false, AutoAWQ's\n" +
		"        schedule: a layer's projections all from the float layer's inputs, no float\n" +
		"        target, no Hessians.\n" +
		"  smoothquant  s_j = max|X_j|^α / max|W_j|^(1−α), folded into the norms (and into up_proj\n" +
		"        and v_proj's rows). By default α is chosen per layer and input, of no smoothing\n" +
		"        and α = 0.05, 0.1, …, 1, by the output error of the quantized projections (W8A8:\n" +
		"        int8 weights and per-token int8 activations) on the calibration inputs, at\n" +
		"        q/k/v, gate/up, down and o (o when there is no grouped attention); --alpha fixes\n" +
		"        α at q/k/v and gate/up (llm-compressor's mappings). Then rtn (smoothquant+gptq:\n" +
		"        gptq). With the default --scheme int8 it writes W8A8\n" +
		"        (--w8a8, also for rtn and gptq): quantization_config declares dynamic per-token\n" +
		"        int8 activations, which vLLM and `quantkit lm` run with int8 GEMMs.",
	Flags: []cli.Flag{quantOutFlag, quantSchemeFlag, quantGranFlag, quantSymFlag, quantAsymFlag, quantFormatFlag,
		quantInclFlag, quantExclFlag, ckptDeviceFlag, ckptWorkFlag, ckptMemFlag, quantDryFlag, jsonFlag, jsonOutFlag, quantForceFlag,
		quantSizeFlag, quantShardFlag, quantNonFinFlag, quantTypeFlag, quantPureFlag, quantImatrixFlag, quantEvalFlag, quantEvalCtxFlag,
		quantMethodFlag, quantCalibFlag, quantCalibNFlag, quantCalibTFlag, quantSeedFlag, quantCalibCtxFlag, quantCalibChunksFlag, quantActOrderFlag, quantUpdatedFlag,
		quantGPTQScales, quantGPTQSeq, quantGPTQDamp, quantGPTQAsym, quantAWQAsym,
		quantAlphaFlag, quantW8A8Flag},
	Action: runQuantize,
}

func runQuantize(c *cli.Context) error {
	if calibrated(c) && !ggufCalibrated(c) {
		return runQuantizeLLM(c)
	}
	if c.String(quantFormatFlag.Name) == ggufFormat {
		return runQuantizeGGUF(c)
	}
	opt, err := parseQuantizeFlags(c)
	if err != nil {
		return badInput(fmt.Errorf("quantize: %w", err))
	}
	ev, err := parseQuantEval(c, opt.Input, string(opt.Plan.Format))
	if err != nil {
		return badInput(fmt.Errorf("quantize: %w", err))
	}
	noteLlamaGGUF(c.App.ErrWriter, opt.Input, opt.Plan.Format)
	var rep *quantize.Report
	if c.Bool(quantDryFlag.Name) {
		rep, err = quantize.DryRun(*opt)
	} else {
		var done func()
		opt.Progress, done = tensorProgress()
		rep, err = quantize.Run(c.Context, *opt)
		done()
	}
	if err == nil {
		err = reportQuantized(c, ev, rep.Output, rep, rep.WriteTable,
			func(er *lmeval.EvalReport) any { return quantizeEvalReport{rep, er} })
	}
	if err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	return nil
}

func parseQuantizeFlags(c *cli.Context) (*quantize.Options, error) {
	args := c.Args().Slice()
	if len(args) != 1 || c.String(quantOutFlag.Name) == "" {
		return nil, errors.New("give one input checkpoint and the output: quantize IN -o OUT")
	}
	if err := checkCPUDevice(c); err != nil {
		return nil, err
	}
	if err := checkJSONOut(c); err != nil {
		return nil, err
	}
	for _, f := range []cli.Flag{quantTypeFlag, quantPureFlag, quantImatrixFlag} {
		if name := f.Names()[0]; c.IsSet(name) {
			return nil, fmt.Errorf("--%s applies to --format gguf only (a GGUF input to llama-quantize's types)", name)
		}
	}
	if isGGUFFile(args[0]) {
		return nil, fmt.Errorf("%s is a GGUF file: quantize it with --format gguf --type TYPE (%s)", args[0], strings.Join(ggufmix.Names(), ", "))
	}
	opt := &quantize.Options{Input: args[0], Output: c.String(quantOutFlag.Name), Workers: c.Int(ckptWorkFlag.Name),
		Force: c.Bool(quantForceFlag.Name), AllowNonFinite: c.Bool(quantNonFinFlag.Name), Log: c.App.ErrWriter}
	opt.Plan.Format = plan.Format(c.String(quantFormatFlag.Name))
	if !slices.Contains(plan.FormatNames(), string(opt.Plan.Format)) {
		return nil, fmt.Errorf("--format %s: not one of %s", opt.Plan.Format, strings.Join(plan.FormatNames(), ", "))
	}
	if plan.IsGGUF(opt.Plan.Format) {
		// GGUF's blocks fix the scheme: flags that choose one would be
		// ignored without a word.
		for _, f := range []cli.Flag{quantSchemeFlag, quantGranFlag, quantSymFlag, quantAsymFlag, quantSizeFlag, quantShardFlag} {
			if name := f.Names()[0]; c.IsSet(name) {
				return nil, fmt.Errorf("--%s does not apply to --format %s, which quantizes in blocks of 32 with a scale each "+
					"(Q8_0/Q4_0) into one file: drop --%s, or choose compressed-tensors or safetensors", name, opt.Plan.Format, name)
			}
		}
	}
	if c.Bool(quantSymFlag.Name) && c.Bool(quantAsymFlag.Name) {
		return nil, errors.New("--symmetric and --asymmetric exclude each other")
	}
	s, err := parseScheme(c.String(quantSchemeFlag.Name), c.String(quantGranFlag.Name), c.Bool(quantAsymFlag.Name))
	if err != nil {
		return nil, err
	}
	opt.Plan.Scheme = s
	for _, f := range []struct {
		flag *cli.StringFlag
		dst  **regexp.Regexp
	}{{quantInclFlag, &opt.Plan.Include}, {quantExclFlag, &opt.Plan.Exclude}} {
		if v := c.String(f.flag.Name); v != "" {
			re, err := regexp.Compile(v)
			if err != nil {
				return nil, fmt.Errorf("--%s: %w", f.flag.Name, err)
			}
			*f.dst = re
		}
	}
	if opt.Workers < 0 {
		return nil, errors.New("--workers must be positive")
	}
	if opt.MaxMemory, err = parseMaxMemory(c); err != nil {
		return nil, err
	}
	if opt.ShardSize, err = parseShardSize(c, quantSizeFlag); err != nil {
		return nil, err
	}
	if opt.Shard, err = parseShard(c); err != nil {
		return nil, err
	}
	return opt, nil
}

// calibrated reports whether the flags ask for job/llmq: a method other
// than rtn, or any of its flags.
func calibrated(c *cli.Context) bool {
	if c.String(quantMethodFlag.Name) != string(llmq.RTN) {
		return true
	}
	for _, f := range []cli.Flag{quantCalibFlag, quantCalibNFlag, quantCalibTFlag, quantSeedFlag, quantCalibCtxFlag, quantCalibChunksFlag, quantActOrderFlag, quantUpdatedFlag, quantAlphaFlag, quantW8A8Flag, quantGPTQScales, quantGPTQSeq, quantGPTQDamp, quantGPTQAsym, quantAWQAsym} {
		if c.IsSet(f.Names()[0]) {
			return true
		}
	}
	return false
}

// runQuantizeLLM is --method mse|gptq: job/llmq's layer-by-layer pipeline.
func runQuantizeLLM(c *cli.Context) error {
	fail := func(err error) error { return badInput(fmt.Errorf("quantize: %w", err)) }
	method := llmq.Method(c.String(quantMethodFlag.Name))
	if !slices.Contains(llmq.Methods(), string(method)) {
		return fail(fmt.Errorf("--method %s: not one of %s", method, strings.Join(llmq.Methods(), ", ")))
	}
	if f := c.String(quantFormatFlag.Name); f == ggufFormat || plan.IsGGUF(plan.Format(f)) || f == string(plan.Safetensors) {
		return fail(fmt.Errorf("--method %s writes compressed-tensors (or compressed-tensors-packed), not --format %s", method, f))
	}
	for _, f := range []cli.Flag{quantInclFlag, quantExclFlag, quantShardFlag, quantNonFinFlag, ckptWorkFlag, quantCalibCtxFlag, quantCalibChunksFlag} {
		if name := f.Names()[0]; c.IsSet(name) {
			return fail(fmt.Errorf("--%s does not apply to --method %s", name, method))
		}
	}
	smoothQuant := method == llmq.SmoothQuant || method == llmq.SmoothQuantGPTQ
	if c.IsSet(quantAlphaFlag.Name) && !smoothQuant {
		return fail(fmt.Errorf("--alpha applies to --method smoothquant, not %s", method))
	}
	if !method.NeedsData() {
		for _, f := range []cli.Flag{quantCalibFlag, quantCalibNFlag, quantCalibTFlag, quantSeedFlag, quantActOrderFlag, quantUpdatedFlag} {
			if name := f.Names()[0]; c.IsSet(name) {
				return fail(fmt.Errorf("--%s applies to --method gptq, awq and smoothquant; %s is data-free", name, method))
			}
		}
	}
	usesGPTQ := method == llmq.GPTQ || method == llmq.AWQGPTQ || method == llmq.SmoothQuantGPTQ
	for _, f := range []cli.Flag{quantGPTQScales, quantGPTQSeq, quantGPTQDamp, quantGPTQAsym} {
		if name := f.Names()[0]; c.IsSet(name) && !usesGPTQ {
			return fail(fmt.Errorf("--%s applies to the gptq methods, not %s", name, method))
		}
	}
	if c.IsSet(quantAWQAsym.Name) && method != llmq.AWQ {
		return fail(fmt.Errorf("--%s applies to --method awq, not %s (awq+gptq: --%s)", quantAWQAsym.Name, method, quantGPTQAsym.Name))
	}
	if sc := c.String(quantGPTQScales.Name); sc != "mse" && sc != "minmax" {
		return fail(fmt.Errorf("--gptq-scales %s: mse or minmax", sc))
	}
	if d := c.Float64(quantGPTQDamp.Name); !(d > 0) || math.IsInf(d, 0) {
		return fail(fmt.Errorf("--gptq-damp %g: not positive and finite", d))
	}
	q, err := parseQuantizeFlags(c)
	if err != nil {
		return fail(err)
	}
	opt := llmq.Options{Input: q.Input, Output: q.Output, Format: q.Plan.Format, Scheme: q.Plan.Scheme, Method: method,
		ShardSize: q.ShardSize, Force: q.Force, Log: c.App.ErrWriter, W8A8: c.Bool(quantW8A8Flag.Name)}
	if smoothQuant {
		if c.IsSet(quantAlphaFlag.Name) {
			opt.Alpha = c.Float64(quantAlphaFlag.Name)
			if a := opt.Alpha; !(a > 0 && a <= 1) {
				return fail(fmt.Errorf("--alpha %g: not in (0, 1]", a))
			}
		}
		if !c.IsSet(quantW8A8Flag.Name) {
			opt.W8A8 = method.DefaultW8A8(opt.Scheme, opt.Format)
		}
	}
	if method.NeedsData() {
		opt.Calib = llmq.CalibOptions{Path: c.String(quantCalibFlag.Name), Samples: c.Int(quantCalibNFlag.Name),
			SeqLen: c.Int(quantCalibTFlag.Name), Seed: c.Uint64(quantSeedFlag.Name)}
		if opt.Calib.Samples <= 0 || opt.Calib.SeqLen <= 0 {
			return fail(errors.New("--calib-samples and --calib-len must be positive"))
		}
		opt.GPTQ.ActOrder, opt.GPTQ.UpdatedScales = c.Bool(quantActOrderFlag.Name), c.Bool(quantUpdatedFlag.Name)
		opt.GPTQ.Damp = c.Float64(quantGPTQDamp.Name)
		opt.MinMaxScales = c.String(quantGPTQScales.Name) == "minmax"
		opt.Sequential = c.Bool(quantGPTQSeq.Name)
		// Unset, the pipeline chooses (llmq.Auto).
		for _, f := range []*cli.BoolFlag{quantGPTQAsym, quantAWQAsym} {
			if c.IsSet(f.Name) {
				opt.Asymmetric = llmq.ToggleOf(c.Bool(f.Name))
			}
		}
	}
	ev, err := parseQuantEval(c, opt.Input, string(opt.Format))
	if err != nil {
		return fail(err)
	}
	var rep *llmq.Report
	if c.Bool(quantDryFlag.Name) {
		rep, err = llmq.DryRun(opt)
	} else {
		rep, err = llmq.Run(c.Context, opt)
	}
	if err == nil {
		err = reportQuantized(c, ev, rep.Output, rep, rep.WriteTable, func(er *lmeval.EvalReport) any {
			return struct {
				*llmq.Report
				Eval *lmeval.EvalReport `json:"eval"`
			}{rep, er}
		})
	}
	if err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	return nil
}

// parseShard parses --shard (nil when not given): I/N, or auto or auto/N
// from the job engine's environment (quantize.ResolveShard), saying which
// part that is and whence.
func parseShard(c *cli.Context) (*quantize.ShardSpec, error) {
	v := c.String(quantShardFlag.Name)
	if v == "" {
		return nil, nil
	}
	s, from, err := quantize.ResolveShard(v, os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("--shard: %w", err)
	}
	if from != "" {
		fmt.Fprintf(c.App.ErrWriter, "quantize: --shard %s is part %d/%d (%s)\n", v, s.Index, s.Count, from)
	}
	return s, nil
}

// parseShardSize parses a --shard-size flag: a positive size.
func parseShardSize(c *cli.Context, f *cli.StringFlag) (int64, error) {
	n, err := units.ParseSize(c.String(f.Name))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("--%s: must be a positive size: %q", f.Name, c.String(f.Name))
	}
	return n, nil
}

// parseScheme is quant.ParseSchemeParts with its errors naming the flag
// (--scheme or --granularity) of the part refused.
func parseScheme(typ, gran string, asym bool) (quant.Scheme, error) {
	s, err := quant.ParseSchemeParts(typ, gran, !asym)
	if se := (*quant.SchemeError)(nil); errors.As(err, &se) {
		return s, fmt.Errorf("--%s %s: %w", se.Part, se.Value, se.Err)
	}
	return s, err
}

// ggufFormat is --format gguf: a GGUF file to one of llama-quantize's
// types (job/quantize's RunGGUF).
const ggufFormat = "gguf"
