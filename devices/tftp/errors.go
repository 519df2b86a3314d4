// SPDX-License-Identifier: Apache-2.0

package tftp

import (
	"errors"
	"fmt"
)

// RemoteError is an ERROR packet: the peer refused or aborted the transfer.
// A handler of Server may return one to choose the code sent to the client.
type RemoteError struct {
	Code ErrorCode
	Msg  string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("tftp error %d (%s): %s", e.Code, e.Code, e.Msg)
}

func (c ErrorCode) String() string {
	switch c {
	case ErrCodeUndefined:
		return "undefined"
	case ErrCodeNotFound:
		return "file not found"
	case ErrCodeAccess:
		return "access violation"
	case ErrCodeDiskFull:
		return "disk full"
	case ErrCodeIllegalOp:
		return "illegal operation"
	case ErrCodeUnknownTID:
		return "unknown transfer id"
	case ErrCodeFileExists:
		return "file exists"
	case ErrCodeNoSuchUser:
		return "no such user"
	case ErrCodeBadOptions:
		return "option negotiation refused"
	}
	return "unknown code"
}

// ErrTimeout is wrapped when the peer stopped answering after every
// retransmission.
var ErrTimeout = errors.New("tftp peer not answering")

// ErrProtocol is wrapped when the peer broke the protocol: an unexpected
// opcode, an oversized block, an option in an OACK that was not requested or
// is out of range. The transfer is aborted with an ERROR packet.
var ErrProtocol = errors.New("tftp protocol violation")
