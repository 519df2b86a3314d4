// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/tuf/tuftest"
)

const fwName = "acme-io16/fw-2.4.1.bin"

func runTUFArgs(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var errOut bytes.Buffer
	code := runTUF(context.Background(), args, &errOut)
	return code, errOut.String()
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTUFConformanceFlow(t *testing.T) {
	repo := tuftest.New(t)
	fw := bytes.Repeat([]byte("firmware "), 20000)
	repo.Publish(fwName, fw, tuftest.Meta("acme-io16-rev3", "2.4.1", 3))
	dir := t.TempDir()
	md, td := filepath.Join(dir, "metadata"), filepath.Join(dir, "targets")
	os.Mkdir(md, 0o755)
	os.Mkdir(td, 0o755)

	if code, msg := runTUFArgs(t, "--metadata-dir", md, "init", repo.RootPath); code != 0 {
		t.Fatalf("init = %d: %s", code, msg)
	}
	if got, want := readFile(t, filepath.Join(md, "root.json")), readFile(t, repo.RootPath); !bytes.Equal(got, want) {
		t.Errorf("init: root.json differs from the trusted root")
	}
	if code, msg := runTUFArgs(t, "--metadata-url", repo.MetadataURL, "--metadata-dir", md, "refresh"); code != 0 {
		t.Fatalf("refresh = %d: %s", code, msg)
	}
	tv := strconv.FormatInt(repo.Pub.TargetsMetadata().Signed.Version, 10)
	sv := strconv.FormatInt(repo.Pub.SnapshotMetadata().Signed.Version, 10)
	for local, served := range map[string]string{"timestamp.json": "timestamp.json", "snapshot.json": sv + ".snapshot.json", "targets.json": tv + ".targets.json"} {
		if !bytes.Equal(readFile(t, filepath.Join(md, local)), repo.ReadMetadata(served)) {
			t.Errorf("refresh: %s is not the exact bytes served as %s", local, served)
		}
	}
	download := []string{"--metadata-url", repo.MetadataURL, "--metadata-dir", md, "--target-name", fwName,
		"--target-dir", td, "--target-base-url", repo.TargetsURL, "download"}
	if code, msg := runTUFArgs(t, download...); code != 0 {
		t.Fatalf("download = %d: %s", code, msg)
	}
	if got := readFile(t, filepath.Join(td, url.PathEscape(fwName))); !bytes.Equal(got, fw) {
		t.Errorf("download: stored target differs")
	}
	n := repo.CountRequests("GET /targets/")
	if code, msg := runTUFArgs(t, download...); code != 0 {
		t.Fatalf("second download = %d: %s", code, msg)
	}
	if got := repo.CountRequests("GET /targets/"); got != n {
		t.Errorf("second download fetched the target again (%d requests)", got-n)
	}
	missing := append([]string{"--target-name", "nope.bin"}, download...)
	if code, msg := runTUFArgs(t, missing...); code != 1 || !strings.Contains(msg, "tuf download: download nope.bin") {
		t.Errorf("download of a target listed nowhere = %d, %q; want 1 and an error naming it", code, msg)
	}
	future := time.Now().Add(48 * time.Hour).Format(time.RFC3339)
	if code, _ := runTUFArgs(t, "--ref-time", future, "--metadata-url", repo.MetadataURL, "--metadata-dir", md, "refresh"); code != 1 {
		t.Errorf("refresh with --ref-time after timestamp expiry = %d, want 1", code)
	}
	if code, msg := runTUFArgs(t, "--ref-time", "@"+strconv.FormatInt(time.Now().Unix(), 10), "--metadata-url", repo.MetadataURL, "--metadata-dir", md, "refresh"); code != 0 {
		t.Errorf("refresh with --ref-time @now = %d, want 0: %s", code, msg)
	}
}

func TestTUFTamperedTargetExit1(t *testing.T) {
	repo := tuftest.New(t)
	repo.Publish("a.bin", []byte("good bytes"), tuftest.Meta("x", "1", 0))
	repo.Tamper("a.bin", []byte("evil bytes"))
	dir := t.TempDir()
	md, td := filepath.Join(dir, "md"), filepath.Join(dir, "td")
	runTUFArgs(t, "--metadata-dir", md, "init", repo.RootPath)
	code, _ := runTUFArgs(t, "--metadata-url", repo.MetadataURL, "--metadata-dir", md, "--target-name", "a.bin",
		"--target-dir", td, "--target-base-url", repo.TargetsURL, "download")
	if code != 1 {
		t.Errorf("download of a tampered target = %d, want 1", code)
	}
	if entries, _ := os.ReadDir(td); len(entries) != 0 {
		t.Errorf("target dir holds %d entries after a failed download, want 0", len(entries))
	}
}

// TestTUFBadArguments checks that every bad command line exits 1 with a
// message, before any request.
func TestTUFBadArguments(t *testing.T) {
	md := t.TempDir()
	const u = "http://127.0.0.1:1/metadata"
	tests := []struct {
		args []string
		want string // in stderr
	}{
		{nil, "usage: tuf"},
		{[]string{"refresh"}, "usage: tuf"},
		{[]string{"--metadata-dir", md}, "usage: tuf"},
		{[]string{"--nope", "--metadata-dir", md, "refresh"}, "flag provided but not defined: -nope"},
		{[]string{"--metadata-dir", md, "init"}, "usage: tuf"},
		{[]string{"--metadata-dir", md, "init", "a", "b"}, "usage: tuf"},
		{[]string{"--metadata-dir", md, "init", filepath.Join(md, "missing.json")}, "tuf init: open "},
		{[]string{"--metadata-dir", md, "frobnicate"}, `tuf: unknown command "frobnicate"`},
		{[]string{"--metadata-dir", md, "refresh"}, "tuf refresh: --metadata-url is required"},
		{[]string{"--metadata-dir", md, "--metadata-url", u, "--ref-time", "yesterday", "refresh"}, `tuf refresh: ref time "yesterday": want RFC 3339 or @unix`},
		{[]string{"--metadata-dir", md, "--metadata-url", u, "--ref-time", "@x", "refresh"}, `tuf refresh: ref time "@x"`},
		{[]string{"--metadata-dir", md, "--metadata-url", u, "download"}, "tuf download: --target-name is required"},
		{[]string{"--metadata-dir", md, "--metadata-url", u, "--target-name", "a", "download"}, "tuf download: --target-dir and --target-base-url are required"},
		{[]string{"--metadata-dir", md, "--metadata-url", u, "--target-name", "a", "--target-dir", md, "download"}, "tuf download: --target-dir and --target-base-url are required"},
	}
	for _, tt := range tests {
		code, msg := runTUFArgs(t, tt.args...)
		if code != 1 || !strings.Contains(msg, tt.want) {
			t.Errorf("runTUF(%q) = %d, stderr %q; want 1 and %q", tt.args, code, msg, tt.want)
		}
	}
}

// TestTUFCommandExitStatus checks that fieldgatectl tuf reaches the
// conformance command line with its arguments untouched and fails the
// process when it fails.
func TestTUFCommandExitStatus(t *testing.T) {
	var errOut bytes.Buffer
	err := run(context.Background(), []string{"tuf", "--metadata-dir", t.TempDir(), "frobnicate"}, io.Discard, &errOut)
	if err == nil || err.Error() != "tuf: exit status 1" {
		t.Errorf("run(tuf … frobnicate) = %v, want tuf: exit status 1", err)
	}
	if !strings.Contains(errOut.String(), `unknown command "frobnicate"`) {
		t.Errorf("run(tuf … frobnicate) stderr = %q, want the unknown command named", errOut.String())
	}
	repo := tuftest.New(t)
	if err := run(context.Background(), []string{"tuf", "--metadata-dir", t.TempDir(), "init", repo.RootPath}, io.Discard, io.Discard); err != nil {
		t.Errorf("run(tuf … init) = %v, want nil", err)
	}
}

func TestParseRefTime(t *testing.T) {
	tests := []struct {
		in   string
		want string // RFC 3339 in UTC; "" wants an error
	}{
		{"@0", "1970-01-01T00:00:00Z"},
		{"@1700000000", "2023-11-14T22:13:20Z"},
		{"2026-05-01T12:00:00Z", "2026-05-01T12:00:00Z"},
		{"2026-05-01T14:00:00+02:00", "2026-05-01T12:00:00Z"},
		{"@", ""},
		{"@1.5", ""},
		{"2026-05-01", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, err := parseRefTime(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("parseRefTime(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got.Format(time.RFC3339) != tt.want || got.Location() != time.UTC {
			t.Errorf("parseRefTime(%q) = %v, %v, want %s", tt.in, got, err, tt.want)
		}
	}
}

// TestTUFRefTimeRefusesDaemonDir: --ref-time never writes into the daemon's
// metadata directory (STATE_DIR/tuf next to STATE_DIR/state.db), through a
// symbolic link either, unless --force is given.
func TestTUFRefTimeRefusesDaemonDir(t *testing.T) {
	repo := tuftest.New(t)
	repo.Publish(fwName, []byte("fw"), tuftest.Meta("acme-io16-rev3", "2.4.1", 3))
	state := t.TempDir()
	if err := os.WriteFile(filepath.Join(state, "state.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	md := filepath.Join(state, "tuf")
	if code, msg := runTUFArgs(t, "--metadata-dir", md, "init", repo.RootPath); code != 0 {
		t.Fatalf("init = %d: %s", code, msg)
	}
	link := filepath.Join(t.TempDir(), "md")
	if err := os.Symlink(md, link); err != nil {
		t.Fatal(err)
	}
	refTime := time.Now().UTC().Format(time.RFC3339)
	for _, dir := range []string{md, link, state} {
		code, msg := runTUFArgs(t, "--ref-time", refTime, "--metadata-url", repo.MetadataURL, "--metadata-dir", dir, "refresh")
		if code != 1 || !strings.Contains(msg, "daemon's metadata directory") {
			t.Errorf("refresh --ref-time --metadata-dir %s = %d, stderr %q; want 1 and a refusal", dir, code, msg)
		}
	}
	if _, err := os.Stat(filepath.Join(md, "timestamp.json")); !os.IsNotExist(err) {
		t.Fatalf("refused refresh wrote timestamp.json (stat: %v)", err)
	}
	if code, msg := runTUFArgs(t, "--metadata-url", repo.MetadataURL, "--metadata-dir", md, "refresh"); code != 0 {
		t.Errorf("refresh without --ref-time = %d: %s", code, msg)
	}
	if code, msg := runTUFArgs(t, "--force", "--ref-time", refTime, "--metadata-url", repo.MetadataURL, "--metadata-dir", md, "refresh"); code != 0 {
		t.Errorf("refresh --force --ref-time = %d: %s", code, msg)
	}
	other := filepath.Join(t.TempDir(), "md")
	if code, msg := runTUFArgs(t, "--metadata-dir", other, "init", repo.RootPath); code != 0 {
		t.Fatalf("init = %d: %s", code, msg)
	}
	if code, msg := runTUFArgs(t, "--ref-time", refTime, "--metadata-url", repo.MetadataURL, "--metadata-dir", other, "refresh"); code != 0 {
		t.Errorf("refresh --ref-time in a directory of its own = %d: %s", code, msg)
	}
}
