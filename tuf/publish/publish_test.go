// SPDX-License-Identifier: Apache-2.0

package publish_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
)

var meta = tuf.Meta{Hardware: []string{"hw"}, Version: "1.0"}

func TestLifecycle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	rootKeys := filepath.Join(t.TempDir(), "offline-root")
	r, err := publish.Init(dir, publish.Options{Keys: testKeys, RootKeysDir: rootKeys, Hashes: []string{"sha256", "sha512"},
		Expiry: map[string]publish.Duration{"timestamp": publish.Duration(2 * time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := publish.Init(dir, testOptions()); err == nil {
		t.Error("Init() over an existing repository = nil, want an error")
	}
	if keys, _ := filepath.Glob(filepath.Join(rootKeys, "*.pem")); len(keys) != 1 {
		t.Errorf("root keys in RootKeysDir = %d, want 1", len(keys))
	}
	if keys, _ := filepath.Glob(filepath.Join(dir, "keys", "root", "*.pem")); len(keys) != 0 {
		t.Errorf("root keys in DIR/keys/root = %d, want 0", len(keys))
	}
	src := filepath.Join(t.TempDir(), "fw.bin")
	os.WriteFile(src, []byte("firmware"), 0o644)
	if err := r.AddTarget("dir/fw.bin", src, meta); err != nil {
		t.Fatal(err)
	}
	if err := r.AddTarget("../evil", src, meta); err == nil {
		t.Error("AddTarget(../evil) = nil, want an error")
	}
	if err := r.AddTarget("x.bin", src, tuf.Meta{Version: "1"}); err == nil {
		t.Error("AddTarget(no hardware) = nil, want an error")
	}
	if s := r.Status(); !slices.Equal(s.Added, []string{"dir/fw.bin"}) {
		t.Errorf("Status().Added = %v, want [dir/fw.bin]", s.Added)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	// Reopen from disk: options (sha512, expiry) persist.
	r, err = publish.OpenWith(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	tm := r.TargetsMetadata()
	tf := tm.Signed.Targets["dir/fw.bin"]
	if tf == nil || len(tf.Hashes) != 2 {
		t.Fatalf("published target = %+v, want sha256 and sha512", tf)
	}
	for alg, h := range tf.Hashes {
		p := filepath.Join(r.TargetsDir(), "dir", h.String()+".fw.bin")
		if _, err := os.Stat(p); err != nil {
			t.Errorf("target not stored under its %s prefix: %v", alg, err)
		}
	}
	if got := r.TimestampMetadata().Signed.Expires.Sub(time.Now()); got > 2*time.Hour || got < time.Hour {
		t.Errorf("timestamp validity = %v, want about 2h", got)
	}
	if err := r.Remove("dir/fw.bin"); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove("nope"); err == nil {
		t.Error("Remove(nope) = nil, want an error")
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := len(r.TargetsMetadata().Signed.Targets); n != 0 {
		t.Errorf("targets after removal = %d, want 0", n)
	}
	if err := r.Rotate("root"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"1.root.json", "2.root.json", "root.json", "timestamp.json"} {
		if _, err := os.Stat(filepath.Join(r.MetadataDir(), f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if s := r.Status(); len(s.Warnings) != 0 {
		t.Errorf("Status().Warnings = %v, want none", s.Warnings)
	}
}

func TestStatusWarnsBeforeExpiry(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	if _, err := publish.Init(dir, testOptions()); err != nil {
		t.Fatal(err)
	}
	later := func() time.Time { return time.Now().Add(20 * time.Hour) }
	r, err := publish.OpenWith(dir, publish.Options{Keys: testKeys, Now: later})
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(r.Status().Warnings, "; ")
	if !strings.Contains(w, "timestamp expires in") {
		t.Errorf("Status().Warnings = %q, want a timestamp expiry warning", w)
	}
}

func TestHandlerNeverForbids(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "metadata", "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "metadata", "1.root.json"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(dir, "metadata", ".tmp-x"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "metadata", "secret.json"), []byte("x"), 0o000)
	srv := httptest.NewServer(publish.Handler(dir))
	defer srv.Close()
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/metadata/1.root.json", 200},
		{"/metadata/2.root.json", 404},
		{"/metadata/", 404},
		{"/metadata/sub", 404},
		{"/metadata/.tmp-x", 404},
		{"/metadata/%2e%2e/%2e%2e/etc/passwd", 404},
	} {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("GET %s = %d, want %d", tc.path, resp.StatusCode, tc.code)
		}
	}
	if os.Geteuid() != 0 {
		resp, err := http.Get(srv.URL + "/metadata/secret.json")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 404 {
				t.Errorf("GET unreadable file = %d, want 404", resp.StatusCode)
			}
		}
	}
}
