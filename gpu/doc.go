// Package gpu is the CUDA backend of quantkit: a backend.Backend, registered
// as "gpu", that runs the kernels of package cuda (embedded fatbins: SASS
// for sm_80, sm_86, sm_89 and sm_90, and PTX the driver compiles for other
// GPUs) through gorgonia.org/cu.
//
// Everything but this comment is built with the cuda build tag only:
// gorgonia.org/cu links libcuda and exits the process from its init when
// CUDA cannot start, so the default build leaves it out and this package
// is empty there. (One test, constants_test.go, runs in the default build:
// it checks that constants_gen.go and cuda/launch.cuh are what the table of
// launch constants in cuda/launch generates.)
//
// # Threads
//
// Open starts one goroutine per device that locks its OS thread, makes the
// device's primary context current, loads the kernels and creates a
// stream. Every CUDA call runs on that goroutine; the methods of Backend
// send it closures and wait for them.
//
// # Memory
//
// A Buffer is a device pointer, a type, a length and an element offset
// into its allocation: Slice makes views without copying. Alloc zeroes
// the memory with a cuMemsetD8 queued on the stream; Buffers are not
// backend.HostBuffers (the host cannot reach them). Upload and Download
// return once the copy is done; from a MiB up they move Go slices through
// two page-locked staging buffers in turns, the host copying one chunk
// while the DMA engine moves the other. AllocPinned gives page-locked host
// slices, which copies read and write directly, and which UploadAsync and
// DownloadAsync copy on streams of their own while kernels run
// (transfer.go). Scratch buffers (padded GEMM operands,
// epilogue and quantization parameters, reduction results) live as long
// as the Backend and grow as needed; parameter vectors are uploaded only
// when they change.
//
// # GEMM alignment
//
// The INT8 tensor-core GEMM reads rows of A and B in 16-byte pieces, so it
// needs K a multiple of 16 and both operands 16-byte aligned. GemmS8 pads
// other operands into scratch buffers (pad_rows_s8, zero-filled to K
// rounded up to 16; the zeros add nothing to the sums) and copies
// misaligned views; the kernel's dynamic shared memory limit is raised at
// Open when it needs more than 48 KiB.
package gpu
