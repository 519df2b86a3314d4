// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/daemon/config/configtest"
)

// exampleWith returns the example configuration with each old string
// replaced by its new one, written to a temporary file. The files the
// example names (/etc/fieldgate/root.json) is replaced first by a valid
// one from configtest.
func exampleWith(t *testing.T, oldNew ...string) string {
	t.Helper()
	raw, err := os.ReadFile("../../daemon/config/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f := configtest.Write(t, t.TempDir())
	body := strings.Replace(string(raw), "trusted_root: /etc/fieldgate/root.json", "trusted_root: "+f.TrustedRoot, 1)
	for i := 0; i < len(oldNew); i += 2 {
		if !strings.Contains(body, oldNew[i]) {
			t.Fatalf("example.yaml has no %q", oldNew[i])
		}
		body = strings.Replace(body, oldNew[i], oldNew[i+1], 1)
	}
	p := filepath.Join(t.TempDir(), "fieldgated.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func checkConfig(t *testing.T, path string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run([]string{"--check-config", path}, &out, &errb)
	return out.String() + errb.String(), err
}

func TestCheckConfigRefusesHugeFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "huge.yaml")
	body := "# padding\n" + strings.Repeat("#"+strings.Repeat("x", 99)+"\n", 11000)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := checkConfig(t, p)
	if err == nil || !strings.Contains(out, "1 MiB") {
		t.Errorf("--check-config of a %d-byte file = %v, output %q, want an error saying it is over 1 MiB", len(body), err, out)
	}
}

func TestCheckConfigReportsEverythingDespiteUnknownKey(t *testing.T) {
	p := exampleWith(t,
		"  refresh_interval:", "  refresh_intervall:", // unknown key
		"log_level: info", "log_level: loud", // invalid value
		"    group: line1", "    group: line9", // unknown group
	)
	out, err := checkConfig(t, p)
	if err == nil {
		t.Fatal("--check-config with three problems succeeded")
	}
	for _, want := range []string{"refresh_intervall", "line ", "gateway.log_level", `devices[0].group: unknown group "line9"`} {
		if !strings.Contains(out, want) {
			t.Errorf("--check-config output does not mention %q:\n%s", want, out)
		}
	}
}

func TestCheckConfigWarnsWindowNeverOpens(t *testing.T) {
	p := exampleWith(t, `start: "0 2 * * *"`, `start: "0 0 30 2 *"`)
	out, err := checkConfig(t, p)
	if err != nil {
		t.Errorf("--check-config with a February 30th window = %v, want a warning, not an error\n%s", err, out)
	}
	if !strings.Contains(out, "warning:") || !strings.Contains(out, "windows[0].start") || !strings.Contains(out, "never opens") {
		t.Errorf("--check-config output does not warn that windows[0] never opens:\n%s", out)
	}
}

func TestCheckConfigRefusesDescriptorWindow(t *testing.T) {
	p := exampleWith(t, `start: "0 2 * * *"`, `start: "@every 1h"`)
	if out, err := checkConfig(t, p); err == nil || !strings.Contains(out, "windows[0].start") {
		t.Errorf("--check-config with start @every 1h = %v, output:\n%s\nwant an error naming windows[0].start", err, out)
	}
}

func TestEmbeddedBrokerBeyondLoopbackNeedsAuth(t *testing.T) {
	open := exampleWith(t, "listen: 127.0.0.1:1883", "listen: 0.0.0.0:1883")
	out, err := checkConfig(t, open)
	if err == nil || !strings.Contains(out, "mqtt.listen") || !strings.Contains(out, "beyond loopback") {
		t.Errorf("--check-config with listen 0.0.0.0:1883 and no auth = %v, output:\n%s\nwant an error naming mqtt.listen", err, out)
	}
	// Should the refusal regress, the daemon must not touch the system's
	// state directory or socket.
	dir := t.TempDir()
	open = exampleWith(t, "listen: 127.0.0.1:1883", "listen: 0.0.0.0:1883",
		"state_dir: /var/lib/fieldgate", "state_dir: "+filepath.Join(dir, "state"),
		"socket: /run/fieldgate/fieldgated.sock", "socket: "+filepath.Join(dir, "sock"))
	var stdout, stderr bytes.Buffer
	if err := run([]string{"--config", open}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "mqtt.listen") {
		t.Errorf("fieldgated --config with listen 0.0.0.0:1883 and no auth = %v, want a refusal naming mqtt.listen", err)
	}
	withAuth := exampleWith(t, "listen: 127.0.0.1:1883", "listen: 0.0.0.0:1883",
		`password_file: ""`, "password_file: "+configtest.Write(t, t.TempDir()).PasswordFile)
	if out, err := checkConfig(t, withAuth); err != nil {
		t.Errorf("--check-config with listen 0.0.0.0:1883 and a password file = %v\n%s", err, out)
	}
}

// TestCheckConfigFiles: --check-config reads every file the configuration
// names. With all of them good it prints ok; with any one missing, or
// corrupt, it fails naming the key and the file; and the daemon refuses to
// start on the same configuration, before it touches its state directory.
// Both broker set-ups are covered: an external broker with a client
// certificate, and the embedded broker with TLS, passwords and client
// certificates.
func TestCheckConfigFiles(t *testing.T) {
	f := configtest.Write(t, t.TempDir())
	write := func(t *testing.T, body string) string {
		t.Helper()
		p := filepath.Join(t.TempDir(), "fieldgated.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, setup := range []struct {
		name     string
		embedded bool
		keys     map[string]string
	}{
		{"external broker", false, f.External()},
		{"embedded broker", true, f.Embedded()},
	} {
		state := t.TempDir()
		good := f.Config(state, setup.embedded)
		t.Run(setup.name+"/valid", func(t *testing.T) {
			p := write(t, good)
			if out, err := checkConfig(t, p); err != nil || !strings.Contains(out, p+": ok") {
				t.Errorf("--check-config with every file good = %v\n%s", err, out)
			}
		})
		for _, key := range slices.Sorted(maps.Keys(setup.keys)) {
			orig := setup.keys[key]
			dir := t.TempDir()
			corrupt := filepath.Join(dir, "corrupt")
			// The file's own bytes, cut short: still text, no longer whole.
			raw, err := os.ReadFile(orig)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(corrupt, raw[:len(raw)/2], 0o600)
			for _, bad := range []struct{ name, path string }{
				{"missing", filepath.Join(dir, "missing")},
				{"corrupt", corrupt},
			} {
				t.Run(setup.name+"/"+key+"/"+bad.name, func(t *testing.T) {
					body := strings.Replace(good, " "+orig+"\n", " "+bad.path+"\n", 1)
					if body == good {
						t.Fatalf("configuration names no %s", orig)
					}
					p := write(t, body)
					out, err := checkConfig(t, p)
					if err == nil || !strings.Contains(out, key+": "+bad.path+": ") {
						t.Errorf("--check-config with %s %s = %v, want an error naming %s and %s:\n%s", key, bad.name, err, key, bad.path, out)
					}
					if err == nil || strings.Contains(out, ": ok") {
						// The daemon validates as the check does: it
						// would start, and run until killed.
						t.Fatalf("--check-config with %s %s printed ok:\n%s", key, bad.name, out)
					}
					var stdout, stderr bytes.Buffer
					err = run([]string{"--config", p}, &stdout, &stderr)
					if err == nil || !strings.Contains(err.Error(), key+": "+bad.path) {
						t.Errorf("fieldgated --config with %s %s = %v, want a refusal naming %s and %s", key, bad.name, err, key, bad.path)
					}
					if _, err := os.Stat(filepath.Join(state, "state")); err == nil {
						t.Errorf("fieldgated --config with %s %s created its state directory before refusing", key, bad.name)
					}
				})
			}
		}
	}

	t.Run("client key of another certificate", func(t *testing.T) {
		body := strings.Replace(f.Config(t.TempDir(), false), "key_file: "+f.KeyFile, "key_file: "+f.TLSKeyFile, 1)
		out, err := checkConfig(t, write(t, body))
		if err == nil || !strings.Contains(out, "mqtt.key_file: "+f.TLSKeyFile) || !strings.Contains(out, "mqtt.cert_file "+f.CertFile) {
			t.Errorf("--check-config with a key that does not match the certificate = %v, want both files named:\n%s", err, out)
		}
	})
}
