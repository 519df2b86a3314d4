package publish

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Delegation describes a delegated targets role: a vendor that signs its
// own firmware, trusted only for the target paths listed.
//
// Delegations made here are one level deep (the top-level targets role
// delegates to each vendor role), so they always form a tree with unique
// role names: go-tuf verifies a role delegated twice only against the first
// delegator's keys.
type Delegation struct {
	// Paths are TUF path patterns the role may sign, e.g. "acme-io16/*".
	// "*" and "?" match within one path segment only ("acme/*" does not
	// match "acme/a/b").
	Paths []string
	// KeysDir holds the role's private keys (e.g. the vendor's own
	// directory); default DIR/keys/<role>. Keys found there are used (all of
	// them are listed in the delegation); if there are none, Threshold new
	// keys of the repository's key type are generated there.
	KeysDir string
	// Threshold of signatures; default 1.
	Threshold int
	// Terminating stops the search for a path this role matches: no later
	// delegation is consulted for it.
	Terminating bool
}

var roleNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// CheckRoleName accepts names of delegated roles: 1..64 of [a-z0-9._-],
// starting with a letter or digit, not a top-level role's name nor
// "retired".
func CheckRoleName(role string) error {
	if !roleNameRE.MatchString(role) {
		return fmt.Errorf("role name %q: want 1..64 of a-z 0-9 . _ - starting with a letter or digit", role)
	}
	if slices.Contains(topRoles, role) {
		return fmt.Errorf("role name %q is a top-level role", role)
	}
	if role == "retired" { // DIR/keys/retired holds rotated-out keys
		return fmt.Errorf("role name %q is reserved", role)
	}
	return nil
}

// DelegatedRoles returns the names of the delegated roles (staged ones
// included), in delegation order.
func (r *Repo) DelegatedRoles() []string {
	var out []string
	if d := r.staged.Signed.Delegations; d != nil {
		for _, dr := range d.Roles {
			out = append(out, dr.Name)
		}
	}
	return out
}

func (r *Repo) delegation(role string) *metadata.DelegatedRole {
	if d := r.staged.Signed.Delegations; d != nil {
		for i := range d.Roles {
			if d.Roles[i].Name == role {
				return &d.Roles[i]
			}
		}
	}
	return nil
}

// Delegate stages a delegation from the top-level targets role to role,
// trusted for d.Paths and signed with the keys in d.KeysDir (generated if
// there are none). Delegating an existing role again updates its paths and
// terminating flag (its keys stay); its staged targets must fit the new
// paths. Commit publishes it.
func (r *Repo) Delegate(role string, d Delegation) error {
	if err := CheckRoleName(role); err != nil {
		return fmt.Errorf("delegate %s: %w", role, err)
	}
	if len(d.Paths) == 0 {
		return fmt.Errorf("delegate %s: at least one path pattern is required", role)
	}
	for _, p := range d.Paths {
		if err := checkPathPattern(p); err != nil {
			return fmt.Errorf("delegate %s: %w", role, err)
		}
	}
	if existing := r.delegation(role); existing != nil {
		probe := metadata.DelegatedRole{Paths: d.Paths}
		for name := range r.stagedDelegated[role].Signed.Targets {
			if ok, _ := probe.IsDelegatedPath(name); !ok {
				return fmt.Errorf("delegate %s: staged target %s would be outside the new paths %s", role, name, strings.Join(d.Paths, ", "))
			}
		}
		existing.Paths = slices.Clone(d.Paths)
		existing.Terminating = d.Terminating
		if err := r.saveStaged(); err != nil {
			return fmt.Errorf("delegate %s: %w", role, err)
		}
		return nil
	}
	if d.Threshold == 0 {
		d.Threshold = 1
	}
	if d.Threshold < 1 || d.Threshold > 16 {
		return fmt.Errorf("delegate %s: threshold %d, want 1..16", role, d.Threshold)
	}
	if d.KeysDir != "" {
		if r.opts.KeysDirs == nil {
			r.opts.KeysDirs = map[string]string{}
		}
		r.opts.KeysDirs[role] = d.KeysDir
	}
	keys, err := loadKeys(r.keyDir(role))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delegate %s: %w", role, err)
	}
	for len(keys) < d.Threshold {
		priv, err := generateKey(r.opts.KeyType)
		if err != nil {
			return fmt.Errorf("delegate %s: %w", role, err)
		}
		k, err := newPrivateKey(priv)
		if err != nil {
			return fmt.Errorf("delegate %s: %w", role, err)
		}
		if err := saveKey(r.keyDir(role), k); err != nil {
			return fmt.Errorf("delegate %s: save key: %w", role, err)
		}
		keys = append(keys, k)
	}
	r.keys[role] = keys
	if r.staged.Signed.Delegations == nil {
		r.staged.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}}
	}
	del := r.staged.Signed.Delegations
	if del.Keys == nil {
		del.Keys = map[string]*metadata.Key{}
	}
	dr := metadata.DelegatedRole{Name: role, Threshold: d.Threshold, Terminating: d.Terminating, Paths: slices.Clone(d.Paths)}
	for _, k := range keys {
		del.Keys[k.id] = k.public
		dr.KeyIDs = append(dr.KeyIDs, k.id)
	}
	del.Roles = append(del.Roles, dr)
	r.stagedDelegated[role] = metadata.Targets(r.expires(metadata.TARGETS))
	if err := r.saveStagedRole(role); err != nil {
		return fmt.Errorf("delegate %s: %w", role, err)
	}
	if err := r.saveStaged(); err != nil {
		return fmt.Errorf("delegate %s: %w", role, err)
	}
	if err := r.saveOptions(); err != nil {
		return fmt.Errorf("delegate %s: %w", role, err)
	}
	return nil
}

// checkPathPattern accepts a clean relative pattern with valid glob syntax.
func checkPathPattern(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || path.Clean(p) != p || strings.HasPrefix(p, "../") || p == ".." {
		return fmt.Errorf("path pattern %q: want a clean relative pattern such as acme-io16/*", p)
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("path pattern %q: %w", p, err)
	}
	return nil
}

// checkScope refuses a target name that role is not trusted for.
func (r *Repo) checkScope(role, name string) error {
	if role == metadata.TARGETS {
		return nil
	}
	dr := r.delegation(role)
	if dr == nil {
		return fmt.Errorf("no delegated role %q (create it with delegate)", role)
	}
	if ok, _ := dr.IsDelegatedPath(name); !ok {
		return fmt.Errorf("outside the paths delegated to role %s (%s)", role, strings.Join(dr.Paths, ", "))
	}
	return nil
}

// stagedRole returns the working copy of role's targets.
func (r *Repo) stagedRole(role string) (*metadata.Metadata[metadata.TargetsType], error) {
	if role == metadata.TARGETS {
		return r.staged, nil
	}
	md, ok := r.stagedDelegated[role]
	if !ok {
		return nil, fmt.Errorf("no delegated role %q (create it with delegate)", role)
	}
	return md, nil
}

func (r *Repo) saveStagedRole(role string) error {
	if role == metadata.TARGETS {
		return r.saveStaged()
	}
	md := r.stagedDelegated[role]
	md.ClearSignatures()
	data, err := md.ToBytes(true)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(r.dir, "staged", role+".json"), data, 0o644)
}

// loadDelegated reads the published delegated roles (those the snapshot
// lists) and the working copies of every staged delegation.
func (r *Repo) loadDelegated() error {
	md := r.MetadataDir()
	for file, mf := range r.snapshot.Signed.Meta {
		role, ok := strings.CutSuffix(file, ".json")
		if !ok || role == metadata.TARGETS {
			continue
		}
		if err := CheckRoleName(role); err != nil {
			return fmt.Errorf("snapshot lists %s: %w", file, err)
		}
		t, err := metadata.Targets().FromFile(filepath.Join(md, strconv.FormatInt(mf.Version, 10)+"."+file))
		if err != nil {
			return err
		}
		r.delegated[role] = t
	}
	for _, role := range r.DelegatedRoles() {
		if err := CheckRoleName(role); err != nil {
			return err
		}
		t, err := metadata.Targets().FromFile(filepath.Join(r.dir, "staged", role+".json"))
		switch {
		case err == nil:
			r.stagedDelegated[role] = t
		case errors.Is(err, fs.ErrNotExist) && r.delegated[role] != nil:
			r.stagedDelegated[role] = cloneTargets(r.delegated[role])
		default:
			return fmt.Errorf("staged role %s: %w", role, err)
		}
	}
	return nil
}

// commitDelegated signs and writes a new version of every delegated role
// whose targets changed, whose keys changed, or that has less than half its
// validity left.
func (r *Repo) commitDelegated() error {
	validity := time.Duration(r.opts.Expiry[metadata.TARGETS])
	for _, role := range r.DelegatedRoles() {
		published := r.delegated[role]
		if published != nil && !r.rolePending(role) && published.Signed.Expires.Sub(r.now()) >= validity/2 {
			continue
		}
		next := cloneTargets(r.stagedDelegated[role])
		next.Signed.Version = 1
		if published != nil {
			next.Signed.Version = published.Signed.Version + 1
		}
		next.Signed.Expires = r.expires(metadata.TARGETS)
		dr := r.delegation(role)
		if err := signWith(next, role, r.keys[role], dr.KeyIDs, dr.Threshold); err != nil {
			return err
		}
		data, err := next.ToBytes(true)
		if err != nil {
			return err
		}
		file := fmt.Sprintf("%d.%s.json", next.Signed.Version, role)
		if err := writeFileAtomic(filepath.Join(r.MetadataDir(), file), data, 0o644); err != nil {
			return err
		}
		r.delegated[role] = next
		delete(r.resign, role)
	}
	return nil
}
