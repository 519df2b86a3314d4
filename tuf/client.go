// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// DefaultHTTPTimeout is used when Config.HTTPTimeout is zero.
const DefaultHTTPTimeout = 30 * time.Second

// Config configures a Client. MetadataURL, MetadataDir, BlobDir and (for a
// first run) TrustedRoot are required.
type Config struct {
	MetadataURL string        // base URL of the metadata (…/metadata); http, https or file
	TargetsURL  string        // base URL of targets (…/targets)
	MetadataDir string        // trusted metadata cache + last-known-good copies + time floor
	BlobDir     string        // content-addressed store: BlobDir/sha256/<hex>
	TrustedRoot string        // path of the shipped root.json, used when MetadataDir has none
	HTTPTimeout time.Duration // metadata: per request; targets: per read (idle); 0 = DefaultHTTPTimeout
	BuildTime   time.Time     // lower bound for the time floor

	// TimestampValidity, if set, is the longest validity the repository ever
	// gives a timestamp. After a refresh the floor is raised to the
	// timestamp's expiry minus this, a time the repository vouches has passed.
	// Zero disables it.
	TimestampValidity time.Duration
	// RefTime, if set, is used as the reference time instead of the system
	// clock; the floor is then neither checked nor raised. For conformance
	// testing (--ref-time) and offline diagnosis only.
	RefTime time.Time
	// Now replaces time.Now (tests). Nil means time.Now.
	Now func() time.Time
	// Paths, if set, are the target path patterns this gateway serves
	// (TUF's pattern syntax: "*" and "?" stay within a path segment). A
	// refresh then does not fetch a delegated role whose paths cannot match
	// any of them: with many vendors' roles in one repository, a gateway
	// reads only its own. Targets of the top-level role are listed anyway.
	Paths []string
}

// Client refreshes TUF metadata and fetches verified targets. See the package
// doc for what is safe for concurrent use.
type Client struct {
	cfg  Config
	log  *slog.Logger
	http *http.Client
	now  func() time.Time
	cond *conditional // validators of timestamp.json, for conditional requests

	// st is shared by every Client derived with WithSource: they use the
	// same metadata cache, time floor and blob store.
	st *state
}

// state is what Clients sharing a cache and blob store also share.
type state struct {
	refreshMu sync.Mutex // serializes refreshes: they write the metadata cache

	mu         sync.Mutex
	consistent bool                     // root's consistent_snapshot, from the last refresh
	inflight   map[string]chan struct{} // blob path -> released when its Fetch ends
}

// New validates cfg, creates the directories and returns a Client. It does no
// network I/O.
func New(cfg Config, log *slog.Logger) (*Client, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.MetadataURL == "":
		return nil, errors.New("tuf client: MetadataURL is required")
	case cfg.MetadataDir == "":
		return nil, errors.New("tuf client: MetadataDir is required")
	case cfg.BlobDir == "":
		return nil, errors.New("tuf client: BlobDir is required")
	}
	if cfg.HTTPTimeout <= 0 {
		cfg.HTTPTimeout = DefaultHTTPTimeout
	}
	if err := os.MkdirAll(cfg.MetadataDir, 0o700); err != nil {
		return nil, fmt.Errorf("tuf client: %w", err)
	}
	c := &Client{cfg: cfg, log: log, http: newHTTPClient(), now: cfg.Now, st: &state{inflight: map[string]chan struct{}{}},
		cond: newConditional(cfg.MetadataURL, cfg.MetadataDir)}
	// A repository in a local directory is read like a bundle: regular
	// files only, no link followed, no open that can block.
	c.http.Transport = newLocalTransport(c.http.Transport, cfg.MetadataURL, cfg.TargetsURL)
	if c.now == nil {
		c.now = time.Now
	}
	root, _, err := c.rootCandidates()
	if err != nil {
		return nil, fmt.Errorf("tuf client: %w", err)
	}
	if m, err := metadata.Root().FromBytes(root[0]); err == nil {
		c.st.consistent = m.Signed.ConsistentSnapshot
	}
	return c, nil
}

// Snapshot is the verified state of the repository after one refresh.
type Snapshot struct {
	Targets  []Target         // sorted by name; signed by the role trusted for each name
	Rejected []Rejected       // targets and delegated roles refused, with the reason
	Expires  time.Time        // earliest expiry among the roles loaded
	Versions map[string]int64 // role -> version, delegated roles included
	RefTime  time.Time        // trusted time used for the expiry checks

	// TrustFallback is empty, or says that this refresh ended on a root
	// older than the newest one the client trusted before, which root it
	// started from and why (root.json missing, corrupt or failing
	// verification). It stays set on every refresh until one reaches the
	// newest trusted root again. Raise a health alarm on it.
	TrustFallback string

	// Documents are the targets whose custom metadata is a
	// "fieldgate-document" object (advisories, the KEV catalog), sorted by
	// name; they are not firmware and are not in Targets.
	Documents []Document
}

// Target is one verified target file.
type Target struct {
	Name    string
	Role    string // role that signed it: "targets" or a delegated role
	Length  int64
	Hashes  map[string]string // algorithm -> lower-case hex (sha256, sha512)
	Meta    Meta              // parsed fieldgate custom metadata
	MetaErr error             // non-nil: target unusable (custom metadata or hashes); says why

	doc *DocumentMeta // a document target, moved to Snapshot.Documents by Refresh
}

// SHA256 returns the target's sha256 in hex, or "" if it lists none.
func (t Target) SHA256() string { return t.Hashes["sha256"] }

// rootCandidates returns the roots to start from, best first: the cached
// root.json, its last-known-good copy, the shipped root.
func (c *Client) rootCandidates() ([][]byte, []string, error) {
	var (
		roots [][]byte
		names []string
	)
	for _, p := range []string{
		filepath.Join(c.cfg.MetadataDir, "root.json"),
		filepath.Join(c.cfg.MetadataDir, lkgDir, "root.json"),
		c.cfg.TrustedRoot,
	} {
		if p == "" {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil || checkMetadataFile(metadata.ROOT, data) != nil {
			continue
		}
		roots = append(roots, data)
		names = append(names, p)
	}
	if len(roots) == 0 {
		return nil, nil, fmt.Errorf("no usable trusted root (cache %s, shipped %q)", c.cfg.MetadataDir, c.cfg.TrustedRoot)
	}
	return roots, names, nil
}

// Refresh runs one TUF refresh with a fresh go-tuf Updater, using the trusted
// time, and returns every verified target: those of the top-level targets
// role and of every delegated role that can be trusted for some name, each
// taken from the role trusted for its path (the resolver's search, TUF spec
// 5.6.7; roles are fetched as the walk reaches them). Claims a role may not
// make, and delegated roles that fail verification or are not fetched, are
// listed in Snapshot.Rejected; they do not fail the
// refresh, but a target whose trusted role failed is never taken from a
// lower-priority role.
//
// It returns an error wrapping ErrClockUnsynced while the clock is below the
// time floor. Cached metadata files that are corrupt are restored from their
// last-known-good copy first. After a rotation of the timestamp or snapshot
// keys, cached timestamp and snapshot versions that block the update are
// dropped (fast-forward attack recovery, TUF spec 5.3.11). A panic inside
// go-tuf is returned as an error.
func (c *Client) Refresh(ctx context.Context) (snap *Snapshot, err error) {
	_, snap, err = c.refresh(ctx, true)
	return snap, err
}

// refresh is Refresh, also returning the resolver for target lookups
// through delegations (the conformance command line). Without all, only the
// top-level roles are refreshed: delegated roles are left to the resolver's
// lookups, and snap lists no targets.
func (c *Client) refresh(ctx context.Context, all bool) (res *resolver, snap *Snapshot, err error) {
	c.st.refreshMu.Lock()
	defer c.st.refreshMu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			res, snap, err = nil, nil, fmt.Errorf("tuf refresh: panic in metadata verification: %v", r)
		}
	}()
	ref, err := c.refTime()
	if err != nil {
		return nil, nil, fmt.Errorf("tuf refresh: %w", err)
	}
	anchor := c.checkTrustAnchor()
	repairCache(c.cfg.MetadataDir, c.log)
	up, err := c.updateTopLevel(ctx, ref)
	if errors.Is(err, &metadata.ErrBadVersionNumber{}) && ctx.Err() == nil && c.recoverFastForward() {
		up, err = c.updateTopLevel(ctx, ref)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("tuf refresh: %w", errors.Join(ctx.Err(), err))
		}
		return nil, nil, fmt.Errorf("tuf refresh: %w", err)
	}
	trusted := up.GetTrustedMetadataSet()
	fallback := c.settleTrustAnchor(anchor, trusted.Root.Signed.Version)
	snap = &Snapshot{
		RefTime:       ref,
		TrustFallback: fallback,
		Versions: map[string]int64{
			metadata.ROOT:      trusted.Root.Signed.Version,
			metadata.TIMESTAMP: trusted.Timestamp.Signed.Version,
			metadata.SNAPSHOT:  trusted.Snapshot.Signed.Version,
		},
	}
	expiries := []time.Time{trusted.Root.Signed.Expires, trusted.Timestamp.Signed.Expires, trusted.Snapshot.Signed.Expires}
	// Delegated roles are fetched only as the search reaches them.
	res = newResolver(ctx, c, &trusted)
	if all {
		if err := res.walk(); err != nil {
			return nil, nil, fmt.Errorf("tuf refresh: delegated roles: %w", err)
		}
		snap.Targets, snap.Rejected = res.list()
		snap.Targets, snap.Documents = splitDocuments(snap.Targets)
	}
	cached := []string{metadata.ROOT, metadata.TIMESTAMP, metadata.SNAPSHOT}
	for _, n := range res.loaded() {
		snap.Versions[n.name] = n.md.Signed.Version
		expiries = append(expiries, n.md.Signed.Expires)
		cached = append(cached, n.name)
	}
	snap.Expires = slices.MinFunc(expiries, time.Time.Compare)
	for _, r := range snap.Rejected {
		c.log.Warn("tuf refresh: "+r.String(), "role", r.Role, "target", r.Name)
	}
	slices.SortFunc(snap.Targets, func(a, b Target) int { return strings.Compare(a.Name, b.Name) })

	c.st.mu.Lock()
	c.st.consistent = trusted.Root.Signed.ConsistentSnapshot
	c.st.mu.Unlock()

	if err := saveCache(c.cfg.MetadataDir, cached); err != nil {
		return nil, nil, fmt.Errorf("tuf refresh: %w", err)
	}
	floor := ref
	if v := c.cfg.TimestampValidity; v > 0 {
		if t := trusted.Timestamp.Signed.Expires.Add(-v); t.After(floor) && t.Before(snap.Expires) {
			floor = t
		}
	}
	if err := c.raiseFloor(floor); err != nil {
		return nil, nil, fmt.Errorf("tuf refresh: %w", err)
	}
	c.log.Debug("tuf refresh done", "targets", len(snap.Targets), "expires", snap.Expires, "versions", snap.Versions)
	return res, snap, nil
}

// updateTopLevel runs go-tuf's top-level refresh with a fresh Updater.
func (c *Client) updateTopLevel(ctx context.Context, ref time.Time) (*updater.Updater, error) {
	up, err := c.newUpdater(ctx, ref)
	if err != nil {
		return nil, err
	}
	if err := up.Refresh(); err != nil {
		return nil, err
	}
	return up, nil
}

// recoverFastForward implements TUF spec 5.3.11, which go-tuf v2.4.2 covers
// only when the cached file no longer verifies: if the newest trusted root
// (root.json, which go-tuf has just updated through the verified root chain)
// is newer than the root of the last successful refresh and the cached
// timestamp or snapshot no longer meets its threshold with that root's keys
// (rotatedAway), the cached timestamp and snapshot (and their last-known-good
// copies) are deleted, so that versions an attacker pushed with a
// compromised key no longer block the recovered repository. A key merely
// added keeps them: they still refuse a replayed older version. It reports
// whether it deleted anything.
func (c *Client) recoverFastForward() bool {
	read := func(p string) *metadata.Metadata[metadata.RootType] {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		md, err := metadata.Root().FromBytes(data)
		if err != nil {
			return nil
		}
		return md
	}
	current := read(filepath.Join(c.cfg.MetadataDir, "root.json"))
	before := read(filepath.Join(c.cfg.MetadataDir, lkgDir, "root.json"))
	if before == nil && c.cfg.TrustedRoot != "" {
		before = read(c.cfg.TrustedRoot)
	}
	if current == nil || before == nil || current.Signed.Version <= before.Signed.Version {
		return false
	}
	rotated := rotatedAway(c.cfg.MetadataDir, current)
	if len(rotated) == 0 {
		return false
	}
	for _, dir := range []string{c.cfg.MetadataDir, filepath.Join(c.cfg.MetadataDir, lkgDir)} {
		for _, f := range []string{"timestamp.json", "snapshot.json"} {
			os.Remove(filepath.Join(dir, f))
		}
	}
	c.log.Warn("tuf refresh: keys rotated in root, cached timestamp and snapshot dropped (fast-forward attack recovery)",
		"rotated", rotated, "root_version", current.Signed.Version)
	return true
}

// newUpdater builds a go-tuf Updater from the best usable root.
func (c *Client) newUpdater(ctx context.Context, ref time.Time) (*updater.Updater, error) {
	roots, names, err := c.rootCandidates()
	if err != nil {
		return nil, err
	}
	var errs []error
	for i, root := range roots {
		cfg, err := config.New(c.cfg.MetadataURL, root)
		if err != nil {
			return nil, err
		}
		cfg.LocalMetadataDir = c.cfg.MetadataDir
		cfg.LocalTargetsDir = c.cfg.MetadataDir // unused: targets go through Fetch
		cfg.RemoteTargetsURL = c.cfg.TargetsURL
		cfg.Fetcher = &httpFetcher{ctx: ctx, client: c.http, timeout: c.cfg.HTTPTimeout, cond: c.cond}
		up, err := updater.New(cfg)
		if err != nil {
			c.log.Warn("tuf refresh: trusted root unusable, trying the next one", "root", names[i], "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", names[i], err))
			continue
		}
		up.UnsafeSetRefTime(ref)
		return up, nil
	}
	return nil, fmt.Errorf("no usable trusted root: %w", errors.Join(errs...))
}

func newTarget(name string, tf *metadata.TargetFiles) Target {
	t := Target{Name: name, Length: tf.Length, Hashes: map[string]string{}}
	for alg, h := range tf.Hashes {
		t.Hashes[alg] = hex.EncodeToString(h)
	}
	if err := checkHashes(t); err != nil {
		t.MetaErr = err
		return t
	}
	var custom []byte
	if tf.Custom != nil {
		custom = *tf.Custom
	}
	if isDocument(custom) {
		d, err := ParseDocumentMeta(custom)
		if t.MetaErr = err; err == nil {
			t.doc = &d
		}
		return t
	}
	t.Meta, t.MetaErr = ParseCustom(custom)
	return t
}
