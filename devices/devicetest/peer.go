// SPDX-License-Identifier: Apache-2.0

package devicetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// NeedPeer returns the path of the peer program prog, looked up in PATH and
// then in /usr/sbin (where Debian installs daemons such as sshd and
// in.tftpd). If it is missing the test is skipped with a message naming
// debianPackage, the package to install; see Missing for CI=true.
func NeedPeer(t testing.TB, prog, debianPackage string) string {
	t.Helper()
	if p, err := exec.LookPath(prog); err == nil {
		return p
	}
	if p := filepath.Join("/usr/sbin", prog); isExecutable(p) {
		return p
	}
	Missing(t, fmt.Sprintf("%s not found: install the Debian package %s", prog, debianPackage))
	return ""
}

// Missing ends a test whose peer is absent or unusable (a Python module
// that does not import, a daemon that needs root): it skips the test with
// msg, which should say what to install or do, or fails it when the
// environment has CI=true, so that a CI machine without its peers cannot
// pass by skipping.
func Missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}
