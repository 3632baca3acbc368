// Package onnx reads and writes the subset of the ONNX protobuf format
// that feed-forward image classifiers use: ModelProto, GraphProto,
// NodeProto with scalar, list, string and tensor attributes, TensorProto
// with its typed and raw data, and ValueInfoProto with tensor types and
// shapes.
//
// The wire format is decoded with google.golang.org/protobuf/encoding/protowire
// against the field numbers of onnx.proto, with explicit limits on file
// size, counts and rank (see the Max constants). Fields this package does
// not model (doc strings, sparse initializers, graph-valued
// attributes, training information, local functions) are skipped when
// reading and absent when writing. Groups, which onnx.proto never uses, are
// rejected, so nesting is bounded by the message structure itself.
//
// Errors name the file and the field: "onnx: model.onnx:
// graph.node[3] (conv1).attribute[0] (pads).ints: truncated varint".
//
// Writing is deterministic: the same Model always gives the same bytes.
// Repeated numbers are written packed, scalars that are zero omitted
// (except an attribute's value, which is always written, as onnx's own
// serializer does).
package onnx
