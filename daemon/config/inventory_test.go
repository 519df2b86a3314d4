// SPDX-License-Identifier: Apache-2.0

package config

import (
	"strings"
	"testing"
)

func TestInventoryDefaults(t *testing.T) {
	c, err := Load(writeConfig(t, example(t, "# high | medium | low", "# high | medium | low\n  - {id: d2, group: line1, protocol: xmodem, hardware_id: hw, address: /dev/ttyUSB1, zone: dmz, criticality: high}")))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(nil); err != nil {
		t.Fatalf("Validate = %v", err)
	}
	d, d2 := c.Devices[0], c.Devices[1]
	if d.Zone != "control" || d.Criticality != "medium" || d.Vendor != "Acme" || d.HardwareRevision != "3" {
		t.Errorf("device 0: zone %q criticality %q vendor %q hardware_revision %q, want control (gateway.zone), medium, Acme, 3", d.Zone, d.Criticality, d.Vendor, d.HardwareRevision)
	}
	if d2.Zone != "dmz" || d2.Criticality != "high" {
		t.Errorf("device 1: zone %q criticality %q, want dmz, high", d2.Zone, d2.Criticality)
	}

	c, err = Load(writeConfig(t, example(t, "zone: control", "zone: isolated")))
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway.Zone != "isolated" || c.Devices[0].Zone != "isolated" {
		t.Errorf("gateway.zone isolated: gateway %q, device %q; want isolated for both", c.Gateway.Zone, c.Devices[0].Zone)
	}
	c, err = Load(writeConfig(t, "gateway: {id: gw1, site: s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway.Zone != "control" {
		t.Errorf("gateway.zone default = %q, want control", c.Gateway.Zone)
	}
}

func TestValidateInventory(t *testing.T) {
	for _, tc := range []struct {
		old, new string
		want     []string // substrings of the error; none: valid
	}{
		{`cpe: ""`, `cpe: "cpe:2.3:h:acme:io16:-:*:*:*:*:*:*:*"`, nil},
		{`cpe: ""`, `cpe: "cpe:2.3:o:acme:io16_firmware:2.4.1"`, nil},
		{`cpe: ""`, `cpe: "cpe:/h:acme:io16"`, []string{"devices[0].cpe", "not a CPE 2.3"}},
		{`cpe: ""`, `cpe: "cpe:2.3:x:acme:io16"`, []string{"devices[0].cpe", "part"}},
		{`cpe: ""`, `cpe: "cpe:2.3:*:acme:io16"`, []string{"devices[0].cpe", "ANY"}},
		{`cpe: ""`, `cpe: "cpe:2.3:h:acme:io16:1:2:3:4:5:6:7:8:9"`, []string{"devices[0].cpe", "more than 11"}},
		{`purl: ""`, `purl: "pkg:generic/acme/io16-fw@2.4.1"`, nil},
		{`purl: ""`, `purl: "generic/acme/io16-fw"`, []string{"devices[0].purl", "pkg:"}},
		{`purl: ""`, `purl: "pkg:generic"`, []string{"devices[0].purl", "no type/name"}},
		{`zone: control`, `zone: lan`, []string{"gateway.zone", `"lan" must be one of internet, dmz, control, isolated`}},
		{`    zone: ""`, `    zone: Control`, []string{"devices[0].zone", "must be one of"}},
		{`    zone: ""`, `    zone: internet`, nil},
		{`criticality: medium`, `criticality: critical`, []string{"devices[0].criticality", `"critical" must be one of high, medium, low`}},
		{`criticality: medium`, `criticality: low`, nil},
		{`model: IO16-8DI8DO`, `model: "6ES7 214-1AG40-0XB0"`, nil},
		{`model: IO16-8DI8DO`, `model: " 6ES7"`, []string{"devices[0].model", "leading or trailing space"}},
		{`vendor: Acme`, `vendor: "Acme\u0007"`, []string{"devices[0].vendor", "control character"}},
		{`serial: ""`, `serial: "` + strings.Repeat("9", 257) + `"`, []string{"devices[0].serial", "longer than 256"}},
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
