// SPDX-License-Identifier: Apache-2.0

package publish_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/fieldgate/fieldgate/tuf/publish"
)

// editStaged adds name to the hand-editable staged file of a role, with the
// entry of an existing target.
func editStaged(t *testing.T, dir, file, from, name string) {
	t.Helper()
	p := filepath.Join(dir, "staged", file)
	md, err := metadata.Targets().FromFile(p)
	if err != nil {
		t.Fatal(err)
	}
	md.Signed.Targets[name] = md.Signed.Targets[from]
	data, err := md.ToBytes(true)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCommitChecksStagedNames(t *testing.T) {
	for _, tc := range []struct {
		role, name string
	}{
		{"targets", "acme-io16/../../../../../elsewhere/pwned.bin"},
		{"targets", "../pwned.bin"},
		{"targets", "/etc/pwned.bin"},
		{"targets", "a//pwned.bin"},
		{"targets", "a/./pwned.bin"},
		{"targets", `a\..\pwned.bin`},
		{"targets", "a/pwned.bin\x00"},
		{"targets", "a/"},
		{"acme", "acme-io16/../../../../../elsewhere/pwned.bin"},
		{"acme", "acme-io16/../../pwned.bin"},
	} {
		t.Run(tc.role+" "+tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "repo")
			r, err := publish.Init(dir, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Delegate("acme", publish.Delegation{Paths: []string{"acme-io16/*"}}); err != nil {
				t.Fatal(err)
			}
			if err := r.AddTargetBytes("plc/fw.bin", []byte("plc"), meta); err != nil {
				t.Fatal(err)
			}
			if err := r.AddTargetBytesTo("acme", "acme-io16/fw.bin", []byte("io16"), meta); err != nil {
				t.Fatal(err)
			}
			if err := r.Commit(); err != nil {
				t.Fatal(err)
			}
			before := r.TargetsMetadata().Signed.Version
			from, file := "plc/fw.bin", "targets.json"
			if tc.role == "acme" {
				from, file = "acme-io16/fw.bin", "acme.json"
			}
			editStaged(t, dir, file, from, tc.name)
			r, err = publish.OpenWith(dir, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			err = r.Commit()
			if err == nil {
				t.Fatalf("Commit() with staged %s in role %s = nil, want an error", tc.name, tc.role)
			}
			if !strings.Contains(err.Error(), strconv.Quote(tc.name)) || !strings.Contains(err.Error(), "role "+tc.role) {
				t.Errorf("Commit() = %v, want the name %q and role %s named", err, tc.name, tc.role)
			}
			r, err = publish.OpenWith(dir, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			if v := r.TargetsMetadata().Signed.Version; v != before {
				t.Errorf("targets version after a refused commit = %d, want %d", v, before)
			}
			if files, _ := filepath.Glob(filepath.Join(r.MetadataDir(), "2.acme.json")); len(files) != 0 {
				t.Errorf("refused commit signed %v", files)
			}
		})
	}
}

func TestExportConfined(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	r, err := publish.Init(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AddTargetBytes("plc/fw.bin", []byte("plc"), meta); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	for _, names := range [][]string{{"../../pwned.bin"}, {"plc/../../pwned.bin"}, {"/tmp/pwned.bin"}, {`plc\..\x`}} {
		if _, err := r.Export(filepath.Join(outDir, "b"), names); err == nil {
			t.Errorf("Export(%q) = nil, want an error", names)
		}
		if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
			t.Errorf("Export(%q) left %v", names, entries)
		}
	}

	// A stored target replaced by a symbolic link to a file outside the
	// repository, or by a named pipe, is refused, quickly.
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("plc"), 0o644)
	stored, _ := filepath.Glob(filepath.Join(r.TargetsDir(), "plc", "*.fw.bin"))
	if len(stored) != 1 {
		t.Fatalf("stored targets = %v", stored)
	}
	for _, mk := range []func(string) error{
		func(p string) error { return os.Symlink(secret, p) },
		func(p string) error { return syscall.Mkfifo(p, 0o644) },
	} {
		os.Remove(stored[0])
		if err := mk(stored[0]); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := r.Export(filepath.Join(outDir, "b"), nil)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), stored[0]) {
				t.Errorf("Export() with %s replaced = %v, want an error naming it", stored[0], err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Export() blocks on a named pipe")
		}
	}
}

func TestHandlerConfined(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "outside.json")
	os.WriteFile(outside, []byte("secret"), 0o644)
	os.MkdirAll(filepath.Join(dir, "metadata"), 0o755)
	os.WriteFile(filepath.Join(dir, "metadata", "1.root.json"), []byte("{}"), 0o644)
	os.Symlink(outside, filepath.Join(dir, "metadata", "2.root.json"))
	os.Symlink("1.root.json", filepath.Join(dir, "metadata", "root.json"))
	os.Symlink(filepath.Dir(outside), filepath.Join(dir, "targets"))
	syscall.Mkfifo(filepath.Join(dir, "metadata", "timestamp.json"), 0o644)
	// The handler is called directly, with a test deadline, so that a
	// request blocked in open fails the test instead of hanging it.
	h := publish.Handler(dir)
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/metadata/1.root.json", 200},
		{"/metadata/2.root.json", 404},    // symbolic link leaving dir
		{"/metadata/root.json", 404},      // symbolic link inside dir
		{"/targets/outside.json", 404},    // through a linked directory
		{"/metadata/timestamp.json", 404}, // named pipe: no hang
		{"/metadata/..%2f..%2foutside.json", 404},
		{`/metadata/..\..\outside.json`, 404},
	} {
		req := httptest.NewRequest(http.MethodGet, "http://repo.test/", nil)
		req.URL.RawPath = ""
		req.URL.Path, _ = url.PathUnescape(tc.path)
		done := make(chan *httptest.ResponseRecorder, 1)
		go func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			done <- rec
		}()
		var resp *httptest.ResponseRecorder
		select {
		case resp = <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("GET %s blocks", tc.path)
		}
		if resp.Code != tc.code {
			t.Errorf("GET %s = %d, want %d", tc.path, resp.Code, tc.code)
		}
	}
}
