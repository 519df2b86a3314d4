// SPDX-License-Identifier: Apache-2.0

package fieldgate_test

// fieldgate is Apache-2.0 (LICENSE). The tests here keep that visible and
// true: every source file, script and Makefile says so in an SPDX line that
// REUSE and scancode read; every Go module linked into the four binaries is
// under a licence that allows distributing them under Apache-2.0; and the
// Debian copyright file lists exactly those modules with their notices.
//
// Licences are told apart by a few sentences that only their texts contain
// (licenceRules), not by a general classifier: the set of licences this
// project accepts is small, and anything the rules do not recognise fails
// the test, to be looked at by a person.

import (
	"bytes"
	"cmp"
	"fmt"
	"go/build"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const spdx = "SPDX-License-Identifier: Apache-2.0"

// headerKind says which SPDX header a tracked file needs: "go" (the first
// line, then a blank line, so that it is never part of a package doc
// comment, and build constraints and //go:debug lines below it keep working),
// "script" (the line after the #! line), "make" (the first line), or "" (none).
func headerKind(name string, content []byte) string {
	base := filepath.Base(name)
	switch {
	case strings.HasSuffix(base, ".go"):
		return "go"
	case base == "Makefile" || strings.HasSuffix(base, ".mk"):
		return "make"
	case strings.HasSuffix(base, ".sh") || bytes.HasPrefix(content, []byte("#!")):
		return "script"
	}
	return ""
}

// checkHeader returns why content lacks the SPDX header of its kind, or "".
func checkHeader(kind string, content []byte) string {
	lines := strings.SplitN(string(content), "\n", 4)
	line := func(i int) string {
		if i < len(lines) {
			return strings.TrimRight(lines[i], "\r")
		}
		return ""
	}
	switch kind {
	case "go":
		if line(0) != "// "+spdx {
			return fmt.Sprintf("line 1 is %q, want %q", line(0), "// "+spdx)
		}
		if line(1) != "" {
			return "line 2 is not blank: the SPDX line would become part of the comment below it"
		}
	case "make":
		if line(0) != "# "+spdx {
			return fmt.Sprintf("line 1 is %q, want %q", line(0), "# "+spdx)
		}
	case "script":
		if !strings.HasPrefix(line(0), "#!") {
			return "no #! line"
		}
		if line(1) != "# "+spdx {
			return fmt.Sprintf("line 2 is %q, want %q", line(1), "# "+spdx)
		}
	}
	return ""
}

// addHeader returns content with the SPDX header of its kind added. It
// refuses a file that names a licence somewhere else, which a person has to
// look at.
func addHeader(kind string, content []byte) ([]byte, error) {
	if checkHeader(kind, content) == "" {
		return content, nil
	}
	if bytes.Contains(content, []byte("SPDX-License-Identifier")) {
		return nil, fmt.Errorf("has an SPDX-License-Identifier in the wrong place or form")
	}
	switch kind {
	case "go":
		return append([]byte("// "+spdx+"\n\n"), content...), nil
	case "make":
		return append([]byte("# "+spdx+"\n"), content...), nil
	case "script":
		first, rest, _ := bytes.Cut(content, []byte("\n"))
		out := slices.Concat(first, []byte("\n# "+spdx+"\n"), rest)
		return out, nil
	}
	return nil, fmt.Errorf("unknown kind %q", kind)
}

// trackedFiles lists the repository's files as git knows them, skipping
// those deleted in the work tree.
func trackedFiles(t *testing.T) []string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("git not found: install the Debian package git")
		}
		t.Skip("git not found: install the Debian package git")
	}
	out, err := exec.Command("git", "ls-files", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	var files []string
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if fi, err := os.Lstat(f); err == nil && fi.Mode().IsRegular() {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		t.Fatal("git ls-files lists no files")
	}
	return files
}

// TestSPDXHeaders: every tracked Go file, script and Makefile carries the
// Apache-2.0 SPDX line. With FIELDGATE_SPDX_FIX=1 (make spdx) it adds the
// line where it is missing instead of failing.
func TestSPDXHeaders(t *testing.T) {
	fix := os.Getenv("FIELDGATE_SPDX_FIX") == "1"
	var checked, fixed int
	for _, f := range trackedFiles(t) {
		if strings.Contains(filepath.ToSlash(f), "/testdata/fuzz/") {
			continue // fuzz corpus entries are data
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		kind := headerKind(f, b)
		if kind == "" {
			continue
		}
		checked++
		why := checkHeader(kind, b)
		if why == "" {
			continue
		}
		if !fix {
			t.Errorf("%s: %s (make spdx adds it)", f, why)
			continue
		}
		nb, err := addHeader(kind, b)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, nb, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
		fixed++
	}
	if fix {
		t.Logf("added the SPDX line to %d of %d files", fixed, checked)
	}
	if checked < 10 {
		t.Errorf("checked %d files, want the repository's Go files, scripts and Makefile", checked)
	}
}

// TestAddHeader: the header goes where the Go tool chain, the doc tools and
// the shell still read the file the same way.
func TestAddHeader(t *testing.T) {
	for _, c := range []struct {
		name, in, want string
	}{
		{"doc.go", "// Package x does y.\npackage x\n",
			"// " + spdx + "\n\n// Package x does y.\npackage x\n"},
		{"build_linux.go", "//go:build linux\n\npackage x\n",
			"// " + spdx + "\n\n//go:build linux\n\npackage x\n"},
		{"main.go", "// Why.\n//\n//go:debug updatemaxprocs=0\n\n// Command x runs.\npackage main\n",
			"// " + spdx + "\n\n// Why.\n//\n//go:debug updatemaxprocs=0\n\n// Command x runs.\npackage main\n"},
		{"run", "#!/usr/bin/env bash\nset -e\n", "#!/usr/bin/env bash\n# " + spdx + "\nset -e\n"},
		{"postinst", "#!/bin/sh\n", "#!/bin/sh\n# " + spdx + "\n"},
		{"Makefile", "# index\nall:\n", "# " + spdx + "\n# index\nall:\n"},
		{"ok.go", "// " + spdx + "\n\npackage x\n", "// " + spdx + "\n\npackage x\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			kind := headerKind(c.name, []byte(c.in))
			got, err := addHeader(kind, []byte(c.in))
			if err != nil {
				t.Fatalf("addHeader(%q) error %v", c.in, err)
			}
			if string(got) != c.want {
				t.Fatalf("addHeader(%q) = %q, want %q", c.in, got, c.want)
			}
			if why := checkHeader(kind, got); why != "" {
				t.Errorf("checkHeader after addHeader: %s", why)
			}
			if why := checkHeader(kind, []byte(c.in)); (why == "") != (c.in == c.want) {
				t.Errorf("checkHeader(%q) = %q", c.in, why)
			}
		})
	}
	if _, err := addHeader("go", []byte("package x\n\n// SPDX-License-Identifier: MIT\n")); err == nil {
		t.Error("addHeader on a file with another SPDX line: no error")
	}

	// What the go command and go/doc read from edited files.
	dir := t.TempDir()
	for name, src := range map[string]string{
		"doc.go":        "// Package x does y.\npackage x\n",
		"main.go":       "// Why.\n//\n//go:debug panicnil=1\n\npackage x\n",
		"ignored.go":    "//go:build ignore\n\npackage x\n",
		"other_test.go": "//go:build linux\n\n// Comment.\npackage x\n",
	} {
		b, err := addHeader("go", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, b, parser.ParseComments)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		if f.Doc != nil && strings.Contains(f.Doc.Text(), "SPDX") {
			t.Errorf("%s: the package doc comment contains the SPDX line: %q", name, f.Doc.Text())
		}
	}
	p, err := build.ImportDir(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(p.IgnoredGoFiles, "ignored.go") {
		t.Errorf("//go:build ignore below the SPDX line is not honoured: ignored files %v", p.IgnoredGoFiles)
	}
	if !slices.ContainsFunc(p.Directives, func(d build.Directive) bool { return d.Text == "//go:debug panicnil=1" }) {
		t.Errorf("//go:debug below the SPDX line is not read: directives %v", p.Directives)
	}
	if p.Doc != "Package x does y." {
		t.Errorf("package doc = %q, want %q", p.Doc, "Package x does y.")
	}
}

// licenceRule recognises one licence by sentences only its text contains
// (after normalize), and says whether its terms allow distributing the
// binaries under Apache-2.0.
type licenceRule struct {
	id      string
	all     []string // every one of these
	none    []string // and none of these
	allowed bool
	note    string
}

var licenceRules = []licenceRule{
	{id: "Apache-2.0", allowed: true,
		all: []string{"apache license version 2 0 january 2004", "terms and conditions for use reproduction and distribution"}},
	{id: "Apache-2.0", allowed: true, // the short notice, where the full text is elsewhere
		all: []string{"licensed under the apache license version 2 0", "you may not use this file except in compliance with the license"}},
	{id: "MIT", allowed: true,
		all: []string{"permission is hereby granted free of charge to any person obtaining a copy",
			"the above copyright notice and this permission notice shall be included in all copies or substantial portions"}},
	{id: "BSD-3-Clause", allowed: true,
		all: []string{"redistribution and use in source and binary forms with or without modification are permitted",
			"redistributions in binary form must reproduce the above copyright notice",
			"endorse or promote products derived from this software without specific prior written permission"},
		none: []string{"all advertising materials mentioning"}},
	{id: "BSD-2-Clause", allowed: true,
		all: []string{"redistribution and use in source and binary forms with or without modification are permitted",
			"redistributions in binary form must reproduce the above copyright notice"},
		none: []string{"endorse or promote products", "all advertising materials mentioning"}},
	{id: "BSD-4-Clause",
		all: []string{"redistribution and use in source and binary forms", "all advertising materials mentioning"}},
	{id: "ISC", allowed: true,
		all: []string{"to use copy modify and or distribute this software for any purpose with or without fee is hereby granted"}},
	{id: "ISC", allowed: true,
		all: []string{"to use copy modify and distribute this software for any purpose with or without fee is hereby granted"}},
	{id: "MPL-2.0", allowed: true, note: "file-level copyleft: changes to its files are published under MPL-2.0",
		all: []string{"mozilla public license version 2 0"}},
	{id: "EPL-2.0", note: "weak copyleft; not accepted alone",
		all: []string{"eclipse public license v 2 0"}},
	{id: "CC-BY-SA-4.0", note: "for documentation, not code",
		all: []string{"attribution sharealike 4 0 international"}},
	{id: "GPL-family", note: "copyleft over the whole binary",
		all: []string{"the licenses for most software are designed to take away your freedom"}},
	{id: "GPL-family", note: "copyleft over the whole binary",
		all: []string{"the gnu general public license is a free copyleft license"}},
	{id: "AGPL-3.0", note: "copyleft over the whole binary and network use",
		all: []string{"gnu affero general public license"}},
}

var nonWord = regexp.MustCompile(`[^a-z0-9]+`)

// normalize lower-cases text and turns every run of other characters into a
// space, so that line breaks, quotes and punctuation do not matter.
func normalize(text string) string {
	return " " + strings.TrimSpace(nonWord.ReplaceAllString(strings.ToLower(text), " ")) + " "
}

// identify returns the licences whose rules match text, sorted, each once.
func identify(text string) []string {
	n := normalize(text)
	var ids []string
	for _, r := range licenceRules {
		ok := true
		for _, s := range r.all {
			ok = ok && strings.Contains(n, " "+s+" ")
		}
		for _, s := range r.none {
			ok = ok && !strings.Contains(n, " "+s+" ")
		}
		if ok && !slices.Contains(ids, r.id) {
			ids = append(ids, r.id)
		}
	}
	slices.Sort(ids)
	return ids
}

func rule(id string) licenceRule {
	for _, r := range licenceRules {
		if r.id == id {
			return r
		}
	}
	return licenceRule{id: id}
}

// declaration is what a module's licence files say beyond the texts that
// identify finds: how several licences combine, which file to ignore and
// why, and which texts the Debian copyright file reproduces.
type declaration struct {
	expr   string            // "A", "A AND B" or "A OR B" (SPDX)
	ignore map[string]string // file -> why it does not cover the linked code
	texts  []string          // files reproduced in the copyright file (default: the licence files)
	distAs string            // the licence the copyright file names for an OR
	why    string
}

var declarations = map[string]declaration{
	"github.com/eclipse/paho.mqtt.golang": {
		expr: "EPL-2.0 OR BSD-3-Clause", texts: []string{"edl-v10"}, distAs: "BSD-3-Clause",
		why: "LICENSE and NOTICE.md declare EPL-2.0 and the Eclipse Distribution License 1.0 (a BSD-3-Clause text, file edl-v10) as a dual licence"},
	"go.yaml.in/yaml/v3": {
		expr: "Apache-2.0 AND MIT",
		why:  "LICENSE: the files ported from libyaml are MIT, the rest Apache-2.0"},
	"github.com/opencontainers/go-digest": {
		expr:   "Apache-2.0",
		ignore: map[string]string{"LICENSE.docs": "CC-BY-SA-4.0 covers the project's documentation, which is not compiled in"},
	},
}

// linkedModule is a Go module compiled into at least one binary, or the
// standard library (path "std").
type linkedModule struct {
	path, version, dir string
	files              []string // licence files, relative to dir
	ids                []string // licences found in them
	expr               string
	problem            string
}

var licenceFileRE = regexp.MustCompile(`(?i)^(licen[cs]e|copying|unlicense)([.-].*)?$`)
var noticeFileRE = regexp.MustCompile(`(?i)^(notice|copyright)([.-].*)?$`)

// linkedModules lists the modules linked into the four binaries for every
// architecture they ship for (dependencies can differ by GOARCH), plus the
// standard library, with their licences identified.
func linkedModules(t *testing.T) []*linkedModule {
	t.Helper()
	seen := map[string]*linkedModule{}
	// fieldgate-repo for amd64 and arm64 is built with cgo too (PKCS#11,
	// make fieldgate-repo-pkcs11), which links its PKCS#11 library.
	builds := []struct{ arch, cgo string }{{"amd64", "0"}, {"arm64", "0"}, {"arm", "0"}, {"amd64", "1"}, {"arm64", "1"}}
	for _, b := range builds {
		arch := b.arch
		pkgs := []string{"./cmd/fieldgated", "./cmd/fieldgatectl", "./cmd/fieldgate-repo", "./cmd/fieldgate-sim"}
		if b.cgo == "1" {
			pkgs = []string{"./cmd/fieldgate-repo"}
		}
		cmd := exec.Command("go", append([]string{"list", "-deps", "-f", "{{with .Module}}{{.Path}}\t{{.Version}}\t{{.Dir}}\t{{with .Replace}}{{.Dir}}{{end}}{{end}}"}, pkgs...)...)
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+arch, "GOARM=7", "CGO_ENABLED="+b.cgo)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps for linux/%s: %v", arch, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Split(line, "\t")
			if len(f) != 4 || f[0] == module || f[0] == "" {
				continue
			}
			if f[3] != "" {
				f[2] = f[3]
			}
			seen[f[0]] = &linkedModule{path: f[0], version: f[1], dir: f[2]}
		}
	}
	seen["std"] = &linkedModule{path: "std", version: runtime.Version(), dir: runtime.GOROOT()}
	mods := slices.SortedFunc(maps.Values(seen), func(a, b *linkedModule) int { return cmp.Compare(a.path, b.path) })
	for _, m := range mods {
		m.identify()
	}
	return mods
}

// identify finds m's licence files and licences and sets m.expr, or
// m.problem when they are missing, unknown or do not match the declaration.
func (m *linkedModule) identify() {
	d := declarations[m.path]
	entries, err := os.ReadDir(m.dir)
	if err != nil {
		m.problem = fmt.Sprintf("module source not readable (go mod download): %v", err)
		return
	}
	found := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !licenceFileRE.MatchString(name) || d.ignore[name] != "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(m.dir, name))
		if err != nil {
			m.problem = err.Error()
			return
		}
		ids := identify(string(b))
		if len(ids) == 0 {
			m.problem = fmt.Sprintf("%s: licence not recognised", name)
			return
		}
		m.files = append(m.files, name)
		for _, id := range ids {
			found[id] = true
		}
	}
	for _, name := range d.texts {
		if b, err := os.ReadFile(filepath.Join(m.dir, name)); err == nil {
			for _, id := range identify(string(b)) {
				found[id] = true
			}
		}
	}
	m.ids = slices.Sorted(maps.Keys(found))
	if len(m.ids) == 0 {
		m.problem = "no licence file (LICENSE, COPYING)"
		return
	}
	m.expr = strings.Join(m.ids, " AND ")
	if d.expr != "" {
		want := strings.FieldsFunc(d.expr, func(r rune) bool { return r == ' ' })
		want = slices.DeleteFunc(want, func(s string) bool { return s == "AND" || s == "OR" })
		slices.Sort(want)
		if !slices.Equal(want, m.ids) {
			m.problem = fmt.Sprintf("declared %s, but the licence files hold %v: look again", d.expr, m.ids)
			return
		}
		m.expr = d.expr
	}
	if !compatible(m.expr) {
		m.problem = fmt.Sprintf("%s does not allow distribution with fieldgate under Apache-2.0", m.expr)
	}
}

// compatible reports whether an SPDX expression of the form "A", "A AND B"
// or "A OR B" leaves a way to distribute the code under allowed licences.
func compatible(expr string) bool {
	if alts := strings.Split(expr, " OR "); len(alts) > 1 {
		return slices.ContainsFunc(alts, compatible)
	}
	for _, id := range strings.Split(expr, " AND ") {
		if !rule(id).allowed {
			return false
		}
	}
	return true
}

// TestDependencyLicences: every module linked into a binary, and the
// standard library, has a recognised licence compatible with Apache-2.0.
// -v prints the table the README's Licence section shows.
func TestDependencyLicences(t *testing.T) {
	mods := linkedModules(t)
	var table strings.Builder
	table.WriteString("| module | version | licence |\n| --- | --- | --- |\n")
	for _, m := range mods {
		note := ""
		for _, id := range m.ids {
			if n := rule(id).note; n != "" && rule(id).allowed {
				note += " (" + id + ": " + n + ")"
			}
		}
		name := m.path
		if name == "std" {
			name = "Go standard library"
		}
		fmt.Fprintf(&table, "| %s | %s | %s%s |\n", name, m.version, cmp.Or(m.expr, "?"), note)
		if m.problem != "" {
			t.Errorf("%s %s: %s", m.path, m.version, m.problem)
		}
	}
	t.Logf("%d modules linked into fieldgated, fieldgatectl, fieldgate-repo and fieldgate-sim:\n%s", len(mods), table.String())
	if len(mods) < 10 {
		t.Errorf("found %d modules, want the binaries' dependencies (go list -deps)", len(mods))
	}
	checkReadmeTable(t, table.String())
}

// checkReadmeTable keeps the README's table of licences equal to the one
// computed from what is linked: it sits between two marker lines, and
// FIELDGATE_UPDATE_README=1 (make docs) rewrites it.
func checkReadmeTable(t *testing.T, table string) {
	const begin, end = "<!-- licences: generated by TestDependencyLicences -->\n", "<!-- licences end -->\n"
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("README.md has no licence table between %q and %q", begin, end)
	}
	want := s[:i+len(begin)] + table + s[j:]
	if want == s {
		return
	}
	if os.Getenv("FIELDGATE_UPDATE_README") == "1" {
		if err := os.WriteFile("README.md", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's licence table differs from the linked modules; rewrite it with make docs (FIELDGATE_UPDATE_README=1 go test -run TestDependencyLicences .)")
}

// TestLicenceRules: the matcher tells the accepted licences from the ones
// it must not accept, on texts this test carries, and the expressions
// combine as SPDX says.
func TestLicenceRules(t *testing.T) {
	apache, err := os.ReadFile("LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, text string
		want       []string
	}{
		{"LICENSE", string(apache), []string{"Apache-2.0"}},
		{"MIT", `Copyright (c) 2020 A
Permission is hereby granted, free of charge, to any person obtaining a copy
of this software ... The above copyright notice and this permission notice
shall be included in all copies or substantial portions of the Software.`, []string{"MIT"}},
		{"BSD-3", `Redistribution and use in source and binary forms, with or without
modification, are permitted provided that ... * Redistributions in binary form must reproduce the above copyright
notice ... * Neither the name of X nor the names of its contributors may be used to
endorse or promote products derived from this software without specific prior written permission.`, []string{"BSD-3-Clause"}},
		{"BSD-2", `Redistribution and use in source and binary forms, with or without
modification, are permitted provided that ... 2. Redistributions in binary form must reproduce the above copyright
notice, this list of conditions and the following disclaimer.`, []string{"BSD-2-Clause"}},
		{"BSD-4", `Redistribution and use in source and binary forms, with or without modification, are permitted
3. All advertising materials mentioning features or use of this software`, []string{"BSD-4-Clause"}},
		{"GPL-2", `The licenses for most software are designed to take away your
freedom to share and change it.`, []string{"GPL-family"}},
		{"ISC", `Permission to use, copy, modify, and/or distribute this software for any
purpose with or without fee is hereby granted`, []string{"ISC"}},
		{"unknown", "All rights reserved. Do not copy.", nil},
	} {
		if got := identify(c.text); !slices.Equal(got, c.want) {
			t.Errorf("identify(%s) = %v, want %v", c.name, got, c.want)
		}
	}
	for expr, want := range map[string]bool{
		"MIT": true, "Apache-2.0 AND MIT": true, "EPL-2.0 OR BSD-3-Clause": true, "EPL-2.0": false,
		"MIT AND GPL-family": false, "BSD-4-Clause": false, "unknown": false, "MPL-2.0": true,
	} {
		if got := compatible(expr); got != want {
			t.Errorf("compatible(%q) = %v, want %v", expr, got, want)
		}
	}
}

// copyrightFile is the template of the packages' copyright file: its
// header, fieldgate's own paragraph and the standalone Apache-2.0 licence.
// build.sh replaces @YEARS@, and the line @MODULES@ with the paragraphs
// TestDebianCopyright writes to $FIELDGATE_COPYRIGHT_OUT: the linked
// modules' copyright notices are generated from their sources when a
// package is built, so that they always match what the binaries contain.
const copyrightFile = "systemd/deb/copyright"

var copyrightLineRE = regexp.MustCompile(`(?i)^\s*copyright\s+(\(c\)\s*|©\s*)?([0-9].*)$`)

// field formats text as the continuation lines of a DEP-5 field.
func field(text string) string {
	var b strings.Builder
	text = strings.ReplaceAll(text, "\r\n", "\n")
	lines := strings.Split(strings.Trim(text, "\n"), "\n")
	for _, l := range lines {
		l = strings.TrimRight(strings.ReplaceAll(l, "\t", "    "), " ")
		if l == "" {
			l = "."
		}
		b.WriteString(" " + l + "\n")
	}
	return b.String()
}

// copyrightParagraph is what the copyright file says about one module:
// modules with the same licence, notices and texts share one paragraph.
type copyrightParagraph struct {
	files, versions    []string
	copyright, licence string
	notices, text      string
}

// debianCopyright renders the copyright paragraphs of the linked modules.
func debianCopyright(t *testing.T, mods []*linkedModule) string {
	t.Helper()
	var paras []*copyrightParagraph
	for _, m := range mods {
		if m.problem != "" {
			t.Fatalf("%s: %s", m.path, m.problem)
		}
		d := declarations[m.path]
		// DEP-5 writes the SPDX operators in lower case.
		dep5 := strings.NewReplacer(" AND ", " and ", " OR ", " or ")
		p := &copyrightParagraph{licence: dep5.Replace(cmp.Or(d.distAs, m.expr))}
		texts := d.texts
		if len(texts) == 0 {
			texts = m.files
		}
		var holders []string
		read := func(name string) string {
			b, err := os.ReadFile(filepath.Join(m.dir, name))
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range strings.Split(string(b), "\n") {
				if sm := copyrightLineRE.FindStringSubmatch(strings.TrimRight(l, "\r")); sm != nil {
					if h := strings.TrimSpace(sm[2]); !slices.Contains(holders, h) {
						holders = append(holders, h)
					}
				}
			}
			return string(b)
		}
		if p.licence != "Apache-2.0" {
			var parts []string
			for _, name := range texts {
				parts = append(parts, read(name))
			}
			p.text = strings.Join(parts, "\n")
		} else {
			for _, name := range texts {
				read(name)
			}
		}
		entries, _ := os.ReadDir(m.dir)
		var notices []string
		for _, e := range entries {
			if e.Type().IsRegular() && noticeFileRE.MatchString(e.Name()) && m.path != "std" {
				notices = append(notices, strings.TrimSpace(read(e.Name())))
			}
		}
		p.notices = strings.Join(notices, "\n\n")
		if len(holders) == 0 {
			holders = []string{"the " + m.path + " authors"}
		}
		p.copyright = strings.Join(holders, "\n")
		name, file := m.path+" "+m.version, "vendor/"+m.path+"/*"
		if m.path == "std" {
			name, file = "the Go standard library", "go/src/*"
		}
		if d.distAs != "" {
			name += " (" + d.expr + ", distributed under " + d.distAs + ")"
		}
		if i := slices.IndexFunc(paras, func(q *copyrightParagraph) bool {
			return q.licence == p.licence && q.copyright == p.copyright && q.notices == p.notices && q.text == p.text
		}); i >= 0 {
			paras[i].files = append(paras[i].files, file)
			paras[i].versions = append(paras[i].versions, name)
			continue
		}
		p.files, p.versions = []string{file}, []string{name}
		paras = append(paras, p)
	}

	var b strings.Builder
	for i, p := range paras {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString("Files: " + strings.Join(p.files, "\n "))
		b.WriteString("\nCopyright: " + strings.TrimPrefix(field(p.copyright), " "))
		if p.text != "" {
			b.WriteString("License: " + p.licence + "\n" + field(p.text))
		} else {
			b.WriteString("License: " + p.licence + "\n")
		}
		comment := "Linked: " + strings.Join(p.versions, ", ") + "."
		if p.notices != "" {
			comment += "\n\n" + p.notices
		}
		b.WriteString("Comment:\n" + field(comment))
	}
	return b.String()
}

// TestDebianCopyright: the copyright file's template holds fieldgate's
// paragraph, the Apache-2.0 licence and the place for the modules'
// paragraphs, and those paragraphs can be written for every module linked
// into the binaries: each with its copyright lines, licence text (Apache-2.0
// refers to the standalone paragraph) and notices. With
// FIELDGATE_COPYRIGHT_OUT=FILE (build.sh) it writes them to FILE.
func TestDebianCopyright(t *testing.T) {
	paras := debianCopyright(t, linkedModules(t))
	if out := os.Getenv("FIELDGATE_COPYRIGHT_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(paras), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tmpl, err := os.ReadFile(copyrightFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(tmpl), "\n")
	for _, want := range []string{
		"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
		"Source: https://github.com/fieldgate/fieldgate",
		"Files: *", "Copyright: @YEARS@ the fieldgate authors", "License: Apache-2.0",
		` can be found in "/usr/share/common-licenses/Apache-2.0".`,
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("%s has no line %q", copyrightFile, want)
		}
	}
	if n := strings.Count(string(tmpl), "\n@MODULES@\n"); n != 1 {
		t.Errorf("%s has %d lines @MODULES@, want 1 (where build.sh puts the modules' paragraphs)", copyrightFile, n)
	}
	for _, want := range []string{"Files: vendor/go.etcd.io/bbolt/*\n", "go/src/*\n", "License: Apache-2.0\n", "License: MIT\n", "License: BSD-3-Clause\n"} {
		if !strings.Contains(paras, want) {
			t.Errorf("the modules' copyright paragraphs lack %q", want)
		}
	}
}
