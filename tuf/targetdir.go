// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// This file holds what a client that keeps trusted metadata and targets as
// plain files needs: the TUF conformance suite's client-under-test
// (fieldgatectl tuf) and offline diagnosis. The gateway itself uses the
// blob store (Fetch) instead.

// InitMetadataDir makes the root metadata in the file trustedRoot the trust
// anchor of a metadata directory: it checks that the file is root metadata
// (its signatures are verified by the first refresh, as for
// Config.TrustedRoot) and stores its exact bytes as root.json in dir,
// atomically, creating dir if needed. It does no network I/O.
func InitMetadataDir(dir, trustedRoot string) error {
	data, err := os.ReadFile(trustedRoot)
	if err != nil {
		return err
	}
	if err := checkMetadataFile(metadata.ROOT, data); err != nil {
		return fmt.Errorf("trusted root %s: %w", trustedRoot, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, "root.json"), data)
}

// DownloadTargets refreshes the metadata, then stores the named targets, in
// order, in dir under their URL-path-escaped names, stopping at the first
// that fails. Each name is looked up through delegations by the resolver of
// that refresh (the daemon's; delegated roles are fetched only as each
// search reaches them), so all of them are judged by the same trusted
// metadata. A file already in dir that matches its target's length and
// hashes is not downloaded again; one that does not is replaced. A download
// goes to a hidden partial file that is renamed into place only once
// verified, so dir never holds an unverified target under a target's name.
// dir is created if needed; the blob store is not used.
func (c *Client) DownloadTargets(ctx context.Context, dir string, names []string) error {
	if dir == "" {
		return errors.New("tuf download: no target directory")
	}
	if c.cfg.TargetsURL == "" {
		return errors.New("tuf download: TargetsURL is required")
	}
	up, _, err := c.refresh(ctx, false)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range names {
		if err := c.downloadNamed(ctx, up, name, dir); err != nil {
			return fmt.Errorf("download %s: %w", name, err)
		}
	}
	return nil
}

// targetFileName returns the name under which target name is stored in a
// target directory: name, URL-path-escaped (so "a/b" is "a%2Fb"). A name
// that would not be a file inside the directory ("", ".", "..") is refused
// before anything is looked up or removed: a signed target called "." would
// otherwise replace the directory itself, ".." its parent.
func targetFileName(name string) (string, error) {
	file := url.PathEscape(name)
	if name == "" || file == "." || file == ".." || !filepath.IsLocal(file) || filepath.Base(file) != file {
		return "", fmt.Errorf("target name %q: not a file name inside the target directory, refused", name)
	}
	return file, nil
}

type targetInfoer interface {
	GetTargetInfo(string) (*metadata.TargetFiles, error)
}

func (c *Client) downloadNamed(ctx context.Context, up targetInfoer, name, dir string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in metadata verification: %v", r)
		}
	}()
	file, err := targetFileName(name)
	if err != nil {
		return err
	}
	tf, err := up.GetTargetInfo(name)
	if err != nil {
		return err
	}
	t := newTarget(name, tf)
	if err := checkHashes(t); err != nil {
		return err
	}
	dst := filepath.Join(dir, file)
	switch err := VerifyFile(dst, t); {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
	default:
		if err := os.Remove(dst); err != nil {
			return err
		}
	}
	// The partial file is hidden so that nothing reads it as a target.
	part := filepath.Join(dir, "."+file+".partial")
	if err := c.DownloadTo(ctx, c.TargetURL(t), t, part, nil); err != nil {
		return err
	}
	if err := os.Rename(part, dst); err != nil {
		return err
	}
	return syncDir(dir)
}
