// SPDX-License-Identifier: Apache-2.0

package config

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/fieldgate/fieldgate/daemon/advisory"
)

// Zones and criticalities a device may name, as daemon/advisory weighs them.
var (
	zones         = []string{string(advisory.ZoneInternet), string(advisory.ZoneDMZ), string(advisory.ZoneControl), string(advisory.ZoneIsolated)}
	criticalities = []string{string(advisory.CriticalityHigh), string(advisory.CriticalityMedium), string(advisory.CriticalityLow)}
)

// defaultInventory fills in each device's zone from the gateway's (itself
// control by default) and its criticality (medium).
func (c *Config) defaultInventory() {
	if c.Gateway.Zone == "" {
		c.Gateway.Zone = string(advisory.ZoneControl)
	}
	for i := range c.Devices {
		d := &c.Devices[i]
		if d.Zone == "" {
			d.Zone = c.Gateway.Zone
		}
		if d.Criticality == "" {
			d.Criticality = string(advisory.CriticalityMedium)
		}
	}
}

// validateInventory checks the inventory fields of the gateway and every
// device: zone and criticality from their lists, CPE and PURL parsed as
// the advisory matcher parses them, and the free-text fields printable on
// one line (they go into MQTT documents and SBOMs).
func (c *Config) validateInventory(bad func(path, format string, a ...any)) {
	oneOf := func(path, v string, set []string) {
		for _, s := range set {
			if v == s {
				return
			}
		}
		bad(path, "%q must be one of %s", v, strings.Join(set, ", "))
	}
	oneOf("gateway.zone", c.Gateway.Zone, zones)
	for i, d := range c.Devices {
		p := fmt.Sprintf("devices[%d]", i)
		oneOf(p+".zone", d.Zone, zones)
		oneOf(p+".criticality", d.Criticality, criticalities)
		for _, f := range []struct{ key, v string }{
			{"vendor", d.Vendor}, {"product", d.Product}, {"model", d.Model},
			{"hardware_revision", d.HardwareRevision}, {"serial", d.Serial},
		} {
			switch {
			case len(f.v) > 256:
				bad(p+"."+f.key, "is longer than 256 bytes")
			case strings.ContainsFunc(f.v, func(r rune) bool { return !unicode.IsPrint(r) }):
				bad(p+"."+f.key, "%q has a control character", f.v)
			case f.v != strings.TrimSpace(f.v):
				bad(p+"."+f.key, "%q has leading or trailing space", f.v)
			}
		}
		if d.CPE != "" {
			cpe, err := advisory.ParseCPE(d.CPE)
			switch {
			case err != nil:
				bad(p+".cpe", "%v (want cpe:2.3:part:vendor:product:version:…)", err)
			case cpe[0] == "*":
				bad(p+".cpe", "%q: part is ANY; a device's CPE names h (hardware), o (firmware) or a (application)", d.CPE)
			}
		}
		if d.PURL != "" {
			if _, err := advisory.ParsePURL(d.PURL); err != nil {
				bad(p+".purl", "%v (want pkg:type/namespace/name@version)", err)
			}
		}
	}
}
