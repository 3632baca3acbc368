// Package preflight checks, before gorgonia.org/cu's init can exit the
// process, that CUDA can start, and otherwise hands the command over to
// the CPU build of quantkit or says clearly why the GPU cannot be used.
//
// Go initialises packages in import-path order among those whose imports
// are ready, and this package imports only the standard library (which cu
// imports too), so its init runs before cu's. The Makefile's cuda-check
// target guards that: it runs the cuda binary where CUDA cannot start and
// expects this package's message, not cu's.
//
// Everything here is behind the cuda build tag; the default build does not
// contain it.
package preflight
