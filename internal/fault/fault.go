// Package fault turns the fault of a read from a memory-mapped file whose
// file shrank (SIGBUS: someone truncated or rewrote it while it was being
// read) into an error, instead of a crash with a stack trace.
package fault

import (
	"errors"
	"fmt"
	"runtime/debug"
	"syscall"
)

// Error is a memory fault caught by Catch.
type Error struct {
	Addr uintptr // the faulting address
}

func (e *Error) Error() string {
	return fmt.Sprintf("memory fault at %#x reading a memory-mapped file (it changed or was truncated)", e.Addr)
}

// Catch calls f with the goroutine's faults turned into panics
// (debug.SetPanicOnFault) and returns a fault as an *Error; any other
// panic goes on. Only the calling goroutine is covered: goroutines that f
// starts need a Catch of their own.
func Catch(f func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			fe, ok := r.(interface{ Addr() uintptr })
			if !ok {
				panic(r)
			}
			err = &Error{Addr: fe.Addr()}
		}
	}()
	return f()
}

// Is reports whether err comes from reading memory that is no longer
// backed by its file: a fault Catch caught, or EFAULT from a system call
// (write(2) from such memory).
func Is(err error) bool {
	var fe *Error
	return errors.As(err, &fe) || errors.Is(err, syscall.EFAULT)
}
