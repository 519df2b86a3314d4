// SPDX-License-Identifier: Apache-2.0

package tuf_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/fieldgate/fieldgate/tuf/publish"
	"github.com/fieldgate/fieldgate/tuf/tuftest"
)

// fastForward makes the client trust metadata an attacker holding the
// timestamp (and, if snapshot, the snapshot) key signed with version 1000.
func fastForward(t *testing.T, repo *tuftest.Repo, snapshot bool) {
	t.Helper()
	ts := repo.Pub.TimestampMetadata()
	ts.Signed.Version = 1000
	if snapshot {
		sn := repo.Pub.SnapshotMetadata()
		sn.Signed.Version = 1000
		if err := publish.Sign(repo.Pub, "snapshot", sn); err != nil {
			t.Fatal(err)
		}
		if err := publish.WriteMetadata(repo.Pub, "1000.snapshot.json", sn); err != nil {
			t.Fatal(err)
		}
		ts.Signed.Meta["snapshot.json"] = metadata.MetaFile(1000)
	}
	if err := publish.Sign(repo.Pub, "timestamp", ts); err != nil {
		t.Fatal(err)
	}
	if err := publish.WriteMetadata(repo.Pub, "timestamp.json", ts); err != nil {
		t.Fatal(err)
	}
}

// TestFastForwardRecovery: after an attacker fast-forwarded the client's
// timestamp (or snapshot) version, the repository rotates the compromised
// key and publishes normal versions again. The client must recover (TUF
// spec 5.3.11); without the rotation it must keep refusing the lower
// versions.
func TestFastForwardRecovery(t *testing.T) {
	for _, tc := range []struct {
		role     string // key rotated
		snapshot bool   // snapshot fast-forwarded too
	}{
		{"timestamp", false},
		{"snapshot", true},
	} {
		for _, rotate := range []bool{true, false} {
			t.Run(tc.role+"/rotate="+strconv.FormatBool(rotate), func(t *testing.T) {
				repo, c, _, _ := setup(t)
				fastForward(t, repo, tc.snapshot)
				snap, err := c.Refresh(context.Background())
				if err != nil || snap.Versions["timestamp"] != 1000 {
					t.Fatalf("Refresh() of the fast-forwarded repository = %v, %v", snap, err)
				}
				if rotate {
					if err := repo.Pub.Rotate(tc.role); err != nil {
						t.Fatal(err)
					}
				}
				repo.Publish("plc/fw-1.1.bin", []byte("after recovery"), tuftest.Meta("plc", "1.1", 1))
				snap, err = c.Refresh(context.Background())
				if !rotate {
					wantErr(t, "Refresh(lower versions, no key rotation)", err, &metadata.ErrBadVersionNumber{})
					return
				}
				if err != nil {
					t.Fatalf("Refresh() after rotating the %s key = %v, want recovery", tc.role, err)
				}
				findTarget(t, snap, "plc/fw-1.1.bin")
				if snap.Versions["timestamp"] >= 1000 || snap.Versions["root"] != 2 {
					t.Errorf("versions after recovery = %v, want the repository's own (timestamp < 1000, root 2)", snap.Versions)
				}
				// Later refreshes keep working from the recovered state.
				if _, err := c.Refresh(context.Background()); err != nil {
					t.Errorf("Refresh() after recovery = %v", err)
				}
			})
		}
	}
}
