// SPDX-License-Identifier: Apache-2.0

//go:build !cgo

package pkcs11

import (
	"crypto"
	"io"
)

// Compiled reports whether this build can load PKCS#11 modules.
const Compiled = false

// Open returns ErrNotCompiled: this build has no cgo.
func Open(uri string) (crypto.Signer, io.Closer, error) {
	if _, err := ParseURI(uri); err != nil {
		return nil, nil, err
	}
	return nil, nil, ErrNotCompiled
}

// Generate returns ErrNotCompiled: this build has no cgo.
func Generate(uri, keyType string) (crypto.PublicKey, string, error) {
	if _, err := ParseURI(uri); err != nil {
		return nil, "", err
	}
	return nil, "", ErrNotCompiled
}
