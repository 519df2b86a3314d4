package main

import (
	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/devices/xmodem"
)

// drivers lists the device drivers linked into fieldgated.
func drivers() devices.Registry {
	return devices.NewRegistry(
		xmodem.Driver(),
		xmodem.YmodemDriver(),
	)
}
