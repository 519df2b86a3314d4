// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// signedTargets answers every name with the same verified target info, as
// go-tuf would for a repository signing targets named ".", ".." or "" (a
// correct publisher refuses such names, an attacker's does not).
type signedTargets struct{ tf *metadata.TargetFiles }

func (s signedTargets) GetTargetInfo(string) (*metadata.TargetFiles, error) { return s.tf, nil }

// TestDownloadUnsafeTargetNames: a target whose name is not a file inside
// the target directory is refused before anything is removed or written;
// the directory and its parent stay.
func TestDownloadUnsafeTargetNames(t *testing.T) {
	c := &Client{cfg: Config{TargetsURL: "http://127.0.0.1:1/targets", HTTPTimeout: DefaultHTTPTimeout}, http: newHTTPClient(), st: &state{inflight: map[string]chan struct{}{}}}
	sum := sha256.Sum256([]byte("x"))
	up := signedTargets{tf: &metadata.TargetFiles{Length: 1, Hashes: metadata.Hashes{"sha256": sum[:]}}}
	for _, name := range []string{".", "..", ""} {
		t.Run(strconv.Quote(name), func(t *testing.T) {
			parent := filepath.Join(t.TempDir(), "parent")
			td := filepath.Join(parent, "td")
			if err := os.MkdirAll(td, 0o755); err != nil {
				t.Fatal(err)
			}
			err := c.downloadNamed(context.Background(), up, name, td)
			if err == nil || !strings.Contains(err.Error(), "refused") {
				t.Errorf("downloadNamed(%q) = %v, want a refusal", name, err)
			}
			for _, d := range []string{td, parent} {
				if st, err := os.Stat(d); err != nil || !st.IsDir() {
					t.Errorf("downloadNamed(%q): %s gone (stat: %v)", name, d, err)
				}
			}
			if entries, _ := os.ReadDir(td); len(entries) != 0 {
				t.Errorf("downloadNamed(%q): target dir holds %d entries, want 0", name, len(entries))
			}
		})
	}
}
