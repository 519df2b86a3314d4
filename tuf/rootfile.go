// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/fieldgate/fieldgate/tuf/internal/localfile"
)

// The gateway's trust starts from one root metadata file, provisioned once
// (`fieldgatectl trust init`) and named by the configuration's
// tuf.trusted_root. The functions here check such a file before anything
// trusts it; they read no repository and keep no state.

// MaxRootSize is the largest root metadata file accepted: go-tuf's own
// limit for root metadata (config.New's RootMaxLength).
const MaxRootSize = 512000

// RootInfo is what a root metadata file says about itself, once its own
// root keys have verified it.
type RootInfo struct {
	Version   int64
	Expires   time.Time
	Threshold int      // signatures the root role needs
	KeyIDs    []string // the root role's key ids, in the file's order
	Signed    int      // how many of KeyIDs signed this file (at least Threshold)
}

// RootFingerprint returns the fingerprint a person compares when a root is
// provisioned: "sha256:" and the lower-case hex SHA-256 of the file's
// exact bytes. fieldgate-repo prints it where the root is made.
func RootFingerprint(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// CheckRoot parses data as TUF root metadata and verifies it with its own
// root keys at its own threshold: what a client requires of the root it
// starts from. Expiry is not checked (see RootInfo.Expires): a client
// walks the root chain from an expired trusted root to the current one.
// The error says which of these data is not: JSON, TUF metadata, root
// metadata, well-formed root metadata, or signed by enough of its keys.
func CheckRoot(data []byte) (RootInfo, error) {
	if len(data) > MaxRootSize {
		return RootInfo{}, fmt.Errorf("%d bytes, more than root metadata may have (%d)", len(data), MaxRootSize)
	}
	var probe struct {
		Signed *struct {
			Type string `json:"_type"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return RootInfo{}, fmt.Errorf("not JSON (want TUF root metadata): %w", err)
	}
	switch {
	case probe.Signed == nil:
		return RootInfo{}, errors.New("not TUF metadata: no \"signed\" object")
	case probe.Signed.Type != metadata.ROOT:
		return RootInfo{}, fmt.Errorf("not root metadata: signed._type is %q, want %q", probe.Signed.Type, metadata.ROOT)
	}
	m, err := metadata.Root().FromBytes(data)
	if err != nil {
		return RootInfo{}, fmt.Errorf("malformed root metadata: %w", err)
	}
	role, ok := m.Signed.Roles[metadata.ROOT]
	if !ok || role == nil {
		return RootInfo{}, errors.New("malformed root metadata: no root role")
	}
	info := RootInfo{
		Version:   m.Signed.Version,
		Expires:   m.Signed.Expires.UTC(),
		Threshold: role.Threshold,
		KeyIDs:    append([]string(nil), role.KeyIDs...),
	}
	if err := m.VerifyDelegate(metadata.ROOT, m); err != nil {
		return info, fmt.Errorf("root version %d is not signed by %d of its own %d root keys: %w", info.Version, info.Threshold, len(info.KeyIDs), err)
	}
	// VerifyDelegate stops at no count; count the keys that signed, for
	// the person comparing (each key once, as the threshold counts them).
	for _, id := range info.KeyIDs {
		one := *m
		one.Signatures = nil
		for _, s := range m.Signatures {
			if s.KeyID == id {
				one.Signatures = append(one.Signatures, s)
			}
		}
		single := *m.Signed.Roles[metadata.ROOT]
		single.KeyIDs, single.Threshold = []string{id}, 1
		check := *m
		check.Signed.Roles = map[string]*metadata.Role{metadata.ROOT: &single}
		if check.VerifyDelegate(metadata.ROOT, &one) == nil {
			info.Signed++
		}
	}
	return info, nil
}

// ReadRootFile reads a root metadata file named by an operator or the
// configuration: a regular file (a symbolic link to one is followed), at
// most MaxRootSize bytes. A named pipe or device is refused before it is
// opened. The content is not checked (see CheckRoot).
func ReadRootFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is a %s, not a regular file", path, localfile.Kind(st.Mode()))
	}
	if st.Size() > MaxRootSize {
		return nil, fmt.Errorf("%s is %d bytes, more than root metadata may have (%d)", path, st.Size(), MaxRootSize)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxRootSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxRootSize {
		return nil, fmt.Errorf("%s grew past %d bytes while read", path, MaxRootSize)
	}
	return data, nil
}

// BundleRoot is where an offline bundle holds the first root of its chain,
// the one the publisher's fingerprint names.
const BundleRoot = "metadata/1.root.json"

// ReadBundleRoot reads the first root of the offline bundle in dir
// (BundleRoot), the way ImportBundle reads a bundle: a regular file reached
// without symbolic links below dir, opened without blocking, at most
// MaxRootSize bytes. A missing file is reported with an error wrapping
// fs.ErrNotExist; a symbolic link, named pipe or other non-file is refused
// with an error naming it. The content is not checked (see CheckRoot).
func ReadBundleRoot(dir string) ([]byte, error) {
	data, err := localfile.ReadFile(dir, BundleRoot, MaxRootSize)
	if err != nil {
		return nil, fmt.Errorf("offline bundle %s: %w", dir, err)
	}
	return data, nil
}
