// SPDX-License-Identifier: Apache-2.0

package tuf_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
	"github.com/fieldgate/fieldgate/tuf/tuftest"
)

// dirClient returns a Client that keeps its trusted metadata in md, seeded
// with InitMetadataDir, as fieldgatectl tuf does.
func dirClient(t *testing.T, repo *tuftest.Repo, md string) *tuf.Client {
	t.Helper()
	if err := tuf.InitMetadataDir(md, repo.RootPath); err != nil {
		t.Fatalf("InitMetadataDir() = %v", err)
	}
	c, err := tuf.New(tuf.Config{
		MetadataURL: repo.MetadataURL,
		TargetsURL:  repo.TargetsURL,
		MetadataDir: md,
		BlobDir:     filepath.Join(md, "blobs"),
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return c
}

func TestInitMetadataDir(t *testing.T) {
	repo := tuftest.New(t)
	md := filepath.Join(t.TempDir(), "a", "metadata")
	if err := tuf.InitMetadataDir(md, repo.RootPath); err != nil {
		t.Fatalf("InitMetadataDir() = %v", err)
	}
	if got, want := readFile(t, filepath.Join(md, "root.json")), readFile(t, repo.RootPath); !bytes.Equal(got, want) {
		t.Errorf("InitMetadataDir: root.json differs from the trusted root")
	}

	notRoot := filepath.Join(repo.Pub.MetadataDir(), "timestamp.json")
	garbage := filepath.Join(t.TempDir(), "garbage.json")
	if err := os.WriteFile(garbage, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{notRoot, garbage, filepath.Join(t.TempDir(), "missing.json")} {
		md := filepath.Join(t.TempDir(), "metadata")
		if err := tuf.InitMetadataDir(md, path); err == nil {
			t.Errorf("InitMetadataDir(%s) = nil, want an error", filepath.Base(path))
		}
		if _, err := os.Stat(filepath.Join(md, "root.json")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("InitMetadataDir(%s) failed but left root.json (stat: %v)", filepath.Base(path), err)
		}
	}
}

func TestDownloadTargets(t *testing.T) {
	repo := tuftest.New(t)
	fw := payload(200000, 4)
	repo.Delegate("acme", publish.Delegation{Paths: []string{"acme-io16/*"}})
	repo.AddTo("acme", fwName, fw, tuftest.Meta("acme-io16-rev3", "2.4.1", 3))
	plc := []byte("plc image")
	repo.Add("plc/fw-1.0.bin", plc, tuftest.Meta("plc", "1.0", 1))
	repo.Commit()
	dir := t.TempDir()
	md, td := filepath.Join(dir, "metadata"), filepath.Join(dir, "targets")
	c := dirClient(t, repo, md)
	ctx := context.Background()

	if err := c.DownloadTargets(ctx, td, []string{fwName, "plc/fw-1.0.bin"}); err != nil {
		t.Fatalf("DownloadTargets() = %v", err)
	}
	for name, want := range map[string][]byte{fwName: fw, "plc/fw-1.0.bin": plc} {
		if got := readFile(t, filepath.Join(td, url.PathEscape(name))); !bytes.Equal(got, want) {
			t.Errorf("DownloadTargets: stored %s differs", name)
		}
	}
	tv := strconv.FormatInt(repo.Pub.TargetsMetadata().Signed.Version, 10)
	if !bytes.Equal(readFile(t, filepath.Join(md, "targets.json")), repo.ReadMetadata(tv+".targets.json")) {
		t.Errorf("DownloadTargets: targets.json is not the exact bytes served")
	}

	n := repo.CountRequests("GET /targets/")
	if err := c.DownloadTargets(ctx, td, []string{fwName}); err != nil {
		t.Fatalf("second DownloadTargets() = %v", err)
	}
	if got := repo.CountRequests("GET /targets/"); got != n {
		t.Errorf("second DownloadTargets fetched a valid stored target again (%d requests)", got-n)
	}

	// A stored file that is not the target is replaced.
	stored := filepath.Join(td, url.PathEscape(fwName))
	if err := os.WriteFile(stored, []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.DownloadTargets(ctx, td, []string{fwName}); err != nil {
		t.Fatalf("DownloadTargets(over a wrong file) = %v", err)
	}
	if got := readFile(t, stored); !bytes.Equal(got, fw) {
		t.Errorf("DownloadTargets did not replace a wrong stored file")
	}

	// Names are processed in order and the first failure stops the rest.
	other := t.TempDir()
	err := c.DownloadTargets(ctx, other, []string{"nope.bin", fwName})
	if err == nil || !strings.Contains(err.Error(), "download nope.bin") {
		t.Errorf("DownloadTargets(nope.bin, …) = %v, want an error naming nope.bin", err)
	}
	if entries, _ := os.ReadDir(other); len(entries) != 0 {
		t.Errorf("DownloadTargets went on after a failed name: %d entries", len(entries))
	}
	if err := c.DownloadTargets(ctx, "", []string{fwName}); err == nil {
		t.Errorf("DownloadTargets(no directory) = nil, want an error")
	}
}

func TestDownloadTargetsTampered(t *testing.T) {
	repo := tuftest.New(t)
	repo.Publish("a.bin", []byte("good bytes"), tuftest.Meta("x", "1", 0))
	repo.Tamper("a.bin", []byte("evil bytes"))
	dir := t.TempDir()
	md, td := filepath.Join(dir, "md"), filepath.Join(dir, "td")
	c := dirClient(t, repo, md)
	if err := c.DownloadTargets(context.Background(), td, []string{"a.bin"}); err == nil {
		t.Errorf("DownloadTargets(tampered target) = nil, want an error")
	}
	if entries, _ := os.ReadDir(td); len(entries) != 0 {
		t.Errorf("target dir holds %d entries after a failed download, want 0", len(entries))
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
