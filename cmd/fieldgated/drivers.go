// SPDX-License-Identifier: Apache-2.0

package main

import (
	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/devices/modbus"
	"github.com/fieldgate/fieldgate/devices/smp"
	"github.com/fieldgate/fieldgate/devices/ssh"
	"github.com/fieldgate/fieldgate/devices/tftp"
	"github.com/fieldgate/fieldgate/devices/xmodem"
)

// drivers lists the device drivers linked into fieldgated, by the protocol
// name a device's configuration uses.
func drivers() devices.Registry {
	return devices.NewRegistry(
		xmodem.Driver(),       // "xmodem": XMODEM-1K console bootloader (serial)
		xmodem.YmodemDriver(), // "ymodem"
		modbus.Driver(),       // "modbus-tcp": file records 0x14/0x15, identity 0x2B
		modbus.RTUDriver(),    // "modbus-rtu"
		tftp.Driver(),         // "tftp": push to the device's TFTP server
		tftp.PullDriver(),     // "tftp-pull": the device pulls from the gateway
		smp.UDPDriver(),       // "smp-udp": MCUmgr/MCUboot image management
		smp.SerialDriver(),    // "smp-serial"
		ssh.Driver(),          // "ssh": SFTP upload and install command
	)
}
