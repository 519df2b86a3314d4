// SPDX-License-Identifier: Apache-2.0

package crc16

import "testing"

func TestXMODEM(t *testing.T) {
	tests := []struct {
		in   string
		want uint16
	}{
		// Check values as Python's binascii.crc_hqx(b, 0) computes them.
		{"", 0},
		{"123456789", 0x31c3},
		{"A", 0x58e5},
		{"\x00", 0},
		{"\xff\xff", 0x1d0f},
	}
	for _, tt := range tests {
		if got := XMODEM([]byte(tt.in)); got != tt.want {
			t.Errorf("XMODEM(%q) = %#04x, want %#04x", tt.in, got, tt.want)
		}
	}
}

// TestXMODEMResidue checks the property the receivers rely on: the CRC of
// a block followed by its own CRC (big-endian) is zero.
func TestXMODEMResidue(t *testing.T) {
	b := make([]byte, 1024)
	for i := range b {
		b[i] = byte(i * 7)
	}
	c := XMODEM(b)
	if got := XMODEM(append(b, byte(c>>8), byte(c))); got != 0 {
		t.Errorf("XMODEM(block | crc) = %#04x, want 0", got)
	}
}
