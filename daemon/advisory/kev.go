// SPDX-License-Identifier: Apache-2.0

package advisory

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// KEV is the CISA Known Exploited Vulnerabilities catalog, by CVE id.
type KEV struct {
	Version  string // catalogVersion, e.g. "2025.08.25"
	Released string // dateReleased
	Entries  map[string]KEVEntry
}

// KEVEntry is one catalog entry.
type KEVEntry struct {
	CVE       string
	Vendor    string // vendorProject
	Product   string
	DateAdded string // YYYY-MM-DD
	// Ransomware is true when the catalog says the CVE is known to be used
	// in ransomware campaigns (knownRansomwareCampaignUse "Known").
	Ransomware bool
}

// ParseKEV reads the KEV catalog (known_exploited_vulnerabilities.json) of
// at most MaxDocumentSize bytes.
func ParseKEV(r io.Reader) (*KEV, error) {
	data, err := readBounded(r)
	if err != nil {
		return nil, fmt.Errorf("kev: %w", err)
	}
	var doc struct {
		CatalogVersion  *string `json:"catalogVersion"`
		DateReleased    string  `json:"dateReleased"`
		Vulnerabilities []struct {
			CVE        string `json:"cveID"`
			Vendor     string `json:"vendorProject"`
			Product    string `json:"product"`
			DateAdded  string `json:"dateAdded"`
			Ransomware string `json:"knownRansomwareCampaignUse"`
		} `json:"vulnerabilities"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("kev: %w", err)
	}
	if doc.CatalogVersion == nil {
		return nil, fmt.Errorf("kev: no catalogVersion: not a KEV catalog")
	}
	k := &KEV{Version: *doc.CatalogVersion, Released: doc.DateReleased, Entries: make(map[string]KEVEntry, len(doc.Vulnerabilities))}
	for _, v := range doc.Vulnerabilities {
		if !strings.HasPrefix(v.CVE, "CVE-") {
			return nil, fmt.Errorf("kev: entry with cveID %q", v.CVE)
		}
		k.Entries[v.CVE] = KEVEntry{CVE: v.CVE, Vendor: v.Vendor, Product: v.Product, DateAdded: v.DateAdded, Ransomware: v.Ransomware == "Known"}
	}
	return k, nil
}

// Lookup returns the catalog entry for a CVE. A nil catalog has none.
func (k *KEV) Lookup(cve string) (KEVEntry, bool) {
	if k == nil {
		return KEVEntry{}, false
	}
	e, ok := k.Entries[cve]
	return e, ok
}
