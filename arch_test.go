package fieldgate_test

// This test keeps the architecture easy to see: dependencies point one way,
// cmd → daemon → {tuf, devices, board, systemd}, and each third-party
// library that touches the outside world has exactly one home.

import (
	"os/exec"
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
}

func tree(pkg string) string { // "github.com/fieldgate/fieldgate/devices/xmodem" -> "devices/xmodem"
	return strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
}

func under(rel, dir string) bool { return rel == dir || strings.HasPrefix(rel, dir+"/") }

// violation returns why pkg may not import imp, or "".
func violation(pkg, imp string) string {
	from := tree(pkg)
	if strings.HasPrefix(imp, module+"/") || imp == module {
		to := tree(imp)
		switch {
		case under(to, "cmd"):
			return "nothing imports a command"
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
		return ""
	}
	for prefix, owner := range owners {
		if strings.HasPrefix(imp, prefix) && !under(from, owner) {
			return imp + " belongs to " + owner + " only"
		}
	}
	return ""
}

func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		for _, imp := range f[1:] {
			n++
			if why := violation(f[0], imp); why != "" {
				t.Errorf("%s imports %s: %s", tree(f[0]), imp, why)
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
	bad := [][2]string{
		{m + "tuf", m + "daemon"},
		{m + "devices/xmodem", m + "daemon/store"},
		{m + "devices/sim", m + "tuf"},
		{m + "board", m + "devices"},
		{m + "daemon", m + "cmd/fieldgated"},
		{m + "daemon", "github.com/theupdateframework/go-tuf/v2/metadata"},
		{m + "daemon/api", "github.com/eclipse/paho.mqtt.golang"},
		{m + "devices/xmodem", "periph.io/x/conn/v3/gpio"},
		{m + "cmd/fieldgated", "go.etcd.io/bbolt"},
	}
	for _, b := range bad {
		if violation(b[0], b[1]) == "" {
			t.Errorf("violation(%s, %s) = \"\", want a violation", tree(b[0]), b[1])
		}
	}
	good := [][2]string{
		{m + "cmd/fieldgated", m + "daemon"},
		{m + "daemon", m + "tuf"},
		{m + "daemon", m + "devices"},
		{m + "devices/sim", m + "devices/xmodem"},
		{m + "tuf/publish", m + "tuf"},
		{m + "tuf", "github.com/theupdateframework/go-tuf/v2/metadata"},
		{m + "devices/xmodem", "go.bug.st/serial"},
	}
	for _, g := range good {
		if why := violation(g[0], g[1]); why != "" {
			t.Errorf("violation(%s, %s) = %q, want none", tree(g[0]), g[1], why)
		}
	}
}
