// SPDX-License-Identifier: Apache-2.0

package smp

import (
	"strings"
	"testing"
	"time"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]string
		want options
		err  string // "" = valid
	}{
		{"defaults", nil, options{timeout: 2 * time.Second, retries: 3, bootTimeout: 60 * time.Second}, ""},
		{"all set", map[string]string{"timeout": "500ms", "retries": "0", "boot_timeout": "2m", "max_packet": "64", "hardware_id": "os-info"},
			options{timeout: 500 * time.Millisecond, retries: 0, bootTimeout: 2 * time.Minute, maxPacket: 64, hwFromOS: true}, ""},
		{"max_packet 0 is buf_size", map[string]string{"max_packet": "0", "hardware_id": "config"},
			options{timeout: 2 * time.Second, retries: 3, bootTimeout: 60 * time.Second}, ""},
		{"max_packet too small", map[string]string{"max_packet": "10"}, options{}, `option max_packet="10": want 0`},
		{"negative retries", map[string]string{"retries": "-1"}, options{}, `option retries="-1": want a whole number of at least 0`},
		{"bad duration", map[string]string{"boot_timeout": "soon"}, options{}, `option boot_timeout="soon": want a positive duration`},
		{"hardware id source", map[string]string{"hardware_id": "guess"}, options{}, `option hardware_id="guess": want one of config, os-info`},
		{"unknown", map[string]string{"bogus": "1"}, options{}, `unknown option "bogus" (known: boot_timeout, hardware_id, max_packet, retries, timeout)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOptions(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseOptions(%v) = %v, want an error containing %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseOptions(%v) = %+v, %v, want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}
