// SPDX-License-Identifier: Apache-2.0

//go:build !cgo

package main

import (
	"crypto"
	"io"
)

// pkcs11Opener returns nil: this build has no cgo, and publish.OpenKey
// answers a pkcs11: key with publish.ErrNoPKCS11.
func pkcs11Opener() func(uri string) (crypto.Signer, io.Closer, error) { return nil }
