// SPDX-License-Identifier: Apache-2.0

package publish_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/fieldgate/fieldgate/tuf/publish"
)

// keyFiles lists the file names under dir (relative, sorted), or nil.
func keyFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	slices.Sort(out)
	return out
}

// TestRotateDelegatedRetiresLikeRotate: the keys a delegated role's
// rotation (or delegate with ReplaceKeys) replaces follow rotate's rule:
// removed, private and public file, unless KeepRetired, which moves them
// to DIR/keys/retired.
func TestRotateDelegatedRetiresLikeRotate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	r, err := publish.Init(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Delegate("acme", publish.Delegation{Paths: []string{"acme-io16/*"}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	roleKeys := filepath.Join(dir, "keys", "acme")
	first := keyFiles(t, roleKeys)
	if len(first) != 2 {
		t.Fatalf("the role's keys directory holds %v, want a private and a public key file", first)
	}

	// Without KeepRetired: removed.
	if err := r.RotateDelegated("acme", nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	second := keyFiles(t, roleKeys)
	if len(second) != 2 || slices.Contains(second, first[0]) || slices.Contains(second, first[1]) {
		t.Errorf("after the rotation the role's keys directory holds %v, want two new files and none of %v", second, first)
	}
	if got := keyFiles(t, filepath.Join(dir, "keys", "retired")); got != nil {
		t.Errorf("keys/retired holds %v without KeepRetired", got)
	}

	// With KeepRetired: moved to DIR/keys/retired, named after the role.
	o := testOptions()
	o.KeepRetired = true
	r, err = publish.OpenWith(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.RotateDelegated("acme", nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	want := []string{"acme-" + second[0], "acme-" + second[1]}
	if got := keyFiles(t, filepath.Join(dir, "keys", "retired")); !slices.Equal(got, want) {
		t.Errorf("with KeepRetired keys/retired holds %v, want %v", got, want)
	}
	third := keyFiles(t, roleKeys)

	// delegate --replace-keys (a vendor's public key) without KeepRetired:
	// the local keys are removed, the retired ones left alone.
	r, err = publish.OpenWith(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	vk := newVendorKey(t)
	if err := r.Delegate("acme", publish.Delegation{Paths: []string{"acme-io16/*"}, Keys: []*metadata.Key{vk.pub}, ReplaceKeys: true}); err != nil {
		t.Fatal(err)
	}
	if got := keyFiles(t, roleKeys); got != nil {
		t.Errorf("after delegate --replace-keys to the vendor's key, the role's keys directory holds %v (was %v), want none", got, third)
	}
	if got := keyFiles(t, filepath.Join(dir, "keys", "retired")); !slices.Equal(got, want) {
		t.Errorf("keys/retired holds %v, want still %v", got, want)
	}

	// A keys directory given with --keys-dir belongs to whoever gave it:
	// never touched.
	own := filepath.Join(t.TempDir(), "own-keys")
	if err := r.Delegate("other", publish.Delegation{Paths: []string{"other/*"}, KeysDir: own}); err != nil {
		t.Fatal(err)
	}
	ownFiles := keyFiles(t, own)
	if err := r.RotateDelegated("other", []*metadata.Key{newVendorKey(t).pub}, 0); err != nil {
		t.Fatal(err)
	}
	if got := keyFiles(t, own); !slices.Equal(got, ownFiles) || len(got) == 0 {
		t.Errorf("rotate of a role with --keys-dir changed that directory: %v, was %v", got, ownFiles)
	}
}

// TestStatusVendorRole: a delegated role whose keys the vendor holds is
// noted as signed by its vendor, not warned about as lacking keys here; a
// top-level role lacking its key still is.
func TestStatusVendorRole(t *testing.T) {
	r := operatorRepo(t)
	key := newVendorKey(t)
	_, out := vendorRelease(t, []vendorKey{key}, map[string][]byte{vendorFw: []byte("acme firmware")}, publish.VendorSignOptions{}, nil)
	if err := r.Delegate("acme", publish.Delegation{Paths: []string{"acme-io16/*"}, Keys: []*metadata.Key{key.pub}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Delegate("local", publish.Delegation{Paths: []string{"local/*"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ImportRole(out); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	s := r.Status()
	if want := []string{"acme: signed by its vendor (import-role)"}; !slices.Equal(s.Notes, want) {
		t.Errorf("Status().Notes = %q, want %q", s.Notes, want)
	}
	for _, w := range s.Warnings {
		if strings.Contains(w, "signing keys available") {
			t.Errorf("Status() warns %q", w)
		}
	}

	// The snapshot key gone: warned, not noted.
	if err := os.RemoveAll(filepath.Join(r.Dir(), "keys", "snapshot")); err != nil {
		t.Fatal(err)
	}
	r, err := publish.OpenWith(r.Dir(), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	s = r.Status()
	if !slices.Contains(s.Warnings, "snapshot: only 0 of 1 signing keys available here") || len(s.Notes) != 1 {
		t.Errorf("without the snapshot key: warnings %q, notes %q; want the snapshot warned about, only acme noted", s.Warnings, s.Notes)
	}
}
