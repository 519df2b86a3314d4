// SPDX-License-Identifier: Apache-2.0

package advisory

import (
	"slices"
	"strings"
)

// Range is a set of versions, read from a CSAF product_version_range name:
// either a vers: specifier (https://github.com/package-url/vers-spec) or
// the free text CISA writes ("<=Firmware_6.62", "V3.0 < V3.1.2",
// "All versions", "all versions prior to 5.3", "versions 1.0 through 1.3").
type Range struct {
	Raw string
	// Parsed is false when the text could not be read as a range; such a
	// product is matched by a person (triage), never silently.
	Parsed bool
	All    bool // every version
	// Constraints are ORed the way vers: defines: a list of comparator and
	// version pairs, sorted by version.
	Constraints []Constraint
	// Condition is text that qualifies the range and that matching cannot
	// check ("only if the basic authentication mechanism is used",
	// "installed on CP 1543-1 devices", a product line "CPCI85").
	Condition string
}

// Constraint is one comparator and version of a Range.
type Constraint struct {
	Op string // "<", "<=", ">", ">=", "=", "!="
	V  Version
	// Line is set when V names a release line rather than one release:
	// "12.4.*", "6.x", or a bare "2.2.3" in free text, which vendors such
	// as Hitachi Energy write for "all revisions of 2.2.3". An "=" or "<="
	// on a line also holds the versions that extend it (2.2.3.2, 12.4.1).
	Line bool
	bare bool // written without a comparator
}

// ParseRange reads a version range; Parsed reports whether it could.
func ParseRange(s string) Range {
	r := Range{Raw: s}
	t := s
	free := true // free text, not a vers: specifier
	if rest, ok := strings.CutPrefix(t, "vers:"); ok {
		free = false
		// vers:<scheme>/<constraints>; CISA writes scheme "all".
		if _, c, ok := strings.Cut(rest, "/"); ok {
			t = c
		} else {
			return r
		}
	}
	t = strings.Join(strings.Fields(strings.NewReplacer("_", " ", "(", " ", ")", " ", "\"", " ", "\u2014", " - ", "\u2013", " - ", " -", " - ").Replace(t)), " ")
	l := asciiLower(t)

	// "*", "All versions", "all versions with Fortinet NGFW".
	if l == "*" || strings.HasPrefix(l, "* ") {
		r.All, r.Parsed, r.Condition = true, true, strings.TrimSpace(t[1:])
		return r
	}
	// "All BIOS versions < V1.2.3": a word naming what is versioned.
	if strings.HasPrefix(l, "all ") {
		if w, rest, ok := strings.Cut(l[4:], " "); ok && !strings.ContainsAny(w, "0123456789<>=") && strings.HasPrefix(rest, "versions ") {
			t, l = t[4+len(w)+1:], rest
			t, l = "All "+t, "all "+l
		}
	}
	for _, p := range []string{"all versions", "all version"} {
		if rest, ok := strings.CutPrefix(l, p); ok {
			rest = strings.TrimSpace(rest)
			off := len(t) - len(rest)
			switch {
			case rest == "":
				r.All, r.Parsed = true, true
				return r
			case strings.HasPrefix(rest, "<") || strings.HasPrefix(rest, "prior to") || strings.HasPrefix(rest, "before") || strings.HasPrefix(rest, "earlier than"):
				t, l = t[off:], rest
			case strings.HasPrefix(rest, "with ") && !strings.ContainsAny(rest, "<>"),
				!strings.ContainsAny(rest, "<>0123456789"):
				// "All versions with Fortinet NGFW", "All versions in
				// non-default configuration", "all versions only if web
				// components are used".
				r.All, r.Parsed, r.Condition = true, true, t[off:]
				return r
			default:
				t, l = t[off:], rest
			}
			break
		}
	}
	l = strings.TrimPrefix(l, "versions ")
	t = t[len(t)-len(l):]

	// Words for comparators: "prior to 5.3", "1.0 through 1.3", "4.2 and later".
	var conds []string
	if c, ok := wordRange(t, l); ok {
		r.Constraints, r.Condition = c.Constraints, c.Condition
		goto done
	}

	// Comparator form: "<V9.9", ">=9.9|<=9.9", ">=V9.9<V9.9", "V3.0 < V3.1.2",
	// "9.9|9.9|9.9" (a list of exact versions).
	for _, alt := range strings.Split(t, "|") {
		alt = strings.TrimSpace(alt)
		if alt == "" {
			return r
		}
		// "V3.0 < V3.1.2": a version before the first comparator is its lower bound.
		if i := strings.IndexAny(alt, "<>=!"); i > 0 {
			if lo, rest, ok := leadingVersion(alt[:i]); ok && strings.TrimSpace(rest) == "" {
				r.Constraints = append(r.Constraints, Constraint{Op: ">=", V: lo})
				alt = alt[i:]
			}
		}
		for start := len(r.Constraints); alt != ""; {
			op, n := opPrefix(alt)
			bare := false
			if op == "" {
				if len(r.Constraints) > start || !strings.ContainsAny(alt, "0123456789") {
					// trailing text after a version: a condition.
					conds = append(conds, alt)
					break
				}
				op = "="
				bare = true
			}
			alt = strings.TrimSpace(alt[n:])
			v, rest, ok := leadingVersion(alt)
			if !ok {
				return Range{Raw: s}
			}
			r.Constraints = append(r.Constraints, Constraint{Op: op, V: v, bare: bare})
			alt = strings.TrimSpace(rest)
			if op, _ := opPrefix(alt); alt != "" && op == "" {
				conds = append(conds, alt)
				break
			}
		}
	}
	if len(r.Constraints) == 0 {
		return Range{Raw: s}
	}
	r.Condition = strings.Join(conds, "; ")
done:
	// In free text a bare version and a "<=" on a major number name
	// release lines: "10 | 11" holds 11.0.2, "V32 and earlier" holds
	// 32.011, while "9.0 and prior" does not hold 9.0.1. A bare version
	// before an upper bound above it, "13.0 | < 13.0.1", is the lower
	// bound CISA left its comparator off.
	cs := r.Constraints
	for i := range cs {
		c := &cs[i]
		c.Line = c.V.line || free && (c.Op == "=" || c.Op == "<=" && len(c.V.parts) == 1 && c.V.parts[0].isNum)
		if c.bare && free && i+1 < len(cs) && (cs[i+1].Op == "<" || cs[i+1].Op == "<=") && Compare(c.V, cs[i+1].V) < 0 {
			c.Op, c.Line = ">=", false
		}
	}
	r.Parsed = true
	r.sort()
	return r
}

// opPrefix returns the comparator s starts with and its length; "" for
// none. "==" is returned as "=".
func opPrefix(s string) (string, int) {
	for _, op := range []string{"<=", ">=", "!=", "==", "=<", "=>", "<", ">", "="} {
		if strings.HasPrefix(s, op) {
			switch op {
			case "==":
				return "=", 2
			case "=<", "=>": // written backwards: "=< 2.1.0.x"
				return op[1:] + "=", 2
			}
			return op, len(op)
		}
	}
	return "", 0
}

// versionWords may follow a version and belong to it: "V2.0 SP1",
// "V16 Update 4", "R2.3 TCU1 HF2", "4.1.2 Build 19", "5.0 Feature Pack 3".
var versionWords = map[string]bool{
	"sp": true, "update": true, "upd": true, "hf": true, "hotfix": true, "build": true, "patch": true,
	"p": true, "r": true, "sr": true, "tcu": true, "fp": true, "feature": true, "pack": true, "rev": true, "revision": true,
}

// leadingVersion reads a version at the start of s: its first word must
// hold a digit (after a "V", "Ver.", "Firmware" prefix), and following
// words belong to it while they hold digits or are versionWords. It returns
// the version and what is left.
func leadingVersion(s string) (Version, string, bool) {
	fields := strings.Fields(s)
	n := 0
	for n < len(fields) {
		f := asciiLower(fields[n])
		if op, _ := opPrefix(f); op != "" {
			break
		}
		i := strings.IndexAny(f, "<>=!|")
		// "12.4.1-12.4.11": a range written with a hyphen. A hyphen
		// inside one version ("6.0.0-1", a build; "MX-V4.7") is not one:
		// both sides must be numbers with the same number of dots.
		if a, b, ok := strings.Cut(f, "-"); ok && strings.Count(a, ".") > 0 && strings.Count(a, ".") == strings.Count(b, ".") && strings.Trim(f, "0123456789.-") == "" {
			i = len(a)
		}
		if i > 0 {
			// ">=V9.9<V9.9": stop inside the word.
			v, ok := ParseVersion(strings.Join(append(slices.Clone(fields[:n]), fields[n][:i]), " "))
			return v, fields[n][i:] + " " + strings.Join(fields[n+1:], " "), ok
		}
		hasDigit := strings.ContainsAny(f, "0123456789")
		switch {
		case n == 0 && (f == "v" || f == "ver" || f == "ver." || f == "rev" || f == "rev." || f == "version" || f == "firmware" || f == "fw"):
		case hasDigit && !isDate(f):
		case n > 0 && versionWords[f]:
		case n > 0 && f == "*":
			// "2.2.0 *": every revision of 2.2.0.
			n++
			goto done
		default:
			goto done
		}
		n++
	}
done:
	// Trailing version words without a number ("V2.0 SP") are dropped.
	for n > 0 && !strings.ContainsAny(fields[n-1], "0123456789*") {
		n--
	}
	if n == 0 {
		return Version{}, s, false
	}
	v, ok := ParseVersion(strings.Join(fields[:n], " "))
	return v, strings.Join(fields[n:], " "), ok
}

// isDate reports a word that is a date, not a version: "1/31/2024".
func isDate(f string) bool { return strings.Count(f, "/") >= 2 }

// wordRange reads ranges written in words. t is the text, l its lower case.
func wordRange(t, l string) (Range, bool) {
	var r Range
	cut := func(i int) string { return strings.TrimSpace(t[i:]) }
	for _, w := range []struct {
		prefix, op string
	}{{"prior to ", "<"}, {"before ", "<"}, {"earlier than ", "<"}, {"older than ", "<"}, {"up to and including ", "<="}, {"up to ", "<="}, {"through ", "<="}, {"from ", ">="}} {
		if strings.HasPrefix(l, w.prefix) {
			v, rest, ok := leadingVersion(cut(len(w.prefix)))
			if !ok {
				return r, false
			}
			r.Constraints = []Constraint{{Op: w.op, V: v}}
			rl := asciiLower(rest)
			if w.op == ">=" {
				for _, to := range []string{"to ", "through ", "until ", "-"} {
					if strings.HasPrefix(rl, to) {
						hi, rest2, ok := leadingVersion(rest[len(to):])
						if !ok {
							return r, false
						}
						r.Constraints = append(r.Constraints, Constraint{Op: "<=", V: hi})
						rest = rest2
						break
					}
				}
			}
			r.Condition = strings.TrimSpace(rest)
			return r, true
		}
	}
	// "<version> through|to <version>", "<version> and later|earlier".
	v, rest, ok := leadingVersion(t)
	if !ok {
		return r, false
	}
	rl := asciiLower(rest)
	for _, to := range []string{"through ", "to ", "-", "until "} {
		if strings.HasPrefix(rl, to) {
			hi, rest2, ok := leadingVersion(rest[len(to):])
			if !ok {
				return r, false
			}
			r.Constraints = []Constraint{{Op: ">=", V: v}, {Op: "<=", V: hi}}
			r.Condition = strings.TrimSpace(rest2)
			return r, true
		}
	}
	for _, w := range []struct{ suffix, op string }{
		{"and earlier", "<="}, {"or earlier", "<="}, {"and prior", "<="}, {"and older", "<="}, {"and below", "<="}, {"or lower", "<="},
		{"and later", ">="}, {"or later", ">="}, {"and newer", ">="}, {"and above", ">="}, {"or higher", ">="}, {"and higher", ">="},
	} {
		if strings.HasPrefix(rl, w.suffix) {
			r.Constraints = []Constraint{{Op: w.op, V: v}}
			r.Condition = strings.TrimSpace(rest[len(w.suffix):])
			return r, true
		}
	}
	return r, false
}

func (r *Range) sort() {
	slices.SortStableFunc(r.Constraints, func(a, b Constraint) int { return Compare(a.V, b.V) })
}

// Contains reports whether v is in the range, with the vers: algorithm:
// an equal "=" or a "!=" decides at once; otherwise v is in when it
// satisfies a leading "<"/"<=", a trailing ">"/">=", or a ">"/">=" followed
// by a "<"/"<=" pair around it. An unparsed range contains nothing.
func (r Range) Contains(v Version) bool {
	if !r.Parsed {
		return false
	}
	if r.All {
		return true
	}
	var cs []Constraint
	for _, c := range r.Constraints {
		switch c.Op {
		case "=":
			if c.sat(v) {
				return true
			}
		case "!=":
			if Compare(v, c.V) == 0 {
				return false
			}
		default:
			cs = append(cs, c)
		}
	}
	if len(cs) == 0 {
		return false
	}
	if !lower(cs[0].Op) && cs[0].sat(v) {
		return true
	}
	if last := cs[len(cs)-1]; lower(last.Op) && last.sat(v) {
		return true
	}
	for i := 0; i+1 < len(cs); i++ {
		if lower(cs[i].Op) && !lower(cs[i+1].Op) && cs[i].sat(v) && cs[i+1].sat(v) {
			return true
		}
	}
	return false
}

// lower reports a comparator that bounds from below (">" or ">=").
func lower(op string) bool { return op == ">" || op == ">=" }

func (c Constraint) sat(v Version) bool {
	d := Compare(v, c.V)
	// On a release line, v extends c.V: c.V's parts are a proper prefix of
	// v's ("2.2.3.2" extends "2.2.3", "12.4.1" extends "12.4").
	n := len(c.V.parts)
	ext := c.Line && n > 0 && n < len(v.parts)
	for i := 0; ext && i < n; i++ {
		ext = v.parts[i] == c.V.parts[i]
	}
	switch c.Op {
	case "=":
		return d == 0 || ext
	case "<":
		return d < 0
	case "<=":
		return d <= 0 || ext
	case ">":
		return d > 0
	case ">=":
		return d >= 0
	}
	return false
}

// asciiLower lower-cases ASCII letters only, so that offsets into the
// result are offsets into s.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
