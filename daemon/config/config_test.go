// SPDX-License-Identifier: Apache-2.0

package config

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/config/configtest"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fieldgated.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// example returns example.yaml with its file keys naming valid files made
// by configtest (the example names /etc/fieldgate/root.json), and each old
// string then replaced by its new one.
func example(t *testing.T, oldNew ...string) string {
	t.Helper()
	raw, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f := configtest.Write(t, t.TempDir())
	body := strings.Replace(string(raw), "trusted_root: /etc/fieldgate/root.json", "trusted_root: "+f.TrustedRoot, 1)
	for i := 0; i+1 < len(oldNew); i += 2 {
		if !strings.Contains(body, oldNew[i]) {
			t.Fatalf("example.yaml has no %q", oldNew[i])
		}
		body = strings.Replace(body, oldNew[i], oldNew[i+1], 1)
	}
	return body
}

func TestExampleIsValid(t *testing.T) {
	c, err := Load(writeConfig(t, example(t)))
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
tuf: {metadata_url: "ftp://x", targets_url: "http://h/targets", trusted_root: r.json, target_paths: ["acme-io16/*", "/abs/*", "bad[/*"]}
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
		"devices[1].hardware_id", "tuf.target_paths[1]", "tuf.target_paths[2]",
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

func TestLoadRefusesOversizedFile(t *testing.T) {
	body := "gateway: {id: gw1}\n" + strings.Repeat("# padding padding padding padding padding padding padding\n", MaxFileSize/50)
	for name, load := range map[string]func(string) error{
		"Load":  func(p string) error { _, err := Load(p); return err },
		"Check": func(p string) error { _, err := Check(p, nil); return err },
	} {
		err := load(writeConfig(t, body))
		if err == nil || !strings.Contains(err.Error(), "over 1048576 bytes (1 MiB)") {
			t.Errorf("%s(%d-byte file) = %v, want an error saying it is over 1 MiB", name, len(body), err)
		}
	}
}

func TestCheckValidatesDespiteUnknownKeys(t *testing.T) {
	raw, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Replace(string(raw), "  refresh_interval:", "  refresh_intervall:", 1)
	body = strings.Replace(body, "log_level: info", "log_level: loud", 1)
	body = strings.Replace(body, "    window: nightly", "    window: weekly", 1)
	p := writeConfig(t, body)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "refresh_intervall") {
		t.Errorf("Load(unknown key) = %v, want an error naming refresh_intervall", err)
	}
	c, err := Check(p, nil)
	if err == nil {
		t.Fatal("Check = nil, want errors")
	}
	if c == nil {
		t.Error("Check returned no Config for a file that decodes")
	}
	for _, want := range []string{"refresh_intervall", "line ", "gateway.log_level", `groups[0].window: unknown window "weekly"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check() missing %q in:\n%v", want, err)
		}
	}
}

func TestCheckStopsAtMalformedYAML(t *testing.T) {
	if _, err := Check(writeConfig(t, "gateway: [1,2"), nil); err == nil {
		t.Error("Check(malformed) = nil, want an error")
	}
}

func TestWarningsWindowNeverOpens(t *testing.T) {
	for _, tc := range []struct {
		start string
		never bool
	}{
		{"0 0 30 2 *", true},        // February 30th
		{"0 0 31 4,6,9,11 *", true}, // the 31st of a 30-day month
		{"0 0 29 2 *", false},       // leap years
		{"0 0 30 2 1", false},       // both day fields restricted: any Monday in February
		{"0 0 31 * *", false},
		{"0 2 * * *", false},
		{"not cron", false}, // Validate's business
	} {
		c := &Config{Windows: []Window{{Name: "w", Start: tc.start}}}
		got := c.Warnings()
		if never := len(got) == 1 && strings.Contains(got[0], "windows[0].start") && strings.Contains(got[0], "never opens"); never != tc.never || (!tc.never && len(got) != 0) {
			t.Errorf("Warnings(start %q) = %q, want a never-opens warning: %v", tc.start, got, tc.never)
		}
	}
}

func TestValidateEmbeddedBroker(t *testing.T) {
	for _, tc := range []struct {
		name, mqtt string
		want       []string // substrings of the error; none: valid
	}{
		{"loopback", "{listen: 127.0.0.1:1883}", nil},
		{"localhost", "{listen: localhost:1883}", nil},
		{"beyond loopback", "{listen: 0.0.0.0:1883}", []string{"mqtt.listen", "beyond loopback", "mqtt.embedded.password_file"}},
		{"every interface", `{listen: ":1883"}`, []string{"mqtt.listen"}},
		{"beyond loopback with passwords", "{listen: 0.0.0.0:1883, embedded: {password_file: PW}}", nil},
		{"beyond loopback with client certs", "{listen: 0.0.0.0:8883, embedded: {tls_cert_file: CERT, tls_key_file: KEY, client_ca_file: CA}}", nil},
		{"client CA without a certificate", "{embedded: {client_ca_file: ca.pem}}", []string{"mqtt.embedded.client_ca_file"}},
		{"certificate without key", "{embedded: {tls_cert_file: c.pem}}", []string{"tls_cert_file and tls_key_file"}},
		{"negative limit", "{embedded: {max_clients: -1}}", []string{"mqtt.embedded.max_clients"}},
		{"tiny packets", "{embedded: {max_packet_size: 100}}", []string{"mqtt.embedded.max_packet_size"}},
		{"external broker", "{broker: tcp://central:1883, listen: 0.0.0.0:1883}", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := configtest.Write(t, t.TempDir())
			raw := example(t)
			i, j := strings.Index(raw, "\nmqtt:\n"), strings.Index(raw, "\n# Maintenance")
			files := strings.NewReplacer("PW", f.PasswordFile, "CERT", f.TLSCertFile, "KEY", f.TLSKeyFile, "CA", f.ClientCAFile)
			body := raw[:i] + "\nmqtt: " + files.Replace(tc.mqtt) + "\n" + raw[j:]
			c, err := Load(writeConfig(t, body))
			if err != nil {
				t.Fatalf("Load = %v", err)
			}
			err = c.Validate(nil)
			if len(tc.want) == 0 {
				if err != nil {
					t.Errorf("Validate(mqtt %s) = %v, want nil", tc.mqtt, err)
				}
				return
			}
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Validate(mqtt %s) = %v, want it to mention %q", tc.mqtt, err, w)
				}
			}
		})
	}
}

func TestEmbeddedBrokerDefaults(t *testing.T) {
	c, err := Load(writeConfig(t, "gateway: {id: gw1, site: s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := c.MQTT.Embedded
	if e.MaxPacketSize != 64<<10 || e.MaxRetained != 1000 || e.MaxRetainedBytes != 8<<20 || e.MaxClients != 64 || e.MaxInflight != 1024 {
		t.Errorf("MQTT.Embedded defaults = %+v, want 64 KiB packets, 1000 retained, 8 MiB retained, 1024 inflight, 64 clients", e)
	}
	if c.MQTT.Listen != "127.0.0.1:1883" {
		t.Errorf("MQTT.Listen default = %q, want 127.0.0.1:1883", c.MQTT.Listen)
	}
}

// TestValidateFiles: every file the configuration names is read and
// checked. A configuration whose files are all good passes; with any one
// of them missing, not what its key says (garbage, or a named pipe), the
// problem is reported naming the key and the file. Both broker set-ups are
// covered: an external broker with a client certificate, and the embedded
// broker with TLS, passwords and client certificates.
func TestValidateFiles(t *testing.T) {
	f := configtest.Write(t, t.TempDir())
	validate := func(t *testing.T, body string) error {
		t.Helper()
		c, err := Load(writeConfig(t, body))
		if err != nil {
			t.Fatalf("Load = %v", err)
		}
		return c.Validate(nil)
	}
	for _, embedded := range []bool{false, true} {
		keys := f.External()
		if embedded {
			keys = f.Embedded()
		}
		good := f.Config(t.TempDir(), embedded)
		t.Run(fmt.Sprintf("embedded=%v/valid", embedded), func(t *testing.T) {
			if err := validate(t, good); err != nil {
				t.Fatalf("Validate(all files good) = %v", err)
			}
		})
		for _, key := range slices.Sorted(maps.Keys(keys)) {
			p := keys[key]
			dir := t.TempDir()
			garbage := filepath.Join(dir, "garbage")
			os.WriteFile(garbage, []byte("this is not the file you are looking for\n"), 0o600)
			fifo := filepath.Join(dir, "fifo")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, bad := range []struct{ name, path string }{
				{"missing", filepath.Join(dir, "missing")},
				{"garbage", garbage},
				{"fifo", fifo},
				{"directory", dir},
			} {
				t.Run(fmt.Sprintf("embedded=%v/%s/%s", embedded, key, bad.name), func(t *testing.T) {
					body := strings.Replace(good, " "+p+"\n", " "+bad.path+"\n", 1)
					if body == good {
						t.Fatalf("config names no %s", p)
					}
					err := validate(t, body)
					if err == nil || !strings.Contains(err.Error(), key+": "+bad.path+": ") {
						t.Errorf("Validate(%s %s) = %v, want an error naming %s and %s", key, bad.name, err, key, bad.path)
					}
				})
			}
		}
	}

	t.Run("key pair mismatch", func(t *testing.T) {
		err := validate(t, strings.Replace(f.Config(t.TempDir(), false), "key_file: "+f.KeyFile, "key_file: "+f.TLSKeyFile, 1))
		if err == nil || !strings.Contains(err.Error(), "mqtt.key_file: "+f.TLSKeyFile+": not the private key of mqtt.cert_file "+f.CertFile) {
			t.Errorf("Validate(client key of another certificate) = %v, want mqtt.key_file named as not the key of mqtt.cert_file", err)
		}
	})

	t.Run("every problem at once", func(t *testing.T) {
		body := f.Config(t.TempDir(), false)
		for _, p := range f.External() {
			body = strings.Replace(body, " "+p+"\n", " "+p+".gone\n", 1)
		}
		err := validate(t, body)
		for key, p := range f.External() {
			if err == nil || !strings.Contains(err.Error(), key+": "+p+".gone: ") {
				t.Errorf("Validate(every file missing) = %v, want %s named", err, key)
			}
		}
		if err != nil && !strings.Contains(err.Error(), "fieldgatectl trust init") {
			t.Errorf("Validate(trusted root missing) = %v, want it to say how to provision one", err)
		}
	})

	t.Run("embedded files unread with an external broker", func(t *testing.T) {
		body := strings.Replace(f.Config(t.TempDir(), false), "mqtt:\n", "mqtt:\n  embedded: {password_file: /nonexistent/passwords}\n", 1)
		if err := validate(t, body); err != nil {
			t.Errorf("Validate(external broker, embedded password file missing) = %v, want nil: the embedded broker is not started", err)
		}
	})

	t.Run("root signatures checked", func(t *testing.T) {
		raw, err := os.ReadFile(f.TrustedRoot)
		if err != nil {
			t.Fatal(err)
		}
		tampered := bytes.Replace(raw, []byte(`"version": 1`), []byte(`"version": 2`), 1)
		if bytes.Equal(tampered, raw) {
			t.Fatal("test setup: root has no version to change")
		}
		p := filepath.Join(t.TempDir(), "root.json")
		os.WriteFile(p, tampered, 0o644)
		err = validate(t, strings.Replace(f.Config(t.TempDir(), true), f.TrustedRoot, p, 1))
		if err == nil || !strings.Contains(err.Error(), "tuf.trusted_root: "+p+": root version 2 is not signed") {
			t.Errorf("Validate(tampered root) = %v, want tuf.trusted_root named as not signed", err)
		}
	})
}

// TestHeartbeatAndHints: the defaults of mqtt.heartbeat, hint_spread and
// broadcast_prefix, an explicit empty broadcast_prefix turning hints off,
// and each out-of-range value named.
func TestHeartbeatAndHints(t *testing.T) {
	c, err := Load(writeConfig(t, "gateway: {id: gw1, site: s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m := c.MQTT; m.Heartbeat != time.Hour || m.HintSpread != 10*time.Second || m.BroadcastPrefix != "fieldgate/v1/broadcast" {
		t.Errorf("defaults: heartbeat %v, hint_spread %v, broadcast_prefix %q; want 1h, 10s, fieldgate/v1/broadcast", m.Heartbeat, m.HintSpread, m.BroadcastPrefix)
	}
	c, err = Load(writeConfig(t, "gateway: {id: gw1, site: s}\nmqtt: {broadcast_prefix: \"\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTT.BroadcastPrefix != "" {
		t.Errorf("broadcast_prefix: \"\" loads as %q, want empty (hints off)", c.MQTT.BroadcastPrefix)
	}
	for _, tc := range []struct {
		old, new string
		want     []string // substrings of the error; none: valid
	}{
		{"heartbeat: 1h", "heartbeat: 10m", nil},
		{"heartbeat: 1h", "heartbeat: 30s", []string{"mqtt.heartbeat", "below 1m"}},
		{"hint_spread: 10s", "hint_spread: 500ms", []string{"mqtt.hint_spread", "between 1s and 1h"}},
		{"hint_spread: 10s", "hint_spread: 2h", []string{"mqtt.hint_spread"}},
		{"broadcast_prefix: fieldgate/v1/broadcast", "broadcast_prefix: fieldgate/v1/plant-a/broadcast", nil},
		{"broadcast_prefix: fieldgate/v1/broadcast", `broadcast_prefix: ""`, nil},
		{"broadcast_prefix: fieldgate/v1/broadcast", "broadcast_prefix: fieldgate/+/broadcast", []string{"mqtt.broadcast_prefix", "wildcard"}},
		{"broadcast_prefix: fieldgate/v1/broadcast", "broadcast_prefix: fieldgate/v1/broadcast/", []string{"mqtt.broadcast_prefix", "empty level"}},
		{"broadcast_prefix: fieldgate/v1/broadcast", "broadcast_prefix: fieldgate/v1/plant1/gw1", []string{"mqtt.broadcast_prefix", "overlaps"}},
	} {
		c, err := Load(writeConfig(t, example(t, tc.old, tc.new)))
		if err != nil {
			t.Fatalf("Load(%s) = %v", tc.new, err)
		}
		err = c.Validate(nil)
		if len(tc.want) == 0 && err != nil {
			t.Errorf("Validate(%s) = %v, want nil", tc.new, err)
		}
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("Validate(%s) = %v, want it to mention %q", tc.new, err, w)
			}
		}
	}
}

// TestCanaryDefault: a group without canary gets 1; canary: 0 stays 0
// (the whole group at once, up to max_parallel).
func TestCanaryDefault(t *testing.T) {
	c, err := Load(writeConfig(t, "gateway: {id: gw1, site: s}\ngroups:\n  - {name: a, window: w}\n  - {name: b, window: w, canary: 0}\n  - {name: c, window: w, canary: 3}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, g := range c.Groups {
		got = append(got, g.Canary)
	}
	if want := []int{1, 0, 3}; !slices.Equal(got, want) {
		t.Errorf("canary of groups without it, with 0, with 3 = %v, want %v", got, want)
	}
}
