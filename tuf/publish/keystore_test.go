// SPDX-License-Identifier: Apache-2.0

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
	"slices"
	"strings"
	"testing"
	"time"

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

// TestEncryptedRepositoryFlows runs the usual flows (init with offline
// root keys, add, commit, rotate, timestamp, export with its own expiry)
// with a passphrase, then searches the repository, the root keys directory
// and the bundle for plaintext private keys: there must be none. The same
// search finds the keys of a repository made with InsecurePlaintextKeys.
func TestEncryptedRepositoryFlows(t *testing.T) {
	base := t.TempDir()
	dir, rootKeys, bundle := filepath.Join(base, "repo"), filepath.Join(base, "offline-root"), filepath.Join(base, "bundle")
	asked := 0
	ka := fixedPassphrase("repository passphrase", &asked)
	opts := publish.Options{Keys: ka, RootKeysDir: rootKeys, Command: "init"}
	r, err := publish.Init(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if asked != 4 {
		t.Errorf("passphrase asked %d times for 4 new keys", asked)
	}
	if err := r.AddTargetBytes("fw.bin", []byte("fw"), meta); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	oldTargets := r.RootMetadata().Signed.Roles["targets"].KeyIDs[0]
	for _, role := range []string{"targets", "root"} {
		if err := r.Rotate(role); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := r.Timestamp(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ExportWith(bundle, publish.ExportOptions{Expires: 72 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, rootKeys, bundle} {
		found, err := publish.PlaintextKeys(d)
		if err != nil {
			t.Fatal(err)
		}
		if len(found) != 0 {
			t.Errorf("plaintext private keys after a normal run: %v", found)
		}
	}
	pems, _ := filepath.Glob(filepath.Join(dir, "keys", "*", "*.pem"))
	rootPems, _ := filepath.Glob(filepath.Join(rootKeys, "*.pem"))
	if len(pems) != 3 || len(rootPems) != 1 {
		t.Errorf("key files %v and root %v, want 3 and 1: the rotated-out keys are removed", pems, rootPems)
	}
	for _, p := range append(pems, rootPems...) {
		if data, _ := os.ReadFile(p); !bytes.Contains(data, []byte("ENCRYPTED PRIVATE KEY")) {
			t.Errorf("%s is not encrypted", p)
		}
		if _, err := os.Stat(publish.PublicKeyPath(p)); err != nil {
			t.Errorf("no public key beside %s: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "keys", "retired")); err == nil {
		t.Error("DIR/keys/retired exists without KeepRetired")
	}
	if _, err := os.Stat(filepath.Join(dir, "keys", "targets", oldTargets+".pem")); err == nil {
		t.Error("the rotated-out targets key is still there")
	}

	// Without the passphrase, or with a wrong one, nothing is signed.
	md := r.MetadataDir()
	before, _ := os.ReadFile(filepath.Join(md, "timestamp.json"))
	for _, tc := range []struct {
		ka   publish.KeyAccess
		want string
	}{
		{publish.KeyAccess{}, publish.ErrNoPassphrase.Error()},
		{publish.KeyAccess{InsecurePlaintextKeys: true}, publish.ErrNoPassphrase.Error()},
		{fixedPassphrase("wrong", nil), "wrong passphrase"},
	} {
		r, err := publish.OpenWith(dir, publish.Options{Keys: tc.ka})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Timestamp(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Timestamp() = %v, want an error saying %q", err, tc.want)
		}
	}
	if after, _ := os.ReadFile(filepath.Join(md, "timestamp.json")); !bytes.Equal(before, after) {
		t.Error("timestamp.json changed without the passphrase")
	}

	// KeepRetired keeps the replaced key, still encrypted.
	r, err = publish.OpenWith(dir, publish.Options{Keys: ka, KeepRetired: true})
	if err != nil {
		t.Fatal(err)
	}
	old := r.RootMetadata().Signed.Roles["snapshot"].KeyIDs[0]
	if err := r.Rotate("snapshot"); err != nil {
		t.Fatal(err)
	}
	kept := filepath.Join(dir, "keys", "retired", "snapshot-"+old+".pem")
	if data, err := os.ReadFile(kept); err != nil || !bytes.Contains(data, []byte("ENCRYPTED")) {
		t.Errorf("retired key %s: %v, want it kept encrypted", kept, err)
	}

	// The check can fail: a repository with plaintext keys is found out.
	plain := filepath.Join(base, "plain")
	if _, err := publish.Init(plain, publish.Options{Keys: publish.KeyAccess{InsecurePlaintextKeys: true}}); err != nil {
		t.Fatal(err)
	}
	if found, _ := publish.PlaintextKeys(plain); len(found) != 4 {
		t.Errorf("PlaintextKeys(insecure repository) = %v, want its 4 key files", found)
	}
	seed := filepath.Join(plain, "keys", "seed")
	os.WriteFile(seed, make([]byte, ed25519.SeedSize), 0o600)
	if found, _ := publish.PlaintextKeys(plain); !slices.Contains(found, seed) {
		t.Errorf("PlaintextKeys = %v, want the raw seed %s among them", found, seed)
	}
}

// TestEncryptKeysMigration: a repository made with plaintext keys is
// refused without --insecure-plaintext-keys, with the way out in the
// message, and EncryptKeys (fieldgate-repo keys encrypt DIR) fixes it.
func TestEncryptKeysMigration(t *testing.T) {
	base := t.TempDir()
	dir, rootKeys := filepath.Join(base, "repo"), filepath.Join(base, "root-keys")
	plain := publish.KeyAccess{InsecurePlaintextKeys: true}
	r, err := publish.Init(dir, publish.Options{Keys: plain, RootKeysDir: rootKeys})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Delegate("acme", publish.Delegation{Paths: []string{"acme/*"}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	// Simulate a repository from before public key files existed.
	pubs, _ := filepath.Glob(filepath.Join(dir, "keys", "*", "*.pub"))
	for _, p := range pubs {
		os.Remove(p)
	}
	ka := fixedPassphrase("migrated", nil)
	r, err = publish.OpenWith(dir, publish.Options{Keys: ka})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Timestamp(); !errors.Is(err, publish.ErrPlaintextKey) || !strings.Contains(err.Error(), "fieldgate-repo keys encrypt DIR") {
		t.Fatalf("Timestamp() with plaintext keys = %v, want ErrPlaintextKey naming keys encrypt", err)
	}
	done, err := publish.EncryptKeys(dir, ka)
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 5 {
		t.Errorf("EncryptKeys encrypted %v, want 5 keys (4 roles and acme)", done)
	}
	for _, d := range []string{dir, rootKeys} {
		if found, _ := publish.PlaintextKeys(d); len(found) != 0 {
			t.Errorf("plaintext keys after EncryptKeys: %v", found)
		}
	}
	if again, err := publish.EncryptKeys(dir, ka); err != nil || len(again) != 0 {
		t.Errorf("EncryptKeys again = %v, %v; want nothing to do", again, err)
	}
	r, err = publish.OpenWith(dir, publish.Options{Keys: ka})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AddTargetBytesTo("acme", "acme/fw.bin", []byte("fw"), meta); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatalf("Commit() after EncryptKeys: %v", err)
	}
	if err := r.Rotate("root"); err != nil {
		t.Fatalf("Rotate(root) after EncryptKeys: %v", err)
	}
}

// TestChangePassphrase gives the online timestamp key a passphrase of its
// own: with it alone the timestamp can be signed and nothing else.
func TestChangePassphrase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	main, online := fixedPassphrase("offline one", nil), fixedPassphrase("online one", nil)
	if _, err := publish.Init(dir, publish.Options{Keys: main}); err != nil {
		t.Fatal(err)
	}
	done, err := publish.ChangePassphrase(dir, "timestamp", main, online)
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 1 {
		t.Fatalf("ChangePassphrase rewrote %v, want the one timestamp key", done)
	}
	if _, err := publish.ChangePassphrase(dir, "timestamp", main, online); err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Errorf("ChangePassphrase with the old passphrase again = %v, want wrong passphrase", err)
	}
	r, err := publish.OpenWith(dir, publish.Options{Keys: online})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Timestamp(); err != nil {
		t.Errorf("Timestamp() with the timestamp key's own passphrase: %v", err)
	}
	if err := r.Commit(); err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Errorf("Commit() with only the timestamp key's passphrase = %v, want refused", err)
	}
	if found, _ := publish.PlaintextKeys(dir); len(found) != 0 {
		t.Errorf("plaintext keys: %v", found)
	}
}

// A PIN written into a pkcs11: URI never reaches a message.
func TestOpenKeyRedactsPIN(t *testing.T) {
	saved := publish.OpenPKCS11
	t.Cleanup(func() { publish.OpenPKCS11 = saved })
	publish.OpenPKCS11 = func(string) (crypto.Signer, io.Closer, error) { return nil, nil, errors.New("no such token") }
	for _, ref := range []string{
		"pkcs11:token=t;object=k?pin-value=s3cret&module-path=/m.so",
		"PKCS11:token=t;object=k?module-path=/m.so&PIN-VALUE=s3cret",
	} {
		if !publish.IsPKCS11(ref) {
			t.Errorf("IsPKCS11(%q) = false", ref)
		}
		_, _, err := publish.OpenKey(ref, publish.KeyAccess{})
		if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "no such token") {
			t.Errorf("OpenKey(%q) = %v, want the token's error without the PIN", ref, err)
		}
	}
}
