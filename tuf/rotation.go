// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// rotatedAway returns the roles among timestamp and snapshot whose cached
// metadata (in dir or its last-known-good copy) no longer meets root's
// threshold for that role with the keys root lists: the keys that signed the
// trusted files were rotated away (TUF spec 5.3.11), each with the reason.
// A key added, or a threshold the old signatures still meet, is no
// rotation: the cached versions keep protecting against rollback. Files that
// are missing or unparsable are not judged (repairCache deals with those).
func rotatedAway(dir string, root *metadata.Metadata[metadata.RootType]) []string {
	var rotated []string
	for _, role := range []string{metadata.TIMESTAMP, metadata.SNAPSHOT} {
		for _, d := range []string{dir, filepath.Join(dir, lkgDir)} {
			if err := cachedMeetsThreshold(root, filepath.Join(d, role+".json"), role); err != nil {
				rotated = append(rotated, fmt.Sprintf("%s: %v", role, err))
				break
			}
		}
	}
	return rotated
}

// cachedMeetsThreshold verifies the cached metadata file p of role with
// root's keys and threshold for role. A missing or unparsable file is nil.
func cachedMeetsThreshold(root *metadata.Metadata[metadata.RootType], p, role string) error {
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var md any
	switch role {
	case metadata.TIMESTAMP:
		m, err := metadata.Timestamp().FromBytes(data)
		if err != nil {
			return nil
		}
		md = m
	default:
		m, err := metadata.Snapshot().FromBytes(data)
		if err != nil {
			return nil
		}
		md = m
	}
	return root.VerifyDelegate(role, md)
}
