// SPDX-License-Identifier: Apache-2.0

//go:build cgo

package main

import (
	"crypto"
	"io"

	"github.com/fieldgate/fieldgate/tuf/publish/pkcs11"
)

// pkcs11Opener returns what publish.OpenPKCS11 is set to: this build has
// cgo and opens keys in PKCS#11 tokens.
func pkcs11Opener() func(uri string) (crypto.Signer, io.Closer, error) { return pkcs11.Open }
