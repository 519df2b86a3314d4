// SPDX-License-Identifier: Apache-2.0

package advisory

import (
	"strconv"
	"strings"
	"unicode"
)

// Version is a firmware or software version split into comparable parts:
// "V3.1.2" is 3 1 2, "V2.0 SP1" is 2 0 sp 1, "1.10A" is 1 10 a.
// Vendors number versions in many ways; Version orders the common ones
// (dotted numbers, letter suffixes, service packs, updates, hotfixes,
// builds) the way their release notes do, and nothing cleverer.
type Version struct {
	Raw   string
	parts []part
	// line is set for a version written with a wildcard ("12.4.*",
	// "6.x", "2.2.0 *"): it names a release line (see Constraint.Line).
	line bool
}

type part struct {
	num   uint64
	word  string // "" for a number
	isNum bool
}

// String returns the version as written.
func (v Version) String() string { return v.Raw }

// prefixes are words before a version that are not part of it.
var versionPrefixes = []string{"firmware", "software", "version", "release", "ver", "fw", "sw", "v"}

// preRelease words sort before the release they qualify; every other word
// (sp, update, hf, build, p, r) sorts after it.
var preRelease = map[string]bool{"alpha": true, "beta": true, "rc": true, "pre": true, "dev": true}

// ParseVersion reads a version. It reports false when s holds no digit, or
// too many parts to be a version (64), or a number too large.
func ParseVersion(s string) (Version, bool) {
	v := Version{Raw: s}
	t := strings.ToLower(strings.TrimSpace(s))
	// "CPCI85 V05.20": the version proper starts at " V<digit>"; what is
	// before it names the product line.
	for i := 1; i+2 < len(t); i++ {
		if t[i-1] == ' ' && t[i] == 'v' && isDigit(t[i+1]) {
			t = t[i:]
			break
		}
	}
	if !strings.ContainsAny(t, "0123456789") {
		return v, false
	}
	// A trailing wildcard names a release line: "12.4.*", "12.4.x",
	// "5.1.0-x", "2.2.0 *".
	if u := strings.TrimRight(t, " *"); u != t || len(u) > 2 && u[len(u)-1] == 'x' && strings.IndexByte(".- ", u[len(u)-2]) >= 0 {
		t, v.line = strings.TrimRight(strings.TrimSuffix(u, "x"), " .-"), true
	}
	// Strip leading words that name the thing, not the version:
	// "Firmware_6.62", "Ver.2.1", "V3.0", "FW 1.2".
	for {
		t = strings.TrimLeft(t, " _.:-")
		stripped := false
		for _, p := range versionPrefixes {
			if rest, ok := strings.CutPrefix(t, p); ok && rest != "" && (isDigit(rest[0]) || strings.ContainsRune(" _.:-", rune(rest[0]))) {
				t, stripped = rest, true
				break
			}
		}
		if !stripped {
			break
		}
	}
	i := 0
	for i < len(t) {
		c := t[i]
		switch {
		case isDigit(c):
			j := i
			for j < len(t) && isDigit(t[j]) {
				j++
			}
			n, err := strconv.ParseUint(t[i:j], 10, 64)
			if err != nil {
				return v, false
			}
			v.parts = append(v.parts, part{num: n, isNum: true})
			i = j
		case c < 0x80 && unicode.IsLetter(rune(c)):
			j := i
			for j < len(t) && t[j] < 0x80 && unicode.IsLetter(rune(t[j])) {
				j++
			}
			w := t[i:j]
			// A lone "v" inside ("R9-V9", "CPCI85 V05.20") is a separator.
			if w != "v" {
				v.parts = append(v.parts, part{word: w})
			}
			i = j
		default:
			i++
		}
		if len(v.parts) > 64 {
			return v, false
		}
	}
	return v, len(v.parts) > 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// Compare returns -1, 0 or +1 as a is older than, equal to or newer than b.
// Missing trailing parts count as zero ("1.2" == "1.2.0"); a trailing
// service pack, update or hotfix is newer than the release without it, a
// trailing alpha, beta or rc older.
// A product-line word before the number on one side only ("MX-V4.7" against
// "4.7") is skipped.
func Compare(a, b Version) int {
	if len(a.parts) > 0 && len(b.parts) > 0 && a.parts[0].isNum != b.parts[0].isNum {
		a.parts, b.parts = skipWords(a.parts), skipWords(b.parts)
	}
	n := max(len(a.parts), len(b.parts))
	for i := range n {
		var x, y part
		xok, yok := i < len(a.parts), i < len(b.parts)
		if xok {
			x = a.parts[i]
		}
		if yok {
			y = b.parts[i]
		}
		switch {
		case !xok:
			if c := -missing(y); c != 0 {
				return c
			}
		case !yok:
			if c := missing(x); c != 0 {
				return c
			}
		case x.isNum && y.isNum:
			if x.num != y.num {
				return cmpU(x.num, y.num)
			}
		case x.isNum != y.isNum:
			// 2.0.1 is newer than 2.0 SP1: a number outranks a word.
			if x.isNum {
				return 1
			}
			return -1
		default:
			if c := strings.Compare(x.word, y.word); c != 0 {
				return c
			}
		}
	}
	return 0
}

func skipWords(ps []part) []part {
	for len(ps) > 0 && !ps[0].isNum {
		ps = ps[1:]
	}
	return ps
}

// missing compares a part p against an absent one: +1 when p makes a
// version newer than the one without it.
func missing(p part) int {
	switch {
	case p.isNum && p.num == 0:
		return 0
	case !p.isNum && preRelease[p.word]:
		return -1
	}
	return 1
}

func cmpU(a, b uint64) int {
	if a < b {
		return -1
	}
	return 1
}
