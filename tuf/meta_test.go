// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"strings"
	"testing"
)

func TestParseCustom(t *testing.T) {
	good := `{"fieldgate":{"hardware":["acme-io16-rev3"],"version":"2.4.1","security_counter":7,"protocol":"xmodem","severity":"high","advisories":["CVE-2026-1234"],"requires_reboot":true,"notes":"Fixes Modbus stack overflow"}}`
	m, err := ParseCustom([]byte(good))
	if err != nil {
		t.Fatalf("ParseCustom(good) = %v", err)
	}
	if m.Version != "2.4.1" || m.SecurityCounter != 7 || !m.RequiresReboot || m.Hardware[0] != "acme-io16-rev3" {
		t.Errorf("ParseCustom(good) = %+v", m)
	}
	bad := []struct{ name, in, want string }{
		{"empty", ``, "no custom metadata"},
		{"not json", `{`, "custom metadata"},
		{"no fieldgate key", `{"other":{}}`, `no "fieldgate"`},
		{"fieldgate not object", `{"fieldgate":[1]}`, "not a JSON object"},
		{"unknown key", `{"fieldgate":{"hardware":["a"],"version":"1","securty_counter":1}}`, "unknown field"},
		{"duplicate key", `{"fieldgate":{"hardware":["a"],"version":"1","version":"9"}}`, "appears twice"},
		{"no hardware", `{"fieldgate":{"version":"1"}}`, "hardware"},
		{"empty hardware id", `{"fieldgate":{"hardware":[""],"version":"1"}}`, "hardware[0]"},
		{"bad version", `{"fieldgate":{"hardware":["a"],"version":"one"}}`, "version"},
		{"negative counter", `{"fieldgate":{"hardware":["a"],"version":"1","security_counter":-1}}`, "security_counter"},
		{"float counter", `{"fieldgate":{"hardware":["a"],"version":"1","security_counter":1.5}}`, "security_counter"},
		{"counter as string", `{"fieldgate":{"hardware":["a"],"version":"1","security_counter":"7"}}`, "security_counter"},
		{"bad severity", `{"fieldgate":{"hardware":["a"],"version":"1","severity":"urgent"}}`, "severity"},
		{"control char in notes", `{"fieldgate":{"hardware":["a"],"version":"1","notes":"a\u001b[31m"}}`, "control character"},
		{"space in hardware", `{"fieldgate":{"hardware":["a b"],"version":"1"}}`, "hardware[0]"},
		{"bad protocol", `{"fieldgate":{"hardware":["a"],"version":"1","protocol":"X MODEM"}}`, "protocol"},
		{"oversized", `{"fieldgate":{"hardware":["a"],"version":"1","notes":"` + strings.Repeat("x", 70000) + `"}}`, "limit"},
		{"long notes", `{"fieldgate":{"hardware":["a"],"version":"1","notes":"` + strings.Repeat("x", 5000) + `"}}`, "notes"},
		{"too many hardware ids", `{"fieldgate":{"hardware":[` + strings.Repeat(`"a",`, 64) + `"a"],"version":"1"}}`, "hardware"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCustom([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseCustom(%.60s) = %v, want an error containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestMarshalCustomRoundTrip(t *testing.T) {
	m := Meta{Hardware: []string{"a", "b"}, Version: "1.2.3-rc.1", SecurityCounter: 1 << 60, Severity: "low", Notes: "line1\nline2"}
	b, err := MarshalCustom(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseCustom(b)
	if err != nil {
		t.Fatalf("ParseCustom(MarshalCustom(m)) = %v", err)
	}
	if got.Version != m.Version || got.SecurityCounter != m.SecurityCounter || got.Notes != m.Notes || len(got.Hardware) != 2 {
		t.Errorf("round trip = %+v, want %+v", got, m)
	}
}

// FuzzParseCustom checks that the parser never panics and that whatever it
// accepts is valid and survives a round trip.
func FuzzParseCustom(f *testing.F) {
	for _, s := range []string{
		`{"fieldgate":{"hardware":["acme-io16-rev3"],"version":"2.4.1","security_counter":7,"protocol":"xmodem","severity":"high","advisories":["CVE-2026-1234"],"requires_reboot":true,"notes":"x"}}`,
		`{"fieldgate":{"hardware":["a"],"version":"1"},"other":1}`,
		`{"fieldgate":{"hardware":["a"],"version":"1","version":"2"}}`,
		`{"fieldgate":null}`,
		`{"fieldgate":{"hardware":["a"],"version":"1"}} trailing`,
		`[]`, `null`, ``, `{"fieldgate":{"security_counter":18446744073709551616}}`,
		`{"fieldgate":{"hardware":["a"],"version":"1","rollout":{"percent":10,"not_before":"2026-06-01T02:00:00.5+02:00","sites":["p"],"gateways":["g"]}}}`,
		`{"fieldgate":{"hardware":["a"],"version":"1","rollout":{"sites":["p"]}}}`,
		`{"fieldgate":{"hardware":["a"],"version":"1","rollout":{"percent":1,"percent":2}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseCustom(data)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("ParseCustom accepted invalid meta %+v: %v", m, err)
		}
		b, err := MarshalCustom(m)
		if err != nil {
			t.Fatalf("MarshalCustom(%+v) = %v", m, err)
		}
		if _, err := ParseCustom(b); err != nil {
			t.Fatalf("round trip of %+v: %v", m, err)
		}
	})
}
