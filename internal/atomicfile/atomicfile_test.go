// SPDX-License-Identifier: Apache-2.0

package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplacesWhole(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	for _, want := range []string{"first", "second, longer"} {
		if err := Write(p, []byte(want), 0o640); err != nil {
			t.Fatalf("Write(%q) = %v", want, err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != want {
			t.Errorf("ReadFile = %q, %v; want %q", got, err, want)
		}
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, want 0640", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	f, err := Create(dir, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("partial"))
	f.Abort()
	f.Abort() // twice is harmless
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("after Abort the directory holds %d entries, want 0", len(ents))
	}
	g, _ := Create(dir, 0o600)
	g.Write([]byte("whole"))
	if err := g.Commit("img.bin"); err != nil {
		t.Fatal(err)
	}
	g.Abort() // after Commit: a no-op
	if got, _ := os.ReadFile(filepath.Join(dir, "img.bin")); string(got) != "whole" {
		t.Errorf("committed file = %q, want whole", got)
	}
	if err := g.Commit("again"); err == nil {
		t.Error("a second Commit succeeded")
	}
}
