// SPDX-License-Identifier: Apache-2.0

package modbus

import (
	"strings"
	"testing"
	"time"
)

func TestParseProfile(t *testing.T) {
	def := DefaultProfile()
	def.StopBits = 2 // parity none
	tests := []struct {
		name string
		opts map[string]string
		want func(p *Profile) // changes to the defaults; nil: none
		errs []string         // each must appear in the error; none: no error
	}{
		{"defaults", nil, nil, nil},
		{"hex and decimal registers", map[string]string{"command_register": "0x200", "status_register": " 513 ", "unit": "0x11"},
			func(p *Profile) { p.CommandReg, p.StatusReg, p.Unit = 0x200, 513, 0x11 }, nil},
		{"none values", map[string]string{"backup_file": "none", "interlock": "none", "serial_object": "none", "digest": "none"},
			func(p *Profile) { p.BackupFile, p.Interlock, p.SerialObj, p.Digest = 0, Source{}, -1, "none" }, nil},
		{"interlock coil", map[string]string{"interlock": "coil:0x10", "interlock_running": "0"},
			func(p *Profile) { p.Interlock, p.InterlockOn = Source{Kind: "coil", Addr: 16}, 0 }, nil},
		{"rtu framing", map[string]string{"parity": "even", "slots": "2", "timeout": "250ms", "retries": "0"},
			func(p *Profile) {
				p.Parity, p.StopBits, p.Slots, p.Timeout, p.Retries = "even", 1, 2, 250*time.Millisecond, 0
			}, nil},
		{"stop bits given", map[string]string{"stop_bits": "1"}, func(p *Profile) { p.StopBits = 1 }, nil},
		{"objects", map[string]string{"hardware_object": "4", "serial_object": "0x81"},
			func(p *Profile) { p.HardwareObj, p.SerialObj = 4, 0x81 }, nil},
		{"bad values name their keys", map[string]string{
			"unit": "256", "file": "0", "retries": "11", "slots": "3", "digest": "md5",
			"interlock": "register:5", "max_registers": "123", "activate_timeout": "soon",
		}, nil, []string{
			`option unit="256": want a unit id 0..255`,
			`option file="0": want a file number 1..65535`,
			`option retries="11": want a whole number in 0..10`,
			`option slots="3": want one of 1, 2`,
			`option digest="md5": want one of crc32, sha256, none`,
			`option interlock="register:5": want holding:N, input:N, coil:N, discrete:N or none`,
			`option max_registers="123": want a whole number in 1..122`,
			`option activate_timeout="soon": want a positive duration`,
		}},
		{"unknown key", map[string]string{"colour": "red"}, nil,
			[]string{`unknown option "colour" (known: activate_timeout, backup_file, `}},
		{"cross checks", map[string]string{"backup_file": "1", "status_ok": "0"}, nil,
			[]string{"option backup_file=1: must differ from file", "options status_idle and status_ok: both are 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProfile(tt.opts)
			if len(tt.errs) > 0 {
				if err == nil {
					t.Fatalf("ParseProfile(%v) = nil error, want %q", tt.opts, tt.errs)
				}
				for _, want := range tt.errs {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("ParseProfile(%v) = %v\nwant it to contain %q", tt.opts, err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseProfile(%v) = %v", tt.opts, err)
			}
			want := def
			if tt.want != nil {
				tt.want(&want)
			}
			if got != want {
				t.Errorf("ParseProfile(%v) = %+v, want %+v", tt.opts, got, want)
			}
		})
	}
}

// TestParseProfileKeepsDefaultsOnError: a bad unit leaves the default in
// place, so the RTU address check does not report a second, invented value.
func TestParseProfileKeepsDefaultsOnError(t *testing.T) {
	p, err := ParseProfile(map[string]string{"unit": "x", "command_register": "-1"})
	if err == nil {
		t.Fatal("ParseProfile = nil error, want one")
	}
	if p.Unit != 1 || p.CommandReg != 100 {
		t.Errorf("ParseProfile after errors: unit %d, command_register %d, want the defaults 1, 100", p.Unit, p.CommandReg)
	}
}
