// SPDX-License-Identifier: Apache-2.0

package tuf_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
	"github.com/fieldgate/fieldgate/tuf/tuftest"
)

// bundleRepo publishes a top-level and a delegated target.
func bundleRepo(t *testing.T) (*tuftest.Repo, []byte) {
	t.Helper()
	repo := tuftest.New(t)
	repo.Delegate("acme", publish.Delegation{Paths: []string{"acme-io16/*"}})
	fw := payload(300000, 5)
	repo.AddTo("acme", vendorFw, fw, tuftest.Meta("acme-io16-rev3", "2.5.0", 4))
	repo.Add("plc/fw-1.0.bin", []byte("plc image"), tuftest.Meta("plc", "1.0", 1))
	repo.Commit()
	if err := repo.Pub.Rotate("root"); err != nil { // the gateway must walk 1 → 2
		t.Fatal(err)
	}
	return repo, fw
}

func TestImportBundle(t *testing.T) {
	repo, fw := bundleRepo(t)
	dir := repo.Export(vendorFw)
	repo.Server.Close() // offline: everything comes from the bundle

	var info publish.BundleInfo
	if data, err := os.ReadFile(filepath.Join(dir, tuf.BundleManifest)); err != nil || json.Unmarshal(data, &info) != nil {
		t.Fatalf("bundle.json unreadable: %v", err)
	}
	if info.Format != publish.BundleFormat || info.RootVersion != 2 || len(info.Targets) != 1 || info.Targets[0].Role != "acme" {
		t.Errorf("bundle.json = %+v, want root 2 and one target from acme", info)
	}

	md := filepath.Join(t.TempDir(), "md")
	c := repo.Client(t, func(cfg *tuf.Config) { cfg.MetadataDir = md }) // only the shipped 1.root.json
	imp, err := tuf.ImportBundle(context.Background(), c, dir)
	if err != nil {
		t.Fatalf("ImportBundle() = %v", err)
	}
	if imp.Snapshot.Versions["root"] != 2 || imp.Snapshot.Versions["acme"] != 1 {
		t.Errorf("ImportBundle() versions = %v, want root 2, acme 1", imp.Snapshot.Versions)
	}
	if len(imp.Staged) != 1 || imp.Staged[0].Target.Name != vendorFw {
		t.Fatalf("ImportBundle() staged %v, want only %s (the bundle does not carry plc/fw-1.0.bin)", imp.Staged, vendorFw)
	}
	if got, _ := os.ReadFile(imp.Staged[0].Path); !bytes.Equal(got, fw) {
		t.Errorf("staged blob differs from the target")
	}
	if imp.Staged[0].Path != c.BlobPath(imp.Staged[0].Target.SHA256()) {
		t.Errorf("staged path = %s, want the client's blob store", imp.Staged[0].Path)
	}

	// The daemon's path: the same, by hand.
	mdURL, tgURL, err := tuf.BundleURLs(dir)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := c.WithSource(mdURL, tgURL).Refresh(context.Background())
	if err != nil {
		t.Fatalf("WithSource(bundle).Refresh() = %v", err)
	}
	if _, err := c.WithSource(mdURL, tgURL).Fetch(context.Background(), findTarget(t, snap, vendorFw), nil); err != nil {
		t.Errorf("WithSource(bundle).Fetch() = %v", err)
	}
	// What the bundle taught the gateway is in its own cache: the original
	// client now trusts root 2 and refuses anything older.
	if c.TimeFloor().IsZero() {
		t.Errorf("TimeFloor() is zero after an import, want it raised")
	}
	if root, err := metadata.Root().FromFile(filepath.Join(md, "root.json")); err != nil || root.Signed.Version != 2 {
		t.Errorf("gateway cache root.json after import is not version 2 (err %v)", err)
	}

	if _, _, err := tuf.BundleURLs(t.TempDir()); err == nil {
		t.Errorf("BundleURLs(empty dir) = nil, want an error")
	}
}

func TestImportBundleRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, repo *tuftest.Repo, dir string) *tuf.Client
		is      error
		msg     string
	}{
		{
			name: "expired",
			prepare: func(t *testing.T, repo *tuftest.Repo, dir string) *tuf.Client {
				return repo.Client(t, func(cfg *tuf.Config) {
					cfg.Now = func() time.Time { return time.Now().Add(publish.DefaultTimestampExpiry + time.Hour) }
				})
			},
			is: &metadata.ErrExpiredMetadata{}, msg: "expired",
		},
		{
			name: "rolled back",
			prepare: func(t *testing.T, repo *tuftest.Repo, dir string) *tuf.Client {
				repo.Publish("plc/fw-1.1.bin", []byte("newer"), tuftest.Meta("plc", "1.1", 1))
				c := repo.Client(t, nil)
				if _, err := c.Refresh(context.Background()); err != nil { // online, newer than the bundle
					t.Fatal(err)
				}
				return c
			},
			is: &metadata.ErrBadVersionNumber{}, msg: "rollback",
		},
		{
			name: "tampered target",
			prepare: func(t *testing.T, repo *tuftest.Repo, dir string) *tuf.Client {
				files, _ := filepath.Glob(filepath.Join(dir, "targets", "acme-io16", "*"))
				if len(files) == 0 {
					t.Fatal("no target in bundle")
				}
				for _, f := range files {
					data, _ := os.ReadFile(f)
					data[100] ^= 1
					os.WriteFile(f, data, 0o644)
				}
				return repo.Client(t, nil)
			},
			is: tuf.ErrTargetMismatch, msg: "tampered",
		},
		{
			name: "unknown root",
			prepare: func(t *testing.T, repo *tuftest.Repo, dir string) *tuf.Client {
				other := tuftest.New(t) // another repository, other keys
				return other.Client(t, nil)
			},
			is: &metadata.ErrUnsignedMetadata{}, msg: "not signed by keys this gateway trusts",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo, _ := bundleRepo(t)
			dir := repo.Export(vendorFw)
			c := tc.prepare(t, repo, dir)
			imp, err := tuf.ImportBundle(context.Background(), c, dir)
			if err == nil {
				t.Fatalf("ImportBundle(%s) = %+v, want an error", tc.name, imp)
			}
			t.Logf("ImportBundle(%s) = %v", tc.name, err)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("ImportBundle(%s) = %v, want %T saying %q", tc.name, err, tc.is, tc.msg)
			}
			blobs, _ := filepath.Glob(filepath.Join(c.BlobPath("x"), "..", "*"))
			for _, b := range blobs {
				if !strings.HasSuffix(b, ".partial") {
					t.Errorf("blob %s staged by a refused bundle", b)
				}
			}
		})
	}
}

// importWithin runs ImportBundle with a test deadline, so that a reader
// that blocks on the medium fails the test instead of hanging it.
func importWithin(t *testing.T, c *tuf.Client, dir string) (*tuf.Import, error) {
	t.Helper()
	type result struct {
		imp *tuf.Import
		err error
	}
	done := make(chan result, 1)
	go func() {
		imp, err := tuf.ImportBundle(context.Background(), c, dir)
		done <- result{imp, err}
	}()
	select {
	case r := <-done:
		return r.imp, r.err
	case <-time.After(20 * time.Second):
		t.Fatalf("ImportBundle(%s) still running after 20s: it blocks on the bundle", dir)
		return nil, nil
	}
}

// replace removes path and lets mk put something else in its place.
func replace(t *testing.T, path string, mk func(string) error) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := mk(path); err != nil {
		t.Fatal(err)
	}
}

func symlinkTo(target string) func(string) error {
	return func(p string) error { return os.Symlink(target, p) }
}

func bundleFile(t *testing.T, dir, pattern string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, pattern))
	if len(files) != 1 {
		t.Fatalf("bundle files %s = %v, want one", pattern, files)
	}
	return files[0]
}

// TestImportBundleEntries: the bundle is read through one local reader, so
// a named pipe, a symbolic link, a device or a directory where the bundle
// should hold a file refuses the bundle quickly, naming the entry, and
// stages nothing.
func TestImportBundleEntries(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entry   string // glob below the bundle
		replace func(t *testing.T, path string)
	}{
		{"fifo timestamp", "metadata/timestamp.json", func(t *testing.T, p string) {
			replace(t, p, func(p string) error { return syscall.Mkfifo(p, 0o644) })
		}},
		{"fifo snapshot", "metadata/*.snapshot.json", func(t *testing.T, p string) {
			replace(t, p, func(p string) error { return syscall.Mkfifo(p, 0o644) })
		}},
		{"fifo target", "targets/acme-io16/*", func(t *testing.T, p string) {
			replace(t, p, func(p string) error { return syscall.Mkfifo(p, 0o644) })
		}},
		{"target symlink to /dev/zero", "targets/acme-io16/*", func(t *testing.T, p string) {
			replace(t, p, symlinkTo("/dev/zero"))
		}},
		{"target symlink to a good copy", "targets/acme-io16/*", func(t *testing.T, p string) {
			cp := filepath.Join(t.TempDir(), "copy")
			data, _ := os.ReadFile(p)
			os.WriteFile(cp, data, 0o644)
			replace(t, p, symlinkTo(cp))
		}},
		{"targets dir symlink", "targets/acme-io16", func(t *testing.T, p string) {
			cp := filepath.Join(t.TempDir(), "copy")
			if err := os.Rename(p, cp); err != nil {
				t.Fatal(err)
			}
			os.Symlink(cp, p)
		}},
		{"root symlink", "metadata/2.root.json", func(t *testing.T, p string) {
			cp := filepath.Join(t.TempDir(), "copy")
			data, _ := os.ReadFile(p)
			os.WriteFile(cp, data, 0o644)
			replace(t, p, symlinkTo(cp))
		}},
		{"timestamp symlink", "metadata/timestamp.json", func(t *testing.T, p string) {
			cp := filepath.Join(t.TempDir(), "copy")
			data, _ := os.ReadFile(p)
			os.WriteFile(cp, data, 0o644)
			replace(t, p, symlinkTo(cp))
		}},
		{"metadata dir symlink", "metadata", func(t *testing.T, p string) {
			cp := filepath.Join(t.TempDir(), "copy")
			if err := os.Rename(p, cp); err != nil {
				t.Fatal(err)
			}
			os.Symlink(cp, p)
		}},
		{"target device", "targets/acme-io16/*", func(t *testing.T, p string) {
			replace(t, p, func(p string) error { return syscall.Mknod(p, syscall.S_IFCHR|0o644, 1<<8|5) }) // like /dev/zero
		}},
		{"target directory", "targets/acme-io16/*", func(t *testing.T, p string) {
			replace(t, p, func(p string) error { return os.Mkdir(p, 0o755) })
		}},
		{"timestamp directory", "metadata/timestamp.json", func(t *testing.T, p string) {
			replace(t, p, func(p string) error { return os.Mkdir(p, 0o755) })
		}},
		{"delegated role directory", "metadata/*.acme.json", func(t *testing.T, p string) {
			replace(t, p, func(p string) error { return os.Mkdir(p, 0o755) })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo, _ := bundleRepo(t)
			dir := repo.Export(vendorFw)
			entry := bundleFile(t, dir, tc.entry)
			if strings.Contains(tc.name, "device") {
				if err := syscall.Mknod(filepath.Join(t.TempDir(), "probe"), syscall.S_IFCHR|0o644, 1<<8|5); err != nil {
					t.Skipf("cannot create device nodes here: %v", err)
				}
			}
			tc.replace(t, entry)
			c := repo.Client(t, nil)
			imp, err := importWithin(t, c, dir)
			if err == nil {
				t.Fatalf("ImportBundle(%s) = %d staged, want an error", tc.name, len(imp.Staged))
			}
			t.Logf("ImportBundle(%s) = %v", tc.name, err)
			if !strings.Contains(err.Error(), entry) {
				t.Errorf("ImportBundle(%s) = %v, want the entry %s named", tc.name, err, entry)
			}
			blobs, _ := filepath.Glob(filepath.Join(c.BlobPath("x"), "..", "*"))
			for _, b := range blobs {
				if !strings.HasSuffix(b, ".partial") {
					t.Errorf("blob %s staged by a refused bundle", b)
				}
			}

			// Nothing is left holding the client: an online refresh
			// (sharing the import's locks and cache) still completes.
			done := make(chan error, 1)
			go func() {
				_, err := c.Refresh(context.Background())
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Refresh() after a refused bundle = %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Refresh() after a refused bundle still running after 20s")
			}
		})
	}
}

// TestImportBundleStagedCount: Staged lists what is in the blob store, not
// what the metadata lists.
func TestImportBundleStagedCount(t *testing.T) {
	repo, _ := bundleRepo(t)
	// A mount point's name may need escaping in a file:// URL.
	dir := filepath.Join(t.TempDir(), "USB STICK %41#1?")
	if err := os.Rename(repo.Export(vendorFw), dir); err != nil {
		t.Fatal(err)
	}
	// The directory named is opened as given: a mount point reached
	// through a symbolic link is fine, a named pipe is refused quickly.
	link := filepath.Join(t.TempDir(), "media")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := importWithin(t, repo.Client(t, nil), fifo); err == nil {
		t.Errorf("ImportBundle(named pipe) = nil, want an error")
	}
	imp, err := importWithin(t, repo.Client(t, nil), link)
	if err != nil {
		t.Fatal(err)
	}
	if len(imp.Snapshot.Targets) != 2 || len(imp.Staged) != 1 {
		t.Errorf("ImportBundle() = %d targets, %d staged; want 2 targets, 1 staged", len(imp.Snapshot.Targets), len(imp.Staged))
	}
	for _, s := range imp.Staged {
		if err := tuf.VerifyFile(s.Path, s.Target); err != nil {
			t.Errorf("staged %s: %v", s.Target.Name, err)
		}
	}
}

func TestBundleID(t *testing.T) {
	repo, _ := bundleRepo(t)
	dir := repo.Export(vendorFw)
	id, err := tuf.BundleID(dir)
	if err != nil || len(id) != 64 {
		t.Fatalf("BundleID() = %q, %v, want a sha256", id, err)
	}
	if _, err := tuf.BundleID(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("BundleID(empty dir) = %v, want os.ErrNotExist", err)
	}
	ts := filepath.Join(dir, "metadata", "timestamp.json")
	replace(t, ts, func(p string) error { return syscall.Mkfifo(p, 0o644) })
	done := make(chan error, 1)
	go func() {
		_, err := tuf.BundleID(dir)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), ts) {
			t.Errorf("BundleID(fifo timestamp) = %v, want a refusal naming %s", err, ts)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("BundleID(fifo timestamp) blocks")
	}
	replace(t, ts, func(p string) error { return os.WriteFile(p, make([]byte, 16385), 0o644) })
	if _, err := tuf.BundleID(dir); err == nil {
		t.Errorf("BundleID(17 KiB timestamp) = nil, want an error")
	}
}
