package tuf_test

import (
	"bytes"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/tuftest"
)

func runCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var errOut bytes.Buffer
	code := tuf.CLI(args, io.Discard, &errOut)
	return code, errOut.String()
}

func TestCLIConformanceFlow(t *testing.T) {
	repo := tuftest.New(t)
	fw := payload(200000, 4)
	repo.Publish(fwName, fw, tuftest.Meta("acme-io16-rev3", "2.4.1", 3))
	dir := t.TempDir()
	md, td := filepath.Join(dir, "metadata"), filepath.Join(dir, "targets")
	os.Mkdir(md, 0o755)
	os.Mkdir(td, 0o755)

	if code, msg := runCLI(t, "--metadata-dir", md, "init", repo.RootPath); code != 0 {
		t.Fatalf("init = %d: %s", code, msg)
	}
	if got, want := readFile(t, filepath.Join(md, "root.json")), readFile(t, repo.RootPath); !bytes.Equal(got, want) {
		t.Errorf("init: root.json differs from the trusted root")
	}
	if code, msg := runCLI(t, "--metadata-url", repo.MetadataURL, "--metadata-dir", md, "refresh"); code != 0 {
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
	if code, msg := runCLI(t, download...); code != 0 {
		t.Fatalf("download = %d: %s", code, msg)
	}
	if got := readFile(t, filepath.Join(td, url.PathEscape(fwName))); !bytes.Equal(got, fw) {
		t.Errorf("download: stored target differs")
	}
	n := repo.CountRequests("GET /targets/")
	if code, msg := runCLI(t, download...); code != 0 {
		t.Fatalf("second download = %d: %s", code, msg)
	}
	if got := repo.CountRequests("GET /targets/"); got != n {
		t.Errorf("second download fetched the target again (%d requests)", got-n)
	}
	missing := append([]string{"--target-name", "nope.bin"}, download...)
	if code, _ := runCLI(t, missing...); code != 1 {
		t.Errorf("download of a target listed nowhere = %d, want 1", code)
	}
	future := time.Now().Add(48 * time.Hour).Format(time.RFC3339)
	if code, _ := runCLI(t, "--ref-time", future, "--metadata-url", repo.MetadataURL, "--metadata-dir", md, "refresh"); code != 1 {
		t.Errorf("refresh with --ref-time after timestamp expiry = %d, want 1", code)
	}
	if code, _ := runCLI(t, "--ref-time", "@"+strconv.FormatInt(time.Now().Unix(), 10), "--metadata-url", repo.MetadataURL, "--metadata-dir", md, "refresh"); code != 0 {
		t.Errorf("refresh with --ref-time @now = %d, want 0", code)
	}
	if code, _ := runCLI(t, "--metadata-dir", md, "frobnicate"); code != 1 {
		t.Errorf("unknown command = %d, want 1", code)
	}
}

func TestCLITamperedTargetExit1(t *testing.T) {
	repo := tuftest.New(t)
	repo.Publish("a.bin", []byte("good bytes"), tuftest.Meta("x", "1", 0))
	repo.Tamper("a.bin", []byte("evil bytes"))
	dir := t.TempDir()
	md, td := filepath.Join(dir, "md"), filepath.Join(dir, "td")
	runCLI(t, "--metadata-dir", md, "init", repo.RootPath)
	code, _ := runCLI(t, "--metadata-url", repo.MetadataURL, "--metadata-dir", md, "--target-name", "a.bin",
		"--target-dir", td, "--target-base-url", repo.TargetsURL, "download")
	if code != 1 {
		t.Errorf("download of a tampered target = %d, want 1", code)
	}
	if entries, _ := os.ReadDir(td); len(entries) != 0 {
		t.Errorf("target dir holds %d entries after a failed download, want 0", len(entries))
	}
}
