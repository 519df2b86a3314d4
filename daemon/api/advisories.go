// SPDX-License-Identifier: Apache-2.0

package api

// Advisory priorities (DeviceAdvisories.Priority), most urgent first: the
// SSVC-style decision of daemon/advisory, and none for a device no
// advisory concerns.
const (
	PriorityAct    = "act"    // patch or mitigate now, out of the normal cycle
	PriorityAttend = "attend" // schedule it soon, ahead of routine work
	PriorityTrack  = "track"  // the normal update cycle
	PriorityNone   = "none"   // no advisory concerns the device
)

// AdvisoryPriorities lists the values of DeviceAdvisories.Priority.
func AdvisoryPriorities() []string {
	return []string{PriorityAct, PriorityAttend, PriorityTrack, PriorityNone}
}

// AdvisoryStatuses lists the values of AdvisoryCVE.Status.
func AdvisoryStatuses() []string {
	return []string{"affected", "fixed", "not_affected", "under_investigation"}
}

// Advisories is every device's advisories, served to fieldgatectl
// advisories (GET /v1/advisories).
type Advisories struct {
	// Gateway is the gateway's id.
	Gateway string `json:"gateway"`
	// Devices holds one entry per configured device, in configuration
	// order.
	Devices []DeviceAdvisories `json:"devices"`
}

// DeviceAdvisories is what the gateway's advisories say about one device:
// published retained on {prefix}/advisories/{device_id} when it changes.
// It carries no clock, so that an unchanged result is the same document.
type DeviceAdvisories struct {
	// Device is the device's id.
	Device string `json:"device"`
	// Priority is how urgently the device needs attention
	// (AdvisoryPriorities).
	Priority string `json:"priority"`
	// Reasons are the decision's reasons, one sentence each.
	Reasons []string `json:"reasons,omitempty"`
	// Matches lists the advisories that concern the device, by advisory id.
	Matches []AdvisoryMatch `json:"matches"`
}

// AdvisoryMatch is one advisory matched to a device.
type AdvisoryMatch struct {
	// Advisory is the CSAF tracking id, e.g. "ICSA-24-011-08".
	Advisory string `json:"advisory"`
	// Revision is the CSAF tracking version.
	Revision string `json:"revision"`
	// Title is the advisory's title.
	Title string `json:"title"`
	// Tier is how the device was matched: identifier (CPE or PURL), model,
	// name or triage.
	Tier string `json:"tier"`
	// Confidence is high, medium, low or triage.
	Confidence string `json:"confidence"`
	// CVEs is what the advisory says about each of its CVEs for the device.
	CVEs []AdvisoryCVE `json:"cves"`
}

// AdvisoryCVE is one CVE of a matched advisory, for the device.
type AdvisoryCVE struct {
	// CVE is the CVE id.
	CVE string `json:"cve"`
	// Status is affected, fixed, not_affected or under_investigation
	// (AdvisoryStatuses). fixed also when the device was affected and now
	// runs a version outside the advisory's affected range.
	Status string `json:"status"`
	// KEV says the CVE is on CISA's Known Exploited Vulnerabilities
	// catalog.
	KEV bool `json:"kev"`
	// CVSS is the CVSS base score, 0 when the advisory gives none.
	CVSS float64 `json:"cvss,omitempty"`
	// CVSSv4Safety is the CVSS 4.0 Safety supplemental metric (present,
	// negligible) when the advisory gives a 4.0 vector with it.
	CVSSv4Safety string `json:"cvss_v4_safety,omitempty"`
	// FixedBy is the firmware version the vendor fix names.
	FixedBy string `json:"fixed_by,omitempty"`
	// FixedByTarget is the TUF target for the device that fixes the CVE:
	// its version meets FixedBy, or its signed metadata lists the CVE.
	FixedByTarget string `json:"fixed_by_target,omitempty"`
	// Remediation lists the categories of the advisory's remediations
	// that apply: vendor_fix, mitigation, workaround, none_available,
	// no_fix_planned.
	Remediation []string `json:"remediation,omitempty"`
	// Verdict is the site's triage verdict on the CVE for the device, when
	// one is recorded.
	Verdict string `json:"verdict,omitempty"`
}
