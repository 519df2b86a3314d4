// SPDX-License-Identifier: Apache-2.0

//go:build cgo

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
	"github.com/fieldgate/fieldgate/tuf/publish/pkcs11/pkcs11test"
)

// TestInteropSoftHSMCommands: hsm keygen makes a key in a SoftHSM2 token
// and prints its URI and TUF key; the vendor signs its role with that key
// through --key pkcs11:…, the operator delegates to the key read from the
// token, imports and commits, and a gateway accepts the role's target.
func TestInteropSoftHSMCommands(t *testing.T) {
	module := pkcs11test.SoftHSM(t, "vendor-token")
	w := t.TempDir()
	pinFile := filepath.Join(w, "pin")
	if err := os.WriteFile(pinFile, []byte(pkcs11test.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FIELDGATE_PKCS11_MODULE", module)
	uri := "pkcs11:token=vendor-token;object=acme-1?pin-source=file:" + pinFile

	for _, args := range [][]string{{"--version"}, {"--help"}, {"hsm", "--help"}} {
		if out := runCmd(t, args...); !strings.Contains(out, "PKCS#11 (--key pkcs11:…) is compiled in") {
			t.Errorf("fieldgate-repo %s does not say PKCS#11 is compiled in:\n%s", strings.Join(args, " "), out)
		}
	}

	pubFile := filepath.Join(w, "acme.pub")
	out := runCmd(t, "hsm", "keygen", "--key", uri, "--public-key", pubFile)
	m := regexp.MustCompile(`(?m)^generated ecdsa-p256 key in the token: (pkcs11:\S+)\nkey id: ([0-9a-f]{64})\npublic key: (\{.*\})$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("hsm keygen printed:\n%s", out)
	}
	ref, keyID := m[1], m[2]
	if !strings.Contains(ref, "object=acme-1;id=%") || strings.Contains(ref, pkcs11test.PIN) {
		t.Errorf("hsm keygen URI %q, want object and id, no PIN", ref)
	}
	var tufKey struct{ Scheme string }
	if err := json.Unmarshal([]byte(m[3]), &tufKey); err != nil || tufKey.Scheme != "ecdsa-sha2-nistp256" {
		t.Errorf("hsm keygen public key %s: scheme %q (%v), want ecdsa-sha2-nistp256", m[3], tufKey.Scheme, err)
	}
	if k, err := publish.PublicKey(pubFile, publish.KeyAccess{}); err != nil {
		t.Errorf("public key file: %v", err)
	} else if id, _ := k.ID(); id != keyID {
		t.Errorf("public key file holds key %s, want %s", id, keyID)
	}
	if err := runCmdErr("hsm", "keygen", "--key", uri); err == nil || !strings.Contains(err.Error(), "already holds") {
		t.Errorf("hsm keygen of an existing label = %v, want a refusal", err)
	}
	if err := runCmdErr("hsm", "keygen", "--key", "/tmp/key.pem"); err == nil {
		t.Error("hsm keygen --key FILE: no error")
	}
	if out := runCmd(t, "hsm", "pubkey", "--key", ref); !strings.Contains(out, "key id: "+keyID) {
		t.Errorf("hsm pubkey printed:\n%s\nwant key id %s", out, keyID)
	}

	// The vendor signs its role in the token; no key file is written.
	vdir := filepath.Join(w, "vendor", "acme")
	fw := filepath.Join(w, "fw.bin")
	if err := os.WriteFile(fw, []byte(strings.Repeat("acme firmware ", 500)), 0o644); err != nil {
		t.Fatal(err)
	}
	const name = "acme-io16/fw-2.5.0.bin"
	runCmd(t, "vendor", "init", vdir, "acme", "--key", uri, "--path", "acme-io16/*")
	runCmd(t, "vendor", "add", vdir, fw, "--name", name, "--hardware", "acme-io16-rev3", "--version", "2.5.0")
	runCmd(t, "vendor", "sign", vdir, "--expires", "30d")
	filepath.WalkDir(vdir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if data, _ := os.ReadFile(p); strings.Contains(string(data), "PRIVATE KEY") {
				t.Errorf("vendor directory holds a private key: %s", p)
			}
		}
		return nil
	})

	// The operator's repository, delegating to the key in the token, read
	// from it. The operator's own keys are plaintext test fixtures, opened
	// through the library: signing them is not what this test is about.
	dir := filepath.Join(w, "operator", "repo")
	fixture := publish.Options{Keys: publish.KeyAccess{InsecurePlaintextKeys: true}}
	if _, err := publish.Init(dir, fixture); err != nil {
		t.Fatal(err)
	}
	runCmd(t, "delegate", dir, "acme", "--path", "acme-io16/*", "--key-file", uri)
	runCmd(t, "import-role", dir, filepath.Join(vdir, "out"))
	r, err := publish.OpenWith(dir, fixture)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	snap := refreshed(t, vendorGateway(t, dir))
	tg, ok, why := tuf.Select(snap.Targets, "acme-io16-rev3", "2.4.0", 0)
	if !ok || tg.Name != name || tg.Role != "acme" {
		t.Fatalf("gateway: Select() = %+v, %v (%s); want %s from role acme, signed in the token", tg, ok, why, name)
	}
}

// TestInteropSoftHSMTargetsRole: the repository's targets role moves to a
// key generated in a SoftHSM2 token (rotate --key-file pkcs11:…), commit
// --key pkcs11:… signs targets in the token, no targets key file remains,
// and a gateway that trusts the first root follows and installs the
// target; without the token, commit is refused.
func TestInteropSoftHSMTargetsRole(t *testing.T) {
	module := pkcs11test.SoftHSM(t, "release")
	w := t.TempDir()
	pinFile := filepath.Join(w, "pin")
	if err := os.WriteFile(pinFile, []byte(pkcs11test.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	uri := "pkcs11:token=release;object=targets-1?module-path=" + module + "&pin-source=file:" + pinFile
	out := runCmd(t, "hsm", "keygen", "--key", uri)
	m := regexp.MustCompile(`(?m)^generated \S+ key in the token: (pkcs11:\S+)\nkey id: ([0-9a-f]{64})$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("hsm keygen printed:\n%s", out)
	}
	ref, keyID := m[1], m[2]

	dir := filepath.Join(w, "repo")
	runCmd(t, "init", dir, "--insecure-plaintext-keys")
	gw := vendorGateway(t, dir)
	refreshed(t, gw)
	runCmd(t, "rotate", dir, "targets", "--key-file", ref, "--key", ref, "--insecure-plaintext-keys")
	if files, _ := filepath.Glob(filepath.Join(dir, "keys", "targets", "*.pem")); len(files) != 0 {
		t.Errorf("targets key files left after the rotation to the token: %v", files)
	}
	fw := filepath.Join(w, "fw.bin")
	data := []byte(strings.Repeat("release firmware ", 700))
	if err := os.WriteFile(fw, data, 0o644); err != nil {
		t.Fatal(err)
	}
	const name = "io16/fw-3.0.0.bin"
	runCmd(t, "add", dir, fw, "--name", name, "--hardware", "io16", "--version", "3.0.0", "--insecure-plaintext-keys")
	runCmd(t, "commit", dir, "--key", ref, "--insecure-plaintext-keys")

	r, err := publish.OpenWith(dir, publish.Options{Keys: publish.KeyAccess{InsecurePlaintextKeys: true}})
	if err != nil {
		t.Fatal(err)
	}
	if sigs := r.TargetsMetadata().Signatures; len(sigs) != 1 || sigs[0].KeyID != keyID {
		t.Errorf("targets signatures %+v, want one by the token's key %s", sigs, keyID)
	}
	snap := refreshed(t, gw)
	tg, ok, why := tuf.Select(snap.Targets, "io16", "2.0.0", 0)
	if !ok || tg.Name != name {
		t.Fatalf("gateway: Select() = %+v, %v (%s); want %s", tg, ok, why, name)
	}
	path, err := gw.Fetch(t.Context(), tg, nil)
	if err != nil {
		t.Fatalf("gateway: Fetch() = %v", err)
	}
	if got, _ := os.ReadFile(path); string(got) != string(data) {
		t.Error("fetched target differs from the published file")
	}

	runCmd(t, "remove", dir, name, "--insecure-plaintext-keys")
	if err := runCmdErr("commit", dir, "--insecure-plaintext-keys"); err == nil || !strings.Contains(err.Error(), "targets") {
		t.Errorf("commit without the token's key = %v, want a refusal naming targets", err)
	} else {
		t.Logf("commit without the token: %v", err)
	}
}
