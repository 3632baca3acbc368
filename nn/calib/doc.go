// Package calib quantizes an nn.Net after training: CollectActStats
// gathers the histograms and ranges of the tensors entering its Conv2D
// and Dense layers over calibration samples (statistics that merge, so
// calibration can be split), and PTQ turns them, with a calibrator of
// package quant, into the net's Quant (see the comment in calib.go).
package calib
