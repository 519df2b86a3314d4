// SPDX-License-Identifier: Apache-2.0

package main

import (
	"flag"
	"io"
	"testing"

	"github.com/fieldgate/fieldgate/internal/manpage"
)

var update = flag.Bool("update", false, "rewrite the generated man page")

const manPath = "../../systemd/deb/man/fieldgatectl.1"

// manPage is fieldgatectl(1): every command of the cobra tree, with the
// prose around it.
func manPage(t *testing.T) manpage.Page {
	t.Setenv("FIELDGATE_GATEWAY_SOCKET", "") // the flag's default comes from it
	return manpage.Cobra(newRoot(io.Discard), "1", "User Commands",
		manpage.Text(`
`+"`fieldgatectl`"+` talks to fieldgated(8) over its local control socket: it shows the
gateway's health, the devices and the jobs, approves, cancels and defers jobs,
stops and resumes updates, presses the buttons of a virtual board, verifies
and exports the audit log, and imports offline bundles.

Its `+"`remote`"+` commands send signed commands to gateways through the central
MQTT broker and watch what they publish; its `+"`tuf`"+` command diagnoses TUF
repositories with the gateway's own verification.

`+"`fieldgatectl help`"+` lists every command; `+"`fieldgatectl COMMAND --help`"+`
describes one.`),
		manpage.Section{Title: "ENVIRONMENT", Blocks: []manpage.Block{manpage.Defs{
			{Term: "`FIELDGATE_GATEWAY_SOCKET`", Text: "The daemon's control socket when `--socket` is not given."},
		}}},
		manpage.Section{Title: "FILES", Blocks: []manpage.Block{manpage.Defs{
			{Term: "/run/fieldgate/fieldgated.sock", Text: "The control socket of fieldgated(8); its group (fieldgate) may use it."},
		}}},
		manpage.Section{Title: "EXIT STATUS", Blocks: []manpage.Block{manpage.Para(
			"0 when the command succeeded (for `remote` commands: when the gateway's final result is \"succeeded\"); 1 otherwise, with the reason on standard error.")}},
		manpage.Section{Title: "EXAMPLES", Blocks: []manpage.Block{manpage.Code(
			"fieldgatectl status\nfieldgatectl jobs\nfieldgatectl approve\nfieldgatectl audit verify")}},
		manpage.Section{Title: "SEE ALSO", Blocks: []manpage.Block{manpage.Para(
			"fieldgated(8), fieldgated.yaml(5), fieldgate-repo(1), fieldgate-sim(1)")}},
	)
}

// TestManPage keeps systemd/deb/man/fieldgatectl.1 generated from the
// commands: go test ./cmd/fieldgatectl -run TestManPage -update rewrites it.
func TestManPage(t *testing.T) {
	manpage.Golden(t, manPath, manPage(t).Roff(), *update, "go test ./cmd/fieldgatectl -run TestManPage -update")
}

// TestInteropManPage renders the page with groff as man(1) does, every
// warning on.
func TestInteropManPage(t *testing.T) {
	manpage.Lint(t, "fieldgatectl.1", manPage(t).Roff())
}
