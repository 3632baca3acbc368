// Package imatrix reads and writes llama.cpp's importance matrices, the
// files llama-imatrix writes and llama-quantize --imatrix reads, and
// accumulates new ones from activations.
//
// An importance matrix holds, for each weight tensor (by its GGUF name,
// "blk.0.attn_q.weight"), the sum over the calibration tokens of x² for
// each input column of the matrix multiplication that tensor takes part
// in, and how many tokens (activation rows) were summed: Entry. The
// importance of column j is Sums[j]/Counts (File.Importance), the weight
// the quantizers of package gguf give to the error in that column
// (gguf.EncodeRowsImportance). Mixture-of-experts tensors have one slice of
// columns and one count per expert.
//
// Two file formats exist, both read by Read (which tells them apart as
// llama.cpp does: a file that opens as GGUF is GGUF, anything else is
// the legacy one) and written by WriteGGUF and WriteLegacy:
//
//   - GGUF (llama-imatrix's default since 2025): general.type "imatrix",
//     imatrix.datasets (array of strings), imatrix.chunk_count and
//     imatrix.chunk_size (uint32), and per entry, in name order, two F32
//     tensors: NAME.in_sum2 (the sums, columns × experts) and NAME.counts
//     (one count per expert).
//   - legacy .dat (llama-imatrix --output-format dat), little-endian:
//     int32 entry count; per entry int32 name length, the name, int32
//     ncall, int32 value count, the float32 values, which are
//     Sums/Counts·ncall (ncall is the number of chunks); then, optionally,
//     int32 chunk count and an int32-length-prefixed dataset name.
//
// File keeps what the file holds, as llama.cpp's common_imatrix_load
// does: for a legacy file Sums are the stored values and Counts is
// {ncall}. Importance turns either into what llama-quantize passes to the
// quantizers.
package imatrix
