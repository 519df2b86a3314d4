// SPDX-License-Identifier: Apache-2.0

package testreport

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
)

// Passed reports why r does not show a passed test, or nil: every phase
// ended ok or was retried, the last one is committed, and the device read
// back the target's version.
func (r Report) Passed() error {
	if n := len(r.Steps); n == 0 || r.Steps[n-1].Phase != PhaseCommitted {
		return fmt.Errorf("test report %s: the step did not commit", r.ID)
	}
	for _, s := range r.Steps {
		if s.Result == ResultFailed || slices.Contains([]string{"rollback", "rolled-back", "failed", "skipped"}, s.Phase) {
			return fmt.Errorf("test report %s: phase %s %s: %s", r.ID, s.Phase, s.Result, s.Error)
		}
	}
	if r.VersionReadBack != r.Version {
		return fmt.Errorf("test report %s: the device read back version %q, want %q", r.ID, r.VersionReadBack, r.Version)
	}
	return nil
}

// Covers reports why the verified report r does not prove that image
// sha256 at version passed a test on hardware hwid under one of the keys
// trusted, or nil. Parse has checked the signature and the expiry.
func (r Report) Covers(sha256, version, hwid string, trusted []string) error {
	switch {
	case r.SHA256 != sha256:
		return fmt.Errorf("test report %s is for sha256 %s, not %s", r.ID, r.SHA256, sha256)
	case r.HardwareID != hwid:
		return fmt.Errorf("test report %s is for hardware %s, not %s", r.ID, r.HardwareID, hwid)
	case !slices.Contains(trusted, r.Key):
		return fmt.Errorf("test report %s is signed by staging key %s, not by %s", r.ID, r.Key, strings.Join(trusted, " or "))
	case r.Version != version:
		return fmt.Errorf("test report %s is for version %s, not %s", r.ID, r.Version, version)
	}
	return r.Passed()
}

// ParsePrivateKey reads a signing key file's contents: one line, the
// standard base64 of a 64-byte ed25519 private key, the format of
// `fieldgatectl remote keygen`. name is for errors.
func ParsePrivateKey(name string, b []byte) (ed25519.PrivateKey, error) {
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("signing key %s: want one line of base64 of a %d-byte ed25519 private key (see fieldgatectl remote keygen)", name, ed25519.PrivateKeySize)
	}
	priv := ed25519.PrivateKey(raw)
	if !bytes.Equal(ed25519.NewKeyFromSeed(priv.Seed()), priv) {
		return nil, fmt.Errorf("signing key %s: its public half does not belong to its seed (damaged file?)", name)
	}
	return priv, nil
}
