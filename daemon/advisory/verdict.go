// SPDX-License-Identifier: Apache-2.0

package advisory

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// VerdictKind is what a site decided about an advisory on a device.
type VerdictKind string

// Verdict kinds. The strings are stable: they are stored, signed in remote
// commands and published.
const (
	VerdictNotAffected  VerdictKind = "not_affected"  // with a VEX justification
	VerdictRiskAccepted VerdictKind = "risk_accepted" // until a date
	VerdictMitigated    VerdictKind = "mitigated"     // by a named compensating control
)

// Justifications are the CSAF 2.0 / VEX flag labels a not_affected verdict
// gives as its reason.
var Justifications = []string{
	"component_not_present",
	"vulnerable_code_not_present",
	"vulnerable_code_cannot_be_controlled_by_adversary",
	"vulnerable_code_not_in_execute_path",
	"inline_mitigations_already_exist",
}

// MaxRiskAcceptance is how far ahead a risk acceptance may run: a decision
// that outlives several plant shutdowns should be taken again.
const MaxRiskAcceptance = 5 * 365 * 24 * time.Hour

// Lengths of the free-text fields of a verdict.
const (
	MaxControl = 200
	MaxNote    = 500
)

// Verdict is a site's triage decision on one advisory for one device:
// on one CVE of it, or (CVE "") on every CVE the advisory has for the
// device. It is recorded against the advisory revision the engineer saw,
// with the findings of that revision (Basis), so that a later revision
// is applied only if it says the same about the device (see ApplyVerdicts).
type Verdict struct {
	Device        string      `json:"device"`
	Advisory      string      `json:"advisory"`      // CSAF tracking id
	CVE           string      `json:"cve,omitempty"` // "" for every CVE of the advisory
	Kind          VerdictKind `json:"kind"`
	Justification string      `json:"justification,omitempty"` // not_affected: a VEX flag label
	Until         string      `json:"until,omitempty"`         // risk_accepted: last day, YYYY-MM-DD (UTC)
	Control       string      `json:"control,omitempty"`       // mitigated: the compensating control
	Revision      string      `json:"revision,omitempty"`      // advisory revision recorded against; "" if not matched then
	Basis         []Basis     `json:"basis,omitempty"`         // the findings of that revision
	Actor         string      `json:"actor,omitempty"`
	At            time.Time   `json:"at"`
	Note          string      `json:"note,omitempty"`
}

// Basis is what a revision of an advisory said about one CVE for the
// device when a verdict was recorded: what a new revision must still say
// for the verdict to hold.
type Basis struct {
	CVE     string `json:"cve"`
	Status  Status `json:"status"`
	FixedBy string `json:"fixed_by,omitempty"`
}

var (
	deviceIDRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
	advisoryIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$`)
	cveRE        = regexp.MustCompile(`^CVE-[0-9]{4}-[0-9]{4,12}$`)
	dateRE       = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)
)

// UntilEnd returns the instant a risk acceptance until date ends: the end
// of that day in UTC.
func UntilEnd(date string) (time.Time, error) {
	if !dateRE.MatchString(date) {
		return time.Time{}, fmt.Errorf("until %q: want a date YYYY-MM-DD", date)
	}
	t, err := time.Parse(time.DateOnly, date)
	if err != nil {
		return time.Time{}, fmt.Errorf("until %q: %w", date, err)
	}
	return t.AddDate(0, 0, 1), nil
}

// Validate checks a verdict as recorded: identifiers, the kind and the
// field it requires (and only that one), lengths, and printable text
// without line breaks. With a non-zero now it also checks that a risk
// acceptance runs into the future and at most MaxRiskAcceptance ahead; a
// zero now skips the checks that need a clock.
func (v Verdict) Validate(now time.Time) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !deviceIDRE.MatchString(v.Device) {
		bad("device %q: want 1-64 of [A-Za-z0-9._:-]", v.Device)
	}
	if !advisoryIDRE.MatchString(v.Advisory) {
		bad("advisory %q: want a tracking id, 1-128 of [A-Za-z0-9._:+-]", v.Advisory)
	}
	if v.CVE != "" && !cveRE.MatchString(v.CVE) {
		bad("cve %q: want CVE-YYYY-NNNN", v.CVE)
	}
	set := map[string]bool{"justification": v.Justification != "", "until": v.Until != "", "control": v.Control != ""}
	want := ""
	switch v.Kind {
	case VerdictNotAffected:
		want = "justification"
		if v.Justification != "" && !slices.Contains(Justifications, v.Justification) {
			bad("justification %q: want one of %s", v.Justification, strings.Join(Justifications, ", "))
		}
	case VerdictRiskAccepted:
		want = "until"
		if v.Until != "" {
			end, err := UntilEnd(v.Until)
			switch {
			case err != nil:
				errs = append(errs, err)
			case !now.IsZero() && !end.After(now):
				bad("until %s: the date has passed", v.Until)
			case !now.IsZero() && end.Sub(now) > MaxRiskAcceptance+24*time.Hour:
				bad("until %s: more than 5 years ahead", v.Until)
			}
		}
	case VerdictMitigated:
		want = "control"
		if err := text("control", v.Control, MaxControl); err != nil {
			errs = append(errs, err)
		}
	default:
		bad("kind %q: want %s, %s or %s", v.Kind, VerdictNotAffected, VerdictRiskAccepted, VerdictMitigated)
	}
	for _, name := range []string{"justification", "until", "control"} {
		switch {
		case want == "":
		case name == want && !set[name]:
			bad("%s needs %s", v.Kind, name)
		case name != want && set[name]:
			bad("%s does not apply to %s", name, v.Kind)
		}
	}
	if v.Note != "" {
		if err := text("note", v.Note, MaxNote); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("verdict on %s for %s: %w", v.Advisory, v.Device, err)
	}
	return nil
}

// text checks a free-text field: printable, no line breaks, at most max bytes.
func text(name, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s: %d bytes, limit %d", name, len(s), max)
	}
	if strings.TrimSpace(s) == "" && s != "" {
		return fmt.Errorf("%s: blank", name)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029' || r == '\ufffd' {
			return fmt.Errorf("%s: control character or invalid UTF-8 %q", name, r)
		}
	}
	return nil
}

// Key is the verdict's identity: one verdict per device, advisory and CVE.
func (v Verdict) Key() string { return v.Device + "/" + v.Advisory + "/" + v.CVE }

// Pin records m, the match the engineer decided on, as the verdict's
// revision and basis. A verdict for one CVE keeps that CVE's finding; one
// for the whole advisory keeps every finding.
func (v Verdict) Pin(m Match) Verdict {
	v.Revision, v.Basis = m.Revision, nil
	for _, f := range m.Findings {
		if v.CVE == "" || f.CVE == v.CVE {
			v.Basis = append(v.Basis, Basis{CVE: f.CVE, Status: f.Status, FixedBy: f.FixedBy})
		}
	}
	return v
}

// Effective statuses that are not a verdict's own label.
const (
	EffectiveNeedsReview = "needs-review"
	EffectiveExpired     = "risk-acceptance expired"
)

// ApplyVerdicts returns the device's matches with the site's verdicts
// applied to their affected and under-investigation findings (the ones
// Prioritize counts). A CVE's own verdict wins over a verdict on the whole
// advisory. revisions gives each advisory's current revision (by tracking
// id); where it has none, the match's own Revision is current.
//
// A finding a verdict applies to gets Verdict (the kind) and Effective:
// "not-affected (site): JUSTIFICATION", "risk-accepted until DATE" or
// "mitigated: CONTROL". A verdict that does not apply leaves Verdict
// empty, so the device counts as affected again, and says why in
// Effective:
//   - a risk acceptance past its date: "risk-acceptance expired DATE";
//   - a verdict recorded against revision R when the advisory is now at
//     R2 and R2 says something else about the CVE for the device (another
//     status or another fixed version, or a CVE the basis does not hold):
//     "needs-review: advisory revised R→R2". A new revision that changes
//     only the revision number (or other CVEs) keeps the verdict.
//
// ApplyVerdicts does not change its arguments.
func ApplyVerdicts(device string, ms []Match, vs []Verdict, revisions map[string]string, now time.Time) []Match {
	mine := map[string]Verdict{} // advisory/cve -> verdict
	for _, v := range vs {
		if v.Device == device {
			mine[v.Advisory+"/"+v.CVE] = v
		}
	}
	if len(mine) == 0 {
		return ms
	}
	out := make([]Match, len(ms))
	for i, m := range ms {
		out[i] = m
		cur := cmpOr(revisions[m.Advisory], m.Revision)
		var fs []Finding
		for j, f := range m.Findings {
			if f.Status != Affected && f.Status != UnderInvestigation {
				continue
			}
			v, ok := mine[m.Advisory+"/"+f.CVE]
			if !ok {
				v, ok = mine[m.Advisory+"/"]
			}
			if !ok {
				continue
			}
			if fs == nil {
				fs = slices.Clone(m.Findings)
				out[i].Findings = fs
			}
			fs[j].Verdict, fs[j].Effective = v.apply(f, cur, now)
		}
	}
	return out
}

// apply decides whether v holds for finding f of the advisory at
// revision cur.
func (v Verdict) apply(f Finding, cur string, now time.Time) (VerdictKind, string) {
	if v.Revision != "" && cur != v.Revision {
		i := slices.IndexFunc(v.Basis, func(b Basis) bool { return b.CVE == f.CVE })
		if i < 0 || v.Basis[i].Status != f.Status || v.Basis[i].FixedBy != f.FixedBy {
			return "", fmt.Sprintf("%s: advisory revised %s→%s", EffectiveNeedsReview, v.Revision, cur)
		}
	}
	switch v.Kind {
	case VerdictNotAffected:
		return v.Kind, "not-affected (site): " + v.Justification
	case VerdictRiskAccepted:
		if end, err := UntilEnd(v.Until); err != nil || !now.Before(end) {
			return "", EffectiveExpired + " " + v.Until
		}
		return v.Kind, "risk-accepted until " + v.Until
	case VerdictMitigated:
		return v.Kind, "mitigated: " + v.Control
	}
	return "", ""
}
