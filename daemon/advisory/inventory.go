// SPDX-License-Identifier: Apache-2.0

package advisory

import (
	"strings"
	"unicode"
)

// Item is what the inventory knows of one device: read from the device
// where its protocol allows, the rest from config.
type Item struct {
	Device           string // the device id in the gateway's config
	Vendor           string
	Product          string
	Model            string // model or order number, e.g. "6ES7214-1AG40-0XB0"
	HardwareRevision string
	Firmware         string // running firmware version
	Serial           string
	CPE              string // CPE 2.3 formatted string, optional
	PURL             string // package URL, optional
	Zone             Zone
	Criticality      Criticality
}

// Zone is the network exposure of a device, from config.
type Zone string

// Zones, most exposed first.
const (
	ZoneInternet Zone = "internet" // reachable from the internet
	ZoneDMZ      Zone = "dmz"      // reachable from the enterprise network through a DMZ
	ZoneControl  Zone = "control"  // on the plant's control network only
	ZoneIsolated Zone = "isolated" // no network path beyond its cell (serial, air gap)
)

// Criticality is how much the plant depends on a device, from config.
type Criticality string

// Criticalities.
const (
	CriticalityHigh   Criticality = "high"
	CriticalityMedium Criticality = "medium"
	CriticalityLow    Criticality = "low"
)

// normModel reduces an order number to upper-case letters and digits, so
// "6ES7 214-1AG40-0XB0" and "6es7214-1ag40-0xb0" compare equal.
func normModel(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9', r >= 'A' && r <= 'Z':
			b.WriteRune(r)
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		}
	}
	return b.String()
}

// modelLike reports whether a normalised token is specific enough to be an
// order or model number when it appears in a product name: six or more
// characters with a digit and a letter, or an article number of seven or
// more digits ("AXC 1050: Article number 2700988").
func modelLike(n string) bool {
	d := strings.IndexFunc(n, unicode.IsDigit) >= 0
	return len(n) >= 6 && d && strings.IndexFunc(n, unicode.IsLetter) >= 0 || len(n) >= 7 && strings.Trim(n, "0123456789") == ""
}

// corporate suffixes and words dropped from vendor names.
var vendorNoise = map[string]bool{
	"inc": true, "incorporated": true, "corp": true, "corporation": true, "co": true, "company": true,
	"ltd": true, "limited": true, "llc": true, "gmbh": true, "ag": true, "sa": true, "se": true, "plc": true,
	"kg": true, "srl": true, "spa": true, "bv": true, "nv": true, "ab": true, "oy": true, "as": true, "kk": true, "the": true,
	"international": true, "&": true,
	// A company's software arm ("Schneider Electric Software, LLC") signs
	// advisories for the company's devices too.
	"software": true,
	// "Sensormatic Electronics, LLC, a subsidiary of Johnson Controls Inc."
	"a": true, "an": true, "subsidiary": true, "affiliate": true, "of": true,
}

// vendorAliases maps a normalised vendor name to the one CISA uses.
// Small on purpose: normalisation does most of the work.
var vendorAliases = map[string]string{
	"allen bradley":       "rockwell automation",
	"rockwell":            "rockwell automation",
	"schneider":           "schneider electric",
	"se schneider":        "schneider electric",
	"mitsubishi":          "mitsubishi electric",
	"melco":               "mitsubishi electric",
	"jci":                 "johnson controls",
	"ge":                  "general electric",
	"ge vernova":          "general electric",
	"ge digital":          "general electric",
	"ni":                  "national instruments",
	"sel":                 "schweitzer engineering laboratories",
	"phoenix":             "phoenix contact",
	"wago kontakttechnik": "wago",
	"delta":               "delta electronics",
	"hitachi abb":         "hitachi energy",
	"siemens energy":      "siemens",
	"general electric ge": "general electric",
	"emerson electric":    "emerson",
	"yokogawa electric":   "yokogawa",
}

// normVendor reduces a vendor name to lower-case words without corporate
// suffixes, then applies the alias table: "Johnson Controls, Inc." and
// "Johnson Controls Inc." are both "johnson controls".
func normVendor(s string) string {
	f := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '&' })
	out := f[:0]
	for _, w := range f {
		if !vendorNoise[w] {
			out = append(out, w)
		}
	}
	n := strings.Join(out, " ")
	if a, ok := vendorAliases[n]; ok {
		return a
	}
	return n
}

// nameNoise are words in product names that do not identify a product.
var nameNoise = map[string]bool{
	"all": true, "versions": true, "version": true, "family": true, "series": true, "incl": true, "including": true,
	"variants": true, "and": true, "the": true, "for": true, "of": true, "with": true, "firmware": true, "software": true,
	"devices": true, "device": true, "products": true, "product": true, "models": true, "model": true, "on": true, "&": true,
}

// nameTokens splits a product name into lower-case words, keeping "-" and
// "." inside words ("s7-1200", "v3.1"), without noise words and without the
// vendor's own name.
func nameTokens(s, vendor string) []string {
	skip := map[string]bool{}
	for _, w := range strings.Fields(vendor) {
		skip[w] = true
	}
	var out []string
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '-' && r != '.' && r != '+'
	}) {
		w = strings.Trim(w, "-.")
		if w == "" || nameNoise[w] || skip[w] {
			continue
		}
		// "nj-series" is "nj", "controllers" "controller", "cpus" "cpu";
		// words with digits stay ("s7-1500").
		w = strings.TrimSuffix(w, "-series")
		if n := len(w); n > 3 && w[n-1] == 's' && w[n-2] != 's' && strings.IndexFunc(w, unicode.IsDigit) < 0 {
			w = w[:n-1]
		}
		out = append(out, w)
	}
	return out
}
