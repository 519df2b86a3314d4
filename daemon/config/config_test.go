package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fieldgated.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExampleIsValid(t *testing.T) {
	c, err := Load("example.yaml")
	if err != nil {
		t.Fatalf("Load(example.yaml) = %v", err)
	}
	if err := c.Validate(nil); err != nil {
		t.Fatalf("Validate(example.yaml) = %v", err)
	}
	if got, want := c.MQTT.Prefix, "fieldgate/v1/plant1/gw1"; got != want {
		t.Errorf("MQTT.Prefix = %q, want %q", got, want)
	}
	if got, want := c.Windows[0].Duration, 2*time.Hour; got != want {
		t.Errorf("Windows[0].Duration = %v, want %v", got, want)
	}
}

func TestUnknownKeyNamedWithLine(t *testing.T) {
	raw, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Replace(string(raw), "    hardware_id: acme", "    hardwre_id: acme", 1)
	body = strings.Replace(body, "  refresh_interval:", "  refresh_intervall:", 1)
	_, err = Load(writeConfig(t, body))
	if err == nil {
		t.Fatal("Load(config with typos) = nil error, want one naming the keys")
	}
	for _, want := range []string{"hardwre_id", "refresh_intervall", "line "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Load(config with typos) = %q, want it to mention %q", err, want)
		}
	}
}

func TestValidateNamesEveryProblem(t *testing.T) {
	c, err := Load(writeConfig(t, `
gateway: {id: gw1, site: "bad site", log_level: loud}
tuf: {metadata_url: "ftp://x", targets_url: "http://h/targets", trusted_root: r.json}
windows:
  - {name: w, start: "not cron", duration: 1h, timezone: Mars/Olympus, exclude: [2026-13-01]}
groups:
  - {name: g, window: nope, approval: auto}
devices:
  - {id: a, group: g, protocol: xmodem, hardware_id: hw, address: /dev/x}
  - {id: a, group: h, protocol: xmodem, hardware_id: "", address: /dev/y}
`))
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	err = c.Validate(nil)
	if err == nil {
		t.Fatal("Validate = nil, want errors")
	}
	for _, want := range []string{
		"gateway.site", "gateway.log_level", "tuf.metadata_url",
		"windows[0].start", "windows[0].timezone", "windows[0].exclude[0]",
		"groups[0].window", `devices[1].id: duplicate device id "a"`, "devices[1].group",
		"devices[1].hardware_id",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() missing %q in:\n%v", want, err)
		}
	}
}

func TestEnvOverride(t *testing.T) {
	t.Setenv("FIELDGATE_GATEWAY_STATE_DIR", "/srv/fg")
	c, err := Load("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway.StateDir != "/srv/fg" {
		t.Errorf("StateDir = %q, want /srv/fg from the environment", c.Gateway.StateDir)
	}
}

func TestEmptyFile(t *testing.T) {
	if _, err := Load(writeConfig(t, "")); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("Load(empty) = %v, want an error saying it is empty", err)
	}
}

func FuzzLoad(f *testing.F) {
	raw, _ := os.ReadFile("example.yaml")
	f.Add(raw)
	f.Add([]byte("gateway: [1,2"))
	f.Add([]byte("devices: {a: b}"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p)
		if err == nil {
			_ = c.Validate(nil)
		}
	})
}
