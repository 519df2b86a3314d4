// SPDX-License-Identifier: Apache-2.0

// Package localfile reads files below a directory the way untrusted local
// media (an offline bundle on a USB stick) and a repository being published
// must be read: regular files only, no symbolic link followed below the
// directory, never blocking in open (a named pipe would block there forever,
// out of reach of any timeout), and never more bytes than a known limit.
// A name that could leave the directory (absolute, "..", empty segments,
// backslashes, NUL) is refused before anything is opened.
//
// The directory itself is opened as given (the operator chose it; a mount
// point may be reached through a symbolic link); everything below it is
// opened with openat(2) one segment at a time, with O_NOFOLLOW and
// O_NONBLOCK. It serves the offline-bundle reader (tuf) and the
// repository's export and HTTP handler (tuf/publish). Its functions are
// safe for concurrent use.
package localfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrRefused is wrapped by the errors for entries that exist but may not be
// read: a symbolic link, a named pipe, a device, a socket, a directory where
// a file is expected, or a file larger than its limit. Callers branch on it
// to tell "refused" from "missing" (fs.ErrNotExist).
var ErrRefused = errors.New("refused")

// CheckName accepts a slash-separated relative name whose every segment is
// non-empty and neither "." nor "..", without backslashes or NUL bytes.
func CheckName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("name %q: empty", name)
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("name %q: absolute path", name)
	case strings.ContainsRune(name, '\\'):
		return fmt.Errorf("name %q: backslash", name)
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("name %q: NUL byte", name)
	}
	for _, seg := range strings.Split(name, "/") {
		switch seg {
		case "":
			return fmt.Errorf("name %q: empty path segment", name)
		case ".", "..":
			return fmt.Errorf("name %q: %q path segment", name, seg)
		}
	}
	return nil
}

// Open opens the regular file name (slash-separated, relative) below dir
// for reading. It fails with an error wrapping fs.ErrNotExist if an entry
// on the way is missing, and with one wrapping ErrRefused, naming the path,
// for anything that is not a directory on the way or not a regular file at
// the end, including symbolic links. It never blocks in open. The caller
// closes the file.
func Open(dir, name string) (*os.File, error) {
	full := filepath.Join(dir, filepath.FromSlash(name))
	parent, last, err := walk(dir, name)
	if err != nil {
		return nil, err
	}
	defer unix.Close(parent)
	// Look before opening, so that a device is never opened (opening some
	// has side effects), then check again what was opened.
	var st unix.Stat_t
	if err := unix.Fstatat(parent, last, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, pathError(full, err)
	}
	if err := requireRegular(full, st.Mode); err != nil {
		return nil, err
	}
	fd, err := unix.Openat(parent, last, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, pathError(full, err)
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, pathError(full, err)
	}
	if err := requireRegular(full, st.Mode); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// O_NONBLOCK means nothing for a regular file; clear it anyway so that
	// the file behaves like any other *os.File.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, pathError(full, err)
	}
	return os.NewFile(uintptr(fd), full), nil
}

// ReadFile reads the regular file name below dir (see Open), refusing one
// of more than limit bytes without reading it.
func ReadFile(dir, name string, limit int64) ([]byte, error) {
	f, err := Open(dir, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than the limit of %d: %w", f.Name(), st.Size(), limit, ErrRefused)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s grew past the limit of %d bytes while read: %w", f.Name(), limit, ErrRefused)
	}
	return data, nil
}

// Lstat returns what the entry name below dir is, without following a
// symbolic link at the end; the directories on the way must be real
// directories (see Open). It opens nothing but those directories.
func Lstat(dir, name string) (fs.FileMode, error) {
	full := filepath.Join(dir, filepath.FromSlash(name))
	parent, last, err := walk(dir, name)
	if err != nil {
		return 0, err
	}
	defer unix.Close(parent)
	var st unix.Stat_t
	if err := unix.Fstatat(parent, last, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return 0, pathError(full, err)
	}
	return fileMode(st.Mode), nil
}

// walk checks name, opens dir and every directory below it on the way to
// name's last segment without following symbolic links, and returns the
// descriptor of the last directory (the caller closes it) and that segment.
func walk(dir, name string) (int, string, error) {
	if err := CheckName(name); err != nil {
		return -1, "", fmt.Errorf("%s: %w: %w", dir, err, ErrRefused)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", pathError(dir, err)
	}
	segs := strings.Split(name, "/")
	at := dir
	for _, seg := range segs[:len(segs)-1] {
		at = filepath.Join(at, seg)
		next, err := unix.Openat(fd, seg, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			var st unix.Stat_t
			if serr := unix.Fstatat(fd, seg, &st, unix.AT_SYMLINK_NOFOLLOW); serr == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
				unix.Close(fd)
				return -1, "", fmt.Errorf("%s is a %s, not a directory: %w", at, kind(st.Mode), ErrRefused)
			}
			unix.Close(fd)
			return -1, "", pathError(at, err)
		}
		unix.Close(fd)
		fd = next
	}
	return fd, segs[len(segs)-1], nil
}

func requireRegular(path string, mode uint32) error {
	if mode&unix.S_IFMT == unix.S_IFREG {
		return nil
	}
	return fmt.Errorf("%s is a %s, not a regular file: %w", path, kind(mode), ErrRefused)
}

func pathError(path string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
	case errors.Is(err, unix.ELOOP):
		return fmt.Errorf("%s is a symbolic link: %w", path, ErrRefused)
	}
	return &fs.PathError{Op: "open", Path: path, Err: err}
}

func kind(mode uint32) string { return Kind(fileMode(mode)) }

// Kind names the type of a file mode in words ("named pipe", "symbolic
// link", …) for error messages.
func Kind(mode fs.FileMode) string {
	switch mode.Type() {
	case 0:
		return "regular file"
	case fs.ModeDir:
		return "directory"
	case fs.ModeSymlink:
		return "symbolic link"
	case fs.ModeNamedPipe:
		return "named pipe"
	case fs.ModeDevice | fs.ModeCharDevice:
		return "character device"
	case fs.ModeDevice:
		return "block device"
	case fs.ModeSocket:
		return "socket"
	}
	return "file of unknown type"
}

func fileMode(mode uint32) fs.FileMode {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return 0
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFLNK:
		return fs.ModeSymlink
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	case unix.S_IFSOCK:
		return fs.ModeSocket
	}
	return fs.ModeIrregular
}
