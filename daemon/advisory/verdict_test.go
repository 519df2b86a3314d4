// SPDX-License-Identifier: Apache-2.0

package advisory

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var verdictNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func TestVerdictValidate(t *testing.T) {
	ok := Verdict{Device: "plc1", Advisory: "ICSA-24-011-01", CVE: "CVE-2024-1234", Kind: VerdictNotAffected, Justification: "component_not_present"}
	with := func(f func(*Verdict)) Verdict { v := ok; f(&v); return v }
	tests := []struct {
		name string
		v    Verdict
		now  time.Time
		want string // "" valid, else a part of the error
	}{
		{"not affected", ok, verdictNow, ""},
		{"whole advisory", with(func(v *Verdict) { v.CVE = "" }), verdictNow, ""},
		{"every justification", with(func(v *Verdict) { v.Justification = "inline_mitigations_already_exist" }), verdictNow, ""},
		{"risk accepted", with(func(v *Verdict) { v.Kind, v.Justification, v.Until = VerdictRiskAccepted, "", "2027-06-30" }), verdictNow, ""},
		{"risk accepted until today", with(func(v *Verdict) { v.Kind, v.Justification, v.Until = VerdictRiskAccepted, "", "2026-05-01" }), verdictNow, ""},
		{"risk accepted 5 years", with(func(v *Verdict) { v.Kind, v.Justification, v.Until = VerdictRiskAccepted, "", "2031-04-30" }), verdictNow, ""},
		{"mitigated", with(func(v *Verdict) {
			v.Kind, v.Justification, v.Control = VerdictMitigated, "", "firewall rule FW-12: port 502 closed from the IT zone"
		}), verdictNow, ""},
		{"with note", with(func(v *Verdict) { v.Note = "checked with the vendor, ticket 4711" }), verdictNow, ""},
		{"no clock skips the date window", with(func(v *Verdict) { v.Kind, v.Justification, v.Until = VerdictRiskAccepted, "", "2020-01-01" }), time.Time{}, ""},

		{"bad device", with(func(v *Verdict) { v.Device = "plc 1" }), verdictNow, "device"},
		{"empty device", with(func(v *Verdict) { v.Device = "" }), verdictNow, "device"},
		{"bad advisory", with(func(v *Verdict) { v.Advisory = "ICSA/24" }), verdictNow, "advisory"},
		{"long advisory", with(func(v *Verdict) { v.Advisory = strings.Repeat("a", 129) }), verdictNow, "advisory"},
		{"bad cve", with(func(v *Verdict) { v.CVE = "CVE-24-1" }), verdictNow, "cve"},
		{"unknown kind", with(func(v *Verdict) { v.Kind = "ignored" }), verdictNow, "kind"},
		{"no kind", with(func(v *Verdict) { v.Kind = "" }), verdictNow, "kind"},
		{"unknown justification", with(func(v *Verdict) { v.Justification = "we_think_so" }), verdictNow, "justification"},
		{"not affected without justification", with(func(v *Verdict) { v.Justification = "" }), verdictNow, "needs justification"},
		{"not affected with until", with(func(v *Verdict) { v.Until = "2027-01-01" }), verdictNow, "until does not apply"},
		{"risk accepted without until", with(func(v *Verdict) { v.Kind, v.Justification = VerdictRiskAccepted, "" }), verdictNow, "needs until"},
		{"risk accepted with justification", with(func(v *Verdict) { v.Kind, v.Until = VerdictRiskAccepted, "2027-01-01" }), verdictNow, "justification does not apply"},
		{"until not a date", with(func(v *Verdict) { v.Kind, v.Justification, v.Until = VerdictRiskAccepted, "", "next year" }), verdictNow, "YYYY-MM-DD"},
		{"until impossible date", with(func(v *Verdict) { v.Kind, v.Justification, v.Until = VerdictRiskAccepted, "", "2027-02-30" }), verdictNow, "until"},
		{"until passed", with(func(v *Verdict) { v.Kind, v.Justification, v.Until = VerdictRiskAccepted, "", "2026-04-30" }), verdictNow, "passed"},
		{"until too far", with(func(v *Verdict) { v.Kind, v.Justification, v.Until = VerdictRiskAccepted, "", "2031-05-02" }), verdictNow, "5 years"},
		{"mitigated without control", with(func(v *Verdict) { v.Kind, v.Justification = VerdictMitigated, "" }), verdictNow, "needs control"},
		{"control too long", with(func(v *Verdict) {
			v.Kind, v.Justification, v.Control = VerdictMitigated, "", strings.Repeat("x", MaxControl+1)
		}), verdictNow, "limit"},
		{"control with newline", with(func(v *Verdict) { v.Kind, v.Justification, v.Control = VerdictMitigated, "", "a\nb" }), verdictNow, "control character"},
		{"blank control", with(func(v *Verdict) { v.Kind, v.Justification, v.Control = VerdictMitigated, "", "   " }), verdictNow, "blank"},
		{"note with newline", with(func(v *Verdict) { v.Note = "line\r\n" }), verdictNow, "control character"},
		{"note invalid utf-8", with(func(v *Verdict) { v.Note = "\xff" }), verdictNow, "invalid"},
		{"note too long", with(func(v *Verdict) { v.Note = strings.Repeat("n", MaxNote+1) }), verdictNow, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.v.Validate(tt.now)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate(%+v) = %v, want nil", tt.v, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate(%+v) = %v, want an error about %q", tt.v, err, tt.want)
			}
		})
	}
}

// revision returns a match of advisory A on plc1 at revision rev with two
// findings.
func revision(rev string, f1, f2 Finding) Match {
	return Match{Device: "plc1", Advisory: "A", Revision: rev, Findings: []Finding{f1, f2}}
}

func TestApplyVerdicts(t *testing.T) {
	aff1 := Finding{CVE: "CVE-2024-0001", Status: Affected, FixedBy: "2.1"}
	aff2 := Finding{CVE: "CVE-2024-0002", Status: Affected}
	fixed2 := Finding{CVE: "CVE-2024-0002", Status: Fixed}
	r1 := revision("1", aff1, aff2)
	na := Verdict{Device: "plc1", Advisory: "A", CVE: "CVE-2024-0001", Kind: VerdictNotAffected, Justification: "component_not_present"}.Pin(r1)
	whole := Verdict{Device: "plc1", Advisory: "A", Kind: VerdictMitigated, Control: "port 502 closed"}.Pin(r1)
	risk := Verdict{Device: "plc1", Advisory: "A", Kind: VerdictRiskAccepted, Until: "2026-05-01"}.Pin(r1)
	unpinned := Verdict{Device: "plc1", Advisory: "A", CVE: "CVE-2024-0002", Kind: VerdictMitigated, Control: "VLAN"}
	other := na
	other.Device = "plc2"

	type got struct {
		Verdict   VerdictKind
		Effective string
	}
	tests := []struct {
		name string
		m    Match
		vs   []Verdict
		revs map[string]string
		now  time.Time
		want [2]got
	}{
		{"no verdict", r1, nil, nil, verdictNow, [2]got{}},
		{"another device's verdict", r1, []Verdict{other}, nil, verdictNow, [2]got{}},
		{"CVE-scoped", r1, []Verdict{na}, nil, verdictNow,
			[2]got{{VerdictNotAffected, "not-affected (site): component_not_present"}, {}}},
		{"whole advisory", r1, []Verdict{whole}, nil, verdictNow,
			[2]got{{VerdictMitigated, "mitigated: port 502 closed"}, {VerdictMitigated, "mitigated: port 502 closed"}}},
		{"CVE verdict wins over the whole advisory's", r1, []Verdict{whole, na}, nil, verdictNow,
			[2]got{{VerdictNotAffected, "not-affected (site): component_not_present"}, {VerdictMitigated, "mitigated: port 502 closed"}}},
		{"risk accepted on its last day", r1, []Verdict{risk}, nil, verdictNow,
			[2]got{{VerdictRiskAccepted, "risk-accepted until 2026-05-01"}, {VerdictRiskAccepted, "risk-accepted until 2026-05-01"}}},
		{"risk acceptance expired", r1, []Verdict{risk}, nil, time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC),
			[2]got{{"", "risk-acceptance expired 2026-05-01"}, {"", "risk-acceptance expired 2026-05-01"}}},
		{"new revision, same substance", revision("2", aff1, aff2), []Verdict{whole}, nil, verdictNow,
			[2]got{{VerdictMitigated, "mitigated: port 502 closed"}, {VerdictMitigated, "mitigated: port 502 closed"}}},
		{"new revision from the revisions map", r1, []Verdict{na}, map[string]string{"A": "1.1"}, verdictNow,
			[2]got{{VerdictNotAffected, "not-affected (site): component_not_present"}, {}}},
		{"new revision, other fixed version", revision("2", Finding{CVE: "CVE-2024-0001", Status: Affected, FixedBy: "2.2"}, aff2), []Verdict{whole}, nil, verdictNow,
			[2]got{{"", "needs-review: advisory revised 1→2"}, {VerdictMitigated, "mitigated: port 502 closed"}}},
		{"new revision, status changed to under investigation", revision("2", Finding{CVE: "CVE-2024-0001", Status: UnderInvestigation, FixedBy: "2.1"}, aff2), []Verdict{na}, nil, verdictNow,
			[2]got{{"", "needs-review: advisory revised 1→2"}, {}}},
		{"new revision, new CVE not in the basis", revision("2", aff1, aff2), []Verdict{na, Verdict{Device: "plc1", Advisory: "A", Kind: VerdictMitigated, Control: "x"}.Pin(revision("1", aff1, fixed2))}, nil, verdictNow,
			[2]got{{VerdictNotAffected, "not-affected (site): component_not_present"}, {"", "needs-review: advisory revised 1→2"}}},
		{"CVE-scoped verdict only keeps its CVE", revision("2", aff1, aff2), []Verdict{Verdict{Device: "plc1", Advisory: "A", CVE: "CVE-2024-0002", Kind: VerdictMitigated, Control: "x"}.Pin(revision("1", aff1, fixed2))}, nil, verdictNow,
			[2]got{{}, {"", "needs-review: advisory revised 1→2"}}},
		{"unpinned verdict applies", revision("7", aff1, aff2), []Verdict{unpinned}, nil, verdictNow,
			[2]got{{}, {VerdictMitigated, "mitigated: VLAN"}}},
		{"fixed finding is left alone", revision("1", aff1, fixed2), []Verdict{whole}, nil, verdictNow,
			[2]got{{VerdictMitigated, "mitigated: port 502 closed"}, {}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []Match{tt.m}
			before := cmp.Diff(nil, in)
			out := ApplyVerdicts("plc1", in, tt.vs, tt.revs, tt.now)
			if len(out) != 1 || len(out[0].Findings) != 2 {
				t.Fatalf("ApplyVerdicts = %+v, want one match with two findings", out)
			}
			var g [2]got
			for i, f := range out[0].Findings {
				g[i] = got{f.Verdict, f.Effective}
			}
			if diff := cmp.Diff(tt.want, g); diff != "" {
				t.Errorf("ApplyVerdicts findings (-want +got):\n%s", diff)
			}
			if after := cmp.Diff(nil, in); after != before {
				t.Errorf("ApplyVerdicts changed its argument")
			}
		})
	}
}

func TestPrioritizeIgnoresNeutralised(t *testing.T) {
	it := Item{Device: "plc1", Zone: ZoneInternet, Criticality: CriticalityHigh}
	kev := Finding{CVE: "CVE-2024-0001", Status: Affected, KEV: true, CVSS: 9.8}
	low := Finding{CVE: "CVE-2024-0002", Status: Affected, CVSS: 3.1}
	ms := []Match{{Device: "plc1", Advisory: "A", Revision: "1", Findings: []Finding{kev, low}}}
	if p := Prioritize(it, ms); p.Decision != Act || p.CVE != kev.CVE {
		t.Fatalf("Prioritize(KEV finding) = %s on %s, want act on %s", p.Decision, p.CVE, kev.CVE)
	}
	v := Verdict{Device: "plc1", Advisory: "A", CVE: kev.CVE, Kind: VerdictMitigated, Control: "isolated cell"}.Pin(ms[0])
	if p := Prioritize(it, ApplyVerdicts("plc1", ms, []Verdict{v}, nil, verdictNow)); p.CVE == kev.CVE || p.Decision == Act {
		t.Errorf("Prioritize(KEV finding mitigated) = %s on %s, want the other finding to decide", p.Decision, p.CVE)
	}
	whole := Verdict{Device: "plc1", Advisory: "A", Kind: VerdictNotAffected, Justification: "component_not_present"}.Pin(ms[0])
	if p := Prioritize(it, ApplyVerdicts("plc1", ms, []Verdict{whole}, nil, verdictNow)); p.Decision != Track || p.CVE != "" {
		t.Errorf("Prioritize(every finding not affected by site verdict) = %s on %q, want track on none", p.Decision, p.CVE)
	}
	// A revision that changes the KEV finding's fix brings it back.
	ms2 := []Match{{Device: "plc1", Advisory: "A", Revision: "2", Findings: []Finding{{CVE: kev.CVE, Status: Affected, KEV: true, CVSS: 9.8, FixedBy: "3.0"}, low}}}
	if p := Prioritize(it, ApplyVerdicts("plc1", ms2, []Verdict{v}, nil, verdictNow)); p.Decision != Act || p.CVE != kev.CVE {
		t.Errorf("Prioritize(verdict needing review) = %s on %s, want act on %s again", p.Decision, p.CVE, kev.CVE)
	}
}
