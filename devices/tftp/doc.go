// SPDX-License-Identifier: Apache-2.0

// Package tftp is the TFTP protocol (RFC 1350 with options RFC 2347
// blksize/tsize/timeout, RFC 2348, RFC 2349 and windowsize RFC 7440) and
// two device drivers built on it:
//
//   - "tftp" (Driver): the device runs a TFTP server; the gateway pushes the
//     image by WRQ, reads it back by RRQ to verify it and for backups, and
//     reads the device's identity from a "version" file (see ParseIdentity)
//     or from an IdentitySource given to NewDevice (Modbus, console).
//   - "tftp-pull" (PullDriver): the device fetches the image. While
//     Transfer runs, the gateway serves that one file, read-only, on the
//     configured field-side address and only to the device's IP; the device
//     is told to fetch over a small control channel (control.go) or a
//     Trigger given to NewPullDevice.
//
// The protocol is written here rather than taken from pack.ag/tftp (which
// is in go.mod) because that library rejects a whole request when one
// option does not parse (atftp sends "tsize enable"), takes no
// context.Context (no cancellation of a transfer in flight), retransmits at
// a fixed interval without backoff, returns untyped errors, and has not
// been maintained since 2018. This implementation is about 800 lines:
//
//   - Client.Put (WRQ) and Client.Get (RRQ); Server with read and write
//     handlers, a new socket per transfer (TIDs), optional client address
//     filter, size limit, and at most 8 concurrent transfers.
//   - Block numbers roll over from 65535 to 0, as every common peer does.
//   - The sender never resends on a duplicate ACK (no Sorcerer's
//     Apprentice); only a timeout resends, then the whole unacknowledged
//     window (go-back-N, RFC 7440). The receiver acknowledges every
//     windowsize blocks and the last, and re-acknowledges once per window
//     of out-of-order or duplicate blocks so the sender goes back.
//   - Retransmission waits 1, 2, 4, 8× the base interval; after Retries
//     timeouts the transfer fails with ErrTimeout.
//   - A server ignores options it does not know or cannot parse; a client
//     refuses an OACK with an option it did not request or a value above
//     the requested one (ERROR 8, ErrProtocol).
//   - Malformed or oversized datagrams and unexpected opcodes abort with an
//     ERROR packet to the peer and ErrProtocol; an ERROR from the peer is a
//     *RemoteError. Cancelling the context unblocks a transfer at once and
//     sends the peer an ERROR.
//   - A server's write handler commits the file before the final ACK goes
//     out, so the client's success means the device stored the image.
//
// Only octet mode is served. Client and Server are safe for concurrent
// use; a driver Device is not.
package tftp
