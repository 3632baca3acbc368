// Package checkpoint reads and writes a model checkpoint as Hugging Face
// lays it out: one model.safetensors, or shards
// model-00001-of-0000N.safetensors with a model.safetensors.index.json
// that maps each tensor to its shard,
//
//	{"metadata": {"total_size": 123}, "weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors", ...}}
//
// and, in the same directory, side files that travel with the weights
// (config.json, generation_config.json, tokenizer files).
//
// # Reading
//
// Open takes a .safetensors file, an index file, or a directory holding
// model.safetensors or model.safetensors.index.json (not both: transformers
// would load the first and vLLM the second). It validates before
// returning: the index is one JSON object with a non-empty weight_map of
// strings and no duplicate keys; every shard name is a local path; every
// shard exists and opens (safetensors.Open validates its header); every
// tensor of weight_map is in the shard it names; no tensor is in two
// shards; and no shard holds a tensor that weight_map does not list.
// config.json, when present, must be a JSON object. Errors name the file
// and, where there is one, the tensor. total_size is not checked, since
// writers disagree on what it counts.
//
// A Checkpoint reads like a safetensors.File (Tensors, Tensor, Bytes,
// Float32, Metadata), so code written for one file works for shards, and
// it satisfies ctensors.Source.
//
// # Writing
//
// Create plans the shards from the tensor descriptions alone (PlanShards:
// consecutive tensors, in the order given, up to a byte limit per shard)
// and then takes the data tensor by tensor, in that order, so that a
// quantize pipeline holds one tensor in memory at a time. Each shard is
// written through a temporary file and renamed into place when complete;
// the index is written last, atomically, so a reader never finds an index
// naming an incomplete shard. Create refuses a directory that already holds
// a checkpoint, so that a failed write (which removes the shards it wrote)
// never destroys earlier files.
package checkpoint
