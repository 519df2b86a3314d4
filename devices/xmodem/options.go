// SPDX-License-Identifier: Apache-2.0

package xmodem

import (
	"log/slog"
	"time"
)

// Options tunes a transfer. The zero value is usable: every zero field
// takes the default documented on it.
type Options struct {
	// StartTimeout bounds the wait for the peer to start: the receiver's
	// first 'C' or NAK (sender), the sender's first block (receiver).
	// Default 60 s.
	StartTimeout time.Duration
	// Timeout bounds the wait for each answer once the transfer runs: an
	// ACK or NAK after a block, the next block. Default 10 s.
	Timeout time.Duration
	// CharTimeout bounds the silence inside a block before the receiver
	// gives up on it and NAKs. Default 1 s.
	CharTimeout time.Duration
	// Poll is how often a waiting receiver repeats its 'C'. Default 3 s.
	Poll time.Duration
	// Retries is how often one block (or EOT) is sent again, or how many
	// bad blocks in a row a receiver accepts, before giving up. Default 10.
	Retries int
	// Block128 makes the sender use 128-byte blocks only (plain XMODEM-CRC)
	// for receivers that cannot take 1024-byte ones.
	Block128 bool
	// Progress, if not nil, is called after each acknowledged block with
	// the bytes acknowledged so far and the total (-1 if unknown).
	Progress func(done, total int64)
	// Log receives protocol detail at DEBUG and warnings; nil discards.
	Log *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.StartTimeout <= 0 {
		o.StartTimeout = 60 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.CharTimeout <= 0 {
		o.CharTimeout = time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 3 * time.Second
	}
	if o.Retries <= 0 {
		o.Retries = 10
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// quiet is how long the line must stay silent after a 'C' for the sender to
// take it as the receiver's handshake rather than a letter of console text,
// and how long a receiver waits for a garbled block's tail to pass before
// its NAK.
const quiet = 50 * time.Millisecond
