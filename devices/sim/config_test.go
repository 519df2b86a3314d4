// SPDX-License-Identifier: Apache-2.0

package sim

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	good := `devices:
  - id: a
    kind: xmodem-console
    hardware_id: hw1
    version: 1.0.0
    state_dir: st/a
    address: tty-a
    baud: 115200
    faults: [slow-flash]
    options: {model: IO16}
`
	specs, err := Parse([]byte(good))
	if err != nil || len(specs) != 1 || specs[0].Baud != 115200 || specs[0].Options["model"] != "IO16" || !specs[0].HasFault("slow-flash") {
		t.Fatalf("Parse(good) = %+v, %v", specs, err)
	}
	tests := []struct {
		name, in, want string
	}{
		{"typo", strings.Replace(good, "hardware_id", "hardwre_id", 1), "hardwre_id"},
		{"unknown kind", strings.Replace(good, "xmodem-console", "telnet", 1), "telnet"},
		{"duplicate id", good + strings.TrimPrefix(strings.Replace(good, "tty-a", "tty-b", 1), "devices:\n"), "duplicate id"},
		{"duplicate address", good + strings.TrimPrefix(strings.Replace(good, "id: a", "id: b", 1), "devices:\n"), "tty-a"},
		{"empty", "", "empty"},
		{"no devices", "devices: []\n", "no devices"},
		{"no hw", strings.Replace(good, "hardware_id: hw1", "hardware_id: \"\"", 1), "hardware_id"},
		{"top-level typo", "device:\n  - id: a\n", "device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse(%s) = %v, want an error naming %q", tt.name, err, tt.want)
			}
		})
	}
}

func TestNewConsoleRejects(t *testing.T) {
	base := Spec{ID: "a", Kind: ConsoleKind, HardwareID: "hw", Version: "1", StateDir: "s", Address: "tty"}
	tests := []struct {
		name string
		mod  func(*Spec)
		want string
	}{
		{"unknown option", func(s *Spec) { s.Options = map[string]string{"eco": "false"} }, "eco"},
		{"bad option value", func(s *Spec) { s.Options = map[string]string{"image_size": "big"} }, "image_size"},
		{"unknown fault", func(s *Spec) { s.Faults = []string{"explode"} }, "explode"},
		{"no version", func(s *Spec) { s.Version = "" }, "version"},
	}
	if _, err := NewConsole(base, nil); err != nil {
		t.Fatalf("NewConsole(valid) = %v", err)
	}
	for _, tt := range tests {
		s := base
		tt.mod(&s)
		if _, err := NewConsole(s, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewConsole(%s) = %v, want an error naming %q", tt.name, err, tt.want)
		}
	}
}
