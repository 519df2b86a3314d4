// SPDX-License-Identifier: Apache-2.0

package ssh

import (
	"crypto/ed25519"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/fieldgate/fieldgate/devices"
)

func TestCheck(t *testing.T) {
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl host"
	dir := t.TempDir()
	id := filepath.Join(dir, "id")
	_, priv, _ := ed25519.GenerateKey(nil)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(id, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	valid := map[string]string{"host_key": key, "user": "fw", "key_file": id, "install_command": "i", "version_command": "v"}
	with := func(k, v string) map[string]string {
		o := map[string]string{}
		for a, b := range valid {
			o[a] = b
		}
		if v == "" {
			delete(o, k)
		} else {
			o[k] = v
		}
		return o
	}
	tests := []struct {
		name    string
		opts    map[string]string
		wantErr string
	}{
		{"valid", valid, ""},
		{"known_hosts line", with("host_key", "[10.0.0.9]:22 "+key), ""},
		{"unknown key", with("password", "x"), `device h (ssh): unknown option "password" (known: boot_timeout, commit_command, connect_timeout, hash_command, health_command, host_key, install_command, key_file, poll_interval, reboot_command, remote_dir, rollback_command, user, version_command)`},
		{"missing host key", with("host_key", ""), "host_key is required"},
		{"garbage host key", with("host_key", "not a key"), "neither an authorized_keys"},
		{"relative remote_dir", with("remote_dir", "tmp"), "absolute"},
		// --check-config reads the key, as opening the device does.
		{"missing key file", with("key_file", filepath.Join(dir, "none")), "option key_file: open " + filepath.Join(dir, "none")},
		{"garbage key file", with("key_file", garbage), "option key_file: ssh: no key found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Driver().Check(devices.Config{ID: "h", Protocol: "ssh", Address: "10.0.0.9:22", Options: tt.opts})
			if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Check() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
