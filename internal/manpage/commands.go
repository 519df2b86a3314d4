// SPDX-License-Identifier: Apache-2.0

package manpage

import (
	"flag"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Cobra returns the page of a cobra program: one page with every command,
// as an operator reads `man fieldgatectl`. NAME comes from root's Short,
// SYNOPSIS from root's and its commands' use lines, OPTIONS from root's
// flags, and COMMANDS has a subsection per available command, depth
// first, with its use line, Long (or Short) text, its own flags and its
// Example. description opens the page; extra sections (FILES, EXIT
// STATUS, SEE ALSO…) follow COMMANDS.
func Cobra(root *cobra.Command, section, manual string, description []Block, extra ...Section) Page {
	root.InitDefaultVersionFlag()
	p := Page{Name: root.Name(), Section: section, Manual: manual, Summary: lowerFirst(root.Short)}
	synopsis := Lines{"`" + root.Name() + "` [OPTIONS] COMMAND [ARGS]"}
	p.Sections = append(p.Sections,
		Section{Title: "SYNOPSIS", Blocks: []Block{synopsis}},
		Section{Title: "DESCRIPTION", Blocks: description})
	if opts := pflags(root.LocalFlags()); len(opts) > 0 {
		p.Sections = append(p.Sections, Section{Title: "OPTIONS", Blocks: []Block{opts}})
	}
	var cmds []Section
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if !sub.IsAvailableCommand() || sub.IsAdditionalHelpTopicCommand() {
				continue
			}
			cmds = append(cmds, command(sub))
			walk(sub)
		}
	}
	walk(root)
	if len(cmds) > 0 {
		p.Sections = append(p.Sections, Section{Title: "COMMANDS", Blocks: []Block{
			Para("Every command takes `--help`. The options of a command that has subcommands apply to those too, as do the OPTIONS above.")}})
		p.Sections = append(p.Sections, cmds...)
	}
	p.Sections = append(p.Sections, extra...)
	return p
}

func command(c *cobra.Command) Section {
	use := strings.TrimPrefix(c.CommandPath(), c.Root().Name()+" ")
	s := Section{Title: use, Sub: true}
	line := c.CommandPath()
	if rest := strings.TrimPrefix(c.Use, c.Name()); rest != "" {
		line += rest
	}
	s.Blocks = append(s.Blocks, Lines{"`" + c.CommandPath() + "`" + strings.TrimPrefix(line, c.CommandPath())})
	text := c.Long
	if text == "" {
		text = c.Short
	}
	s.Blocks = append(s.Blocks, Text(sentence(text))...)
	if opts := pflags(c.LocalFlags()); len(opts) > 0 {
		s.Blocks = append(s.Blocks, opts)
	}
	if c.Example != "" {
		s.Blocks = append(s.Blocks, Code(strings.Trim(dedent(c.Example), "\n")))
	}
	return s
}

// pflags describes the flags of fs, but for --help.
func pflags(fs *pflag.FlagSet) Defs {
	var d Defs
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Deprecated != "" || f.Name == "help" {
			return
		}
		term := "`--" + f.Name + "`"
		if f.Shorthand != "" && f.ShorthandDeprecated == "" {
			term = "`-" + f.Shorthand + "`, " + term
		}
		name, usage := pflag.UnquoteUsage(f)
		if name != "" && f.NoOptDefVal == "" {
			term += " " + name
		}
		if f.Name == "version" && strings.HasPrefix(usage, "version for ") { // cobra's own
			usage = "print the version and exit"
		}
		d = append(d, Def{Term: term, Text: usage + defaultNote(f.DefValue)})
	})
	return d
}

// Flags describes a standard library flag set, each flag written with two
// dashes (the flag package accepts both) and its value named as the
// flag's usage names it with backquotes.
func Flags(fs *flag.FlagSet) Defs {
	var d Defs
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		term := "`--" + f.Name + "`"
		if name != "" {
			term += " " + name
		}
		d = append(d, Def{Term: term, Text: usage + defaultNote(f.DefValue)})
	})
	return d
}

func defaultNote(v string) string {
	switch v {
	case "", "false", "0", "[]", "map[]", "0s":
		return ""
	}
	return " (default `" + v + "`)"
}

func dedent(s string) string {
	blocks := Text(s)
	if len(blocks) == 1 {
		if c, ok := blocks[0].(Code); ok {
			return string(c)
		}
	}
	return s
}

// sentence makes a command's Short text a sentence: capital first, a
// full stop at the end.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.ContainsAny(s[len(s)-1:], ".:!?") && !strings.Contains(s, "\n") {
		s += "."
	}
	return s
}

// lowerFirst lower-cases a leading capital unless the word is an
// abbreviation (TUF, MQTT).
func lowerFirst(s string) string {
	if len(s) > 1 && s[0] >= 'A' && s[0] <= 'Z' && !(s[1] >= 'A' && s[1] <= 'Z') {
		return strings.ToLower(s[:1]) + s[1:]
	}
	return s
}
