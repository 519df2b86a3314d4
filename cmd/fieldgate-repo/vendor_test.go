// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
)

// vendorGateway is a gateway following the operator's repository.
func vendorGateway(t *testing.T, dir string) *tuf.Client {
	t.Helper()
	r, err := publish.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(srv.Close)
	w := t.TempDir()
	c, err := tuf.New(tuf.Config{
		MetadataURL: srv.URL + "/metadata",
		TargetsURL:  srv.URL + "/targets",
		MetadataDir: filepath.Join(w, "metadata"),
		BlobDir:     filepath.Join(w, "blobs"),
		TrustedRoot: r.RootPath(),
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func refreshed(t *testing.T, c *tuf.Client) *tuf.Snapshot {
	t.Helper()
	snap, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatalf("Refresh() = %v", err)
	}
	return snap
}

func wantErr(t *testing.T, want string, args ...string) {
	t.Helper()
	if err := runCmdErr(args...); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("fieldgate-repo %s = %v, want an error containing %q", strings.Join(args, " "), err, want)
	}
}

// TestVendorFlow runs the vendor's and the operator's commands in two
// directories that share no key: the vendor signs its role, the operator
// delegates to the vendor's public key, imports and commits, and a gateway
// installs the vendor's target; bad deliveries are refused; after the
// operator rotates the role to the vendor's new key, the role signed with
// the old key is refused and the next one, signed with the new key, is
// accepted.
func TestVendorFlow(t *testing.T) {
	w := t.TempDir()
	dir := filepath.Join(w, "operator", "repo")
	vdir := filepath.Join(w, "vendor", "acme")
	key := filepath.Join(w, "vendor", "acme.pem")
	t.Setenv("FIELDGATE_REPO_PASSPHRASE", "correct horse battery staple")
	fw := filepath.Join(w, "vendor", "fw.bin")
	data := bytes.Repeat([]byte("acme io16 firmware "), 4000)
	if err := os.MkdirAll(filepath.Dir(fw), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fw, data, 0o644); err != nil {
		t.Fatal(err)
	}
	const name = "acme-io16/fw-2.5.0.bin"

	runCmd(t, operatorInit(dir)...)
	out := runCmd(t, "vendor", "init", vdir, "acme", "--new-key", key, "--path", "acme-io16/*")
	if !strings.Contains(out, "--key-file acme.pub") {
		t.Errorf("vendor init printed %q, want the delegate command for the operator", out)
	}
	if pem, _ := os.ReadFile(key); !bytes.Contains(pem, []byte("ENCRYPTED PRIVATE KEY")) {
		t.Errorf("vendor key file is not encrypted:\n%s", pem)
	}
	wantErr(t, "outside the paths", "vendor", "add", vdir, fw, "--name", "plc/fw.bin", "--hardware", "plc", "--version", "1")
	runCmd(t, "vendor", "add", vdir, fw, "--name", name, "--hardware", "acme-io16-rev3", "--version", "2.5.0", "--security-counter", "4")
	out = runCmd(t, "vendor", "sign", vdir, "--expires", "30d")
	if !strings.Contains(out, "signed role acme version 1") {
		t.Errorf("vendor sign printed %q", out)
	}
	v1 := filepath.Join(w, "mail", "v1")
	copyDir(t, filepath.Join(vdir, "out"), v1)

	// The operator, with the vendor's public key only.
	runCmd(t, "delegate", dir, "acme", "--path", "acme-io16/*", "--key-file", filepath.Join(vdir, "acme.pub"))
	wantErr(t, "--replace-keys", "delegate", dir, "acme", "--path", "acme-io16/*", "--keys-dir", filepath.Join(w, "operator", "other-keys"))
	wantErr(t, "private key", "delegate", dir, "other", "--path", "other/*", "--key-file", key)
	// A forged delivery: the metadata claims another file.
	forged := filepath.Join(w, "mail", "forged")
	copyDir(t, v1, forged)
	os.WriteFile(filepath.Join(forged, "targets", name), []byte("evil"), 0o644)
	wantErr(t, "does not match", "import-role", dir, forged)
	out = runCmd(t, "import-role", dir, v1)
	if !strings.Contains(out, "imported role acme version 1") {
		t.Errorf("import-role printed %q", out)
	}
	runCmd(t, "commit", dir)
	gw := vendorGateway(t, dir)
	snap := refreshed(t, gw)
	tg, ok, why := tuf.Select(snap.Targets, "acme-io16-rev3", "2.4.0", 0)
	if !ok || tg.Name != name || tg.Role != "acme" {
		t.Fatalf("Select() = %+v, %v (%s); want %s from role acme", tg, ok, why, name)
	}
	path, err := gw.Fetch(context.Background(), tg, nil)
	if err != nil {
		t.Fatalf("Fetch() = %v", err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
		t.Errorf("fetched target differs from the vendor's file")
	}
	wantErr(t, "rollback refused", "import-role", dir, v1)

	// Rotation: the vendor makes a new key and sends its public half.
	newKey := filepath.Join(w, "vendor", "acme-2.pem")
	if _, err := publish.GenerateKeyFile(newKey, publish.KeyEd25519, publish.KeyAccess{Passphrase: func(string, bool) ([]byte, error) { return []byte("another passphrase"), nil }}); err != nil {
		t.Fatal(err)
	}
	runCmd(t, "rotate", dir, "acme", "--key-file", publish.PublicKeyPath(newKey))
	snap = refreshed(t, gw)
	if _, ok := findTarget(snap, name); ok || !refusedRole(snap, "acme") {
		t.Errorf("after rotation: targets %v, rejected %v; want role acme (signed with the old key) refused", snap.Targets, snap.Rejected)
	}
	// Signed with the old key: refused at import.
	runCmd(t, "vendor", "sign", vdir)
	wantErr(t, "signatures do not meet", "import-role", dir, filepath.Join(vdir, "out"))
	// Signed with the new key: accepted, and the gateway follows.
	t.Setenv("FIELDGATE_REPO_PASSPHRASE", "another passphrase")
	runCmd(t, "vendor", "sign", vdir, "--key", newKey)
	t.Setenv("FIELDGATE_REPO_PASSPHRASE", "correct horse battery staple") // the operator's keys again
	runCmd(t, "import-role", dir, filepath.Join(vdir, "out"))
	runCmd(t, "commit", dir)
	snap = refreshed(t, gw)
	if tg, ok := findTarget(snap, name); !ok || tg.Role != "acme" || snap.Versions["acme"] != 3 {
		t.Errorf("after the new key signed: targets %v, acme version %d, rejected %v; want %s at version 3", snap.Targets, snap.Versions["acme"], snap.Rejected, name)
	}
}

// TestDelegateKeysDirNoSilentNoop: delegate --keys-dir on an existing role
// with other keys used to succeed and keep the old key; it is refused
// unless --replace-keys is given.
func TestDelegateKeysDirNoSilentNoop(t *testing.T) {
	w := t.TempDir()
	dir, a, b := filepath.Join(w, "repo"), filepath.Join(w, "keys-a"), filepath.Join(w, "keys-b")
	runCmd(t, operatorInit(dir)...)
	runCmd(t, "delegate", dir, "acme", "--path", "acme-io16/*", "--keys-dir", a)
	runCmd(t, "commit", dir)
	keyOf := func() string {
		r, err := publish.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(r.TargetsMetadata().Signed.Delegations.Roles[0].KeyIDs, ",")
	}
	before := keyOf()
	wantErr(t, "--replace-keys", "delegate", dir, "acme", "--path", "acme-io16/*", "--keys-dir", b)
	runCmd(t, "commit", dir)
	if got := keyOf(); got != before {
		t.Errorf("after a refused delegate the role's keys are %s, want %s", got, before)
	}
	runCmd(t, "delegate", dir, "acme", "--path", "acme-io16/*", "--keys-dir", b, "--replace-keys")
	runCmd(t, "commit", dir)
	if got := keyOf(); got == before || got == "" {
		t.Errorf("after delegate --replace-keys the role's keys are %s, want a new key", got)
	}
}

func findTarget(snap *tuf.Snapshot, name string) (tuf.Target, bool) {
	for _, tg := range snap.Targets {
		if tg.Name == name {
			return tg, true
		}
	}
	return tuf.Target{}, false
}

func refusedRole(snap *tuf.Snapshot, role string) bool {
	for _, r := range snap.Rejected {
		if r.Role == role && r.Name == "" {
			return true
		}
	}
	return false
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// operatorInit is the command that creates the operator's repository.
func operatorInit(dir string) []string { return []string{"init", dir} }
