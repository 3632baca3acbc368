// Package format tells what kind of model file a path holds, by its first
// bytes (and by its name where they say nothing), and opens files for
// readers so that no reader blocks on a named pipe or reads a device.
//
// # Formats
//
// Formats is one table, a row per format: its name, the extensions it is
// usually given and a test of its first bytes. Detect reads at most
// HeadLen bytes of a file and returns the first row whose test passes,
// in the table's order:
//
//	GGUF         "GGUF"
//	NumPy .npy   "\x93NUMPY"
//	NumPy .npz   a zip archive ("PK\x03\x04") named .npz
//	PyTorch      a zip archive named .pt, .pth, .bin or .ckpt, or a pickle
//	             (0x80 and protocol 2 to 5) of any name
//	zip          any other zip archive
//	safetensors  an 8-byte little-endian header length that fits the file,
//	             then '{'
//	ONNX         a protobuf ModelProto: field 1 (ir_version) as a small
//	             varint, then another ModelProto field
//	JSON         '{' or '[' after optional white space (config.json,
//	             model.safetensors.index.json)
//
// Protobuf has no magic, so the ONNX test is a heuristic; where no test
// passes (a truncated or damaged file, say), Detect falls back on the
// extension and says so (ByContent false), so that a reader can still give
// its own, precise, error for a damaged file of its format.
//
// # Opening
//
// Open opens a file for reading only if it is a regular file: it opens
// with O_NONBLOCK, which does not wait for a writer on a named pipe, and
// checks the descriptor with fstat before anything is read, so there is no
// window in which the path could be swapped for a pipe. Named pipes,
// devices (/dev/zero would never end), sockets and directories are refused
// with an *os.PathError naming the path and what it is, whose Err wraps
// ErrNotRegular. The safetensors, GGUF and .npy readers open their input
// through Open.
package format
