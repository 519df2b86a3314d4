// SPDX-License-Identifier: Apache-2.0

package smp

import (
	"errors"
	"fmt"
)

// Errors a caller may branch on.
var (
	// ErrTimeout: the device did not answer within the deadline, after
	// retransmissions.
	ErrTimeout = errors.New("no response from device")
	// ErrBadImage: the file is not a valid MCUboot image (header, TLVs, or
	// a SHA-256 TLV that does not match the image body).
	ErrBadImage = errors.New("invalid MCUboot image")
	// ErrHashMismatch: the device reports a different image hash than the
	// one fieldgate sent or expects to run.
	ErrHashMismatch = errors.New("device reports a different image hash")
	// ErrNotBooted: after a test reset the device runs something other than
	// the new image (MCUboot refused it or reverted).
	ErrNotBooted = errors.New("new image did not boot")
	// ErrUnexpectedResponse: a response with the right sequence number but
	// the wrong operation, group or command.
	ErrUnexpectedResponse = errors.New("unexpected SMP response")
)

// MCUmgr result codes (MGMT_ERR_*) that fieldgate tells apart.
const (
	RCOK          = 0
	RCUnknown     = 1
	RCNoMem       = 2
	RCInval       = 3
	RCTimeout     = 4
	RCNoEnt       = 5
	RCBadState    = 6
	RCMsgSize     = 7
	RCNotSup      = 8
	RCCorrupt     = 9
	RCBusy        = 10
	RCAccessDenid = 11
)

var rcNames = map[int]string{
	RCOK: "EOK", RCUnknown: "EUNKNOWN", RCNoMem: "ENOMEM", RCInval: "EINVAL",
	RCTimeout: "ETIMEOUT", RCNoEnt: "ENOENT", RCBadState: "EBADSTATE",
	RCMsgSize: "EMSGSIZE", RCNotSup: "ENOTSUP", RCCorrupt: "ECORRUPT",
	RCBusy: "EBUSY", RCAccessDenid: "EACCESSDENIED",
}

// DeviceError is a non-zero result the device returned: a v1 "rc" or a v2
// "err" map (group-specific codes).
type DeviceError struct {
	Group  uint16
	ID     uint8
	RC     int
	V2     bool
	Reason string
}

func (e *DeviceError) Error() string {
	name := rcNames[e.RC]
	if e.V2 {
		name = "group-specific"
	}
	s := fmt.Sprintf("device returned rc=%d (%s) for group %d command %d", e.RC, name, e.Group, e.ID)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Temporary reports whether the device may accept the request later.
func (e *DeviceError) Temporary() bool {
	return !e.V2 && (e.RC == RCBusy || e.RC == RCTimeout || e.RC == RCNoMem)
}
