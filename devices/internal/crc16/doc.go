// SPDX-License-Identifier: Apache-2.0

// Package crc16 holds the CRC-16 that more than one driver needs, so that
// drivers share code through devices/internal instead of importing each
// other. The standard library has CRC-32 and CRC-64 only.
package crc16
