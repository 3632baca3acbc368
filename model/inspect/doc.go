// Package inspect describes a model file from its headers alone: every
// tensor of a safetensors checkpoint (one file, an index, or a directory
// holding either) with whether quantize would quantize it and the
// checkpoint's estimated size quantized; the metadata and tensors of a GGUF
// file; the dtype and shape of a NumPy .npy file.
//
// Path tells a file's format by its first bytes (model/format), not its
// name, and returns the report of that format; Checkpoint, GGUF and NPY
// read one format each. Every report has a JSON form (its field tags: what
// `quantkit inspect --json` prints) and a text form for people
// (WriteText).
package inspect
