// SPDX-License-Identifier: Apache-2.0

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
	// KeysDir holds the role's private keys; default DIR/keys/<role>. Keys
	// found there are used (all of them are listed in the delegation); if
	// there are none, Threshold new keys of the repository's key type are
	// generated there. Not together with Keys.
	KeysDir string
	// Keys are the role's public keys when its private keys are held
	// elsewhere: a vendor signs the role on its own machine (Vendor) and the
	// operator takes the signed metadata in with ImportRole. The repository
	// never holds these private keys.
	Keys []*metadata.Key
	// Threshold of signatures; 0 means 1 for a new role and the current
	// threshold for an existing one.
	Threshold int
	// Terminating stops the search for a path this role matches: no later
	// delegation is consulted for it.
	Terminating bool
	// ReplaceKeys allows Delegate to change the keys (KeysDir or Keys) or
	// threshold of an existing role. Without it a change is refused: the
	// role's keys change only when someone says so.
	ReplaceKeys bool
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
// trusted for d.Paths and signed with d.Keys (public keys; the role's
// metadata is signed elsewhere and imported) or with the keys in d.KeysDir
// (generated if there are none). Delegating an existing role again updates
// its paths and terminating flag; its staged targets must fit the new
// paths. Its keys and threshold change only with d.ReplaceKeys (as Rotate
// does): keys or a threshold that differ from the current ones are refused
// without it. Commit publishes it.
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
	if d.KeysDir != "" && len(d.Keys) > 0 {
		return fmt.Errorf("delegate %s: give public keys or a keys directory, not both", role)
	}
	if d.Threshold < 0 || d.Threshold > 16 {
		return fmt.Errorf("delegate %s: threshold %d, want 1..16", role, d.Threshold)
	}
	if existing := r.delegation(role); existing != nil {
		return r.redelegate(role, existing, d)
	}
	if d.ReplaceKeys {
		return fmt.Errorf("delegate %s: no such role to replace the keys of", role)
	}
	if d.Threshold == 0 {
		d.Threshold = 1
	}
	var keys []*privateKey
	pubs := d.Keys
	if len(pubs) == 0 {
		dir := d.KeysDir
		if dir == "" {
			dir = r.keyDir(role)
		}
		var err error
		if keys, pubs, err = r.localKeys(role, dir, d.Threshold); err != nil {
			return fmt.Errorf("delegate %s: %w", role, err)
		}
	}
	ids, err := keyIDs(pubs)
	if err != nil {
		return fmt.Errorf("delegate %s: %w", role, err)
	}
	if d.Threshold > len(ids) {
		return fmt.Errorf("delegate %s: threshold %d but %d key(s)", role, d.Threshold, len(ids))
	}
	if d.KeysDir != "" {
		if r.opts.KeysDirs == nil {
			r.opts.KeysDirs = map[string]string{}
		}
		r.opts.KeysDirs[role] = d.KeysDir
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
	for i, k := range pubs {
		del.Keys[ids[i]] = k
		dr.KeyIDs = append(dr.KeyIDs, ids[i])
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

// redelegate is Delegate for an existing role: new paths, and new keys or
// threshold only with d.ReplaceKeys.
func (r *Repo) redelegate(role string, existing *metadata.DelegatedRole, d Delegation) error {
	probe := metadata.DelegatedRole{Paths: d.Paths}
	for name := range r.stagedDelegated[role].Signed.Targets {
		if ok, _ := probe.IsDelegatedPath(name); !ok {
			return fmt.Errorf("delegate %s: staged target %s would be outside the new paths %s", role, name, strings.Join(d.Paths, ", "))
		}
	}
	threshold := d.Threshold
	if threshold == 0 {
		threshold = existing.Threshold
	}
	var (
		keys    []*privateKey
		pubs    = d.Keys
		newKeys = len(d.Keys) > 0 || d.KeysDir != ""
	)
	if d.KeysDir != "" {
		var err error
		// Generate only once the change is known to be wanted.
		gen := 0
		if d.ReplaceKeys {
			gen = threshold
		}
		var local []*metadata.Key
		if keys, local, err = r.localKeys(role, d.KeysDir, gen); err != nil {
			return fmt.Errorf("delegate %s: %w", role, err)
		}
		pubs = append(pubs, local...)
	}
	ids, err := keyIDs(pubs)
	if err != nil {
		return fmt.Errorf("delegate %s: %w", role, err)
	}
	same := !newKeys || sameSet(ids, existing.KeyIDs)
	if d.ReplaceKeys && !newKeys {
		return fmt.Errorf("delegate %s: --replace-keys needs the new keys (--key-file PUB or --keys-dir DIR)", role)
	}
	if !d.ReplaceKeys && (!same || threshold != existing.Threshold) {
		what := fmt.Sprintf("threshold %d (now %d)", threshold, existing.Threshold)
		if !same {
			what = "other keys"
			if len(ids) == 0 {
				what = "a keys directory without the role's keys"
			}
		}
		return fmt.Errorf("delegate %s: the role exists with key(s) %s at threshold %d, and this gives %s: "+
			"changing a role's keys must be explicit: repeat with --replace-keys, or run rotate DIR %s --key-file NEW.pub",
			role, strings.Join(existing.KeyIDs, ", "), existing.Threshold, what, role)
	}
	existing.Paths = slices.Clone(d.Paths)
	existing.Terminating = d.Terminating
	if d.ReplaceKeys {
		if err := r.replaceKeys(role, keys, pubs, threshold, d.KeysDir); err != nil {
			return fmt.Errorf("delegate %s: %w", role, err)
		}
		return nil
	}
	if err := r.saveStaged(); err != nil {
		return fmt.Errorf("delegate %s: %w", role, err)
	}
	return nil
}

// localKeys returns the keys in dir and their public keys, generating keys
// of the repository's type there until there are at least n.
func (r *Repo) localKeys(role, dir string, n int) ([]*privateKey, []*metadata.Key, error) {
	keys, err := loadKeys(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	for len(keys) < n {
		priv, err := generateKey(r.opts.KeyType)
		if err != nil {
			return nil, nil, err
		}
		k, err := newPrivateKey(priv)
		if err != nil {
			return nil, nil, err
		}
		if err := r.saveKey(dir, k); err != nil {
			return nil, nil, fmt.Errorf("save %s key: %w", role, err)
		}
		keys = append(keys, k)
	}
	pubs := make([]*metadata.Key, 0, len(keys))
	for _, k := range keys {
		pub, err := r.publicKey(k, role)
		if err != nil {
			return nil, nil, err
		}
		pubs = append(pubs, pub)
	}
	return keys, pubs, nil
}

func keyIDs(keys []*metadata.Key) ([]string, error) {
	var ids []string
	for _, k := range keys {
		id, err := k.ID()
		if err != nil {
			return nil, err
		}
		if slices.Contains(ids, id) {
			return nil, fmt.Errorf("key %s given twice", id)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// RotateDelegated replaces the keys of delegated role and stages the
// delegation with them (Commit signs the top-level targets with it). With
// pubs, the new keys are those public keys (a vendor holds the private
// ones and signs the role's next metadata with them); without, threshold
// new keys are generated in the role's keys directory, which the role must
// use already. threshold 0 keeps the current one. The old keys are removed
// from the delegation, so metadata they sign no longer verifies (their
// private keys under DIR/keys are removed, or moved to DIR/keys/retired
// with Options.KeepRetired); imported metadata waiting for Commit is
// discarded.
func (r *Repo) RotateDelegated(role string, pubs []*metadata.Key, threshold int) error {
	dr := r.delegation(role)
	if dr == nil {
		return fmt.Errorf("rotate %s: no delegated role %q", role, role)
	}
	if threshold == 0 {
		threshold = dr.Threshold
	}
	if threshold < 1 || threshold > 16 {
		return fmt.Errorf("rotate %s: threshold %d, want 1..16", role, threshold)
	}
	var keys []*privateKey
	if len(pubs) == 0 {
		if !haveKeys(r.keys[role], dr.KeyIDs, 1) {
			return fmt.Errorf("rotate %s: its private keys are not here (a vendor holds them): give the new public key(s) with --key-file NEW.pub", role)
		}
		for range threshold {
			priv, err := generateKey(r.opts.KeyType)
			if err != nil {
				return fmt.Errorf("rotate %s: %w", role, err)
			}
			k, err := newPrivateKey(priv)
			if err != nil {
				return fmt.Errorf("rotate %s: %w", role, err)
			}
			if err := r.saveKey(r.keyDir(role), k); err != nil {
				return fmt.Errorf("rotate %s: save key: %w", role, err)
			}
			keys = append(keys, k)
			pubs = append(pubs, k.public) // just generated: known
		}
	}
	ids, err := keyIDs(pubs)
	if err != nil {
		return fmt.Errorf("rotate %s: %w", role, err)
	}
	for _, id := range ids {
		if slices.Contains(dr.KeyIDs, id) {
			return fmt.Errorf("rotate %s: key %s is already one of the role's keys: a rotation needs new keys", role, id)
		}
	}
	if err := r.replaceKeys(role, keys, pubs, threshold, ""); err != nil {
		return fmt.Errorf("rotate %s: %w", role, err)
	}
	return nil
}

// replaceKeys lists pubs (and only them) as role's keys at threshold in the
// staged delegation. keys are the private keys held here (none for a vendor
// role); keysDir, if set, becomes the role's keys directory.
func (r *Repo) replaceKeys(role string, keys []*privateKey, pubs []*metadata.Key, threshold int, keysDir string) error {
	ids, err := keyIDs(pubs)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return errors.New("no keys")
	}
	if threshold > len(ids) {
		return fmt.Errorf("threshold %d but %d key(s)", threshold, len(ids))
	}
	dr := r.delegation(role)
	del := r.staged.Signed.Delegations
	old := dr.KeyIDs
	dr.KeyIDs, dr.Threshold = ids, threshold
	for i, k := range pubs {
		del.Keys[ids[i]] = k
	}
	for id := range del.Keys {
		used := false
		for _, other := range del.Roles {
			used = used || slices.Contains(other.KeyIDs, id)
		}
		if !used {
			delete(del.Keys, id)
		}
	}
	var retire []*privateKey
	for _, k := range r.keys[role] {
		if !slices.Contains(old, k.id) || slices.Contains(ids, k.id) || k.path == "" {
			continue
		}
		// Only keys the repository keeps under DIR/keys are retired; a
		// directory given with --keys-dir belongs to whoever gave it.
		if rel, err := filepath.Rel(filepath.Join(r.dir, "keys"), k.path); err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		retire = append(retire, k)
	}
	// The same rule as rotate: the replaced keys are removed, or moved to
	// DIR/keys/retired with Options.KeepRetired (retireKeys).
	r.keys[role] = retire
	if err := r.retireKeys(role, nil); err != nil {
		return err
	}
	r.keys[role] = keys
	if keysDir != "" {
		if r.opts.KeysDirs == nil {
			r.opts.KeysDirs = map[string]string{}
		}
		r.opts.KeysDirs[role] = keysDir
	} else if len(keys) == 0 {
		delete(r.opts.KeysDirs, role)
	}
	if len(keys) > 0 {
		r.resign[role] = true
	}
	if err := r.discardImport(role); err != nil {
		return err
	}
	if err := r.saveStaged(); err != nil {
		return err
	}
	return r.saveOptions()
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
// validity left. A role whose keys are held elsewhere (a vendor's) is
// published only from metadata taken in with ImportRole, bytes unchanged;
// without such metadata it is left as published, and local changes to it
// are refused.
func (r *Repo) commitDelegated() error {
	validity := time.Duration(r.opts.Expiry[metadata.TARGETS])
	for _, role := range r.DelegatedRoles() {
		raw, imported, err := r.pendingImport(role)
		if err != nil {
			return err
		}
		if imported != nil {
			if err := r.publishImported(role, raw); err != nil {
				return err
			}
			continue
		}
		published := r.delegated[role]
		dr := r.delegation(role)
		if len(r.available(r.keys[role], dr.KeyIDs)) == 0 && r.signing[role] == nil {
			switch {
			case published == nil:
				return fmt.Errorf("role %s: its keys are held elsewhere and no metadata signed with them was imported: "+
					"the vendor signs it (fieldgate-repo vendor sign) and you run import-role DIR VDIR/out before commit", role)
			case r.rolePending(role):
				return fmt.Errorf("role %s: changed here, but its keys are held elsewhere: the vendor changes and signs it "+
					"(fieldgate-repo vendor add/sign), then import-role DIR VDIR/out", role)
			}
			continue // its expiry is the vendor's to extend; Status warns
		}
		if published != nil && !r.rolePending(role) && r.signing[role] == nil && published.Signed.Expires.Sub(r.now()) >= validity/2 {
			continue
		}
		next, err := r.nextTargets(role)
		if err != nil {
			return err
		}
		if err := r.signNext(next, role); err != nil {
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
		delete(r.signing, role)
		if err := r.removeSigning(role); err != nil {
			return err
		}
	}
	return nil
}
