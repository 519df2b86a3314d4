// SPDX-License-Identifier: Apache-2.0

package modbus

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	mb "github.com/simonvetter/modbus"

	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/devices/modbus/pdu"
)

// classify wraps err as transient or permanent for op. It is the one place
// that decides:
//   - timeouts, resets, refused connections, CRC errors: transient (line
//     noise, a device rebooting);
//   - exception responses "busy", "acknowledge" and the two gateway
//     exceptions: transient; every other exception: permanent (the device
//     understood and refused);
//   - a malformed frame: transient on RTU (noise produces garbage), permanent
//     on TCP (TCP checksums the bytes, so the device itself is wrong);
//   - the caller's deadline: transient; cancellation and anything unknown:
//     permanent.
func classify(op string, rtu bool, err error) error {
	if err == nil {
		return nil
	}
	var de *devices.Error
	if errors.As(err, &de) {
		return err
	}
	if isTransient(rtu, err) {
		return devices.Transient(op, err)
	}
	return devices.Permanent(op, err)
}

func isTransient(rtu bool, err error) bool {
	var ex *pdu.Exception
	if errors.As(err, &ex) {
		switch ex.Code {
		case pdu.ExDeviceBusy, pdu.ExAcknowledge, pdu.ExGatewayPath, pdu.ExGatewayTarget:
			return true
		}
		return false
	}
	var me mb.Error
	if errors.As(err, &me) {
		switch me {
		case mb.ErrRequestTimedOut, mb.ErrBadCRC, mb.ErrShortFrame, mb.ErrServerDeviceBusy,
			mb.ErrAcknowledge, mb.ErrGWPathUnavailable, mb.ErrGWTargetFailedToRespond:
			return true
		case mb.ErrProtocolError, mb.ErrBadUnitId, mb.ErrBadTransactionId, mb.ErrUnknownProtocolId:
			return rtu
		}
		return false
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return true
	case errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, pdu.ErrCRC):
		return true
	case errors.Is(err, pdu.ErrMalformed):
		return rtu
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return true
	case errors.As(err, &ne) && ne.Timeout():
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	return false
}

// refused reports whether err is the device's answer (an exception
// response) rather than a missing one; "acknowledge" means the device
// accepted a long command and is not a refusal.
func refused(err error) bool {
	var ex *pdu.Exception
	if errors.As(err, &ex) {
		return ex.Code != pdu.ExAcknowledge
	}
	var me mb.Error
	if errors.As(err, &me) {
		switch me {
		case mb.ErrIllegalFunction, mb.ErrIllegalDataAddress, mb.ErrIllegalDataValue, mb.ErrServerDeviceFailure,
			mb.ErrServerDeviceBusy, mb.ErrMemoryParityError, mb.ErrGWPathUnavailable, mb.ErrGWTargetFailedToRespond,
			mb.ErrConfigurationError:
			return true
		}
		return false
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// lostAnswer reports whether a simonvetter/modbus error means the answer
// was lost or garbled on the way (worth sending the request again), not
// that the device refused it.
func lostAnswer(rtu bool, err error) bool {
	var me mb.Error
	if errors.As(err, &me) {
		switch me {
		case mb.ErrRequestTimedOut, mb.ErrBadCRC, mb.ErrShortFrame:
			return true
		case mb.ErrProtocolError, mb.ErrBadUnitId, mb.ErrBadTransactionId:
			return rtu
		}
		return false
	}
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}
