// SPDX-License-Identifier: Apache-2.0

//go:build cgo

package pkcs11_test

import (
	"context"
	"crypto"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
	"github.com/fieldgate/fieldgate/tuf/publish/pkcs11"
	"github.com/fieldgate/fieldgate/tuf/publish/pkcs11/pkcs11test"
)

// TestInteropSoftHSMRepository: the targets role of a repository moves to
// a key generated in a SoftHSM2 token; commits sign targets in the token
// (no targets key file is left on disk), and a gateway that trusts the
// first root follows the rotation and accepts the targets.
func TestInteropSoftHSMRepository(t *testing.T) {
	module := pkcs11test.SoftHSM(t, "fieldgate")
	old := publish.OpenPKCS11
	publish.OpenPKCS11 = pkcs11.Open
	t.Cleanup(func() { publish.OpenPKCS11 = old })

	pinFile := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(pinFile, []byte(pkcs11test.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	uri := "pkcs11:token=fieldgate;object=targets-1?module-path=" + module + "&pin-source=file:" + pinFile
	if _, _, err := pkcs11.Generate(uri, pkcs11.KeyECDSAP256); err != nil {
		t.Fatal(err)
	}
	tokenKey, err := publish.PublicKey(uri, publish.KeyAccess{})
	if err != nil {
		t.Fatal(err)
	}
	tokenID, _ := tokenKey.ID()
	if tokenKey.Scheme != "ecdsa-sha2-nistp256" {
		t.Errorf("token key scheme %q, want ecdsa-sha2-nistp256", tokenKey.Scheme)
	}

	keys := publish.KeyAccess{InsecurePlaintextKeys: true} // the other roles' keys: files, as in CI
	dir := filepath.Join(t.TempDir(), "repo")
	r, err := publish.Init(dir, publish.Options{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(srv.Close)
	gw := t.TempDir()
	client, err := tuf.New(tuf.Config{
		MetadataURL: srv.URL + "/metadata", TargetsURL: srv.URL + "/targets",
		MetadataDir: filepath.Join(gw, "metadata"), BlobDir: filepath.Join(gw, "blobs"),
		TrustedRoot: r.RootPath(),
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Refresh(context.Background()); err != nil {
		t.Fatalf("gateway refresh before the rotation: %v", err)
	}

	res, err := r.RotateWith(metadata.TARGETS, publish.RotateOptions{PublicKeys: []*metadata.Key{tokenKey}})
	if err != nil {
		t.Fatalf("rotate targets to the token's key: %v", err)
	}
	if !res.Published {
		t.Fatal("rotation of targets: root not published")
	}

	signer, closer, err := publish.OpenKey(uri, publish.KeyAccess{})
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	r, err = publish.OpenWith(dir, publish.Options{Keys: keys, Signers: []crypto.Signer{signer}})
	if err != nil {
		t.Fatal(err)
	}
	fw := filepath.Join(t.TempDir(), "fw.bin")
	if err := os.WriteFile(fw, []byte(strings.Repeat("firmware signed in the token ", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.AddTarget("acme-io16/fw-2.4.1.bin", fw, tuf.Meta{Hardware: []string{"acme-io16-rev3"}, Version: "2.4.1"}); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatalf("commit with the targets key in the token: %v", err)
	}
	sigs := r.TargetsMetadata().Signatures
	if len(sigs) != 1 || sigs[0].KeyID != tokenID {
		t.Errorf("targets signatures %+v, want one by the token's key %s", sigs, tokenID)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "keys", "targets", "*.pem")); len(files) != 0 {
		t.Errorf("targets key files left after the rotation to the token: %v", files)
	}

	snap, err := client.Refresh(context.Background())
	if err != nil {
		t.Fatalf("gateway refresh after the rotation: %v", err)
	}
	found := false
	for _, tg := range snap.Targets {
		found = found || tg.Name == "acme-io16/fw-2.4.1.bin"
	}
	if !found {
		t.Errorf("gateway targets %v, want acme-io16/fw-2.4.1.bin", snap.Targets)
	}

	// Without the token, targets cannot be signed: the change stays staged.
	r, err = publish.OpenWith(dir, publish.Options{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Remove("acme-io16/fw-2.4.1.bin"); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err == nil {
		t.Error("commit of targets without the token's key: no error")
	} else if !errors.Is(err, publish.ErrMissingKeys) && !strings.Contains(err.Error(), "targets") {
		t.Errorf("commit without the token's key = %v, want an error naming targets", err)
	}
}
