// Package inputerr marks errors caused by what the user gave (a missing or
// malformed file, a refused output path, a flag combination that makes no
// sense), so that a command can tell them from failures of the machine
// without parsing messages: another device, or running again, would not
// fix them.
package inputerr

import "errors"

// ErrInput is what errors.Is finds in every error Mark returns.
var ErrInput = errors.New("bad input")

// marked keeps the message of the error it wraps.
type marked struct{ err error }

func (e marked) Error() string        { return e.err.Error() }
func (e marked) Unwrap() error        { return e.err }
func (e marked) Is(target error) bool { return target == ErrInput }

// Mark returns err marked as the user's input's fault, with its message
// unchanged; nil stays nil.
func Mark(err error) error {
	if err == nil {
		return nil
	}
	return marked{err}
}

// Is reports whether err, or an error it wraps, was marked.
func Is(err error) bool { return errors.Is(err, ErrInput) }
