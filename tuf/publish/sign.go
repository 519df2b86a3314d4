// SPDX-License-Identifier: Apache-2.0

package publish

import (
	"bytes"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Threshold signing across hosts. The next version of a role that needs
// signatures from keys held elsewhere is staged, fully formed (version,
// expiry, content), in DIR/staged/signing/ROLE.json with the signatures
// gathered so far: each key holder adds one with SignStaged (fieldgate-repo
// sign DIR ROLE --key REF) on the host that holds the key, or from a
// pkcs11: token, or on a copy of the repository whose staged file comes
// back (MergeStaged), and Commit publishes it once its threshold is met,
// adding the signatures of keys found here. No private key ever has to
// move.
//
// A new root is staged by Init with Options.RootPublicKeys (version 1,
// whose keys are all held outside the repository), by RotateWith when the
// keys here do not reach the thresholds, and by SignStaged on root when
// none is staged (the next version with a fresh expiry, same keys). As TUF
// requires, a root N+1 is published only with a threshold of valid
// signatures by the keys of root N and a threshold by its own keys.
//
// Targets and delegated roles are staged when a holder first signs them:
// the staged working copy (add, remove, delegate) is frozen into the next
// version. If the working copy changes afterwards, the frozen version no
// longer matches it and its signatures are dropped at the next sign or
// commit. Snapshot and timestamp are signed by commit and timestamp with
// the keys here or given with --key (Options.Signers).

// SignatureCount is how many valid signatures staged metadata has by the
// keys of one key set it must satisfy.
type SignatureCount struct {
	Against   string   // whose keys: "root version 2", "root version 1 (the previous root)", "the delegation in targets"
	Valid     []string // key ids with a valid signature
	Missing   []string // key ids listed without a valid signature
	Threshold int
}

// Met reports whether the threshold is reached.
func (c SignatureCount) Met() bool { return len(c.Valid) >= c.Threshold }

func (c SignatureCount) String() string {
	return fmt.Sprintf("%d of %d signatures by the keys of %s", len(c.Valid), c.Threshold, c.Against)
}

// StagedRole is the next version of a role waiting for signatures.
type StagedRole struct {
	Role    string
	Version int64
	Expires time.Time
	Counts  []SignatureCount // every key set that must reach its threshold
}

// Ready reports whether every threshold is met.
func (s StagedRole) Ready() bool {
	for _, c := range s.Counts {
		if !c.Met() {
			return false
		}
	}
	return len(s.Counts) > 0
}

func (s StagedRole) String() string {
	var parts []string
	for _, c := range s.Counts {
		parts = append(parts, c.String())
	}
	return fmt.Sprintf("%s version %d: %s", s.Role, s.Version, strings.Join(parts, "; "))
}

// signWith clears md's signatures and signs it with every key of keys (and
// of Options.Signers) whose id allowed lists, then logs the event. It fails
// if fewer than threshold signatures result.
func signWith[T metadata.Roles](r *Repo, md *metadata.Metadata[T], role string, keys []*privateKey, allowed []string, threshold int) error {
	md.ClearSignatures()
	ids, err := addSignatures(r, md, role, keys, allowed)
	if err != nil {
		return fmt.Errorf("sign %s: %w", role, err)
	}
	if len(ids) < threshold {
		return fmt.Errorf("sign %s: %d of %d required keys available: %w", role, len(ids), threshold, ErrMissingKeys)
	}
	return logSigned(r, md, role, ids, true)
}

// addSignatures adds to md the signature of every key of keys and of
// Options.Signers whose id allowed lists and that has not signed md yet,
// and returns the ids that signed.
func addSignatures[T metadata.Roles](r *Repo, md *metadata.Metadata[T], role string, keys []*privateKey, allowed []string) ([]string, error) {
	have := map[string]bool{}
	for _, s := range md.Signatures {
		have[s.KeyID] = true
	}
	var ids []string
	for _, k := range slices.Concat(keys, r.signers) {
		if !contains(allowed, k.id) || have[k.id] {
			continue
		}
		if err := r.open(k, role); err != nil {
			return nil, err
		}
		s, err := k.signer()
		if err != nil {
			return nil, err
		}
		if _, err := md.Sign(s); err != nil {
			return nil, fmt.Errorf("%s: %w", k.describe(role), err)
		}
		have[k.id] = true
		ids = append(ids, k.id)
	}
	return ids, nil
}

// available returns the ids among allowed of keys this Repo can sign with:
// key files found here and Options.Signers.
func (r *Repo) available(keys []*privateKey, allowed []string) []string {
	var ids []string
	for _, k := range slices.Concat(keys, r.signers) {
		if contains(allowed, k.id) && !slices.Contains(ids, k.id) {
			ids = append(ids, k.id)
		}
	}
	return ids
}

// verifiedBy returns the ids among ids of keys with a valid signature on
// md, verified the way a client verifies them (go-tuf's VerifyDelegate, one
// key at a time).
func verifiedBy[T metadata.Roles](md *metadata.Metadata[T], keys map[string]*metadata.Key, ids []string) []string {
	var ok []string
	for _, id := range ids {
		k := keys[id]
		if k == nil || slices.Contains(ok, id) {
			continue
		}
		if verifies(md, id, k) {
			ok = append(ok, id)
		}
	}
	return ok
}

// verifies reports whether md carries a valid signature by key k (id). A
// malformed key can panic inside go-tuf v2.4.2's verification (a test
// fixture makes one on purpose): that is no valid signature.
func verifies[T metadata.Roles](md *metadata.Metadata[T], id string, k *metadata.Key) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	probe := metadata.Root()
	probe.Signed.Keys = map[string]*metadata.Key{id: k}
	probe.Signed.Roles = map[string]*metadata.Role{"probe": {KeyIDs: []string{id}, Threshold: 1}}
	return probe.VerifyDelegate("probe", md) == nil
}

// keepValid drops every signature of md that is not a valid one by a key
// of ids (stale, or by a key no longer listed) and returns the valid ids.
func keepValid[T metadata.Roles](md *metadata.Metadata[T], keys map[string]*metadata.Key, ids []string) []string {
	valid := verifiedBy(md, keys, ids)
	md.Signatures = slices.DeleteFunc(md.Signatures, func(s metadata.Signature) bool { return !slices.Contains(valid, s.KeyID) })
	return valid
}

func countOf[T metadata.Roles](md *metadata.Metadata[T], against string, keys map[string]*metadata.Key, ids []string, threshold int) SignatureCount {
	c := SignatureCount{Against: against, Threshold: threshold, Valid: verifiedBy(md, keys, ids)}
	for _, id := range ids {
		if !slices.Contains(c.Valid, id) {
			c.Missing = append(c.Missing, id)
		}
	}
	return c
}

func (r *Repo) signingFile(role string) string {
	return filepath.Join(r.dir, "staged", "signing", role+".json")
}

// loadSigning reads DIR/staged/signing: a staged root (taken as the
// repository's root when no root is published yet) and the staged next
// versions of targets and delegated roles.
func (r *Repo) loadSigning() error {
	entries, err := os.ReadDir(filepath.Join(r.dir, "staged", "signing"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		role, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() || role == metadata.ROOT {
			continue
		}
		if role != metadata.TARGETS {
			if err := CheckRoleName(role); err != nil {
				return fmt.Errorf("staged/signing/%s: %w", e.Name(), err)
			}
		}
		md, err := metadata.Targets().FromFile(filepath.Join(r.dir, "staged", "signing", e.Name()))
		if err != nil {
			return fmt.Errorf("staged/signing/%s: %w", e.Name(), err)
		}
		r.signing[role] = md
	}
	return nil
}

// readStagedRoot reads DIR/staged/signing/root.json, or returns nil.
func (r *Repo) readStagedRoot() (*metadata.Metadata[metadata.RootType], error) {
	md, err := metadata.Root().FromFile(r.signingFile(metadata.ROOT))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("staged/signing/root.json: %w", err)
	}
	return md, nil
}

func writeSigning[T metadata.Roles](r *Repo, role string, md *metadata.Metadata[T]) error {
	data, err := md.ToBytes(true)
	if err != nil {
		return err
	}
	return writeFileAtomic(r.signingFile(role), data, 0o644)
}

func (r *Repo) removeSigning(role string) error {
	err := os.Remove(r.signingFile(role))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// RootPublished reports whether a root is published: false after Init with
// Options.RootPublicKeys until the key holders have signed root version 1
// and Commit has published it.
func (r *Repo) RootPublished() bool { return r.stagedRoot == nil || r.stagedRoot.Signed.Version > 1 }

// nextRoot returns the root that will be in effect after the next Commit.
func (r *Repo) nextRoot() *metadata.Metadata[metadata.RootType] {
	if r.stagedRoot != nil {
		return r.stagedRoot
	}
	return r.root
}

// previousRoot returns the published root a staged root must also satisfy
// (nil for version 1).
func (r *Repo) previousRoot() *metadata.Metadata[metadata.RootType] {
	if r.stagedRoot == nil || r.stagedRoot == r.root {
		return nil
	}
	return r.root
}

// rootCounts counts the valid signatures of the staged root md by its own
// root keys and by those of the previous root.
func (r *Repo) rootCounts(md *metadata.Metadata[metadata.RootType]) []SignatureCount {
	own := md.Signed.Roles[metadata.ROOT]
	counts := []SignatureCount{countOf(md, fmt.Sprintf("root version %d", md.Signed.Version), md.Signed.Keys, own.KeyIDs, own.Threshold)}
	if prev := r.previousRoot(); prev != nil {
		pr := prev.Signed.Roles[metadata.ROOT]
		counts = append(counts, countOf(md, fmt.Sprintf("root version %d (the previous root)", prev.Signed.Version), prev.Signed.Keys, pr.KeyIDs, pr.Threshold))
	}
	return counts
}

// rootSigners returns the key ids that may sign a staged root: its own root
// keys and the previous root's.
func (r *Repo) rootSigners(md *metadata.Metadata[metadata.RootType]) []string {
	ids := slices.Clone(md.Signed.Roles[metadata.ROOT].KeyIDs)
	if prev := r.previousRoot(); prev != nil {
		for _, id := range prev.Signed.Roles[metadata.ROOT].KeyIDs {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// roleKeys returns the keys, listed ids and threshold that role's next
// version must be signed with: for targets from the next root, for a
// delegated role from the staged delegation.
func (r *Repo) roleKeys(role string) (map[string]*metadata.Key, []string, int, error) {
	if role == metadata.TARGETS {
		root := r.nextRoot()
		rr := root.Signed.Roles[role]
		return root.Signed.Keys, rr.KeyIDs, rr.Threshold, nil
	}
	dr := r.delegation(role)
	if dr == nil {
		return nil, nil, 0, fmt.Errorf("no delegated role %q", role)
	}
	return r.staged.Signed.Delegations.Keys, dr.KeyIDs, dr.Threshold, nil
}

// sameContent reports whether two versions of a targets role list the same
// targets (and, for the top-level role, delegations).
func sameContent(a, b *metadata.Metadata[metadata.TargetsType], top bool) bool {
	ja, _ := json.Marshal(a.Signed.Targets)
	jb, _ := json.Marshal(b.Signed.Targets)
	if top {
		da, _ := json.Marshal(a.Signed.Delegations)
		db, _ := json.Marshal(b.Signed.Delegations)
		ja, jb = append(ja, da...), append(jb, db...)
	}
	return bytes.Equal(ja, jb)
}

// nextTargets returns the next version of targets or a delegated role: the
// staged one with its signatures if it still matches the working copy,
// else a new one from the working copy (version published+1, fresh expiry,
// no signatures).
func (r *Repo) nextTargets(role string) (*metadata.Metadata[metadata.TargetsType], error) {
	working, err := r.stagedRole(role)
	if err != nil {
		return nil, err
	}
	published := r.targets
	if role != metadata.TARGETS {
		published = r.delegated[role]
	}
	if f := r.signing[role]; f != nil && sameContent(f, working, role == metadata.TARGETS) &&
		(published == nil || f.Signed.Version > published.Signed.Version) {
		return f, nil
	}
	next := cloneTargets(working)
	next.ClearSignatures()
	next.Signed.Version = 1
	if published != nil {
		next.Signed.Version = published.Signed.Version + 1
	}
	next.Signed.Expires = r.expires(metadata.TARGETS)
	return next, nil
}

// SignStaged adds one signature per signer to the staged next version of
// role (root, targets or a delegated role), staging it first if needed, and
// returns its signature counts. A signer whose key the role does not list
// is refused. A signer that signed before signs again (its old signature is
// replaced). Commit publishes the role once its thresholds are met.
func (r *Repo) SignStaged(role string, signers ...crypto.Signer) (StagedRole, error) {
	if len(signers) == 0 {
		return StagedRole{}, fmt.Errorf("sign %s: no key given", role)
	}
	keys := make([]*privateKey, 0, len(signers))
	for _, s := range signers {
		k, err := newPrivateKey(s)
		if err != nil {
			return StagedRole{}, fmt.Errorf("sign %s: %w", role, err)
		}
		keys = append(keys, k)
	}
	switch role {
	case metadata.SNAPSHOT, metadata.TIMESTAMP:
		return StagedRole{}, fmt.Errorf("sign %s: snapshot and timestamp are signed by commit and timestamp, with the keys here or given with --key", role)
	case metadata.ROOT:
		md := r.stagedRoot
		if md == nil {
			md = clone(r.root)
			md.ClearSignatures()
			md.Signed.Version++
			md.Signed.Expires = r.expires(metadata.ROOT)
			r.stagedRoot = md
		}
		allowed := r.rootSigners(md)
		if err := signStaged(r, md, role, keys, allowed); err != nil {
			return StagedRole{}, err
		}
		if err := writeSigning(r, role, md); err != nil {
			return StagedRole{}, fmt.Errorf("sign %s: %w", role, err)
		}
		return StagedRole{Role: role, Version: md.Signed.Version, Expires: md.Signed.Expires, Counts: r.rootCounts(md)}, nil
	}
	keyMap, ids, threshold, err := r.roleKeys(role)
	if err != nil {
		return StagedRole{}, fmt.Errorf("sign %s: %w", role, err)
	}
	md, err := r.nextTargets(role)
	if err != nil {
		return StagedRole{}, fmt.Errorf("sign %s: %w", role, err)
	}
	keepValid(md, keyMap, ids)
	if err := signStaged(r, md, role, keys, ids); err != nil {
		return StagedRole{}, err
	}
	if err := writeSigning(r, role, md); err != nil {
		return StagedRole{}, fmt.Errorf("sign %s: %w", role, err)
	}
	r.signing[role] = md
	return StagedRole{Role: role, Version: md.Signed.Version, Expires: md.Signed.Expires,
		Counts: []SignatureCount{countOf(md, r.delegatorName(role), keyMap, ids, threshold)}}, nil
}

// signStaged signs staged md with keys, each of which allowed must list,
// replacing a signature the same key made before, and logs the event.
func signStaged[T metadata.Roles](r *Repo, md *metadata.Metadata[T], role string, keys []*privateKey, allowed []string) error {
	version, _ := versionOf(md)
	var ids []string
	for _, k := range keys {
		if !contains(allowed, k.id) {
			return fmt.Errorf("sign %s: key %s is not a key of %s version %d (its keys: %s)", role, k.id, role, version, strings.Join(allowed, ", "))
		}
		md.Signatures = slices.DeleteFunc(md.Signatures, func(s metadata.Signature) bool { return s.KeyID == k.id })
		if _, err := md.Sign(tufSigner{k.priv}); err != nil {
			return fmt.Errorf("sign %s: %w", role, err)
		}
		ids = append(ids, k.id)
	}
	return logSigned(r, md, role, ids, false)
}

func (r *Repo) delegatorName(role string) string {
	if role == metadata.TARGETS {
		return fmt.Sprintf("targets in root version %d", r.nextRoot().Signed.Version)
	}
	return fmt.Sprintf("the delegation to %s in targets", role)
}

// StagedSignatures returns every role version waiting for signatures in
// DIR/staged/signing, root first, with its signature counts (valid
// signatures only).
func (r *Repo) StagedSignatures() []StagedRole {
	var out []StagedRole
	if md := r.stagedRoot; md != nil {
		out = append(out, StagedRole{Role: metadata.ROOT, Version: md.Signed.Version, Expires: md.Signed.Expires, Counts: r.rootCounts(md)})
	}
	roles := slices.Sorted(func(yield func(string) bool) {
		for role := range r.signing {
			if !yield(role) {
				return
			}
		}
	})
	slices.SortStableFunc(roles, func(a, b string) int {
		if a == metadata.TARGETS {
			return -1
		}
		if b == metadata.TARGETS {
			return 1
		}
		return 0
	})
	for _, role := range roles {
		md := r.signing[role]
		keyMap, ids, threshold, err := r.roleKeys(role)
		if err != nil {
			continue
		}
		out = append(out, StagedRole{Role: role, Version: md.Signed.Version, Expires: md.Signed.Expires,
			Counts: []SignatureCount{countOf(md, r.delegatorName(role), keyMap, ids, threshold)}})
	}
	return out
}

// prepareRoot signs the staged root, if any, with the root keys here and
// checks both thresholds. It returns the root to publish (nil if none is
// staged) and the key ids that signed now; it writes nothing.
func (r *Repo) prepareRoot() (*metadata.Metadata[metadata.RootType], []string, error) {
	md := r.stagedRoot
	if md == nil {
		return nil, nil, nil
	}
	allowed := r.rootSigners(md)
	valid := verifiedBy(md, md.Signed.Keys, md.Signed.Roles[metadata.ROOT].KeyIDs)
	if prev := r.previousRoot(); prev != nil {
		valid = append(valid, verifiedBy(md, prev.Signed.Keys, prev.Signed.Roles[metadata.ROOT].KeyIDs)...)
	}
	md.Signatures = slices.DeleteFunc(md.Signatures, func(s metadata.Signature) bool { return !slices.Contains(valid, s.KeyID) })
	ids, err := addSignatures(r, md, metadata.ROOT, r.keys[metadata.ROOT], allowed)
	if err != nil {
		return nil, nil, err
	}
	s := StagedRole{Role: metadata.ROOT, Version: md.Signed.Version, Counts: r.rootCounts(md)}
	if !s.Ready() {
		return nil, nil, fmt.Errorf("%s: %w (each holder of a missing key runs fieldgate-repo sign DIR root --key KEY)", s, ErrBelowThreshold)
	}
	return md, ids, nil
}

// ErrBelowThreshold means staged metadata has fewer valid signatures than
// a threshold it must meet: Commit refuses and publishes nothing.
// It wraps ErrMissingKeys.
var ErrBelowThreshold = fmt.Errorf("below threshold: %w", ErrMissingKeys)

// checkThresholds refuses, before anything is signed or written, a Commit
// that could not reach the threshold of a role it must sign: targets and
// delegated roles count their staged valid signatures and the keys here;
// snapshot and timestamp count the keys here.
func (r *Repo) checkThresholds(signTargets bool) error {
	var problems []string
	check := func(role string, staged *metadata.Metadata[metadata.TargetsType], keyMap map[string]*metadata.Key, ids []string, threshold int) {
		have := r.available(r.keys[role], ids)
		nStaged := 0
		if staged != nil {
			for _, id := range verifiedBy(staged, keyMap, ids) {
				nStaged++
				if !slices.Contains(have, id) {
					have = append(have, id)
				}
			}
		}
		if len(have) < threshold {
			problems = append(problems, fmt.Sprintf("role %s has %d of %d signatures (%d staged with sign, %d from keys here): "+
				"run fieldgate-repo sign DIR %s --key KEY with the missing keys", role, len(have), threshold, nStaged, len(r.available(r.keys[role], ids)), role))
		}
	}
	for _, role := range r.DelegatedRoles() {
		if !r.rolePending(role) || r.signing[role] == nil && !haveKeys(slices.Concat(r.keys[role], r.signers), r.delegation(role).KeyIDs, 1) {
			continue // unchanged, or signed elsewhere and imported (commitDelegated checks those)
		}
		next, err := r.nextTargets(role)
		if err != nil {
			return err
		}
		keyMap, ids, threshold, err := r.roleKeys(role)
		if err != nil {
			return err
		}
		check(role, next, keyMap, ids, threshold)
	}
	root := r.nextRoot()
	if signTargets {
		next, err := r.nextTargets(metadata.TARGETS)
		if err != nil {
			return err
		}
		rr := root.Signed.Roles[metadata.TARGETS]
		check(metadata.TARGETS, next, root.Signed.Keys, rr.KeyIDs, rr.Threshold)
	}
	for _, role := range []string{metadata.SNAPSHOT, metadata.TIMESTAMP} {
		rr := root.Signed.Roles[role]
		check(role, nil, root.Signed.Keys, rr.KeyIDs, rr.Threshold)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: %w", strings.Join(problems, "; "), ErrBelowThreshold)
	}
	return nil
}

// signNext signs the next version of targets or a delegated role: the
// valid staged signatures stay, the keys here add theirs, and the
// threshold must be met.
func (r *Repo) signNext(md *metadata.Metadata[metadata.TargetsType], role string) error {
	keyMap, ids, threshold, err := r.roleKeys(role)
	if err != nil {
		return err
	}
	staged := keepValid(md, keyMap, ids)
	signed, err := addSignatures(r, md, role, r.keys[role], ids)
	if err != nil {
		return fmt.Errorf("sign %s: %w", role, err)
	}
	// Signatures made here count by key id, unverified, as before (a test
	// fixture lists a malformed public key for a key it holds, on purpose).
	if n := len(staged) + len(signed); n < threshold {
		return fmt.Errorf("sign %s: %d of %d signatures: %w", role, n, threshold, ErrBelowThreshold)
	}
	return logSigned(r, md, role, signed, true)
}

// publishRoot writes md as N.root.json and root.json, makes it the current
// root, marks the roles whose keys changed for re-signing, removes the
// private keys here that it no longer lists (or moves them to
// DIR/keys/retired with Options.KeepRetired) and drops the staged root.
func (r *Repo) publishRoot(md *metadata.Metadata[metadata.RootType], signedNow []string) error {
	data, err := md.ToBytes(true)
	if err != nil {
		return err
	}
	dir := r.MetadataDir()
	if err := writeFileAtomic(filepath.Join(dir, fmt.Sprintf("%d.root.json", md.Signed.Version)), data, 0o644); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, "root.json"), data, 0o644); err != nil {
		return err
	}
	if err := logSigned(r, md, metadata.ROOT, signedNow, true); err != nil {
		return err
	}
	prev := r.root
	r.root, r.stagedRoot = md, nil
	if err := r.removeSigning(metadata.ROOT); err != nil {
		return err
	}
	if prev == md {
		return nil
	}
	for _, role := range topRoles {
		if role != metadata.ROOT && !sameSet(prev.Signed.Roles[role].KeyIDs, md.Signed.Roles[role].KeyIDs) {
			r.resign[role] = true
			r.resign[metadata.SNAPSHOT] = true
			r.resign[metadata.TIMESTAMP] = true
		}
		if err := r.retireKeys(role, md.Signed.Roles[role].KeyIDs); err != nil {
			return err
		}
	}
	return nil
}

// retireKeys removes the key files here of role whose ids keep does not
// list, or moves them to DIR/keys/retired with Options.KeepRetired. Removal
// is a plain unlink: overwriting first would be theatre on flash and
// copy-on-write file systems, which keep the old blocks anyway; use
// full-disk encryption (and the passphrase) for what unlink leaves.
func (r *Repo) retireKeys(role string, keep []string) error {
	var stay []*privateKey
	for _, k := range r.keys[role] {
		if slices.Contains(keep, k.id) || k.path == "" {
			stay = append(stay, k)
			continue
		}
		files := []string{k.path, PublicKeyPath(k.path)}
		if r.opts.KeepRetired {
			retired := filepath.Join(r.dir, "keys", "retired")
			if err := os.MkdirAll(retired, 0o700); err != nil {
				return err
			}
			for _, f := range files {
				if err := os.Rename(f, filepath.Join(retired, role+"-"+filepath.Base(f))); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("retire %s key: %w", role, err)
				}
			}
			continue
		}
		for _, f := range files {
			if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove retired %s key: %w", role, err)
			}
		}
		if err := syncDir(filepath.Dir(k.path)); err != nil {
			return err
		}
	}
	r.keys[role] = stay
	return nil
}

// RotateOptions say how RotateWith replaces a role's keys.
type RotateOptions struct {
	// PublicKeys are the role's new keys, whose private keys are held
	// elsewhere (a key holder's keygen .pub file, a token: see PublicKey).
	// Empty: Threshold new keys are generated in the role's key directory.
	PublicKeys []*metadata.Key
	// Threshold is the role's threshold after the rotation; 0 keeps it.
	Threshold int
}

// RotateResult says what RotateWith did.
type RotateResult struct {
	// Published is true when the new root was signed by enough keys here
	// and published; else it is staged for the key holders (Staged).
	Published bool
	Staged    StagedRole
}

// RotateWith replaces every key of top-level role and makes root version
// N+1 listing the new keys, signed by the root keys here (old and new). If
// those meet both thresholds (root N's and root N+1's), root N+1 is
// published and the role's keys no longer listed are retired; else it is
// staged in DIR/staged/signing/root.json for the holders of the other root
// keys to sign (SignStaged) and Commit to publish. For roles other than
// root, the next Commit re-signs the role with its new keys.
func (r *Repo) RotateWith(role string, o RotateOptions) (RotateResult, error) {
	if !slices.Contains(topRoles, role) {
		return RotateResult{}, fmt.Errorf("rotate %s: not a top-level role", role)
	}
	if s := r.stagedRoot; s != nil {
		return RotateResult{}, fmt.Errorf("rotate %s: root version %d is staged, waiting for signatures: sign and commit it first "+
			"(or discard it: rm %s)", role, s.Signed.Version, r.signingFile(metadata.ROOT))
	}
	next := clone(r.root)
	next.ClearSignatures()
	threshold := o.Threshold
	if threshold == 0 {
		threshold = next.Signed.Roles[role].Threshold
	}
	if threshold < 1 || threshold > 16 {
		return RotateResult{}, fmt.Errorf("rotate %s: threshold %d, want 1..16", role, threshold)
	}
	for _, id := range slices.Clone(next.Signed.Roles[role].KeyIDs) {
		if err := next.Signed.RevokeKey(id, role); err != nil {
			return RotateResult{}, fmt.Errorf("rotate %s: %w", role, err)
		}
	}
	if len(o.PublicKeys) > 0 {
		ids, err := keyIDs(o.PublicKeys)
		if err != nil {
			return RotateResult{}, fmt.Errorf("rotate %s: %w", role, err)
		}
		for i, k := range o.PublicKeys {
			if slices.Contains(r.root.Signed.Roles[role].KeyIDs, ids[i]) {
				return RotateResult{}, fmt.Errorf("rotate %s: key %s is already one of the role's keys: a rotation needs new keys", role, ids[i])
			}
			if err := next.Signed.AddKey(k, role); err != nil {
				return RotateResult{}, fmt.Errorf("rotate %s: %w", role, err)
			}
		}
		if threshold > len(ids) {
			return RotateResult{}, fmt.Errorf("rotate %s: threshold %d but %d new key(s)", role, threshold, len(ids))
		}
	} else {
		if role == metadata.ROOT && !haveKeys(r.keys[metadata.ROOT], r.root.Signed.Roles[metadata.ROOT].KeyIDs, 1) {
			return RotateResult{}, fmt.Errorf("rotate root: the root keys are held outside this repository: have each new key holder "+
				"run fieldgate-repo keygen and give their public keys (--pubkey): %w", ErrMissingKeys)
		}
		for range threshold {
			priv, err := generateKey(r.opts.KeyType)
			if err != nil {
				return RotateResult{}, fmt.Errorf("rotate %s: %w", role, err)
			}
			k, err := newPrivateKey(priv)
			if err != nil {
				return RotateResult{}, fmt.Errorf("rotate %s: %w", role, err)
			}
			if err := r.saveKey(r.keyDir(role), k); err != nil {
				return RotateResult{}, fmt.Errorf("rotate %s: save key: %w", role, err)
			}
			if err := next.Signed.AddKey(k.public, role); err != nil {
				return RotateResult{}, fmt.Errorf("rotate %s: %w", role, err)
			}
			r.keys[role] = append(r.keys[role], k)
		}
	}
	next.Signed.Roles[role].Threshold = threshold
	next.Signed.Version++
	next.Signed.Expires = r.expires(metadata.ROOT)
	r.stagedRoot = next
	signed, err := addSignatures(r, next, metadata.ROOT, r.keys[metadata.ROOT], r.rootSigners(next))
	if err != nil {
		r.stagedRoot = nil
		return RotateResult{}, fmt.Errorf("rotate %s: %w", role, err)
	}
	st := StagedRole{Role: metadata.ROOT, Version: next.Signed.Version, Expires: next.Signed.Expires, Counts: r.rootCounts(next)}
	if st.Ready() {
		if err := r.publishRoot(next, signed); err != nil {
			return RotateResult{}, fmt.Errorf("rotate %s: %w", role, err)
		}
		return RotateResult{Published: true, Staged: st}, nil
	}
	if err := writeSigning(r, metadata.ROOT, next); err != nil {
		return RotateResult{}, fmt.Errorf("rotate %s: %w", role, err)
	}
	if err := logSigned(r, next, metadata.ROOT, signed, false); err != nil {
		return RotateResult{}, fmt.Errorf("rotate %s: %w", role, err)
	}
	return RotateResult{Staged: st}, nil
}

// MergeStaged adds to the staged next version of role (root, targets or a
// delegated role) the valid signatures in data: the same version signed on
// another host, a key holder's copy of DIR/staged/signing/ROLE.json. Its
// signed content must be identical to what is staged here (for targets and
// delegated roles with nothing staged yet: to the staged changes, as the
// next version). Signatures by keys the role does not list, or that do not
// verify, are refused. It returns the counts and the key ids added.
func (r *Repo) MergeStaged(role string, data []byte) (StagedRole, []string, error) {
	switch role {
	case metadata.SNAPSHOT, metadata.TIMESTAMP:
		return StagedRole{}, nil, fmt.Errorf("sign %s: snapshot and timestamp are signed by commit and timestamp", role)
	case metadata.ROOT:
		in, err := metadata.Root().FromBytes(data)
		if err != nil {
			return StagedRole{}, nil, fmt.Errorf("sign %s: %w", role, err)
		}
		md := r.stagedRoot
		if md == nil {
			return StagedRole{}, nil, fmt.Errorf("sign root: no root is staged here to add signatures to (stage it first: rotate, or sign with a key)")
		}
		keys := maps.Clone(md.Signed.Keys)
		if prev := r.previousRoot(); prev != nil {
			maps.Copy(keys, prev.Signed.Keys)
		}
		added, err := mergeSignatures(r, md, in, role, keys, r.rootSigners(md))
		if err != nil {
			return StagedRole{}, nil, err
		}
		if err := writeSigning(r, role, md); err != nil {
			return StagedRole{}, nil, fmt.Errorf("sign %s: %w", role, err)
		}
		return StagedRole{Role: role, Version: md.Signed.Version, Expires: md.Signed.Expires, Counts: r.rootCounts(md)}, added, nil
	}
	in, err := metadata.Targets().FromBytes(data)
	if err != nil {
		return StagedRole{}, nil, fmt.Errorf("sign %s: %w", role, err)
	}
	keyMap, ids, threshold, err := r.roleKeys(role)
	if err != nil {
		return StagedRole{}, nil, fmt.Errorf("sign %s: %w", role, err)
	}
	md, err := r.nextTargets(role)
	if err != nil {
		return StagedRole{}, nil, fmt.Errorf("sign %s: %w", role, err)
	}
	if r.signing[role] == nil {
		// Nothing staged here yet: take the copy's version and expiry if it
		// signs exactly the staged changes.
		md.Signed.Version, md.Signed.Expires = in.Signed.Version, in.Signed.Expires
		if want, _ := r.nextTargets(role); in.Signed.Version != want.Signed.Version {
			return StagedRole{}, nil, fmt.Errorf("sign %s: the copy is version %d, the next version here is %d", role, in.Signed.Version, want.Signed.Version)
		}
	}
	keepValid(md, keyMap, ids)
	added, err := mergeSignatures(r, md, in, role, keyMap, ids)
	if err != nil {
		return StagedRole{}, nil, err
	}
	if err := writeSigning(r, role, md); err != nil {
		return StagedRole{}, nil, fmt.Errorf("sign %s: %w", role, err)
	}
	r.signing[role] = md
	return StagedRole{Role: role, Version: md.Signed.Version, Expires: md.Signed.Expires,
		Counts: []SignatureCount{countOf(md, r.delegatorName(role), keyMap, ids, threshold)}}, added, nil
}

// mergeSignatures adds to md each signature of in that md lacks, once it
// is checked to be a valid signature by a key of allowed over md's exact
// signed content, and logs them.
func mergeSignatures[T metadata.Roles](r *Repo, md, in *metadata.Metadata[T], role string, keys map[string]*metadata.Key, allowed []string) ([]string, error) {
	a, err := json.Marshal(md.Signed)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(in.Signed)
	if err != nil {
		return nil, err
	}
	version, _ := versionOf(md)
	if !bytes.Equal(a, b) {
		other, _ := versionOf(in)
		return nil, fmt.Errorf("sign %s: the copy's version %d differs from the version %d staged here (signed content not identical): sign the same staged file", role, other, version)
	}
	var added []string
	for _, s := range in.Signatures {
		if slices.ContainsFunc(md.Signatures, func(have metadata.Signature) bool { return have.KeyID == s.KeyID }) {
			continue
		}
		if !contains(allowed, s.KeyID) {
			return nil, fmt.Errorf("sign %s: the copy carries a signature by key %s, not a key of %s version %d", role, s.KeyID, role, version)
		}
		probe := clone(md)
		probe.Signatures = []metadata.Signature{s}
		if len(verifiedBy(probe, keys, []string{s.KeyID})) != 1 {
			return nil, fmt.Errorf("sign %s: the copy's signature by key %s does not verify", role, s.KeyID)
		}
		md.Signatures = append(md.Signatures, s)
		added = append(added, s.KeyID)
	}
	return added, logSigned(r, md, role, added, false)
}
