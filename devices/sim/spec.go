// SPDX-License-Identifier: Apache-2.0

package sim

// Spec describes one simulated device, as read from fieldgate-sim's
// configuration file. Every kind of simulated device takes a Spec, keeps its
// persistent state (installed image, slots, flags) under StateDir so that it
// survives restarts, and serves its protocol on Address until its context ends.
type Spec struct {
	ID         string `yaml:"id"`
	Kind       string `yaml:"kind"`        // e.g. "xmodem-console", "modbus-tcp", "tftp-server", "smp-udp"
	HardwareID string `yaml:"hardware_id"` // reported by the device and checked against image headers
	Version    string `yaml:"version"`     // factory version installed on first start
	StateDir   string `yaml:"state_dir"`   // persistent state; created if missing
	// Address is where the device listens: a pty symlink path for serial
	// kinds (the simulator creates the pty and the link), host:port for
	// network kinds.
	Address string `yaml:"address"`
	// Baud paces serial kinds through the line emulator (10 bits per byte);
	// 0 means unpaced.
	Baud int `yaml:"baud"`
	// Faults injects failures: "boot-fail" (no image boots but the factory
	// image, the one of Version: the update is bad for this unit, and
	// re-installing what it ran before recovers it), "slow-flash", and
	// kind-specific ones documented by each kind.
	Faults []string `yaml:"faults"`
	// Options holds kind-specific settings.
	Options map[string]string `yaml:"options"`
}

// bootFails reports whether the "boot-fail" fault keeps an image of
// version from booting: every image but the factory one fails.
func (s Spec) bootFails(version string) bool {
	return s.HasFault("boot-fail") && version != s.Version
}

// HasFault reports whether f is among the spec's injected faults.
func (s Spec) HasFault(f string) bool {
	for _, x := range s.Faults {
		if x == f {
			return true
		}
	}
	return false
}
