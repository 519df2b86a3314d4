// SPDX-License-Identifier: Apache-2.0

package serialtest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// PTY is a pseudo-terminal in raw mode. Its Read, Write and Close act on the
// master side; a client opens Path (the slave device, or the symlink made by
// Link) as it would open /dev/ttyUSB0. PTY keeps a slave descriptor of its
// own open, so the master side does not fail with EIO while no client has
// the port open (a driver opens and closes the port per step), and bytes
// written meanwhile wait in the tty like on a real line.
type PTY struct {
	*os.File // master
	slave    *os.File
	// Path is the slave device, e.g. /dev/pts/7.
	Path string
	link string
}

// OpenPTY opens a new pty pair and puts it in raw mode (no echo, no line
// discipline, 8 bits). Reads and writes on the master support deadlines.
func OpenPTY() (*PTY, error) {
	m, s, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("open pty: %w", err)
	}
	// pty.Open calls Fd on the master, which leaves it in blocking mode:
	// reads and writes could then not be interrupted by deadlines or Close.
	if m, err = pollable(m); err != nil {
		s.Close()
		return nil, fmt.Errorf("open pty: %w", err)
	}
	if err := MakeRaw(s); err != nil {
		m.Close()
		s.Close()
		return nil, err
	}
	return &PTY{File: m, slave: s, Path: s.Name()}, nil
}

// pollable returns a non-blocking duplicate of f registered with the
// runtime poller, and closes f.
func pollable(f *os.File) (*os.File, error) {
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	dup := -1
	var derr error
	if err := rc.Control(func(fd uintptr) { dup, derr = unix.Dup(int(fd)) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, derr
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil, err
	}
	return os.NewFile(uintptr(dup), f.Name()), nil
}

// MakeRaw puts the terminal f in raw mode, like cfmakeraw(3). Unlike
// f.Fd, it leaves f's deadlines working.
func MakeRaw(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("raw mode %s: %w", f.Name(), err)
	}
	var cerr error
	err = rc.Control(func(fd uintptr) { cerr = makeRaw(int(fd)) })
	if err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("raw mode %s: %w", f.Name(), err)
	}
	return nil
}

func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

// Link makes path a symlink to the slave device, replacing an existing
// symlink (a stale one from a crashed run) but never a regular file.
// Close removes it.
func (p *PTY) Link(path string) error {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSymlink == 0 {
			return fmt.Errorf("link pty at %s: exists and is not a symlink", path)
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("link pty at %s: %w", path, err)
		}
	}
	if err := os.Symlink(p.Path, path); err != nil {
		return fmt.Errorf("link pty at %s: %w", path, err)
	}
	p.link = path
	return nil
}

// OpenSlave opens another descriptor of the slave side, as a client would.
// It supports read and write deadlines.
func (p *PTY) OpenSlave() (*os.File, error) {
	f, err := os.OpenFile(p.Path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("open pty slave: %w", err)
	}
	return f, nil
}

// Close removes the symlink, if any, and closes both sides.
func (p *PTY) Close() error {
	var errs []error
	if p.link != "" {
		if target, err := os.Readlink(p.link); err == nil && target == p.Path {
			errs = append(errs, os.Remove(p.link))
		}
	}
	for _, f := range []*os.File{p.File, p.slave} {
		if err := f.Close(); !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
