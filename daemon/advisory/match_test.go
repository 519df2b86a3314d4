// SPDX-License-Identifier: Apache-2.0

package advisory

import (
	"bytes"
	"slices"
	"testing"
)

// shapesDoc holds, in one synthetic document, the shapes the held-out
// evaluation on the 2021-2023 CISA advisories found the matcher missing:
// ranges written as product_version, vendor fields that list companies,
// article numbers where the version belongs, remediations that name the
// fix of another release line, and a device named only in the full
// product name.
const shapesDoc = `{"document":{"category":"csaf_security_advisory","csaf_version":"2.0","title":"t","publisher":{"name":"p"},
 "tracking":{"id":"T-2","version":"1","status":"final","initial_release_date":"2023-01-01T00:00:00Z","current_release_date":"2023-01-01T00:00:00Z","revision_history":[{"number":"1"}]}},
 "product_tree":{"branches":[
  {"category":"vendor","name":"Acme Controls Software, LLC","branches":[
   {"category":"product_name","name":"PLC-9 CPUs","branches":[{"category":"product_version","name":"vers:all/*","product":{"name":"PLC-9 CPUs: All versions","product_id":"ALL"}}]},
   {"category":"product_name","name":"Station","branches":[{"category":"product_version","name":"vers:all/*","product":{"name":"Station: All versions","product_id":"STA"}}]},
   {"category":"product_name","name":"Gateway","branches":[{"category":"product_version","name":"7001234","product":{"name":"Gateway: Article number 7001234","product_id":"ART"}}]},
   {"category":"product_name","name":"Server","branches":[
     {"category":"product_version_range","name":">= 2.0.0 | <= 2.0.3","product":{"name":"Server: 2.0.0 - 2.0.3","product_id":"SV2"}},
     {"category":"product_version_range","name":">= 3.0.0 | <= 3.0.4","product":{"name":"Server: 3.0.0 - 3.0.4","product_id":"SV3"}}]},
   {"category":"product_family","name":"NJ/NX-series Controllers","branches":[{"category":"product_name","name":"NJ/NX-series Controllers","branches":[
     {"category":"product_version_range","name":"<= 1.48","product":{"name":"NJ/NX-series Controllers - NJ-series Machine Controller (All Models): 1.48 and prior","product_id":"NJ"}}]}]}]},
  {"category":"vendor","name":"Widget Technologies, a subsidiary of Acme Controls Inc.","branches":[
   {"category":"product_name","name":"Viewer","branches":[{"category":"product_version","name":"10 | 11","product":{"name":"Viewer: Versions 10 and 11","product_id":"VW"}}]}]}]},
 "vulnerabilities":[{"cve":"CVE-2023-0001","product_status":{"known_affected":["ALL","STA","ART","SV2","SV3","NJ","VW"]},
   "remediations":[{"category":"vendor_fix","details":"Versions 2.0.0 - 2.0.3: Update to v2.0.4. Versions 3.0.0 - 3.0.4: update to v3.0.5.","product_ids":["SV2","SV3","STA"]}]}]}`

func TestMatchShapes(t *testing.T) {
	a, err := ParseCSAF(bytes.NewReader([]byte(shapesDoc)))
	if err != nil {
		t.Fatal(err)
	}
	x := NewIndex([]*Advisory{a}, nil)
	for _, c := range []struct {
		name   string
		it     Item
		tier   Tier // 0: no match
		status Status
		prods  []string
	}{
		{"range as product_version, vendor of a software arm, plural", Item{Vendor: "Acme Controls International plc", Product: "PLC-9 CPU", Firmware: "3.2"}, TierName, Affected, []string{"ALL"}},
		{"company listed in the vendor field, release lines", Item{Vendor: "Acme Controls, Inc.", Product: "Viewer", Firmware: "11.0.2"}, TierName, Affected, []string{"VW"}},
		{"release line not listed", Item{Vendor: "Acme Controls", Product: "Viewer", Firmware: "12.0"}, 0, "", nil},
		{"article number as product_version", Item{Vendor: "Acme Controls GmbH & Co. KG", Product: "Gateway", Model: "7001234", Firmware: "2022.1"}, TierModel, Affected, []string{"ART"}},
		{"in range although past the first fix the remediation names", Item{Vendor: "Acme Controls", Product: "Server", Firmware: "3.0.1"}, TierName, Affected, []string{"SV3"}},
		{"past every range", Item{Vendor: "Acme Controls", Product: "Server", Firmware: "3.0.5"}, 0, "", nil},
		{"all versions stay affected whatever version a remediation names", Item{Vendor: "Acme Controls", Product: "Station", Firmware: "5.5.1"}, TierName, Affected, []string{"STA"}},
		{"named in the full product name only", Item{Vendor: "Acme Controls", Product: "NJ-series Machine Controller", Firmware: "1.48"}, TierName, Affected, []string{"NJ"}},
		{"other vendor", Item{Vendor: "Widget Works", Product: "Viewer", Firmware: "11"}, 0, "", nil},
	} {
		c.it.Device = "d"
		ms := x.Match(c.it)
		if c.tier == 0 {
			if len(ms) != 0 {
				t.Errorf("%s: Match = %+v, want none", c.name, ms)
			}
			continue
		}
		if len(ms) != 1 {
			t.Errorf("%s: Match = %+v, want one", c.name, ms)
			continue
		}
		m := ms[0]
		if m.Tier != c.tier || m.Findings[0].Status != c.status || !slices.Equal(m.Products, c.prods) {
			t.Errorf("%s: Match = tier %v status %s products %v, want %v %s %v (evidence %q)", c.name, m.Tier, m.Findings[0].Status, m.Products, c.tier, c.status, c.prods, m.Evidence)
		}
	}
}

func TestNormVendor(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Johnson Controls International plc", "johnson controls"},
		{"Phoenix Contact GmbH & Co. KG", "phoenix contact"},
		{"General Electric (GE)", "general electric"},
		{"GE Digital", "general electric"},
		{"Yokogawa Electric Corporation", "yokogawa"},
		{"Emerson Electric Co.", "emerson"},
		{"Schneider Electric Software, LLC", "schneider electric"},
		{" a subsidiary of Johnson Controls Inc.", "johnson controls"},
		{"B&R Industrial Automation GmbH", "b&r industrial automation"},
	} {
		if got := normVendor(c.in); got != c.want {
			t.Errorf("normVendor(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
