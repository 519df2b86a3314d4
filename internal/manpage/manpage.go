// SPDX-License-Identifier: Apache-2.0

// Package manpage builds the reference pages that ship with fieldgate
// (man pages and their Markdown twins) from the code they describe: the
// commands' flag sets, the configuration schema, the drivers' options.
// Only tests import it (each command's TestManPage), so nothing of it is
// linked into a binary.
//
// A Page is a small document model rendered two ways: Roff for man(7),
// with every hyphen, backslash and non-ASCII character escaped and no date
// (builds are reproducible), and Markdown for the repository's docs. The
// only inline markup is `code`, bold in roff.
package manpage

import (
	"fmt"
	"strings"
)

// Page is one manual page.
type Page struct {
	Name     string // "fieldgatectl", "fieldgated.yaml"
	Section  string // "1", "5", "8"
	Manual   string // "User Commands", "File Formats", "System Administration"
	Summary  string // the NAME line after the dash
	Sections []Section
}

// Section is a titled part of a page: .SH, or .SS when Sub.
type Section struct {
	Title  string
	Sub    bool
	Blocks []Block
}

// Block is a paragraph-level part of a section: Para, Code, Lines or Defs.
type Block interface{ block() }

// Para is a filled paragraph.
type Para string

// Code is literal text shown as written (examples, file contents).
type Code string

// Lines are lines kept apart but filled and marked up (a synopsis).
type Lines []string

// Defs is a list of terms, each with its description (options, keys).
type Defs []Def

// Def is one term and its description; Text may hold paragraphs
// separated by a blank line.
type Def struct{ Term, Text string }

func (Para) block()  {}
func (Code) block()  {}
func (Lines) block() {}
func (Defs) block()  {}

// Text splits s into paragraphs at blank lines; a paragraph whose lines
// are all indented is Code, with the common indentation removed. It reads
// the Long text of a command.
func Text(s string) []Block {
	var out []Block
	for _, p := range strings.Split(strings.TrimSpace(s), "\n\n") {
		p = strings.Trim(p, "\n")
		if p == "" {
			continue
		}
		lines := strings.Split(p, "\n")
		indented := true
		for _, l := range lines {
			indented = indented && (strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t"))
		}
		if !indented {
			out = append(out, Para(p))
			continue
		}
		cut := -1
		for _, l := range lines {
			n := len(l) - len(strings.TrimLeft(l, " \t"))
			if cut < 0 || n < cut {
				cut = n
			}
		}
		for i, l := range lines {
			lines[i] = l[cut:]
		}
		out = append(out, Code(strings.Join(lines, "\n")))
	}
	return out
}

// Roff renders p for man(7).
func (p Page) Roff() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH %s %s \"\" \"fieldgate\" %q\n", roffText(strings.ToUpper(p.Name)), p.Section, p.Manual)
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s\n", roffText(p.Name), roffText(p.Summary))
	for _, s := range p.Sections {
		if s.Sub {
			fmt.Fprintf(&b, ".SS %s\n", roffArg(s.Title))
		} else {
			fmt.Fprintf(&b, ".SH %s\n", roffArg(strings.ToUpper(s.Title)))
		}
		for i, bl := range s.Blocks {
			roffBlock(&b, bl, i == 0)
		}
	}
	return []byte(b.String())
}

func roffBlock(b *strings.Builder, bl Block, first bool) {
	switch bl := bl.(type) {
	case Para:
		if !first {
			b.WriteString(".PP\n")
		}
		b.WriteString(roffLines(string(bl)))
	case Lines:
		if !first {
			b.WriteString(".PP\n")
		}
		for i, l := range bl {
			if i > 0 {
				b.WriteString(".br\n")
			}
			b.WriteString(roffLines(l))
		}
	case Code:
		if !first {
			b.WriteString(".PP\n")
		}
		b.WriteString(".RS 4\n.nf\n")
		for _, l := range strings.Split(string(bl), "\n") {
			if l == "" {
				b.WriteString("\\&\n")
				continue
			}
			b.WriteString(roffText(l) + "\n")
		}
		b.WriteString(".fi\n.RE\n")
	case Defs:
		for _, d := range bl {
			b.WriteString(".TP\n" + roffLines(d.Term))
			for i, p := range strings.Split(strings.TrimSpace(d.Text), "\n\n") {
				if i > 0 {
					b.WriteString(".IP\n")
				}
				b.WriteString(roffLines(p))
			}
		}
	}
}

// roffLines renders text lines with `code` in bold.
func roffLines(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		parts := strings.Split(l, "`")
		var line strings.Builder
		for i, part := range parts {
			if i%2 == 1 && i < len(parts)-1 {
				line.WriteString("\\fB" + roffText(part) + "\\fR")
				continue
			}
			if i%2 == 1 { // an unpaired backquote
				line.WriteString("`")
			}
			line.WriteString(roffText(part))
		}
		out := line.String()
		if strings.HasPrefix(out, ".") || strings.HasPrefix(out, "'") {
			out = "\\&" + out
		}
		b.WriteString(out + "\n")
	}
	return b.String()
}

// roffText escapes s for roff: backslashes, minus signs, a control
// character at the start of a line, and every non-ASCII character as a
// Unicode escape, so the page needs no preprocessor for its encoding.
func roffText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\e`)
		case r == '-':
			b.WriteString(`\-`)
		case r == '\t':
			b.WriteString("        ")
		case r > 0x7e:
			fmt.Fprintf(&b, `\[u%04X]`, r)
		default:
			b.WriteRune(r)
		}
	}
	out := b.String()
	if strings.HasPrefix(out, ".") || strings.HasPrefix(out, "'") {
		out = `\&` + out
	}
	return out
}

// roffArg quotes a macro argument.
func roffArg(s string) string {
	return `"` + strings.ReplaceAll(roffText(s), `"`, `\(dq`) + `"`
}

// Markdown renders p as a Markdown document for the repository.
func (p Page) Markdown() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s(%s)\n\n%s \u2014 %s\n", p.Name, p.Section, p.Name, mdLines(p.Summary))
	for _, s := range p.Sections {
		level := "##"
		if s.Sub {
			level = "###"
		}
		fmt.Fprintf(&b, "\n%s %s\n", level, mdLines(s.Title))
		for _, bl := range s.Blocks {
			b.WriteString("\n")
			switch bl := bl.(type) {
			case Para:
				b.WriteString(mdLines(string(bl)) + "\n")
			case Lines:
				for i, l := range bl {
					sep := "\\\n"
					if i == len(bl)-1 {
						sep = "\n"
					}
					b.WriteString(mdLines(l) + sep)
				}
			case Code:
				b.WriteString("```\n" + string(bl) + "\n```\n")
			case Defs:
				for _, d := range bl {
					b.WriteString("- " + mdLines(d.Term) + "\\\n")
					for i, p := range strings.Split(strings.TrimSpace(d.Text), "\n\n") {
						if i > 0 {
							b.WriteString("\n")
						}
						for _, l := range strings.Split(mdLines(p), "\n") {
							b.WriteString("  " + l + "\n")
						}
					}
				}
			}
		}
	}
	return []byte(b.String())
}

// mdLines escapes what Markdown would take for markup outside `code`.
func mdLines(s string) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		parts := strings.Split(l, "`")
		for i := range parts {
			if i%2 == 1 && i < len(parts)-1 {
				continue // inside a code span
			}
			parts[i] = mdEscaper.Replace(parts[i])
		}
		l = strings.Join(parts, "`")
		if strings.HasPrefix(l, "#") || strings.HasPrefix(l, "- ") || strings.HasPrefix(l, "+ ") {
			l = `\` + l
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

var mdEscaper = strings.NewReplacer(`\`, `\\`, `*`, `\*`, `_`, `\_`, `<`, `&lt;`, `>`, `&gt;`, `[`, `\[`, `]`, `\]`, `|`, `\|`)
