// SPDX-License-Identifier: Apache-2.0

// Package testreport is the signed proof that an update passed a staging
// test (step 3 of IEC 62443 patch management): a gateway configured as
// role staging runs a job against its staging twin and, when a device
// commits, signs a Report saying which image (sha256) was tested on which
// hardware id, each phase the step went through, the version and image
// hash the device read back, and how long it soaked.
//
// A production gateway whose group lists staging keys in require_tested
// refuses to approve a job until a valid report covers every device of it
// (Report.Covers).
//
// The signature scheme is the one of remote commands (daemon/mqtt): ed25519
// over canonical bytes, one "name=value" line per field in a fixed order
// after a version line, values without newlines, so that the bytes signed
// do not depend on JSON spelling and are easy to reproduce in any language.
// The JSON form is decoded strictly: unknown and duplicate keys, trailing
// data and oversized payloads are refused.
//
// The package is pure: no I/O, no clock (callers pass now). Everything in
// it is safe for concurrent use.
package testreport
