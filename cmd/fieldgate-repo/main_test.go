// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
)

func runCmd(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCmd(&out, &errOut)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("fieldgate-repo %s = %v (stderr %s)", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

// TestDemoFlow runs the exact commands of the demo and checks that a client
// refreshes and fetches the target with the advertised URLs and root, with
// each key type.
func TestDemoFlow(t *testing.T) {
	for _, kt := range []string{publish.KeyEd25519, publish.KeyECDSAP256} {
		t.Run(kt, func(t *testing.T) { testDemoFlow(t, kt) })
	}
}

func testDemoFlow(t *testing.T, keyType string) {
	w := t.TempDir()
	repo := filepath.Join(w, "repo")
	fw := filepath.Join(w, "fw.bin")
	data := bytes.Repeat([]byte("FGSIM1 firmware "), 4096)
	if err := os.WriteFile(fw, data, 0o644); err != nil {
		t.Fatal(err)
	}
	runCmd(t, "init", repo, "--key-type", keyType)
	rootMD, err := metadata.Root().FromFile(filepath.Join(repo, "repository", "metadata", "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	for id, k := range rootMD.Signed.Keys {
		if want := map[string]string{publish.KeyEd25519: metadata.KeyTypeEd25519, publish.KeyECDSAP256: metadata.KeyTypeECDSA_SHA2_P256}[keyType]; k.Type != want {
			t.Errorf("root key %s has type %s, want %s", id, k.Type, want)
		}
	}
	runCmd(t, "add", repo, fw, "--name", "acme-io16/fw-2.4.1.bin", "--hardware", "acme-io16-rev3",
		"--version", "2.4.1", "--security-counter", "3", "--protocol", "xmodem",
		"--severity", "high", "--advisory", "CVE-2026-1234", "--notes", "Fixes Modbus stack overflow")
	runCmd(t, "commit", repo)
	if out := runCmd(t, "status", repo); !strings.Contains(out, "acme-io16/fw-2.4.1.bin") {
		t.Errorf("status output lacks the target:\n%s", out)
	}
	r, err := publish.Open(repo)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	c, err := tuf.New(tuf.Config{
		MetadataURL: srv.URL + "/metadata",
		TargetsURL:  srv.URL + "/targets",
		MetadataDir: filepath.Join(w, "client", "metadata"),
		BlobDir:     filepath.Join(w, "client", "blobs"),
		TrustedRoot: filepath.Join(repo, "repository", "metadata", "1.root.json"),
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatalf("Refresh() = %v", err)
	}
	tg, ok, reason := tuf.Select(snap.Targets, "acme-io16-rev3", "2.3.0", 0)
	if !ok {
		t.Fatalf("Select() = not ok: %s", reason)
	}
	want := tuf.Meta{Hardware: []string{"acme-io16-rev3"}, Version: "2.4.1", SecurityCounter: 3, Protocol: "xmodem",
		Severity: "high", Advisories: []string{"CVE-2026-1234"}, Notes: "Fixes Modbus stack overflow"}
	if tg.Meta.Version != want.Version || tg.Meta.SecurityCounter != 3 || tg.Meta.Notes != want.Notes || tg.Meta.Advisories[0] != "CVE-2026-1234" {
		t.Errorf("target meta = %+v, want %+v", tg.Meta, want)
	}
	path, err := c.Fetch(context.Background(), tg, nil)
	if err != nil {
		t.Fatalf("Fetch() = %v", err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
		t.Errorf("fetched blob differs from fw.bin")
	}
}

func TestServeShutsDownOnCancel(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, "127.0.0.1:0", publish.Handler(dir), pw, slog.New(slog.DiscardHandler))
		pw.Close()
	}()
	buf := make([]byte, 256)
	n, _ := pr.Read(buf)
	line := strings.Fields(string(buf[:n]))
	if len(line) < 3 {
		t.Fatalf("serve printed %q, want the address", buf[:n])
	}
	base := line[2]
	for _, tc := range []struct {
		path string
		code int
	}{{"/x.json", 200}, {"/missing.json", 404}, {"/", 404}, {"/../etc/passwd", 404}} {
		resp, err := http.Get(base + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("GET %s = %d, want %d", tc.path, resp.StatusCode, tc.code)
		}
	}
	go io.Copy(io.Discard, pr)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve() after cancel = %v, want nil", err)
	}
}

func TestVersionFlag(t *testing.T) {
	if out := runCmd(t, "--version"); !strings.Contains(out, version) {
		t.Errorf("--version printed %q, want it to contain %q", out, version)
	}
}

func TestAddRejectsBadMetadata(t *testing.T) {
	w := t.TempDir()
	repo := filepath.Join(w, "repo")
	runCmd(t, "init", repo)
	fw := filepath.Join(w, "fw.bin")
	os.WriteFile(fw, []byte("x"), 0o644)
	cmd := newRootCmd(io.Discard, io.Discard)
	cmd.SetArgs([]string{"add", repo, fw, "--name", "a.bin", "--version", "1.0"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "hardware") {
		t.Errorf("add without --hardware = %v, want an error about hardware", err)
	}
}

func runCmdErr(args ...string) error {
	cmd := newRootCmd(io.Discard, io.Discard)
	cmd.SetArgs(args)
	return cmd.ExecuteContext(context.Background())
}

// TestDelegateExportImport delegates a vendor role with its own key
// directory, signs a target with it, exports an offline bundle with that
// target and imports it into a gateway that has only the shipped root.
func TestDelegateExportImport(t *testing.T) {
	w := t.TempDir()
	repo, vendorKeys, out := filepath.Join(w, "repo"), filepath.Join(w, "vendor-keys"), filepath.Join(w, "usb", "bundle")
	fw := filepath.Join(w, "fw.bin")
	data := bytes.Repeat([]byte("FGSIM1 vendor "), 5000)
	os.WriteFile(fw, data, 0o644)
	runCmd(t, "init", repo, "--key-type", "ecdsa-p256")
	runCmd(t, "delegate", repo, "acme", "--path", "acme-io16/*", "--keys-dir", vendorKeys)
	if keys, _ := filepath.Glob(filepath.Join(vendorKeys, "*.pem")); len(keys) != 1 {
		t.Errorf("vendor keys in --keys-dir = %d, want 1", len(keys))
	}
	add := []string{"add", repo, fw, "--role", "acme", "--hardware", "acme-io16-rev3", "--version", "2.5.0"}
	if err := runCmdErr(append(add, "--name", "plc/fw.bin")...); err == nil || !strings.Contains(err.Error(), "outside the paths") {
		t.Errorf("add --role acme --name plc/fw.bin = %v, want an error about acme's paths", err)
	}
	if err := runCmdErr(append(add[:4], "--role", "nobody", "--name", "acme-io16/x.bin", "--hardware", "h", "--version", "1")...); err == nil {
		t.Errorf("add --role nobody = nil, want an error")
	}
	runCmd(t, "add", repo, fw, "--role", "acme", "--name", "acme-io16/fw-2.5.0.bin", "--hardware", "acme-io16-rev3", "--version", "2.5.0")
	runCmd(t, "add", repo, fw, "--name", "other/fw.bin", "--hardware", "plc", "--version", "1.0")
	runCmd(t, "commit", repo)
	status := runCmd(t, "status", repo)
	for _, want := range []string{"acme-io16/*", "acme-io16/fw-2.5.0.bin (acme)", "other/fw.bin (targets)"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}
	if strings.Contains(status, "warning") {
		t.Errorf("status warns after commit:\n%s", status)
	}
	msg := runCmd(t, "export", repo, out, "--target", "acme-io16/fw-2.5.0.bin")
	if !strings.Contains(msg, "exported 1 target") {
		t.Errorf("export printed %q", msg)
	}
	if err := runCmdErr("export", repo, out); err == nil {
		t.Errorf("export over an existing directory = nil, want an error")
	}
	if err := runCmdErr("export", repo, filepath.Join(w, "b2"), "--target", "nope.bin"); err == nil {
		t.Errorf("export --target nope.bin = nil, want an error")
	}
	c, err := tuf.New(tuf.Config{
		MetadataURL: "http://127.0.0.1:1/unused", // offline: only the bundle is read
		MetadataDir: filepath.Join(w, "gw", "metadata"),
		BlobDir:     filepath.Join(w, "gw", "blobs"),
		TrustedRoot: filepath.Join(repo, "repository", "metadata", "1.root.json"),
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	imp, err := tuf.ImportBundle(context.Background(), c, out)
	if err != nil {
		t.Fatalf("ImportBundle() = %v", err)
	}
	if len(imp.Staged) != 1 || imp.Staged[0].Target.Role != "acme" {
		t.Fatalf("ImportBundle() staged %+v, want acme-io16/fw-2.5.0.bin from acme", imp.Staged)
	}
	if got, _ := os.ReadFile(imp.Staged[0].Path); !bytes.Equal(got, data) {
		t.Errorf("staged blob differs from fw.bin")
	}
}

// TestCommitRefusesTraversalName: a name hand-edited into staged/targets.json
// is refused at commit (only add used to check names), and export never
// writes outside OUT.
func TestCommitRefusesTraversalName(t *testing.T) {
	w := t.TempDir()
	repo := filepath.Join(w, "repo")
	fw := filepath.Join(w, "fw.bin")
	if err := os.WriteFile(fw, []byte("firmware"), 0o644); err != nil {
		t.Fatal(err)
	}
	runCmd(t, "init", repo)
	runCmd(t, "add", repo, fw, "--name", "acme-io16/fw-2.4.1.bin", "--hardware", "acme-io16-rev3", "--version", "2.4.1")
	runCmd(t, "commit", repo)

	bad := "acme-io16/../../../../../elsewhere/pwned.bin"
	staged := filepath.Join(repo, "staged", "targets.json")
	md, err := metadata.Targets().FromFile(staged)
	if err != nil {
		t.Fatal(err)
	}
	md.Signed.Targets[bad] = md.Signed.Targets["acme-io16/fw-2.4.1.bin"]
	data, _ := md.ToBytes(true)
	if err := os.WriteFile(staged, data, 0o644); err != nil {
		t.Fatal(err)
	}
	err = runCmdErr("commit", repo)
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("fieldgate-repo commit with staged %s = %v, want an error naming it", bad, err)
	}
	if _, err := os.Stat(filepath.Join(repo, "repository", "metadata", "3.targets.json")); err == nil {
		t.Errorf("a refused commit signed a new targets version")
	}

	out := filepath.Join(w, "exports", "x", "bundle")
	if err := runCmdErr("export", repo, out, "--target", bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("fieldgate-repo export --target %s = %v, want an error naming it", bad, err)
	}
	runCmd(t, "export", repo, out)
	var outside []string
	filepath.WalkDir(w, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, "pwned") {
			outside = append(outside, p)
		}
		return nil
	})
	if len(outside) != 0 {
		t.Errorf("files written for the traversal name: %v", outside)
	}
}

// fingerprintRE matches the agreed fingerprint line and the grouped line
// after it.
var fingerprintRE = regexp.MustCompile(`(?m)^root fingerprint: sha256:([0-9a-f]{64})\n  ((?:[0-9a-f]{4} ){15}[0-9a-f]{4})\n`)

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// TestRootFingerprint: init and status print sha256 of the root file handed
// to gateways, with the grouped form; after a root rotation status prints
// the first and the current root's, labelled.
func TestRootFingerprint(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	md := filepath.Join(repo, "repository", "metadata")
	out := runCmd(t, "init", repo)
	m := fingerprintRE.FindAllStringSubmatch(out, -1)
	first := fileSHA256(t, filepath.Join(md, "1.root.json"))
	if len(m) != 1 || m[0][1] != first || strings.ReplaceAll(m[0][2], " ", "") != first {
		t.Fatalf("init printed fingerprints %v, want sha256 of 1.root.json %s:\n%s", m, first, out)
	}
	if !strings.Contains(out, "--expect-sha256 "+first) {
		t.Errorf("init does not show the installer's command with the fingerprint:\n%s", out)
	}
	out = runCmd(t, "status", repo)
	if m := fingerprintRE.FindAllStringSubmatch(out, -1); len(m) != 1 || m[0][1] != first {
		t.Errorf("status printed fingerprints %v, want only 1.root.json's %s:\n%s", m, first, out)
	}
	runCmd(t, "rotate", repo, "root")
	out = runCmd(t, "status", repo)
	current := fileSHA256(t, filepath.Join(md, "2.root.json"))
	m = fingerprintRE.FindAllStringSubmatch(out, -1)
	if len(m) != 2 || m[0][1] != first || m[1][1] != current || first == current {
		t.Fatalf("status after a root rotation printed %v, want 1.root.json's %s then 2.root.json's %s:\n%s", m, first, current, out)
	}
	for _, label := range []string{"first root, hand this to gateways: " + filepath.Join(md, "1.root.json"), "current root, also a trust anchor", filepath.Join(md, "2.root.json") + " (root version 2)"} {
		if !strings.Contains(out, label) {
			t.Errorf("status lacks %q:\n%s", label, out)
		}
	}
	if !strings.HasPrefix(out[strings.Index(out, "first root"):], "first root") || strings.Index(out, "first root") > strings.Index(out, "current root") {
		t.Errorf("status lists the current root before the first:\n%s", out)
	}
}

// TestExportExpiresFlag: export --expires 30d gives a bundle a gateway
// imports 10 days later (tuf.ImportBundle, the daemon's import), whose
// bundle.json records its expiry; a plain export is refused then; bad
// durations are refused before anything is signed.
func TestExportExpiresFlag(t *testing.T) {
	w := t.TempDir()
	repo := filepath.Join(w, "repo")
	fw := filepath.Join(w, "fw.bin")
	data := bytes.Repeat([]byte("FGSIM1 trip "), 1000)
	os.WriteFile(fw, data, 0o644)
	runCmd(t, "init", repo)
	runCmd(t, "add", repo, fw, "--name", "acme-io16/fw.bin", "--hardware", "acme-io16-rev3", "--version", "2.4.1")
	runCmd(t, "commit", repo)
	tsFile := filepath.Join(repo, "repository", "metadata", "timestamp.json")
	before, _ := os.ReadFile(tsFile)
	for _, bad := range []string{"0", "-30d", "400d", "30 days", "1y", ""} {
		err := runCmdErr("export", repo, filepath.Join(w, "bad"), "--expires", bad)
		if err == nil || !strings.Contains(err.Error(), "--expires") {
			t.Errorf("export --expires %q = %v, want an error about --expires", bad, err)
		}
	}
	if after, _ := os.ReadFile(tsFile); !bytes.Equal(after, before) {
		t.Errorf("a refused --expires changed timestamp.json")
	}
	start := time.Now()
	plain, long := filepath.Join(w, "plain"), filepath.Join(w, "long")
	runCmd(t, "export", repo, plain)
	msg := runCmd(t, "export", repo, long, "--expires", "30d")
	for _, want := range []string{"bundle timestamp version 3 signed for 30d", "re-signed as version 4", "snapshot v3", "(expiry of timestamp)"} {
		if !strings.Contains(msg, want) {
			t.Errorf("export --expires 30d printed no %q:\n%s", want, msg)
		}
	}
	var info publish.BundleInfo
	if b, err := os.ReadFile(filepath.Join(long, tuf.BundleManifest)); err != nil || json.Unmarshal(b, &info) != nil {
		t.Fatalf("bundle.json: %v", err)
	}
	if d := info.Expires.Sub(start); d < 30*24*time.Hour-time.Minute || d > 30*24*time.Hour+time.Minute {
		t.Errorf("bundle.json expires %s, %s after the export, want 30 days", info.Expires, d)
	}

	later := func() time.Time { return time.Now().Add(10 * 24 * time.Hour) }
	gw := func() *tuf.Client {
		d := t.TempDir()
		c, err := tuf.New(tuf.Config{
			MetadataURL: "http://127.0.0.1:1/unused", MetadataDir: filepath.Join(d, "metadata"), BlobDir: filepath.Join(d, "blobs"),
			TrustedRoot: filepath.Join(repo, "repository", "metadata", "1.root.json"), Now: later,
		}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if _, err := tuf.ImportBundle(context.Background(), gw(), plain); !errors.Is(err, &metadata.ErrExpiredMetadata{}) {
		t.Errorf("ImportBundle(plain export) 10 days later = %v, want expired", err)
	}
	imp, err := tuf.ImportBundle(context.Background(), gw(), long)
	if err != nil {
		t.Fatalf("ImportBundle(export --expires 30d) 10 days later = %v", err)
	}
	if len(imp.Staged) != 1 {
		t.Fatalf("ImportBundle() staged %d targets, want 1", len(imp.Staged))
	}
	if got, _ := os.ReadFile(imp.Staged[0].Path); !bytes.Equal(got, data) {
		t.Errorf("staged blob differs from fw.bin")
	}
}

// TestExportExpiresThroughBinaries runs the built fieldgate-repo and the
// gateway's fieldgatectl tuf (the same tuf.Client as the daemon's import;
// --ref-time stands in for the gateway's clock, which libfaketime cannot
// move for a Go binary) and checks that a bundle is accepted exactly while
// it is valid: for each bundle and age, imported iff age < validity.
func TestExportExpiresThroughBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fieldgate-repo and fieldgatectl")
	}
	bin := t.TempDir()
	repoBin, ctlBin := filepath.Join(bin, "fieldgate-repo"), filepath.Join(bin, "fieldgatectl")
	for pkg, out := range map[string]string{".": repoBin, "../fieldgatectl": ctlBin} {
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	w := t.TempDir()
	repo := filepath.Join(w, "repo")
	fw := filepath.Join(w, "fw.bin")
	data := []byte("FGSIM1 carried to the site")
	os.WriteFile(fw, data, 0o644)
	run := func(name string, args ...string) error {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
		}
		return nil
	}
	for _, args := range [][]string{
		{"init", repo},
		{"add", repo, fw, "--name", "acme-io16/fw.bin", "--hardware", "acme-io16-rev3", "--version", "2.4.1"},
		{"commit", repo},
	} {
		if err := run(repoBin, args...); err != nil {
			t.Fatal(err)
		}
	}
	const day = 24 * time.Hour
	bundles := map[string]time.Duration{"": 24 * time.Hour, "12h": 12 * time.Hour, "30d": 30 * day, "1d12h": 36 * time.Hour, "100d": 100 * day}
	exported := time.Now()
	for flag := range bundles {
		args := []string{"export", repo, filepath.Join(w, "bundle-"+flag)}
		if flag != "" {
			args = append(args, "--expires", flag)
		}
		if err := run(repoBin, args...); err != nil {
			t.Fatal(err)
		}
	}
	root := filepath.Join(repo, "repository", "metadata", "1.root.json")
	for flag, validity := range bundles {
		for _, age := range []time.Duration{time.Hour, validity - time.Hour, validity + time.Hour, 10 * day} {
			want := age < validity
			name := fmt.Sprintf("expires=%q/age=%s", flag, age)
			ref := "@" + strconv.FormatInt(exported.Add(age).Unix(), 10)
			md, targets := t.TempDir(), t.TempDir()
			if err := run(ctlBin, "tuf", "--ref-time", ref, "--metadata-dir", md, "init", root); err != nil {
				t.Fatal(err)
			}
			b := "file://" + filepath.Join(w, "bundle-"+flag)
			err := run(ctlBin, "tuf", "--ref-time", ref, "--metadata-dir", md, "--metadata-url", b+"/metadata",
				"--target-name", "acme-io16/fw.bin", "--target-base-url", b+"/targets", "--target-dir", targets, "download")
			switch {
			case want && err != nil:
				t.Errorf("%s: refused, want imported: %v", name, err)
			case !want && err == nil:
				t.Errorf("%s: imported, want refused (expired)", name)
			case !want && !strings.Contains(err.Error(), "expired"):
				t.Errorf("%s: refused, but not as expired: %v", name, err)
			case want:
				files, _ := filepath.Glob(filepath.Join(targets, "*"))
				if len(files) != 1 {
					t.Errorf("%s: target dir holds %v, want the firmware", name, files)
				} else if got, _ := os.ReadFile(files[0]); !bytes.Equal(got, data) {
					t.Errorf("%s: downloaded target differs from fw.bin", name)
				}
			}
		}
	}
}
