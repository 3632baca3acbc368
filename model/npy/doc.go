// Package npy reads and writes NumPy .npy files, the format of numpy.save,
// in which calibration activations and reference outputs are usually
// exchanged.
//
// # Reading
//
// Decode parses a whole file held in memory, ReadFile reads one from disk
// and ReadHeader reads only its header (checking it as ReadFile does,
// data size included). The paths given to ReadFile and ReadHeader must be
// regular files: a named pipe or a device is refused at once, not read
// (see model/format). Versions 1.0, 2.0 and 3.0 are read. The header, a
// Python dict literal, is parsed by a small parser of its own (strings in
// either quote style, True/False, integers with Python 2's L suffix,
// tuples, lists, nested dicts, trailing commas), never evaluated. It keeps
// only what a header needs (the three keys' values, at most 2·MaxDims
// items), so that it allocates at most about twice the header's size
// whatever the header holds. The parser is defensive and every limit is
// explicit:
//
//   - the header is at most MaxHeaderLen bytes and must lie inside the file;
//   - the dict holds exactly the keys 'descr', 'fortran_order' and 'shape',
//     each once, as numpy requires;
//   - the shape is a tuple of at most MaxDims non-negative integers whose
//     element count and byte size do not overflow;
//   - the data that follows is exactly product(shape)·itemsize bytes long.
//
// Supported dtypes are float16, float32 and float64 ('f2', 'f4', 'f8') in
// either byte order, and also the integer ('i1'…'i8', 'u1'…'u8') and bool
// ('b1') dtypes, which label and mask files use. The byte-order character
// may be '<', '>', '=' (native) or, for one-byte dtypes, '|'. Object
// arrays ('|O', pickled Python objects), complex, string, datetime and
// structured dtypes are rejected with a message that names them, as is
// Fortran order.
//
// Array.Float32 converts any supported dtype to float32, rounding to
// nearest even where float32 cannot hold the value (float64, and integers
// beyond 2^24).
//
// # Writing
//
// Write and WriteArray write version 1.0 files with the header numpy itself
// writes: keys sorted, the same spacing, 21 spare
// digits for the growth axis, and padding to a multiple of 64 bytes ending
// in '\n'. WriteFile is the float32 shortcut and FromFloat32 builds float16,
// float32 or float64 arrays from float32 data. Files are written to a
// temporary file in the same directory and renamed into place, so a reader
// never sees a half-written file.
package npy
