// SPDX-License-Identifier: Apache-2.0

package pdu

// CRC16 is CRC-16/Modbus (reflected polynomial 0xA001, init 0xFFFF) over b.
// The check value of "123456789" is 0x4B37. On the wire it goes low byte
// first.
func CRC16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, c := range b {
		crc = crc>>8 ^ crcTable[byte(crc)^c]
	}
	return crc
}

var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i)
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ 0xA001
			} else {
				c >>= 1
			}
		}
		t[i] = c
	}
	return t
}()
