// SPDX-License-Identifier: Apache-2.0

package api_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/tuf"
)

// The enum lists of enums.go must hold every value the daemon can put on
// the wire. The values are declared where they are used (the daemon's
// state machine, its health table, daemon/mqtt, board), so this test
// reads that source: a value added there and not here fails.

// parseDir parses the non-test Go files of dir.
func parseDir(t *testing.T, dir string) []*ast.File {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		t.Fatalf("no Go files in %s", dir)
	}
	return files
}

func strLit(e ast.Expr) (string, bool) {
	b, ok := e.(*ast.BasicLit)
	if !ok || b.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(b.Value)
	return s, err == nil
}

// consts returns the string constants of the files whose name passes
// keep and whose declared type (if any) is typ ("" for any).
func consts(files []*ast.File, typ string, keep func(name string) bool) map[string]string {
	out := map[string]string{}
	for _, f := range files {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				if typ != "" {
					id, ok := vs.Type.(*ast.Ident)
					if !ok || id.Name != typ {
						continue
					}
				}
				for i, n := range vs.Names {
					if i < len(vs.Values) && keep(n.Name) {
						if s, ok := strLit(vs.Values[i]); ok {
							out[n.Name] = s
						}
					}
				}
			}
		}
	}
	return out
}

// funcDecl returns the function or method name in files.
func funcDecl(t *testing.T, files []*ast.File, name string) *ast.FuncDecl {
	t.Helper()
	for _, f := range files {
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == name {
				return fd
			}
		}
	}
	t.Fatalf("no func %s", name)
	return nil
}

// literalsIn returns every string literal inside n.
func literalsIn(n ast.Node) []string {
	var out []string
	ast.Inspect(n, func(n ast.Node) bool {
		if e, ok := n.(ast.Expr); ok {
			if s, ok := strLit(e); ok {
				out = append(out, s)
			}
		}
		return true
	})
	return out
}

// stateAssignments returns the literals assigned to a field State inside
// n, as x.State = "…" or State: "…".
func stateAssignments(n ast.Node) []string {
	var out []string
	ast.Inspect(n, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.AssignStmt:
			for i, l := range x.Lhs {
				if sel, ok := l.(*ast.SelectorExpr); ok && sel.Sel.Name == "State" && i < len(x.Rhs) {
					if s, ok := strLit(x.Rhs[i]); ok {
						out = append(out, s)
					}
				}
			}
		case *ast.KeyValueExpr:
			if k, ok := x.Key.(*ast.Ident); ok && k.Name == "State" {
				if s, ok := strLit(x.Value); ok {
					out = append(out, s)
				}
			}
		}
		return true
	})
	return out
}

func values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// sameSet reports the differences between the values the code declares
// (got) and the list.
func sameSet(t *testing.T, what string, got, list []string) {
	t.Helper()
	subset(t, what, got, list)
	for _, v := range list {
		if !slices.Contains(got, v) {
			t.Errorf("%s: %q is listed but the code declares no such value", what, v)
		}
	}
}

func subset(t *testing.T, what string, got, list []string) {
	t.Helper()
	if len(got) == 0 {
		t.Errorf("%s: found no value in the code (has it moved?)", what)
	}
	for _, v := range got {
		if !slices.Contains(list, v) {
			t.Errorf("%s: the code can publish %q, which the list does not have: add it to daemon/api/enums.go and docs/mqtt.md", what, v)
		}
	}
	if len(slices.Compact(slices.Sorted(slices.Values(list)))) != len(list) {
		t.Errorf("%s: the list has a repeated value: %q", what, list)
	}
}

func TestEnumsCoverTheDaemon(t *testing.T) {
	daemon := parseDir(t, "..")
	finals := []string{api.StepCommitted, api.StepRolledBack, api.StepFailed, api.StepSkipped}

	jobPhases := values(consts(daemon, "phase", func(n string) bool { return strings.HasPrefix(n, "job") }))
	stepPhases := values(consts(daemon, "phase", func(n string) bool { return strings.HasPrefix(n, "step") }))
	sameSet(t, "job phases (daemon/job.go)", jobPhases, api.JobPhases())
	sameSet(t, "step phases (daemon/job.go)", stepPhases, api.StepPhases())
	for _, v := range slices.Collect(slices.Values(finals)) {
		if !slices.Contains(stepPhases, v) {
			t.Errorf("final step phase %q is not a daemon step phase", v)
		}
	}

	// Health conditions: every &condition{name: …, severity: …}.
	var names []string
	ast.Inspect(&ast.File{Decls: declsOf(daemon)}, func(n ast.Node) bool {
		cl, ok := n.(*ast.CompositeLit)
		if id, isID := typeIdent(cl, ok); !isID || id != "condition" {
			return true
		}
		for _, el := range cl.Elts {
			kv, ok := el.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			s, _ := strLit(kv.Value)
			switch kv.Key.(*ast.Ident).Name {
			case "name":
				names = append(names, s)
			case "severity":
				if !slices.Contains(api.Severities(), s) {
					t.Errorf("condition severity %q is not in api.Severities", s)
				}
			}
		}
		return true
	})
	sameSet(t, "health conditions (daemon/health.go)", names, api.ConditionNames())

	// Event types: store.Event{Type: …}, recordTx/record's type, setStop's event.
	var types []string
	prefixed := map[string][]string{"job-": api.JobPhases(), "step-": api.StepPhases(), "command-": api.CommandStatuses()}
	eventType := func(e ast.Expr) {
		if s, ok := strLit(e); ok {
			types = append(types, s)
			return
		}
		if b, ok := e.(*ast.BinaryExpr); ok {
			p, ok := strLit(b.X)
			vals, known := prefixed[p]
			if !ok || !known {
				t.Errorf("event type %s + …: a prefix this test does not know; list its values", p)
				return
			}
			for _, v := range vals {
				types = append(types, p+v)
			}
		}
	}
	ast.Inspect(&ast.File{Decls: declsOf(daemon)}, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.CompositeLit:
			if sel, ok := x.Type.(*ast.SelectorExpr); ok && sel.Sel.Name == "Event" {
				for _, el := range x.Elts {
					if kv, ok := el.(*ast.KeyValueExpr); ok && kv.Key.(*ast.Ident).Name == "Type" {
						eventType(kv.Value)
					}
				}
			}
		case *ast.CallExpr:
			name := ""
			if sel, ok := x.Fun.(*ast.SelectorExpr); ok {
				name = sel.Sel.Name
			}
			switch {
			case (name == "recordTx" || name == "record") && len(x.Args) > 3:
				eventType(x.Args[3])
			case name == "setStop" && len(x.Args) > 2:
				eventType(x.Args[2])
			}
		}
		return true
	})
	subset(t, "event types (daemon/*.go)", types, api.EventTypes())

	// Device and gateway states.
	devStates := stateAssignments(funcDecl(t, daemon, "deviceDoc"))
	for _, p := range api.StepPhases() {
		if p != api.StepPending && !slices.Contains(finals, p) {
			devStates = append(devStates, p) // a device in a step shows the step's phase
		}
	}
	sameSet(t, "device states (daemon/report.go deviceDoc)", devStates, api.DeviceStates())
	sameSet(t, "gateway states (daemon/report.go gatewayDoc)", stateAssignments(funcDecl(t, daemon, "gatewayDoc")), api.GatewayStates())

	// Approvals.
	approval := func(n string) bool { return strings.HasPrefix(n, "Approval") }
	sameSet(t, "approval kinds (daemon/approval.go)", values(consts(daemon, "", approval)), api.ApprovalKinds())
	sameSet(t, "approval policies (daemon/config)", values(consts(parseDir(t, "../config"), "", approval)), api.ApprovalPolicies())

	// Commands.
	var statuses []string
	ast.Inspect(funcDecl(t, daemon, "handleCommand"), func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.CallExpr:
			if sel, ok := x.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "commandResult" && len(x.Args) > 2 {
				if s, ok := strLit(x.Args[2]); ok {
					statuses = append(statuses, s)
				}
			}
		case *ast.AssignStmt:
			if id, ok := x.Lhs[0].(*ast.Ident); ok && id.Name == "status" {
				if s, ok := strLit(x.Rhs[0]); ok {
					statuses = append(statuses, s)
				}
			}
		}
		return true
	})
	subset(t, "command statuses (daemon/command.go)", statuses, api.CommandStatuses())
	mq := parseDir(t, "../mqtt")
	sameSet(t, "command actions (daemon/mqtt)", values(consts(mq, "", func(n string) bool { return strings.HasPrefix(n, "Action") })), api.CommandActions())
	subset(t, "command reject reasons (mqtt.RejectReason)", literalsIn(funcDecl(t, mq, "RejectReason")), api.CommandRejectReasons())
	var reasons []string
	ast.Inspect(&ast.File{Decls: declsOf(mq)}, func(n ast.Node) bool {
		if c, ok := n.(*ast.CallExpr); ok {
			if sel, ok := c.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "status" && len(c.Args) == 3 {
				if s, ok := strLit(c.Args[1]); ok && s != "" {
					reasons = append(reasons, s)
				}
			}
		}
		return true
	})
	sameSet(t, "transport status reasons (daemon/mqtt)", reasons, api.TransportReasons())

	// The rest of the status document.
	sameSet(t, "LED patterns (board)", values(consts(parseDir(t, "../../board"), "Pattern", func(string) bool { return true })), api.LEDPatterns())
	sameSet(t, "display pages (daemon/display.go Page.String)", literalsIn(funcDecl(t, daemon, "String")), api.DisplayPages())
	sameSet(t, "target severities (tuf.Severities)", tuf.Severities, api.TargetSeverities())
}

func declsOf(files []*ast.File) []ast.Decl {
	var out []ast.Decl
	for _, f := range files {
		out = append(out, f.Decls...)
	}
	return out
}

// typeIdent returns the type name of a composite literal &T{…} or T{…}.
func typeIdent(cl *ast.CompositeLit, ok bool) (string, bool) {
	if !ok || cl == nil {
		return "", false
	}
	id, ok := cl.Type.(*ast.Ident)
	if !ok {
		return "", false
	}
	return id.Name, true
}

// TestEnumsDocumented: docs/mqtt.md has a table for each enum, under a
// heading that names its list (`api.JobPhases`), whose first column holds
// exactly the listed values.
func TestEnumsDocumented(t *testing.T) {
	raw, err := os.ReadFile("../../docs/mqtt.md")
	if err != nil {
		t.Fatal(err)
	}
	lists := map[string][]string{
		"GatewayStates": api.GatewayStates(), "Severities": api.Severities(), "ConditionNames": api.ConditionNames(),
		"DeviceStates": api.DeviceStates(), "DeviceProtocols": api.DeviceProtocols(), "JobPhases": api.JobPhases(), "StepPhases": api.StepPhases(),
		"ApprovalKinds": api.ApprovalKinds(), "ApprovalPolicies": api.ApprovalPolicies(),
		"TargetSeverities": api.TargetSeverities(), "LEDPatterns": api.LEDPatterns(), "DisplayPages": api.DisplayPages(),
		"EventTypes": api.EventTypes(), "CommandStatuses": api.CommandStatuses(), "CommandActions": api.CommandActions(),
		"CommandRejectReasons": api.CommandRejectReasons(), "TransportReasons": api.TransportReasons(),
		"AdvisoryPriorities": api.AdvisoryPriorities(),
	}
	heading := regexp.MustCompile("^#+ .*`api\\.([A-Za-z]+)`")
	row := regexp.MustCompile("^\\| `([^`]+)` \\|")
	documented := map[string][]string{}
	var cur string
	for _, l := range strings.Split(string(raw), "\n") {
		if m := heading.FindStringSubmatch(l); m != nil {
			cur = m[1]
			documented[cur] = []string{}
			continue
		}
		if strings.HasPrefix(l, "#") {
			cur = ""
		}
		if m := row.FindStringSubmatch(l); m != nil && cur != "" {
			documented[cur] = append(documented[cur], m[1])
		}
	}
	for name, list := range lists {
		doc, ok := documented[name]
		if !ok {
			t.Errorf("docs/mqtt.md has no heading naming `api.%s` with its table", name)
			continue
		}
		if !slices.Equal(doc, list) {
			t.Errorf("docs/mqtt.md table of api.%s = %q, want %q (the same values, in the same order)", name, doc, list)
		}
	}
}
