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
	Version   int64
	Expires   time.Time
	Threshold int
	Keys      int // keys listed in root
	KeysHere  int // private keys available to this Repo
}

// Status describes a repository: its roles, its targets and what needs
// attention.
type Status struct {
	Roles    []RoleStatus
	Targets  []string // published target names, sorted
	Added    []string // staged, not yet committed
	Removed  []string
	Warnings []string
}

// Status reports versions and expiries of every role and warns about roles
// that expired or will within a quarter of their validity, and about
// uncommitted changes.
func (r *Repo) Status() Status {
	now := r.now()
	var s Status
	add := func(role string, version int64, expires time.Time) {
		rr := r.root.Signed.Roles[role]
		s.Roles = append(s.Roles, RoleStatus{
			Role: role, Version: version, Expires: expires,
			Threshold: rr.Threshold, Keys: len(rr.KeyIDs), KeysHere: len(r.keys[role]),
		})
		validity := time.Duration(r.opts.Expiry[role])
		switch left := expires.Sub(now); {
		case left <= 0:
			s.Warnings = append(s.Warnings, fmt.Sprintf("%s expired at %s", role, expires.Format(time.RFC3339)))
		case left < validity/4:
			s.Warnings = append(s.Warnings, fmt.Sprintf("%s expires in %s (at %s)", role, left.Round(time.Minute), expires.Format(time.RFC3339)))
		}
		if len(r.keys[role]) < rr.Threshold && role != metadata.ROOT {
			s.Warnings = append(s.Warnings, fmt.Sprintf("%s: only %d of %d signing keys available here", role, len(r.keys[role]), rr.Threshold))
		}
	}
	add(metadata.ROOT, r.root.Signed.Version, r.root.Signed.Expires)
	add(metadata.TARGETS, r.targets.Signed.Version, r.targets.Signed.Expires)
	add(metadata.SNAPSHOT, r.snapshot.Signed.Version, r.snapshot.Signed.Expires)
	add(metadata.TIMESTAMP, r.timestamp.Signed.Version, r.timestamp.Signed.Expires)
	for name, tf := range r.targets.Signed.Targets {
		s.Targets = append(s.Targets, name)
		if st, ok := r.staged.Signed.Targets[name]; !ok {
			s.Removed = append(s.Removed, name)
		} else if !st.Equal(*tf) {
			s.Added = append(s.Added, name)
		}
	}
	for name := range r.staged.Signed.Targets {
		if _, ok := r.targets.Signed.Targets[name]; !ok {
			s.Added = append(s.Added, name)
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
