// SPDX-License-Identifier: Apache-2.0

// Package pkcs11test gives tests a real PKCS#11 token: SoftHSM2, Debian's
// software HSM, with its token directory in the test's temporary directory.
package pkcs11test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// PINs of the tokens SoftHSM initialises.
const (
	PIN   = "fieldgate-user-pin"
	SOPIN = "fieldgate-so-pin"
)

// modulePaths are where Debian's softhsm2 package puts the module.
var modulePaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
}

// SoftHSM points SOFTHSM2_CONF (for the rest of the test, so the test must
// not be parallel) at a configuration whose token directory is new and
// empty, initialises one token per label with PIN and SOPIN, and returns
// the module's path. Without softhsm2 the test is skipped, or fails under
// CI=true.
//
// SoftHSM reads SOFTHSM2_CONF when the module is initialised: close every
// key opened from an earlier SoftHSM call before calling it again.
func SoftHSM(t testing.TB, labels ...string) (module string) {
	t.Helper()
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		missing(t, "softhsm2-util not found: install the Debian package softhsm2")
	}
	for _, p := range modulePaths {
		if _, err := os.Stat(p); err == nil {
			module = p
			break
		}
	}
	if module == "" {
		missing(t, fmt.Sprintf("libsofthsm2.so not found in %v: install the Debian package softhsm2", modulePaths))
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	text := "directories.tokendir = " + tokens + "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	for _, label := range labels {
		out, err := exec.Command(util, "--init-token", "--free", "--label", label, "--so-pin", SOPIN, "--pin", PIN).CombinedOutput()
		if err != nil {
			t.Fatalf("softhsm2-util --init-token --label %s: %v\n%s", label, err, out)
		}
	}
	return module
}

func missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
