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
// Every repeated field is counted before its slice is allocated, so that
// decoding allocates a bounded multiple of the input (FuzzRead holds it
// to 40 times, plus fixed costs), whatever sizes the input declares.
//
// What onnx.proto requires and readers rely on is checked: nodes have an
// op_type, initializers and values a name, and no name is used twice
// where values are looked up by it (Graph.CheckNames: initializers, graph
// inputs and outputs, node outputs, a node's attributes). Read opens only
// regular files (model/format.Open), so a named pipe or a device given as
// a model is an error, not a hang.
//
// Errors name the file and the field: "onnx: model.onnx:
// graph.node[3] (conv1).attribute[0] (pads).ints: truncated varint".
//
// Writing is deterministic: the same Model always gives the same bytes.
// Repeated numbers are written packed, scalars that are zero omitted
// (except an attribute's value, which is always written, as onnx's own
// serializer does).
package onnx
