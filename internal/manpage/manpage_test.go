// SPDX-License-Identifier: Apache-2.0

package manpage

import (
	"strings"
	"testing"
)

func TestRoff(t *testing.T) {
	p := Page{Name: "x-y", Section: "1", Manual: "User Commands", Summary: "a tool",
		Sections: []Section{{Title: "options", Blocks: []Block{
			Para(".starts with a dot, has a `--flag` and a back\\slash — and ü"),
			Defs{{Term: "`--out` FILE", Text: "where\n\nsecond"}},
			Code("a -b\n\n.c"),
		}}}}
	got := string(p.Roff())
	for _, want := range []string{
		".TH X\\-Y 1 \"\" \"fieldgate\" \"User Commands\"\n",
		".SH NAME\nx\\-y \\- a tool\n",
		".SH \"OPTIONS\"\n",
		"\\&.starts with a dot, has a \\fB\\-\\-flag\\fR and a back\\eslash \\[u2014] and \\[u00FC]\n",
		".TP\n\\fB\\-\\-out\\fR FILE\nwhere\n.IP\nsecond\n",
		".nf\na \\-b\n\\&\n\\&.c\n.fi\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Roff() = %s\nwant it to contain %q", got, want)
		}
	}
}

func TestMarkdown(t *testing.T) {
	p := Page{Name: "f.yaml", Section: "5", Summary: "s", Sections: []Section{{Title: "KEYS", Blocks: []Block{
		Defs{{Term: "`a_b` (default `<id>`)", Text: "uses a_b and <id> * 2"}},
	}}}}
	got := string(p.Markdown())
	want := "- `a_b` (default `<id>`)\\\n  uses a\\_b and &lt;id&gt; \\* 2\n"
	if !strings.Contains(got, want) {
		t.Errorf("Markdown() = %q, want it to contain %q", got, want)
	}
}

func TestText(t *testing.T) {
	got := Text("para one\nstill one\n\n    code\n      more\n\npara two")
	if len(got) != 3 || got[0] != Para("para one\nstill one") || got[1] != Code("code\n  more") || got[2] != Para("para two") {
		t.Errorf("Text() = %#v", got)
	}
}
