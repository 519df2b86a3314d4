// SPDX-License-Identifier: Apache-2.0

package advisory

import (
	"slices"
	"sort"
	"testing"
)

// evalSet is an inventory of real products named in the 2024 CISA ICS
// advisories, each with the advisories a person reading them finds for it
// and why. The not-affected entries are real products at a version the
// advisory excludes, or products no 2024 advisory names.
var evalSet = []struct {
	item Item
	want []string // advisory ids expected, sorted
	why  string
}{
	{Item{Device: "rtu1", Vendor: "Siemens", Product: "SICAM A8000 CP-8031", Model: "6MF2803-1AA00", Firmware: "CPCI85 V05.10"},
		[]string{"ICSA-24-011-08"}, "ICSA-24-011-08 lists order number 6MF2803-1AA00, all versions < CPCI85 V05.20"},
	{Item{Device: "rtu1-fixed", Vendor: "Siemens", Product: "SICAM A8000 CP-8031", Model: "6MF2803-1AA00", Firmware: "CPCI85 V05.30"},
		[]string{}, "V05.30 is past every fixed version of the CP-8031 advisories"},
	{Item{Device: "rtls", Vendor: "Siemens AG", Product: "SIMATIC RTLS Gateway RTLS4030G", Model: "6GT2701-5DB23", Firmware: "V3.0.1"},
		[]string{"ICSA-24-046-03"}, "ICSA-24-046-03: RTLS4030G CMIIT 6GT2701-5DB23, all versions"},
	{Item{Device: "cam1", Vendor: "MOBOTIX AG", Product: "P3 D24M", Firmware: "MX-V4.1.1.7"},
		[]string{"ICSA-24-235-03"}, "ICSA-24-235-03: P3 Firmware versions installed on D24M; 4.1.x is known_affected"},
	{Item{Device: "cam2", Vendor: "Mobotix", Product: "P3 D24M", Firmware: "MX-V4.7.2.18"},
		[]string{"ICSA-24-235-03"}, "ICSA-24-235-03: MX-V4.7.2.18 on D24M is listed as fixed"},
	{Item{Device: "ftsp", Vendor: "Rockwell Automation, Inc.", Product: "FactoryTalk Service Platform", Firmware: "6.3"},
		[]string{"ICSA-24-030-06"}, "ICSA-24-030-06: FactoryTalk Service Platform <v6.4"},
	{Item{Device: "easergy", Vendor: "Schneider Electric SE", Product: "Easergy Studio", Firmware: "9.3.4"},
		[]string{"ICSA-24-011-05"}, "ICSA-24-011-05: Easergy Studio <v9.3.5"},
	{Item{Device: "easergy-new", Vendor: "Schneider Electric", Product: "Easergy Studio", Firmware: "9.3.5"},
		[]string{}, "9.3.5 is the fixed version of ICSA-24-011-05: not affected"},
	{Item{Device: "softgot", Vendor: "Mitsubishi Electric Corporation", Product: "GT SoftGOT2000", Firmware: "1.280Q"},
		[]string{"ICSA-24-004-02", "ICSA-24-135-04"}, "ICSA-24-004-02: GT SoftGOT2000 >=1.275M|<1.290C; ICSA-24-135-04: GT SoftGOT2000 Version1, all versions"},
	{Item{Device: "softgot-new", Vendor: "Mitsubishi Electric", Product: "GT SoftGOT2000", Firmware: "1.290C"},
		[]string{"ICSA-24-135-04"}, "1.290C is outside ICSA-24-004-02 (>=1.275M|<1.290C), but ICSA-24-135-04 names \"GT SoftGOT2000 Version1\", all versions: 1.290C is version 1"},
	{Item{Device: "istar", Vendor: "Johnson Controls, Inc.", Product: "Software House iStar Pro Door Controller", Firmware: "6.6"},
		[]string{"ICSA-24-158-04"}, "ICSA-24-158-04 (vendor written \"Johnson Controls Inc.\"): iStar Pro, all versions"},
	{Item{Device: "assetsuite", Vendor: "Hitachi Energy", Product: "Asset Suite", Firmware: "9.6.3.12"},
		[]string{"ICSA-24-095-01"}, "ICSA-24-095-01: Asset Suite <9.6.3.13"},
	{Item{Device: "vision280", Vendor: "Unitronics", Product: "Vision 280", Firmware: "4.4"},
		[]string{"ICSA-24-109-01"}, "ICSA-24-109-01: Vision 280, all versions"},
	{Item{Device: "rsafety", Vendor: "Mitsubishi Electric", Product: "MELSEC iQ-R Series Safety CPU R08SFCPU", Model: "R08SFCPU", Firmware: "30"},
		[]string{"ICSA-24-044-01"}, "ICSA-24-044-01: MELSEC iQ-R Safety CPU R08SFCPU, all versions (model in the name)"},
	{Item{Device: "wincc75", Vendor: "Siemens", Product: "SIMATIC WinCC V7.5", Firmware: "V7.5 SP2 Update 14"},
		[]string{"ICSA-24-046-12", "ICSA-24-102-02", "ICSA-24-137-13", "ICSA-24-193-16", "ICSA-24-256-08", "ICSA-24-256-14"}, "WinCC V7.5 below SP2 Update 15 is in six 2024 advisories: 24-046-12 (<Update 15), 24-102-02 (<Update 16), 24-193-16 (<Update 17), 24-256-14 (<Update 18), 24-137-13 and 24-256-08 (all versions)"},
	{Item{Device: "cl5380", Vendor: "Rockwell Automation", Product: "CompactLogix 5380", Firmware: "V35.011"},
		[]string{"ICSA-24-107-03", "ICSA-24-226-09", "ICSA-24-226-10"}, "ICSA-24-107-03: CompactLogix 5380 V35.011; ICSA-24-226-09 and -10: CompactLogix 5380 (5069-L3z) fixed in v36.011/v35.013/v34.014, so V35.011 is affected"},
	{Item{Device: "ppb", Vendor: "CyberPower", Product: "PowerPanel Business", Firmware: "4.9.0"},
		[]string{"ICSA-24-123-01"}, "ICSA-24-123-01: PowerPanel Business <=4.9.0"},
	{Item{Device: "unknown-vendor", Vendor: "Acme Widgets", Product: "IO16", Firmware: "2.4.1"},
		[]string{}, "no 2024 advisory names Acme"},
}

// TestEval matches the evaluation inventory against the 344 advisories of
// 2024 and compares with what a person reading them finds.
func TestEval(t *testing.T) {
	x := NewIndex(loadCorpus(t), loadKEV(t))
	for _, e := range evalSet {
		ms := x.Match(e.item)
		var got []string
		for _, m := range ms {
			got = append(got, m.Advisory)
			if len(m.Evidence) == 0 || m.Confidence == "" {
				t.Errorf("%s: %s: match without evidence or confidence", e.item.Device, m.Advisory)
			}
		}
		sort.Strings(got)
		if !slices.Equal(got, e.want) {
			t.Errorf("Match(%s) = %v, want %v (%s)", e.item.Device, got, e.want, e.why)
		}
	}
	// Details a person checks: tier and status.
	for _, c := range []struct {
		dev, adv string
		tier     Tier
		status   Status
		fixedBy  string
	}{
		{"rtu1", "ICSA-24-011-08", TierModel, Affected, "CPCI85 V05.20"},
		{"rtls", "ICSA-24-046-03", TierModel, Affected, ""},
		{"cam2", "ICSA-24-235-03", TierName, Fixed, ""},
		{"rsafety", "ICSA-24-044-01", TierModel, Affected, ""},
		{"wincc75", "ICSA-24-046-12", TierName, Affected, "V7.5 SP2 Update 15"},
		{"istar", "ICSA-24-158-04", TierName, Affected, ""},
	} {
		i := slices.IndexFunc(evalSet, func(e struct {
			item Item
			want []string
			why  string
		}) bool {
			return e.item.Device == c.dev
		})
		ms := x.Match(evalSet[i].item)
		j := slices.IndexFunc(ms, func(m Match) bool { return m.Advisory == c.adv })
		if j < 0 {
			t.Errorf("%s: no match for %s", c.dev, c.adv)
			continue
		}
		m := ms[j]
		if m.Tier != c.tier || m.Findings[0].Status != c.status || m.Findings[0].FixedBy != c.fixedBy {
			t.Errorf("%s %s: tier %v status %s fixed by %q, want %v %s %q", c.dev, c.adv, m.Tier, m.Findings[0].Status, m.Findings[0].FixedBy, c.tier, c.status, c.fixedBy)
		}
	}
}
