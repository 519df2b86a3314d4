// SPDX-License-Identifier: Apache-2.0

package fieldgate_test

// This test keeps the architecture easy to see: dependencies point one way,
// cmd → daemon → {tuf, devices, board, systemd}, each third-party
// library that touches the outside world has exactly one home, and the
// drivers below devices are siblings that never import one another.

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/fieldgate/fieldgate"

// leaves are the trees below the daemon; none imports the daemon, cmd, or
// another leaf.
var leaves = []string{"tuf", "devices", "board", "systemd"}

// owners maps a third-party import prefix to the only package tree allowed
// to import it.
var owners = map[string]string{
	"github.com/theupdateframework/go-tuf": "tuf",
	"github.com/eclipse/paho.mqtt.golang":  "daemon/mqtt",
	"github.com/mochi-mqtt/server":         "daemon/mqtt",
	"periph.io/x/":                         "board",
	"github.com/spf13/viper":               "daemon/config",
	"go.etcd.io/bbolt":                     "daemon/store",
	"go.bug.st/serial":                     "devices",
	"github.com/simonvetter/modbus":        "devices",
	"github.com/pkg/sftp":                  "devices",
	"github.com/fxamacker/cbor":            "devices",
	"github.com/VictoriaMetrics/metrics":   "daemon/metrics",
	"github.com/miekg/pkcs11":              "tuf/publish/pkcs11",
	"github.com/CycloneDX/cyclonedx-go":    "cmd/fieldgatectl",   // never in fieldgated
	"github.com/gocsaf/csaf":               "cmd/fieldgate-repo", // schema validation at publish time only
}

func tree(pkg string) string { // "github.com/fieldgate/fieldgate/devices/xmodem" -> "devices/xmodem"
	return strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
}

func under(rel, dir string) bool { return rel == dir || strings.HasPrefix(rel, dir+"/") }

// violation returns why pkg may not import imp, or "". test says the import
// is made by pkg's tests only.
func violation(pkg, imp string, test bool) string {
	from := tree(pkg)
	if strings.HasPrefix(imp, module+"/") || imp == module {
		to := tree(imp)
		switch {
		case under(to, "cmd"):
			return "nothing imports a command"
		case from == "internal/fleet" && test:
			return "" // the fleet harness, tests only, drives the whole system
		case under(from, "internal") && !under(to, "internal"):
			return "internal is plumbing (atomic files) and imports no other tree"
		case under(to, "internal"):
			return "" // shared plumbing, below every tree
		case under(from, "daemon") || under(from, "cmd"):
			return ""
		}
		for _, l := range leaves {
			if under(from, l) {
				if under(to, "daemon") {
					return "leaves never import the daemon"
				}
				if !under(to, l) {
					return "leaves never import another leaf"
				}
			}
		}
		if under(from, "devices") {
			return devicesViolation(from, to, test)
		}
		return ""
	}
	if test {
		return "" // tests may inspect a library's data directly
	}
	for prefix, owner := range owners {
		if strings.HasPrefix(imp, prefix) && !under(from, owner) {
			return imp + " belongs to " + owner + " only"
		}
	}
	return ""
}

// Inside devices, the contract and the shared parts are few and named; every
// other package below devices is a driver, one protocol family per folder
// (devices/modbus/pdu belongs to the modbus driver).
const (
	contract  = "devices"            // the device contract, imported by all
	shared    = "devices/internal"   // small code drivers share (CRCs)
	testkit   = "devices/devicetest" // conformance suite and fake peers, for tests
	serialkit = "devices/serialtest" // pty and in-memory serial lines, for tests
	sim       = "devices/sim"        // the simulated devices behind fieldgate-sim
)

// simDrivers are the drivers whose protocol code devices/sim reuses to play
// the device's side: the simulated consoles speak XMODEM/YMODEM through
// devices/xmodem, and the SMP, TFTP and Modbus simulators use their
// drivers' codecs and register map. Adding one here is a decision, not a
// side effect.
var simDrivers = []string{"devices/xmodem", "devices/smp", "devices/tftp", "devices/modbus"}

// driver returns the driver tree a package under devices belongs to
// ("devices/modbus" for devices/modbus/pdu), or "" for the contract, the
// shared parts, the test kits and the simulator.
func driver(rel string) string {
	if !under(rel, contract) || rel == contract || under(rel, shared) ||
		under(rel, testkit) || under(rel, serialkit) || under(rel, sim) {
		return ""
	}
	first, _, _ := strings.Cut(strings.TrimPrefix(rel, contract+"/"), "/")
	return contract + "/" + first
}

// devicesViolation returns why from may not import to, both below devices,
// or "". A driver imports the contract, the shared parts and its own
// subpackages; its tests may also use the test kits and the simulator as the
// peer. A driver never imports another driver: what two drivers share goes
// to devices/internal.
func devicesViolation(from, to string, test bool) string {
	kit := under(to, testkit) || under(to, serialkit)
	switch {
	case from == contract:
		if !under(to, shared) && to != contract {
			return "the device contract imports no driver, test kit or simulator"
		}
	case under(from, shared):
		if !under(to, shared) && to != contract {
			return "devices/internal imports only the contract and devices/internal"
		}
	case under(from, testkit) || under(from, serialkit):
		if driver(to) != "" || under(to, sim) {
			return "a test kit imports no driver and no simulator"
		}
	case under(from, sim):
		if d := driver(to); d != "" && !slices.Contains(simDrivers, d) {
			return "devices/sim reuses only the protocol code of " + strings.Join(simDrivers, ", ")
		}
	default:
		d := driver(from)
		switch {
		case to == contract || under(to, shared) || under(to, d):
		case kit || under(to, sim):
			if !test {
				return "a driver uses the test kits and the simulator in its tests only"
			}
		default:
			return "a driver never imports another driver (share code through devices/internal)"
		}
	}
	return ""
}

func TestImportDirection(t *testing.T) {
	// Each package prints two lines: its own imports, then its tests' ("test").
	out, err := exec.Command("go", "list", "-f",
		`{{.ImportPath}} {{join .Imports " "}}{{"\n"}}{{.ImportPath}} test {{join .TestImports " "}} {{join .XTestImports " "}}`,
		"./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg, imps, test := f[0], f[1:], len(f) > 1 && f[1] == "test"
		if test {
			imps = imps[1:]
		}
		for _, imp := range imps {
			n++
			if imp == pkg { // an external test package importing the package it tests
				continue
			}
			if why := violation(pkg, imp, test); why != "" {
				in := ""
				if test {
					in = " in its tests"
				}
				t.Errorf("%s imports %s%s: %s", tree(pkg), imp, in, why)
			}
		}
	}
	if n == 0 {
		t.Fatal("go list reported no imports: the check checked nothing")
	}
}

// TestViolationRules checks the checker itself, so the test above cannot
// pass by accident.
func TestViolationRules(t *testing.T) {
	m := module + "/"
	type edge struct {
		from, to string
		test     bool // the import is made by from's tests only
	}
	bad := []edge{
		{m + "tuf", m + "daemon", false},
		{m + "devices/xmodem", m + "daemon/store", false},
		{m + "devices/sim", m + "tuf", false},
		{m + "board", m + "devices", false},
		{m + "daemon", m + "cmd/fieldgated", false},
		{m + "daemon", "github.com/theupdateframework/go-tuf/v2/metadata", false},
		{m + "daemon/api", "github.com/eclipse/paho.mqtt.golang", false},
		{m + "devices/xmodem", "periph.io/x/conn/v3/gpio", false},
		{m + "cmd/fieldgated", "go.etcd.io/bbolt", false},
		{m + "daemon", "github.com/VictoriaMetrics/metrics", false},
		{m + "tuf/publish", "github.com/miekg/pkcs11", false},
		{m + "cmd/fieldgate-repo", "github.com/miekg/pkcs11", false},
		{m + "tuf", m + "devices", true},
		// Drivers are siblings: none imports another, not even in tests.
		{m + "devices/smp", m + "devices/xmodem", false},
		{m + "devices/smp", m + "devices/xmodem", true},
		{m + "devices/tftp", m + "devices/modbus", false},
		{m + "devices/sim", m + "devices/ssh", false}, // not among the simulators' drivers
		{m + "devices/ssh", m + "devices/modbus/pdu", false},
		{m + "devices/modbus/pdu", m + "devices/smp", false},
		{m + "devices/newproto", m + "devices/tftp", false},
		// Test kits and the simulator are for tests.
		{m + "devices/xmodem", m + "devices/serialtest", false},
		{m + "devices/tftp", m + "devices/devicetest", false},
		{m + "devices/smp", m + "devices/sim", false},
		// The contract and the shared parts import no driver.
		{m + "devices", m + "devices/xmodem", false},
		{m + "devices", m + "devices/devicetest", true},
		{m + "devices/internal/crc16", m + "devices/smp", false},
		{m + "devices/internal/crc16", m + "devices/serialtest", true},
		{m + "devices/devicetest", m + "devices/tftp", false},
		{m + "devices/serialtest", m + "devices/sim", true},
		{m + "internal/atomicfile", m + "tuf", false},
		{m + "internal/fleet", m + "tuf", false},
	}
	for _, b := range bad {
		if violation(b.from, b.to, b.test) == "" {
			t.Errorf("violation(%s, %s, test %v) = \"\", want a violation", tree(b.from), b.to, b.test)
		}
	}
	good := []edge{
		{m + "cmd/fieldgated", m + "daemon", false},
		{m + "daemon", m + "tuf", false},
		{m + "daemon", m + "devices", false},
		{m + "daemon", m + "devices/xmodem", false},
		{m + "tuf/publish", m + "tuf", false},
		{m + "tuf/publish/pkcs11", "github.com/miekg/pkcs11", false},
		{m + "cmd/fieldgate-repo", m + "tuf/publish/pkcs11", false},
		{m + "tuf", "github.com/theupdateframework/go-tuf/v2/metadata", false},
		{m + "devices/xmodem", "go.bug.st/serial", false},
		{m + "devices/xmodem", m + "devices", false},
		{m + "devices/smp", m + "devices/internal/crc16", false},
		{m + "devices/xmodem", m + "devices/internal/crc16", false},
		{m + "devices/modbus", m + "devices/modbus/pdu", false},
		{m + "devices/modbus/pdu", m + "devices/internal/crc16", false},
		{m + "devices/xmodem", m + "devices/serialtest", true},
		{m + "devices/tftp", m + "devices/devicetest", true},
		{m + "devices/smp", m + "devices/sim", true}, // the simulator as the test peer
		{m + "devices/devicetest", m + "devices", false},
		{m + "devices/serialtest", m + "devices/devicetest", true},
		{m + "devices/internal/crc16", m + "devices", false},
		{m + "devices/sim", m + "devices", false},
		{m + "devices/sim", m + "devices/xmodem", false},
		{m + "devices/sim", m + "devices/smp", false},
		{m + "devices/sim", m + "devices/tftp", false},
		{m + "devices/sim", m + "devices/modbus", false},
		{m + "devices/sim", m + "devices/modbus/pdu", false},
		{m + "devices/sim", m + "devices/serialtest", false},
		{m + "devices/sim", m + "devices/devicetest", true},
		{m + "tuf", m + "internal/atomicfile", false},
		{m + "devices/sim", m + "internal/atomicfile", false},
		{m + "daemon", m + "internal/atomicfile", false},
		{m + "internal/fleet", m + "tuf/tuftest", true},
	}
	for _, g := range good {
		if why := violation(g.from, g.to, g.test); why != "" {
			t.Errorf("violation(%s, %s, test %v) = %q, want none", tree(g.from), g.to, g.test, why)
		}
	}
}

// cgoPackages are the only packages, of this module and the libraries it
// uses, that may have cgo files: fieldgate-repo's PKCS#11 signer, which
// loads C modules, and its library. Everything else builds with
// CGO_ENABLED=0, and fieldgated and fieldgatectl never link either.
var cgoPackages = []string{module + "/tuf/publish/pkcs11", "github.com/miekg/pkcs11"}

func TestCgoOnlyForPKCS11(t *testing.T) {
	list := func(pkgs ...string) [][]string {
		t.Helper()
		cmd := exec.Command("go", append([]string{"list", "-deps", "-test", "-f",
			`{{.ImportPath}}{{"\t"}}{{.Standard}}{{"\t"}}{{join .CgoFiles " "}}`}, pkgs...)...)
		cmd.Env = append(cmd.Environ(), "CGO_ENABLED=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %v\n%s", err, out)
		}
		var rows [][]string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			rows = append(rows, strings.Split(line, "\t"))
		}
		return rows
	}
	found := 0
	for _, f := range list("./...") {
		if len(f) != 3 || f[1] == "true" || f[2] == "" {
			continue
		}
		pkg, _, _ := strings.Cut(f[0], " ") // "p [p.test]" for a test variant
		if !slices.Contains(cgoPackages, pkg) {
			t.Errorf("%s has cgo files (%s): only %s may", pkg, f[2], strings.Join(cgoPackages, ", "))
			continue
		}
		found++
	}
	if found == 0 {
		t.Errorf("no package has cgo files: the check checked nothing (want %s)", strings.Join(cgoPackages, ", "))
	}
	for _, f := range list("./cmd/fieldgated", "./cmd/fieldgatectl") {
		pkg, _, _ := strings.Cut(f[0], " ")
		if slices.Contains(cgoPackages, pkg) {
			t.Errorf("fieldgated or fieldgatectl links %s: the gateway's binaries stay free of cgo", pkg)
		}
	}
}
