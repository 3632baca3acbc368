// Package synth generates synthetic Llama-like checkpoints for tests and
// benchmarks: the tensor names, shapes and config.json of a Hugging Face
// LlamaForCausalLM, filled with weights whose statistics resemble those of
// trained language models, written as safetensors without ever holding
// the checkpoint in memory.
//
// # Tensors
//
// For a Config with hidden size H, intermediate size I, vocabulary V and
// KV dimension K = KVHeads × H/Heads, the tensors are, in file order:
//
//	model.embed_tokens.weight                      [V, H]
//	model.layers.i.input_layernorm.weight          [H]
//	model.layers.i.self_attn.q_proj.weight         [H, H]
//	model.layers.i.self_attn.k_proj.weight         [K, H]
//	model.layers.i.self_attn.v_proj.weight         [K, H]
//	model.layers.i.self_attn.o_proj.weight         [H, H]
//	model.layers.i.post_attention_layernorm.weight [H]
//	model.layers.i.mlp.gate_proj.weight            [I, H]
//	model.layers.i.mlp.up_proj.weight              [I, H]
//	model.layers.i.mlp.down_proj.weight            [H, I]
//	model.norm.weight                              [H]
//	lm_head.weight                                 [V, H]
//
// for i = 0 … Layers-1. The output head is not tied to the embedding.
//
// # Values
//
// Trained LLM weights are heavy-tailed, with a few input channels much
// larger than the rest; quantizers are judged on exactly those, so a
// Gaussian checkpoint would flatter them. Here:
//
//   - Linear weights [out, in] are Student-t with ν = 6 (kurtosis 6, against
//     3 for a Gaussian), scaled to standard deviation 1/√in, the scale that
//     keeps activations of order one through the layer.
//   - q, k, v, gate and up projections, which read the normalised residual
//     stream, share a few outlier input channels (2 + H/2048 of them, at
//     most 6), the same in every layer, as outlier features are in trained
//     models; down projections have a few outlier input channels of their
//     own in each layer (2 + I/8192, at most 6). An outlier column is
//     multiplied by a factor drawn uniformly from [5, 20].
//   - Embeddings are Student-t with standard deviation 0.02 (Hugging Face's
//     initializer_range); lm_head is a linear layer of fan-in H.
//   - RMSNorm weights are 1 + 0.05·N(0, 1).
//
// Values are computed in float64, rounded to float32, then to the Config's
// dtype (F16 and BF16 round to nearest even).
//
// Every row of every tensor is drawn from its own PCG stream, seeded from a
// hash of (Seed, tensor name, row index), so any tensor or any block of
// rows can be generated on its own and in any order (Config.Rows), and a
// checkpoint's bytes depend only on the Config, not on how the work was
// split.
//
// # Writing
//
// Write streams the tensors to model.safetensors, or to shards
// model-00001-of-0000N.safetensors of at most Options.ShardSize bytes of
// tensor data with a model.safetensors.index.json as Hugging Face writes
// them (planned, named and indexed by package checkpoint, whose Open reads
// the result), and writes a config.json and, for vocabularies of at least
// 259 tokens, a tokenizer.json and tokenizer_config.json: a
// SentencePiece-style tokenizer as Llama 2's (<unk>, <s>, </s>, the 256
// byte tokens, then filler tokens made by merges of printable ASCII and
// "▁"), so that generated checkpoints convert to GGUF. Blocks of rows are generated in parallel
// and written in order, so memory stays bounded by a few blocks per worker
// (a few MiB each) whatever the checkpoint's size.
//
// # Sizes
//
// LlamaLike picks shapes from this table, real Llama-architecture models
// (parameter counts are this package's: lm_head untied):
//
//	row    after                   hidden  inter  layers heads kv  vocab   params
//	1M     (tiny, for tests)          64    256      8     4    2   4096   1.02M
//	10M    (tiny, for tests)         256    688      8     8    4   8192   10.0M
//	135M   SmolLM-135M               576   1536     30     9    3  49152    163M
//	360M   SmolLM-360M               960   2560     32    15    5  49152    409M
//	1B     Llama-3.2-1B, 32k vocab  2048   8192     16    32    8  32000   1.10B
//	3B     Llama-3.2-3B             3072   8192     28    24    8 128256   3.61B
//	7B     Llama-2-7B               4096  11008     32    32   32  32000   6.74B
//	8B     Llama-3-8B               4096  14336     32    32    8 128256   8.03B
//	13B    Llama-2-13B              5120  13824     40    40   40  32000   13.0B
//	33B    LLaMA-33B                6656  17920     60    52   52  32000   32.5B
//	70B    Llama-3-70B              8192  28672     80    64    8 128256   70.6B
//	405B   Llama-3.1-405B          16384  53248    126   128    8 128256    406B
//
// The row nearest the budget (by ratio) is taken as it is when its count
// is within 5% of the budget. Otherwise the nearest row of which one
// layer fits keeps its widths and gets the number of layers that brings
// the count nearest the budget, and when that still misses by more than
// 2%, its vocabulary takes up the rest (changing only the embedding and
// lm_head, which quantization keeps). Budgets below one layer of every
// row get a tiny shape (hidden a power of two up to 64). So every budget
// from MinParams (1000) up is met within 5%: 200M gives 200M (41 layers
// of the 135M row), 1B 982M (14 layers of the 1B row), 1K 996. In
// float32 a parameter is 4 bytes: the 360M row is a 1.6 GB checkpoint,
// 1B 3.9 GB, 7B 27 GB.
package synth
