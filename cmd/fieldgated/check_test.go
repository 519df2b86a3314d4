package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// exampleWith returns the example configuration with each old string
// replaced by its new one, written to a temporary file.
func exampleWith(t *testing.T, oldNew ...string) string {
	t.Helper()
	raw, err := os.ReadFile("../../daemon/config/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	body := string(raw)
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
		`password_file: ""`, "password_file: /etc/fieldgate/mqtt-passwords")
	if out, err := checkConfig(t, withAuth); err != nil {
		t.Errorf("--check-config with listen 0.0.0.0:1883 and a password file = %v\n%s", err, out)
	}
}
