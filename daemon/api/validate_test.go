// SPDX-License-Identifier: Apache-2.0

package api_test

import (
	"crypto/ed25519"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/mqtt"
)

// The checked-in schemas, compiled by an independent validator, accept
// what the daemon writes and reject what it must not.

func compile(t *testing.T, file string) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(schemaDir + file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(schemaBase+file, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(schemaBase + file)
	if err != nil {
		t.Fatalf("compile %s: %v", file, err)
	}
	return s
}

func validate(s *jsonschema.Schema, payload []byte) error {
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(string(payload)))
	if err != nil {
		return err
	}
	return s.Validate(v)
}

var (
	u0   = time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)
	hash = strings.Repeat("ab", 32)
)

func sampleGateway() api.Gateway {
	exp := u0.Add(24 * time.Hour)
	return api.Gateway{Online: true, ID: "gw1", Site: "demo", Version: "dev", Time: u0, TSMillis: u0.UnixMilli(),
		State: api.GatewayDegraded, Healthy: false,
		Health:          []api.Condition{{Name: "device-unreachable", Severity: api.SeverityWarning, Subject: "io16-a", Message: "no answer", Since: u0}},
		MetadataExpires: &exp, LastRefresh: &u0, BrokerConnected: true, OutboxDepth: 2,
		LEDs: map[string]string{"status": "heartbeat", "fault": "off"}, Display: "state"}
}

func sampleDevice() api.Device {
	return api.Device{ID: "io16-a", Protocol: "xmodem", Group: "line1", HardwareID: "acme-io16-rev3", Version: "1.0.0",
		Floor: 0, State: api.StepTransfer, Job: "2.4.1-bc47daf4-line1",
		Held:     []api.Hold{{Target: "acme-io16/fw-2.4.0.bin", SHA256: hash, Reason: "rolled back", Since: u0}},
		Progress: &api.Progress{Done: 10, Total: 40, Started: &u0, Rate: 9216}, Updated: u0, TSMillis: u0.UnixMilli()}
}

func sampleJob() api.Job {
	return api.Job{ID: "2.4.1-bc47daf4-line1", Target: "acme-io16/fw-2.4.1.bin", Version: "2.4.1", SHA256: hash, Length: 40960,
		Severity: "high", Group: "line1", Window: "always", Policy: api.PolicyRemote,
		Approvals: []api.Approval{{Kind: api.ApprovalRemote, Actor: "key ops-1", At: u0, Expires: u0.Add(time.Hour)}},
		Phase:     api.JobRunning, Created: u0, Updated: u0, TSMillis: u0.UnixMilli(),
		Steps: []api.Step{{Device: "io16-a", Phase: api.StepSoak, Attempts: 1, From: "1.0.0", SoakUntil: &u0}}}
}

func sampleEvent() api.Event {
	return api.Event{Seq: 16, Time: u0, TSMillis: u0.UnixMilli(), Type: "step-committed", Job: "j", Device: "io16-a",
		Detail: map[string]any{"floor": 3, "version": "2.4.1"}, Hash: hash}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestSchemasAcceptDocuments: documents as the daemon and daemon/mqtt
// write them pass their schema.
func TestSchemasAcceptDocuments(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	var commands [][]byte
	win := mqtt.Window{Start: u0, End: u0.Add(time.Hour)}
	for _, c := range []mqtt.Command{
		{Action: mqtt.ActionApprove, Job: "j-1", SHA256: hash, Devices: []string{"a", "b"}},
		{Action: mqtt.ActionCancel, Job: "j-1"},
		{Action: mqtt.ActionDefer, Job: "j-1", Window: win},
		{Action: mqtt.ActionUpdateNow, Devices: []string{"a"}},
		{Action: mqtt.ActionRefresh},
		{Action: mqtt.ActionRollback, Devices: []string{"a"}},
		{Action: mqtt.ActionStop},
		{Action: mqtt.ActionRetry, Job: "j-1"},
	} {
		c.ID, c.Gateway, c.Expires = "c-"+c.Action, "fieldgate/v1/demo/gw1", u0.Add(time.Hour)
		raw, err := mqtt.SignCommand(c, "ops-1", priv)
		if err != nil {
			t.Fatal(err)
		}
		commands = append(commands, raw)
	}
	tests := []struct {
		file string
		docs [][]byte
	}{
		{"status.schema.json", [][]byte{
			mustJSON(t, sampleGateway()),
			mustJSON(t, api.Gateway{Online: true, ID: "gw1", Time: u0, State: api.GatewayRunning, Healthy: true, Health: []api.Condition{}}),
			[]byte(`{"online":false,"gateway":"gw1","site":"demo","client_id":"fieldgated-gw1","reason":"lost"}`),
			mustJSON(t, mqtt.StatusPayload{Online: false, ClientID: "fieldgated-gw1", Reason: "shutdown", Time: "2030-01-02T03:04:05Z"}),
			mustJSON(t, mqtt.StatusPayload{Online: true, ClientID: "fieldgated-gw1", Time: "2030-01-02T03:04:05Z"}),
		}},
		{"device.schema.json", [][]byte{
			mustJSON(t, sampleDevice()),
			mustJSON(t, api.Device{ID: "io16-a", Protocol: "ssh", State: api.DeviceIdle, Updated: u0}),
		}},
		{"job.schema.json", [][]byte{mustJSON(t, sampleJob())}},
		{"event.schema.json", [][]byte{
			mustJSON(t, sampleEvent()),
			mustJSON(t, api.OutboxCompacted{Type: api.EventOutboxCompacted, Dropped: 3, FirstSeq: 7, LastSeq: 9, Reason: "outbox full"}),
		}},
		{"command-result.schema.json", [][]byte{
			mustJSON(t, api.CommandResult{ID: "c-1", Action: "approve", Status: api.CommandAccepted, Actor: "key ops-1", Time: u0, TSMillis: u0.UnixMilli()}),
			mustJSON(t, api.CommandResult{ID: "c-2", Status: api.CommandRejected, Reason: "malformed: x", Time: u0}),
		}},
		{"command.schema.json", commands},
	}
	for _, tt := range tests {
		s := compile(t, tt.file)
		for _, doc := range tt.docs {
			if err := validate(s, doc); err != nil {
				t.Errorf("%s rejects %s:\n%v", tt.file, doc, err)
			}
		}
	}
}

// TestSchemasRejectMutations: each schema is strict enough to fail: an
// unknown field, a missing one, a value outside an enum, a time with a
// zone offset, a wrong type.
func TestSchemasRejectMutations(t *testing.T) {
	tests := []struct {
		file   string
		doc    any
		mutate func(m map[string]any)
	}{
		{"status.schema.json", sampleGateway(), func(m map[string]any) { m["colour"] = "green" }},
		{"status.schema.json", sampleGateway(), func(m map[string]any) { delete(m, "ts_ms") }},
		{"status.schema.json", sampleGateway(), func(m map[string]any) { m["state"] = "fine" }},
		{"status.schema.json", sampleGateway(), func(m map[string]any) { m["time"] = "2030-01-02T08:34:05.123+05:30" }},
		{"status.schema.json", sampleGateway(), func(m map[string]any) { m["online"] = false }},
		{"status.schema.json", sampleGateway(), func(m map[string]any) { m["leds"] = map[string]any{"status": "disco"} }},
		{"status.schema.json", sampleGateway(), func(m map[string]any) {
			m["health"].([]any)[0].(map[string]any)["name"] = "feeling-poorly"
		}},
		{"device.schema.json", sampleDevice(), func(m map[string]any) { m["state"] = "committed" }}, // a final step phase is idle
		{"device.schema.json", sampleDevice(), func(m map[string]any) { m["ts_ms"] = "1893553445123" }},
		{"device.schema.json", sampleDevice(), func(m map[string]any) { m["protocol"] = "smp" }}, // the driver is smp-udp or smp-serial
		{"device.schema.json", sampleDevice(), func(m map[string]any) { m["progress"].(map[string]any)["done"] = -1 }},
		{"job.schema.json", sampleJob(), func(m map[string]any) { m["phase"] = "done" }},
		{"job.schema.json", sampleJob(), func(m map[string]any) { m["approval_policy"] = "maybe" }},
		{"job.schema.json", sampleJob(), func(m map[string]any) { m["devices"].([]any)[0].(map[string]any)["phase"] = "flashing" }},
		{"job.schema.json", sampleJob(), func(m map[string]any) { m["approvals"].([]any)[0].(map[string]any)["kind"] = "telepathy" }},
		{"job.schema.json", sampleJob(), func(m map[string]any) { delete(m, "devices") }},
		{"event.schema.json", sampleEvent(), func(m map[string]any) { m["type"] = "something-happened" }},
		{"event.schema.json", sampleEvent(), func(m map[string]any) { m["seq"] = 0 }},
		{"event.schema.json", sampleEvent(), func(m map[string]any) { m["time"] = "2030-01-02 03:04:05Z" }},
		{"command-result.schema.json", api.CommandResult{ID: "c", Status: api.CommandFailed, Time: u0}, func(m map[string]any) { m["status"] = "pending" }},
		{"command.schema.json", api.CommandRequest{ID: "c-1", Action: "refresh", Gateway: "g", Expires: "2030-01-02T03:04:05Z", Key: "k", Sig: "c2ln"},
			func(m map[string]any) { m["expires"] = "2030-01-02T03:04:05.5Z" }},
		{"command.schema.json", api.CommandRequest{ID: "c-1", Action: "refresh", Gateway: "g", Expires: "2030-01-02T03:04:05Z", Key: "k", Sig: "c2ln"},
			func(m map[string]any) { m["action"] = "reboot" }},
	}
	schemas := map[string]*jsonschema.Schema{}
	for i, tt := range tests {
		s := schemas[tt.file]
		if s == nil {
			s = compile(t, tt.file)
			schemas[tt.file] = s
		}
		raw := mustJSON(t, tt.doc)
		if err := validate(s, raw); err != nil {
			t.Fatalf("case %d: %s rejects the unmutated document %s: %v", i, tt.file, raw, err)
		}
		var m map[string]any
		json.Unmarshal(raw, &m)
		tt.mutate(m)
		mutated := mustJSON(t, m)
		if err := validate(s, mutated); err == nil {
			t.Errorf("case %d: %s accepts %s, want it rejected", i, tt.file, mutated)
		}
	}
}

// TestCommandRequestMirrorsTheWire: api.CommandRequest has exactly the
// fields daemon/mqtt signs and parses: a signed command decodes into it
// without unknown fields and encodes back to the same bytes, and a
// request built from it parses.
func TestCommandRequestMirrorsTheWire(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	now := time.Now()
	c := mqtt.Command{ID: "c-1", Action: mqtt.ActionApprove, Gateway: "fieldgate/v1/demo/gw1", Expires: now.Add(time.Hour),
		Job: "j-1", SHA256: hash, Devices: []string{"a"}}
	raw, err := mqtt.SignCommand(c, "ops-1", priv)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	var req api.CommandRequest
	if err := dec.Decode(&req); err != nil {
		t.Fatalf("decode %s into api.CommandRequest: %v", raw, err)
	}
	if back := mustJSON(t, req); string(back) != string(raw) {
		t.Errorf("api.CommandRequest re-encodes\n%s\nas\n%s", raw, back)
	}
	if _, err := mqtt.ParseCommand(mustJSON(t, req), map[string]ed25519.PublicKey{"ops-1": pub}, now); err != nil {
		t.Errorf("ParseCommand(api.CommandRequest) = %v", err)
	}
}
