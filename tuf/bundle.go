// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/fieldgate/fieldgate/tuf/internal/localfile"
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
// the file:// base URLs of its metadata and targets. metadata and targets
// must be directories and metadata/timestamp.json a regular file, none of
// them reached through a symbolic link.
func BundleURLs(dir string) (metadataURL, targetsURL string, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", "", fmt.Errorf("offline bundle %s: %w", dir, err)
	}
	for _, p := range []string{"metadata", "targets"} {
		mode, err := localfile.Lstat(abs, p)
		if err != nil {
			return "", "", fmt.Errorf("offline bundle %s: not a bundle: %w", dir, err)
		}
		if !mode.IsDir() {
			return "", "", fmt.Errorf("offline bundle %s: %s is not a directory (a %s): %w", dir, filepath.Join(abs, p), localfile.Kind(mode), localfile.ErrRefused)
		}
	}
	ts := "metadata/timestamp.json"
	mode, err := localfile.Lstat(abs, ts)
	if err != nil {
		return "", "", fmt.Errorf("offline bundle %s: not a bundle (no %s): %w", dir, ts, err)
	}
	if !mode.IsRegular() {
		return "", "", fmt.Errorf("offline bundle %s: %s is not a regular file (a %s): %w", dir, filepath.Join(abs, ts), localfile.Kind(mode), localfile.ErrRefused)
	}
	base := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
	return base + "/metadata", base + "/targets", nil
}

// WithSource returns a Client that reads metadata and targets from other base
// URLs (such as BundleURLs) but shares this Client's metadata cache, time
// floor, blob store and locks: refreshes of both are serialized, and what one
// verifies raises the rollback and time floors of the other.
//
// file:// URLs are read below their base directories only, through the
// offline-bundle reader: regular files reached without symbolic links,
// opened without blocking, bounded by the signed lengths; anything else is
// refused with an error naming its path.
func (c *Client) WithSource(metadataURL, targetsURL string) *Client {
	d := *c
	d.cfg.MetadataURL = metadataURL
	d.cfg.TargetsURL = targetsURL
	d.http = &http.Client{
		Transport:     newLocalTransport(c.http.Transport, metadataURL, targetsURL),
		CheckRedirect: c.http.CheckRedirect,
		Timeout:       c.http.Timeout,
	}
	return &d
}

// Import is the outcome of ImportBundle. Snapshot lists every target the
// bundle's metadata signs; Staged only those whose files the bundle carries,
// now verified and in the blob store: report len(Staged) as what was staged.
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
//
// Every file is read through one local reader (see WithSource): a symbolic
// link, named pipe, device or directory where the bundle should hold a file
// refuses the whole bundle, naming the entry, before any target is staged.
// Nothing blocks on what is on the medium, so ctx bounds the import.
func ImportBundle(ctx context.Context, c *Client, dir string) (*Import, error) {
	mdURL, tgURL, err := BundleURLs(dir)
	if err != nil {
		return nil, err
	}
	bc := c.WithSource(mdURL, tgURL)
	// A bundle's timestamp may be signed for longer than the repository's
	// (fieldgate-repo export --expires): its expiry minus the online
	// validity is no time the repository vouches has passed.
	bc.cfg.TimestampValidity = 0
	snap, err := bc.Refresh(ctx)
	if err != nil {
		return nil, fmt.Errorf("offline bundle %s: %s: %w", dir, explainRefreshError(err), err)
	}
	if lt, ok := bc.http.Transport.(*localTransport); ok {
		if err := lt.firstRefused(); err != nil {
			return nil, fmt.Errorf("offline bundle %s: bundle refused: %w", dir, err)
		}
	}
	var carried []Target
	for _, t := range snap.Targets {
		ok, err := bundleHas(tgURL, bc.TargetURL(t))
		if err != nil {
			return nil, fmt.Errorf("offline bundle %s: bundle refused: target %s: %w", dir, t.Name, err)
		}
		if ok {
			carried = append(carried, t)
		}
	}
	if err := stageDocuments(ctx, bc, tgURL, snap.Documents); err != nil {
		return nil, fmt.Errorf("offline bundle %s: %w", dir, err)
	}
	imp := &Import{Snapshot: snap}
	for _, t := range carried {
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

// bundleHas reports whether the bundle's targets directory (base URL
// targetsURL) holds a regular file at the target URL rawURL. A missing file
// is not carried; any other entry is an error naming its path.
func bundleHas(targetsURL, rawURL string) (bool, error) {
	base, err := url.Parse(targetsURL)
	if err != nil {
		return false, err
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return false, err
	}
	rel, ok := strings.CutPrefix(u.Path, strings.TrimSuffix(base.Path, "/")+"/")
	if !ok {
		return false, fmt.Errorf("%s is outside the bundle's targets: %w", u.Path, localfile.ErrRefused)
	}
	mode, err := localfile.Lstat(filepath.FromSlash(base.Path), rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case !mode.IsRegular():
		return false, fmt.Errorf("%s is not a regular file (a %s): %w", filepath.Join(filepath.FromSlash(base.Path), filepath.FromSlash(rel)), localfile.Kind(mode), localfile.ErrRefused)
	}
	return true, nil
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
	case errors.Is(err, localfile.ErrRefused):
		return "bundle refused: it holds an entry that is not a regular file (symbolic link, named pipe, device or directory)"
	case errors.Is(err, &metadata.ErrDownloadHTTP{}):
		return "bundle refused: a metadata file the gateway needs is missing"
	}
	return "bundle refused"
}
