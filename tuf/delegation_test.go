// SPDX-License-Identifier: Apache-2.0

package tuf_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
	"github.com/fieldgate/fieldgate/tuf/tuftest"
)

const vendorFw = "acme-io16/fw-2.5.0.bin"

func findRejected(snap *tuf.Snapshot, name, role string) (tuf.Rejected, bool) {
	for _, r := range snap.Rejected {
		if r.Name == name && r.Role == role {
			return r, true
		}
	}
	return tuf.Rejected{}, false
}

func hasTarget(snap *tuf.Snapshot, name string) bool {
	for _, tg := range snap.Targets {
		if tg.Name == name {
			return true
		}
	}
	return false
}

func TestDelegatedVendorRole(t *testing.T) {
	repo := tuftest.New(t)
	repo.Delegate("acme", publish.Delegation{Paths: []string{"acme-io16/*"}})
	fw := payload(70000, 9)
	repo.AddTo("acme", vendorFw, fw, tuftest.Meta("acme-io16-rev3", "2.5.0", 4))
	// The vendor role signs a PLC image it is not trusted for.
	if err := repo.Pub.AddTargetBytesUnchecked("acme", "plc/fw-9.9.bin", []byte("evil"), tuftest.Meta("plc", "9.9", 9)); err != nil {
		t.Fatal(err)
	}
	// The publisher itself refuses that.
	if err := repo.Pub.AddTargetBytesTo("acme", "plc/fw-9.8.bin", []byte("x"), tuftest.Meta("plc", "9.8", 9)); err == nil || !strings.Contains(err.Error(), "outside the paths") {
		t.Errorf("AddTargetBytesTo(acme, plc/…) = %v, want an error about its paths", err)
	}
	repo.Add("plc/fw-1.0.bin", []byte("plc"), tuftest.Meta("plc", "1.0", 1))
	repo.Commit()

	c := repo.Client(t, nil)
	snap, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatalf("Refresh() = %v", err)
	}
	tg := findTarget(t, snap, vendorFw)
	if tg.Role != "acme" || tg.MetaErr != nil {
		t.Errorf("target %s: role %q, MetaErr %v; want role acme, no error", vendorFw, tg.Role, tg.MetaErr)
	}
	if top := findTarget(t, snap, "plc/fw-1.0.bin"); top.Role != "targets" {
		t.Errorf("target plc/fw-1.0.bin: role %q, want targets", top.Role)
	}
	if hasTarget(snap, "plc/fw-9.9.bin") {
		t.Errorf("Refresh() lists plc/fw-9.9.bin, signed by role acme outside its paths")
	}
	r, ok := findRejected(snap, "plc/fw-9.9.bin", "acme")
	if !ok || !strings.Contains(r.Reason, "outside the paths") || !strings.Contains(r.Reason, "acme-io16/*") {
		t.Errorf("Rejected = %v, want plc/fw-9.9.bin from acme refused as outside its paths acme-io16/*", snap.Rejected)
	}
	if snap.Versions["acme"] != 1 {
		t.Errorf("Versions[acme] = %d, want 1", snap.Versions["acme"])
	}
	path, err := c.Fetch(context.Background(), tg, nil)
	if err != nil {
		t.Fatalf("Fetch(%s) = %v", vendorFw, err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, fw) {
		t.Errorf("Fetch(%s) stored different bytes", vendorFw)
	}
	// The delegated role is cached: a second refresh does not download it.
	n := repo.CountRequests("GET /metadata/1.acme.json")
	if _, err := c.Refresh(context.Background()); err != nil {
		t.Fatalf("second Refresh() = %v", err)
	}
	if got := repo.CountRequests("GET /metadata/1.acme.json"); got != n {
		t.Errorf("second Refresh() downloaded 1.acme.json again (%d requests, want %d)", got, n)
	}
}

// TestDelegatedRoleWrongKey signs the vendor role with a key its delegation
// does not list. Its targets are refused, and a lower-priority role that
// claims the same path is not used instead.
func TestDelegatedRoleWrongKey(t *testing.T) {
	repo := tuftest.New(t)
	repo.Delegate("acme", publish.Delegation{Paths: []string{"acme-io16/*"}})
	repo.Delegate("mirror", publish.Delegation{Paths: []string{"acme-io16/*"}})
	good := payload(5000, 1)
	repo.AddTo("acme", vendorFw, good, tuftest.Meta("acme-io16-rev3", "2.5.0", 4))
	if err := repo.Pub.AddTargetBytesUnchecked("mirror", vendorFw, []byte("evil"), tuftest.Meta("acme-io16-rev3", "2.5.0", 4)); err != nil {
		t.Fatal(err)
	}
	repo.Commit()

	snap, err := repo.Client(t, nil).Refresh(context.Background())
	if err != nil {
		t.Fatalf("Refresh() = %v", err)
	}
	if tg := findTarget(t, snap, vendorFw); tg.Role != "acme" || tg.Length != int64(len(good)) {
		t.Errorf("target %s from role %s, length %d; want acme's (%d bytes)", vendorFw, tg.Role, tg.Length, len(good))
	}
	if r, ok := findRejected(snap, vendorFw, "mirror"); !ok || !strings.Contains(r.Reason, "acme has priority") {
		t.Errorf("Rejected = %v, want mirror's claim refused because acme has priority", snap.Rejected)
	}

	md := repo.Pub.DelegatedMetadata("acme")
	_, priv, _ := ed25519.GenerateKey(nil)
	s, err := signature.LoadED25519Signer(priv)
	if err != nil {
		t.Fatal(err)
	}
	md.ClearSignatures()
	if _, err := md.Sign(s); err != nil {
		t.Fatal(err)
	}
	if err := publish.WriteMetadata(repo.Pub, strconv.FormatInt(md.Signed.Version, 10)+".acme.json", md); err != nil {
		t.Fatal(err)
	}
	snap, err = repo.Client(t, nil).Refresh(context.Background())
	if err != nil {
		t.Fatalf("Refresh() with a badly signed delegated role = %v, want the other roles to keep working", err)
	}
	if hasTarget(snap, vendorFw) {
		t.Errorf("Refresh() lists %s although role acme is signed by a wrong key (and mirror has lower priority)", vendorFw)
	}
	if r, ok := findRejected(snap, "", "acme"); !ok || !strings.Contains(r.Reason, "not enough signatures") {
		t.Errorf("Rejected = %v, want role acme refused for its signatures", snap.Rejected)
	}
	if r, ok := findRejected(snap, vendorFw, "mirror"); !ok || !strings.Contains(r.Reason, "acme") {
		t.Errorf("Rejected = %v, want %s refused because acme, trusted for it, was refused", snap.Rejected, vendorFw)
	}
}

// TestDelegationTerminating checks that a terminating delegation ends the
// search: a later role's claim on the same paths is not used.
func TestDelegationTerminating(t *testing.T) {
	repo := tuftest.New(t)
	repo.Delegate("acme", publish.Delegation{Paths: []string{"acme-io16/*"}, Terminating: true})
	repo.Delegate("other", publish.Delegation{Paths: []string{"acme-io16/*"}})
	if err := repo.Pub.AddTargetBytesUnchecked("other", "acme-io16/extra.bin", []byte("x"), tuftest.Meta("acme-io16-rev3", "3.0", 4)); err != nil {
		t.Fatal(err)
	}
	repo.Commit()
	snap, err := repo.Client(t, nil).Refresh(context.Background())
	if err != nil {
		t.Fatalf("Refresh() = %v", err)
	}
	if hasTarget(snap, "acme-io16/extra.bin") {
		t.Errorf("Refresh() lists acme-io16/extra.bin from role other, behind a terminating delegation")
	}
	// A role behind a terminating delegation that covers its paths can
	// never be trusted for anything: it is not even fetched.
	if r, ok := findRejected(snap, "", "other"); !ok || !strings.Contains(r.Reason, "terminating") {
		t.Errorf("Rejected = %v, want role other not fetched, behind a terminating delegation", snap.Rejected)
	}
	if n := repo.CountRequests("GET /metadata/1.other.json"); n != 0 {
		t.Errorf("Refresh() fetched 1.other.json %d times, want 0", n)
	}
}

// TestPanicInVerificationDelegatedKey lists a malformed ed25519 key (2 bytes)
// for a delegated role: go-tuf v2.4.2 panics while verifying that role. The
// panic becomes that role's error; the refresh and the other targets survive.
func TestPanicInVerificationDelegatedKey(t *testing.T) {
	repo := tuftest.New(t)
	repo.Delegate("acme", publish.Delegation{Paths: []string{"acme-io16/*"}})
	repo.AddTo("acme", vendorFw, []byte("fw"), tuftest.Meta("acme-io16-rev3", "2.5.0", 4))
	repo.Add("plc/fw-1.0.bin", []byte("plc"), tuftest.Meta("plc", "1.0", 1))
	staged := filepath.Join(repo.Dir, "staged", "targets.json")
	tm, err := metadata.Targets().FromFile(staged)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range tm.Signed.Delegations.Keys {
		k.Value.PublicKey = "abcd"
	}
	data, _ := tm.ToBytes(true)
	if err := os.WriteFile(staged, data, 0o644); err != nil {
		t.Fatal(err)
	}
	repo.Reopen()
	repo.Commit()

	snap, err := repo.Client(t, nil).Refresh(context.Background())
	if err != nil {
		t.Fatalf("Refresh() = %v", err)
	}
	if r, ok := findRejected(snap, "", "acme"); !ok || !strings.Contains(r.Reason, "panic") {
		t.Errorf("Rejected = %v, want role acme refused after a panic in verification", snap.Rejected)
	}
	if hasTarget(snap, vendorFw) || !hasTarget(snap, "plc/fw-1.0.bin") {
		t.Errorf("Refresh() targets = %v, want plc/fw-1.0.bin only", snap.Targets)
	}
}

// TestPanicInVerificationRoot publishes a root (correctly signed) whose
// timestamp key is a malformed ed25519 key: verifying the timestamp panics
// inside go-tuf, and Refresh returns an error instead of crashing.
func TestPanicInVerificationRoot(t *testing.T) {
	repo, c, _, _ := setup(t)
	root := repo.Pub.RootMetadata()
	root.Signed.Version++
	root.Signed.Keys["malformed"] = &metadata.Key{Type: metadata.KeyTypeEd25519, Scheme: metadata.KeySchemeEd25519,
		Value: metadata.KeyVal{PublicKey: "abcd"}}
	root.Signed.Roles["timestamp"].KeyIDs = append([]string{"malformed"}, root.Signed.Roles["timestamp"].KeyIDs...)
	if err := publish.Sign(repo.Pub, "root", root); err != nil {
		t.Fatal(err)
	}
	if err := publish.WriteMetadata(repo.Pub, "2.root.json", root); err != nil {
		t.Fatal(err)
	}
	_, err := c.Refresh(context.Background())
	if err == nil || !strings.Contains(err.Error(), "panic in metadata verification") {
		t.Fatalf("Refresh() = %v, want a recovered panic", err)
	}
}
