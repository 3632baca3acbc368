package onnx

import (
	"bytes"
	"os"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// onnxSchema is the part of onnx.proto (proto2, package onnx) this package
// reads and writes, field for field as onnx.proto declares it, for the
// official protobuf runtime.
func onnxSchema(t *testing.T) protoreflect.MessageDescriptor {
	t.Helper()
	type f struct {
		name   string
		num    int32
		rep    bool
		typ    descriptorpb.FieldDescriptorProto_Type
		msg    string
		packed bool
	}
	const (
		str   = descriptorpb.FieldDescriptorProto_TYPE_STRING
		byt   = descriptorpb.FieldDescriptorProto_TYPE_BYTES
		i64   = descriptorpb.FieldDescriptorProto_TYPE_INT64
		i32   = descriptorpb.FieldDescriptorProto_TYPE_INT32
		u64   = descriptorpb.FieldDescriptorProto_TYPE_UINT64
		flt   = descriptorpb.FieldDescriptorProto_TYPE_FLOAT
		dbl   = descriptorpb.FieldDescriptorProto_TYPE_DOUBLE
		msg   = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
		onnxM = ".onnx."
	)
	messages := []struct {
		name   string
		fields []f
	}{
		{"ModelProto", []f{{"ir_version", 1, false, i64, "", false}, {"opset_import", 8, true, msg, "OperatorSetIdProto", false},
			{"producer_name", 2, false, str, "", false}, {"producer_version", 3, false, str, "", false}, {"domain", 4, false, str, "", false},
			{"model_version", 5, false, i64, "", false}, {"doc_string", 6, false, str, "", false}, {"graph", 7, false, msg, "GraphProto", false},
			{"metadata_props", 14, true, msg, "StringStringEntryProto", false}}},
		{"StringStringEntryProto", []f{{"key", 1, false, str, "", false}, {"value", 2, false, str, "", false}}},
		{"OperatorSetIdProto", []f{{"domain", 1, false, str, "", false}, {"version", 2, false, i64, "", false}}},
		{"GraphProto", []f{{"node", 1, true, msg, "NodeProto", false}, {"name", 2, false, str, "", false},
			{"initializer", 5, true, msg, "TensorProto", false}, {"doc_string", 10, false, str, "", false},
			{"input", 11, true, msg, "ValueInfoProto", false}, {"output", 12, true, msg, "ValueInfoProto", false},
			{"value_info", 13, true, msg, "ValueInfoProto", false}}},
		{"NodeProto", []f{{"input", 1, true, str, "", false}, {"output", 2, true, str, "", false}, {"name", 3, false, str, "", false},
			{"op_type", 4, false, str, "", false}, {"domain", 7, false, str, "", false}, {"attribute", 5, true, msg, "AttributeProto", false},
			{"doc_string", 6, false, str, "", false}}},
		{"AttributeProto", []f{{"name", 1, false, str, "", false}, {"ref_attr_name", 21, false, str, "", false},
			{"doc_string", 13, false, str, "", false}, {"type", 20, false, i32, "", false}, {"f", 2, false, flt, "", false},
			{"i", 3, false, i64, "", false}, {"s", 4, false, byt, "", false}, {"t", 5, false, msg, "TensorProto", false},
			{"g", 6, false, msg, "GraphProto", false}, {"floats", 7, true, flt, "", false}, {"ints", 8, true, i64, "", false},
			{"strings", 9, true, byt, "", false}, {"tensors", 10, true, msg, "TensorProto", false}, {"graphs", 11, true, msg, "GraphProto", false}}},
		{"ValueInfoProto", []f{{"name", 1, false, str, "", false}, {"type", 2, false, msg, "TypeProto", false}, {"doc_string", 3, false, str, "", false}}},
		{"TypeProto", []f{{"tensor_type", 1, false, msg, "TypeProto.Tensor", false}, {"denotation", 6, false, str, "", false}}},
		{"TypeProto.Tensor", []f{{"elem_type", 1, false, i32, "", false}, {"shape", 2, false, msg, "TensorShapeProto", false}}},
		{"TensorShapeProto", []f{{"dim", 1, true, msg, "TensorShapeProto.Dimension", false}}},
		{"TensorShapeProto.Dimension", []f{{"dim_value", 1, false, i64, "", false}, {"dim_param", 2, false, str, "", false},
			{"denotation", 3, false, str, "", false}}},
		{"TensorProto", []f{{"dims", 1, true, i64, "", false}, {"data_type", 2, false, i32, "", false},
			{"float_data", 4, true, flt, "", true}, {"int32_data", 5, true, i32, "", true}, {"string_data", 6, true, byt, "", false},
			{"int64_data", 7, true, i64, "", true}, {"name", 8, false, str, "", false}, {"doc_string", 12, false, str, "", false},
			{"raw_data", 9, false, byt, "", false}, {"external_data", 13, true, msg, "StringStringEntryProto", false},
			{"data_location", 14, false, i32, "", false}, {"double_data", 10, true, dbl, "", true}, {"uint64_data", 11, true, u64, "", true}}},
	}
	fd := &descriptorpb.FileDescriptorProto{Name: proto.String("onnx.proto"), Package: proto.String("onnx"), Syntax: proto.String("proto2")}
	byName := map[string]*descriptorpb.DescriptorProto{}
	for _, m := range messages {
		d := &descriptorpb.DescriptorProto{}
		for _, x := range m.fields {
			label := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
			if x.rep {
				label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED
			}
			fp := &descriptorpb.FieldDescriptorProto{Name: proto.String(x.name), Number: proto.Int32(x.num), Label: label.Enum(), Type: x.typ.Enum()}
			if x.msg != "" {
				fp.TypeName = proto.String(onnxM + x.msg)
			}
			if x.packed {
				fp.Options = &descriptorpb.FieldOptions{Packed: proto.Bool(true)}
			}
			d.Field = append(d.Field, fp)
		}
		byName[m.name] = d
		switch m.name {
		case "TypeProto.Tensor", "TensorShapeProto.Dimension":
		default:
			d.Name = proto.String(m.name)
			fd.MessageType = append(fd.MessageType, d)
		}
	}
	byName["TypeProto.Tensor"].Name = proto.String("Tensor")
	byName["TypeProto"].NestedType = []*descriptorpb.DescriptorProto{byName["TypeProto.Tensor"]}
	byName["TensorShapeProto.Dimension"].Name = proto.String("Dimension")
	byName["TensorShapeProto"].NestedType = []*descriptorpb.DescriptorProto{byName["TensorShapeProto.Dimension"]}
	file, err := protodesc.NewFile(fd, nil)
	if err != nil {
		t.Fatal(err)
	}
	return file.Messages().ByName("ModelProto")
}

// hasUnknown reports whether m or a message inside it holds fields the
// schema does not know.
func hasUnknown(m protoreflect.Message) bool {
	found := len(m.GetUnknown()) > 0
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Message() == nil:
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				found = found || hasUnknown(v.List().Get(i).Message())
			}
		default:
			found = found || hasUnknown(v.Message())
		}
		return !found
	})
	return found
}

// What Encode writes, the official protobuf runtime reads against
// onnx.proto's schema with no field unknown, and writes back to the very
// same bytes: field numbers, wire types, packing and order are those of
// onnx.proto. The MNIST file, written by CNTK's protobuf, is canonical in
// the same way.
func TestOfficialRuntime(t *testing.T) {
	md := onnxSchema(t)
	full, err := Encode(fullModel())
	if err != nil {
		t.Fatal(err)
	}
	mnist, err := os.ReadFile(mnistPath)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := Decode(mnist)
	again, _ := Encode(m)
	for name, b := range map[string][]byte{"all fields": full, "mnist file": mnist, "mnist re-encoded": again} {
		msg := dynamicpb.NewMessage(md)
		if err := proto.Unmarshal(b, msg); err != nil {
			t.Errorf("%s: the official runtime cannot read it: %v", name, err)
			continue
		}
		if hasUnknown(msg) {
			t.Errorf("%s: fields unknown to onnx.proto", name)
		}
		out, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
		if err != nil || !bytes.Equal(out, b) {
			t.Errorf("%s: the official runtime writes %d other bytes (%v)", name, len(out), err)
		}
	}
}
