// SPDX-License-Identifier: Apache-2.0

package tuf_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/fieldgate/fieldgate/tuf/publish"
	"github.com/fieldgate/fieldgate/tuf/tuftest"
)

// addTimestampKey publishes root N+1 listing one more timestamp key (whose
// private half is thrown away): the old key alone still meets the
// threshold, so nothing was rotated away.
func addTimestampKey(t *testing.T, repo *tuftest.Repo) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	root := repo.Pub.RootMetadata()
	if err := root.Signed.AddKey(key, metadata.TIMESTAMP); err != nil {
		t.Fatal(err)
	}
	root.Signed.Version++
	if err := publish.Sign(repo.Pub, metadata.ROOT, root); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"2.root.json", "root.json"} {
		if err := publish.WriteMetadata(repo.Pub, f, root); err != nil {
			t.Fatal(err)
		}
	}
	repo.Reopen()
}

// TestRollbackProtectionKeptWithoutRotation: a root that only adds a
// timestamp key keeps the cached timestamp, so a replayed older timestamp is
// refused on the first refresh after it; a root that rotates the key away
// drops the cache so the repository can recover (TUF spec 5.3.11).
func TestRollbackProtectionKeptWithoutRotation(t *testing.T) {
	t.Run("key added", func(t *testing.T) {
		repo, c, _, _ := setup(t)
		old := repo.ReadMetadata("timestamp.json")
		repo.Publish("plc/fw-1.1.bin", []byte("newer"), tuftest.Meta("plc", "1.1", 1))
		snap, err := c.Refresh(context.Background())
		if err != nil {
			t.Fatalf("Refresh() = %v", err)
		}
		cached := snap.Versions["timestamp"]
		addTimestampKey(t, repo)
		repo.WriteMetadata("timestamp.json", old) // replay
		snap, err = c.Refresh(context.Background())
		if err == nil {
			t.Fatalf("Refresh(replayed timestamp after a key was added) accepted timestamp version %d (cached %d), want a rollback error", snap.Versions["timestamp"], cached)
		}
		wantErr(t, "Refresh(replayed timestamp after a key was added)", err, &metadata.ErrBadVersionNumber{})
	})
	t.Run("key rotated away", func(t *testing.T) {
		repo, c, _, _ := setup(t)
		fastForward(t, repo, false)
		if _, err := c.Refresh(context.Background()); err != nil {
			t.Fatalf("Refresh(fast-forwarded) = %v", err)
		}
		if err := repo.Pub.Rotate(metadata.TIMESTAMP); err != nil {
			t.Fatal(err)
		}
		repo.Publish("plc/fw-1.1.bin", []byte("after recovery"), tuftest.Meta("plc", "1.1", 1))
		snap, err := c.Refresh(context.Background())
		if err != nil {
			t.Fatalf("Refresh() after rotating the timestamp key = %v, want recovery", err)
		}
		if v := snap.Versions["timestamp"]; v >= 1000 {
			t.Errorf("timestamp version after rotation = %d, want the repository's own (< 1000)", v)
		}
	})
}
