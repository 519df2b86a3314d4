// SPDX-License-Identifier: Apache-2.0

//go:build !cgo

package pkcs11

import (
	"errors"
	"testing"
)

// TestNotCompiled: without cgo a valid URI gets ErrNotCompiled, which says
// why, and a bad one still gets the parser's error.
func TestNotCompiled(t *testing.T) {
	if Compiled {
		t.Fatal("Compiled is true in a build without cgo")
	}
	if _, _, err := Open("pkcs11:token=t;object=k"); !errors.Is(err, ErrNotCompiled) {
		t.Errorf("Open = %v, want ErrNotCompiled", err)
	}
	if _, _, err := Generate("pkcs11:token=t;object=k", KeyECDSAP256); !errors.Is(err, ErrNotCompiled) {
		t.Errorf("Generate = %v, want ErrNotCompiled", err)
	}
	if _, _, err := Open("pkcs11:colour=blue"); err == nil || errors.Is(err, ErrNotCompiled) {
		t.Errorf("Open of a bad URI = %v, want the parser's error", err)
	}
}
