// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// version is a parsed release version.
type version struct {
	core []uint64
	pre  []string // empty: a release
}

// parseVersion parses versions of the form [v]N(.N)*[-PRE][+BUILD]:
// up to eight dot-separated decimal numbers, an optional pre-release of
// dot-separated [0-9A-Za-z-] identifiers and optional build metadata, which is
// ignored.
func parseVersion(s string) (version, error) {
	if s == "" {
		return version{}, errors.New("empty version")
	}
	if len(s) > maxVersionLen {
		return version{}, fmt.Errorf("version is %d bytes, limit %d", len(s), maxVersionLen)
	}
	rest := strings.TrimPrefix(s, "v")
	if i := strings.IndexByte(rest, '+'); i >= 0 {
		if err := checkIdents(rest[i+1:], false); err != nil {
			return version{}, fmt.Errorf("version %q: build metadata: %w", s, err)
		}
		rest = rest[:i]
	}
	var v version
	if i := strings.IndexByte(rest, '-'); i >= 0 {
		pre := rest[i+1:]
		if err := checkIdents(pre, true); err != nil {
			return version{}, fmt.Errorf("version %q: pre-release: %w", s, err)
		}
		v.pre = strings.Split(pre, ".")
		rest = rest[:i]
	}
	parts := strings.Split(rest, ".")
	if len(parts) > maxVersionParts {
		return version{}, fmt.Errorf("version %q: %d components, limit %d", s, len(parts), maxVersionParts)
	}
	for _, p := range parts {
		if p == "" || strings.TrimLeft(p, "0123456789") != "" {
			return version{}, fmt.Errorf("version %q: component %q is not a decimal number", s, p)
		}
		if len(p) > 1 && p[0] == '0' {
			return version{}, fmt.Errorf("version %q: component %q has a leading zero", s, p)
		}
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return version{}, fmt.Errorf("version %q: component %q: %w", s, p, err)
		}
		v.core = append(v.core, n)
	}
	return v, nil
}

func checkIdents(s string, noLeadingZero bool) error {
	for _, id := range strings.Split(s, ".") {
		if id == "" {
			return errors.New("empty identifier")
		}
		numeric := true
		for _, r := range id {
			switch {
			case r >= '0' && r <= '9':
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '-':
				numeric = false
			default:
				return fmt.Errorf("identifier %q: invalid character %q", id, r)
			}
		}
		if noLeadingZero && numeric && len(id) > 1 && id[0] == '0' {
			return fmt.Errorf("identifier %q has a leading zero", id)
		}
	}
	return nil
}

// ValidVersion reports whether s is a version CompareVersions can order.
func ValidVersion(s string) error {
	_, err := parseVersion(s)
	return err
}

// CompareVersions compares two versions and returns -1, 0 or +1.
//
// Versions are dotted decimal numbers with an optional leading "v", an
// optional pre-release after "-" and optional build metadata after "+":
// "2.4.1", "v3", "1.0.0-rc.1", "2.4.1+build.7". Components compare
// numerically; missing trailing components are zero ("2.4" == "2.4.0"); a
// pre-release is lower than its release and pre-releases compare like SemVer
// 2.0 (numeric identifiers numerically and lower than alphanumeric ones, a
// shorter list of equal identifiers is lower); build metadata is ignored.
//
// An invalid version (see ValidVersion) is lower than every valid one; two
// invalid versions compare as strings, so the order is total.
func CompareVersions(a, b string) int {
	va, errA := parseVersion(a)
	vb, errB := parseVersion(b)
	switch {
	case errA != nil && errB != nil:
		return strings.Compare(a, b)
	case errA != nil:
		return -1
	case errB != nil:
		return 1
	}
	return compareParsed(va, vb)
}

func compareParsed(a, b version) int {
	n := max(len(a.core), len(b.core))
	for i := range n {
		var x, y uint64
		if i < len(a.core) {
			x = a.core[i]
		}
		if i < len(b.core) {
			y = b.core[i]
		}
		if c := cmp.Compare(x, y); c != 0 {
			return c
		}
	}
	switch {
	case len(a.pre) == 0 && len(b.pre) == 0:
		return 0
	case len(a.pre) == 0:
		return 1
	case len(b.pre) == 0:
		return -1
	}
	for i := 0; i < len(a.pre) && i < len(b.pre); i++ {
		if c := compareIdent(a.pre[i], b.pre[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a.pre), len(b.pre))
}

func compareIdent(x, y string) int {
	nx, errX := strconv.ParseUint(x, 10, 64)
	ny, errY := strconv.ParseUint(y, 10, 64)
	switch {
	case errX == nil && errY == nil:
		return cmp.Compare(nx, ny)
	case errX == nil:
		return -1
	case errY == nil:
		return 1
	}
	return strings.Compare(x, y)
}
