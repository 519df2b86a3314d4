// SPDX-License-Identifier: Apache-2.0

package advisory

import (
	"fmt"
	"net/url"
	"strings"
)

// CPE is a CPE 2.3 formatted string split into its eleven attributes
// (part, vendor, product, version, update, edition, language, sw_edition,
// target_sw, target_hw, other), lower case, still escaped.
type CPE [11]string

// ParseCPE reads a CPE 2.3 formatted string ("cpe:2.3:h:siemens:...").
// Missing trailing attributes are ANY ("*").
func ParseCPE(s string) (CPE, error) {
	var c CPE
	rest, ok := strings.CutPrefix(strings.ToLower(s), "cpe:2.3:")
	if !ok {
		return c, fmt.Errorf("cpe %q: not a CPE 2.3 formatted string", s)
	}
	i := 0
	var b strings.Builder
	for j := 0; j < len(rest); j++ {
		ch := rest[j]
		switch {
		case ch == '\\':
			if j+1 == len(rest) {
				return c, fmt.Errorf("cpe %q: trailing escape", s)
			}
			b.WriteByte(ch)
			b.WriteByte(rest[j+1])
			j++
		case ch == ':':
			if i == 10 {
				return c, fmt.Errorf("cpe %q: more than 11 attributes", s)
			}
			c[i] = b.String()
			b.Reset()
			i++
		case ch <= ' ' || ch > '~':
			return c, fmt.Errorf("cpe %q: invalid character", s)
		default:
			b.WriteByte(ch)
		}
	}
	c[i] = b.String()
	for k := range c {
		if k > i || c[k] == "" {
			c[k] = "*"
		}
	}
	switch c[0] {
	case "a", "o", "h", "*":
	default:
		return c, fmt.Errorf("cpe %q: part %q is not a, o or h", s, c[0])
	}
	return c, nil
}

// Matches reports whether the name c (from an advisory, possibly with
// wildcards) matches the name t (a device's), attribute by attribute as the
// CPE name matching specification (NISTIR 7696) allows a source to match a
// target: source ANY matches anything, NA ("-") only NA, and a value with
// unescaped "*" and "?" matches as a pattern. A target ANY with a specific
// source does not match: the device did not say.
func (c CPE) Matches(t CPE) bool {
	for i := range c {
		if !cpeAttr(c[i], t[i]) {
			return false
		}
	}
	return true
}

func cpeAttr(src, tgt string) bool {
	switch {
	case src == "*":
		return true
	case src == "-" || tgt == "-":
		return src == tgt
	case tgt == "*":
		return false
	}
	return wildcard(src, tgt)
}

// wildcard matches pattern p (unescaped "*" any run, "?" one character)
// against s; escaped characters match themselves.
func wildcard(p, s string) bool {
	// Iterative matching with backtracking to the last "*".
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '\\' && pi+1 < len(p) && si+1 < len(s) && s[si] == '\\' && p[pi+1] == s[si+1]:
			pi, si = pi+2, si+2
		case pi < len(p) && p[pi] == '?':
			pi++
			if s[si] == '\\' && si+1 < len(s) {
				si++
			}
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && p[pi] != '\\' && p[pi] == s[si]:
			pi, si = pi+1, si+1
		case star >= 0:
			mark++
			pi, si = star+1, mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// PURL is a package URL (https://github.com/package-url/purl-spec) reduced
// to what identifies a package: type, namespace, name and version.
type PURL struct {
	Type, Namespace, Name, Version string
}

// ParsePURL reads "pkg:type/namespace/name@version?qualifiers#subpath".
func ParsePURL(s string) (PURL, error) {
	var p PURL
	rest, ok := strings.CutPrefix(s, "pkg:")
	if !ok {
		return p, fmt.Errorf("purl %q: no pkg: scheme", s)
	}
	rest, _, _ = strings.Cut(rest, "#")
	rest, _, _ = strings.Cut(rest, "?")
	rest = strings.Trim(rest, "/")
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		v, err := url.PathUnescape(rest[i+1:])
		if err != nil {
			return p, fmt.Errorf("purl %q: version: %w", s, err)
		}
		p.Version, rest = v, rest[:i]
	}
	typ, path, ok := strings.Cut(rest, "/")
	if !ok || typ == "" || path == "" {
		return p, fmt.Errorf("purl %q: no type/name", s)
	}
	p.Type = strings.ToLower(typ)
	ns, name := "", path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		ns, name = path[:i], path[i+1:]
	}
	var err error
	if p.Namespace, err = url.PathUnescape(ns); err != nil {
		return p, fmt.Errorf("purl %q: namespace: %w", s, err)
	}
	if p.Name, err = url.PathUnescape(name); err != nil || p.Name == "" {
		return p, fmt.Errorf("purl %q: name: %v", s, err)
	}
	// Types whose names are case-insensitive (purl-spec "known types").
	switch p.Type {
	case "github", "bitbucket", "pypi", "npm", "golang", "deb", "apk", "rpm":
		p.Namespace, p.Name = strings.ToLower(p.Namespace), strings.ToLower(p.Name)
	}
	if p.Type == "pypi" {
		p.Name = strings.ReplaceAll(p.Name, "_", "-")
	}
	return p, nil
}

// SamePackage reports whether p and q name the same package, whatever their
// versions.
func (p PURL) SamePackage(q PURL) bool {
	return p.Type == q.Type && p.Namespace == q.Namespace && p.Name == q.Name
}
