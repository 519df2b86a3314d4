// SPDX-License-Identifier: Apache-2.0

package publish

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// RootFingerprint identifies a root metadata file as it is handed to a
// gateway: the SHA-256 of the file's exact bytes. Two people compare it by
// phone before a gateway trusts the file (fieldgatectl trust init ROOT.json
// --expect-sha256 HEX).
type RootFingerprint struct {
	Version int64
	Path    string // DIR/repository/metadata/N.root.json
	SHA256  string // lower-case hex
}

// Grouped returns the hex in groups of four characters separated by
// spaces, for reading aloud.
func (f RootFingerprint) Grouped() string {
	var b strings.Builder
	for i := 0; i < len(f.SHA256); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(f.SHA256[i:min(i+4, len(f.SHA256))])
	}
	return b.String()
}

// RootFingerprints returns the fingerprints of the first root, 1.root.json
// (what gateways are provisioned with: it never changes, and a gateway walks
// the signed chain of roots from it), and of the current root N.root.json
// (also accepted as a trust anchor; the same file until root is rotated).
// Both are read from disk, so they are the bytes a web server or a USB
// stick hands out.
func (r *Repo) RootFingerprints() (first, current RootFingerprint, err error) {
	if first, err = r.rootFingerprint(1); err != nil {
		return first, current, err
	}
	if current, err = r.rootFingerprint(r.root.Signed.Version); err != nil {
		return first, current, err
	}
	return first, current, nil
}

func (r *Repo) rootFingerprint(version int64) (RootFingerprint, error) {
	p := filepath.Join(r.MetadataDir(), strconv.FormatInt(version, 10)+".root.json")
	data, err := os.ReadFile(p)
	if err != nil {
		return RootFingerprint{}, fmt.Errorf("root fingerprint: %w", err)
	}
	sum := sha256.Sum256(data)
	return RootFingerprint{Version: version, Path: p, SHA256: hex.EncodeToString(sum[:])}, nil
}
