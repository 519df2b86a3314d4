// SPDX-License-Identifier: Apache-2.0

package tuf_test

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/tuftest"
)

func payload(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

func findTarget(t *testing.T, snap *tuf.Snapshot, name string) tuf.Target {
	t.Helper()
	for _, tg := range snap.Targets {
		if tg.Name == name {
			return tg
		}
	}
	t.Fatalf("target %s not in snapshot (%d targets)", name, len(snap.Targets))
	return tuf.Target{}
}

func TestRefreshSelectFetch(t *testing.T) {
	repo := tuftest.New(t)
	fw := payload(3<<20+17, 1)
	repo.Publish("acme-io16/fw-2.4.1.bin", fw, tuftest.Meta("acme-io16-rev3", "2.4.1", 3))
	repo.Publish("acme-io16/fw-2.3.0.bin", payload(1000, 2), tuftest.Meta("acme-io16-rev3", "2.3.0", 2))

	c := repo.Client(t, nil)
	ctx := context.Background()
	snap, err := c.Refresh(ctx)
	if err != nil {
		t.Fatalf("Refresh() = %v", err)
	}
	if got, want := len(snap.Targets), 2; got != want {
		t.Fatalf("Refresh() targets = %d, want %d", got, want)
	}
	if snap.Versions["targets"] != 3 || snap.Versions["snapshot"] != 3 || snap.Versions["root"] != 1 {
		t.Errorf("Refresh() versions = %v, want targets 3, snapshot 3, root 1", snap.Versions)
	}
	tg, ok, reason := tuf.Select(snap.Targets, "acme-io16-rev3", "2.3.0", 2)
	if !ok || tg.Name != "acme-io16/fw-2.4.1.bin" {
		t.Fatalf("Select() = %s, %v, %q; want fw-2.4.1", tg.Name, ok, reason)
	}
	var last int64
	path, err := c.Fetch(ctx, tg, func(done, total int64) { last = done })
	if err != nil {
		t.Fatalf("Fetch() = %v", err)
	}
	if last != int64(len(fw)) {
		t.Errorf("Fetch() last progress = %d, want %d", last, len(fw))
	}
	if path != c.BlobPath(tg.SHA256()) {
		t.Errorf("Fetch() path = %s, want %s", path, c.BlobPath(tg.SHA256()))
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, fw) {
		t.Fatalf("blob content differs from the published target (err %v)", err)
	}
	if err := tuf.VerifyFile(path, tg); err != nil {
		t.Errorf("VerifyFile() = %v", err)
	}
	n := repo.CountRequests("GET /targets/")
	if _, err := c.Fetch(ctx, tg, nil); err != nil {
		t.Fatalf("second Fetch() = %v", err)
	}
	if got := repo.CountRequests("GET /targets/"); got != n {
		t.Errorf("second Fetch() made %d target requests, want 0", got-n)
	}
	// A second refresh with nothing new works (fresh Updater each time).
	if _, err := c.Refresh(ctx); err != nil {
		t.Fatalf("second Refresh() = %v", err)
	}
}
