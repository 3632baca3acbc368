// Package ctensors writes and reads quantized weights in the
// compressed-tensors layout, the safetensors layout that llm-compressor
// writes and vLLM loads ("quant_method": "compressed-tensors" in
// config.json).
//
// # Tensors
//
// A quantized Linear weight named W (such as
// "model.layers.0.mlp.down_proj.weight") of shape [out, in] becomes, in the
// order Infos and EncodeWeight give them:
//
//	int-quantized                      pack-quantized
//	W             I8  [out, in]        W_packed  I32 [out, ceil(in/f)]
//	                                   W_shape   I64 [2] = {out, in}
//	W_scale       S   scale shape      W_scale   S   scale shape
//	W_zero_point  I8  scale shape      W_zero_point  (see below)
//
// where S is F32, F16 or BF16 (the caller's choice) and the scale shape is
// [out, 1] for the channel strategy (one scale per output row, quant's
// PerChannel on axis 0), [out, ceil(in/group_size)] for the group strategy
// (groups along in, a last shorter group allowed, as in quant), and [1] for
// the tensor strategy. The zero point is written only for asymmetric
// schemes; it is absent, not zero, for symmetric ones.
//
// # Packing
//
// pack-quantized stores f = 32/bits codes per little-endian int32 word
// (eight for 4 bits, four for 8 bits) along the last axis: code k of a word
// in bits [k·bits, (k+1)·bits), the lowest first, each offset to unsigned by
// 2^(bits-1) (a signed int4 code q is stored as the nibble q+8). A row whose
// length is not a multiple of f is padded with raw zero fields. This is
// compressed-tensors' pack_to_int32. Asymmetric channel and group zero
// points are packed the same way but along axis 0 (the output rows), giving
// I32 [ceil(out/f), groups], as current compressed-tensors and vLLM's
// CompressedTensorsWNA16 expect; a per-tensor zero point stays I8 [1].
// quant's own 4-bit storage (two signed nibbles per byte, low nibble first)
// is converted on the way in and out.
//
// # Restrictions
//
// Only signed schemes are written (compressed-tensors has no unsigned
// integer type); only two-dimensional weights, and for the channel
// strategy only quant's axis 0. Scales must be exactly representable in
// the scale dtype, so that the stored checkpoint dequantizes to exactly
// what quant computed: round them with RoundScales before quantizing when
// the scale dtype is not F32.
//
// quant's symmetric schemes use the restricted range ([-7, 7] for int4,
// [-127, 127] for int8); compressed-tensors uses the full range, which
// contains it, so the codes are stored unchanged and load as they are.
// Decoding a checkpoint written elsewhere may give a code outside quant's
// restricted range (-8 or -128); DecodeWeight returns it as stored and
// quant.Dequantize handles it correctly.
//
// # Which format vLLM loads
//
// vLLM reads weight-only integer checkpoints (input_activations null) only
// in pack-quantized format, 4 or 8 bits, channel or group strategy, through
// CompressedTensorsWNA16; for int-quantized it requires quantized input
// activations (W8A8), and it rejects int-quantized weight-only configs.
// DefaultFormat follows the house convention (int-quantized for 8 bits);
// pass PackQuantized for an int8 checkpoint meant for vLLM. vLLM also needs
// in to be a multiple of the group size.
//
// # config.json
//
// QuantizationConfig builds the "quantization_config" object and
// UpdateConfig puts it into config.json, keeping every other key, in its
// order and with its value byte for byte. ReadConfig reads it back. Both
// take config.json as untrusted: it must be one JSON object without
// duplicate keys, nested at most MaxConfigDepth deep (which bounds the
// growth of UpdateConfig's re-indented output), and they allocate a small
// multiple of its size, not a value per token as encoding/json's Decoder
// does.
package ctensors
