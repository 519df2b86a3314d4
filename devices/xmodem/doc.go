// SPDX-License-Identifier: Apache-2.0

// Package xmodem implements XMODEM-1K (with CRC-16, falling back to 128-byte
// checksum blocks when the receiver asks for them) and single-file YMODEM,
// both as sender and receiver, and a devices.Driver for MCU bootloaders that
// receive images this way behind a small text console ("xmodem" and
// "ymodem" protocols).
//
// The protocol functions (Send, SendYMODEM, Receive, ReceiveYMODEM) run over
// any Port: a pty, an *os.File, or a serial port adapted with its read
// timeout. Every read has a deadline derived from the context and Options,
// so a silent, noisy or vanished peer ends in an error wrapping ErrTimeout,
// ErrRetries, ErrCanceled or ErrProtocol — never in a hang. None of them is
// safe for concurrent use on the same Port: a line carries one
// conversation at a time.
//
// XMODEM has no length field: Receive returns the data padded with 0x1A to
// the block size, and the caller truncates it by the image's own length.
// YMODEM's block 0 carries the exact size, and ReceiveYMODEM writes exactly
// that many bytes. lrzsz NAKs the first EOT of a YMODEM batch, and the ACK
// of the final all-NUL block 0 can be lost on a line that is being closed:
// SendYMODEM treats that as success and logs a warning.
package xmodem
