//go:build !amd64 || noasm || gccgo || safe

package cpu

func detect() isa { return isa{} }
