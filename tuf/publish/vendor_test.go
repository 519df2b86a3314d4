// SPDX-License-Identifier: Apache-2.0

package publish_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
)

const vendorFw = "acme-io16/fw-2.5.0.bin"

// vendorKey is a vendor's signing key, held in memory: the operator's
// repository only ever sees its public half.
type vendorKey struct {
	signer crypto.Signer
	pub    *metadata.Key
}

func newVendorKey(t *testing.T) vendorKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := metadata.KeyFromPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return vendorKey{priv, pub}
}

func (k vendorKey) id(t *testing.T) string {
	id, err := k.pub.ID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func custom(t *testing.T, hw, version string) []byte {
	t.Helper()
	b, err := tuf.MarshalCustom(tuf.Meta{Hardware: []string{hw}, Version: version})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// vendorRelease makes a vendor directory for role acme in its own temporary
// directory, adds the given targets (name -> content) and signs them.
func vendorRelease(t *testing.T, keys []vendorKey, targets map[string][]byte, o publish.VendorSignOptions, now func() time.Time) (*publish.Vendor, string) {
	t.Helper()
	vdir := filepath.Join(t.TempDir(), "vendor")
	var refs []string
	var pubs []*metadata.Key
	var signers []crypto.Signer
	for i, k := range keys {
		refs = append(refs, "key"+string(rune('1'+i)))
		pubs = append(pubs, k.pub)
		signers = append(signers, k.signer)
	}
	v, err := publish.InitVendor(vdir, "acme", publish.VendorOptions{Keys: refs, Public: pubs, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range targets {
		src := filepath.Join(t.TempDir(), "fw.bin")
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := v.Add(name, src, custom(t, "acme-io16-rev3", "2.5.0")); err != nil {
			t.Fatal(err)
		}
	}
	if o.Expires == 0 {
		o.Expires = 30 * 24 * time.Hour
	}
	if _, err := v.Sign(signers, o); err != nil {
		t.Fatal(err)
	}
	return v, v.OutDir()
}

func operatorRepo(t *testing.T) *publish.Repo {
	t.Helper()
	r, err := publish.Init(filepath.Join(t.TempDir(), "repo"), vendorTestOptions())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// gateway refreshes a fresh-or-continuing client of r's repository.
type vendorGateway struct {
	c   *tuf.Client
	srv *httptest.Server
}

func newGateway(t *testing.T, r *publish.Repo) *vendorGateway {
	t.Helper()
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
	return &vendorGateway{c: c, srv: srv}
}

func (g *vendorGateway) refresh(t *testing.T) *tuf.Snapshot {
	t.Helper()
	snap, err := g.c.Refresh(context.Background())
	if err != nil {
		t.Fatalf("Refresh() = %v", err)
	}
	return snap
}

func target(snap *tuf.Snapshot, name string) (tuf.Target, bool) {
	for _, tg := range snap.Targets {
		if tg.Name == name {
			return tg, true
		}
	}
	return tuf.Target{}, false
}

func roleRefused(snap *tuf.Snapshot, role string) bool {
	for _, r := range snap.Rejected {
		if r.Role == role && r.Name == "" {
			return true
		}
	}
	return false
}

// TestVendorSignsOwnRole: the operator delegates to the vendor's public key
// only, the vendor signs on its own "machine" (another directory, its key
// never given to the repository), the operator imports and commits, and a
// gateway accepts and fetches the vendor's target.
func TestVendorSignsOwnRole(t *testing.T) {
	r := operatorRepo(t)
	key := newVendorKey(t)
	fw := bytes.Repeat([]byte("acme firmware "), 3000)
	_, out := vendorRelease(t, []vendorKey{key}, map[string][]byte{vendorFw: fw}, publish.VendorSignOptions{}, nil)

	if err := r.Delegate("acme", publish.Delegation{Paths: []string{"acme-io16/*"}, Keys: []*metadata.Key{key.pub}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err == nil || !strings.Contains(err.Error(), "import-role") {
		t.Errorf("Commit() before the vendor's metadata is imported = %v, want an error naming import-role", err)
	}
	imp, err := r.ImportRole(out)
	if err != nil {
		t.Fatalf("ImportRole() = %v", err)
	}
	if imp.Role != "acme" || imp.Version != 1 || len(imp.Targets) != 1 || len(imp.KeyIDs) != 1 || imp.KeyIDs[0] != key.id(t) {
		t.Errorf("ImportRole() = %+v, want acme v1 with %s signed by %s", imp, vendorFw, key.id(t))
	}
	if err := r.Commit(); err != nil {
		t.Fatalf("Commit() = %v", err)
	}
	// The published role is the vendor's bytes, unchanged.
	sent, _ := os.ReadFile(filepath.Join(out, "acme.json"))
	published, err := os.ReadFile(filepath.Join(r.MetadataDir(), "1.acme.json"))
	if err != nil || !bytes.Equal(sent, published) {
		t.Errorf("1.acme.json differs from the vendor's acme.json (err %v)", err)
	}
	// No private key of the role exists in the operator's directory.
	filepath.WalkDir(r.Dir(), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(p, "acme") && strings.HasSuffix(p, ".pem") {
			t.Errorf("operator's directory holds %s", p)
		}
		return nil
	})

	g := newGateway(t, r)
	snap := g.refresh(t)
	tg, ok := target(snap, vendorFw)
	if !ok || tg.Role != "acme" {
		t.Fatalf("gateway targets = %v (rejected %v), want %s from role acme", snap.Targets, snap.Rejected, vendorFw)
	}
	path, err := g.c.Fetch(context.Background(), tg, nil)
	if err != nil {
		t.Fatalf("Fetch() = %v", err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, fw) {
		t.Errorf("fetched target differs from the vendor's file")
	}

	// A second release: version 2 replaces the target.
	_, out2 := vendorRelease(t, []vendorKey{key}, map[string][]byte{"acme-io16/fw-2.6.0.bin": []byte("v2.6")},
		publish.VendorSignOptions{Version: 2}, nil)
	if _, err := r.ImportRole(out2); err != nil {
		t.Fatalf("ImportRole(v2) = %v", err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	snap = g.refresh(t)
	if _, ok := target(snap, "acme-io16/fw-2.6.0.bin"); !ok || snap.Versions["acme"] != 2 {
		t.Errorf("after v2: targets %v, acme version %d; want fw-2.6.0.bin at version 2", snap.Targets, snap.Versions["acme"])
	}
	if _, ok := target(snap, vendorFw); ok {
		t.Errorf("after v2 the gateway still lists %s", vendorFw)
	}
}

// TestImportRoleRefuses: each bad delivery fails with an error naming the
// problem, and nothing is staged.
func TestImportRoleRefuses(t *testing.T) {
	key, other := newVendorKey(t), newVendorKey(t)
	fw := []byte("acme firmware")
	one := map[string][]byte{vendorFw: fw}
	for _, tc := range []struct {
		name    string
		release func(t *testing.T) string // returns VDIR/out
		want    string
	}{
		{"wrong key", func(t *testing.T) string {
			_, out := vendorRelease(t, []vendorKey{other}, one, publish.VendorSignOptions{Version: 2}, nil)
			return out
		}, "signatures do not meet"},
		{"forged metadata", func(t *testing.T) string {
			_, out := vendorRelease(t, []vendorKey{key}, one, publish.VendorSignOptions{Version: 2}, nil)
			p := filepath.Join(out, "acme.json")
			data, _ := os.ReadFile(p)
			data = bytes.Replace(data, []byte(`"version": 2`), []byte(`"version": 7`), 1)
			os.WriteFile(p, data, 0o644)
			return out
		}, "signatures do not meet"},
		{"outside paths", func(t *testing.T) string {
			_, out := vendorRelease(t, []vendorKey{key}, map[string][]byte{"plc/fw-9.9.bin": fw}, publish.VendorSignOptions{Version: 2}, nil)
			return out
		}, "outside the paths delegated to role acme"},
		{"rollback", func(t *testing.T) string {
			_, out := vendorRelease(t, []vendorKey{key}, one, publish.VendorSignOptions{Version: 1}, nil)
			return out
		}, "not greater than the published version 1"},
		{"missing target file", func(t *testing.T) string {
			_, out := vendorRelease(t, []vendorKey{key}, one, publish.VendorSignOptions{Version: 2}, nil)
			os.Remove(filepath.Join(out, "targets", vendorFw))
			return out
		}, "does not exist"},
		{"changed target file", func(t *testing.T) string {
			_, out := vendorRelease(t, []vendorKey{key}, one, publish.VendorSignOptions{Version: 2}, nil)
			os.WriteFile(filepath.Join(out, "targets", vendorFw), []byte("acme firmwarX"), 0o644)
			return out
		}, "does not match its metadata"},
		{"target file a symlink", func(t *testing.T) string {
			_, out := vendorRelease(t, []vendorKey{key}, one, publish.VendorSignOptions{Version: 2}, nil)
			p := filepath.Join(out, "targets", vendorFw)
			os.Rename(p, p+".real")
			os.Symlink(filepath.Base(p)+".real", p)
			return out
		}, "refused"},
		{"expires too soon", func(t *testing.T) string {
			past := func() time.Time { return time.Now().Add(-47 * time.Hour) }
			_, out := vendorRelease(t, []vendorKey{key}, one, publish.VendorSignOptions{Version: 2, Expires: 48 * time.Hour}, past)
			return out
		}, "less than 1h0m0s from now"},
		{"two role files", func(t *testing.T) string {
			_, out := vendorRelease(t, []vendorKey{key}, one, publish.VendorSignOptions{Version: 2}, nil)
			os.WriteFile(filepath.Join(out, "mirror.json"), []byte("{}"), 0o644)
			return out
		}, "want exactly one ROLE.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := operatorRepo(t)
			if err := r.Delegate("acme", publish.Delegation{Paths: []string{"acme-io16/*"}, Keys: []*metadata.Key{key.pub}}); err != nil {
				t.Fatal(err)
			}
			_, out := vendorRelease(t, []vendorKey{key}, map[string][]byte{"acme-io16/fw-2.4.0.bin": []byte("old")}, publish.VendorSignOptions{}, nil)
			if _, err := r.ImportRole(out); err != nil {
				t.Fatal(err)
			}
			if err := r.Commit(); err != nil {
				t.Fatal(err)
			}
			before := stagedState(t, r)
			_, err := r.ImportRole(tc.release(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ImportRole() = %v, want an error containing %q", err, tc.want)
			}
			if after := stagedState(t, r); after != before {
				t.Errorf("a refused import changed the staged state:\n%s\nwant\n%s", after, before)
			}
			if err := r.Commit(); err != nil {
				t.Fatal(err)
			}
			if md := r.DelegatedMetadata("acme"); md.Signed.Version != 1 || md.Signed.Targets[vendorFw] != nil {
				t.Errorf("after a refused import, commit published acme version %d with %d targets", md.Signed.Version, len(md.Signed.Targets))
			}
		})
	}
}

// stagedState lists DIR/staged and the targets directory: what an import
// may change.
func stagedState(t *testing.T, r *publish.Repo) string {
	t.Helper()
	var b strings.Builder
	for _, d := range []string{filepath.Join(r.Dir(), "staged"), r.TargetsDir()} {
		filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			data, _ := os.ReadFile(p)
			b.WriteString(p + " " + string(data) + "\n")
			return nil
		})
	}
	return b.String()
}

// TestRotateVendorRole: after the operator rotates the vendor's role to
// new keys (threshold 2 of 2), the gateway refuses the role signed with the
// old key, the import refuses a new version signed with the old key or with
// only one of the new keys, and accepts one signed with both.
func TestRotateVendorRole(t *testing.T) {
	r := operatorRepo(t)
	old, k2, k3 := newVendorKey(t), newVendorKey(t), newVendorKey(t)
	fw := []byte("acme firmware 2.5.0")
	v, out := vendorRelease(t, []vendorKey{old}, map[string][]byte{vendorFw: fw}, publish.VendorSignOptions{}, nil)
	if err := r.Delegate("acme", publish.Delegation{Paths: []string{"acme-io16/*"}, Keys: []*metadata.Key{old.pub}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ImportRole(out); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	g := newGateway(t, r)
	if snap := g.refresh(t); snap.Versions["acme"] != 1 {
		t.Fatalf("before rotation: acme version %d (rejected %v), want 1", snap.Versions["acme"], snap.Rejected)
	}

	if err := r.RotateDelegated("acme", []*metadata.Key{k2.pub, k3.pub}, 3); err == nil {
		t.Errorf("RotateDelegated(threshold 3 of 2 keys) = nil, want an error")
	}
	if err := r.RotateDelegated("acme", []*metadata.Key{old.pub}, 0); err == nil {
		t.Errorf("RotateDelegated(the same key) = nil, want an error")
	}
	if err := r.RotateDelegated("acme", nil, 0); err == nil || !strings.Contains(err.Error(), "--key-file") {
		t.Errorf("RotateDelegated(no keys) of a vendor role = %v, want an error asking for the public keys", err)
	}
	tv := r.TargetsMetadata().Signed.Version
	if err := r.RotateDelegated("acme", []*metadata.Key{k2.pub, k3.pub}, 2); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	tm := r.TargetsMetadata()
	if tm.Signed.Version != tv+1 {
		t.Errorf("targets version after rotation = %d, want %d", tm.Signed.Version, tv+1)
	}
	dr := tm.Signed.Delegations.Roles[0]
	if dr.Threshold != 2 || len(dr.KeyIDs) != 2 || tm.Signed.Delegations.Keys[old.id(t)] != nil {
		t.Errorf("delegation after rotation = %+v, keys %v; want k2 and k3 at threshold 2, old key gone", dr, tm.Signed.Delegations.Keys)
	}
	// The published role is still signed with the old key: refused.
	snap := g.refresh(t)
	if !roleRefused(snap, "acme") {
		t.Errorf("after rotation the gateway did not refuse acme signed with the old key: rejected %v", snap.Rejected)
	}
	if _, ok := target(snap, vendorFw); ok {
		t.Errorf("after rotation the gateway lists %s, signed with the old key", vendorFw)
	}

	// The vendor signs version 2 with the old key: refused at import.
	if _, err := v.Sign([]crypto.Signer{old.signer}, publish.VendorSignOptions{Expires: 30 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ImportRole(v.OutDir()); err == nil || !strings.Contains(err.Error(), "signatures do not meet") {
		t.Errorf("ImportRole(signed with the old key) = %v, want a signature error", err)
	}
	// With one of the two new keys: below threshold.
	if err := v.SetKeys([]string{"k2", "k3"}, []*metadata.Key{k2.pub, k3.pub}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Sign([]crypto.Signer{old.signer}, publish.VendorSignOptions{}); err == nil {
		t.Errorf("Vendor.Sign(a key not recorded) = nil, want an error")
	}
	if _, err := v.Sign([]crypto.Signer{k2.signer}, publish.VendorSignOptions{Expires: 30 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ImportRole(v.OutDir()); err == nil || !strings.Contains(err.Error(), "threshold 2") {
		t.Errorf("ImportRole(1 of 2 new keys) = %v, want a threshold error", err)
	}
	// With both: accepted, and the gateway follows.
	rel, err := v.Sign([]crypto.Signer{k2.signer, k3.signer}, publish.VendorSignOptions{Expires: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ImportRole(v.OutDir()); err != nil {
		t.Fatalf("ImportRole(2 of 2 new keys) = %v", err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	snap = g.refresh(t)
	if tg, ok := target(snap, vendorFw); !ok || tg.Role != "acme" || snap.Versions["acme"] != rel.Version {
		t.Errorf("after the new keys signed: targets %v, acme version %d, rejected %v; want %s at version %d",
			snap.Targets, snap.Versions["acme"], snap.Rejected, vendorFw, rel.Version)
	}
}

// TestDelegateKeyChangeIsExplicit is the regression test for delegate on an
// existing role silently keeping its old keys: a different keys directory,
// other public keys or another threshold are refused without ReplaceKeys,
// and nothing changes.
func TestDelegateKeyChangeIsExplicit(t *testing.T) {
	r := operatorRepo(t)
	dirA, dirB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	paths := []string{"acme-io16/*"}
	if err := r.Delegate("acme", publish.Delegation{Paths: paths, KeysDir: dirA}); err != nil {
		t.Fatal(err)
	}
	if err := r.Delegate("other", publish.Delegation{Paths: []string{"other/*"}, KeysDir: dirB}); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	keyIDs := func() string {
		b, _ := json.Marshal(r.TargetsMetadata().Signed.Delegations.Roles[0])
		return string(b)
	}
	before := keyIDs()
	fresh := filepath.Join(t.TempDir(), "fresh")
	for _, d := range []publish.Delegation{
		{Paths: paths, KeysDir: dirB},
		{Paths: paths, KeysDir: fresh},
		{Paths: paths, Keys: []*metadata.Key{newVendorKey(t).pub}},
		{Paths: paths, Threshold: 2},
	} {
		err := r.Delegate("acme", d)
		if err == nil || !strings.Contains(err.Error(), "--replace-keys") {
			t.Errorf("Delegate(existing, %+v) = %v, want a refusal naming --replace-keys", d, err)
		}
	}
	if _, err := os.Stat(fresh); err == nil {
		t.Errorf("a refused Delegate generated keys in %s", fresh)
	}
	// Same keys, new paths: fine.
	if err := r.Delegate("acme", publish.Delegation{Paths: []string{"acme-io16/*", "acme-io8/*"}, KeysDir: dirA}); err != nil {
		t.Errorf("Delegate(same keys, new paths) = %v", err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	after := r.TargetsMetadata().Signed.Delegations.Roles[0]
	if got := keyIDs(); !strings.Contains(got, "acme-io8/*") || after.KeyIDs[0] != r.TargetsMetadata().Signed.Delegations.Roles[0].KeyIDs[0] || strings.Replace(got, `,"acme-io8/*"`, "", 1) != before {
		t.Errorf("delegation after a path update = %s, want %s plus acme-io8/*", got, before)
	}
	// Explicit: the vendor's public key replaces the local one.
	vk := newVendorKey(t)
	if err := r.Delegate("acme", publish.Delegation{Paths: paths, Keys: []*metadata.Key{vk.pub}, ReplaceKeys: true}); err != nil {
		t.Fatalf("Delegate(ReplaceKeys) = %v", err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := r.TargetsMetadata().Signed.Delegations.Roles[0].KeyIDs; len(got) != 1 || got[0] != vk.id(t) {
		t.Errorf("delegation keys after --replace-keys = %v, want [%s]", got, vk.id(t))
	}
}

func TestParsePublicKey(t *testing.T) {
	k := newVendorKey(t)
	pemFile := filepath.Join(t.TempDir(), "vendor.pub")
	pub, _ := k.pub.ToPublicKey()
	if err := publish.WritePublicKeyFile(pemFile, pub); err != nil {
		t.Fatal(err)
	}
	pemData, _ := os.ReadFile(pemFile)
	tufJSON, _ := json.Marshal(k.pub)
	for _, tc := range []struct {
		name string
		data []byte
		ok   bool
	}{
		{"PEM", pemData, true},
		{"TUF key", tufJSON, true},
		{"private key", []byte("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"), false},
		{"short ed25519", []byte(`{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"abcd"}}`), false},
		{"unknown scheme", []byte(`{"keytype":"ed25519","scheme":"x","keyval":{"public":"` + strings.Repeat("ab", 32) + `"}}`), false},
		{"garbage", []byte("hello"), false},
	} {
		got, err := publish.ParsePublicKey(tc.data)
		if !tc.ok {
			if err == nil {
				t.Errorf("ParsePublicKey(%s) = nil error, want one", tc.name)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePublicKey(%s) = %v", tc.name, err)
			continue
		}
		if id, _ := got.ID(); id != k.id(t) {
			t.Errorf("ParsePublicKey(%s) id = %s, want %s", tc.name, id, k.id(t))
		}
	}
	if _, err := publish.ParsePublicKey([]byte("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n")); err == nil || !strings.Contains(err.Error(), "private key") {
		t.Errorf("ParsePublicKey(private key) = %v, want an error saying it is a private key", err)
	}
}

// vendorTestOptions are the operator repository's options in these tests.
func vendorTestOptions() publish.Options { return testOptions() }
