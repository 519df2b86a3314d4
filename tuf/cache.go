// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// lkgDir is the directory, inside MetadataDir, of last-known-good copies of
// the metadata cache, written after every successful refresh.
const lkgDir = "last-known-good"

// checkMetadataFile parses a cached metadata file as the role it is named
// after. It checks syntax and type only; signatures are go-tuf's job.
func checkMetadataFile(role string, data []byte) error {
	var err error
	switch role {
	case metadata.ROOT:
		_, err = metadata.Root().FromBytes(data)
	case metadata.TIMESTAMP:
		_, err = metadata.Timestamp().FromBytes(data)
	case metadata.SNAPSHOT:
		_, err = metadata.Snapshot().FromBytes(data)
	default:
		_, err = metadata.Targets().FromBytes(data)
	}
	if err == nil && len(data) == 0 {
		err = errors.New("empty file")
	}
	return err
}

// roleOfFile maps a cache file name ("snapshot.json", "acme%2Fvendor.json")
// to its role name.
func roleOfFile(name string) (string, bool) {
	base, ok := strings.CutSuffix(name, ".json")
	if !ok || base == "" {
		return "", false
	}
	role, err := url.PathUnescape(base)
	if err != nil {
		return "", false
	}
	return role, true
}

// repairCache checks every cached metadata file before go-tuf reads it. A file
// that is empty, truncated or unparsable (as after a power cut: go-tuf renames
// without fsync) is replaced by its last-known-good copy, or removed when
// there is none so that it is downloaded again. Without this, go-tuf fails
// every refresh with a JSON error. Each repair is logged.
func repairCache(dir string, log *slog.Logger) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	present := map[string]bool{}
	for _, e := range entries {
		role, ok := roleOfFile(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		present[e.Name()] = true
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err == nil {
			err = checkMetadataFile(role, data)
		}
		if err == nil {
			continue
		}
		restoreOrRemove(dir, e.Name(), role, err, log)
	}
	// A lost root.json would replay the whole root chain from the shipped
	// root; bring back the newer known-good one.
	if !present["root.json"] {
		if data, err := os.ReadFile(filepath.Join(dir, lkgDir, "root.json")); err == nil && checkMetadataFile(metadata.ROOT, data) == nil {
			if err := writeFileAtomic(filepath.Join(dir, "root.json"), data); err == nil {
				log.Warn("tuf cache: root.json missing, restored last-known-good copy")
			}
		}
	}
}

func restoreOrRemove(dir, name, role string, cause error, log *slog.Logger) {
	path := filepath.Join(dir, name)
	good, err := os.ReadFile(filepath.Join(dir, lkgDir, name))
	if err == nil {
		err = checkMetadataFile(role, good)
	}
	if err == nil {
		if err := writeFileAtomic(path, good); err == nil {
			log.Warn("tuf cache: corrupt metadata file restored from last-known-good copy", "file", name, "err", cause)
			return
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		log.Error("tuf cache: cannot remove corrupt metadata file", "file", name, "err", err)
		return
	}
	log.Warn("tuf cache: corrupt metadata file removed (no last-known-good copy), it will be downloaded again", "file", name, "err", cause)
}

// saveCache makes the cache durable after a successful refresh: it fsyncs the
// cached files of roles and the directory, then writes last-known-good copies.
func saveCache(dir string, roles []string) error {
	lkg := filepath.Join(dir, lkgDir)
	if err := os.MkdirAll(lkg, 0o700); err != nil {
		return fmt.Errorf("save metadata cache: %w", err)
	}
	for _, role := range roles {
		name := url.PathEscape(role) + ".json"
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("save metadata cache: %w", err)
		}
		if err := syncFile(path); err != nil {
			return fmt.Errorf("save metadata cache: fsync %s: %w", name, err)
		}
		if err := writeFileAtomic(filepath.Join(lkg, name), data); err != nil {
			return fmt.Errorf("save metadata cache: %w", err)
		}
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("save metadata cache: %w", err)
	}
	return nil
}
