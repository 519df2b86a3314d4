// SPDX-License-Identifier: Apache-2.0

package xmodem

import "github.com/fieldgate/fieldgate/devices/internal/crc16"

// CRC16 returns the CRC-16/XMODEM of b (poly 0x1021, init 0, no
// reflection, no final xor), the checksum of XMODEM-CRC, XMODEM-1K and
// YMODEM blocks. The check value of "123456789" is 0x31C3.
func CRC16(b []byte) uint16 { return crc16.XMODEM(b) }

func checksum(b []byte) byte {
	var s byte
	for _, x := range b {
		s += x
	}
	return s
}
