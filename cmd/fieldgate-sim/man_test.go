// SPDX-License-Identifier: Apache-2.0

package main

import (
	"flag"
	"io"
	"testing"

	"github.com/fieldgate/fieldgate/internal/manpage"
)

var update = flag.Bool("update", false, "rewrite the generated man page")

const manPath = "../../systemd/deb/man/fieldgate-sim.1"

// manPage is fieldgate-sim(1): every command of the cobra tree, with the
// prose around it.
func manPage() manpage.Page {
	return manpage.Cobra(newRoot(io.Discard, io.Discard), "1", "User Commands",
		manpage.Text(`
`+"`fieldgate-sim`"+` simulates field devices that speak the real protocols over real
transports (serial bootloaders on pseudo-terminals, Modbus, TFTP, SMP and
SFTP over loopback) with A/B slots, version readback, persistent firmware
state and fault injection. It is the staging environment of the update
process and the peer of the project's tests.

`+"`run`"+` starts the devices of a configuration file; `+"`mkimage`"+` writes simulated
firmware images; `+"`line`"+` joins two pseudo-terminals through a paced line
emulator; `+"`counters`"+` reads what the devices counted.`),
		manpage.Section{Title: "EXIT STATUS", Blocks: []manpage.Block{manpage.Para(
			"0 on success or when interrupted; 1 on any error, with the reason on standard error.")}},
		manpage.Section{Title: "EXAMPLES", Blocks: []manpage.Block{manpage.Code(
			"fieldgate-sim mkimage --hw acme-io16-rev3 --version 2.4.1 --size 65536 -o fw.bin\n" +
				"fieldgate-sim run --config sim.yaml")}},
		manpage.Section{Title: "SEE ALSO", Blocks: []manpage.Block{manpage.Para(
			"fieldgated(8), fieldgated.yaml(5), fieldgate-repo(1)")}},
	)
}

// TestManPage keeps systemd/deb/man/fieldgate-sim.1 generated from the
// commands: go test ./cmd/fieldgate-sim -run TestManPage -update rewrites it.
func TestManPage(t *testing.T) {
	manpage.Golden(t, manPath, manPage().Roff(), *update, "go test ./cmd/fieldgate-sim -run TestManPage -update")
}

// TestInteropManPage renders the page with groff as man(1) does, every
// warning on.
func TestInteropManPage(t *testing.T) {
	manpage.Lint(t, "fieldgate-sim.1", manPage().Roff())
}
