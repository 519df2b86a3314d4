// SPDX-License-Identifier: Apache-2.0

package publish

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/youmark/pkcs8"
)

// Key files are encrypted PKCS #8 (RFC 5958 EncryptedPrivateKeyInfo, PBES2
// with scrypt and AES-256-CBC), PEM type "ENCRYPTED PRIVATE KEY": the format
// openssl, step, cosign and most HSM import tools read, so a key can be
// inspected or moved into a token without fieldgate-repo
// (openssl pkey -in KEY.pem). Plaintext PKCS #8 ("PRIVATE KEY") is written
// and read only with KeyAccess.InsecurePlaintextKeys.
const (
	pemEncrypted = "ENCRYPTED PRIVATE KEY"
	pemPlaintext = "PRIVATE KEY"
	pemPublic    = "PUBLIC KEY"
)

// keyEncryption: scrypt with N=2^14, r=8, p=1 (16 MiB; what openssl pkcs8
// -topk8 -scrypt writes: OpenSSL refuses scrypt parameters above its 32 MiB
// memory limit, so N=2^15 files would not open there) and AES-256-CBC,
// which OpenSSL reads in PKCS #8 (it does not take AES-GCM there).
var keyEncryption = &pkcs8.Opts{
	Cipher:  pkcs8.AES256CBC,
	KDFOpts: pkcs8.ScryptOpts{SaltSize: 16, CostParameter: 1 << 14, BlockSize: 8, ParallelizationParameter: 1},
}

// Passphrase returns the passphrase protecting a key file. key describes
// the key for a prompt ("root key 3f2a… in DIR/keys/root"); confirm is true
// when a new key is being encrypted (a terminal prompt asks twice). The
// caller does not keep the slice.
type Passphrase func(key string, confirm bool) ([]byte, error)

// KeyAccess says how key files are read and written.
type KeyAccess struct {
	// Passphrase supplies passphrases for encrypted key files; nil means none
	// is available (only plaintext keys, with InsecurePlaintextKeys, work).
	Passphrase Passphrase
	// InsecurePlaintextKeys writes new key files unencrypted and allows
	// reading unencrypted ones (test fixtures; fieldgate-repo
	// --insecure-plaintext-keys). Encrypted files are still read with the
	// passphrase.
	InsecurePlaintextKeys bool
}

// ErrPlaintextKey means a key file is not encrypted and
// KeyAccess.InsecurePlaintextKeys is not set.
var ErrPlaintextKey = errors.New("private key file is not encrypted")

// ErrNoPassphrase means a key file is encrypted (or must be) and
// KeyAccess.Passphrase is nil.
var ErrNoPassphrase = errors.New("no passphrase available")

// OpenPKCS11 opens the private key named by an RFC 7512 pkcs11: URI (token,
// object or id, PIN). It is nil in a fieldgate-repo built without cgo;
// cmd/fieldgate-repo sets it from a cgo-tagged file. The Closer ends the
// token session. It is set once, before any key is opened.
var OpenPKCS11 func(uri string) (crypto.Signer, io.Closer, error)

// ErrNoPKCS11 is returned for a pkcs11: key when OpenPKCS11 is nil.
var ErrNoPKCS11 = errors.New("PKCS#11 is not compiled into this fieldgate-repo: build it with cgo (make fieldgate-repo-pkcs11)")

// IsPKCS11 reports whether ref is a pkcs11: URI rather than a file path.
func IsPKCS11(ref string) bool {
	return len(ref) >= 7 && strings.EqualFold(ref[:7], "pkcs11:") // RFC 3986: schemes are case-insensitive
}

// pinValueRE matches an RFC 7512 pin-value attribute and its value.
var pinValueRE = regexp.MustCompile(`(?i)(pin-value=)[^&;]*`)

// RedactKeyRef returns a pkcs11: URI fit for messages and logs: a PIN given
// in it (pin-value=) is replaced by "…". pin-source names a file and stays.
func RedactKeyRef(ref string) string { return pinValueRE.ReplaceAllString(ref, "${1}…") }

// OpenKey resolves a key reference, the one way every signing key is
// obtained: a path to a private key file (encrypted PKCS #8, or plaintext
// only with ka.InsecurePlaintextKeys) or a pkcs11: URI (RFC 7512, through
// OpenPKCS11). The caller closes the Closer when done signing (for a file it
// does nothing).
func OpenKey(ref string, ka KeyAccess) (crypto.Signer, io.Closer, error) {
	if IsPKCS11(ref) {
		if OpenPKCS11 == nil {
			return nil, nil, fmt.Errorf("key %s: %w", RedactKeyRef(ref), ErrNoPKCS11)
		}
		s, c, err := OpenPKCS11(ref)
		if err != nil {
			return nil, nil, fmt.Errorf("key %s: %w", RedactKeyRef(ref), err)
		}
		if c == nil {
			c = nopCloser{}
		}
		return s, c, nil
	}
	s, err := readKeyFile(ref, "key "+ref, ka)
	if err != nil {
		return nil, nil, err
	}
	return s, nopCloser{}, nil
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// Key is a TUF public key as roles list it. Commands handle keys through
// this name, so that only the tuf tree imports go-tuf (arch_test.go).
type Key = metadata.Key

// PublicKey returns the TUF public key of ref: a PEM public key file
// ("PUBLIC KEY", as keygen writes beside a private key), a private key file
// or a pkcs11: URI.
func PublicKey(ref string, ka KeyAccess) (*metadata.Key, error) {
	if !IsPKCS11(ref) {
		data, err := os.ReadFile(ref)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		if block, _ := pem.Decode(data); block != nil && block.Type == pemPublic {
			pub, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("public key %s: %w", ref, err)
			}
			k, err := metadata.KeyFromPublicKey(pub)
			if err != nil {
				return nil, fmt.Errorf("public key %s: %w", ref, err)
			}
			return k, nil
		}
	}
	s, c, err := OpenKey(ref, ka)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	k, err := metadata.KeyFromPublicKey(s.Public())
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", RedactKeyRef(ref), err)
	}
	return k, nil
}

// KeyID returns the TUF key id of a public key.
func KeyID(pub crypto.PublicKey) (string, error) {
	k, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		return "", err
	}
	return k.ID()
}

// GenerateKeyFile creates a new private key of keyType (KeyEd25519 or
// KeyECDSAP256) at path (encrypted unless ka.InsecurePlaintextKeys; it must
// not exist) and its public key at path with ".pub" in place of ".pem" (or
// appended), for a key holder who hands only the public key to the
// repository (init --root-pubkey, delegate). It returns the TUF public key.
func GenerateKeyFile(path, keyType string, ka KeyAccess) (*metadata.Key, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("keygen %s: file exists", path)
	}
	priv, err := generateKey(keyType)
	if err != nil {
		return nil, fmt.Errorf("keygen %s: %w", path, err)
	}
	data, err := encodeKey(priv, "new key "+path, ka)
	if err != nil {
		return nil, fmt.Errorf("keygen %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("keygen %s: %w", path, err)
	}
	if err := writeFileAtomic(path, data, 0o600); err != nil {
		return nil, fmt.Errorf("keygen %s: %w", path, err)
	}
	if err := WritePublicKeyFile(PublicKeyPath(path), priv.Public()); err != nil {
		return nil, fmt.Errorf("keygen %s: %w", path, err)
	}
	k, err := metadata.KeyFromPublicKey(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("keygen %s: %w", path, err)
	}
	return k, nil
}

// PublicKeyPath returns where GenerateKeyFile puts the public key of the
// private key file path: ".pem" replaced by ".pub", or ".pub" appended.
func PublicKeyPath(path string) string {
	if p, ok := strings.CutSuffix(path, ".pem"); ok {
		return p + ".pub"
	}
	return path + ".pub"
}

// WritePublicKeyFile writes pub as a PEM "PUBLIC KEY" (PKIX) file, mode 0644.
func WritePublicKeyFile(path string, pub crypto.PublicKey) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: pemPublic, Bytes: der}), 0o644)
}

// encodeKey returns priv as a PEM file: encrypted with a passphrase asked
// for desc (twice on a terminal), or plaintext with InsecurePlaintextKeys.
func encodeKey(priv crypto.Signer, desc string, ka KeyAccess) ([]byte, error) {
	if ka.InsecurePlaintextKeys {
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: pemPlaintext, Bytes: der}), nil
	}
	if ka.Passphrase == nil {
		return nil, fmt.Errorf("encrypt %s: %w (give one, or allow plaintext keys explicitly)", desc, ErrNoPassphrase)
	}
	pass, err := ka.Passphrase(desc, true)
	if err != nil {
		return nil, fmt.Errorf("encrypt %s: %w", desc, err)
	}
	if len(pass) == 0 {
		return nil, fmt.Errorf("encrypt %s: empty passphrase", desc)
	}
	der, err := pkcs8.MarshalPrivateKey(priv, pass, keyEncryption)
	if err != nil {
		return nil, fmt.Errorf("encrypt %s: %w", desc, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemEncrypted, Bytes: der}), nil
}

// readKeyFile reads and, if encrypted, decrypts the key file at path.
func readKeyFile(path, desc string, ka KeyAccess) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", desc, err)
	}
	return decodeKey(data, path, desc, ka)
}

func decodeKey(data []byte, path, desc string, ka KeyAccess) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", desc)
	}
	var parsed any
	switch block.Type {
	case pemPlaintext:
		if !ka.InsecurePlaintextKeys {
			return nil, fmt.Errorf("%s: %w: encrypt the repository's keys with fieldgate-repo keys encrypt DIR "+
				"(or, for this key file alone, openssl pkcs8 -topk8 -scrypt -in %s), or pass --insecure-plaintext-keys",
				desc, ErrPlaintextKey, path)
		}
		parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", desc, err)
		}
		return asSigner(parsed, desc)
	case pemEncrypted:
		if ka.Passphrase == nil {
			return nil, fmt.Errorf("%s: encrypted: %w", desc, ErrNoPassphrase)
		}
		pass, err := ka.Passphrase(desc, false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", desc, err)
		}
		if len(pass) == 0 {
			return nil, fmt.Errorf("%s: empty passphrase", desc)
		}
		parsed, _, err = pkcs8.ParsePrivateKey(block.Bytes, pass)
		if err != nil {
			// A wrong passphrase shows as bad padding or a garbled key.
			return nil, fmt.Errorf("%s: wrong passphrase or damaged file: %w", desc, err)
		}
		return asSigner(parsed, desc)
	}
	return nil, fmt.Errorf("%s: PEM type %q: want %q", desc, block.Type, pemEncrypted)
}

func asSigner(parsed any, desc string) (crypto.Signer, error) {
	s, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: %T is not a signing key", desc, parsed)
	}
	return s, nil
}

// isPlaintextKey reports whether data holds an unencrypted private key: a
// PEM block of any "… PRIVATE KEY" type but ENCRYPTED (PKCS #8, PKCS #1,
// SEC 1, OpenSSH), or a bare 32-byte ed25519 seed or 64-byte ed25519 key.
func isPlaintextKey(data []byte) bool {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if strings.HasSuffix(block.Type, "PRIVATE KEY") && !strings.Contains(block.Type, "ENCRYPTED") {
			return true
		}
	}
	return len(data) == ed25519.SeedSize || len(data) == ed25519.PrivateKeySize
}

// tufSigner adapts any crypto.Signer (a key file's key, a PKCS #11 token's
// key) to the sigstore signer go-tuf's Metadata.Sign takes, signing with
// the scheme go-tuf verifies for the key's type: ed25519, ecdsa-sha2-nistp256
// (SHA-256; SHA-384 for P-384), rsassa-pss-sha256.
type tufSigner struct{ s crypto.Signer }

func (t tufSigner) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) {
	return t.s.Public(), nil
}

func (t tufSigner) SignMessage(msg io.Reader, _ ...signature.SignOption) ([]byte, error) {
	data, err := io.ReadAll(msg)
	if err != nil {
		return nil, err
	}
	switch pub := t.s.Public().(type) {
	case ed25519.PublicKey:
		return t.s.Sign(rand.Reader, data, crypto.Hash(0))
	case *ecdsa.PublicKey:
		if pub.Curve == elliptic.P384() {
			sum := sha512.Sum384(data)
			return t.s.Sign(rand.Reader, sum[:], crypto.SHA384)
		}
		sum := sha256.Sum256(data)
		return t.s.Sign(rand.Reader, sum[:], crypto.SHA256)
	case *rsa.PublicKey:
		sum := sha256.Sum256(data)
		return t.s.Sign(rand.Reader, sum[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
	default:
		return nil, fmt.Errorf("unsupported public key type %T", pub)
	}
}

var _ signature.Signer = tufSigner{}
