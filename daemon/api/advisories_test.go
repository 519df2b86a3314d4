// SPDX-License-Identifier: Apache-2.0

package api

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestAdvisoriesWireFormat pins the advisories documents' JSON, as
// TestWireFormat does for the others, and checks the full sample is full.
func TestAdvisoriesWireFormat(t *testing.T) {
	full := Advisories{Gateway: "gw-1", Devices: []DeviceAdvisories{{
		Device: "ups-1", Priority: PriorityAct, Reasons: []string{"CVE-2024-1 is on CISA KEV"},
		Matches: []AdvisoryMatch{{Advisory: "ICSA-24-123-01", Revision: "2", Title: "Acme UPS", Tier: "model", Confidence: "high",
			CVEs: []AdvisoryCVE{{CVE: "CVE-2024-1", Status: "affected", KEV: true, CVSS: 9.8, CVSSv4Safety: "present",
				FixedBy: "v4.10.1", FixedByTarget: "ups/4.10.1.bin", Remediation: []string{"vendor_fix"}, Verdict: "risk accepted until 2027-01-01"}}}},
	}}}
	for _, path := range zeroFields(reflect.ValueOf(full), "Advisories") {
		t.Errorf("%s is zero in the full sample: set it, so that its JSON name is pinned", path)
	}
	for _, tc := range []struct {
		name string
		doc  any
		want string
	}{
		{"full", full, `{"gateway":"gw-1","devices":[{"device":"ups-1","priority":"act","reasons":["CVE-2024-1 is on CISA KEV"],` +
			`"matches":[{"advisory":"ICSA-24-123-01","revision":"2","title":"Acme UPS","tier":"model","confidence":"high",` +
			`"cves":[{"cve":"CVE-2024-1","status":"affected","kev":true,"cvss":9.8,"cvss_v4_safety":"present","fixed_by":"v4.10.1",` +
			`"fixed_by_target":"ups/4.10.1.bin","remediation":["vendor_fix"],"verdict":"risk accepted until 2027-01-01"}]}]}]}`},
		{"minimal", DeviceAdvisories{Device: "d", Priority: PriorityNone, Matches: []AdvisoryMatch{}},
			`{"device":"d","priority":"none","matches":[]}`},
		{"cve minimal", AdvisoryCVE{CVE: "CVE-2024-2", Status: "fixed"}, `{"cve":"CVE-2024-2","status":"fixed","kev":false}`},
	} {
		got, err := json.Marshal(tc.doc)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.want {
			t.Errorf("json.Marshal(%s) =\n%s\nwant\n%s", tc.name, got, tc.want)
		}
	}
}
