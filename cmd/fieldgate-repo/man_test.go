// SPDX-License-Identifier: Apache-2.0

package main

import (
	"flag"
	"io"
	"testing"

	"github.com/fieldgate/fieldgate/internal/manpage"
)

var update = flag.Bool("update", false, "rewrite the generated man page")

const manPath = "../../systemd/deb/man/fieldgate-repo.1"

// manPage is fieldgate-repo(1): every command of the cobra tree, with the
// prose around it.
func manPage() manpage.Page {
	return manpage.Cobra(newRootCmd(io.Discard, io.Discard), "1", "User Commands",
		manpage.Text(`
`+"`fieldgate-repo`"+` is the publisher for fieldgate gateways, meant for an offline
signing machine: it creates a TUF repository with its keys and roles, stages
firmware targets with fieldgate metadata (hardware, version, security counter,
protocol, advisories), signs and publishes them with a new snapshot and
timestamp, re-signs the timestamp, rotates keys, delegates target paths to
other roles, exports offline bundles, and serves a repository over HTTP for
development.

The repository directory DIR holds the options (fieldgate-repo.json), the
private keys (keys/; root keys may live on separate offline media), the
staged, unsigned changes (staged/) and what clients read
(repository/metadata/ and repository/targets/). Publish repository/ on any
static web server. The timestamp expires after a day unless re-signed on a
schedule with `+"`fieldgate-repo timestamp`"+`, which needs only the timestamp key.`),
		manpage.Section{Title: "EXIT STATUS", Blocks: []manpage.Block{manpage.Para(
			"0 on success; 1 on any error, with the reason on standard error.")}},
		manpage.Section{Title: "EXAMPLES", Blocks: []manpage.Block{manpage.Code(
			"fieldgate-repo init repo\n" +
				"fieldgate-repo add repo fw.bin --name acme-io16/fw-2.4.1.bin \\\n" +
				"    --hardware acme-io16-rev3 --version 2.4.1 --security-counter 3\n" +
				"fieldgate-repo commit repo\n" +
				"fieldgate-repo export repo bundle --expires 30d")}},
		manpage.Section{Title: "SEE ALSO", Blocks: []manpage.Block{manpage.Para(
			"fieldgated(8), fieldgatectl(1), fieldgate-sim(1)")}},
	)
}

// TestManPage keeps systemd/deb/man/fieldgate-repo.1 generated from the
// commands: go test ./cmd/fieldgate-repo -run TestManPage -update rewrites it.
func TestManPage(t *testing.T) {
	manpage.Golden(t, manPath, manPage().Roff(), *update, "go test ./cmd/fieldgate-repo -run TestManPage -update")
}

// TestInteropManPage renders the page with groff as man(1) does, every
// warning on.
func TestInteropManPage(t *testing.T) {
	manpage.Lint(t, "fieldgate-repo.1", manPage().Roff())
}
