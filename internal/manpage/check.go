// SPDX-License-Identifier: Apache-2.0

package manpage

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Golden fails t when the file at path is not want, naming the first
// line that differs and how to regenerate it (regen, e.g. "go test
// ./cmd/fieldgatectl -run TestManPage -update"). With update it writes
// want to path instead.
func Golden(t testing.TB, path string, want []byte, update bool, regen string) {
	t.Helper()
	if update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v; generate it with %s", err, regen)
	}
	if bytes.Equal(got, want) {
		return
	}
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl || i >= len(g) || i >= len(w) {
			t.Fatalf("%s is out of date with the code; regenerate it with %s\nline %d: %q\n   want: %q", path, regen, i+1, gl, wl)
		}
	}
}

// Lint renders a man page with groff as man(1) and lintian do, warnings
// all on (-ww), and fails t on any warning or error. Without groff it
// skips, naming the Debian package, or fails when CI=true.
func Lint(t testing.TB, name string, roff []byte) {
	t.Helper()
	groff, err := exec.LookPath("groff")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("groff not found (Debian package groff-base)")
		}
		t.Skip("groff not found: apt install groff-base")
	}
	for _, width := range []string{"-rLL=80n", "-rLL=65n"} {
		cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z", width)
		cmd.Stdin = bytes.NewReader(roff)
		cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("groff -man -ww %s %s: %v\n%s", width, name, err, stderr.String())
		}
	}
}
