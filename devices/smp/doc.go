// SPDX-License-Identifier: Apache-2.0

// Package smp drives Zephyr/MCUboot devices through the Simple Management
// Protocol (SMP, the wire protocol of MCUmgr) over UDP (one packet per
// datagram, port 1337) and over a serial console (the base64/CRC-16 line
// framing that shares the console with log output).
//
// The package has three layers:
//
//   - the wire format: the 8-byte SMP header (Header), the CBOR bodies of the
//     commands fieldgate uses (params, echo, OS info, image list, upload,
//     image state, erase, reset) and the serial frame codec (EncodeFrame,
//     FrameDecoder);
//   - the MCUboot image format: ParseImage reads the image header and TLV
//     area and checks the SHA-256 TLV that the device will report in its
//     image list; BuildImage makes a valid unsigned image for tests, the
//     simulator and demo firmware;
//   - Client, which sends requests over a Transport (UDP or serial), matches
//     responses by sequence number, retransmits on timeouts and maps device
//     error codes (v1 "rc" and v2 "err") to *DeviceError; and the
//     devices.Device implementation returned by UDPDriver and SerialDriver
//     ("smp-udp" and "smp-serial").
//
// An update runs the MCUboot test-then-confirm flow: Transfer uploads to
// slot 1 (resuming where the device's upload offset says), Activate marks
// the image for a test boot, resets, waits for the device and checks that
// the new image runs unconfirmed; Commit confirms it; Revert resets without
// confirming so MCUboot swaps the previous image back, and checks that it
// did.
//
// Every step after Transfer knows the image by its MCUboot hash (the
// SHA-256 TLV the image list reports), never by its slot: after the
// test-boot swap, slot 1 holds the previous image. A Device opened after a
// daemon restart learns the hash from Resume (devices.Resumer), which reads
// it from the job's image file.
//
// SMP has no standard hardware identifier. Identify reports Config.HardwareID
// by default; with the option hardware_id=os-info it asks the device's OS
// information command for the board name (format "b", Zephyr 3.3 and later)
// and reports that instead, so a mis-wired device is caught.
package smp
