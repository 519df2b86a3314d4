// SPDX-License-Identifier: Apache-2.0

// Package advisory matches security advisories against a device inventory.
//
// It reads CSAF 2.0 advisory documents (ParseCSAF) and the CISA Known
// Exploited Vulnerabilities catalog (ParseKEV), and answers, for every
// inventory Item, which advisory concerns it, how sure the match is, what
// the document says about each CVE for that product (affected, fixed, not
// affected, under investigation), which remediation applies and which
// firmware version fixes it, and how urgently to act (Prioritize).
//
// Real ICS advisories rarely carry CPE or PURL identifiers; most describe a
// product by vendor, product name, an order number and a free-text version
// range. Matching is therefore done in tiers, strongest first: CPE or PURL,
// then model or order number, then vendor and product name with the range
// evaluated on the device's firmware, and what none of them settles goes to
// a triage queue for a person. Every match carries its tier, a confidence
// and the evidence (which field matched what) so an operator can check it.
//
// The package is pure: functions from documents and inventory to results,
// no I/O beyond the io.Reader it is given, no clock, no globals. It uses the
// standard library only, because it is linked into the gateway daemon whose
// armv7 binary has a hard size limit; schema validation of documents happens
// at publish time (fieldgate-repo), not here. Parsed documents are read-only
// after parsing and safe for concurrent use.
package advisory
