// SPDX-License-Identifier: Apache-2.0

package advisory

import (
	"fmt"
	"slices"
	"strings"
)

// Decision is what to do about a device's advisories.
type Decision string

// Decisions, most urgent first. The names are CISA's SSVC outcomes.
const (
	Act    Decision = "act"    // patch or mitigate now, out of the normal cycle
	Attend Decision = "attend" // schedule it soon, ahead of routine work
	Track  Decision = "track"  // the normal update cycle
)

// Exploitation, Exposure and Impact are the decision points.
type (
	Exploitation string
	Exposure     string
	Impact       int
)

// Decision point values.
const (
	ExploitNone   Exploitation = "none"
	ExploitPoC    Exploitation = "poc"
	ExploitActive Exploitation = "active"

	ExposureSmall      Exposure = "small"
	ExposureControlled Exposure = "controlled"
	ExposureOpen       Exposure = "open"
)

// Impacts, from the asset's criticality raised by a safety impact or a
// critical score.
const (
	ImpactLow Impact = iota
	ImpactMedium
	ImpactHigh
	ImpactVeryHigh
)

func (i Impact) String() string {
	return [...]string{"low", "medium", "high", "very high"}[min(max(int(i), 0), 3)]
}

// rule is one row of the decision table. An empty list matches any value.
type rule struct {
	exploit     []Exploitation
	exposure    []Exposure
	automatable string // "yes", "no" or "" for either
	minImpact   Impact
	decision    Decision
}

// decisionTable is CISA's SSVC deployer tree, simplified to three outcomes
// (CISA, "Stakeholder-Specific Vulnerability Categorization Guide", 2022,
// and CERT/CC's SSVC "Deployer" decision model: exploitation, system
// exposure, automatable, human/mission impact). The first row that matches
// decides; the last row matches everything.
var decisionTable = []rule{
	//  exploitation                              exposure                                          automatable  impact at least  decision
	{[]Exploitation{ExploitActive}, []Exposure{ExposureOpen, ExposureControlled}, "", ImpactMedium, Act},
	{[]Exploitation{ExploitActive}, nil, "", ImpactHigh, Act},
	{[]Exploitation{ExploitActive}, nil, "", ImpactLow, Attend},
	{[]Exploitation{ExploitPoC}, []Exposure{ExposureOpen}, "yes", ImpactMedium, Act},
	{[]Exploitation{ExploitPoC}, []Exposure{ExposureOpen}, "", ImpactLow, Attend},
	{[]Exploitation{ExploitPoC}, []Exposure{ExposureControlled}, "", ImpactHigh, Attend},
	{[]Exploitation{ExploitNone}, []Exposure{ExposureOpen}, "yes", ImpactHigh, Attend},
	{nil, nil, "", ImpactVeryHigh, Attend},
	{nil, nil, "", ImpactLow, Track},
}

// Inputs are the decision points for one finding on one device.
type Inputs struct {
	Exploitation Exploitation
	Exposure     Exposure
	Automatable  bool
	Impact       Impact
}

func decide(in Inputs) (Decision, int) {
	for i, r := range decisionTable {
		if (len(r.exploit) == 0 || slices.Contains(r.exploit, in.Exploitation)) &&
			(len(r.exposure) == 0 || slices.Contains(r.exposure, in.Exposure)) &&
			(r.automatable == "" || (r.automatable == "yes") == in.Automatable) &&
			in.Impact >= r.minImpact {
			return r.decision, i
		}
	}
	return Track, len(decisionTable) - 1
}

// Priority is the decision for a device, with the reasons an operator reads.
type Priority struct {
	Decision Decision
	Reasons  []string
	Inputs   Inputs
	CVE      string // the finding that decided
	Advisory string
}

var rankDecision = map[Decision]int{Act: 0, Attend: 1, Track: 2}

// Prioritize decides how urgently a device needs attention from its
// matches: the most urgent decision over every finding that is affected or
// under investigation and not neutralised by a site verdict (Finding.Verdict,
// see ApplyVerdicts). A triage match (unconfirmed) decides at most
// attend. A device with nothing affected is tracked.
func Prioritize(it Item, ms []Match) Priority {
	best := Priority{Decision: Track, Reasons: []string{"no affected finding"}}
	first := true
	for _, m := range ms {
		for _, f := range m.Findings {
			if (f.Status != Affected && f.Status != UnderInvestigation) || f.Verdict != "" {
				continue // a site verdict that applies neutralises the finding
			}
			in, reasons := inputs(it, f)
			d, row := decide(in)
			reasons = append(reasons, fmt.Sprintf("decision table row %d", row+1))
			if m.Tier == TierTriage && d == Act {
				d = Attend
				reasons = append(reasons, "match unconfirmed (triage): at most attend")
			}
			p := Priority{Decision: d, Reasons: reasons, Inputs: in, CVE: f.CVE, Advisory: m.Advisory}
			if first || rankDecision[d] < rankDecision[best.Decision] || (d == best.Decision && in.Impact > best.Inputs.Impact) {
				best, first = p, false
			}
		}
	}
	return best
}

// inputs derives the decision points of a finding on a device.
func inputs(it Item, f Finding) (Inputs, []string) {
	var in Inputs
	var why []string
	switch {
	case f.KEV:
		in.Exploitation = ExploitActive
		why = append(why, fmt.Sprintf("%s is on CISA KEV (added %s)", f.CVE, f.KEVAdded))
		if f.Ransomware {
			why = append(why, "used in ransomware campaigns")
		}
	case f.Exploit != "" && exploitedText(f.Exploit):
		in.Exploitation = ExploitActive
		why = append(why, "advisory threat exploit_status: "+f.Exploit)
	case f.Exploit != "":
		in.Exploitation = ExploitPoC
		why = append(why, "advisory threat exploit_status: "+f.Exploit)
	case vectorHas(f.Vector, "E:P") || vectorHas(f.Vector, "E:F") || vectorHas(f.Vector, "E:H") || vectorHas(f.CVSS4, "E:P") || vectorHas(f.CVSS4, "E:A"):
		in.Exploitation = ExploitPoC
		why = append(why, "CVSS exploit maturity: exploit code exists")
		if vectorHas(f.CVSS4, "E:A") {
			in.Exploitation = ExploitActive
			why[len(why)-1] = "CVSS 4.0 exploit maturity: attacked"
		}
	default:
		in.Exploitation = ExploitNone
		why = append(why, "no known exploitation")
	}
	switch it.Zone {
	case ZoneInternet:
		in.Exposure = ExposureOpen
	case ZoneIsolated:
		in.Exposure = ExposureSmall
	default: // dmz, control, and a zone not configured: reachable, with restrictions
		in.Exposure = ExposureControlled
	}
	why = append(why, fmt.Sprintf("zone %s: exposure %s", cmpOr(string(it.Zone), "unset"), in.Exposure))
	v := cmpOr(f.CVSS4, f.Vector)
	in.Automatable = vectorHas(v, "AV:N") && vectorHas(v, "AC:L") && vectorHas(v, "PR:N") && vectorHas(v, "UI:N")
	if in.Automatable {
		why = append(why, "automatable: network, low complexity, no privileges, no user")
	}
	switch it.Criticality {
	case CriticalityHigh:
		in.Impact = ImpactHigh
	case CriticalityLow:
		in.Impact = ImpactLow
	default:
		in.Impact = ImpactMedium
	}
	why = append(why, fmt.Sprintf("criticality %s", cmpOr(string(it.Criticality), "unset (medium)")))
	switch s := safety(f.CVSS4); {
	case s != "":
		in.Impact++
		why = append(why, "CVSS 4.0 safety: "+s)
	case f.CVSS >= 9.0:
		in.Impact++
		why = append(why, fmt.Sprintf("CVSS %.1f critical", f.CVSS))
	case f.CVSS > 0 && f.CVSS < 4.0:
		in.Impact--
		why = append(why, fmt.Sprintf("CVSS %.1f low", f.CVSS))
	default:
		if f.CVSS > 0 {
			why = append(why, fmt.Sprintf("CVSS %.1f", f.CVSS))
		}
	}
	in.Impact = min(max(in.Impact, ImpactLow), ImpactVeryHigh)
	return in, why
}

// safety reads the safety impact of a CVSS 4.0 vector: the Safety
// supplemental metric (S:P), a safety-level modified subsequent impact
// (MSI:S, MSA:S), or a high subsequent-system integrity or availability
// impact, which for a controller is the process it drives.
func safety(v4 string) string {
	switch {
	case vectorHas(v4, "S:P"):
		return "safety supplemental metric present (S:P)"
	case vectorHas(v4, "MSI:S") || vectorHas(v4, "MSA:S"):
		return "subsequent system safety impact (MSI/MSA:S)"
	case vectorHas(v4, "SI:H") || vectorHas(v4, "SA:H"):
		return "high subsequent system integrity/availability impact (SI/SA:H)"
	}
	return ""
}

func vectorHas(v, metric string) bool {
	for _, m := range strings.Split(v, "/") {
		if m == metric {
			return true
		}
	}
	return false
}

func exploitedText(s string) bool {
	l := strings.ToLower(s)
	return (strings.Contains(l, "exploited") || strings.Contains(l, "active")) && !strings.Contains(l, "not ") && !strings.Contains(l, "no known")
}
