// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"errors"
	"strings"
	"testing"
)

func tgt(name, version string, counter uint64, hw ...string) Target {
	return Target{Name: name, Meta: Meta{Hardware: hw, Version: version, SecurityCounter: counter}}
}

func TestSelect(t *testing.T) {
	broken := tgt("broken.bin", "9.9.9", 9, "io16")
	broken.MetaErr = errors.New("bad")
	all := []Target{
		tgt("io16-2.3.0", "2.3.0", 2, "io16"),
		tgt("io16-2.4.1", "2.4.1", 3, "io16", "io16b"),
		tgt("io16-2.4.0", "2.4.0", 5, "io16"),
		tgt("plc-1.0.0", "1.0.0", 1, "plc"),
		broken,
	}
	tests := []struct {
		name       string
		targets    []Target
		hw         string
		installed  string
		floor      uint64
		want       string // "" = none
		wantReason string
	}{
		{"newest wins", all, "io16", "2.3.0", 0, "io16-2.4.1", ""},
		{"second hardware id", all, "io16b", "1.0", 0, "io16-2.4.1", ""},
		{"nothing installed", all, "plc", "", 0, "plc-1.0.0", ""},
		{"already newest", all, "io16", "2.4.1", 0, "", "no target newer than installed 2.4.1"},
		{"installed is newer", all, "io16", "3.0", 0, "", "no target newer"},
		{"floor refuses newest, none left", all, "io16", "2.4.0", 4, "", "security counter 3 is below the device floor 4"},
		{"floor skips to older with high counter", all, "io16", "2.3.0", 4, "io16-2.4.0", ""},
		{"unknown hardware", all, "hmi", "", 0, "", `no target for hardware "hmi"`},
		{"malformed ignored and counted", all, "hmi", "", 0, "", "1 target(s) ignored"},
		{"invalid installed version", all, "io16", "banana", 0, "", "installed version cannot be ordered"},
		{"empty hardware id", all, "", "", 0, "", "no hardware id"},
		{"tie on version: higher counter", []Target{tgt("b", "1.0", 1, "x"), tgt("a", "1.0.0", 2, "x")}, "x", "", 0, "a", ""},
		{"tie: name order", []Target{tgt("b", "1.0", 1, "x"), tgt("a", "1.0", 1, "x")}, "x", "", 0, "a", ""},
		{"pre-release below release", []Target{tgt("rc", "2.0.0-rc.1", 1, "x"), tgt("rel", "2.0.0", 1, "x")}, "x", "1.0", 0, "rel", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, reason := Select(tt.targets, tt.hw, tt.installed, tt.floor)
			if tt.want == "" {
				if ok {
					t.Fatalf("Select(%s, %q, %d) = %s, want none", tt.hw, tt.installed, tt.floor, got.Name)
				}
				if !strings.Contains(reason, tt.wantReason) {
					t.Errorf("Select(%s, %q, %d) reason = %q, want it to contain %q", tt.hw, tt.installed, tt.floor, reason, tt.wantReason)
				}
				return
			}
			if !ok || got.Name != tt.want {
				t.Errorf("Select(%s, %q, %d) = %q, %v (%s), want %q", tt.hw, tt.installed, tt.floor, got.Name, ok, reason, tt.want)
			}
		})
	}
}
