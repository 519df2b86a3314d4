// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// trustAnchorFile, in MetadataDir, records the newest root version the
// client has trusted and, while refreshes end on an older root, why they
// started from one: "VERSION\nREASON\n". It is not a .json file, so the
// metadata cache repair leaves it alone.
//
// It exists because go-tuf overwrites root.json with the root a refresh
// starts from: after one refresh from an older root, nothing else would
// remember that a newer one was ever trusted.
const trustAnchorFile = "trust-anchor"

// anchorCheck is what checkTrustAnchor learned before a refresh.
type anchorCheck struct {
	newest int64  // newest root version trusted before this refresh; 0: none yet
	reason string // why this refresh starts from an older root; "" if it does not
}

// checkTrustAnchor runs before a refresh, before repairCache and go-tuf touch
// root.json. It finds the newest root version trusted so far (the record,
// root.json and its last-known-good copy, each root counted only if its own
// keys verify it) and, when root.json is missing, unusable or older than
// that, says which root the refresh falls back to and why. The newest
// version is recorded at once, so the fallback cannot erase it.
func (c *Client) checkTrustAnchor() anchorCheck {
	dir := c.cfg.MetadataDir
	newest, stored := readTrustAnchor(dir)
	cur, curErr := verifiedRootVersion(filepath.Join(dir, "root.json"))
	lkg, lkgErr := verifiedRootVersion(filepath.Join(dir, lkgDir, "root.json"))
	recorded := newest
	newest = max(newest, cur, lkg)
	if newest > recorded {
		c.writeTrustAnchor(newest, stored)
	}
	a := anchorCheck{newest: newest}
	if newest == 0 || (curErr == nil && cur == newest) {
		return a
	}
	var from, why string
	switch {
	case curErr == nil:
		from = fmt.Sprintf("root.json (version %d)", cur)
		why = fmt.Sprintf("root.json is version %d", cur)
	case lkgErr == nil:
		from = fmt.Sprintf("the last-known-good root (version %d)", lkg)
		why = "root.json: " + curErr.Error()
	default:
		from = "the shipped root"
		if m, err := readRoot(c.cfg.TrustedRoot); err == nil {
			from = fmt.Sprintf("the shipped root (version %d)", m.Signed.Version)
		}
		why = fmt.Sprintf("root.json: %v; last-known-good root: %v", curErr, lkgErr)
	}
	a.reason = fmt.Sprintf("refresh starts from %s, older than root version %d trusted before (%s)", from, newest, why)
	if curErr == nil && stored != "" {
		// An earlier refresh fell back and go-tuf replaced root.json:
		// the first reason is the one that says what went wrong.
		a.reason = stored
	}
	c.log.Warn("tuf refresh: falling back to an older trust anchor", "reason", a.reason)
	return a
}

// settleTrustAnchor runs after a successful top-level refresh that ended
// on root version final. It returns Snapshot.TrustFallback: "" once the
// refresh reached the newest root trusted before (the client walked forward
// again), else what the client fell back to and why. The record is updated
// either way.
func (c *Client) settleTrustAnchor(a anchorCheck, final int64) string {
	if final >= a.newest {
		if a.reason != "" {
			c.log.Info("tuf refresh: trust restored, newest root reached again", "root_version", final)
		}
		c.writeTrustAnchor(final, "")
		return ""
	}
	reason := a.reason
	if reason == "" {
		reason = fmt.Sprintf("root version %d trusted before", a.newest)
	}
	c.writeTrustAnchor(a.newest, reason)
	return fmt.Sprintf("%s; the repository led only to root version %d", reason, final)
}

func (c *Client) writeTrustAnchor(version int64, reason string) {
	data := strconv.FormatInt(version, 10) + "\n"
	if reason != "" {
		data += strings.ReplaceAll(reason, "\n", " ") + "\n"
	}
	if err := writeFileAtomic(filepath.Join(c.cfg.MetadataDir, trustAnchorFile), []byte(data)); err != nil {
		c.log.Error("tuf refresh: cannot record the newest trusted root", "err", err)
	}
}

// readTrustAnchor returns the recorded newest root version and fallback
// reason; 0 and "" when there is no usable record.
func readTrustAnchor(dir string) (int64, string) {
	data, err := os.ReadFile(filepath.Join(dir, trustAnchorFile))
	if err != nil {
		return 0, ""
	}
	line, reason, _ := strings.Cut(string(data), "\n")
	v, err := strconv.ParseInt(line, 10, 64)
	if err != nil || v < 0 {
		return 0, ""
	}
	return v, strings.TrimSpace(reason)
}

// verifiedRootVersion returns the version of the root metadata in file p if
// the root's own keys verify it (what go-tuf requires of a starting root).
func verifiedRootVersion(p string) (int64, error) {
	m, err := readRoot(p)
	if err != nil {
		return 0, err
	}
	if err := m.VerifyDelegate(metadata.ROOT, m); err != nil {
		return 0, err
	}
	return m.Signed.Version, nil
}

func readRoot(p string) (*metadata.Metadata[metadata.RootType], error) {
	if p == "" {
		return nil, errors.New("none")
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errors.New("missing")
	}
	if err != nil {
		return nil, err
	}
	return metadata.Root().FromBytes(data)
}
