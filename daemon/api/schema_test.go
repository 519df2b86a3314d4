// SPDX-License-Identifier: Apache-2.0

package api_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/invopop/jsonschema"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/mqtt"
)

// The JSON Schemas in docs/schema are generated from the Go types of this
// package (their doc comments become the descriptions) and the enum lists
// of enums.go; TestSchemaFiles keeps the checked-in files equal to what
// the types produce. The generator is test code, so nothing of it is
// linked into fieldgated.

var update = flag.Bool("update", false, "rewrite docs/schema from the Go types")

const (
	schemaDir  = "../../docs/schema/"
	regenerate = "go test ./daemon/api -run TestSchemaFiles -update"
	// schemaBase is where the files are published: their $id.
	schemaBase = "https://raw.githubusercontent.com/fieldgate/fieldgate/main/docs/schema/"
)

// utcTime is the pattern of every time the gateway publishes: RFC 3339 in
// UTC with a Z, fractional seconds optional.
const utcTime = `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$`

// utcSeconds is the pattern of a time in a command: UTC, whole seconds.
const utcSeconds = `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$`

// schemaDoc is one checked-in schema: a document published on one topic,
// which carries one of the types in types (more than one: oneOf).
type schemaDoc struct {
	file, title, topic string
	types              []any
}

func schemaDocs() []schemaDoc {
	return []schemaDoc{
		{"status.schema.json", "fieldgate gateway status", "{prefix}/status",
			[]any{api.Gateway{}, mqtt.StatusPayload{}}},
		{"device.schema.json", "fieldgate device", "{prefix}/devices/{device_id}", []any{api.Device{}}},
		{"job.schema.json", "fieldgate job", "{prefix}/jobs/{job_id}", []any{api.Job{}}},
		{"event.schema.json", "fieldgate event", "{prefix}/events", []any{api.Event{}, api.OutboxCompacted{}}},
		{"command-result.schema.json", "fieldgate command result", "{prefix}/cmd/{cmd_id}/result",
			[]any{api.CommandResult{}, api.OutboxCompacted{}}},
		{"command.schema.json", "fieldgate command request", "{prefix}/cmd/{cmd_id}", []any{api.CommandRequest{}}},
		{"inventory.schema.json", "fieldgate inventory", "{prefix}/inventory", []any{api.Inventory{}}},
		{"advisories.schema.json", "fieldgate device advisories", "{prefix}/advisories/{device_id}", []any{api.DeviceAdvisories{}}},
	}
}

// enums says which properties take the values of which list, by
// definition and property name; "leds" constrains the map's values.
func enums() map[string]map[string][]string {
	return map[string]map[string][]string{
		"Gateway":          {"state": api.GatewayStates(), "display": api.DisplayPages(), "leds": api.LEDPatterns()},
		"Condition":        {"name": api.ConditionNames(), "severity": api.Severities()},
		"Device":           {"state": api.DeviceStates(), "protocol": api.DeviceProtocols()},
		"Job":              {"phase": api.JobPhases(), "approval_policy": api.ApprovalPolicies(), "severity": api.TargetSeverities()},
		"Approval":         {"kind": api.ApprovalKinds()},
		"Step":             {"phase": api.StepPhases()},
		"Event":            {"type": api.EventTypes()},
		"CommandResult":    {"status": api.CommandStatuses(), "action": api.CommandActions()},
		"CommandRequest":   {"action": api.CommandActions()},
		"StatusPayload":    {"reason": api.TransportReasons()},
		"OutboxCompacted":  {},
		"InventoryDevice":  {"zone": api.InventoryZones(), "criticality": api.InventoryCriticalities()},
		"DeviceAdvisories": {"priority": api.AdvisoryPriorities()},
	}
}

// patterns are further rules on strings, as the gateway enforces them.
func patterns() map[string]map[string]string {
	const ident = `^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`
	return map[string]map[string]string{
		"CommandRequest": {"id": ident, "expires": utcSeconds, "key": `^.+$`, "sig": `^[A-Za-z0-9+/]+={0,2}$`},
		"CommandArgs": {"job": ident, "sha256": `^[0-9a-f]{64}$`,
			"window": utcSeconds[:len(utcSeconds)-1] + "/" + utcSeconds[1:],
			"device": ident, "advisory": `^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$`, "cve": `^CVE-[0-9]{4}-[0-9]{4,12}$`,
			"until": `^[0-9]{4}-[0-9]{2}-[0-9]{2}$`},
		"StatusPayload": {"time": utcSeconds},
		"Event":         {"hash": `^[0-9a-f]{64}$`},
	}
}

// transportDescriptions describe mqtt.StatusPayload's fields that have no
// doc comment there: the transport statuses daemon/mqtt writes itself.
var transportDescriptions = map[string]string{
	"online":    "Online is false in the last will and the shutdown status; true in the status of a first connect, before the daemon made its own.",
	"gateway":   "Gateway is the gateway's id.",
	"site":      "Site is the gateway's site.",
	"client_id": "ClientID is the gateway's MQTT client id.",
}

// generate returns the schema of d, indented, ending in a newline.
func generate(t *testing.T, d schemaDoc) []byte {
	t.Helper()
	r := &jsonschema.Reflector{
		// Time is the only type mapped: a UTC RFC 3339 string.
		Mapper: func(rt reflect.Type) *jsonschema.Schema {
			if rt == reflect.TypeFor[time.Time]() {
				return &jsonschema.Schema{Type: "string", Format: "date-time", Pattern: utcTime}
			}
			return nil
		},
	}
	if err := r.AddGoComments("github.com/fieldgate/fieldgate/daemon/api", ".", jsonschema.WithFullComment()); err != nil {
		t.Fatal(err)
	}
	if err := r.AddGoComments("github.com/fieldgate/fieldgate/daemon/mqtt", "../mqtt", jsonschema.WithFullComment()); err != nil {
		t.Fatal(err)
	}
	// Descriptions are the doc comments, on one line, naming the JSON
	// field rather than the Go one.
	r.LookupComment = func(rt reflect.Type, field string) string {
		key := rt.PkgPath() + "." + rt.Name()
		if field != "" {
			key += "." + field
		}
		c := strings.Join(strings.Fields(r.CommentMap[key]), " ")
		if rt.Kind() != reflect.Struct || field == "" {
			return c
		}
		if f, ok := rt.FieldByName(field); ok {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if rest, ok := strings.CutPrefix(c, field+" "); ok {
				c = "`" + name + "` " + rest
			}
		}
		return c
	}
	defs := jsonschema.Definitions{}
	var refs []*jsonschema.Schema
	for _, v := range d.types {
		s := r.Reflect(v)
		for name, def := range s.Definitions {
			defs[name] = def
		}
		refs = append(refs, &jsonschema.Schema{Ref: s.Ref})
	}
	finish(t, defs)
	root := &jsonschema.Schema{}
	if len(refs) == 1 {
		name := strings.TrimPrefix(refs[0].Ref, "#/$defs/")
		*root = *defs[name]
		delete(defs, name)
	} else {
		root.OneOf = refs
		root.Description = "One of:"
		for _, ref := range refs {
			def := defs[strings.TrimPrefix(ref.Ref, "#/$defs/")]
			root.Description += "\n- " + strings.SplitN(def.Description, "\n", 2)[0]
		}
	}
	root.Version = jsonschema.Version
	root.ID = jsonschema.ID(schemaBase + d.file)
	root.Title = d.title
	root.Description = "Payload of the MQTT topic " + d.topic + ". " + root.Description
	if len(defs) > 0 {
		root.Definitions = defs
	}
	raw, err := json.MarshalIndent(root, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(raw, '\n')
}

// finish adds what the Go types cannot say: enums, patterns, constants,
// and descriptions daemon/mqtt does not have.
func finish(t *testing.T, defs jsonschema.Definitions) {
	t.Helper()
	prop := func(def, name string) *jsonschema.Schema {
		d, ok := defs[def]
		if !ok {
			return nil
		}
		p, ok := d.Properties.Get(name)
		if !ok {
			t.Fatalf("schema %s has no property %q", def, name)
		}
		return p
	}
	for def, props := range enums() {
		for name, values := range props {
			p := prop(def, name)
			if p == nil {
				continue
			}
			if p.Type == "object" { // a map: constrain its values
				p = p.AdditionalProperties
			}
			p.Enum = nil
			for _, v := range values {
				p.Enum = append(p.Enum, v)
			}
		}
	}
	for def, props := range patterns() {
		for name, pat := range props {
			if p := prop(def, name); p != nil {
				p.Pattern = pat
			}
		}
	}
	if p := prop("Gateway", "online"); p != nil {
		p.Const = true // the daemon's own status; false only in a transport status
	}
	if p := prop("OutboxCompacted", "type"); p != nil {
		p.Const = api.EventOutboxCompacted
	}
	if p := prop("Event", "seq"); p != nil {
		p.Minimum = json.Number("1")
	}
	for _, def := range defs {
		if def.Properties == nil {
			continue
		}
		for pair := def.Properties.Oldest(); pair != nil; pair = pair.Next() {
			if pair.Value.Type == "integer" && pair.Key != "ts_ms" {
				pair.Value.Minimum = cmpMax(pair.Value.Minimum, "0")
			}
		}
	}
	if d, ok := defs["StatusPayload"]; ok {
		d.Description = "A transport status, written by the MQTT session itself (mqtt.StatusPayload): the last will (online false, reason lost), the shutdown status (online false, reason shutdown) and the status of a first connect before the daemon made its own (online true)."
		for pair := d.Properties.Oldest(); pair != nil; pair = pair.Next() {
			if pair.Value.Description == "" {
				pair.Value.Description = transportDescriptions[pair.Key]
			}
		}
	}
	// Every property says what it is.
	for name, def := range defs {
		if def.Properties == nil {
			continue
		}
		for pair := def.Properties.Oldest(); pair != nil; pair = pair.Next() {
			if pair.Value.Description == "" {
				t.Errorf("schema %s: property %q has no description: give its Go field a doc comment", name, pair.Key)
			}
		}
	}
}

func cmpMax(have json.Number, min string) json.Number {
	if have != "" {
		return have
	}
	return json.Number(min)
}

// TestSchemaFiles keeps docs/schema equal to what the Go types generate;
// -update rewrites the files.
func TestSchemaFiles(t *testing.T) {
	want := map[string]bool{}
	for _, d := range schemaDocs() {
		want[d.file] = true
		got := generate(t, d)
		path := schemaDir + d.file
		if *update {
			if err := os.MkdirAll(schemaDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		have, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v (run %s)", err, regenerate)
			continue
		}
		if !bytes.Equal(have, got) {
			t.Errorf("%s differs from what the Go types generate: run %s", path, regenerate)
		}
	}
	files, _ := filepath.Glob(schemaDir + "*.json")
	for _, f := range files {
		if !want[filepath.Base(f)] {
			t.Errorf("%s is not generated by any document here: delete it or add it to schemaDocs", f)
		}
	}
}
