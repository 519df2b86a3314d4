// SPDX-License-Identifier: Apache-2.0

package publish

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/internal/localfile"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Default validity of each role's metadata.
const (
	DefaultRootExpiry      = 365 * 24 * time.Hour
	DefaultTargetsExpiry   = 90 * 24 * time.Hour
	DefaultSnapshotExpiry  = 7 * 24 * time.Hour
	DefaultTimestampExpiry = 24 * time.Hour
)

// Options configure a new repository. Zero fields take defaults. They are
// stored in DIR/fieldgate-repo.json and apply to later commits too.
type Options struct {
	// RootKeysDir holds the root keys, kept apart so that they can live on
	// offline media; default DIR/keys/root. Stored as given.
	RootKeysDir string `json:"root_keys_dir,omitempty"`
	// KeyType is KeyEd25519 (default) or KeyECDSAP256.
	KeyType string `json:"key_type,omitempty"`
	// Threshold per role (keys generated per role); default 1.
	Threshold map[string]int `json:"threshold,omitempty"`
	// Expiry per role ("root", "targets", "snapshot", "timestamp").
	Expiry map[string]Duration `json:"expiry,omitempty"`
	// Hashes listed for targets: "sha256" (default) and/or "sha512".
	Hashes []string `json:"hashes,omitempty"`
	// KeysDirs holds, per delegated role, the directory of its private keys
	// when it is not DIR/keys/<role> (set by Delegate). Stored as given.
	KeysDirs map[string]string `json:"keys_dirs,omitempty"`

	// Now replaces time.Now (tests); not stored.
	Now func() time.Time `json:"-"`

	// The fields below are not stored: they come with each command.

	// Keys says where passphrases come from and whether plaintext key
	// files may be written and read. The zero value can neither write nor
	// read a key file.
	Keys KeyAccess `json:"-"`
	// Signers are keys given for this command (fieldgate-repo --key REF,
	// opened with OpenKey): each signs every role that lists its key, like
	// a key file found in the repository's key directories.
	Signers []crypto.Signer `json:"-"`
	// RootPublicKeys (Init) are the root keys when their private keys are
	// held outside the repository, each by its holder (GenerateKeyFile):
	// root version 1 is then staged for them to sign (SignStaged) and
	// published by Commit. Threshold["root"] of them must sign.
	RootPublicKeys []*metadata.Key `json:"-"`
	// KeepRetired moves private keys replaced by a rotation to
	// DIR/keys/retired instead of removing them.
	KeepRetired bool `json:"-"`
	// Command names the command for the signing log (e.g. "commit").
	Command string `json:"-"`
}

// Duration is a time.Duration that reads and writes JSON as "720h0m0s".
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

var topRoles = []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP}

func (o *Options) fill() error {
	if o.KeyType == "" {
		o.KeyType = KeyEd25519
	}
	if _, err := generateKeyCheck(o.KeyType); err != nil {
		return err
	}
	if o.Threshold == nil {
		o.Threshold = map[string]int{}
	}
	if o.Expiry == nil {
		o.Expiry = map[string]Duration{}
	}
	defaults := map[string]time.Duration{
		metadata.ROOT: DefaultRootExpiry, metadata.TARGETS: DefaultTargetsExpiry,
		metadata.SNAPSHOT: DefaultSnapshotExpiry, metadata.TIMESTAMP: DefaultTimestampExpiry,
	}
	for _, r := range topRoles {
		if o.Threshold[r] == 0 {
			o.Threshold[r] = 1
		}
		if o.Threshold[r] < 1 || o.Threshold[r] > 16 {
			return fmt.Errorf("threshold of %s: %d, want 1..16", r, o.Threshold[r])
		}
		if o.Expiry[r] == 0 {
			o.Expiry[r] = Duration(defaults[r])
		}
		if o.Expiry[r] < 0 {
			return fmt.Errorf("expiry of %s is negative", r)
		}
	}
	for k := range o.Threshold {
		if !slices.Contains(topRoles, k) {
			return fmt.Errorf("threshold: unknown role %q", k)
		}
	}
	for k := range o.Expiry {
		if !slices.Contains(topRoles, k) {
			return fmt.Errorf("expiry: unknown role %q", k)
		}
	}
	if len(o.Hashes) == 0 {
		o.Hashes = []string{"sha256"}
	}
	for _, h := range o.Hashes {
		if h != "sha256" && h != "sha512" {
			return fmt.Errorf("hash %q: want sha256 or sha512", h)
		}
	}
	return nil
}

func generateKeyCheck(keyType string) (bool, error) {
	switch keyType {
	case KeyEd25519, KeyECDSAP256:
		return true, nil
	}
	return false, fmt.Errorf("key type %q: want %s or %s", keyType, KeyEd25519, KeyECDSAP256)
}

// Repo is a repository on disk with its current metadata in memory.
type Repo struct {
	dir  string
	opts Options
	now  func() time.Time

	root      *metadata.Metadata[metadata.RootType]
	targets   *metadata.Metadata[metadata.TargetsType] // published
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]
	staged    *metadata.Metadata[metadata.TargetsType] // working copy

	// Delegated roles (delegated by the top-level targets role): published
	// metadata and working copies, by role name.
	delegated       map[string]*metadata.Metadata[metadata.TargetsType]
	stagedDelegated map[string]*metadata.Metadata[metadata.TargetsType]

	keys    map[string][]*privateKey // role -> private keys available
	signers []*privateKey            // Options.Signers
	resign  map[string]bool          // roles whose keys changed

	// Staged for signatures (sign.go): the next root, and the next
	// versions of targets and delegated roles, by role.
	stagedRoot *metadata.Metadata[metadata.RootType]
	signing    map[string]*metadata.Metadata[metadata.TargetsType]
}

const optionsFile = "fieldgate-repo.json"

// Dir returns the repository's directory.
func (r *Repo) Dir() string { return r.dir }

// MetadataDir returns DIR/repository/metadata.
func (r *Repo) MetadataDir() string { return filepath.Join(r.dir, "repository", "metadata") }

// TargetsDir returns DIR/repository/targets.
func (r *Repo) TargetsDir() string { return filepath.Join(r.dir, "repository", "targets") }

// RootPath returns the path of 1.root.json, the root clients ship with.
func (r *Repo) RootPath() string { return filepath.Join(r.MetadataDir(), "1.root.json") }

func (r *Repo) keyDir(role string) string {
	if role == metadata.ROOT && r.opts.RootKeysDir != "" {
		return r.opts.RootKeysDir
	}
	if d := r.opts.KeysDirs[role]; d != "" {
		return d
	}
	return filepath.Join(r.dir, "keys", role)
}

func (r *Repo) expires(role string) time.Time {
	return r.now().UTC().Add(time.Duration(r.opts.Expiry[role])).Truncate(time.Second)
}

func newRepo(dir string, opts Options, now func() time.Time) (*Repo, error) {
	r := &Repo{dir: dir, opts: opts, now: now, keys: map[string][]*privateKey{}, resign: map[string]bool{},
		delegated: map[string]*metadata.Metadata[metadata.TargetsType]{}, stagedDelegated: map[string]*metadata.Metadata[metadata.TargetsType]{},
		signing: map[string]*metadata.Metadata[metadata.TargetsType]{}}
	if r.now == nil {
		r.now = time.Now
	}
	for _, s := range opts.Signers {
		k, err := newPrivateKey(s)
		if err != nil {
			return nil, fmt.Errorf("signer: %w", err)
		}
		r.signers = append(r.signers, k)
	}
	return r, nil
}

// Init creates a new signed repository in dir (which must not hold one):
// keys for every role, root version 1 with consistent snapshots, an empty
// targets role, snapshot and timestamp.
func Init(dir string, opts Options) (*Repo, error) {
	if err := opts.fill(); err != nil {
		return nil, fmt.Errorf("init %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, optionsFile)); err == nil {
		return nil, fmt.Errorf("init %s: a repository already exists there", dir)
	}
	r, err := newRepo(dir, opts, opts.Now)
	if err != nil {
		return nil, fmt.Errorf("init %s: %w", dir, err)
	}
	for _, d := range []string{r.MetadataDir(), r.TargetsDir(), filepath.Join(dir, "staged")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("init %s: %w", dir, err)
		}
	}
	r.root = metadata.Root(r.expires(metadata.ROOT))
	r.root.Signed.ConsistentSnapshot = true
	for _, role := range topRoles {
		if role == metadata.ROOT && len(opts.RootPublicKeys) > 0 {
			if err := r.addRootPublicKeys(); err != nil {
				return nil, fmt.Errorf("init %s: %w", dir, err)
			}
			continue
		}
		for range opts.Threshold[role] {
			if _, err := r.newKey(role); err != nil {
				return nil, fmt.Errorf("init %s: %w", dir, err)
			}
		}
		r.root.Signed.Roles[role].Threshold = opts.Threshold[role]
	}
	r.targets = metadata.Targets(r.expires(metadata.TARGETS))
	r.snapshot = metadata.Snapshot(r.expires(metadata.SNAPSHOT))
	r.timestamp = metadata.Timestamp(r.expires(metadata.TIMESTAMP))
	if len(opts.RootPublicKeys) > 0 {
		// The root keys' holders sign version 1 (SignStaged); Commit
		// publishes it.
		r.stagedRoot = r.root
		if err := writeSigning(r, metadata.ROOT, r.root); err != nil {
			return nil, fmt.Errorf("init %s: %w", dir, err)
		}
	} else if err := r.signRoot(nil); err != nil {
		return nil, fmt.Errorf("init %s: %w", dir, err)
	}
	if err := r.writeTargets(); err != nil {
		return nil, fmt.Errorf("init %s: %w", dir, err)
	}
	if err := r.writeSnapshotTimestamp(false); err != nil {
		return nil, fmt.Errorf("init %s: %w", dir, err)
	}
	if err := r.saveOptions(); err != nil {
		return nil, fmt.Errorf("init %s: %w", dir, err)
	}
	r.staged = cloneTargets(r.targets)
	if err := r.saveStaged(); err != nil {
		return nil, fmt.Errorf("init %s: %w", dir, err)
	}
	return r, nil
}

// addRootPublicKeys lists Options.RootPublicKeys as the root keys.
func (r *Repo) addRootPublicKeys() error {
	ids, err := keyIDs(r.opts.RootPublicKeys)
	if err != nil {
		return fmt.Errorf("root keys: %w", err)
	}
	th := r.opts.Threshold[metadata.ROOT]
	if th > len(ids) {
		return fmt.Errorf("root threshold %d but %d root key(s) given", th, len(ids))
	}
	for _, k := range r.opts.RootPublicKeys {
		if err := r.root.Signed.AddKey(k, metadata.ROOT); err != nil {
			return err
		}
	}
	r.root.Signed.Roles[metadata.ROOT].Threshold = th
	return nil
}

// newKey generates a key for role, saves it and adds it to root (unsigned).
func (r *Repo) newKey(role string) (*privateKey, error) {
	priv, err := generateKey(r.opts.KeyType)
	if err != nil {
		return nil, err
	}
	k, err := newPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	if err := r.saveKey(r.keyDir(role), k); err != nil {
		return nil, fmt.Errorf("save %s key: %w", role, err)
	}
	if err := r.root.Signed.AddKey(k.public, role); err != nil {
		return nil, err
	}
	r.keys[role] = append(r.keys[role], k)
	return k, nil
}

// Open loads the repository in dir. Without a KeyAccess it signs only with
// Options.Signers: use OpenWith to sign with its key files.
func Open(dir string) (*Repo, error) { return OpenWith(dir, Options{}) }

// OpenWithClock is Open with a replacement for time.Now (tests).
func OpenWithClock(dir string, now func() time.Time) (*Repo, error) {
	return OpenWith(dir, Options{Now: now})
}

// OpenWith loads the repository in dir with the options of this command
// (o's fields that are not stored: Now, Keys, Signers, KeepRetired,
// Command); the others are read from DIR/fieldgate-repo.json.
func OpenWith(dir string, o Options) (*Repo, error) {
	data, err := os.ReadFile(filepath.Join(dir, optionsFile))
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	var opts Options
	if err := json.Unmarshal(data, &opts); err != nil {
		return nil, fmt.Errorf("open repository %s: %s: %w", dir, optionsFile, err)
	}
	if err := opts.fill(); err != nil {
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	opts.Now, opts.Keys, opts.Signers, opts.KeepRetired, opts.Command = o.Now, o.Keys, o.Signers, o.KeepRetired, o.Command
	r, err := newRepo(dir, opts, opts.Now)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	if err := r.load(); err != nil {
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	return r, nil
}

func (r *Repo) load() error {
	md := r.MetadataDir()
	var err error
	if r.stagedRoot, err = r.readStagedRoot(); err != nil {
		return err
	}
	n, err := latestRootVersion(md)
	switch {
	case err != nil && r.stagedRoot != nil && r.stagedRoot.Signed.Version == 1:
		r.root = r.stagedRoot // not yet signed by its key holders
	case err != nil:
		return err
	default:
		if r.root, err = metadata.Root().FromFile(filepath.Join(md, fmt.Sprintf("%d.root.json", n))); err != nil {
			return err
		}
		if s := r.stagedRoot; s != nil && s.Signed.Version != n+1 {
			return fmt.Errorf("staged root version %d does not follow the published root version %d (remove %s)", s.Signed.Version, n, r.signingFile(metadata.ROOT))
		}
	}
	if r.timestamp, err = metadata.Timestamp().FromFile(filepath.Join(md, "timestamp.json")); err != nil {
		return err
	}
	sv := r.timestamp.Signed.Meta["snapshot.json"].Version
	if r.snapshot, err = metadata.Snapshot().FromFile(filepath.Join(md, fmt.Sprintf("%d.snapshot.json", sv))); err != nil {
		return err
	}
	tv := r.snapshot.Signed.Meta["targets.json"].Version
	if r.targets, err = metadata.Targets().FromFile(filepath.Join(md, fmt.Sprintf("%d.targets.json", tv))); err != nil {
		return err
	}
	if r.staged, err = metadata.Targets().FromFile(filepath.Join(r.dir, "staged", "targets.json")); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		r.staged = cloneTargets(r.targets)
	}
	if err := r.loadDelegated(); err != nil {
		return err
	}
	if err := r.loadSigning(); err != nil {
		return err
	}
	for _, role := range append(slices.Clone(topRoles), r.DelegatedRoles()...) {
		keys, err := loadKeys(r.keyDir(role))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		r.keys[role] = keys
	}
	return nil
}

func (r *Repo) saveOptions() error {
	data, err := json.MarshalIndent(r.opts, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(r.dir, optionsFile), append(data, '\n'), 0o644)
}

func latestRootVersion(dir string) (int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var best int64
	for _, e := range entries {
		v, ok := strings.CutSuffix(e.Name(), ".root.json")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > best {
			best = n
		}
	}
	if best == 0 {
		return 0, errors.New("no N.root.json in " + dir)
	}
	return best, nil
}

func cloneTargets(t *metadata.Metadata[metadata.TargetsType]) *metadata.Metadata[metadata.TargetsType] {
	data, err := t.ToBytes(false)
	if err != nil {
		panic(err) // metadata built by this package always marshals
	}
	c, err := metadata.Targets().FromBytes(data)
	if err != nil {
		panic(err)
	}
	return c
}

func (r *Repo) saveStaged() error {
	r.staged.ClearSignatures()
	data, err := r.staged.ToBytes(true)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(r.dir, "staged", "targets.json"), data, 0o644)
}

// signRoot signs the current root with the root keys it lists plus extra
// (the previous root's keys during a rotation) and writes N.root.json and
// root.json.
func (r *Repo) signRoot(extra []*privateKey) error {
	role := r.root.Signed.Roles[metadata.ROOT]
	keys := append(slices.Clone(r.keys[metadata.ROOT]), extra...)
	allowed := slices.Clone(role.KeyIDs)
	for _, k := range extra {
		allowed = append(allowed, k.id)
	}
	if err := signWith(r, r.root, metadata.ROOT, keys, allowed, role.Threshold); err != nil {
		return err
	}
	data, err := r.root.ToBytes(true)
	if err != nil {
		return err
	}
	md := r.MetadataDir()
	if err := writeFileAtomic(filepath.Join(md, fmt.Sprintf("%d.root.json", r.root.Signed.Version)), data, 0o644); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(md, "root.json"), data, 0o644)
}

func (r *Repo) signRole(role string, sign func([]*privateKey, []string, int) error) error {
	rr := r.root.Signed.Roles[role]
	return sign(r.keys[role], rr.KeyIDs, rr.Threshold)
}

func (r *Repo) writeTargets() error {
	err := r.signRole(metadata.TARGETS, func(k []*privateKey, ids []string, th int) error {
		return signWith(r, r.targets, metadata.TARGETS, k, ids, th)
	})
	if err != nil {
		return err
	}
	data, err := r.targets.ToBytes(true)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(r.MetadataDir(), fmt.Sprintf("%d.targets.json", r.targets.Signed.Version)), data, 0o644)
}

// writeSnapshotTimestamp signs a snapshot (new version if bump) listing the
// current targets, and a new timestamp listing it.
func (r *Repo) writeSnapshotTimestamp(bump bool) error {
	if bump {
		r.snapshot.Signed.Version++
		r.snapshot.Signed.Expires = r.expires(metadata.SNAPSHOT)
	}
	mf, err := r.writeSnapshot()
	if err != nil {
		return err
	}
	if bump {
		r.timestamp.Signed.Version++
		r.timestamp.Signed.Expires = r.expires(metadata.TIMESTAMP)
	}
	r.timestamp.Signed.Meta["snapshot.json"] = mf
	return r.writeTimestamp()
}

// writeSnapshot lists the current targets and delegated roles in the
// snapshot, signs it, writes V.snapshot.json and returns the snapshot's
// entry for a timestamp (version, length, sha256).
func (r *Repo) writeSnapshot() (*metadata.MetaFiles, error) {
	r.snapshot.Signed.Meta["targets.json"] = metadata.MetaFile(r.targets.Signed.Version)
	for role, md := range r.delegated {
		r.snapshot.Signed.Meta[role+".json"] = metadata.MetaFile(md.Signed.Version)
	}
	err := r.signRole(metadata.SNAPSHOT, func(k []*privateKey, ids []string, th int) error {
		return signWith(r, r.snapshot, metadata.SNAPSHOT, k, ids, th)
	})
	if err != nil {
		return nil, err
	}
	data, err := r.snapshot.ToBytes(true)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(r.MetadataDir(), fmt.Sprintf("%d.snapshot.json", r.snapshot.Signed.Version)), data, 0o644); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	mf := metadata.MetaFile(r.snapshot.Signed.Version)
	mf.Length = int64(len(data))
	mf.Hashes = metadata.Hashes{"sha256": sum[:]}
	return mf, nil
}

func (r *Repo) writeTimestamp() error {
	err := r.signRole(metadata.TIMESTAMP, func(k []*privateKey, ids []string, th int) error {
		return signWith(r, r.timestamp, metadata.TIMESTAMP, k, ids, th)
	})
	if err != nil {
		return err
	}
	data, err := r.timestamp.ToBytes(true)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(r.MetadataDir(), "timestamp.json"), data, 0o644)
}

// CheckTargetName rejects target names that are not clean relative paths:
// a name becomes a path under the repository's and every bundle's targets
// directory, so none may be absolute or hold "..", "." or empty segments,
// backslashes or NUL bytes (nor any byte outside printable ASCII).
func CheckTargetName(name string) error {
	if err := localfile.CheckName(name); err != nil {
		return fmt.Errorf("target %w", err)
	}
	if name == "" || len(name) > 255 {
		return fmt.Errorf("target name %q: want 1..255 bytes", name)
	}
	if strings.HasPrefix(name, "/") || path.Clean(name) != name || strings.HasPrefix(name, "../") || name == ".." || name == "." {
		return fmt.Errorf("target name %q: want a clean relative path", name)
	}
	for _, r := range name {
		if r <= ' ' || r > '~' || strings.ContainsRune(`\?#%"`, r) {
			return fmt.Errorf("target name %q: character %q not allowed", name, r)
		}
	}
	return nil
}

// AddTarget stages target name with the contents of srcFile and the given
// fieldgate metadata: the file is hashed while it is copied into the
// repository (stored under each hash prefix), and listed in the staged
// targets role. Commit publishes it. Adding an existing name replaces it.
func (r *Repo) AddTarget(name, srcFile string, meta tuf.Meta) error {
	return r.AddTargetTo(metadata.TARGETS, name, srcFile, meta)
}

// AddTargetTo is AddTarget for the targets of role: "targets" or a role
// created with Delegate, whose delegated paths must match name.
func (r *Repo) AddTargetTo(role, name, srcFile string, meta tuf.Meta) error {
	if err := CheckTargetName(name); err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	if err := r.checkScope(role, name); err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	for _, other := range append([]string{metadata.TARGETS}, r.DelegatedRoles()...) {
		if md, _ := r.stagedRole(other); other != role && md.Signed.Targets[name] != nil {
			return fmt.Errorf("add %s: already a target of role %s (remove it there first)", name, other)
		}
	}
	return r.addTarget(role, name, srcFile, meta)
}

func (r *Repo) addTarget(role, name, srcFile string, meta tuf.Meta) error {
	md, err := r.stagedRole(role)
	if err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	custom, err := tuf.MarshalCustom(meta)
	if err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	tf, err := r.storeTarget(name, srcFile)
	if err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	raw := json.RawMessage(custom)
	tf.Custom = &raw
	md.Signed.Targets[name] = tf
	if err := r.saveStagedRole(role); err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	return nil
}

// AddTargetBytes is AddTarget for data in memory (tests, small files).
func (r *Repo) AddTargetBytes(name string, data []byte, meta tuf.Meta) error {
	return r.AddTargetBytesTo(metadata.TARGETS, name, data, meta)
}

// AddTargetBytesTo is AddTargetTo for data in memory.
func (r *Repo) AddTargetBytesTo(role, name string, data []byte, meta tuf.Meta) error {
	return r.withTempFile(data, func(p string) error { return r.AddTargetTo(role, name, p, meta) })
}

func (r *Repo) withTempFile(data []byte, fn func(string) error) error {
	f, err := os.CreateTemp(r.dir, ".add-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return fn(f.Name())
}

// storeTarget copies src into the targets directory, hashing as it goes, and
// links it under every hash prefix.
func (r *Repo) storeTarget(name, src string) (*metadata.TargetFiles, error) {
	in, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	dir := filepath.Join(r.TargetsDir(), filepath.FromSlash(path.Dir(name)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	hs := map[string]hash.Hash{}
	ws := []io.Writer{tmp}
	for _, alg := range r.opts.Hashes {
		h := sha256.New()
		if alg == "sha512" {
			h = sha512.New()
		}
		hs[alg] = h
		ws = append(ws, h)
	}
	n, err := io.CopyBuffer(io.MultiWriter(ws...), in, make([]byte, 1<<20))
	if err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	tf := metadata.TargetFile()
	tf.Length = n
	base := path.Base(name)
	for _, alg := range r.opts.Hashes {
		sum := hs[alg].Sum(nil)
		tf.Hashes[alg] = sum
		dst := filepath.Join(dir, hex.EncodeToString(sum)+"."+base)
		os.Remove(dst)
		if err := os.Link(tmp.Name(), dst); err != nil {
			return nil, err
		}
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	return tf, nil
}

// Remove unstages target name; Commit publishes the removal. The files stay
// for clients still on an older snapshot.
func (r *Repo) Remove(name string) error {
	for _, role := range append([]string{metadata.TARGETS}, r.DelegatedRoles()...) {
		md, _ := r.stagedRole(role)
		if _, ok := md.Signed.Targets[name]; !ok {
			continue
		}
		delete(md.Signed.Targets, name)
		if err := r.saveStagedRole(role); err != nil {
			return fmt.Errorf("remove %s: %w", name, err)
		}
		return nil
	}
	return fmt.Errorf("remove %s: no such target", name)
}

// Pending reports whether the staged targets differ from the published ones.
func (r *Repo) Pending() bool {
	if r.rolePending(metadata.TARGETS) {
		return true
	}
	for _, role := range r.DelegatedRoles() {
		if r.rolePending(role) {
			return true
		}
	}
	return false
}

// rolePending reports whether role's staged targets (and, for the top-level
// role, delegations) differ from the published ones.
func (r *Repo) rolePending(role string) bool {
	staged, published := r.staged, r.targets
	if role != metadata.TARGETS {
		staged, published = r.stagedDelegated[role], r.delegated[role]
		if published == nil {
			return true
		}
	}
	a, _ := json.Marshal(staged.Signed.Targets)
	b, _ := json.Marshal(published.Signed.Targets)
	if role == metadata.TARGETS {
		da, _ := json.Marshal(staged.Signed.Delegations)
		db, _ := json.Marshal(published.Signed.Delegations)
		a, b = append(a, da...), append(b, db...)
	}
	return !bytes.Equal(a, b) || r.resign[role]
}

// Commit publishes the staged targets: a new targets version if anything
// changed (or its keys changed, or less than half its validity is left), then
// a new snapshot and timestamp.
//
// Every staged target name is checked first (staged/*.json are plain files
// that may have been edited by hand): one that could leave a targets
// directory fails the commit with the name, and nothing is signed.
//
// A root staged for signatures (sign.go) is published first, once the
// root keys here bring it to both thresholds. Every role is signed with
// the keys here, Options.Signers and the valid signatures staged with
// SignStaged; a role below its threshold fails the commit before anything
// is signed, naming the role and the counts (ErrBelowThreshold), and
// nothing is published.
func (r *Repo) Commit() error {
	if err := r.checkStaged(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	root, rootSigned, err := r.prepareRoot()
	if err != nil {
		return fmt.Errorf("commit: %w; nothing published", err)
	}
	published := r.root
	if root != nil {
		r.root = root // sign the other roles with the keys it lists
		for _, role := range topRoles[1:] {
			if !sameSet(published.Signed.Roles[role].KeyIDs, root.Signed.Roles[role].KeyIDs) {
				r.resign[role] = true
			}
		}
	}
	left := r.targets.Signed.Expires.Sub(r.now())
	signTargets := r.rolePending(metadata.TARGETS) || left < time.Duration(r.opts.Expiry[metadata.TARGETS])/2
	if err := r.checkThresholds(signTargets); err != nil {
		r.root = published
		return fmt.Errorf("commit: %w; nothing published", err)
	}
	if err := r.commitDelegated(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if signTargets {
		next, err := r.nextTargets(metadata.TARGETS)
		if err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		if err := r.signNext(next, metadata.TARGETS); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		data, err := next.ToBytes(true)
		if err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		if err := writeFileAtomic(filepath.Join(r.MetadataDir(), fmt.Sprintf("%d.targets.json", next.Signed.Version)), data, 0o644); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		r.targets = next
		delete(r.signing, metadata.TARGETS)
		if err := r.removeSigning(metadata.TARGETS); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	}
	if root != nil {
		r.root = published
		if err := r.publishRoot(root, rootSigned); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	}
	if err := r.writeSnapshotTimestamp(true); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	clear(r.resign)
	return nil
}

// checkStaged checks what Commit is about to sign: the name of every staged
// target of the top-level and delegated roles, and the staged delegations'
// role names and path patterns. A delegated name outside its role's paths is
// left to AddTargetTo and to the client, which refuses it (test fixtures
// sign such names on purpose with AddTargetBytesUnchecked).
func (r *Repo) checkStaged() error {
	for _, name := range slices.Sorted(maps.Keys(r.staged.Signed.Targets)) {
		if err := CheckTargetName(name); err != nil {
			return fmt.Errorf("role %s: %w", metadata.TARGETS, err)
		}
	}
	if d := r.staged.Signed.Delegations; d != nil {
		for _, dr := range d.Roles {
			if err := CheckRoleName(dr.Name); err != nil {
				return fmt.Errorf("delegation: %w", err)
			}
			for _, p := range dr.Paths {
				if err := checkPathPattern(p); err != nil {
					return fmt.Errorf("delegation to %s: %w", dr.Name, err)
				}
			}
		}
	}
	for _, role := range r.DelegatedRoles() {
		md := r.stagedDelegated[role]
		if md == nil {
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(md.Signed.Targets)) {
			if err := CheckTargetName(name); err != nil {
				return fmt.Errorf("role %s: %w", role, err)
			}
		}
	}
	return nil
}

// Timestamp re-signs the timestamp only (new version and expiry), for a cron
// job with the online timestamp key.
func (r *Repo) Timestamp() error {
	r.timestamp.Signed.Version++
	r.timestamp.Signed.Expires = r.expires(metadata.TIMESTAMP)
	if err := r.writeTimestamp(); err != nil {
		return fmt.Errorf("timestamp: %w", err)
	}
	return nil
}

// Rotate replaces every key of role with new ones generated here and
// publishes root version N+1, signed by the old and the new root keys (so
// that clients can verify the chain). For roles other than root, the next
// Commit re-signs the role with its new key. The replaced private keys are
// removed (moved to DIR/keys/retired with Options.KeepRetired). It refuses
// when the root keys here cannot publish the new root; RotateWith stages
// it for other key holders instead.
func (r *Repo) Rotate(role string) error {
	if rr := r.root.Signed.Roles[metadata.ROOT]; !haveKeys(slices.Concat(r.keys[metadata.ROOT], r.signers), rr.KeyIDs, rr.Threshold) {
		return fmt.Errorf("rotate %s: %d of %d root keys available: %w", role,
			len(r.available(r.keys[metadata.ROOT], rr.KeyIDs)), rr.Threshold, ErrMissingKeys)
	}
	res, err := r.RotateWith(role, RotateOptions{})
	if err != nil {
		return err
	}
	if !res.Published {
		return fmt.Errorf("rotate %s: %s: %w", role, res.Staged, ErrMissingKeys)
	}
	return nil
}

// SetCustom replaces the custom field of a staged target with raw bytes,
// without validation (test fixtures use it for malformed metadata).
func (r *Repo) SetCustom(name string, custom []byte) error {
	tf, ok := r.staged.Signed.Targets[name]
	if !ok {
		return fmt.Errorf("set custom %s: no such staged target", name)
	}
	raw := json.RawMessage(append([]byte(nil), custom...))
	tf.Custom = &raw
	if len(custom) == 0 {
		tf.Custom = nil
	}
	return r.saveStaged()
}

// Snapshot publishes a new snapshot and timestamp without touching targets
// (to extend the snapshot's expiry).
func (r *Repo) Snapshot() error {
	if err := r.writeSnapshotTimestamp(true); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}
