// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/creack/pty"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
)

// TestMain gives every command of these tests a passphrase through the
// environment (a test runs without a terminal); tests that need another
// source or none set it themselves.
func TestMain(m *testing.M) {
	if _, ok := os.LookupEnv(passphraseEnv); !ok {
		os.Setenv(passphraseEnv, "test passphrase")
	}
	os.Exit(m.Run())
}

// runAs runs fieldgate-repo with the passphrase pass in the environment,
// as one key holder would on their machine, and returns stdout or the
// error.
func runAs(t *testing.T, pass string, args ...string) (string, error) {
	t.Helper()
	t.Setenv(passphraseEnv, pass)
	var out, errOut bytes.Buffer
	cmd := newRootCmd(&out, &errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	if err != nil {
		err = fmt.Errorf("fieldgate-repo %s: %w", strings.Join(args, " "), err)
	}
	return out.String(), err
}

func mustRunAs(t *testing.T, pass string, args ...string) string {
	t.Helper()
	out, err := runAs(t, pass, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// noPlaintextKeys fails the test if a directory holds an unencrypted
// private key.
func noPlaintextKeys(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		found, err := publish.PlaintextKeys(d)
		if err != nil {
			t.Fatal(err)
		}
		if len(found) > 0 {
			t.Errorf("unencrypted private keys after a normal run: %v", found)
		}
	}
}

func refreshFrom(t *testing.T, repo, root string) *tuf.Snapshot {
	t.Helper()
	r, err := publish.Open(repo)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	gw := t.TempDir()
	c, err := tuf.New(tuf.Config{MetadataURL: srv.URL + "/metadata", TargetsURL: srv.URL + "/targets",
		MetadataDir: filepath.Join(gw, "metadata"), BlobDir: filepath.Join(gw, "blobs"), TrustedRoot: root}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatalf("gateway refresh: %v", err)
	}
	return snap
}

// TestKeysEncryptedCLI runs the typical flows (init with offline root
// keys, add, commit, rotate, timestamp, delegate, export --expires) with
// the passphrase from --passphrase-fd, then searches every directory
// involved for plaintext private keys; without a passphrase a command that
// signs fails and says where a passphrase comes from.
func TestKeysEncryptedCLI(t *testing.T) {
	w := t.TempDir()
	repo, rootKeys, bundle := filepath.Join(w, "repo"), filepath.Join(w, "offline-root"), filepath.Join(w, "usb", "bundle")
	passFile := filepath.Join(w, "pass")
	os.WriteFile(passFile, []byte("fd passphrase\n"), 0o600)
	// withFD runs a command with --passphrase-fd on a fresh descriptor.
	withFD := func(args ...string) string {
		t.Helper()
		f, err := os.Open(passFile)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return mustRunAs(t, "", append(args, "--passphrase-fd", fmt.Sprint(f.Fd()))...)
	}
	fw := filepath.Join(w, "fw.bin")
	os.WriteFile(fw, []byte("firmware"), 0o644)
	withFD("init", repo, "--root-keys", rootKeys)
	withFD("add", repo, fw, "--name", "plc/fw.bin", "--hardware", "plc", "--version", "1.0")
	withFD("commit", repo)
	withFD("rotate", repo, "targets")
	withFD("rotate", repo, "root")
	withFD("timestamp", repo)
	withFD("delegate", repo, "acme", "--path", "acme/*")
	withFD("commit", repo)
	withFD("export", repo, bundle, "--expires", "2d")
	noPlaintextKeys(t, repo, rootKeys, bundle)
	if _, err := os.Stat(filepath.Join(repo, "keys", "retired")); err == nil {
		t.Error("keys/retired exists without --keep-retired")
	}
	if snap := refreshFrom(t, repo, filepath.Join(repo, "repository", "metadata", "1.root.json")); len(snap.Targets) != 1 {
		t.Errorf("gateway sees %d targets, want 1", len(snap.Targets))
	}

	// No passphrase, a wrong one: refused, with the way out.
	os.Unsetenv(passphraseEnv)
	defer os.Setenv(passphraseEnv, "test passphrase")
	var out bytes.Buffer
	cmd := newRootCmd(&out, &out)
	cmd.SetArgs([]string{"timestamp", repo})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--passphrase-fd") || !strings.Contains(err.Error(), passphraseEnv) {
		t.Errorf("timestamp without a passphrase = %v, want an error naming --passphrase-fd and $%s", err, passphraseEnv)
	}
	if _, err := runAs(t, "wrong", "timestamp", repo); err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Errorf("timestamp with a wrong passphrase = %v", err)
	}
	if out := mustRunAs(t, "", "status", repo); strings.Contains(out, "unencrypted") {
		t.Errorf("status warns about unencrypted keys in an encrypted repository:\n%s", out)
	}
	// --keep-retired keeps the replaced key, encrypted.
	withFD("rotate", repo, "snapshot", "--keep-retired")
	if kept, _ := filepath.Glob(filepath.Join(repo, "keys", "retired", "snapshot-*.pem")); len(kept) != 1 {
		t.Errorf("rotate --keep-retired kept %v, want the old snapshot key", kept)
	}
	noPlaintextKeys(t, repo)
}

// TestPlaintextKeysMigration: a repository made with
// --insecure-plaintext-keys is refused without the flag, status warns, and
// keys encrypt DIR fixes it.
func TestPlaintextKeysMigration(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	mustRunAs(t, "", "init", repo, "--insecure-plaintext-keys")
	if found, _ := publish.PlaintextKeys(repo); len(found) != 4 {
		t.Fatalf("init --insecure-plaintext-keys wrote %v, want 4 plaintext keys", found)
	}
	if _, err := runAs(t, "new passphrase", "commit", repo); err == nil || !strings.Contains(err.Error(), "fieldgate-repo keys encrypt DIR") {
		t.Errorf("commit on plaintext keys = %v, want refused naming keys encrypt", err)
	}
	if out := mustRunAs(t, "", "status", repo); !strings.Contains(out, "4 unencrypted private key file(s)") || !strings.Contains(out, "keys encrypt "+repo) {
		t.Errorf("status does not warn about the plaintext keys:\n%s", out)
	}
	mustRunAs(t, "", "commit", repo, "--insecure-plaintext-keys")
	out := mustRunAs(t, "new passphrase", "keys", "encrypt", repo)
	if !strings.Contains(out, "4 key file(s) encrypted") {
		t.Errorf("keys encrypt printed:\n%s", out)
	}
	noPlaintextKeys(t, repo)
	mustRunAs(t, "new passphrase", "commit", repo)
	mustRunAs(t, "new passphrase", "rotate", repo, "root")
}

var stagedCountRE = regexp.MustCompile(`(\d+) of (\d+) valid signatures by the keys of (root version \d+)`)

// TestRootKeysOnTwoHostsCLI: two people each run keygen where they keep
// their key and hand over the .pub; init lists both at threshold 2; commit
// refuses (and publishes nothing) until both have run sign; then a root
// rotation to two new holders needs the old threshold and the new one. A
// gateway that trusts 1.root.json follows. log lists every signing event.
func TestRootKeysOnTwoHostsCLI(t *testing.T) {
	w := t.TempDir()
	repo := filepath.Join(w, "repo")
	md := filepath.Join(repo, "repository", "metadata")
	key := func(who string) string { return filepath.Join(w, who, "root.pem") } // each on their own machine
	for _, who := range []string{"alice", "bob", "carol", "dave"} {
		out := mustRunAs(t, who+"'s passphrase", "keygen", "--out", key(who))
		if !strings.Contains(out, filepath.Join(w, who, "root.pub")) {
			t.Errorf("keygen output lacks the public key file:\n%s", out)
		}
	}
	noPlaintextKeys(t, w)
	out := mustRunAs(t, "repo passphrase", "init", repo, "--threshold", "root=2",
		"--root-key-file", filepath.Join(w, "alice", "root.pub"), "--root-key-file", filepath.Join(w, "bob", "root.pub"))
	if !strings.Contains(out, "root version 1 is staged") || !strings.Contains(out, "sign "+repo+" root --key") {
		t.Errorf("init with root key files printed:\n%s", out)
	}
	if _, err := runAs(t, "x", "init", filepath.Join(w, "other"), "--root-key-file", key("alice")); err == nil {
		t.Error("init --root-key-file PRIVATE.pem was accepted: the repository host must never need a root private key")
	}
	fw := filepath.Join(w, "fw.bin")
	os.WriteFile(fw, []byte("firmware"), 0o644)
	mustRunAs(t, "repo passphrase", "add", repo, fw, "--name", "plc/fw.bin", "--hardware", "plc", "--version", "1.0")
	refused := func(want string) {
		t.Helper()
		before, _ := os.ReadFile(filepath.Join(md, "timestamp.json"))
		if _, err := runAs(t, "repo passphrase", "commit", repo); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "nothing published") {
			t.Errorf("commit = %v, want refused: %q, nothing published", err, want)
		}
		if after, _ := os.ReadFile(filepath.Join(md, "timestamp.json")); !bytes.Equal(before, after) {
			t.Error("a refused commit changed timestamp.json")
		}
	}
	refused("0 of 2 signatures by the keys of root version 1")
	mustRunAs(t, "alice's passphrase", "sign", repo, "root", "--key", key("alice"))
	if m := stagedCountRE.FindAllStringSubmatch(mustRunAs(t, "", "status", repo), -1); len(m) != 1 || m[0][1] != "1" || m[0][2] != "2" {
		t.Errorf("status after alice signed shows %v, want 1 of 2 for root version 1", m)
	}
	refused("1 of 2 signatures by the keys of root version 1")
	if _, err := os.Stat(filepath.Join(md, "1.root.json")); err == nil {
		t.Fatal("1.root.json published below threshold")
	}
	mustRunAs(t, "bob's passphrase", "sign", repo, "root", "--key", key("bob"))
	out = mustRunAs(t, "repo passphrase", "commit", repo)
	if !strings.Contains(out, "root fingerprint: sha256:") {
		t.Errorf("commit publishing root v1 does not print its fingerprint:\n%s", out)
	}
	first := filepath.Join(md, "1.root.json")
	if snap := refreshFrom(t, repo, first); len(snap.Targets) != 1 || snap.Versions["root"] != 1 {
		t.Fatalf("gateway sees %v", snap.Versions)
	}

	// Rotate to carol and dave.
	out = mustRunAs(t, "repo passphrase", "rotate", repo, "root",
		"--key-file", filepath.Join(w, "carol", "root.pub"), "--key-file", filepath.Join(w, "dave", "root.pub"))
	if !strings.Contains(out, "root version 2 is staged") {
		t.Errorf("rotate root to held keys printed:\n%s", out)
	}
	mustRunAs(t, "alice's passphrase", "sign", repo, "root", "--key", key("alice"))
	mustRunAs(t, "carol's passphrase", "sign", repo, "root", "--key", key("carol"))
	mustRunAs(t, "dave's passphrase", "sign", repo, "root", "--key", key("dave"))
	out = mustRunAs(t, "", "status", repo)
	got := fmt.Sprint(stagedCountRE.FindAllStringSubmatch(out, -1))
	if want := "[[2 of 2 valid signatures by the keys of root version 2 2 2 root version 2] [1 of 2 valid signatures by the keys of root version 1 1 2 root version 1]]"; got != want {
		t.Errorf("status counts %s, want %s:\n%s", got, want, out)
	}
	refused("1 of 2 signatures by the keys of root version 1 (the previous root)")
	mustRunAs(t, "bob's passphrase", "sign", repo, "root", "--key", key("bob"))
	mustRunAs(t, "repo passphrase", "commit", repo)
	if snap := refreshFrom(t, repo, first); snap.Versions["root"] != 2 {
		t.Errorf("gateway from 1.root.json reached root %d, want 2", snap.Versions["root"])
	}
	for _, who := range []string{"alice", "bob", "carol", "dave"} {
		if _, err := os.Stat(key(who)); err != nil {
			t.Errorf("%s's key: %v (a holder's key is theirs to remove)", who, err)
		}
	}

	out = mustRunAs(t, "", "log", repo)
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := strings.Fields(l)
		lines = append(lines, strings.Join(f[1:len(f)-1], " "))
	}
	want := []string{
		"init targets 1", "init snapshot 1", "init timestamp 1",
		"sign root 1 (staged)", "sign root 1 (staged)",
		"commit targets 2", "commit snapshot 2", "commit timestamp 2",
		"sign root 2 (staged)", "sign root 2 (staged)", "sign root 2 (staged)", "sign root 2 (staged)",
		"commit snapshot 3", "commit timestamp 3",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("log:\n%s\nwant (command role version):\n%s", out, strings.Join(want, "\n"))
	}
}

// TestLogReportsTruncatedLine: log lists the events and reports a last
// line cut short.
func TestLogReportsTruncatedLine(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	mustRunAs(t, "p", "init", repo)
	f, err := os.OpenFile(filepath.Join(repo, publish.SigningLogFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(f, `{"time":"2026-01-01T00:00:00Z","comm`)
	f.Close()
	out := mustRunAs(t, "", "log", repo)
	if n := strings.Count(out, "\ninit "); n != 0 || strings.Count(out, " init ") != 4 || !strings.Contains(out, "line 5 cut short") {
		t.Errorf("log output:\n%s\nwant 4 init events and line 5 reported cut short", out)
	}
}

// TestTimestampKeyOwnPassphrase: keys passwd gives the timestamp key its
// own passphrase; timestamp --passphrase-file (the timer's credential)
// signs with it, and it unlocks no other key.
func TestTimestampKeyOwnPassphrase(t *testing.T) {
	w := t.TempDir()
	repo, cred := filepath.Join(w, "repo"), filepath.Join(w, "credential")
	os.WriteFile(cred, []byte("online passphrase"), 0o600) // no newline, as systemd-creds may store it
	mustRunAs(t, "offline passphrase", "init", repo)
	out := mustRunAs(t, "offline passphrase", "keys", "passwd", repo, "timestamp", "--new-passphrase-file", cred)
	if strings.Count(out, "new passphrase: ") != 1 {
		t.Errorf("keys passwd printed:\n%s", out)
	}
	mustRunAs(t, "", "timestamp", repo, "--passphrase-file", cred)
	if _, err := runAs(t, "", "commit", repo, "--passphrase-file", cred); err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Errorf("commit with the timestamp key's passphrase = %v, want refused", err)
	}
	if _, err := runAs(t, "offline passphrase", "timestamp", repo); err == nil {
		t.Error("timestamp with the offline passphrase succeeded after keys passwd")
	}
}

// TestSignOnCopies: the two root key holders never meet the repository
// host: each signs a copy of DIR on their own machine and sends back the
// staged root.json, whose signatures sign --from adds after checking them.
func TestSignOnCopies(t *testing.T) {
	w := t.TempDir()
	repo := filepath.Join(w, "repo")
	key := func(who string) string { return filepath.Join(w, who, "root.pem") }
	for _, who := range []string{"alice", "bob"} {
		mustRunAs(t, who, "keygen", "--out", key(who))
	}
	mustRunAs(t, "repo", "init", repo, "--threshold", "root=2",
		"--root-key-file", filepath.Join(w, "alice", "root.pub"), "--root-key-file", filepath.Join(w, "bob", "root.pub"))
	staged := func(dir string) string { return filepath.Join(dir, "staged", "signing", "root.json") }
	for _, who := range []string{"alice", "bob"} {
		cp := filepath.Join(w, who, "copy")
		if out, err := exec.Command("cp", "-a", repo, cp).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v\n%s", err, out)
		}
		mustRunAs(t, who, "sign", cp, "root", "--key", key(who))
	}
	// A copy whose content differs (here: another expiry) is refused.
	data, _ := os.ReadFile(staged(filepath.Join(w, "alice", "copy")))
	bad := filepath.Join(w, "bad.json")
	changed := regexp.MustCompile(`"expires": "\d{4}`).ReplaceAll(data, []byte(`"expires": "2999`))
	if bytes.Equal(changed, data) {
		t.Fatal("the test's change to the copy changed nothing")
	}
	os.WriteFile(bad, changed, 0o644)
	if _, err := runAs(t, "repo", "sign", repo, "root", "--from", bad); err == nil || !strings.Contains(err.Error(), "differs") {
		t.Errorf("sign --from a copy with other content = %v, want refused", err)
	}
	out := mustRunAs(t, "repo", "sign", repo, "root", "--from", staged(filepath.Join(w, "alice", "copy")),
		"--from", staged(filepath.Join(w, "bob", "copy")))
	if !strings.Contains(out, "2 of 2 valid signatures") || !strings.Contains(out, "ready") {
		t.Errorf("sign --from both copies printed:\n%s", out)
	}
	mustRunAs(t, "repo", "commit", repo)
	if snap := refreshFrom(t, repo, filepath.Join(repo, "repository", "metadata", "1.root.json")); snap.Versions["root"] != 1 {
		t.Errorf("gateway: %v", snap.Versions)
	}
}

// TestPassphrasePrompt types at the terminal prompt (a pty): a new key's
// passphrase is asked twice and refused when the two differ; Enter then
// reuses the one typed before.
func TestPassphrasePrompt(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	var prompts bytes.Buffer
	p := &passphrases{fd: -1, tty: tty, prompt: &prompts}
	typeLine := func(s string) {
		if _, err := io.WriteString(ptmx, s+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	go io.Copy(io.Discard, ptmx) // the terminal's echo of newlines
	typeLine("first")
	typeLine("other")
	if _, err := p.get("new root key", true); err == nil || !strings.Contains(err.Error(), "differ") {
		t.Errorf("two different passphrases for a new key = %v, want refused", err)
	}
	typeLine("first")
	typeLine("first")
	if got, err := p.get("new root key", true); err != nil || string(got) != "first" {
		t.Errorf("new key = %q, %v; want first", got, err)
	}
	typeLine("")
	if got, err := p.get("targets key", false); err != nil || string(got) != "first" {
		t.Errorf("Enter = %q, %v; want the one typed before", got, err)
	}
	if s := prompts.String(); !strings.Contains(s, "New passphrase for new root key: ") || !strings.Contains(s, "Again: ") ||
		!strings.Contains(s, "Passphrase for targets key (Enter: the one just typed): ") {
		t.Errorf("prompts:\n%s", s)
	}
}

// TestLogImportedVendorRole: the vendor's signatures on an imported role
// are in the operator's signing log when commit publishes them.
func TestLogImportedVendorRole(t *testing.T) {
	w := t.TempDir()
	repo, vdir, fw := filepath.Join(w, "repo"), filepath.Join(w, "vendor", "acme"), filepath.Join(w, "fw.bin")
	os.WriteFile(fw, []byte("vendor firmware"), 0o644)
	mustRunAs(t, "vendor", "vendor", "init", vdir, "acme", "--new-key", filepath.Join(w, "vendor", "acme.pem"), "--path", "acme/*")
	mustRunAs(t, "vendor", "vendor", "add", vdir, fw, "--name", "acme/fw.bin", "--hardware", "h", "--version", "1.0")
	mustRunAs(t, "vendor", "vendor", "sign", vdir)
	mustRunAs(t, "operator", "init", repo)
	mustRunAs(t, "operator", "delegate", repo, "acme", "--path", "acme/*", "--key-file", filepath.Join(vdir, "acme.pub"))
	mustRunAs(t, "operator", "import-role", repo, filepath.Join(vdir, "out"))
	mustRunAs(t, "operator", "commit", repo)
	pub, err := publish.PublicKey(filepath.Join(vdir, "acme.pub"), publish.KeyAccess{})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := pub.ID()
	out := mustRunAs(t, "", "log", repo)
	if !regexp.MustCompile(`commit \(imported acme\)\s+acme\s+1\s+` + id).MatchString(out) {
		t.Errorf("log lacks the imported role acme v1 signed by %s:\n%s", id, out)
	}
}
