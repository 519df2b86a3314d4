// SPDX-License-Identifier: Apache-2.0

package publish_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
)

const day = 24 * time.Hour

// world is one clock for the publisher and its gateways, moved by tests.
type world struct{ now time.Time }

func (w *world) Now() time.Time { return w.now }

// gateway returns a tuf.Client provisioned with only the repository's
// 1.root.json, reading the clock of w, with metadataURL as its online
// repository.
func gateway(t *testing.T, r *publish.Repo, w *world, metadataURL string) *tuf.Client {
	t.Helper()
	dir := t.TempDir()
	c, err := tuf.New(tuf.Config{
		MetadataURL: metadataURL + "/metadata", TargetsURL: metadataURL + "/targets",
		MetadataDir: filepath.Join(dir, "metadata"), BlobDir: filepath.Join(dir, "blobs"),
		TrustedRoot: r.RootPath(), Now: w.Now,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func importBundle(c *tuf.Client, dir string) (*tuf.Import, error) {
	return tuf.ImportBundle(context.Background(), c, dir)
}

func readBundleInfo(t *testing.T, dir string) publish.BundleInfo {
	t.Helper()
	var info publish.BundleInfo
	data, err := os.ReadFile(filepath.Join(dir, tuf.BundleManifest))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &info); err != nil {
		t.Fatal(err)
	}
	return info
}

// TestExportExpires: a bundle exported with its own expiry of 30 days is
// imported 10 days later, by a fresh gateway and by one whose trusted
// timestamp (from the online repository) expired meanwhile; the same bundle
// without its own expiry, or with the repository's timestamp version and a
// longer expiry, is refused then. Gateways that imported it refresh online
// without a rollback error, right away and after the timestamp cron ran.
func TestExportExpires(t *testing.T) {
	w := &world{now: time.Now().UTC()}
	base := t.TempDir()
	dir := filepath.Join(base, "repo")
	r, err := publish.Init(dir, publish.Options{Keys: testKeys, Now: w.Now})
	if err != nil {
		t.Fatal(err)
	}
	fw := []byte("FGSIM1 firmware for a trip")
	if err := r.AddTargetBytes("acme-io16/fw.bin", fw, meta); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	n := r.TimestampMetadata().Signed.Version
	oldSnapshot := r.SnapshotMetadata().Signed.Version

	online := gateway(t, r, w, srv.URL)  // trusts timestamp n from the repository
	sameVer := gateway(t, r, w, srv.URL) // likewise, offered n again later
	for _, c := range []*tuf.Client{online, sameVer} {
		if _, err := c.Refresh(context.Background()); err != nil {
			t.Fatalf("online Refresh() at export time = %v", err)
		}
	}

	plain := filepath.Join(base, "plain")
	if _, err := r.Export(plain, nil); err != nil {
		t.Fatal(err)
	}
	long := filepath.Join(base, "long")
	info, err := r.ExportWith(long, publish.ExportOptions{Expires: 30 * day})
	if err != nil {
		t.Fatalf("ExportWith(30d) = %v", err)
	}
	// The daemon reads bundles as another user: every directory of one
	// is world-readable and searchable, not the 0700 of a temporary one.
	for _, b := range []string{plain, long} {
		filepath.WalkDir(b, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			if fi, _ := d.Info(); fi != nil && fi.Mode().Perm()&0o005 != 0o005 && d.IsDir() {
				t.Errorf("bundle directory %s has mode %v, want others to read and search it", p, fi.Mode().Perm())
			}
			return nil
		})
	}
	deadline := w.now.Add(30 * day).Truncate(time.Second)
	if info.TimestampVersion != n+1 || !info.Expires.Equal(deadline) || info.ExpiresRole != "timestamp" {
		t.Errorf("ExportWith(30d) = timestamp v%d, expires %s (%s), want v%d, %s (timestamp)",
			info.TimestampVersion, info.Expires, info.ExpiresRole, n+1, deadline)
	}
	if got := readBundleInfo(t, long); !got.Expires.Equal(deadline) {
		t.Errorf("bundle.json expires = %s, want %s", got.Expires, deadline)
	}
	if v := r.TimestampMetadata().Signed.Version; v != n+2 {
		t.Errorf("repository timestamp after the export = v%d, want v%d", v, n+2)
	}
	if left := r.TimestampMetadata().Signed.Expires.Sub(w.now); left > publish.DefaultTimestampExpiry {
		t.Errorf("repository timestamp valid for %s after the export, want its usual %s", left, publish.DefaultTimestampExpiry)
	}
	bundleTS, _ := os.ReadFile(filepath.Join(long, "metadata", "timestamp.json"))
	recorded, err := os.ReadFile(filepath.Join(dir, "bundles", itoa(n+1)+".timestamp.json"))
	if err != nil || !bytes.Equal(recorded, bundleTS) {
		t.Errorf("DIR/bundles/%d.timestamp.json = %v, want the bundle's timestamp", n+1, err)
	}
	// The 7-day snapshot was signed anew to last as long as the bundle,
	// and the repository publishes that same snapshot.
	sn := r.SnapshotMetadata()
	if sn.Signed.Expires.Before(deadline) || !strings.Contains(strings.Join(info.Resigned, ","), "snapshot") {
		t.Errorf("snapshot expires %s, resigned %v, want a snapshot signed anew until at least %s", sn.Signed.Expires, info.Resigned, deadline)
	}
	if _, err := os.Stat(filepath.Join(long, "metadata", itoa(sn.Signed.Version)+".snapshot.json")); err != nil {
		t.Errorf("bundle lacks the new snapshot: %v", err)
	}

	// At export time: a gateway that imports the bundle and then goes
	// online moves on to n+2; an online gateway too.
	fresh := gateway(t, r, w, srv.URL)
	if _, err := importBundle(fresh, long); err != nil {
		t.Fatalf("ImportBundle(30d bundle) at once = %v", err)
	}
	for name, c := range map[string]*tuf.Client{"after the import": fresh, "online": online} {
		snap, err := c.Refresh(context.Background())
		if err != nil {
			t.Fatalf("online Refresh() %s = %v, want no rollback", name, err)
		}
		if v := snap.Versions["timestamp"]; v != n+2 {
			t.Errorf("online Refresh() %s: timestamp v%d, want v%d", name, v, n+2)
		}
	}

	// The 30-day bundle with the timestamp version online gateways already
	// trust: go-tuf keeps the trusted (expired) one.
	same := filepath.Join(base, "same")
	copyTree(t, long, same)
	ts, err := metadata.Timestamp().FromFile(filepath.Join(long, "metadata", "timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	ts.Signed.Version = n
	if err := publish.Sign(r, "timestamp", ts); err != nil {
		t.Fatal(err)
	}
	if err := ts.ToFile(filepath.Join(same, "metadata", "timestamp.json"), true); err != nil {
		t.Fatal(err)
	}

	w.now = w.now.Add(10 * day)
	if _, err := importBundle(gateway(t, r, w, srv.URL), plain); !errors.Is(err, &metadata.ErrExpiredMetadata{}) {
		t.Errorf("ImportBundle(bundle without its own expiry) after 10 days = %v, want expired", err)
	}
	// It then asks for the snapshot its own timestamp lists (which this
	// bundle does not carry) or finds that timestamp expired.
	if _, err := importBundle(sameVer, same); err == nil ||
		!strings.Contains(err.Error(), "timestamp.json is expired") && !strings.Contains(err.Error(), "/"+itoa(oldSnapshot)+".snapshot.json") {
		t.Errorf("ImportBundle(timestamp v%d re-signed for 30 days) by a gateway trusting v%d = %v, want a refusal from the trusted v%d (equal versions keep the trusted one)", n, n, err, n)
	}
	if _, err := importBundle(gateway(t, r, w, srv.URL), same); err != nil {
		t.Errorf("ImportBundle(timestamp v%d re-signed for 30 days) by a fresh gateway = %v, want accepted (the signature is good)", n, err)
	}
	later := gateway(t, r, w, srv.URL)
	for name, c := range map[string]*tuf.Client{"fresh": later, "whose online timestamp expired": sameVer} {
		imp, err := importBundle(c, long)
		if err != nil {
			t.Fatalf("ImportBundle(30d bundle) after 10 days by a gateway %s = %v", name, err)
		}
		if len(imp.Staged) != 1 || imp.Snapshot.Versions["timestamp"] != n+1 {
			t.Errorf("ImportBundle(30d bundle) by a gateway %s: staged %d, timestamp v%d, want 1, v%d", name, len(imp.Staged), imp.Snapshot.Versions["timestamp"], n+1)
		}
		if got, _ := os.ReadFile(imp.Staged[0].Path); !bytes.Equal(got, fw) {
			t.Errorf("staged blob differs from the firmware")
		}
	}

	// Why the repository moved to n+2: served n, a gateway that imported
	// the bundle (n+1) sees a rollback.
	stuck := httptest.NewServer(publish.Handler(plain))
	defer stuck.Close()
	w.now = w.now.Add(-10 * day) // plain's timestamp is valid then
	c := gateway(t, r, w, stuck.URL)
	if _, err := importBundle(c, long); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refresh(context.Background()); !errors.Is(err, &metadata.ErrBadVersionNumber{}) {
		t.Errorf("Refresh() from a repository still at v%d after importing v%d = %v, want a rollback error", n, n+1, err)
	}
	w.now = w.now.Add(10 * day)

	// 10 days on, the timestamp cron has run: gateways that imported the
	// bundle go online without a rollback.
	if err := r.Timestamp(); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*tuf.Client{"fresh": later, "whose online timestamp expired": sameVer} {
		snap, err := c.Refresh(context.Background())
		if err != nil {
			t.Fatalf("online Refresh() after the import by a gateway %s = %v", name, err)
		}
		if v := snap.Versions["timestamp"]; v != n+3 {
			t.Errorf("online Refresh() by a gateway %s: timestamp v%d, want v%d", name, v, n+3)
		}
	}
}

// TestExportExpiresResignsRoles: a bundle valid longer than targets (90
// days) and a delegated role gets both signed anew for as long, published
// with their staged changes left staged, and is imported 95 days later.
func TestExportExpiresResignsRoles(t *testing.T) {
	w := &world{now: time.Now().UTC()}
	base := t.TempDir()
	r, err := publish.Init(filepath.Join(base, "repo"), publish.Options{Keys: testKeys, Now: w.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Delegate("acme", publish.Delegation{Paths: []string{"acme-io16/*"}}); err != nil {
		t.Fatal(err)
	}
	if err := r.AddTargetBytesTo("acme", "acme-io16/fw.bin", []byte("vendor image"), meta); err != nil {
		t.Fatal(err)
	}
	if err := r.AddTargetBytes("plc/fw.bin", []byte("plc image"), meta); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := r.AddTargetBytes("plc/staged.bin", []byte("not yet"), meta); err != nil {
		t.Fatal(err)
	}
	tv, av := r.TargetsMetadata().Signed.Version, r.DelegatedMetadata("acme").Signed.Version
	out := filepath.Join(base, "bundle")
	info, err := r.ExportWith(out, publish.ExportOptions{Expires: 100 * day, Targets: []string{"acme-io16/fw.bin"}})
	if err != nil {
		t.Fatalf("ExportWith(100d) = %v", err)
	}
	deadline := w.now.Add(100 * day).Truncate(time.Second)
	want := []string{"acme v" + itoa(av+1), "targets v" + itoa(tv+1), "snapshot v"}
	if got := strings.Join(info.Resigned, ","); !strings.HasPrefix(got, strings.Join(want, ",")) {
		t.Errorf("Resigned = %v, want %v…", info.Resigned, want)
	}
	for role, exp := range map[string]time.Time{
		"targets": r.TargetsMetadata().Signed.Expires, "acme": r.DelegatedMetadata("acme").Signed.Expires,
		"snapshot": r.SnapshotMetadata().Signed.Expires,
	} {
		if exp.Before(deadline) {
			t.Errorf("%s expires %s, before the bundle (%s)", role, exp, deadline)
		}
	}
	if !info.Expires.Equal(deadline) {
		t.Errorf("bundle expires %s (%s), want %s", info.Expires, info.ExpiresRole, deadline)
	}
	if !r.Pending() {
		t.Errorf("Pending() after the export = false, want the staged target still staged")
	}
	if _, ok := r.TargetsMetadata().Signed.Targets["plc/staged.bin"]; ok {
		t.Errorf("the export published a staged target")
	}

	w.now = w.now.Add(95 * day)
	imp, err := importBundle(gateway(t, r, w, "http://127.0.0.1:1/unused"), out)
	if err != nil {
		t.Fatalf("ImportBundle(100d bundle) after 95 days = %v", err)
	}
	if len(imp.Staged) != 1 || imp.Staged[0].Target.Role != "acme" || len(imp.Snapshot.Rejected) != 0 {
		t.Errorf("ImportBundle() staged %v, rejected %v, want acme-io16/fw.bin from acme and nothing rejected", imp.Staged, imp.Snapshot.Rejected)
	}
}

// TestExportExpiresRefused: a role that would expire before the bundle and
// cannot be signed anew here refuses the export, naming it, before anything
// is signed or written.
func TestExportExpiresRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    publish.Options
		prepare func(t *testing.T, dir, vendorKeys string)
		targets []string
		expires time.Duration
		want    string // in the error; "" = success with a warning
	}{
		{name: "root expires first", expires: 30 * day, want: "root expires at",
			opts: publish.Options{Keys: testKeys, Expiry: map[string]publish.Duration{"root": publish.Duration(10 * day)}}},
		{name: "snapshot key offline", expires: 30 * day, want: "snapshot expires at",
			prepare: func(t *testing.T, dir, _ string) { moveAway(t, filepath.Join(dir, "keys", "snapshot")) }},
		{name: "targets key offline", expires: 100 * day, want: "targets expires at",
			prepare: func(t *testing.T, dir, _ string) { moveAway(t, filepath.Join(dir, "keys", "targets")) }},
		{name: "timestamp key offline", expires: 2 * day, want: "timestamp keys are not here",
			prepare: func(t *testing.T, dir, _ string) { moveAway(t, filepath.Join(dir, "keys", "timestamp")) }},
		{name: "vendor key offline, its target exported", expires: 100 * day, want: "acme expires at",
			prepare: func(t *testing.T, _, vk string) { moveAway(t, vk) }},
		{name: "vendor key offline, its target not exported", expires: 100 * day, targets: []string{"plc/fw.bin"},
			prepare: func(t *testing.T, _, vk string) { moveAway(t, vk) }},
		{name: "too long", expires: 366 * day, want: "longer than the maximum"},
		{name: "negative", expires: -day, want: "not positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &world{now: time.Now().UTC()}
			base := t.TempDir()
			dir, vendorKeys := filepath.Join(base, "repo"), filepath.Join(base, "vendor-keys")
			tc.opts.Now = w.Now
			tc.opts.Keys = testKeys
			r, err := publish.Init(dir, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Delegate("acme", publish.Delegation{Paths: []string{"acme-io16/*"}, KeysDir: vendorKeys}); err != nil {
				t.Fatal(err)
			}
			r.AddTargetBytesTo("acme", "acme-io16/fw.bin", []byte("vendor image"), meta)
			r.AddTargetBytes("plc/fw.bin", []byte("plc image"), meta)
			if err := r.Commit(); err != nil {
				t.Fatal(err)
			}
			if tc.prepare != nil {
				tc.prepare(t, dir, vendorKeys)
			}
			if r, err = publish.OpenWith(dir, publish.Options{Keys: testKeys, Now: w.Now}); err != nil {
				t.Fatal(err)
			}
			tsBefore, _ := os.ReadFile(filepath.Join(r.MetadataDir(), "timestamp.json"))
			out := filepath.Join(base, "bundle")
			info, err := r.ExportWith(out, publish.ExportOptions{Expires: tc.expires, Targets: tc.targets})
			if tc.want == "" {
				if err != nil || len(info.Warnings) != 1 || !strings.Contains(info.Warnings[0], "acme") {
					t.Fatalf("ExportWith() = %+v, %v, want success with a warning about acme", info, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ExportWith(%s) = %v, want an error containing %q", tc.expires, err, tc.want)
			}
			if _, err := os.Lstat(out); err == nil {
				t.Errorf("a refused export created %s", out)
			}
			if ts, _ := os.ReadFile(filepath.Join(r.MetadataDir(), "timestamp.json")); !bytes.Equal(ts, tsBefore) {
				t.Errorf("a refused export changed the repository's timestamp.json")
			}
			if _, err := os.Stat(filepath.Join(dir, "bundles")); err == nil {
				t.Errorf("a refused export recorded a bundle timestamp")
			}
		})
	}
}

func TestParseBundleExpiry(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration // 0: an error
	}{
		{"30d", 30 * day}, {"12h", 12 * time.Hour}, {"1h30m", 90 * time.Minute}, {"1d12h", 36 * time.Hour},
		{"365d", 365 * day}, {"8760h", 365 * day},
		{"", 0}, {"0", 0}, {"0d", 0}, {"-1h", 0}, {"-3d", 0}, {"366d", 0}, {"8761h", 0}, {"1d-2h", 0},
		{"30", 0}, {"30D", 0}, {"d", 0}, {"3.5d", 0}, {"99999999999d", 0}, {"1y", 0},
	} {
		got, err := publish.ParseBundleExpiry(tc.in)
		if tc.want == 0 {
			if err == nil || !strings.Contains(err.Error(), "365d") && !strings.Contains(err.Error(), "positive") {
				t.Errorf("ParseBundleExpiry(%q) = %v, %v, want an error saying what is accepted", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseBundleExpiry(%q) = %v, %v, want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestRootFingerprints(t *testing.T) {
	r, err := publish.Init(filepath.Join(t.TempDir(), "repo"), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	check := func(f publish.RootFingerprint, file string) {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(r.MetadataDir(), file))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if want := hex.EncodeToString(sum[:]); f.SHA256 != want || f.Path != filepath.Join(r.MetadataDir(), file) {
			t.Errorf("fingerprint of %s = %s (%s), want %s", file, f.SHA256, f.Path, want)
		}
		g := f.Grouped()
		if len(strings.Fields(g)) != 16 || strings.ReplaceAll(g, " ", "") != f.SHA256 {
			t.Errorf("Grouped() = %q, want 16 groups of 4 of %s", g, f.SHA256)
		}
	}
	first, current, err := r.RootFingerprints()
	if err != nil {
		t.Fatal(err)
	}
	check(first, "1.root.json")
	if current != first {
		t.Errorf("current root %+v, want the first %+v before a rotation", current, first)
	}
	if err := r.Rotate("root"); err != nil {
		t.Fatal(err)
	}
	first2, current, err := r.RootFingerprints()
	if err != nil {
		t.Fatal(err)
	}
	if first2 != first {
		t.Errorf("first root fingerprint changed with a rotation: %s, was %s", first2.SHA256, first.SHA256)
	}
	check(current, "2.root.json")
	if current.Version != 2 || current.SHA256 == first.SHA256 {
		t.Errorf("current root after a rotation = %+v, want version 2 with its own fingerprint", current)
	}
}

func moveAway(t *testing.T, dir string) {
	t.Helper()
	if err := os.Rename(dir, dir+".offline"); err != nil {
		t.Fatal(err)
	}
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// TestExportExpiresKeepsClock: a gateway that raises its time floor from
// the online timestamp's validity (tuf.Config.TimestampValidity) does not
// take a 30-day bundle timestamp as proof that 29 days have passed.
func TestExportExpiresKeepsClock(t *testing.T) {
	w := &world{now: time.Now().UTC()}
	base := t.TempDir()
	r, err := publish.Init(filepath.Join(base, "repo"), publish.Options{Keys: testKeys, Now: w.Now})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(base, "bundle")
	if _, err := r.ExportWith(out, publish.ExportOptions{Expires: 30 * day}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, err := tuf.New(tuf.Config{
		MetadataURL: "http://127.0.0.1:1/unused", MetadataDir: filepath.Join(dir, "metadata"), BlobDir: filepath.Join(dir, "blobs"),
		TrustedRoot: r.RootPath(), Now: w.Now, TimestampValidity: publish.DefaultTimestampExpiry,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := importBundle(c, out); err != nil {
		t.Fatalf("ImportBundle(30d bundle) = %v", err)
	}
	if err := c.CheckClock(); err != nil {
		t.Errorf("CheckClock() after importing a 30-day bundle = %v (time floor %s), want the clock still trusted", err, c.TimeFloor())
	}
}
