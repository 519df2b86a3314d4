// SPDX-License-Identifier: Apache-2.0

package publish

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// A bundle with its own expiry (ExportOptions.Expires) needs every role a
// gateway verifies while importing it to stay valid as long as its
// timestamp does: a snapshot that expires in 7 days makes a bundle useless
// after 7 days, whatever its timestamp says.

// bundlePlan is what signing a bundle with its own expiry takes, checked
// before anything is signed.
type bundlePlan struct {
	delegated []string // delegated roles to sign anew, sorted
	targets   bool     // sign the top-level targets anew
	snapshot  bool     // sign the snapshot anew
	warnings  []string // roles left to expire before the bundle (they sign none of its targets)
	done      []string // filled by signForBundle: "role vN" signed anew
}

// planBundle decides which roles to sign anew so that the bundle stays
// valid until deadline, and refuses, naming every role in the way, when
// root would expire first or a role that must be signed anew has its keys
// elsewhere. signing lists the roles that sign targets in the bundle.
func (r *Repo) planBundle(deadline time.Time, signing map[string]bool) (*bundlePlan, error) {
	p := &bundlePlan{}
	var problems []string
	limit := time.Time{} // earliest expiry of a role that cannot be signed anew
	block := func(role string, expires time.Time, why string) {
		problems = append(problems, fmt.Sprintf("%s expires at %s, before the bundle would: %s", role, expires.Format(time.RFC3339), why))
		if limit.IsZero() || expires.Before(limit) {
			limit = expires
		}
	}
	if exp := r.root.Signed.Expires; exp.Before(deadline) {
		block(metadata.ROOT, exp, "root is signed offline (extend it with a root rotation first)")
	}
	for _, role := range slices.Sorted(maps.Keys(r.delegated)) {
		exp := r.delegated[role].Signed.Expires
		if !exp.Before(deadline) {
			continue
		}
		dr := r.publishedDelegation(role)
		switch {
		case dr != nil && haveKeys(slices.Concat(r.keys[role], r.signers), dr.KeyIDs, dr.Threshold):
			p.delegated = append(p.delegated, role)
		case signing[role]:
			block(role, exp, "its keys are not here to sign it anew (sign it with its keys, or leave its targets out)")
		default:
			p.warnings = append(p.warnings, fmt.Sprintf("role %s expires at %s, before the bundle; it signs none of the bundle's targets, and gateways reject it after that", role, exp.Format(time.RFC3339)))
		}
	}
	if exp := r.targets.Signed.Expires; exp.Before(deadline) {
		if !r.haveRoleKeys(metadata.TARGETS) {
			block(metadata.TARGETS, exp, "its keys are not here to sign it anew")
		}
		p.targets = true
	}
	if exp := r.snapshot.Signed.Expires; exp.Before(deadline) || p.targets || len(p.delegated) > 0 {
		switch {
		case r.haveRoleKeys(metadata.SNAPSHOT):
		case exp.Before(deadline):
			block(metadata.SNAPSHOT, exp, "its keys are not here to sign it anew")
		default:
			problems = append(problems, "the snapshot keys are not here to list the roles signed anew")
		}
		p.snapshot = true
	}
	if !r.haveRoleKeys(metadata.TIMESTAMP) {
		problems = append(problems, "the timestamp keys are not here to sign the bundle's timestamp")
	}
	if len(problems) > 0 {
		msg := fmt.Sprintf("bundle valid until %s: %s", deadline.Format(time.RFC3339), strings.Join(problems, "; "))
		if left := limit.Sub(r.now()); !limit.IsZero() && left > 0 {
			msg += fmt.Sprintf(" (without those keys, a bundle can be valid for at most %s)", left.Truncate(time.Hour))
		}
		return nil, fmt.Errorf("%s: %w", msg, ErrBundleExpiry)
	}
	return p, nil
}

// ErrBundleExpiry means a bundle cannot be signed to stay valid as long as
// asked: a role it needs expires earlier and cannot be signed anew here.
var ErrBundleExpiry = errors.New("a role expires before the bundle")

// signForBundle signs anew the roles of p (next version, expiry no
// earlier than deadline nor than their usual validity), writing their
// versioned files, and returns the bundle's timestamp: version N+1 of the
// repository's timestamp, listing the (new) snapshot, expiring at deadline.
// The repository's timestamp.json is left alone (publishAfterBundle).
func (r *Repo) signForBundle(p *bundlePlan, deadline time.Time) ([]byte, error) {
	later := func(role string) time.Time {
		if e := r.expires(role); e.After(deadline) {
			return e
		}
		return deadline
	}
	for _, role := range p.delegated {
		next := cloneTargets(r.delegated[role])
		next.Signed.Version++
		next.Signed.Expires = later(metadata.TARGETS)
		dr := r.publishedDelegation(role)
		if err := signWith(r, next, role, r.keys[role], dr.KeyIDs, dr.Threshold); err != nil {
			return nil, err
		}
		data, err := next.ToBytes(true)
		if err != nil {
			return nil, err
		}
		if err := writeFileAtomic(filepath.Join(r.MetadataDir(), fmt.Sprintf("%d.%s.json", next.Signed.Version, role)), data, 0o644); err != nil {
			return nil, err
		}
		r.delegated[role] = next
		p.done = append(p.done, fmt.Sprintf("%s v%d", role, next.Signed.Version))
	}
	if p.targets {
		r.targets.Signed.Version++
		r.targets.Signed.Expires = later(metadata.TARGETS)
		if err := r.writeTargets(); err != nil {
			return nil, err
		}
		p.done = append(p.done, fmt.Sprintf("%s v%d", metadata.TARGETS, r.targets.Signed.Version))
	}
	mf := r.timestamp.Signed.Meta["snapshot.json"]
	if p.snapshot {
		r.snapshot.Signed.Version++
		r.snapshot.Signed.Expires = later(metadata.SNAPSHOT)
		var err error
		if mf, err = r.writeSnapshot(); err != nil {
			return nil, err
		}
		p.done = append(p.done, fmt.Sprintf("%s v%d", metadata.SNAPSHOT, r.snapshot.Signed.Version))
	}
	r.timestamp.Signed.Meta["snapshot.json"] = mf
	ts := clone(r.timestamp)
	ts.Signed.Version++
	ts.Signed.Expires = deadline
	if err := Sign(r, metadata.TIMESTAMP, ts); err != nil {
		return nil, err
	}
	return ts.ToBytes(true)
}

// publishAfterBundle records the bundle's timestamp (version v) in
// DIR/bundles/v.timestamp.json and publishes the repository's timestamp as
// version v+1 with its usual expiry, listing the same snapshot: online
// gateways never see the bundle's version, and a gateway that imported the
// bundle moves past it at its next online refresh instead of meeting a
// rollback.
func (r *Repo) publishAfterBundle(v int64, bundleTimestamp []byte) error {
	if err := writeFileAtomic(filepath.Join(r.dir, "bundles", fmt.Sprintf("%d.timestamp.json", v)), bundleTimestamp, 0o644); err != nil {
		return fmt.Errorf("record the bundle's timestamp: %w", err)
	}
	r.timestamp.Signed.Version = v + 1
	r.timestamp.Signed.Expires = r.expires(metadata.TIMESTAMP)
	if err := r.writeTimestamp(); err != nil {
		return fmt.Errorf("timestamp after the bundle's: %w", err)
	}
	return nil
}

// fillBundleInfo sets the versions and the expiry of the bundle: that of
// the metadata it carries (bundleTimestamp, or the repository's timestamp
// when nil) that expires first among the roles a gateway needs.
func (r *Repo) fillBundleInfo(info *BundleInfo, bundleTimestamp []byte, signing map[string]bool) {
	ts := r.timestamp
	if bundleTimestamp != nil {
		if md, err := metadata.Timestamp().FromBytes(bundleTimestamp); err == nil {
			ts = md
		}
	}
	info.RootVersion = r.root.Signed.Version
	info.TimestampVersion = ts.Signed.Version
	info.SnapshotVersion = r.snapshot.Signed.Version
	info.Expires, info.ExpiresRole = ts.Signed.Expires, metadata.TIMESTAMP
	earlier := func(role string, t time.Time) {
		if t.Before(info.Expires) {
			info.Expires, info.ExpiresRole = t, role
		}
	}
	earlier(metadata.SNAPSHOT, r.snapshot.Signed.Expires)
	earlier(metadata.TARGETS, r.targets.Signed.Expires)
	for _, role := range slices.Sorted(maps.Keys(r.delegated)) {
		if signing[role] {
			earlier(role, r.delegated[role].Signed.Expires)
		}
	}
	earlier(metadata.ROOT, r.root.Signed.Expires)
}

// publishedDelegation returns role's delegation as published in the
// top-level targets (its keys and threshold), or nil.
func (r *Repo) publishedDelegation(role string) *metadata.DelegatedRole {
	if d := r.targets.Signed.Delegations; d != nil {
		for i := range d.Roles {
			if d.Roles[i].Name == role {
				return &d.Roles[i]
			}
		}
	}
	return nil
}

// haveRoleKeys reports whether this Repo holds enough keys of top-level
// role to meet its threshold in the current root.
func (r *Repo) haveRoleKeys(role string) bool {
	rr := r.root.Signed.Roles[role]
	return rr != nil && haveKeys(slices.Concat(r.keys[role], r.signers), rr.KeyIDs, rr.Threshold)
}

// haveKeys reports whether keys hold at least threshold of the allowed ids.
func haveKeys(keys []*privateKey, allowed []string, threshold int) bool {
	n := 0
	for _, k := range keys {
		if contains(allowed, k.id) {
			n++
		}
	}
	return n >= threshold
}
