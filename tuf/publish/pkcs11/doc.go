// SPDX-License-Identifier: Apache-2.0

// Package pkcs11 signs with keys held in a PKCS#11 token (a hardware
// security module, a smart card, SoftHSM): fieldgate-repo's --key
// pkcs11:… for any role.
//
// A key is named by an RFC 7512 URI (ParseURI):
//
//	pkcs11:token=fieldgate;object=targets-1?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/fieldgate/pin
//
// The module comes from module-path, else $FIELDGATE_PKCS11_MODULE; the PIN
// from pin-value, else the first line of the pin-source file, else
// $FIELDGATE_PKCS11_PIN (pin-value puts the PIN into the command line, where
// other users of the host can read it: prefer the file or the environment).
//
// Open returns a crypto.Signer whose private key never leaves the token;
// Generate makes a new key pair in the token, its private half sensitive and
// not extractable. Keys are ECDSA P-256 (TUF's ecdsa-sha2-nistp256;
// signatures are returned ASN.1 DER, as go-tuf verifies them) or Ed25519
// (CKM_EDDSA, PKCS#11 3.0, which SoftHSM 2.6 supports). Every signature is
// verified with the public key before it is returned, so that a faulty
// token cannot hand out a bad one.
//
// PKCS#11 modules are C libraries: this package needs cgo. Built without
// it, Compiled is false and Open and Generate return ErrNotCompiled, so that
// a pure-Go fieldgate-repo says what it lacks. The package is linked into
// fieldgate-repo only; the gateway's binaries stay free of cgo.
//
// A Signer is safe for concurrent use (its calls to the token are
// serialised); Close it when done. A module is loaded and initialised once
// per process and finalised when its last Signer is closed.
package pkcs11

import "errors"

// ErrNotCompiled is returned by Open and Generate in a build without cgo.
var ErrNotCompiled = errors.New("PKCS#11 is not compiled in: this fieldgate-repo was built without cgo (build it with CGO_ENABLED=1: make fieldgate-repo-pkcs11)")

// Key types Generate makes; the names are those of fieldgate-repo's --key-type.
const (
	KeyECDSAP256 = "ecdsa-p256"
	KeyEd25519   = "ed25519"
)
