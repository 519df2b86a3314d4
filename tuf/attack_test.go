// SPDX-License-Identifier: Apache-2.0

package tuf_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
	"github.com/fieldgate/fieldgate/tuf/tuftest"
)

const fwName = "acme-io16/fw-2.4.1.bin"

// setup publishes one target and returns the repository, a client that has
// refreshed once, and the target.
func setup(t *testing.T, opts ...tuftest.Option) (*tuftest.Repo, *tuf.Client, tuf.Target, []byte) {
	t.Helper()
	repo := tuftest.New(t, opts...)
	fw := payload(1<<20+3, 7)
	repo.Publish(fwName, fw, tuftest.Meta("acme-io16-rev3", "2.4.1", 3))
	c := repo.Client(t, nil)
	snap, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatalf("Refresh() = %v", err)
	}
	return repo, c, findTarget(t, snap, fwName), fw
}

func wantErr(t *testing.T, what string, err error, target error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s = nil, want an error matching %T", what, target)
	}
	if !errors.Is(err, target) {
		t.Fatalf("%s = %v, want an error matching %T", what, err, target)
	}
}

func TestAttackModifiedTarget(t *testing.T) {
	repo, c, tg, fw := setup(t)
	evil := bytes.Clone(fw)
	evil[len(evil)/2] ^= 1
	repo.Tamper(fwName, evil)
	_, err := c.Fetch(context.Background(), tg, nil)
	wantErr(t, "Fetch(tampered)", err, tuf.ErrTargetMismatch)
	if _, err := os.Stat(c.BlobPath(tg.SHA256())); !os.IsNotExist(err) {
		t.Errorf("tampered blob is in the store (stat err %v)", err)
	}
	if _, err := os.Stat(c.BlobPath(tg.SHA256()) + ".partial"); !os.IsNotExist(err) {
		t.Errorf("tampered partial file kept (stat err %v)", err)
	}
}

func TestAttackTamperedBlobAtRest(t *testing.T) {
	_, c, tg, _ := setup(t)
	path, err := c.Fetch(context.Background(), tg, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(path, os.O_WRONLY, 0)
	f.WriteAt([]byte{0xff}, 10)
	f.Close()
	wantErr(t, "VerifyFile(modified at rest)", tuf.VerifyFile(path, tg), tuf.ErrTargetMismatch)
	// Fetch notices and downloads a good copy again.
	if _, err := c.Fetch(context.Background(), tg, nil); err != nil {
		t.Fatalf("Fetch() after corruption at rest = %v", err)
	}
	if err := tuf.VerifyFile(path, tg); err != nil {
		t.Errorf("VerifyFile() after re-download = %v", err)
	}
}

func TestAttackEndlessData(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		t.Run("chunked="+strconv.FormatBool(chunked), func(t *testing.T) {
			repo, c, tg, fw := setup(t)
			var sent atomic.Int64
			endless := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !chunked {
					w.Header().Set("Content-Length", strconv.Itoa(64<<20))
				}
				w.Write(fw)
				junk := make([]byte, 64<<10)
				for sent.Store(int64(len(fw))); sent.Load() < 64<<20; sent.Add(int64(len(junk))) {
					if _, err := w.Write(junk); err != nil {
						return
					}
				}
			})
			for _, p := range repo.TargetURLPaths(fwName) {
				repo.Handle(p, endless)
			}
			_, err := c.Fetch(context.Background(), tg, nil)
			wantErr(t, "Fetch(endless)", err, tuf.ErrTargetMismatch)
			if !chunked && !strings.Contains(err.Error(), "announces") {
				t.Errorf("Fetch(endless) = %v, want the announced length refused before reading", err)
			}
			if chunked && !strings.Contains(err.Error(), "more than the signed length") {
				t.Errorf("Fetch(endless) = %v, want the body cut at the signed length", err)
			}
			if n := sent.Load(); n >= 64<<20 {
				t.Errorf("client read the whole endless body (%d bytes), want it cut off after %d", n, tg.Length)
			}
			if st, err := os.Stat(c.BlobPath(tg.SHA256()) + ".partial"); err == nil && st.Size() > tg.Length {
				t.Errorf("partial file holds %d bytes, more than the signed %d", st.Size(), tg.Length)
			}
		})
	}
}

func TestAttackEndlessMetadata(t *testing.T) {
	repo, c, _, _ := setup(t)
	var sent atomic.Int64
	repo.Handle("/metadata/timestamp.json", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		junk := bytes.Repeat([]byte(" "), 64<<10)
		for range 1024 {
			if _, err := w.Write(junk); err != nil {
				return
			}
			sent.Add(int64(len(junk)))
		}
	}))
	_, err := c.Refresh(context.Background())
	wantErr(t, "Refresh(endless timestamp)", err, &metadata.ErrDownloadLengthMismatch{})
	if n := sent.Load(); n >= 64<<20 {
		t.Errorf("client read the whole endless timestamp (%d bytes)", n)
	}
}

func TestAttackRollbackTimestamp(t *testing.T) {
	repo, c, _, _ := setup(t)
	old := repo.ReadMetadata("timestamp.json")
	repo.Publish("other.bin", []byte("x"), tuftest.Meta("plc", "1.0", 0))
	if _, err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	repo.WriteMetadata("timestamp.json", old)
	_, err := c.Refresh(context.Background())
	wantErr(t, "Refresh(old timestamp)", err, &metadata.ErrBadVersionNumber{})
}

func TestAttackRollbackSnapshot(t *testing.T) {
	repo, c, _, _ := setup(t)
	// A newer timestamp that points at an older snapshot version.
	ts := repo.Pub.TimestampMetadata()
	oldV := ts.Signed.Meta["snapshot.json"].Version - 1
	oldSnap := repo.ReadMetadata(strconv.FormatInt(oldV, 10) + ".snapshot.json")
	sum := sha256.Sum256(oldSnap)
	ts.Signed.Version++
	ts.Signed.Meta["snapshot.json"] = &metadata.MetaFiles{Version: oldV, Length: int64(len(oldSnap)), Hashes: metadata.Hashes{"sha256": sum[:]}}
	if err := publish.Sign(repo.Pub, "timestamp", ts); err != nil {
		t.Fatal(err)
	}
	if err := publish.WriteMetadata(repo.Pub, "timestamp.json", ts); err != nil {
		t.Fatal(err)
	}
	_, err := c.Refresh(context.Background())
	wantErr(t, "Refresh(timestamp -> old snapshot)", err, &metadata.ErrBadVersionNumber{})
}

func TestAttackRollbackTargets(t *testing.T) {
	repo, c, _, _ := setup(t)
	// A newer snapshot (and timestamp) listing an older targets version.
	sn := repo.Pub.SnapshotMetadata()
	sn.Signed.Version++
	sn.Signed.Meta["targets.json"] = metadata.MetaFile(sn.Signed.Meta["targets.json"].Version - 1)
	if err := publish.Sign(repo.Pub, "snapshot", sn); err != nil {
		t.Fatal(err)
	}
	if err := publish.WriteMetadata(repo.Pub, strconv.FormatInt(sn.Signed.Version, 10)+".snapshot.json", sn); err != nil {
		t.Fatal(err)
	}
	ts := repo.Pub.TimestampMetadata()
	ts.Signed.Version++
	ts.Signed.Meta["snapshot.json"] = metadata.MetaFile(sn.Signed.Version)
	if err := publish.Sign(repo.Pub, "timestamp", ts); err != nil {
		t.Fatal(err)
	}
	if err := publish.WriteMetadata(repo.Pub, "timestamp.json", ts); err != nil {
		t.Fatal(err)
	}
	_, err := c.Refresh(context.Background())
	wantErr(t, "Refresh(snapshot -> old targets)", err, &metadata.ErrBadVersionNumber{})
}

func TestAttackMixAndMatch(t *testing.T) {
	repo, c, _, _ := setup(t)
	repo.Publish("other.bin", []byte("x"), tuftest.Meta("plc", "1.0", 0))
	v := repo.Pub.TargetsMetadata().Signed.Version
	// Serve the previous targets metadata where snapshot says version v is.
	old := repo.ReadMetadata(strconv.FormatInt(v-1, 10) + ".targets.json")
	repo.Handle("/metadata/"+strconv.FormatInt(v, 10)+".targets.json", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(old)
	}))
	_, err := c.Refresh(context.Background())
	wantErr(t, "Refresh(mixed targets)", err, &metadata.ErrBadVersionNumber{})
}

func TestAttackFreeze(t *testing.T) {
	validity := map[string]time.Duration{
		"timestamp": publish.DefaultTimestampExpiry, "snapshot": publish.DefaultSnapshotExpiry,
		"targets": publish.DefaultTargetsExpiry, "root": publish.DefaultRootExpiry,
	}
	for _, role := range []string{"timestamp", "snapshot", "targets", "root"} {
		t.Run(role, func(t *testing.T) {
			repo := tuftest.New(t)
			repo.Publish(fwName, []byte("fw"), tuftest.Meta("acme-io16-rev3", "2.4.1", 3))
			repo.Expire(role, validity[role])
			c := repo.Client(t, nil)
			_, err := c.Refresh(context.Background())
			wantErr(t, "Refresh(expired "+role+")", err, &metadata.ErrExpiredMetadata{})
		})
	}
}

func TestAttackFreezeByClock(t *testing.T) {
	// A mirror that keeps serving yesterday's timestamp: the client's clock
	// moves past its expiry.
	repo, _, _, _ := setup(t)
	c := repo.Client(t, func(cfg *tuf.Config) {
		cfg.Now = func() time.Time { return time.Now().Add(publish.DefaultTimestampExpiry + time.Hour) }
	})
	_, err := c.Refresh(context.Background())
	wantErr(t, "Refresh(frozen timestamp)", err, &metadata.ErrExpiredMetadata{})
}

func TestAttackWrongKey(t *testing.T) {
	repo, c, _, _ := setup(t)
	ts := repo.Pub.TimestampMetadata()
	ts.Signed.Version++
	_, priv, _ := ed25519.GenerateKey(nil)
	s, err := signature.LoadED25519Signer(priv)
	if err != nil {
		t.Fatal(err)
	}
	ts.ClearSignatures()
	if _, err := ts.Sign(s); err != nil {
		t.Fatal(err)
	}
	if err := publish.WriteMetadata(repo.Pub, "timestamp.json", ts); err != nil {
		t.Fatal(err)
	}
	_, err = c.Refresh(context.Background())
	wantErr(t, "Refresh(timestamp signed by unknown key)", err, &metadata.ErrUnsignedMetadata{})
}

func TestAttackBelowThreshold(t *testing.T) {
	repo, c, _, _ := setup(t, tuftest.WithOptions(publish.Options{Threshold: map[string]int{"timestamp": 2}}))
	ts := repo.Pub.TimestampMetadata()
	ts.Signed.Version++
	if err := publish.Sign(repo.Pub, "timestamp", ts); err != nil {
		t.Fatal(err)
	}
	if len(ts.Signatures) != 2 {
		t.Fatalf("timestamp has %d signatures, want 2", len(ts.Signatures))
	}
	ts.Signatures = ts.Signatures[:1]
	if err := publish.WriteMetadata(repo.Pub, "timestamp.json", ts); err != nil {
		t.Fatal(err)
	}
	_, err := c.Refresh(context.Background())
	wantErr(t, "Refresh(1 of 2 signatures)", err, &metadata.ErrUnsignedMetadata{})
}

func TestRootRotation(t *testing.T) {
	repo, c, _, _ := setup(t)
	oldIDs := repo.Pub.RootMetadata().Signed.Roles["root"].KeyIDs
	if err := repo.Pub.Rotate("root"); err != nil {
		t.Fatal(err)
	}
	good := repo.ReadMetadata("2.root.json")
	t.Run("good", func(t *testing.T) {
		snap, err := c.Refresh(context.Background())
		if err != nil {
			t.Fatalf("Refresh() after root rotation = %v", err)
		}
		if snap.Versions["root"] != 2 {
			t.Errorf("root version = %d, want 2", snap.Versions["root"])
		}
	})
	for _, tc := range []struct {
		name    string
		keepOld bool
	}{{"new signatures missing", true}, {"old signatures missing", false}} {
		t.Run(tc.name, func(t *testing.T) {
			root, err := metadata.Root().FromBytes(good)
			if err != nil {
				t.Fatal(err)
			}
			root.Signatures = slices.DeleteFunc(root.Signatures, func(s metadata.Signature) bool {
				return slices.Contains(oldIDs, s.KeyID) != tc.keepOld
			})
			data, _ := root.ToBytes(true)
			repo.WriteMetadata("2.root.json", data)
			fresh := repo.Client(t, nil)
			_, err = fresh.Refresh(context.Background())
			wantErr(t, "Refresh(2.root.json "+tc.name+")", err, &metadata.ErrUnsignedMetadata{})
		})
	}
}

func TestKeyRotationTimestamp(t *testing.T) {
	repo, c, _, _ := setup(t)
	if err := repo.Pub.Rotate("timestamp"); err != nil {
		t.Fatal(err)
	}
	repo.Commit()
	if _, err := c.Refresh(context.Background()); err != nil {
		t.Fatalf("Refresh() after timestamp key rotation = %v", err)
	}
}

func TestMaliciousCustomMetadata(t *testing.T) {
	repo := tuftest.New(t)
	repo.Add("good.bin", []byte("good"), tuftest.Meta("io16", "1.0", 1))
	repo.AddRaw("bad.bin", []byte("bad"), []byte(`{"fieldgate":{"hardware":["io16"],"version":"9.9","security_counter":"lots"}}`))
	repo.AddRaw("none.bin", []byte("none"), nil)
	repo.AddRaw("huge.bin", []byte("huge"), []byte(`{"fieldgate":{"hardware":["io16"],"version":"9.9","notes":"`+strings.Repeat("A", 100000)+`"}}`))
	repo.Commit()
	c := repo.Client(t, nil)
	snap, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatalf("Refresh() = %v", err)
	}
	for _, name := range []string{"bad.bin", "none.bin", "huge.bin"} {
		if tg := findTarget(t, snap, name); tg.MetaErr == nil {
			t.Errorf("target %s: MetaErr = nil, want an error", name)
		}
	}
	if tg := findTarget(t, snap, "good.bin"); tg.MetaErr != nil {
		t.Errorf("target good.bin: MetaErr = %v", tg.MetaErr)
	}
	tg, ok, reason := tuf.Select(snap.Targets, "io16", "0.9", 0)
	if !ok || tg.Name != "good.bin" {
		t.Errorf("Select() = %s, %v, %q; want good.bin", tg.Name, ok, reason)
	}
}

func TestCorruptCacheRestored(t *testing.T) {
	for _, lkg := range []bool{true, false} {
		t.Run("last-known-good="+strconv.FormatBool(lkg), func(t *testing.T) {
			repo := tuftest.New(t)
			repo.Publish(fwName, []byte("fw"), tuftest.Meta("acme-io16-rev3", "2.4.1", 3))
			dir := t.TempDir()
			var logs bytes.Buffer
			cfg := tuf.Config{MetadataURL: repo.MetadataURL, TargetsURL: repo.TargetsURL, TrustedRoot: repo.RootPath,
				MetadataDir: filepath.Join(dir, "md"), BlobDir: filepath.Join(dir, "blobs")}
			c, err := tuf.New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Refresh(context.Background()); err != nil {
				t.Fatal(err)
			}
			if !lkg {
				os.RemoveAll(filepath.Join(cfg.MetadataDir, "last-known-good"))
			}
			// Power cut: files renamed but never written.
			os.WriteFile(filepath.Join(cfg.MetadataDir, "timestamp.json"), nil, 0o644)
			os.WriteFile(filepath.Join(cfg.MetadataDir, "snapshot.json"), []byte(`{"signed":{"_ty`), 0o644)
			os.WriteFile(filepath.Join(cfg.MetadataDir, "targets.json"), []byte("\x00\x00\x00"), 0o644)
			if _, err := c.Refresh(context.Background()); err != nil {
				t.Fatalf("Refresh() with corrupt cache = %v", err)
			}
			want := "removed"
			if lkg {
				want = "restored from last-known-good"
			}
			if got := strings.Count(logs.String(), want); got != 3 {
				t.Errorf("log mentions %q %d times, want 3; log:\n%s", want, got, logs.String())
			}
		})
	}
}

func TestCorruptCachedRootFallsBack(t *testing.T) {
	repo, _, _, _ := setup(t)
	if err := repo.Pub.Rotate("root"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := tuf.Config{MetadataURL: repo.MetadataURL, TargetsURL: repo.TargetsURL, TrustedRoot: repo.RootPath,
		MetadataDir: filepath.Join(dir, "md"), BlobDir: filepath.Join(dir, "blobs")}
	c, err := tuf.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(cfg.MetadataDir, "root.json"), []byte("{"), 0o644)
	snap, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatalf("Refresh() with corrupt root.json = %v", err)
	}
	if snap.Versions["root"] != 2 {
		t.Errorf("root version = %d, want 2", snap.Versions["root"])
	}
}

// interrupted serves the first n bytes of a target, then drops the connection.
func interrupted(data []byte, n int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data[:n])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
}

func TestResumeAfterInterruptedDownload(t *testing.T) {
	repo, c, tg, fw := setup(t)
	paths := repo.TargetURLPaths(fwName)
	for _, p := range paths {
		repo.Handle(p, interrupted(fw, 300000))
	}
	if _, err := c.Fetch(context.Background(), tg, nil); err == nil {
		t.Fatal("Fetch() over a dropped connection = nil, want an error")
	}
	st, err := os.Stat(c.BlobPath(tg.SHA256()) + ".partial")
	if err != nil || st.Size() != 300000 {
		t.Fatalf("partial file after interruption: %v, size %d, want 300000", err, st.Size())
	}
	for _, p := range paths {
		repo.Handle(p, nil)
	}
	path, err := c.Fetch(context.Background(), tg, nil)
	if err != nil {
		t.Fatalf("Fetch() resume = %v", err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, fw) {
		t.Fatal("resumed blob differs from the target")
	}
	reqs := repo.Requests()
	if last := reqs[len(reqs)-1]; !strings.HasSuffix(last, "Range:bytes=300000-") {
		t.Errorf("last request = %q, want a Range request from 300000", last)
	}
}

func TestResumeServerIgnoresRange(t *testing.T) {
	repo, c, tg, fw := setup(t)
	writePartial(t, c, tg, fw[:5000])
	for _, p := range repo.TargetURLPaths(fwName) {
		repo.Handle(p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(fw) }))
	}
	path, err := c.Fetch(context.Background(), tg, nil)
	if err != nil {
		t.Fatalf("Fetch() with a server ignoring Range = %v", err)
	}
	if reqs := repo.Requests(); !strings.Contains(reqs[len(reqs)-1], "Range:bytes=5000-") {
		t.Errorf("last request = %q, want a Range request", reqs[len(reqs)-1])
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, fw) {
		t.Fatal("blob differs from the target")
	}
}

func TestResumeCorruptPartialRejected(t *testing.T) {
	repo, c, tg, fw := setup(t)
	_ = repo
	bad := bytes.Clone(fw[:5000])
	bad[10] ^= 0xff
	writePartial(t, c, tg, bad)
	_, err := c.Fetch(context.Background(), tg, nil)
	wantErr(t, "Fetch(corrupt partial)", err, tuf.ErrTargetMismatch)
	if _, err := c.Fetch(context.Background(), tg, nil); err != nil {
		t.Fatalf("Fetch() after discarding the corrupt partial = %v", err)
	}
}

func TestClockBelowFloor(t *testing.T) {
	repo, c, _, _ := setup(t)
	_ = c
	dir := t.TempDir()
	cfg := tuf.Config{MetadataURL: repo.MetadataURL, TargetsURL: repo.TargetsURL, TrustedRoot: repo.RootPath,
		MetadataDir: filepath.Join(dir, "md"), BlobDir: filepath.Join(dir, "blobs")}
	good, err := tuf.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := good.Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if floor := good.TimeFloor(); floor.Before(snap.RefTime.Add(-time.Second)) {
		t.Errorf("TimeFloor() = %v after a refresh at %v, want it raised", floor, snap.RefTime)
	}
	// The RTC battery died: the clock says 1970.
	cfg.Now = func() time.Time { return time.Unix(0, 0) }
	stale, err := tuf.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = stale.Refresh(context.Background())
	wantErr(t, "Refresh(clock in 1970)", err, tuf.ErrClockUnsynced)
	wantErr(t, "CheckClock()", stale.CheckClock(), tuf.ErrClockUnsynced)

	// A fresh install with a clock before the build time.
	cfg2 := cfg
	cfg2.MetadataDir = filepath.Join(dir, "md2")
	cfg2.Now = nil
	cfg2.BuildTime = time.Now().Add(24 * time.Hour)
	fresh, err := tuf.New(cfg2, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = fresh.Refresh(context.Background())
	wantErr(t, "Refresh(clock before build time)", err, tuf.ErrClockUnsynced)
}

func TestTimestampValidityRaisesFloor(t *testing.T) {
	repo, _, _, _ := setup(t)
	dir := t.TempDir()
	c := repo.Client(t, func(cfg *tuf.Config) {
		cfg.MetadataDir = filepath.Join(dir, "md")
		cfg.TimestampValidity = publish.DefaultTimestampExpiry
	})
	snap, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if floor := c.TimeFloor(); floor.Before(snap.RefTime) {
		t.Errorf("TimeFloor() = %v, want >= %v", floor, snap.RefTime)
	}
}

// TestRefreshHonoursContext cancels a refresh stuck on a server that never
// answers. The client's HTTP timeout is an hour: if the fetcher ignored the
// context, this test would hang until go test's timeout.
func TestRefreshHonoursContext(t *testing.T) {
	repo, _, _, _ := setup(t)
	c := repo.Client(t, func(cfg *tuf.Config) { cfg.HTTPTimeout = time.Hour })
	block, entered := make(chan struct{}), make(chan struct{}, 1)
	defer close(block)
	repo.Handle("/metadata/timestamp.json", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-block
	}))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-entered
		cancel()
	}()
	_, err := c.Refresh(ctx)
	wantErr(t, "Refresh(cancelled)", err, context.Canceled)
}

func writePartial(t *testing.T, c *tuf.Client, tg tuf.Target, data []byte) {
	t.Helper()
	p := c.BlobPath(tg.SHA256()) + ".partial"
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
