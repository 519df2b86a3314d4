// SPDX-License-Identifier: Apache-2.0

// Package ssh is the "ssh" driver for Linux-based field devices (HMIs,
// IPCs, RTUs running Linux) reached over SSH with SFTP.
//
// An update runs like this: Transfer uploads the image by SFTP to
// remote_dir/<name>.part while hashing the bytes it streams, refuses to go
// on if that hash is not the image's, renames the file into place with the
// posix-rename extension (atomic on the device), and compares the device's
// own `sha256sum` of the final file. Activate runs install_command, then
// reboot_command if set (waiting for the connection to drop and for the
// device to accept a new one), and reads the version back with
// version_command. Revert runs rollback_command.
//
// The device's host key is pinned by configuration (option host_key: one
// or more authorized_keys or known_hosts lines, or a file of them); a
// connection to a device presenting any other key fails with
// ErrHostKeyMismatch. There is no trust-on-first-use and no way to switch
// the check off.
//
// A Device keeps one SSH connection between calls and is not safe for
// concurrent use; Close closes the connection.
package ssh
