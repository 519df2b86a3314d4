// SPDX-License-Identifier: Apache-2.0

//go:build cgo

package pkcs11

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	p11 "github.com/miekg/pkcs11"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/fieldgate/fieldgate/tuf/publish/pkcs11/pkcs11test"
)

// tufSigner hands a crypto.Signer to go-tuf's Metadata.Sign with the
// schemes go-tuf verifies: ed25519, ecdsa-sha2-nistp256.
type tufSigner struct{ crypto.Signer }

func (s tufSigner) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) {
	return s.Public(), nil
}

func (s tufSigner) SignMessage(r io.Reader, _ ...signature.SignOption) ([]byte, error) {
	msg, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if _, ok := s.Public().(ed25519.PublicKey); ok {
		return s.Sign(nil, msg, crypto.Hash(0))
	}
	sum := sha256.Sum256(msg)
	return s.Sign(nil, sum[:], crypto.SHA256)
}

// keyAttrs reads boolean attributes of the private key labelled label
// straight from the module, beside the package's own code.
func keyAttrs(t *testing.T, module, token, label string, types ...uint) map[uint]bool {
	t.Helper()
	ctx := p11.New(module)
	if ctx == nil {
		t.Fatalf("load %s", module)
	}
	defer ctx.Destroy()
	if err := ctx.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer ctx.Finalize()
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, slot := range slots {
		ti, err := ctx.GetTokenInfo(slot)
		if err != nil || trim(ti.Label) != token {
			continue
		}
		h, err := ctx.OpenSession(slot, p11.CKF_SERIAL_SESSION)
		if err != nil {
			t.Fatal(err)
		}
		defer ctx.CloseSession(h)
		if err := ctx.Login(h, p11.CKU_USER, pkcs11test.PIN); err != nil {
			t.Fatal(err)
		}
		if err := ctx.FindObjectsInit(h, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY), p11.NewAttribute(p11.CKA_LABEL, label),
		}); err != nil {
			t.Fatal(err)
		}
		objs, _, err := ctx.FindObjects(h, 2)
		ctx.FindObjectsFinal(h)
		if err != nil || len(objs) != 1 {
			t.Fatalf("private key %q: %d objects, %v", label, len(objs), err)
		}
		var tmpl []*p11.Attribute
		for _, a := range types {
			tmpl = append(tmpl, p11.NewAttribute(a, nil))
		}
		attrs, err := ctx.GetAttributeValue(h, objs[0], tmpl)
		if err != nil {
			t.Fatal(err)
		}
		got := map[uint]bool{}
		for _, a := range attrs {
			got[a.Type] = len(a.Value) == 1 && a.Value[0] == 1
		}
		// The key itself must not be readable.
		if _, err := ctx.GetAttributeValue(h, objs[0], []*p11.Attribute{p11.NewAttribute(p11.CKA_VALUE, nil)}); !isCode(err, p11.CKR_ATTRIBUTE_SENSITIVE) {
			t.Errorf("reading CKA_VALUE of %q: %v, want CKR_ATTRIBUTE_SENSITIVE", label, err)
		}
		return got
	}
	t.Fatalf("no token %q", token)
	return nil
}

// TestInteropSoftHSMKeys generates a key of each type in a SoftHSM2 token,
// checks that the private key can never leave it, signs TUF metadata
// through it and verifies the signature with go-tuf.
func TestInteropSoftHSMKeys(t *testing.T) {
	module := pkcs11test.SoftHSM(t, "fieldgate")
	base := "pkcs11:token=fieldgate;object=%s?module-path=" + module + "&pin-value=" + pkcs11test.PIN
	for _, keyType := range []string{KeyECDSAP256, KeyEd25519} {
		t.Run(keyType, func(t *testing.T) {
			label := "targets-" + keyType
			uri := fmt.Sprintf(base, label)
			pub, ref, err := Generate(uri, keyType)
			if err != nil {
				t.Fatalf("Generate(%s): %v", keyType, err)
			}
			if strings.Contains(ref, pkcs11test.PIN) || !strings.Contains(ref, ";id=%") || !strings.Contains(ref, "object="+label) {
				t.Errorf("Generate returned the URI %q, want it with object= and id= and without the PIN", ref)
			}
			switch keyType {
			case KeyECDSAP256:
				if _, ok := pub.(*ecdsa.PublicKey); !ok {
					t.Fatalf("Generate(%s) public key %T", keyType, pub)
				}
			case KeyEd25519:
				if _, ok := pub.(ed25519.PublicKey); !ok {
					t.Fatalf("Generate(%s) public key %T", keyType, pub)
				}
			}
			attrs := keyAttrs(t, module, "fieldgate", label, p11.CKA_SENSITIVE, p11.CKA_EXTRACTABLE,
				p11.CKA_ALWAYS_SENSITIVE, p11.CKA_NEVER_EXTRACTABLE, p11.CKA_TOKEN, p11.CKA_PRIVATE,
				p11.CKA_SIGN, p11.CKA_DECRYPT, p11.CKA_UNWRAP, p11.CKA_DERIVE)
			for a, want := range map[uint]bool{p11.CKA_SENSITIVE: true, p11.CKA_EXTRACTABLE: false,
				p11.CKA_ALWAYS_SENSITIVE: true, p11.CKA_NEVER_EXTRACTABLE: true, p11.CKA_TOKEN: true, p11.CKA_PRIVATE: true,
				p11.CKA_SIGN: true, p11.CKA_DECRYPT: false, p11.CKA_UNWRAP: false, p11.CKA_DERIVE: false} {
				if attrs[a] != want {
					t.Errorf("private key attribute %#x = %v, want %v", a, attrs[a], want)
				}
			}

			// The same label again is refused, and the key stays.
			if _, _, err := Generate(uri, keyType); err == nil || !strings.Contains(err.Error(), "already holds") {
				t.Errorf("Generate of an existing label: %v, want a refusal", err)
			}

			// Open by the URI Generate printed (id and label) and by label.
			for _, u := range []string{ref + "&pin-value=" + pkcs11test.PIN, uri} {
				signer, closer, err := Open(u)
				if err != nil {
					t.Fatalf("Open(%s): %v", u, err)
				}
				if !publicEqual(signer.Public(), pub) {
					t.Errorf("Open(%s).Public() differs from the generated key", u)
				}
				checkTUFSignature(t, signer, keyType)
				if err := closer.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
				if _, err := signer.Sign(nil, make([]byte, 32), crypto.SHA256); err == nil {
					t.Error("Sign after Close: no error")
				}
			}
		})
	}
	modules.Lock()
	left := len(modules.m)
	modules.Unlock()
	if left != 0 {
		t.Errorf("%d modules still loaded after every key was closed", left)
	}
}

func publicEqual(a, b crypto.PublicKey) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(eq)
	return ok && e.Equal(b)
}

// checkTUFSignature signs targets metadata with signer and verifies it as
// a gateway does: go-tuf's VerifyDelegate against a root that lists the key
// for targets, and fails once the signed content changes.
func checkTUFSignature(t *testing.T, signer crypto.Signer, keyType string) {
	t.Helper()
	key, err := metadata.KeyFromPublicKey(signer.Public())
	if err != nil {
		t.Fatal(err)
	}
	wantScheme := map[string]string{KeyECDSAP256: "ecdsa-sha2-nistp256", KeyEd25519: "ed25519"}[keyType]
	if key.Scheme != wantScheme {
		t.Errorf("TUF key scheme %q, want %q", key.Scheme, wantScheme)
	}
	expires := time.Now().Add(time.Hour)
	root := metadata.Root(expires)
	if err := root.Signed.AddKey(key, metadata.TARGETS); err != nil {
		t.Fatal(err)
	}
	targets := metadata.Targets(expires)
	sig, err := targets.Sign(tufSigner{signer})
	if err != nil {
		t.Fatalf("sign targets in the token: %v", err)
	}
	if keyType == KeyECDSAP256 {
		var rs struct{ R, S *big.Int }
		if rest, err := asn1.Unmarshal(sig.Signature, &rs); err != nil || len(rest) != 0 {
			t.Errorf("ECDSA signature is not ASN.1 DER: %v (%d bytes left)", err, len(rest))
		}
	}
	// Through JSON, as a client reads it.
	data, err := targets.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}
	read, err := metadata.Targets().FromBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := root.VerifyDelegate(metadata.TARGETS, read); err != nil {
		t.Errorf("go-tuf rejects targets signed in the token: %v", err)
	}
	read.Signed.Version++
	if err := root.VerifyDelegate(metadata.TARGETS, read); err == nil {
		t.Error("go-tuf accepts the signature over changed metadata")
	}
}

// TestInteropSoftHSMOpenErrors: what a user gets wrong is named.
func TestInteropSoftHSMOpenErrors(t *testing.T) {
	module := pkcs11test.SoftHSM(t, "one", "two")
	gen := "pkcs11:token=one;object=k?module-path=" + module + "&pin-value=" + pkcs11test.PIN
	if _, _, err := Generate(gen, KeyECDSAP256); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pinFile := filepath.Join(dir, "pin")
	if err := os.WriteFile(pinFile, []byte(pkcs11test.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvPIN, "")
	t.Setenv(EnvModule, "")
	m := "?module-path=" + module
	tests := []struct {
		uri, env, want string
	}{
		{"pkcs11:token=one;object=k" + m + "&pin-value=wrong", "", "CKR_PIN_INCORRECT"},
		{"pkcs11:token=one;object=k" + m, "", "needs a PIN"},
		{"pkcs11:token=three;object=k" + m, "", `no token matches`},
		{"pkcs11:object=k" + m + "&pin-value=" + pkcs11test.PIN, "", "2 tokens match"},
		{"pkcs11:token=one;object=nope" + m + "&pin-value=" + pkcs11test.PIN, "", "holds no private key object=nope"},
		{"pkcs11:token=one" + m, "", "names no key"},
		{"pkcs11:token=one;object=k;type=public" + m, "", "type=private"},
		{"pkcs11:token=one;object=k", "", "no PKCS#11 module"},
		{"pkcs11:token=one;object=k?module-path=/nonexistent/module.so", "", "no such file"},
		{"pkcs11:token=one;object=k?module-path=" + pinFile, "", "cannot be loaded"},
		{"pkcs11:token=one;object=k" + m + "&pin-source=file:" + pinFile, "", ""},
		{"pkcs11:token=one;object=k;library-manufacturer=Nobody" + m + "&pin-source=file:" + pinFile, "", "does not match the URI's library"},
		{"pkcs11:token=one;object=k" + m, "PIN", ""},
		{"pkcs11:token=one;object=k?pin-source=" + pinFile, "MODULE", ""},
	}
	for _, tt := range tests {
		switch tt.env {
		case "PIN":
			t.Setenv(EnvPIN, pkcs11test.PIN)
		case "MODULE":
			t.Setenv(EnvModule, module)
		}
		s, c, err := Open(tt.uri)
		t.Setenv(EnvPIN, "")
		t.Setenv(EnvModule, "")
		if tt.want == "" {
			if err != nil {
				t.Errorf("Open(%s) with %s: %v", tt.uri, tt.env, err)
				continue
			}
			if _, err := s.Sign(nil, make([]byte, 32), crypto.SHA256); err != nil {
				t.Errorf("Sign through %s: %v", tt.uri, err)
			}
			c.Close()
			continue
		}
		if err == nil {
			c.Close()
			t.Errorf("Open(%s) = ok, want an error containing %q", tt.uri, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Open(%s) = %v, want an error containing %q", tt.uri, err, tt.want)
		}
		if strings.Contains(err.Error(), pkcs11test.PIN) {
			t.Errorf("Open(%s) = %v: the error shows the PIN", tt.uri, err)
		}
	}
	// A signing key and a public key: wrong uses are refused.
	s, c, err := Open(gen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := s.Sign(nil, []byte("not a digest"), crypto.SHA256); err == nil {
		t.Error("ECDSA Sign of a 12-byte digest: no error")
	}
	if _, err := s.Sign(nil, make([]byte, 32), crypto.Hash(0)); err == nil {
		t.Error("ECDSA Sign without a hash: no error")
	}
}
