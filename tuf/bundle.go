package tuf

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// An offline bundle (fieldgate-repo export) is a directory, for a USB stick:
//
//	DIR/metadata/   every N.root.json, timestamp.json, and the versioned
//	                snapshot, targets and delegated role files
//	DIR/targets/    the selected targets under their hash-prefixed names
//	DIR/bundle.json informational manifest (never trusted)
//
// It is the repository's own published layout, so a Client reads it through
// file:// URLs with the same code and checks as over the network: the root
// chain from the gateway's trusted root, rollback against its cache, expiry
// against its trusted time, and every target's length and hashes.

// BundleManifest is the informational bundle.json of an offline bundle.
// Nothing in it is trusted: the signed metadata decides.
const BundleManifest = "bundle.json"

// BundleURLs checks the layout of an offline bundle directory and returns
// the file:// base URLs of its metadata and targets.
func BundleURLs(dir string) (metadataURL, targetsURL string, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", "", fmt.Errorf("offline bundle %s: %w", dir, err)
	}
	for _, p := range []string{"metadata", "targets"} {
		st, err := os.Stat(filepath.Join(abs, p))
		if err != nil {
			return "", "", fmt.Errorf("offline bundle %s: not a bundle: %w", dir, err)
		}
		if !st.IsDir() {
			return "", "", fmt.Errorf("offline bundle %s: %s is not a directory", dir, p)
		}
	}
	if _, err := os.Stat(filepath.Join(abs, "metadata", "timestamp.json")); err != nil {
		return "", "", fmt.Errorf("offline bundle %s: not a bundle (no metadata/timestamp.json): %w", dir, err)
	}
	base := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
	return base + "/metadata", base + "/targets", nil
}

// WithSource returns a Client that reads metadata and targets from other base
// URLs (such as BundleURLs) but shares this Client's metadata cache, time
// floor, blob store and locks: refreshes of both are serialized, and what one
// verifies raises the rollback and time floors of the other.
func (c *Client) WithSource(metadataURL, targetsURL string) *Client {
	d := *c
	d.cfg.MetadataURL = metadataURL
	d.cfg.TargetsURL = targetsURL
	return &d
}

// Import is the outcome of ImportBundle.
type Import struct {
	Snapshot *Snapshot // the refresh from the bundle
	Staged   []Staged  // targets the bundle carries, verified and in the blob store
}

// Staged is a target in the blob store.
type Staged struct {
	Target Target
	Path   string // blob path (Client.BlobPath)
}

// ImportBundle verifies the offline bundle in dir with the gateway's current
// trust and stages the targets it carries into the blob store. It refreshes
// from the bundle (root chain from the trusted root, rollback against the
// cache, expiry against the trusted time), then fetches every verified target
// whose file the bundle holds; targets the bundle does not carry are listed
// in the snapshot but not staged. An expired, rolled-back, foreign or
// tampered bundle is refused with an error saying which.
func ImportBundle(ctx context.Context, c *Client, dir string) (*Import, error) {
	mdURL, tgURL, err := BundleURLs(dir)
	if err != nil {
		return nil, err
	}
	bc := c.WithSource(mdURL, tgURL)
	snap, err := bc.Refresh(ctx)
	if err != nil {
		return nil, fmt.Errorf("offline bundle %s: %s: %w", dir, explainRefreshError(err), err)
	}
	imp := &Import{Snapshot: snap}
	for _, t := range snap.Targets {
		if !bundleHas(dir, t, bc.TargetURL(t)) {
			continue
		}
		p, err := bc.Fetch(ctx, t, nil)
		if err != nil {
			if errors.Is(err, ErrTargetMismatch) {
				return nil, fmt.Errorf("offline bundle %s: target %s was tampered with (its bytes do not match the signed metadata): %w", dir, t.Name, err)
			}
			return nil, fmt.Errorf("offline bundle %s: %w", dir, err)
		}
		imp.Staged = append(imp.Staged, Staged{Target: t, Path: p})
	}
	return imp, nil
}

// bundleHas reports whether the bundle holds a file for t at the path the
// client will read.
func bundleHas(dir string, t Target, rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	abs, err := filepath.Abs(filepath.Join(dir, "targets"))
	if err != nil {
		return false
	}
	rel, ok := strings.CutPrefix(path.Clean(u.Path), filepath.ToSlash(abs)+"/")
	if !ok {
		return false
	}
	st, err := os.Stat(filepath.Join(abs, filepath.FromSlash(rel)))
	return err == nil && st.Mode().IsRegular() || err != nil && !errors.Is(err, fs.ErrNotExist)
}

// explainRefreshError says in words what a failed refresh from a bundle means.
func explainRefreshError(err error) string {
	switch {
	case errors.Is(err, ErrClockUnsynced):
		return "gateway clock not trusted, bundle not checked"
	case errors.Is(err, &metadata.ErrExpiredMetadata{}):
		return "bundle refused: its metadata has expired at the gateway's trusted time"
	case errors.Is(err, &metadata.ErrBadVersionNumber{}):
		return "bundle refused: it is older than metadata this gateway already trusts (rollback)"
	case errors.Is(err, &metadata.ErrUnsignedMetadata{}):
		return "bundle refused: not signed by keys this gateway trusts (another repository, or tampered metadata)"
	case errors.Is(err, &metadata.ErrLengthOrHashMismatch{}):
		return "bundle refused: metadata does not match its signed length or hashes (tampered)"
	case errors.Is(err, &metadata.ErrDownloadHTTP{}):
		return "bundle refused: a metadata file the gateway needs is missing"
	}
	return "bundle refused"
}
