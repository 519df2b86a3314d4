// SPDX-License-Identifier: Apache-2.0

package publish

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/tuf"
)

// TestExportPublishedTraversal: metadata signed before names were checked at
// commit may hold a name that leaves the targets directory; export refuses
// it and writes nothing outside OUT, even where the source file exists.
func TestExportPublishedTraversal(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "repo")
	r, err := Init(dir, Options{Keys: KeyAccess{InsecurePlaintextKeys: true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AddTargetBytes("acme-io16/fw.bin", []byte("fw"), tuf.Meta{Hardware: []string{"hw"}, Version: "1"}); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	tf := r.targets.Signed.Targets["acme-io16/fw.bin"]
	bad := "acme-io16/../../../../elsewhere/pwned.bin"
	r.targets.Signed.Targets[bad] = tf
	// Where the old export read the source from (base/elsewhere); it wrote
	// the copy to base/out/a/elsewhere.
	src := filepath.Join(r.TargetsDir(), "acme-io16", "../../../../elsewhere")
	os.MkdirAll(src, 0o755)
	for _, h := range tf.Hashes {
		os.WriteFile(filepath.Join(src, h.String()+".pwned.bin"), []byte("fw"), 0o644)
	}
	out := filepath.Join(base, "out", "a", "b", "bundle")
	if _, err := r.Export(out, nil); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("Export() with published %s = %v, want an error naming it", bad, err)
	}
	if _, err := os.Lstat(out); err == nil {
		t.Errorf("Export() refused but created %s", out)
	}
	escaped, _ := filepath.Glob(filepath.Join(base, "out", "*", "elsewhere", "*"))
	if len(escaped) != 0 {
		t.Errorf("Export() wrote outside its directory: %v", escaped)
	}
	delete(r.targets.Signed.Targets, bad)
	if _, err := r.Export(out, nil); err != nil {
		t.Errorf("Export() of the good targets = %v", err)
	}
}
