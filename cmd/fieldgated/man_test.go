// SPDX-License-Identifier: Apache-2.0

package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/internal/manpage"
)

var update = flag.Bool("update", false, "rewrite the generated man pages and docs/config.md")

const (
	manDir     = "../../systemd/deb/man/"
	configMD   = "../../docs/config.md"
	configGo   = "../../daemon/config/config.go"
	regenerate = "go test ./cmd/fieldgated -run TestManPage -update"
)

// daemonPage is fieldgated(8): its flags, from the flag set the binary
// parses, and the prose around them.
func daemonPage() manpage.Page {
	fs, _, _, _ := newFlagSet(io.Discard)
	return manpage.Page{
		Name: "fieldgated", Section: "8", Manual: "System Administration",
		Summary: "industrial firmware update gateway daemon",
		Sections: []manpage.Section{
			{Title: "SYNOPSIS", Blocks: []manpage.Block{manpage.Lines{
				"`fieldgated` [`--config` FILE]",
				"`fieldgated --check-config` FILE",
				"`fieldgated --version`",
			}}},
			{Title: "DESCRIPTION", Blocks: manpage.Text(`
` + "`fieldgated`" + ` pulls TUF-signed firmware and software updates, verifies them
(integrity, authenticity, freshness, rollback) and pushes them to the field
devices behind the gateway, only inside configured maintenance windows and
only with the approvals the site requires. It reports its state and every job
over MQTT, keeps an audit chain, and shows its state on the gateway's LEDs.

It runs as the systemd service fieldgated.service (Type=notify, with a
watchdog) as the system user fieldgate. The service starts only once
/etc/fieldgate/fieldgated.yaml exists; fieldgated.yaml(5) describes every key.
` + "`fieldgatectl`" + ` controls the running daemon over its local socket.`)},
			{Title: "OPTIONS", Blocks: []manpage.Block{manpage.Flags(fs)}},
			{Title: "SIGNALS", Blocks: []manpage.Block{manpage.Defs{
				{Term: "SIGTERM, SIGINT", Text: "Stop: no new device step starts; a write to a device already in flight finishes under its own deadline, then the final status is flushed and the daemon exits with status 0. A job interrupted this way resumes at the next start."},
			}, manpage.Para("No other signal is handled. To apply a changed configuration, check it with `--check-config` and restart the service.")}},
			{Title: "ENVIRONMENT", Blocks: []manpage.Block{manpage.Defs{
				{Term: "`FIELDGATE_GATEWAY_STATE_DIR`, `FIELDGATE_GATEWAY_SOCKET`, `FIELDGATE_GATEWAY_LOG_LEVEL`, `FIELDGATE_MQTT_BROKER`",
					Text: "Override the configuration keys gateway.state_dir, gateway.socket, gateway.log_level and mqtt.broker."},
				{Term: "`NOTIFY_SOCKET`", Text: "Set by systemd: readiness (READY=1), STATUS= lines with the gateway's state, and STOPPING=1 go there."},
				{Term: "`WATCHDOG_USEC`, `WATCHDOG_PID`", Text: "Set by systemd (WatchdogSec=): the daemon sends WATCHDOG=1 at half the interval while its update loop is alive, so a hung daemon is restarted."},
				{Term: "`JOURNAL_STREAM`", Text: "Set by systemd when standard error goes to the journal: log lines then carry no time of their own, and their level travels as a syslog priority, so `journalctl -p warning -u fieldgated` shows the warnings."},
			}}},
			{Title: "FILES", Blocks: []manpage.Block{manpage.Defs{
				{Term: "/etc/fieldgate/fieldgated.yaml", Text: "The configuration (YAML); see fieldgated.yaml(5). Unknown or misspelt keys are errors."},
				{Term: "/etc/fieldgate/fieldgated.yaml.example", Text: "An annotated example of every key."},
				{Term: "/etc/fieldgate/root.json", Text: "The repository's trusted root metadata, where tuf.trusted_root usually points."},
				{Term: "/var/lib/fieldgate", Text: "Durable state (gateway.state_dir): the job store state.db with the audit chain, anti-rollback floors and outbox, the TUF metadata cache tuf/, and the verified blobs blobs/."},
				{Term: "/run/fieldgate/fieldgated.sock", Text: "The local control socket (gateway.socket) used by fieldgatectl(1)."},
			}}},
			{Title: "EXIT STATUS", Blocks: []manpage.Block{manpage.Para(
				"0 when stopped by a signal, and for `--version` and a `--check-config` that found no problem; 1 on any error, and when `--check-config` found a problem (each is printed on standard output).")}},
			{Title: "SEE ALSO", Blocks: []manpage.Block{manpage.Para(
				"fieldgated.yaml(5), fieldgatectl(1), fieldgate-repo(1), fieldgate-sim(1), systemctl(1), journalctl(1)")}},
		},
	}
}

// configPage is fieldgated.yaml(5): every key of the configuration
// schema, by reflection over config.Config with the defaults Load fills
// in and the doc comments of daemon/config/config.go, then every driver's
// options as the drivers read them. It fails t when a key or an option has
// no description.
func configPage(t *testing.T) manpage.Page {
	t.Helper()
	docs := fieldDocs(t)
	cfg := loadDefaults(t)
	p := manpage.Page{
		Name: "fieldgated.yaml", Section: "5", Manual: "File Formats",
		Summary: "configuration of the fieldgate update gateway",
		Sections: []manpage.Section{
			{Title: "SYNOPSIS", Blocks: []manpage.Block{manpage.Para("/etc/fieldgate/fieldgated.yaml")}},
			{Title: "DESCRIPTION", Blocks: manpage.Text(`
fieldgated(8) reads one YAML file. Unknown or misspelt keys are errors, named
with their line; ` + "`fieldgated --check-config FILE`" + ` prints every problem at
once and exits non-zero. Durations are Go durations (90s, 15m, 1h30m). Keys of
lists are written with [] (windows[].name is the name of each window). A key
that is not set takes the default shown; keys without one are empty unless
their description says otherwise.

This page is generated from the code (the configuration schema and the
drivers), so it lists exactly what the installed version accepts.`)},
		},
	}
	var missing []string
	rt := reflect.TypeOf(cfg).Elem()
	rv := reflect.ValueOf(cfg).Elem()
	for i := range rt.NumField() {
		f := rt.Field(i)
		name := yamlName(f)
		s := manpage.Section{Title: strings.ToUpper(name)}
		if d := keyNames(indirect(f.Type), docs[typeName(f.Type)]); d != "" {
			s.Blocks = append(s.Blocks, manpage.Para(d))
		}
		var defs manpage.Defs
		var subs []manpage.Section
		walkKeys(f.Type, rv.Field(i), name, docs, &defs, &subs, &missing)
		s.Blocks = append(s.Blocks, defs)
		p.Sections = append(p.Sections, s)
		p.Sections = append(p.Sections, subs...)
	}
	if len(missing) > 0 {
		t.Errorf("%s: these fields have no doc comment, which fieldgated.yaml(5) needs:\n%s", configGo, strings.Join(missing, "\n"))
	}
	p.Sections = append(p.Sections, deviceOptions(t)...)
	p.Sections = append(p.Sections,
		manpage.Section{Title: "EXAMPLE", Blocks: []manpage.Block{manpage.Para(
			"/etc/fieldgate/fieldgated.yaml.example (daemon/config/example.yaml in the source) shows every key with its default or an example.")}},
		manpage.Section{Title: "SEE ALSO", Blocks: []manpage.Block{manpage.Para(
			"fieldgated(8), fieldgatectl(1), fieldgate-repo(1)")}})
	return p
}

// walkKeys adds the keys of the value v of type typ below path to defs;
// a nested struct that is not a list item (mqtt.embedded) becomes its
// own subsection in subs.
func walkKeys(typ reflect.Type, v reflect.Value, path string, docs map[string]string, defs *manpage.Defs, subs *[]manpage.Section, missing *[]string) {
	switch {
	case typ.Kind() == reflect.Slice && typ.Elem().Kind() == reflect.Struct:
		typ, path = typ.Elem(), path+"[]"
		if v.Len() > 0 {
			v = v.Index(0)
		} else {
			v = reflect.Zero(typ)
		}
	case typ.Kind() == reflect.Map && typ.Elem().Kind() == reflect.Struct:
		typ, path = typ.Elem(), path+".NAME"
		if it := v.MapRange(); it.Next() {
			v = it.Value()
		} else {
			v = reflect.Zero(typ)
		}
	}
	for i := range typ.NumField() {
		f := typ.Field(i)
		key := path + "." + yamlName(f)
		doc := keyNames(typ, docs[typ.Name()+"."+f.Name])
		if doc == "" {
			*missing = append(*missing, typ.Name()+"."+f.Name+" ("+key+")")
		}
		ft := f.Type
		if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Duration]() {
			var sub manpage.Defs
			walkKeys(ft, v.Field(i), key, docs, &sub, subs, missing)
			*subs = append(*subs, manpage.Section{Title: key, Sub: true, Blocks: []manpage.Block{manpage.Para(doc), sub}})
			continue
		}
		if (ft.Kind() == reflect.Slice || ft.Kind() == reflect.Map) && ft.Elem().Kind() == reflect.Struct {
			*defs = append(*defs, manpage.Def{Term: "`" + key + "`", Text: doc})
			walkKeys(ft, v.Field(i), key, docs, defs, subs, missing)
			continue
		}
		*defs = append(*defs, manpage.Def{Term: "`" + key + "` (" + kindOf(ft) + defaultOf(key, v.Field(i)) + ")", Text: doc})
	}
}

// keyNames writes the Go names of typ's fields in doc as the keys a
// configuration file uses ("StateDir holds" → "`state_dir` holds"), and
// makes doc a sentence.
func keyNames(typ reflect.Type, doc string) string {
	if doc == "" {
		return ""
	}
	words := strings.Fields(doc)
	for i, w := range words {
		core := strings.TrimRight(w, ".,;:)")
		f, ok := typ.FieldByName(core)
		if !ok || core == "" || core[0] < 'A' || core[0] > 'Z' {
			continue
		}
		// A name that is also a type or an abbreviation (Sparkplug, LEDs)
		// stays a word of the prose unless it opens the comment.
		if i > 0 && (f.Type.Name() == f.Name || len(core) > 1 && core[1] >= 'A' && core[1] <= 'Z') {
			continue
		}
		words[i] = "`" + yamlName(f) + "`" + w[len(core):]
	}
	return sentence(strings.Join(words, " "))
}

// sentence gives a description a capital first letter and a full stop.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	if s[0] >= 'a' && s[0] <= 'z' {
		s = strings.ToUpper(s[:1]) + s[1:]
	}
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

func indirect(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	return t
}

func kindOf(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return "duration"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Int:
		return "whole number"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "list of strings"
	case t.Kind() == reflect.Map && t.Elem().Kind() == reflect.String:
		return "map of strings"
	}
	panic(fmt.Sprintf("fieldgated.yaml(5): no kind for %s: add one", t))
}

// setByLoad lists the keys loadDefaults sets itself, whose values are not
// defaults.
var setByLoad = []string{"gateway.id", "gateway.site", "windows[].name", "groups[].name", "devices[].id", "approvers[].name", "board.buttons.NAME.pin", "board.leds.NAME.pin"}

func defaultOf(key string, v reflect.Value) string {
	if slices.Contains(setByLoad, key) || v.IsZero() {
		return ""
	}
	switch x := v.Interface().(type) {
	case time.Duration:
		return ", default " + devices.FormatDuration(x)
	case string:
		return ", default `" + x + "`"
	case int:
		return ", default " + strconv.Itoa(x)
	}
	return fmt.Sprintf(", default `%v`", v.Interface())
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

func typeName(t reflect.Type) string { return indirect(t).Name() }

// loadDefaults loads a configuration with one entry in every list and map
// and nothing else set but the names the entries need, so that every
// default Load fills in is there to read. Defaults derived from the
// gateway's id and site show as <gateway.id> and <gateway.site>.
func loadDefaults(t *testing.T) *config.Config {
	t.Helper()
	for _, k := range []string{"FIELDGATE_GATEWAY_STATE_DIR", "FIELDGATE_GATEWAY_SOCKET", "FIELDGATE_GATEWAY_LOG_LEVEL", "FIELDGATE_MQTT_BROKER"} {
		t.Setenv(k, "")
	}
	path := filepath.Join(t.TempDir(), "fieldgated.yaml")
	yaml := `
gateway: {id: "<gateway.id>", site: "<gateway.site>"}
windows: [{name: w}]
groups: [{name: g}]
devices: [{id: d}]
approvers: [{name: a}]
board: {buttons: {b: {pin: p}}, leds: {l: {pin: p}}}
`
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// fieldDocs reads the doc comments of package daemon/config (config.go and
// the files beside it, such as metrics.go): each struct type's ("Gateway")
// and each field's ("Gateway.ID"), the comment above a field or, failing
// that, the one at the end of its line.
func fieldDocs(t *testing.T) map[string]string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(filepath.Dir(configGo), "*.go"))
	if err != nil || len(names) == 0 {
		t.Fatalf("the files of daemon/config: %v", err)
	}
	docs := map[string]string{}
	text := func(cgs ...*ast.CommentGroup) string {
		for _, cg := range cgs {
			if s := strings.TrimSpace(cg.Text()); s != "" {
				return strings.Join(strings.Fields(s), " ")
			}
		}
		return ""
	}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				docs[ts.Name.Name] = text(ts.Doc, gd.Doc)
				for _, fl := range st.Fields.List {
					for _, n := range fl.Names {
						docs[ts.Name.Name+"."+n.Name] = text(fl.Doc, fl.Comment)
					}
				}
			}
		}
	}
	return docs
}

// deviceOptions is the DEVICE OPTIONS section: a subsection per driver
// (or per set of drivers with the same options) with what Describe lists.
func deviceOptions(t *testing.T) []manpage.Section {
	t.Helper()
	reg := drivers()
	out := []manpage.Section{{Title: "DEVICE OPTIONS", Blocks: manpage.Text(`
Each device's ` + "`protocol`" + ` names its driver; ` + "`address`" + ` and ` + "`baud`" + ` mean what the
driver says, and ` + "`options`" + ` holds the driver's own settings, all written as
strings. A key the driver does not read is an error. The drivers linked
into this fieldgated are: ` + strings.Join(reg.Names(), ", ") + `.`)}}
	type group struct {
		names []string
		docs  []string
		opts  []devices.Option
	}
	var groups []group
	for _, name := range reg.Names() {
		d := reg[name]
		opts, err := d.Describe()
		if err != nil {
			t.Error(err)
		}
		if n := len(groups); n > 0 && slices.Equal(groups[n-1].opts, opts) {
			groups[n-1].names = append(groups[n-1].names, name)
			groups[n-1].docs = append(groups[n-1].docs, d.Doc)
			continue
		}
		groups = append(groups, group{names: []string{name}, docs: []string{d.Doc}, opts: opts})
	}
	for _, g := range groups {
		s := manpage.Section{Title: strings.Join(g.names, ", "), Sub: true}
		for i, doc := range g.docs {
			if len(g.docs) > 1 {
				doc = "`" + g.names[i] + "`: " + doc
			}
			s.Blocks = append(s.Blocks, manpage.Para(doc))
		}
		var defs manpage.Defs
		for _, o := range g.opts {
			var attrs []string
			switch {
			case o.Kind == "one of":
				attrs = append(attrs, "one of "+o.Values)
			case strings.Contains(o.Values, ".."):
				attrs = append(attrs, o.Kind+" "+o.Values)
			case o.Values != "":
				attrs = append(attrs, o.Kind, o.Values)
			case o.Kind != "value": // Func: the description says what it takes
				attrs = append(attrs, o.Kind)
			}
			sep := ", "
			if o.Values != "" {
				sep = "; "
			}
			if o.Default != "" {
				v := o.Default
				if strings.TrimSpace(v) != v {
					v = strconv.Quote(v)
				}
				attrs = append(attrs, "default `"+v+"`")
			}
			term := "`" + o.Key + "`"
			if len(attrs) > 0 {
				term += " (" + strings.Join(attrs[:len(attrs)-1], ", ")
				if len(attrs) > 1 {
					term += sep
				}
				term += attrs[len(attrs)-1] + ")"
			}
			defs = append(defs, manpage.Def{Term: term, Text: sentence(o.Doc)})
		}
		if len(defs) == 0 {
			s.Blocks = append(s.Blocks, manpage.Para("No options."))
		} else {
			s.Blocks = append(s.Blocks, defs)
		}
		out = append(out, s)
	}
	return out
}

// TestManPage keeps fieldgated(8), fieldgated.yaml(5) and docs/config.md
// generated from the code: `go test ./cmd/fieldgated -run TestManPage
// -update` rewrites them.
func TestManPage(t *testing.T) {
	manpage.Golden(t, manDir+"fieldgated.8", daemonPage().Roff(), *update, regenerate)
	p := configPage(t)
	manpage.Golden(t, manDir+"fieldgated.yaml.5", p.Roff(), *update, regenerate)
	manpage.Golden(t, configMD, p.Markdown(), *update, regenerate)
}

// TestInteropManPage renders both pages with groff as man(1) does, every
// warning on.
func TestInteropManPage(t *testing.T) {
	manpage.Lint(t, "fieldgated.8", daemonPage().Roff())
	manpage.Lint(t, "fieldgated.yaml.5", configPage(t).Roff())
}
