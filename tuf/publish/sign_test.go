// SPDX-License-Identifier: Apache-2.0

package publish_test

import (
	"context"
	"crypto"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// testKeys is the KeyAccess of test repositories: plaintext key files,
// explicitly (no passphrase prompts, no scrypt per key).
var testKeys = publish.KeyAccess{InsecurePlaintextKeys: true}

// testOptions are the options of a test repository: defaults, testKeys.
func testOptions() publish.Options { return publish.Options{Keys: testKeys} }

// holder is a person holding one private key in their own directory
// (their own machine, their own USB stick), with their own passphrase.
type holder struct {
	name, key, pass string
}

func newHolder(t *testing.T, name string) holder {
	t.Helper()
	h := holder{name: name, key: filepath.Join(t.TempDir(), name, "root.pem"), pass: name + "'s passphrase"}
	if _, err := publish.GenerateKeyFile(h.key, publish.KeyEd25519, fixedPassphrase(h.pass, nil)); err != nil {
		t.Fatal(err)
	}
	return h
}

// public reads the holder's public key file, all they hand over.
func (h holder) public(t *testing.T) *metadata.Key {
	t.Helper()
	k, err := publish.PublicKey(publish.PublicKeyPath(h.key), publish.KeyAccess{})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sign opens the repository as the holder would on their machine and adds
// their signature to the staged role.
func (h holder) sign(t *testing.T, dir, role string) publish.StagedRole {
	t.Helper()
	r, err := publish.OpenWith(dir, publish.Options{Keys: testKeys, Command: "sign"})
	if err != nil {
		t.Fatal(err)
	}
	s, c, err := publish.OpenKey(h.key, fixedPassphrase(h.pass, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := r.SignStaged(role, s)
	if err != nil {
		t.Fatalf("%s signs %s: %v", h.name, role, err)
	}
	return st
}

func counts(s publish.StagedRole) []int {
	var n []int
	for _, c := range s.Counts {
		n = append(n, len(c.Valid), c.Threshold)
	}
	return n
}

// holdersGateway returns a tuf.Client that trusts dir's 1.root.json.
func holdersGateway(t *testing.T, r *publish.Repo) *tuf.Client {
	t.Helper()
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(srv.Close)
	gw := t.TempDir()
	c, err := tuf.New(tuf.Config{MetadataURL: srv.URL + "/metadata", TargetsURL: srv.URL + "/targets",
		MetadataDir: filepath.Join(gw, "metadata"), BlobDir: filepath.Join(gw, "blobs"), TrustedRoot: r.RootPath()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return data
}

// TestRootKeysHeldApart: two people each generate a root key in their own
// directory and hand over only the public key; the repository is created
// with root threshold 2 and can publish nothing until both have signed root
// version 1. Then both root keys are replaced by two new holders' keys: root
// version 2 needs the old threshold (A and B) and the new one (C and D). A
// gateway that trusts 1.root.json follows it.
func TestRootKeysHeldApart(t *testing.T) {
	a, b := newHolder(t, "alice"), newHolder(t, "bob")
	dir := filepath.Join(t.TempDir(), "repo")
	opts := testOptions()
	opts.RootPublicKeys = []*metadata.Key{a.public(t), b.public(t)}
	opts.Threshold = map[string]int{"root": 2}
	opts.Command = "init"
	r, err := publish.Init(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if r.RootPublished() {
		t.Fatal("RootPublished() after Init with root public keys = true, want false")
	}
	if keys, _ := filepath.Glob(filepath.Join(dir, "keys", "root", "*.pem")); len(keys) != 0 {
		t.Errorf("the repository holds root private keys %v, want none", keys)
	}
	md := r.MetadataDir()
	commitRefused := func(want string) {
		t.Helper()
		before := fileBytes(t, filepath.Join(md, "timestamp.json"))
		r, err := publish.OpenWith(dir, publish.Options{Keys: testKeys, Command: "commit"})
		if err != nil {
			t.Fatal(err)
		}
		err = r.Commit()
		if !errors.Is(err, publish.ErrBelowThreshold) || !strings.Contains(err.Error(), want) {
			t.Errorf("Commit() = %v, want ErrBelowThreshold saying %q", err, want)
		}
		if after := fileBytes(t, filepath.Join(md, "timestamp.json")); string(after) != string(before) {
			t.Error("a refused commit changed timestamp.json")
		}
	}
	commitRefused("0 of 2 signatures by the keys of root version 1")
	if _, err := os.Stat(filepath.Join(md, "1.root.json")); err == nil {
		t.Fatal("1.root.json published without signatures")
	}

	if st := a.sign(t, dir, "root"); !slices.Equal(counts(st), []int{1, 2}) {
		t.Errorf("after alice signs: %v, want 1 of 2", st)
	}
	commitRefused("1 of 2 signatures by the keys of root version 1")
	if _, err := os.Stat(filepath.Join(md, "1.root.json")); err == nil {
		t.Fatal("1.root.json published below threshold")
	}
	// A key that is not a root key is refused.
	stranger := newHolder(t, "mallory")
	r, _ = publish.OpenWith(dir, publish.Options{Keys: testKeys})
	ms, mc, _ := publish.OpenKey(stranger.key, fixedPassphrase(stranger.pass, nil))
	defer mc.Close()
	if _, err := r.SignStaged("root", ms); err == nil || !strings.Contains(err.Error(), "is not a key of root") {
		t.Errorf("SignStaged(root, stranger) = %v, want refused", err)
	}
	if st := b.sign(t, dir, "root"); !slices.Equal(counts(st), []int{2, 2}) || !st.Ready() {
		t.Errorf("after bob signs: %v, want 2 of 2", st)
	}
	r, err = publish.OpenWith(dir, publish.Options{Keys: testKeys, Command: "commit"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AddTargetBytes("fw-1.bin", []byte("one"), meta); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatalf("Commit() with both root signatures: %v", err)
	}
	if !r.RootPublished() || len(r.StagedSignatures()) != 0 {
		t.Errorf("after commit: RootPublished %v, staged %v", r.RootPublished(), r.StagedSignatures())
	}
	c := holdersGateway(t, r)
	snap, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatalf("gateway refresh after root v1: %v", err)
	}
	if len(snap.Targets) != 1 || snap.Versions["root"] != 1 {
		t.Fatalf("gateway sees %d targets, root %d; want 1 target, root 1", len(snap.Targets), snap.Versions["root"])
	}

	// Rotation: C and D replace A and B.
	cc, d := newHolder(t, "carol"), newHolder(t, "dave")
	res, err := r.RotateWith("root", publish.RotateOptions{PublicKeys: []*metadata.Key{cc.public(t), d.public(t)}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Published || !slices.Equal(counts(res.Staged), []int{0, 2, 0, 2}) {
		t.Fatalf("RotateWith = %+v, want staged with 0 of 2 new and 0 of 2 old signatures", res)
	}
	a.sign(t, dir, "root")
	b.sign(t, dir, "root")
	st := cc.sign(t, dir, "root")
	if !slices.Equal(counts(st), []int{1, 2, 2, 2}) {
		t.Errorf("root v2 after alice, bob, carol: %v, want 1 of 2 new, 2 of 2 old", st)
	}
	commitRefused("1 of 2 signatures by the keys of root version 2")
	if _, err := os.Stat(filepath.Join(md, "2.root.json")); err == nil {
		t.Fatal("2.root.json published below the new root's threshold")
	}
	d.sign(t, dir, "root")
	r, err = publish.OpenWith(dir, publish.Options{Keys: testKeys, Command: "commit"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AddTargetBytes("fw-2.bin", []byte("two"), meta); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatalf("Commit() of root v2: %v", err)
	}
	snap, err = holdersGateway(t, r).Refresh(context.Background())
	if err != nil {
		t.Fatalf("a new gateway from 1.root.json: %v", err)
	}
	if len(snap.Targets) != 2 || snap.Versions["root"] != 2 {
		t.Errorf("new gateway sees %d targets, root %d; want 2, root 2", len(snap.Targets), snap.Versions["root"])
	}
	snap, err = c.Refresh(context.Background())
	if err != nil {
		t.Fatalf("the first gateway after the rotation: %v", err)
	}
	if len(snap.Targets) != 2 || snap.Versions["root"] != 2 {
		t.Errorf("first gateway sees %d targets, root %d; want 2, root 2", len(snap.Targets), snap.Versions["root"])
	}

	// The old holders alone can no longer publish a root.
	r, _ = publish.OpenWith(dir, publish.Options{Keys: testKeys})
	as, ac, _ := publish.OpenKey(a.key, fixedPassphrase(a.pass, nil))
	defer ac.Close()
	if _, err := r.SignStaged("root", as); err == nil {
		t.Error("a retired root key signed root version 3")
	}
}

// TestTargetsThresholdAcrossHosts: targets with threshold 2, one key here
// and one held by another person: commit refuses until the other has
// signed the staged targets with sign; a change after that signature drops
// it.
func TestTargetsThresholdAcrossHosts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	r, err := publish.Init(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	other := newHolder(t, "erin")
	res, err := r.RotateWith("targets", publish.RotateOptions{PublicKeys: []*metadata.Key{other.public(t)}})
	if err != nil || !res.Published {
		t.Fatalf("RotateWith(targets) = %+v, %v", res, err)
	}
	if err := r.Commit(); err == nil || !errors.Is(err, publish.ErrBelowThreshold) || !strings.Contains(err.Error(), "role targets has 0 of 1 signatures") {
		t.Fatalf("Commit() with the targets key elsewhere = %v, want refused naming targets", err)
	}
	if err := r.AddTargetBytes("fw.bin", []byte("fw"), meta); err != nil {
		t.Fatal(err)
	}
	st := other.sign(t, dir, "targets")
	if !st.Ready() || st.Version != 2 {
		t.Fatalf("staged targets after erin signs: %v", st)
	}
	// A change after the signature: the staged version no longer matches.
	r, _ = publish.OpenWith(dir, testOptions())
	if err := r.AddTargetBytes("fw2.bin", []byte("fw2"), meta); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); !errors.Is(err, publish.ErrBelowThreshold) {
		t.Fatalf("Commit() after a change to signed targets = %v, want ErrBelowThreshold", err)
	}
	other.sign(t, dir, "targets")
	r, _ = publish.OpenWith(dir, testOptions())
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := r.TargetsMetadata().Signed.Targets; len(got) != 2 {
		t.Errorf("published targets %v, want fw.bin and fw2.bin", got)
	}
	snap, err := holdersGateway(t, r).Refresh(context.Background())
	if err != nil || len(snap.Targets) != 2 {
		t.Fatalf("gateway: %v, %v", snap, err)
	}
}

// TestSignersFromKeyRefs: a key given for one command (--key REF, e.g. a
// token's) signs the roles that list it, like a key file here.
func TestSignersFromKeyRefs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	r, err := publish.Init(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	ts := newHolder(t, "online")
	if res, err := r.RotateWith("timestamp", publish.RotateOptions{PublicKeys: []*metadata.Key{ts.public(t)}}); err != nil || !res.Published {
		t.Fatalf("RotateWith(timestamp) = %+v, %v", res, err)
	}
	r, _ = publish.OpenWith(dir, testOptions())
	if err := r.Timestamp(); !errors.Is(err, publish.ErrMissingKeys) {
		t.Fatalf("Timestamp() without the timestamp key = %v, want ErrMissingKeys", err)
	}
	s, c, err := publish.OpenKey(ts.key, fixedPassphrase(ts.pass, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o := testOptions()
	o.Signers = []crypto.Signer{s}
	if r, err = publish.OpenWith(dir, o); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatalf("Commit() with the timestamp key given: %v", err)
	}
	if _, err := holdersGateway(t, r).Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	// export --expires signs the bundle's timestamp with the given key too.
	if _, err := r.ExportWith(filepath.Join(t.TempDir(), "bundle"), publish.ExportOptions{Expires: 48 * time.Hour}); err != nil {
		t.Errorf("ExportWith(--expires) with the timestamp key given: %v", err)
	}
	r, _ = publish.OpenWith(dir, testOptions())
	if _, err := r.ExportWith(filepath.Join(t.TempDir(), "bundle"), publish.ExportOptions{Expires: 48 * time.Hour}); !errors.Is(err, publish.ErrBundleExpiry) {
		t.Errorf("ExportWith(--expires) without the timestamp key = %v, want ErrBundleExpiry", err)
	}
}

// TestMergeStagedTargets: a targets key holder signs a copy of the
// repository; the operator adds that signature (MergeStaged) and commits.
// A copy of other content, or a signature by a key targets does not list,
// is refused.
func TestMergeStagedTargets(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	r, err := publish.Init(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	erin := newHolder(t, "erin")
	if _, err := r.RotateWith("targets", publish.RotateOptions{PublicKeys: []*metadata.Key{erin.public(t)}}); err != nil {
		t.Fatal(err)
	}
	if err := r.AddTargetBytes("fw.bin", []byte("fw"), meta); err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(cp, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	erin.sign(t, cp, "targets")
	signed, err := os.ReadFile(filepath.Join(cp, "staged", "signing", "targets.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The operator changed the staged targets meanwhile: refused.
	r, _ = publish.OpenWith(dir, testOptions())
	if err := r.AddTargetBytes("late.bin", []byte("late"), meta); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.MergeStaged("targets", signed); err == nil || !strings.Contains(err.Error(), "differs") {
		t.Errorf("MergeStaged after a change = %v, want refused", err)
	}
	if err := r.Remove("late.bin"); err != nil {
		t.Fatal(err)
	}
	forged := []byte(strings.Replace(string(signed), `"keyid": "`+mustID(t, erin.public(t)), `"keyid": "`+strings.Repeat("a", 64), 1))
	if string(forged) == string(signed) {
		t.Fatal("the test's forgery changed nothing")
	}
	if _, _, err := r.MergeStaged("targets", forged); err == nil || !strings.Contains(err.Error(), "not a key of targets") {
		t.Errorf("MergeStaged with a signature by an unlisted key = %v, want refused", err)
	}
	st, added, err := r.MergeStaged("targets", signed)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Ready() || len(added) != 1 || added[0] != mustID(t, erin.public(t)) {
		t.Fatalf("MergeStaged = %v, added %v", st, added)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	if snap, err := holdersGateway(t, r).Refresh(context.Background()); err != nil || len(snap.Targets) != 1 {
		t.Fatalf("gateway: %v %v", snap, err)
	}
}
