// SPDX-License-Identifier: Apache-2.0

//go:build cgo

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
	"github.com/fieldgate/fieldgate/tuf/publish/pkcs11/pkcs11test"
)

// TestInteropKeysHeldApart is issue 18's outside check, through the
// commands only: root keys split between two holders' directories
// (threshold 2), the targets key in a SoftHSM2 token, a vendor role
// signed in the vendor's own directory with its own encrypted key, and a
// key rotated at each level (root, targets to a second token key, the
// vendor role, snapshot, timestamp). A gateway that trusts 1.root.json
// follows every step and fetches the vendor's target; the retired keys are
// refused. Afterwards no directory of the run holds a plaintext private
// key, and log lists every signing event.
func TestInteropKeysHeldApart(t *testing.T) {
	module := pkcs11test.SoftHSM(t, "release")
	w := t.TempDir()
	repo := filepath.Join(w, "operator", "repo")
	md := filepath.Join(repo, "repository", "metadata")
	alice, bob, vendor := filepath.Join(w, "alice"), filepath.Join(w, "bob"), filepath.Join(w, "vendor")
	vdir := filepath.Join(vendor, "acme")
	pinFile := filepath.Join(w, "operator", "token-pin")
	if err := os.MkdirAll(filepath.Dir(pinFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pinFile, []byte(pkcs11test.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const (
		alicePass  = "alice's passphrase"
		bobPass    = "bob's passphrase"
		repoPass   = "operator's passphrase"
		vendorPass = "vendor's passphrase"
	)
	run := func(pass string, args ...string) string { t.Helper(); return mustRunAs(t, pass, args...) }
	refused := func(want, pass string, args ...string) {
		t.Helper()
		if _, err := runAs(t, pass, args...); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v, want refused: %q", err, want)
		} else {
			t.Logf("refused as it must be: %v", err)
		}
	}
	keyID := func(pub string) string {
		t.Helper()
		k, err := publish.PublicKey(pub, publish.KeyAccess{})
		if err != nil {
			t.Fatal(err)
		}
		id, _ := k.ID()
		return id
	}
	// The signing events the log must list: role, version, key id.
	type event struct {
		role    string
		version int64
		keyID   string
	}
	var events []event
	expect := func(role string, version int64, ids ...string) {
		for _, id := range ids {
			events = append(events, event{role, version, id})
		}
	}

	// Each holder makes their root keys where they keep them (two each:
	// the second for the rotation) and hands over only the .pub.
	rootKey := func(dir string, n int) string { return filepath.Join(dir, "root-"+strconv.Itoa(n)+".pem") }
	for _, h := range []struct{ dir, pass string }{{alice, alicePass}, {bob, bobPass}} {
		for n := 1; n <= 2; n++ {
			run(h.pass, "keygen", "--out", rootKey(h.dir, n))
		}
	}
	a1, a2 := keyID(publish.PublicKeyPath(rootKey(alice, 1))), keyID(publish.PublicKeyPath(rootKey(alice, 2)))
	b1, b2 := keyID(publish.PublicKeyPath(rootKey(bob, 1))), keyID(publish.PublicKeyPath(rootKey(bob, 2)))
	pubOnly := filepath.Join(w, "operator", "handed-over")
	for _, f := range []string{rootKey(alice, 1), rootKey(bob, 1), rootKey(alice, 2), rootKey(bob, 2)} {
		copyFile(t, publish.PublicKeyPath(f), filepath.Join(pubOnly, filepath.Base(filepath.Dir(f))+"-"+filepath.Base(publish.PublicKeyPath(f))))
	}
	handed := func(who string, n int) string { return filepath.Join(pubOnly, who+"-root-"+strconv.Itoa(n)+".pub") }

	// Root version 1: threshold 2, signed by both holders where they are.
	run(repoPass, "init", repo, "--threshold", "root=2", "--root-key-file", handed("alice", 1), "--root-key-file", handed("bob", 1))
	refused("0 of 2 signatures", repoPass, "commit", repo)
	run(alicePass, "sign", repo, "root", "--key", rootKey(alice, 1))
	refused("1 of 2 signatures", repoPass, "commit", repo)
	run(bobPass, "sign", repo, "root", "--key", rootKey(bob, 1))
	run(repoPass, "commit", repo)
	expect("root", 1, a1, b1)
	if files, _ := filepath.Glob(filepath.Join(repo, "keys", "root", "*")); len(files) != 0 {
		t.Errorf("root key files in the repository: %v", files)
	}

	gw := heldApartGateway(t, repo)
	gw.follow(t, "root version 1", 1, nil)

	// The targets key, generated in the token; commits sign through it.
	tokenKey := func(label string) (ref, id string) {
		t.Helper()
		uri := "pkcs11:token=release;object=" + label + "?module-path=" + module + "&pin-source=file:" + pinFile
		out := run(repoPass, "hsm", "keygen", "--key", uri)
		m := regexp.MustCompile(`(?m)^generated \S+ key in the token: (pkcs11:\S+)\nkey id: ([0-9a-f]{64})$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("hsm keygen printed:\n%s", out)
		}
		return m[1], m[2]
	}
	tok1, t1 := tokenKey("targets-1")
	// Moving targets changes root: both holders sign root version 2.
	out := run(repoPass, "rotate", repo, "targets", "--key-file", tok1)
	if !strings.Contains(out, "root version 2 is staged") {
		t.Fatalf("rotate targets printed:\n%s", out)
	}
	run(alicePass, "sign", repo, "root", "--key", rootKey(alice, 1))
	run(bobPass, "sign", repo, "root", "--key", rootKey(bob, 1))
	run(repoPass, "commit", repo, "--key", tok1)
	expect("root", 2, a1, b1)
	if files, _ := filepath.Glob(filepath.Join(repo, "keys", "targets", "*")); len(files) != 0 {
		t.Errorf("targets key files left after the move to the token: %v", files)
	}
	if ids := signerIDs(t, latestMetadata(t, md, "targets")); !slices.Equal(ids, []string{t1}) {
		t.Errorf("targets signed by %v, want the token's key %s", ids, t1)
	}
	targetsVersion := func() int64 { t.Helper(); return metadataVersion(t, latestMetadata(t, md, "targets")) }
	expect("targets", targetsVersion(), t1)
	gw.follow(t, "targets key in the token", 2, nil)

	// The vendor, on its own machine: its own encrypted key, its role.
	fw := filepath.Join(vendor, "fw.bin")
	data := bytes.Repeat([]byte("acme io16 firmware "), 3000)
	if err := os.MkdirAll(vendor, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fw, data, 0o644); err != nil {
		t.Fatal(err)
	}
	const name = "acme-io16/fw-2.5.0.bin"
	run(vendorPass, "vendor", "init", vdir, "acme", "--new-key", filepath.Join(vendor, "acme-1.pem"), "--path", "acme-io16/*")
	v1 := keyID(filepath.Join(vdir, "acme.pub"))
	run(vendorPass, "vendor", "add", vdir, fw, "--name", name, "--hardware", "acme-io16-rev3", "--version", "2.5.0")
	run(vendorPass, "vendor", "sign", vdir, "--expires", "30d")
	// What the vendor sends: the public key, later the signed role.
	mail := filepath.Join(w, "mail")
	copyFile(t, filepath.Join(vdir, "acme.pub"), filepath.Join(mail, "acme.pub"))
	copyDir(t, filepath.Join(vdir, "out"), filepath.Join(mail, "acme-1"))

	run(repoPass, "delegate", repo, "acme", "--path", "acme-io16/*", "--key-file", filepath.Join(mail, "acme.pub"))
	if out := run(repoPass, "status", repo); !strings.Contains(out, "not published yet") {
		t.Errorf("status before the import:\n%s", out)
	}
	run(repoPass, "import-role", repo, filepath.Join(mail, "acme-1"))
	run(repoPass, "commit", repo, "--key", tok1)
	expect("acme", 1, v1)
	expect("targets", targetsVersion(), t1)
	if _, err := os.Stat(filepath.Join(repo, "keys", "acme")); err == nil {
		t.Error("the repository holds a keys directory for the vendor's role")
	}
	if out := run(repoPass, "status", repo); !strings.Contains(out, "note: acme: signed by its vendor (import-role)") || strings.Contains(out, "acme: only") {
		t.Errorf("status with the vendor's role imported:\n%s", out)
	}
	gw.follow(t, "vendor role imported", 2, data)

	// Root rotation: both holders to their second keys; root version 3
	// needs two signatures by root 2's keys and two by its own.
	out = run(repoPass, "rotate", repo, "root", "--key-file", handed("alice", 2), "--key-file", handed("bob", 2))
	if !strings.Contains(out, "root version 3 is staged") {
		t.Fatalf("rotate root printed:\n%s", out)
	}
	run(alicePass, "sign", repo, "root", "--key", rootKey(alice, 1), "--key", rootKey(alice, 2))
	refused("1 of 2 signatures", repoPass, "commit", repo)
	run(bobPass, "sign", repo, "root", "--key", rootKey(bob, 1))
	refused("1 of 2 signatures by the keys of root version 3", repoPass, "commit", repo)
	run(bobPass, "sign", repo, "root", "--key", rootKey(bob, 2))
	run(repoPass, "commit", repo, "--key", tok1)
	expect("root", 3, a1, a2, b1, b2)
	gw.follow(t, "root rotated", 3, data)

	// rotateTop rotates a top-level role other than root: root version
	// next, signed by the holders' current keys (the retired ones first,
	// which must not count), then commit with the targets key given.
	rotateTop := func(role string, next int64, targetsKey string, extra ...string) {
		t.Helper()
		out := run(repoPass, append([]string{"rotate", repo, role}, extra...)...)
		if !strings.Contains(out, "root version "+strconv.FormatInt(next, 10)+" is staged") {
			t.Fatalf("rotate %s printed:\n%s", role, out)
		}
		runAs(t, alicePass, "sign", repo, "root", "--key", rootKey(alice, 1))
		runAs(t, bobPass, "sign", repo, "root", "--key", rootKey(bob, 1))
		refused("0 of 2 signatures", repoPass, "commit", repo, "--key", targetsKey)
		run(alicePass, "sign", repo, "root", "--key", rootKey(alice, 2))
		run(bobPass, "sign", repo, "root", "--key", rootKey(bob, 2))
		run(repoPass, "commit", repo, "--key", targetsKey)
		expect("root", next, a2, b2)
	}

	// Targets: the first token key to a second one.
	tok2, t2 := tokenKey("targets-2")
	rotateTop("targets", 4, tok2, "--key-file", tok2)
	if ids := signerIDs(t, latestMetadata(t, md, "targets")); !slices.Equal(ids, []string{t2}) {
		t.Errorf("targets signed by %v after the rotation, want %s", ids, t2)
	}
	expect("targets", targetsVersion(), t2)
	gw.follow(t, "targets rotated to the second token key", 4, data)
	// The retired token key no longer signs targets.
	own := filepath.Join(w, "operator", "io16-fw.bin")
	if err := os.WriteFile(own, bytes.Repeat([]byte("operator firmware "), 2000), 0o644); err != nil {
		t.Fatal(err)
	}
	run(repoPass, "add", repo, own, "--name", "io16/fw-3.0.0.bin", "--hardware", "io16", "--version", "3.0.0")
	refused("targets", repoPass, "commit", repo, "--key", tok1)
	run(repoPass, "commit", repo, "--key", tok2)
	expect("targets", targetsVersion(), t2)
	if snap := gw.refresh(t); !slices.ContainsFunc(snap.Targets, func(tg tuf.Target) bool { return tg.Name == "io16/fw-3.0.0.bin" }) {
		t.Errorf("gateway lacks the target committed with the second token key: %v", snap.Targets)
	}

	// The vendor role: the vendor makes a new key and sends its .pub.
	run(vendorPass, "keygen", "--out", filepath.Join(vendor, "acme-2.pem"))
	copyFile(t, filepath.Join(vendor, "acme-2.pub"), filepath.Join(mail, "acme-2.pub"))
	vk2 := keyID(filepath.Join(mail, "acme-2.pub"))
	run(repoPass, "rotate", repo, "acme", "--key-file", filepath.Join(mail, "acme-2.pub"), "--key", tok2)
	expect("targets", targetsVersion(), t2)
	snap := gw.refresh(t)
	if _, ok := findTarget(snap, name); ok || !refusedRole(snap, "acme") {
		t.Errorf("after the vendor role's rotation: targets %v, rejected %v; want role acme (the retired key's) refused", snap.Targets, snap.Rejected)
	}
	run(vendorPass, "vendor", "sign", vdir) // with the retired key
	copyDir(t, filepath.Join(vdir, "out"), filepath.Join(mail, "acme-old-key"))
	refused("signatures do not meet", repoPass, "import-role", repo, filepath.Join(mail, "acme-old-key"))
	run(vendorPass, "vendor", "sign", vdir, "--key", filepath.Join(vendor, "acme-2.pem"))
	copyDir(t, filepath.Join(vdir, "out"), filepath.Join(mail, "acme-new-key"))
	acmeVersion := metadataVersion(t, filepath.Join(mail, "acme-new-key", "acme.json"))
	run(repoPass, "import-role", repo, filepath.Join(mail, "acme-new-key"))
	run(repoPass, "commit", repo, "--key", tok2)
	expect("acme", acmeVersion, vk2)
	gw.follow(t, "vendor role rotated", 4, data)

	// Snapshot and timestamp: new keys generated in the repository
	// (encrypted with its passphrase); the old ones are removed.
	oldKeys := func(role string) []string {
		files, _ := filepath.Glob(filepath.Join(repo, "keys", role, "*"))
		return files
	}
	for i, role := range []string{"snapshot", "timestamp"} {
		before := oldKeys(role)
		rotateTop(role, int64(5+i), tok2)
		for _, f := range before {
			if _, err := os.Stat(f); err == nil {
				t.Errorf("replaced %s key %s not removed", role, f)
			}
		}
		if ids := signerIDs(t, latestMetadata(t, md, role)); len(ids) != 1 {
			t.Errorf("%s signed by %v", role, ids)
		} else {
			expect(role, metadataVersion(t, latestMetadata(t, md, role)), ids[0])
		}
		gw.follow(t, role+" rotated", int64(5+i), data)
	}
	if _, err := os.Stat(filepath.Join(repo, "keys", "retired")); err == nil {
		t.Error("keys/retired exists without --keep-retired")
	}

	// No plaintext private key anywhere the run wrote (the search finds
	// one where there is one).
	probe := filepath.Join(t.TempDir(), "probe")
	run("", "keygen", "--out", filepath.Join(probe, "k.pem"), "--insecure-plaintext-keys")
	if found := plaintextPrivateKeys(t, probe); len(found) != 1 {
		t.Errorf("the search finds %v in a directory holding one plaintext key", found)
	}
	if found := plaintextPrivateKeys(t, w); len(found) > 0 {
		t.Errorf("plaintext private keys after the run: %v", found)
	}
	// The signing log lists every event: role, version, key id.
	logOut := run("", "log", repo)
	type line struct {
		role    string
		version int64
		ids     []string
	}
	var lines []line
	logLine := regexp.MustCompile(`^\S+\s+.+?\s+(\S+)\s+(\d+)(?: \(staged\))?\s+([0-9a-f,]+)$`)
	for _, l := range strings.Split(strings.TrimSpace(logOut), "\n")[1:] {
		m := logLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("log line %q", l)
		}
		v, _ := strconv.ParseInt(m[2], 10, 64)
		lines = append(lines, line{m[1], v, strings.Split(m[3], ",")})
	}
	for _, e := range events {
		if !slices.ContainsFunc(lines, func(l line) bool {
			return l.role == e.role && l.version == e.version && slices.Contains(l.ids, e.keyID)
		}) {
			t.Errorf("log lacks %s version %d signed by %s:\n%s", e.role, e.version, e.keyID, logOut)
		}
	}
}

// heldApartGatewayT is a gateway that trusts the repository's 1.root.json,
// copied when it was published, and follows it.
type heldApartGatewayT struct {
	c    *tuf.Client
	name string
}

func heldApartGateway(t *testing.T, repo string) *heldApartGatewayT {
	t.Helper()
	r, err := publish.Open(repo)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(srv.Close)
	w := t.TempDir()
	root := filepath.Join(w, "1.root.json")
	copyFile(t, filepath.Join(repo, "repository", "metadata", "1.root.json"), root)
	c, err := tuf.New(tuf.Config{MetadataURL: srv.URL + "/metadata", TargetsURL: srv.URL + "/targets",
		MetadataDir: filepath.Join(w, "metadata"), BlobDir: filepath.Join(w, "blobs"), TrustedRoot: root}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return &heldApartGatewayT{c: c, name: "acme-io16/fw-2.5.0.bin"}
}

func (g *heldApartGatewayT) refresh(t *testing.T) *tuf.Snapshot {
	t.Helper()
	snap, err := g.c.Refresh(context.Background())
	if err != nil {
		t.Fatalf("gateway Refresh() = %v", err)
	}
	return snap
}

// follow refreshes, checks the root version reached and, with want, that
// the vendor's target is selected, fetched and equal to want.
func (g *heldApartGatewayT) follow(t *testing.T, step string, root int64, want []byte) {
	t.Helper()
	snap := g.refresh(t)
	if snap.Versions["root"] != root {
		t.Errorf("%s: gateway at root version %d, want %d", step, snap.Versions["root"], root)
	}
	if len(snap.Rejected) > 0 {
		t.Errorf("%s: gateway rejected %v", step, snap.Rejected)
	}
	if want == nil {
		return
	}
	tg, ok, why := tuf.Select(snap.Targets, "acme-io16-rev3", "2.4.0", 0)
	if !ok || tg.Name != g.name || tg.Role != "acme" {
		t.Fatalf("%s: gateway Select() = %+v, %v (%s); want %s from role acme", step, tg, ok, why, g.name)
	}
	path, err := g.c.Fetch(context.Background(), tg, nil)
	if err != nil {
		t.Fatalf("%s: gateway Fetch() = %v", step, err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, want) {
		t.Errorf("%s: fetched target differs from the vendor's file", step)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// metadataFile reads the version and the signers' key ids of a metadata
// file.
func metadataFile(t *testing.T, path string) (version int64, ids []string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var md struct {
		Signed     struct{ Version int64 }
		Signatures []struct {
			KeyID string `json:"keyid"`
		}
	}
	if err := json.Unmarshal(data, &md); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, s := range md.Signatures {
		ids = append(ids, s.KeyID)
	}
	slices.Sort(ids)
	return md.Signed.Version, ids
}

// latestMetadata is the newest published metadata file of role in md
// (N.ROLE.json with consistent snapshots, timestamp.json).
func latestMetadata(t *testing.T, md, role string) string {
	t.Helper()
	if p := filepath.Join(md, role+".json"); role == "timestamp" {
		return p
	}
	files, _ := filepath.Glob(filepath.Join(md, "*."+role+".json"))
	best, bestN := "", -1
	for _, f := range files {
		if n, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(f), "."+role+".json")); err == nil && n > bestN {
			best, bestN = f, n
		}
	}
	if best == "" {
		t.Fatalf("no %s metadata in %s", role, md)
	}
	return best
}

func metadataVersion(t *testing.T, path string) int64 { v, _ := metadataFile(t, path); return v }
func signerIDs(t *testing.T, path string) []string    { _, ids := metadataFile(t, path); return ids }

// plaintextPrivateKeys searches dir for what the issue forbids, by its own
// reading rather than the library's: a PEM block whose type contains
// PRIVATE KEY and is not encrypted (no ENCRYPTED in the type, no
// Proc-Type ENCRYPTED header, an OpenSSH key with cipher "none"), or a
// file of exactly 32 or 64 bytes (a raw Ed25519 seed or key).
func plaintextPrivateKeys(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if len(data) == 32 || len(data) == 64 {
			found = append(found, p+" (32 or 64 raw bytes)")
			return nil
		}
		for rest := data; ; {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if !strings.Contains(b.Type, "PRIVATE KEY") {
				continue
			}
			plain := !strings.Contains(b.Type, "ENCRYPTED") && !strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED")
			if b.Type == "OPENSSH PRIVATE KEY" {
				plain = opensshUnencrypted(b.Bytes)
			}
			if plain {
				found = append(found, p+" ("+b.Type+")")
			}
		}
		// A PEM block pem.Decode would skip for a bad body still counts.
		if bytes.Contains(data, []byte("-----BEGIN")) && bytes.Contains(data, []byte("PRIVATE KEY-----")) &&
			!bytes.Contains(data, []byte("ENCRYPTED PRIVATE KEY")) && !bytes.Contains(data, []byte("OPENSSH PRIVATE KEY")) &&
			!slices.ContainsFunc(found, func(f string) bool { return strings.HasPrefix(f, p+" ") }) {
			found = append(found, p+" (unparsed PRIVATE KEY block)")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// opensshUnencrypted reads the cipher name of an openssh-key-v1 body.
func opensshUnencrypted(body []byte) bool {
	const magic = "openssh-key-v1\x00"
	if !bytes.HasPrefix(body, []byte(magic)) || len(body) < len(magic)+4 {
		return true // unreadable: counted
	}
	b := body[len(magic):]
	n := int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3])
	if len(b) < 4+n {
		return true
	}
	return string(b[4:4+n]) == "none"
}
