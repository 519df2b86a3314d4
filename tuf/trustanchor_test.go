// SPDX-License-Identifier: Apache-2.0

package tuf_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/tuftest"
)

// TestTrustFallbackVisible: when the newest cached root is lost, the client
// refreshes from an older one and says so in Snapshot.TrustFallback on every
// refresh, while the repository withholds the newer roots, until a refresh
// reaches the newest trusted root again.
func TestTrustFallbackVisible(t *testing.T) {
	repo := tuftest.New(t)
	repo.Publish("plc/fw-1.0.bin", []byte("fw"), tuftest.Meta("plc", "1.0", 1))
	for range 2 {
		if err := repo.Pub.ResignRoot(); err != nil {
			t.Fatal(err)
		}
	}
	var md string
	c := repo.Client(t, func(cfg *tuf.Config) { md = cfg.MetadataDir })
	ctx := context.Background()
	refresh := func(what string) *tuf.Snapshot {
		t.Helper()
		snap, err := c.Refresh(ctx)
		if err != nil {
			t.Fatalf("Refresh(%s) = %v", what, err)
		}
		return snap
	}
	if snap := refresh("first"); snap.TrustFallback != "" || snap.Versions["root"] != 3 {
		t.Fatalf("first Refresh(): root %d, TrustFallback %q; want 3, \"\"", snap.Versions["root"], snap.TrustFallback)
	}

	// Both cached roots are lost; the repository withholds roots 2 and 3.
	for _, p := range []string{filepath.Join(md, "root.json"), filepath.Join(md, "last-known-good", "root.json")} {
		if err := os.WriteFile(p, []byte("{garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"2.root.json", "3.root.json"} {
		repo.Handle("/metadata/"+f, http.NotFoundHandler())
	}
	for _, what := range []string{"from the shipped root", "again, newer roots still withheld"} {
		snap := refresh(what)
		t.Logf("Refresh(%s).TrustFallback = %s", what, snap.TrustFallback)
		if snap.Versions["root"] != 1 {
			t.Fatalf("Refresh(%s): root version %d, want 1", what, snap.Versions["root"])
		}
		if !strings.Contains(snap.TrustFallback, "shipped root") || !strings.Contains(snap.TrustFallback, "version 3") {
			t.Errorf("Refresh(%s).TrustFallback = %q, want the shipped root and version 3 named", what, snap.TrustFallback)
		}
	}

	// The roots are served again: the client walks forward and the flag clears.
	for _, f := range []string{"2.root.json", "3.root.json"} {
		repo.Handle("/metadata/"+f, nil)
	}
	for _, what := range []string{"newer roots served again", "after recovery"} {
		if snap := refresh(what); snap.TrustFallback != "" || snap.Versions["root"] != 3 {
			t.Errorf("Refresh(%s): root %d, TrustFallback %q; want 3, \"\"", what, snap.Versions["root"], snap.TrustFallback)
		}
	}
}
