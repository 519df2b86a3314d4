// SPDX-License-Identifier: Apache-2.0

package publish

import (
	"fmt"
	"path/filepath"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// ResignRoot publishes root version N+1 with a fresh expiry, signed with the
// root keys: the way to extend root's validity.
func (r *Repo) ResignRoot() error {
	r.root.Signed.Version++
	r.root.Signed.Expires = r.expires(metadata.ROOT)
	if err := r.signRoot(nil); err != nil {
		return fmt.Errorf("sign root: %w", err)
	}
	return nil
}

// ResignTargets makes the next Commit publish a new targets version even if
// nothing changed (to extend its expiry).
func (r *Repo) ResignTargets() { r.resign[metadata.TARGETS] = true }

// The functions below give test fixtures (tuftest) the parts needed to build
// metadata a correct publisher never writes: rolled-back versions, mixed
// snapshots, wrong signatures.

// RootMetadata returns a copy of the current root.
func (r *Repo) RootMetadata() *metadata.Metadata[metadata.RootType] { return clone(r.root) }

// TargetsMetadata returns a copy of the published targets.
func (r *Repo) TargetsMetadata() *metadata.Metadata[metadata.TargetsType] { return clone(r.targets) }

// SnapshotMetadata returns a copy of the current snapshot.
func (r *Repo) SnapshotMetadata() *metadata.Metadata[metadata.SnapshotType] {
	return clone(r.snapshot)
}

// TimestampMetadata returns a copy of the current timestamp.
func (r *Repo) TimestampMetadata() *metadata.Metadata[metadata.TimestampType] {
	return clone(r.timestamp)
}

// Sign replaces md's signatures with those of the keys this repository holds
// for role (as listed in the current root).
func Sign[T metadata.Roles](r *Repo, role string, md *metadata.Metadata[T]) error {
	rr, ok := r.root.Signed.Roles[role]
	if !ok {
		return fmt.Errorf("sign %s: not a top-level role", role)
	}
	return signWith(r, md, role, r.keys[role], rr.KeyIDs, rr.Threshold)
}

// WriteMetadata writes md to DIR/repository/metadata/file as published
// bytes. The Repo's own state is not updated: Open the directory again to
// continue from what is on disk.
func WriteMetadata[T metadata.Roles](r *Repo, file string, md *metadata.Metadata[T]) error {
	data, err := md.ToBytes(true)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(r.MetadataDir(), file), data, 0o644)
}

func clone[T metadata.Roles](md *metadata.Metadata[T]) *metadata.Metadata[T] {
	data, err := md.ToBytes(false)
	if err != nil {
		panic(err)
	}
	c, err := (&metadata.Metadata[T]{}).FromBytes(data)
	if err != nil {
		panic(err)
	}
	return c
}

// DelegatedMetadata returns a copy of delegated role's published metadata,
// or nil if it is not published.
func (r *Repo) DelegatedMetadata(role string) *metadata.Metadata[metadata.TargetsType] {
	md := r.delegated[role]
	if md == nil {
		return nil
	}
	return clone(md)
}

// AddTargetBytesUnchecked stages a target in role without checking that the
// role is trusted for its path or that no other role lists it: test
// fixtures use it to build claims a client must refuse.
func (r *Repo) AddTargetBytesUnchecked(role, name string, data []byte, meta tuf.Meta) error {
	return r.withTempFile(data, func(p string) error { return r.addTarget(role, name, p, meta) })
}
