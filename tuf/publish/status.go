// SPDX-License-Identifier: Apache-2.0

package publish

import (
	"fmt"
	"slices"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// RoleStatus describes one published role.
type RoleStatus struct {
	Role      string
	Version   int64 // 0: delegated role not yet published
	Expires   time.Time
	Threshold int
	Keys      int      // keys listed in root (or in the delegation)
	KeysHere  int      // private keys available to this Repo
	Paths     []string // delegated roles: the target paths they are trusted for
}

// Status describes a repository: its roles, its targets and what needs
// attention.
type Status struct {
	Roles      []RoleStatus      // top-level roles, then delegated roles in delegation order
	Targets    []string          // published target names, sorted
	TargetRole map[string]string // published target name -> role that signs it
	Added      []string          // staged, not yet committed
	Removed    []string
	Warnings   []string
	Notes      []string // how roles are signed when it is not here
}

var topLevelRoles = []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP}

// Status reports versions and expiries of every role (delegated roles
// included) and warns about roles that expired or will within a quarter of
// their validity, about uncommitted changes and about roles this Repo
// lacks keys for, except delegated roles whose keys are all elsewhere:
// their vendors sign them (a note says so).
func (r *Repo) Status() Status {
	now := r.now()
	s := Status{TargetRole: map[string]string{}}
	add := func(rs RoleStatus, validity time.Duration) {
		s.Roles = append(s.Roles, rs)
		if rs.Version == 0 {
			s.Warnings = append(s.Warnings, fmt.Sprintf("%s: delegated role not published yet (run commit)", rs.Role))
			return
		}
		switch left := rs.Expires.Sub(now); {
		case left <= 0:
			s.Warnings = append(s.Warnings, fmt.Sprintf("%s expired at %s", rs.Role, rs.Expires.Format(time.RFC3339)))
		case left < validity/4:
			s.Warnings = append(s.Warnings, fmt.Sprintf("%s expires in %s (at %s)", rs.Role, left.Round(time.Minute), rs.Expires.Format(time.RFC3339)))
		}
		switch {
		case rs.Role == metadata.ROOT || rs.KeysHere >= rs.Threshold:
		case rs.KeysHere == 0 && !slices.Contains(topLevelRoles, rs.Role):
			// A delegated role whose keys are all elsewhere: its vendor
			// signs it and the operator takes it in with import-role.
			s.Notes = append(s.Notes, fmt.Sprintf("%s: signed by its vendor (import-role)", rs.Role))
		default:
			s.Warnings = append(s.Warnings, fmt.Sprintf("%s: only %d of %d signing keys available here", rs.Role, rs.KeysHere, rs.Threshold))
		}
	}
	top := func(role string, version int64, expires time.Time) {
		rr := r.root.Signed.Roles[role]
		add(RoleStatus{Role: role, Version: version, Expires: expires,
			Threshold: rr.Threshold, Keys: len(rr.KeyIDs), KeysHere: len(r.keys[role])},
			time.Duration(r.opts.Expiry[role]))
	}
	top(metadata.ROOT, r.root.Signed.Version, r.root.Signed.Expires)
	top(metadata.TARGETS, r.targets.Signed.Version, r.targets.Signed.Expires)
	top(metadata.SNAPSHOT, r.snapshot.Signed.Version, r.snapshot.Signed.Expires)
	top(metadata.TIMESTAMP, r.timestamp.Signed.Version, r.timestamp.Signed.Expires)
	roles := append([]string{metadata.TARGETS}, r.DelegatedRoles()...)
	for _, role := range roles[1:] {
		dr := r.delegation(role)
		rs := RoleStatus{Role: role, Threshold: dr.Threshold, Keys: len(dr.KeyIDs), KeysHere: len(r.keys[role]), Paths: dr.Paths}
		if md := r.delegated[role]; md != nil {
			rs.Version, rs.Expires = md.Signed.Version, md.Signed.Expires
		}
		add(rs, time.Duration(r.opts.Expiry[metadata.TARGETS]))
	}
	for _, role := range roles {
		published := r.targets
		if role != metadata.TARGETS {
			published = r.delegated[role]
		}
		staged, _ := r.stagedRole(role)
		if published != nil {
			for name, tf := range published.Signed.Targets {
				s.Targets = append(s.Targets, name)
				s.TargetRole[name] = role
				if st, ok := staged.Signed.Targets[name]; !ok {
					s.Removed = append(s.Removed, name)
				} else if !st.Equal(*tf) {
					s.Added = append(s.Added, name)
				}
			}
		}
		for name := range staged.Signed.Targets {
			if published == nil || published.Signed.Targets[name] == nil {
				s.Added = append(s.Added, name)
			}
		}
	}
	slices.Sort(s.Targets)
	slices.Sort(s.Added)
	slices.Sort(s.Removed)
	if len(s.Added)+len(s.Removed) > 0 {
		s.Warnings = append(s.Warnings, fmt.Sprintf("%d staged change(s) not committed", len(s.Added)+len(s.Removed)))
	}
	return s
}
