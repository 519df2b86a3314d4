// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"errors"
	"fmt"
)

// ErrUnsupported is wrapped by methods a device cannot perform.
var ErrUnsupported = errors.New("not supported by this device")

// Error is a driver error classified for the daemon: a transient error
// (timeout, line noise, device busy) may succeed on retry; a permanent one
// (refused image, protocol violation, wrong device) will not.
type Error struct {
	Op        string // the step, e.g. "transfer", "identify"
	Transient bool
	Err       error
}

func (e *Error) Error() string {
	kind := "permanent"
	if e.Transient {
		kind = "transient"
	}
	return fmt.Sprintf("%s (%s): %v", e.Op, kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Transient wraps err as a retryable error of op.
func Transient(op string, err error) error { return &Error{Op: op, Transient: true, Err: err} }

// Permanent wraps err as a non-retryable error of op.
func Permanent(op string, err error) error { return &Error{Op: op, Err: err} }

// IsTransient reports whether err is worth a retry. Errors that were never
// classified count as permanent: retrying the unknown is how state loops start.
func IsTransient(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Transient
}

// Untouched wraps an error of Transfer to say that the device's installed
// image was not changed: the failure came before the first byte was
// written (connection refused, handshake or authentication failed), or the
// bytes went to a staging file the device does not boot from. The daemon
// then ends the step as not started, with no rollback. The classification
// of err (transient or permanent) is kept.
func Untouched(err error) error {
	if err == nil {
		return nil
	}
	return &untouched{err}
}

// IsUntouched reports whether err says the device was not written.
func IsUntouched(err error) bool {
	var u *untouched
	return errors.As(err, &u)
}

type untouched struct{ err error }

func (u *untouched) Error() string { return u.err.Error() }
func (u *untouched) Unwrap() error { return u.err }
