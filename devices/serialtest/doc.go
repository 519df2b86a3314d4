// SPDX-License-Identifier: Apache-2.0

// Package serialtest is a serial-line test bench, in the spirit of
// net/http/httptest: pseudo-terminals in raw mode that a driver opens like a
// real serial port, and a Line that relays bytes between two ends at the
// pace of a real line (10 bits per byte per baud, 8N1), in small slices,
// injecting faults on request (drop or corrupt every Nth byte, a stall, a
// disconnect).
//
// Ptys move bytes at memory speed and ignore baud settings; a Line in
// between restores the timing that makes protocol tests honest. A slice is
// delivered when its last byte would have left the wire, within about
// 0.1 ms: a one-byte turnaround at 115200 baud (two byte times, 174 µs)
// takes about 0.35 ms here (BenchmarkTurnaround). Real hardware adds its
// own: a 16550 UART's receive FIFO timeout (4 character times) or a USB
// adapter's latency timer (1–16 ms on FTDI parts). Tools such
// as lrzsz must be given a pipe rather than a pty (they flush the tty after
// their last ACK), so an end of a Line can also be a child process's
// stdin/stdout (StartProcess).
//
// fieldgate-sim uses the same Line in front of its simulated serial devices.
package serialtest
