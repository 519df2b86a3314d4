// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/tuf/publish"
)

// trustRepo is a repository as fieldgate-repo init makes it, with its first
// root's bytes and fingerprint.
type trustRepo struct {
	pub  *publish.Repo
	root []byte
	fp   string // hex SHA-256 of root
}

func newTrustRepo(t *testing.T, opts publish.Options) trustRepo {
	t.Helper()
	opts.Keys = publish.KeyAccess{InsecurePlaintextKeys: true}
	pub, err := publish.Init(filepath.Join(t.TempDir(), "repo"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Commit(); err != nil {
		t.Fatal(err)
	}
	root := readFile(t, pub.RootPath())
	return trustRepo{pub: pub, root: root, fp: sha256Hex(root)}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// trust runs "fieldgatectl trust init ARGS…" and returns stdout+stderr.
func trust(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"trust", "init"}, args...), &out, &out)
	return out.String(), err
}

// writeTemp writes data to a new file name in a new directory.
func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// dirEntries lists a directory's names: nothing partial may be left.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestTrustInitInstalls(t *testing.T) {
	r := newTrustRepo(t, publish.Options{Threshold: map[string]int{"root": 2}})
	for _, expect := range []string{
		r.fp,
		"sha256:" + r.fp,
		"SHA256:" + strings.ToUpper(r.fp),
		groups(r.fp, " "), // read out by phone
		groups(r.fp, ":"),
		"  sha256: " + groups(r.fp, " ") + " ",
	} {
		t.Run(expect, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "root.json")
			out, err := trust(t, r.pub.RootPath(), "--expect-sha256", expect, "--dest", dest)
			if err != nil {
				t.Fatalf("trust init = %v\n%s", err, out)
			}
			if got := readFile(t, dest); !bytes.Equal(got, r.root) {
				t.Errorf("installed root differs from the repository's 1.root.json")
			}
			st, err := os.Stat(dest)
			if err != nil || st.Mode().Perm() != 0o644 {
				t.Errorf("installed root mode = %v (%v), want 0644", st.Mode(), err)
			}
			if got := dirEntries(t, filepath.Dir(dest)); len(got) != 1 {
				t.Errorf("destination directory holds %q, want root.json alone", got)
			}
			for _, want := range []string{
				"fingerprint sha256:" + r.fp + " (matches --expect-sha256)",
				"version 1, expires ",
				"root keys: 2, threshold 2, signed by 2",
				"installed root version 1 at " + dest,
			} {
				if !strings.Contains(out, want) {
					t.Errorf("trust init output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// groups splits hex into groups of four joined by sep.
func groups(h, sep string) string {
	var g []string
	for i := 0; i < len(h); i += 4 {
		g = append(g, h[i:i+4])
	}
	return strings.Join(g, sep)
}

// TestTrustInitRefuses: every bad input is an error saying what is wrong,
// and nothing is installed, not even in part.
func TestTrustInitRefuses(t *testing.T) {
	r := newTrustRepo(t, publish.Options{})
	other := newTrustRepo(t, publish.Options{})

	// The signatures changed after signing; the fingerprint given is the
	// tampered file's, so only the signature check can catch it.
	var m map[string]any
	if err := json.Unmarshal(r.root, &m); err != nil {
		t.Fatal(err)
	}
	for _, s := range m["signatures"].([]any) {
		sig := []byte(s.(map[string]any)["sig"].(string))
		if sig[0] == '0' { // another hex digit: still a signature, a wrong one
			sig[0] = '1'
		} else {
			sig[0] = '0'
		}
		s.(map[string]any)["sig"] = string(sig)
	}
	tamperedBytes, _ := json.Marshal(m)
	tampered := writeTemp(t, "root.json", tamperedBytes)
	targetsBytes := readFile(t, filepath.Join(r.pub.MetadataDir(), "1.targets.json"))
	targets := writeTemp(t, "targets.json", targetsBytes)
	notJSON := writeTemp(t, "root.json", []byte("root of all evil\n"))

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"wrong fingerprint", []string{r.pub.RootPath(), "--expect-sha256", other.fp},
			[]string{"does not have the expected fingerprint", "expected  sha256:" + other.fp, "file      sha256:" + r.fp, "nothing installed"}},
		{"fingerprint too short", []string{r.pub.RootPath(), "--expect-sha256", r.fp[:40]}, []string{"64 hex digits"}},
		{"fingerprint not hex", []string{r.pub.RootPath(), "--expect-sha256", "z" + r.fp[1:]}, []string{"64 hex digits"}},
		{"no fingerprint", []string{r.pub.RootPath()}, []string{"--expect-sha256 is required"}},
		{"no root", []string{"--expect-sha256", r.fp}, []string{"no root given"}},
		{"root and bundle", []string{r.pub.RootPath(), "--bundle", t.TempDir(), "--expect-sha256", r.fp}, []string{"not both"}},
		{"missing file", []string{filepath.Join(t.TempDir(), "root.json"), "--expect-sha256", r.fp}, []string{"no such file", "nothing installed"}},
		{"not JSON", []string{notJSON, "--expect-sha256", sha256Hex([]byte("root of all evil\n"))}, []string{"not JSON", "nothing installed"}},
		{"not root metadata", []string{targets, "--expect-sha256", sha256Hex(targetsBytes)}, []string{`not root metadata: signed._type is "targets"`, "nothing installed"}},
		{"tampered signature", []string{tampered, "--expect-sha256", sha256Hex(tamperedBytes)}, []string{"not signed by 1 of its own 1 root keys", "nothing installed"}},
		{"a directory", []string{t.TempDir(), "--expect-sha256", r.fp}, []string{"directory, not a regular file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out, err := trust(t, append(tc.args, "--dest", filepath.Join(dir, "root.json"))...)
			if err == nil {
				t.Fatalf("trust init (%s) succeeded:\n%s", tc.name, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("trust init (%s) = %v, want it to contain %q", tc.name, err, w)
				}
			}
			if got := dirEntries(t, dir); len(got) != 0 {
				t.Errorf("trust init (%s) left %q in the destination directory", tc.name, got)
			}
		})
	}

	t.Run("destination directory missing", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "no", "root.json")
		if _, err := trust(t, r.pub.RootPath(), "--expect-sha256", r.fp, "--dest", dest); err == nil || !strings.Contains(err.Error(), "install root at "+dest) {
			t.Errorf("trust init --dest in a missing directory = %v, want an error naming %s", err, dest)
		}
	})
	t.Run("dest and config", func(t *testing.T) {
		if _, err := trust(t, r.pub.RootPath(), "--expect-sha256", r.fp, "--dest", "x", "--config", "y"); err == nil || !strings.Contains(err.Error(), "not both") {
			t.Errorf("trust init --dest --config = %v, want a refusal", err)
		}
	})
}

func TestTrustInitExisting(t *testing.T) {
	a, b := newTrustRepo(t, publish.Options{}), newTrustRepo(t, publish.Options{})
	dest := filepath.Join(t.TempDir(), "root.json")
	if out, err := trust(t, a.pub.RootPath(), "--expect-sha256", a.fp, "--dest", dest); err != nil {
		t.Fatalf("first trust init = %v\n%s", err, out)
	}
	before, _ := os.Stat(dest)

	out, err := trust(t, a.pub.RootPath(), "--expect-sha256", a.fp, "--dest", dest)
	if err != nil || !strings.Contains(out, "already holds this root: nothing changed") {
		t.Errorf("trust init of the same root again = %v, want success saying nothing changed:\n%s", err, out)
	}
	if after, _ := os.Stat(dest); !os.SameFile(before, after) {
		t.Errorf("trust init of the same root again replaced the file")
	}

	out, err = trust(t, b.pub.RootPath(), "--expect-sha256", b.fp, "--dest", dest)
	if err == nil || !strings.Contains(err.Error(), "already holds a different root (version 1, sha256:"+a.fp+")") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("trust init of a different root = %v, want a refusal naming the installed root and --force\n%s", err, out)
	}
	if !bytes.Equal(readFile(t, dest), a.root) {
		t.Fatal("trust init without --force replaced a different root")
	}

	out, err = trust(t, b.pub.RootPath(), "--expect-sha256", b.fp, "--dest", dest, "--force")
	if err != nil || !strings.Contains(out, "replacing a different root") {
		t.Errorf("trust init --force = %v, want success with a note:\n%s", err, out)
	}
	if !bytes.Equal(readFile(t, dest), b.root) {
		t.Error("trust init --force did not install the new root")
	}
}

func TestTrustInitBundle(t *testing.T) {
	r := newTrustRepo(t, publish.Options{})
	export := func(t *testing.T) string {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "bundle")
		if _, err := r.pub.Export(dir, nil); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	t.Run("good", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "root.json")
		out, err := trust(t, "--bundle", export(t), "--expect-sha256", "sha256:"+r.fp, "--dest", dest)
		if err != nil {
			t.Fatalf("trust init --bundle = %v\n%s", err, out)
		}
		if !bytes.Equal(readFile(t, dest), r.root) {
			t.Error("trust init --bundle installed something else than the repository's 1.root.json")
		}
	})
	for _, tc := range []struct {
		name, want string
		plant      func(t *testing.T, p string)
	}{
		{"symlink", "symbolic link", func(t *testing.T, p string) {
			if err := os.Symlink(writeTemp(t, "root.json", r.root), p); err != nil {
				t.Fatal(err)
			}
		}},
		{"fifo", "named pipe", func(t *testing.T, p string) {
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"missing", "1.root.json: file does not exist", func(t *testing.T, p string) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle := export(t)
			p := filepath.Join(bundle, "metadata", "1.root.json")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			tc.plant(t, p)
			dir := t.TempDir()
			done := make(chan struct{})
			var err error
			go func() {
				defer close(done)
				_, err = trust(t, "--bundle", bundle, "--expect-sha256", r.fp, "--dest", filepath.Join(dir, "root.json"))
			}()
			select {
			case <-done:
			case <-time.After(time.Minute):
				t.Fatal("trust init --bundle blocked on the bundle's 1.root.json")
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("trust init --bundle with 1.root.json a %s = %v, want it refused (%q)", tc.name, err, tc.want)
			}
			if got := dirEntries(t, dir); len(got) != 0 {
				t.Errorf("trust init --bundle (%s) left %q", tc.name, got)
			}
		})
	}
}

func TestTrustInitConfigDestination(t *testing.T) {
	r := newTrustRepo(t, publish.Options{})
	dest := filepath.Join(t.TempDir(), "trusted.json")
	cfg := writeTemp(t, "fieldgated.yaml", []byte("gateway: {id: gw1, site: s}\ntuf: {trusted_root: "+dest+"}\n"))
	if out, err := trust(t, r.pub.RootPath(), "--expect-sha256", r.fp, "--config", cfg); err != nil {
		t.Fatalf("trust init --config = %v\n%s", err, out)
	}
	if !bytes.Equal(readFile(t, dest), r.root) {
		t.Error("trust init --config did not install at the configuration's tuf.trusted_root")
	}
	bad := writeTemp(t, "fieldgated.yaml", []byte("gateway: {id: gw1, site: s}\n"))
	if _, err := trust(t, r.pub.RootPath(), "--expect-sha256", r.fp, "--config", bad); err == nil || !strings.Contains(err.Error(), "tuf.trusted_root is empty") {
		t.Errorf("trust init --config without tuf.trusted_root = %v, want an error naming the key", err)
	}
}

func TestTrustInitExpiredRootWarns(t *testing.T) {
	past := time.Now().AddDate(-3, 0, 0)
	r := newTrustRepo(t, publish.Options{Now: func() time.Time { return past }})
	dest := filepath.Join(t.TempDir(), "root.json")
	out, err := trust(t, r.pub.RootPath(), "--expect-sha256", r.fp, "--dest", dest)
	if err != nil {
		t.Fatalf("trust init of an expired root = %v, want it installed with a warning\n%s", err, out)
	}
	if !strings.Contains(out, "warning: root version 1 expired at ") {
		t.Errorf("trust init of an expired root did not warn:\n%s", out)
	}
	if !bytes.Equal(readFile(t, dest), r.root) {
		t.Error("expired root not installed")
	}
}
