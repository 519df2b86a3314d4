// SPDX-License-Identifier: Apache-2.0

package localfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "secret")
	must(t, os.WriteFile(outside, []byte("secret"), 0o644))
	must(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "sub", "ok"), []byte("ok"), 0o644))
	must(t, os.Symlink(outside, filepath.Join(dir, "sub", "link")))
	must(t, os.Symlink("/dev/zero", filepath.Join(dir, "zero")))
	must(t, os.Symlink(filepath.Join(dir, "sub"), filepath.Join(dir, "dirlink")))
	must(t, syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "file"), nil, 0o644))
	if err := syscall.Mknod(filepath.Join(dir, "null"), syscall.S_IFCHR|0o644, 1<<8|3); err != nil {
		t.Logf("mknod: %v (device node case skipped)", err)
	}

	data, err := ReadFile(dir, "sub/ok", 2)
	if err != nil || string(data) != "ok" {
		t.Fatalf("ReadFile(sub/ok) = %q, %v, want ok", data, err)
	}
	if _, err := ReadFile(dir, "sub/ok", 1); !errors.Is(err, ErrRefused) {
		t.Errorf("ReadFile(sub/ok, limit 1) = %v, want ErrRefused", err)
	}
	if _, err := Open(dir, "missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want fs.ErrNotExist", err)
	}
	for _, name := range []string{"sub/link", "zero", "dirlink/ok", "fifo", "sub", "null", "file/x",
		"../x", "/etc/passwd", "sub//ok", "sub/./ok", `sub\ok`, "sub/ok\x00", "", "sub/"} {
		if name == "null" {
			if _, err := os.Lstat(filepath.Join(dir, "null")); err != nil {
				continue
			}
		}
		done := make(chan error, 1)
		go func() {
			f, err := Open(dir, name)
			if err == nil {
				f.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, ErrRefused) {
				t.Errorf("Open(%q) = %v, want ErrRefused", name, err)
			} else if want := filepath.Join(dir, strings.Split(name, "/")[0]); CheckName(name) == nil && !strings.Contains(err.Error(), want) {
				t.Errorf("Open(%q) = %v, want the path named", name, err)
			}
			if errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Open(%q) = %v, refused entries are not missing ones", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Open(%q) blocked", name)
		}
	}
	if m, err := Lstat(dir, "fifo"); err != nil || m.Type() != fs.ModeNamedPipe {
		t.Errorf("Lstat(fifo) = %v, %v, want a named pipe", m, err)
	}
	if m, err := Lstat(dir, "zero"); err != nil || m.Type() != fs.ModeSymlink {
		t.Errorf("Lstat(zero) = %v, %v, want a symbolic link", m, err)
	}
	if m, err := Lstat(dir, "sub"); err != nil || !m.IsDir() {
		t.Errorf("Lstat(sub) = %v, %v, want a directory", m, err)
	}
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true}, {"a/b.bin", true}, {"a/..b", true},
		{"", false}, {"/a", false}, {"a/../../b", false}, {"..", false}, {"a/.", false},
		{"a//b", false}, {"a/", false}, {`a\b`, false}, {"a\x00b", false},
	} {
		if err := CheckName(tc.name); (err == nil) != tc.ok {
			t.Errorf("CheckName(%q) = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
