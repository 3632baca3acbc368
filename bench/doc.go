// Package bench measures quantkit's kernels against the strongest baseline
// available in the same run, and returns one Report type that the command
// line renders as a table or JSON.
//
// Timings are medians over repetitions after a warm-up, with enough
// repetitions to fill a minimum measuring time, so that short kernels are
// not dominated by timer resolution and long ones are not run needlessly
// often.
package bench
