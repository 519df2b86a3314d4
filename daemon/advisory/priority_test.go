// SPDX-License-Identifier: Apache-2.0

package advisory

import "testing"

// TestDecisionTable hits every row of the decision table with an input that
// the row, and no earlier row, decides.
func TestDecisionTable(t *testing.T) {
	rows := []struct {
		in   Inputs
		want Decision
	}{
		{Inputs{ExploitActive, ExposureControlled, false, ImpactMedium}, Act},
		{Inputs{ExploitActive, ExposureSmall, false, ImpactHigh}, Act},
		{Inputs{ExploitActive, ExposureSmall, false, ImpactMedium}, Attend},
		{Inputs{ExploitPoC, ExposureOpen, true, ImpactMedium}, Act},
		{Inputs{ExploitPoC, ExposureOpen, false, ImpactHigh}, Attend},
		{Inputs{ExploitPoC, ExposureControlled, false, ImpactHigh}, Attend},
		{Inputs{ExploitNone, ExposureOpen, true, ImpactHigh}, Attend},
		{Inputs{ExploitNone, ExposureSmall, false, ImpactVeryHigh}, Attend},
		{Inputs{ExploitNone, ExposureControlled, true, ImpactHigh}, Track},
	}
	if len(rows) != len(decisionTable) {
		t.Fatalf("%d test rows for %d table rows", len(rows), len(decisionTable))
	}
	for i, r := range rows {
		d, row := decide(r.in)
		if d != r.want || row != i {
			t.Errorf("decide(%+v) = %s by row %d, want %s by row %d", r.in, d, row+1, r.want, i+1)
		}
	}
}

func TestPrioritize(t *testing.T) {
	f := Finding{CVE: "CVE-2024-0001", Status: Affected, CVSS: 9.8, Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}
	kev := f
	kev.KEV, kev.KEVAdded = true, "2024-05-01"
	v4 := Finding{CVE: "CVE-2024-0002", Status: Affected, CVSS: 6.5, Vector: "CVSS:3.1/AV:L/AC:H/PR:L/UI:N/S:U/C:H/I:H/A:H",
		CVSS4: "CVSS:4.0/AV:L/AC:H/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:N/SI:H/SA:H/S:P"}
	for _, c := range []struct {
		name string
		it   Item
		f    Finding
		tier Tier
		want Decision
	}{
		{"kev on control network", Item{Zone: ZoneControl, Criticality: CriticalityMedium}, kev, TierModel, Act},
		{"kev isolated low criticality", Item{Zone: ZoneIsolated, Criticality: CriticalityLow}, kev, TierModel, Attend}, // critical score raises low to medium; isolated acts from high
		{"no exploit, critical score, internet, automatable", Item{Zone: ZoneInternet, Criticality: CriticalityMedium}, f, TierModel, Attend},
		{"no exploit, control network", Item{Zone: ZoneControl, Criticality: CriticalityMedium}, f, TierModel, Track},
		{"safety metric on a critical asset", Item{Zone: ZoneIsolated, Criticality: CriticalityHigh}, v4, TierName, Attend},
		{"kev but triage", Item{Zone: ZoneInternet, Criticality: CriticalityHigh}, kev, TierTriage, Attend},
		{"fixed", Item{Zone: ZoneInternet, Criticality: CriticalityHigh}, Finding{CVE: "x", Status: Fixed, KEV: true}, TierModel, Track},
	} {
		p := Prioritize(c.it, []Match{{Advisory: "A", Tier: c.tier, Findings: []Finding{c.f}}})
		if p.Decision != c.want || len(p.Reasons) == 0 {
			t.Errorf("%s: Prioritize = %s %v, want %s", c.name, p.Decision, p.Reasons, c.want)
		}
	}
}
