// SPDX-License-Identifier: Apache-2.0

// Package atomicfile writes files so that a power cut leaves either the
// old content or the new one: a temporary file in the same directory,
// fsync, rename, fsync the directory. Every durable file fieldgate writes
// outside bbolt goes through it: the trust cache (tuf), the repository
// (tuf/publish), the daemon's self-update state, installed binaries and
// device backups, and the simulators' flash.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// File is a temporary file in a directory that becomes a named file only
// when committed. It is not safe for concurrent use.
type File struct {
	*os.File
	dir  string
	done bool
}

// Create starts a file in dir with mode perm. Write to it, then call
// Commit; Abort (safe to defer) removes it if it was not committed.
func Create(dir string, perm os.FileMode) (*File, error) {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &File{File: f, dir: dir}, nil
}

// Commit syncs the file, closes it and renames it to name in its
// directory, then syncs the directory.
func (f *File) Commit(name string) error {
	if f.done {
		return fmt.Errorf("commit %s: already committed or aborted", name)
	}
	f.done = true
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(f.dir, name))
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return SyncDir(f.dir)
}

// Abort removes the file unless it was committed.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.Close()
	os.Remove(f.Name())
}

// Write replaces path with data, with file mode perm.
func Write(path string, data []byte, perm os.FileMode) error {
	f, err := Create(filepath.Dir(path), perm)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit(filepath.Base(path))
}

// SyncDir fsyncs a directory so that renames in it survive a power cut.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
