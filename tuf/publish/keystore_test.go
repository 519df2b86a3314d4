package publish_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/tuf/publish"
)

// fixedPassphrase returns a KeyAccess that answers every prompt with pass
// and counts the prompts.
func fixedPassphrase(pass string, asked *int) publish.KeyAccess {
	return publish.KeyAccess{Passphrase: func(string, bool) ([]byte, error) {
		if asked != nil {
			*asked++
		}
		return []byte(pass), nil
	}}
}

func TestKeyFileRoundTrip(t *testing.T) {
	for _, keyType := range []string{publish.KeyEd25519, publish.KeyECDSAP256} {
		t.Run(keyType, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "holder", "root.pem")
			pub, err := publish.GenerateKeyFile(path, keyType, fixedPassphrase("correct horse", nil))
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(data, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----")) {
				t.Fatalf("key file starts %q, want an ENCRYPTED PRIVATE KEY block", data[:40])
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
				t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
			}
			s, c, err := publish.OpenKey(path, fixedPassphrase("correct horse", nil))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			id, _ := publish.KeyID(s.Public())
			wantID, _ := pub.ID()
			if id != wantID {
				t.Errorf("OpenKey key id %s, want %s", id, wantID)
			}
			fromPub, err := publish.PublicKey(publish.PublicKeyPath(path), publish.KeyAccess{})
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := fromPub.ID(); got != wantID {
				t.Errorf("PublicKey(.pub) id %s, want %s", got, wantID)
			}
			switch s.(type) {
			case ed25519.PrivateKey, *ecdsa.PrivateKey:
			default:
				t.Errorf("OpenKey returned %T", s)
			}

			if _, _, err := publish.OpenKey(path, fixedPassphrase("wrong", nil)); err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
				t.Errorf("OpenKey with a wrong passphrase: %v, want a wrong passphrase error", err)
			}
			if _, _, err := publish.OpenKey(path, publish.KeyAccess{}); !errors.Is(err, publish.ErrNoPassphrase) {
				t.Errorf("OpenKey without a passphrase: %v, want ErrNoPassphrase", err)
			}
			if _, err := publish.GenerateKeyFile(path, keyType, fixedPassphrase("x", nil)); err == nil {
				t.Error("GenerateKeyFile over an existing key succeeded")
			}
		})
	}
}

func TestPlaintextKeyNeedsInsecureFlag(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.pem")
	if _, err := publish.GenerateKeyFile(path, publish.KeyEd25519, publish.KeyAccess{InsecurePlaintextKeys: true}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if !bytes.HasPrefix(data, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Fatalf("insecure key file starts %q, want a plaintext PRIVATE KEY block", data[:30])
	}
	_, _, err := publish.OpenKey(path, fixedPassphrase("p", nil))
	if !errors.Is(err, publish.ErrPlaintextKey) || !strings.Contains(err.Error(), "fieldgate-repo keys encrypt DIR") {
		t.Errorf("OpenKey(plaintext) = %v, want ErrPlaintextKey naming keys encrypt", err)
	}
	if _, _, err := publish.OpenKey(path, publish.KeyAccess{InsecurePlaintextKeys: true}); err != nil {
		t.Errorf("OpenKey(plaintext, insecure) = %v", err)
	}
	if _, err := publish.GenerateKeyFile(filepath.Join(t.TempDir(), "n.pem"), publish.KeyEd25519, publish.KeyAccess{}); !errors.Is(err, publish.ErrNoPassphrase) {
		t.Errorf("GenerateKeyFile without passphrase or insecure flag = %v, want ErrNoPassphrase", err)
	}
}

func TestOpenKeyPKCS11Hook(t *testing.T) {
	uri := "pkcs11:token=fieldgate;object=targets"
	if publish.OpenPKCS11 == nil {
		if _, _, err := publish.OpenKey(uri, publish.KeyAccess{}); !errors.Is(err, publish.ErrNoPKCS11) {
			t.Errorf("OpenKey(%s) without the hook = %v, want ErrNoPKCS11", uri, err)
		}
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	var gotURI string
	old := publish.OpenPKCS11
	publish.OpenPKCS11 = func(u string) (crypto.Signer, io.Closer, error) { gotURI = u; return priv, nil, nil }
	t.Cleanup(func() { publish.OpenPKCS11 = old })
	s, c, err := publish.OpenKey(uri, publish.KeyAccess{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
	if gotURI != uri || !priv.Public().(ed25519.PublicKey).Equal(s.Public()) {
		t.Errorf("OpenKey did not use the hook's key (uri %q)", gotURI)
	}
}

// TestInteropOpenSSLReadsEncryptedKey checks that the key files are the
// standard format: openssl decrypts them with the passphrase, refuses a
// wrong one, and a key encrypted by openssl opens here.
func TestInteropOpenSSLReadsEncryptedKey(t *testing.T) {
	openssl := needOpenSSL(t)
	dir := t.TempDir()
	for _, keyType := range []string{publish.KeyEd25519, publish.KeyECDSAP256} {
		path := filepath.Join(dir, keyType+".pem")
		pub, err := publish.GenerateKeyFile(path, keyType, fixedPassphrase("s3cret pass", nil))
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(openssl, "pkey", "-in", path, "-passin", "pass:s3cret pass", "-pubout").CombinedOutput()
		if err != nil {
			t.Fatalf("openssl pkey %s: %v\n%s", keyType, err, out)
		}
		want, _ := os.ReadFile(publish.PublicKeyPath(path))
		if !bytes.Equal(out, want) {
			t.Errorf("openssl's public key of %s:\n%s\nwant\n%s", keyType, out, want)
		}
		if out, err := exec.Command(openssl, "pkey", "-in", path, "-passin", "pass:wrong", "-noout").CombinedOutput(); err == nil {
			t.Errorf("openssl accepted a wrong passphrase for %s: %s", keyType, out)
		}
		// And the other way: openssl re-encrypts (PBKDF2), fieldgate reads it.
		re := filepath.Join(dir, keyType+"-openssl.pem")
		if out, err := exec.Command(openssl, "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", path, "-passin", "pass:s3cret pass",
			"-out", re, "-passout", "pass:other").CombinedOutput(); err != nil {
			t.Fatalf("openssl pkcs8 -topk8: %v\n%s", err, out)
		}
		s, c, err := publish.OpenKey(re, fixedPassphrase("other", nil))
		if err != nil {
			t.Fatalf("OpenKey(openssl's file): %v", err)
		}
		c.Close()
		if id, _ := publish.KeyID(s.Public()); id != mustID(t, pub) {
			t.Errorf("openssl's re-encrypted %s has key id %s, want %s", keyType, id, mustID(t, pub))
		}
	}
}

func needOpenSSL(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl not installed (Debian package openssl)")
		}
		t.Skip("openssl not installed (Debian package openssl)")
	}
	return p
}

type ider interface{ ID() (string, error) }

func mustID(t *testing.T, k ider) string {
	t.Helper()
	id, err := k.ID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}
