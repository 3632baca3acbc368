// Package llmq is calibrated quantization of a language model's
// checkpoint, layer by layer, as GPTQ and llm-compressor do it: Run reads
// a float Hugging Face checkpoint that package lm runs (Llama, Mistral,
// Qwen2) and writes a compressed-tensors checkpoint whose seven
// projections per layer are quantized by a Method (rtn, mse, gptq, awq,
// awq+gptq, smoothquant, smoothquant+gptq), the other tensors copied byte
// for byte (norms and biases a smoothing folded scales into written in
// their own dtype); DryRun plans it and estimates its
// memory. LoadCalibration reads the calibration set (text, JSONL or .npy
// token ids, tokenized and windowed as its documentation says).
//
// On stories260K at int4 group 32 (calibration: stories the model
// generated, seeds 1–256, 512 windows of 128 tokens; held out: seeds
// 101–106 and 101–160, lm eval --ref at context 128), GPTQ's mean KL is
// 0.61 of round-to-nearest's with min-max scales and 0.47–0.55 with the
// clipping search, the default; dampening 0.1 or 0.001 instead of 0.01,
// and the sequential update, change it by less than the two held-out
// sets disagree.
//
// The pipeline: the calibration ids are embedded (lm.Embed) into hidden
// states [N, T, Hidden] that stay on the host. For each layer l in turn,
// its float weights alone are read from the checkpoint (lm.ReadLayer), run
// as an lm.Block on the hidden states with a tap that adds each
// projection input's Gram matrix XᵀX (one GEMM on the backend) to its
// Hessian (q/k/v share one, gate/up share one, o and down one each), the
// seven projections are quantized, the layer's tensors are written (the
// output is laid out as the plan says, with the tensors outside the layers
// first and then layer after layer, through the same streaming, atomic
// checkpoint writer and compressed-tensors encoder that `quantkit
// quantize` uses), and the quantized layer (its dequantized weights) is run
// on the hidden states to give layer l+1 its inputs. Memory is one layer's
// float weights and its dequantized copy, the Hessians (float64), the
// hidden states and one chunk of the block's activations (Memory), not
// the model. The data-free methods (rtn, mse) skip the passes.
//
// rtn is quantkit quantize's min-max round to nearest (the pipeline's rtn
// output is byte for byte quantize's); mse searches each channel's or
// group's clipping ratio (quant/clip); gptq is quant/gptq's, with scales
// fitted by mse's clipping search (or min-max, Options.MinMaxScales) on
// the original weights (or on the updated ones,
// gptq.Options.UpdatedScales). With Options.Sequential a layer's
// projections are quantized in four stages (q/k/v, o, gate/up, down),
// each input's Hessian collected on the layer with the earlier stages
// quantized, as llm-compressor's sequential update does. With
// Options.Asymmetric (GPTAQ's asymmetric calibration, asym.go and
// gptq.Factor.Asymmetric) the float model's hidden states travel beside the
// quantized ones and each stage's weights are first moved to those whose
// outputs from the quantized inputs best match the float model's, then
// quantized by GPTQ: on stories260K int4 group 32 (calibration 32 to
// 512 windows of 128 tokens from a 56,000-character stream) mean KL 0.40–0.44
// of round-to-nearest's, against 0.53–0.60 without; on a 920-token
// stream the correction overfits and loses. It is gptq's default (Auto)
// when the calibration windows cover MinFloatTargetTokens distinct tokens
// or more; both streams of hidden states are then held as float16
// (hiddenRows), together the memory of the float32 activations, and the
// float layer and its quantized copy run by turns in one block's
// scratch. Scales are rounded to the checkpoint's
// dtype (BF16, F16) before codes are chosen, as quantize rounds them.
//
// awq searches AutoAWQ's per-input-channel scales (a grid of ratios, with
// and without the weight term, each scored by the output error of the
// block that consumes the input), then clips every projection but q/k per
// row and group by its output error on the scaled calibration inputs
// (clip.FitOutput, AutoAWQ's auto_clip; q/k take mse's clip), the search
// scoring its candidates with that quantizer. Under grouped-query
// attention, which AutoAWQ leaves unscaled at o, o's columns of the
// query heads that share a kv head share that head's v row's scale. With
// Options.Asymmetric (--awq-asymmetric; by default, Auto, from
// MinFloatTargetTokens distinct calibration tokens) the scales are chosen
// as above, then the layer is quantized in the four sequential stages
// with the float model as the target, as gptq's asymmetric calibration:
// each stage's scaled weights moved by gptq.Factor.Asymmetric, clipped by
// their output error on the inputs from the quantized earlier stages, and
// rounded to nearest: on stories260K int4 group 32, mean KL 0.42–0.46 of
// round-to-nearest's against 0.61–0.66 without. smoothquant chooses α per
// layer and input (no smoothing, or 0.05…1) by the quantized projections'
// output error, W8A8 included, at q/k/v, gate/up, down (against up_proj)
// and o (against v_proj, without grouped attention), or takes a fixed
// Options.Alpha at q/k/v and gate/up. Both fold their scales into the
// preceding norm (or up_proj, v_proj) so the output stays a plain
// checkpoint, and compose with gptq (awq+gptq, smoothquant+gptq).
// Options.W8A8 (smoothquant's default) writes llm-compressor's W8A8: int8
// per-channel weights and dynamic per-token int8 input activations in the
// quantization_config, which lm then runs in int8.
package llmq
