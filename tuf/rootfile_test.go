// SPDX-License-Identifier: Apache-2.0

package tuf_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
)

// newRoot initialises a repository with opts and returns it and the bytes
// of its first root.
func newRoot(t *testing.T, opts publish.Options) (*publish.Repo, []byte) {
	t.Helper()
	opts.Keys = publish.KeyAccess{InsecurePlaintextKeys: true}
	pub, err := publish.Init(filepath.Join(t.TempDir(), "repo"), opts)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(pub.RootPath())
	if err != nil {
		t.Fatal(err)
	}
	return pub, data
}

// resign replaces the signature value of every signature in a metadata
// file with edit's result, keeping the rest byte for byte meaningful.
func resign(t *testing.T, data []byte, edit func(sig string) string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, s := range m["signatures"].([]any) {
		s := s.(map[string]any)
		s["sig"] = edit(s["sig"].(string))
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCheckRoot(t *testing.T) {
	pub, root := newRoot(t, publish.Options{Threshold: map[string]int{"root": 2}})
	info, err := tuf.CheckRoot(root)
	if err != nil {
		t.Fatalf("CheckRoot(1.root.json) = %v", err)
	}
	if info.Version != 1 || info.Threshold != 2 || len(info.KeyIDs) != 2 || info.Signed != 2 {
		t.Errorf("CheckRoot(1.root.json) = %+v, want version 1, threshold 2, 2 keys, 2 signed", info)
	}
	if d := time.Until(info.Expires); d < 24*time.Hour {
		t.Errorf("CheckRoot(1.root.json).Expires = %v, want a fresh root's expiry, in the future", info.Expires)
	}

	targets, err := os.ReadFile(filepath.Join(pub.MetadataDir(), "1.targets.json"))
	if err != nil {
		t.Fatal(err)
	}
	flipped := resign(t, root, func(sig string) string {
		b := []byte(sig)
		if b[0] == '0' {
			b[0] = '1'
		} else {
			b[0] = '0'
		}
		return string(b)
	})
	// One of the two signatures gone: below the threshold.
	var m map[string]any
	json.Unmarshal(root, &m)
	m["signatures"] = m["signatures"].([]any)[:1]
	oneSig, _ := json.Marshal(m)
	// The signed part changed after signing.
	changed := bytes.Replace(root, []byte(`"version": 1`), []byte(`"version": 7`), 1)
	if bytes.Equal(changed, root) {
		changed = bytes.Replace(root, []byte(`"version":1`), []byte(`"version":7`), 1)
	}
	if bytes.Equal(changed, root) {
		t.Fatal("test setup: no version field to change in the root")
	}

	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"not JSON", []byte("-----BEGIN PGP-----"), "not JSON"},
		{"empty", nil, "not JSON"},
		{"JSON, not TUF", []byte(`{"hello": "world"}`), "not TUF metadata"},
		{"targets metadata", targets, `signed._type is "targets", want "root"`},
		{"root without fields", []byte(`{"signed": {"_type": "root"}, "signatures": []}`), "malformed root metadata"},
		{"tampered signatures", flipped, "not signed by 2 of its own 2 root keys"},
		{"below threshold", oneSig, "not signed by 2 of its own 2 root keys"},
		{"signed part changed", changed, "root version 7 is not signed"},
		{"too big", make([]byte, tuf.MaxRootSize+1), "more than root metadata may have"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tuf.CheckRoot(tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckRoot(%s) = %v, want an error containing %q", tc.name, err, tc.want)
			}
		})
	}
}

func TestCheckRootExpiredStillVerifies(t *testing.T) {
	past := time.Now().AddDate(-3, 0, 0)
	_, root := newRoot(t, publish.Options{Now: func() time.Time { return past }})
	info, err := tuf.CheckRoot(root)
	if err != nil {
		t.Fatalf("CheckRoot(expired root) = %v, want it verified (expiry is the caller's call)", err)
	}
	if !info.Expires.Before(time.Now()) {
		t.Errorf("CheckRoot(root signed three years ago).Expires = %v, want in the past", info.Expires)
	}
}

func TestRootFingerprint(t *testing.T) {
	data := []byte("root bytes\n")
	sum := sha256.Sum256(data)
	if got, want := tuf.RootFingerprint(data), "sha256:"+hex.EncodeToString(sum[:]); got != want {
		t.Errorf("RootFingerprint = %q, want %q", got, want)
	}
}

func TestReadRootFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "root.json")
	os.WriteFile(good, []byte(`{"x":1}`), 0o644)
	link := filepath.Join(dir, "link.json")
	os.Symlink(good, link)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.json")
	os.WriteFile(big, make([]byte, tuf.MaxRootSize+1), 0o644)

	for _, p := range []string{good, link} {
		if data, err := tuf.ReadRootFile(p); err != nil || string(data) != `{"x":1}` {
			t.Errorf("ReadRootFile(%s) = %q, %v; want the file", p, data, err)
		}
	}
	if _, err := tuf.ReadRootFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadRootFile(missing) = %v, want fs.ErrNotExist", err)
	}
	for p, want := range map[string]string{fifo: "named pipe", dir: "directory", big: "more than root metadata may have"} {
		if _, err := tuf.ReadRootFile(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadRootFile(%s) = %v, want an error containing %q", p, err, want)
		}
	}
}

func TestReadBundleRoot(t *testing.T) {
	pub, root := newRoot(t, publish.Options{})
	if err := pub.Commit(); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "bundle")
	if _, err := pub.Export(bundle, nil); err != nil {
		t.Fatal(err)
	}
	got, err := tuf.ReadBundleRoot(bundle)
	if err != nil || !bytes.Equal(got, root) {
		t.Fatalf("ReadBundleRoot(exported bundle) = %d bytes, %v; want the repository's 1.root.json", len(got), err)
	}

	p := filepath.Join(bundle, filepath.FromSlash(tuf.BundleRoot))
	elsewhere := filepath.Join(t.TempDir(), "root.json")
	os.WriteFile(elsewhere, root, 0o644)
	os.Remove(p)
	if _, err := tuf.ReadBundleRoot(bundle); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadBundleRoot(no 1.root.json) = %v, want fs.ErrNotExist", err)
	}
	os.Symlink(elsewhere, p)
	if _, err := tuf.ReadBundleRoot(bundle); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("ReadBundleRoot(1.root.json a symlink) = %v, want it refused as a symbolic link", err)
	}
	os.Remove(p)
	syscall.Mkfifo(p, 0o644)
	if _, err := tuf.ReadBundleRoot(bundle); err == nil || !strings.Contains(err.Error(), "named pipe") {
		t.Errorf("ReadBundleRoot(1.root.json a FIFO) = %v, want it refused as a named pipe", err)
	}
}
