// SPDX-License-Identifier: Apache-2.0

//go:build !cgo

package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/tuf/publish"
)

// TestPKCS11NotCompiled: a fieldgate-repo built without cgo says so in
// --version and --help, and a pkcs11: key gets an error that says why.
func TestPKCS11NotCompiled(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"--help"}} {
		if out := runCmd(t, args...); !strings.Contains(out, "PKCS#11 is not compiled in: this fieldgate-repo was built without cgo") {
			t.Errorf("fieldgate-repo %s does not say PKCS#11 is missing:\n%s", args[0], out)
		}
	}
	if err := runCmdErr("hsm", "keygen", "--key", "pkcs11:token=t;object=k"); err == nil || !strings.Contains(err.Error(), "not compiled in") {
		t.Errorf("hsm keygen = %v, want an error saying PKCS#11 is not compiled in", err)
	}
	newRootCmd(nil, nil)
	if _, _, err := publish.OpenKey("pkcs11:token=t;object=k", publish.KeyAccess{}); !errors.Is(err, publish.ErrNoPKCS11) {
		t.Errorf("OpenKey(pkcs11:…) = %v, want ErrNoPKCS11", err)
	}
}
