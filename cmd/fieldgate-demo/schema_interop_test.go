// SPDX-License-Identifier: Apache-2.0

package main

// The JSON Schemas in docs/schema hold for what a real gateway publishes:
// every retained document, event, command request and result a central
// subscriber receives during a whole update (with a rollback and rejected
// commands) validates against its schema in an independent validator,
// Debian's python3-jsonschema. Debian packages: mosquitto,
// mosquitto-clients, python3-jsonschema.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
)

// validatorScript validates JSON lines [schema file, topic, payload]
// against the schemas in a directory (argv[1]) and prints one line per
// payload: "ok" or "bad: <first error>".
const validatorScript = `
import json, sys, jsonschema
schemas = {}
for line in open(sys.argv[2]):
    name, topic, payload = json.loads(line)
    if name not in schemas:
        schema = json.load(open(sys.argv[1] + "/" + name))
        jsonschema.Draft202012Validator.check_schema(schema)
        schemas[name] = jsonschema.Draft202012Validator(schema)
    errs = sorted(schemas[name].iter_errors(json.loads(payload)), key=lambda e: list(e.absolute_path))
    print("ok" if not errs else "bad: " + "/".join(map(str, errs[0].absolute_path)) + ": " + errs[0].message[:300])
`

// needJSONSchema returns python3 if it can import jsonschema; otherwise
// it skips the test (fails it under CI=true).
func needJSONSchema(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err == nil {
		err = exec.Command(py, "-c", "import jsonschema; jsonschema.Draft202012Validator").Run()
	}
	if err != nil {
		msg := fmt.Sprintf("python3 with jsonschema (draft 2020-12) not available (%v): install the Debian package python3-jsonschema", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return py
}

// captureAll subscribes to everything under the gateway's prefix and
// keeps every message until stop is called; it returns once the
// subscription is in place.
func captureAll(t *testing.T, ctx context.Context, m *mosquitto) (stop func() []captured) {
	t.Helper()
	return subscribe(t, ctx, m, gwPrefix+"/#").stop
}

// schemaOf names the schema of a topic under the gateway's prefix.
func schemaOf(topic string) string {
	rest := strings.TrimPrefix(topic, gwPrefix+"/")
	parts := strings.Split(rest, "/")
	switch {
	case rest == "status":
		return "status.schema.json"
	case rest == "events":
		return "event.schema.json"
	case rest == "inventory":
		return "inventory.schema.json"
	case len(parts) == 2 && parts[0] == "advisories":
		return "advisories.schema.json"
	case len(parts) == 2 && parts[0] == "devices":
		return "device.schema.json"
	case len(parts) == 2 && parts[0] == "jobs":
		return "job.schema.json"
	case len(parts) == 2 && parts[0] == "cmd":
		return "command.schema.json"
	case len(parts) == 3 && parts[0] == "cmd" && parts[2] == "result":
		return "command-result.schema.json"
	}
	return ""
}

// validateAll runs the validator over msgs and returns its verdict per
// message.
func validateAll(t *testing.T, py string, msgs []captured) []string {
	t.Helper()
	dir := t.TempDir()
	var lines bytes.Buffer
	for _, m := range msgs {
		raw, _ := json.Marshal([]string{schemaOf(m.topic), m.topic, m.payload})
		lines.Write(append(raw, '\n'))
	}
	input := filepath.Join(dir, "payloads.jsonl")
	if err := os.WriteFile(input, lines.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	schemas, err := filepath.Abs("../../docs/schema")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "-c", validatorScript, schemas, input).CombinedOutput()
	if err != nil {
		t.Fatalf("python3 jsonschema: %v\n%s", err, out)
	}
	verdicts := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(verdicts) != len(msgs) {
		t.Fatalf("validator printed %d verdicts for %d payloads:\n%s", len(verdicts), len(msgs), out)
	}
	return verdicts
}

// TestInteropSchemaCapturedPayloads runs an update of two devices through
// mosquitto, one of which fails to boot the new image and is rolled back,
// behind a remote approval: a forged approval is rejected, the signed one
// succeeds. fieldgated runs with TZ=Asia/Kolkata, so a time that is not
// made UTC shows as +05:30. A subscriber to {prefix}/# captures every
// message until after the last will; each validates against its schema
// in python3-jsonschema, and mutated copies (a state outside its enum, an
// unknown field, a local time) are rejected.
func TestInteropSchemaCapturedPayloads(t *testing.T) {
	py := needJSONSchema(t)
	m := startMosquitto(t)
	if testing.Short() {
		t.Skip("interop test builds and runs every binary")
	}
	if _, err := os.Stat("/usr/share/zoneinfo/Asia/Kolkata"); err != nil {
		t.Logf("no zoneinfo for Asia/Kolkata (Debian package tzdata): fieldgated runs in UTC, the local-time check is weaker")
	}
	t.Setenv("TZ", "Asia/Kolkata") // every process the test starts
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := buildAll(t)
	env, err := Setup(ctx, Options{Bin: bin, Work: filepath.Join(t.TempDir(), "work"), Out: output(t),
		Devices: 2, Baud: -1, Broker: m.URL(), Faults: map[string][]string{"io16-b": {"boot-fail"}}})
	if env != nil {
		t.Cleanup(env.Close)
	}
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	ctl := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := runToolTo(ctx, env.o, &out, append([]string{"fieldgatectl"}, args...)...)
		return out.String(), err
	}
	key, forged := filepath.Join(env.Work, "ops-1.key"), filepath.Join(env.Work, "forger.key")
	pubOut, err := ctl("remote", "keygen", "--out", key)
	if err != nil {
		t.Fatalf("keygen: %v\n%s", err, pubOut)
	}
	if out, err := ctl("remote", "keygen", "--out", forged); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	cfg, err := os.ReadFile(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte("approval: auto"), []byte("approval: remote"), 1)
	cfg = append(cfg, fmt.Sprintf("approvers:\n  - {name: ops-1, public_key: %s}\n", strings.TrimSpace(strings.SplitN(pubOut, "\n", 2)[0]))...)
	if err := os.WriteFile(env.Config, cfg, 0o644); err != nil {
		t.Fatal(err)
	}

	stop := captureAll(t, ctx, m)
	if err := env.StartDaemon(); err != nil {
		t.Fatal(err)
	}
	st, err := pollStatus(ctx, env, "a job awaiting approval", func(st api.Status) bool {
		return len(st.Jobs) > 0 && st.Jobs[0].Phase == api.JobAwaitingApproval
	})
	if err != nil {
		t.Fatal(err)
	}
	job := st.Jobs[0]
	common := []string{"--broker", m.URL(), "--gateway", gwPrefix, "--key-id", "ops-1", "--timeout", "20s"}
	if out, err := ctl(append([]string{"remote", "approve", job.ID, "--sha256", job.SHA256, "--key", forged}, common...)...); err == nil {
		t.Errorf("forged approval: fieldgatectl exit 0, want 1\n%s", out)
	}
	if out, err := ctl(append([]string{"remote", "approve", job.ID, "--sha256", job.SHA256, "--key", key}, common...)...); err != nil {
		t.Fatalf("signed approval: %v\n%s", err, out)
	}
	final, err := waitSettled(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("job %s ended %s", final.Jobs[0].ID, final.Jobs[0].Phase)
	// The outbox drains, then a power cut leaves the last will.
	if _, err := pollStatus(ctx, env, "an empty outbox", func(st api.Status) bool { return st.Gateway.OutboxDepth == 0 }); err != nil {
		t.Fatal(err)
	}
	env.KillDaemon()
	waitLastWill(t, m, gwPrefix)
	msgs := stop()

	var checked []captured
	for _, msg := range msgs {
		if parts := strings.Split(strings.TrimPrefix(msg.topic, gwPrefix+"/"), "/"); len(parts) == 3 && parts[0] == "cmd" && parts[2] != "result" {
			continue // fieldgatectl remote's subscription probe, which the gateway ignores
		}
		if schemaOf(msg.topic) == "" {
			t.Errorf("message on %s: no schema for its topic", msg.topic)
			continue
		}
		if msg.payload == "" {
			continue // an empty retained message deletes a topic
		}
		checked = append(checked, msg)
	}
	verdicts := validateAll(t, py, checked)
	perSchema := map[string]int{}
	bad := 0
	for i, v := range verdicts {
		perSchema[schemaOf(checked[i].topic)]++
		if v != "ok" {
			bad++
			if bad <= 20 {
				t.Errorf("%s %s\n  %s", checked[i].topic, checked[i].payload, v)
			}
		}
	}
	t.Logf("validated %d payloads: %v; %d rejected", len(checked), perSchema, bad)
	for _, s := range []string{"status.schema.json", "device.schema.json", "job.schema.json", "event.schema.json",
		"command.schema.json", "command-result.schema.json", "inventory.schema.json"} {
		if perSchema[s] == 0 {
			t.Errorf("no payload captured for %s", s)
		}
	}

	// What the run must have shown, so the schemas met it: a rollback, a
	// rejected command, a remote approval, the last will.
	seen := map[string]bool{}
	for _, msg := range checked {
		var doc struct {
			Type, Status, Reason, State string
			Online                      *bool
		}
		json.Unmarshal([]byte(msg.payload), &doc)
		for _, s := range []string{doc.Type, "status=" + doc.Status, "reason=" + doc.Reason, "state=" + doc.State} {
			seen[s] = true
		}
	}
	for _, want := range []string{"step-rolled-back", "step-committed", "approval", "command-rejected", "command-succeeded",
		"status=rejected", "reason=lost", "state=transfer"} {
		if !seen[want] {
			t.Errorf("no captured payload with %s", want)
		}
	}

	// Negative: the validator rejects mutated copies of captured payloads.
	mutants := mutate(t, checked)
	if len(mutants) < 4 {
		t.Fatalf("only %d mutants made from %d payloads", len(mutants), len(checked))
	}
	for i, v := range validateAll(t, py, mutants) {
		if v == "ok" {
			t.Errorf("mutated %s accepted: %s", mutants[i].topic, mutants[i].payload)
		}
	}
}

// mutate makes, from the first payload of each kind, copies that must
// fail: an unknown field, a state outside its enum, a time with the
// gateway's local offset, a missing ts_ms.
func mutate(t *testing.T, msgs []captured) []captured {
	t.Helper()
	var out []captured
	done := map[string]bool{}
	for _, msg := range msgs {
		s := schemaOf(msg.topic)
		var doc map[string]any
		if done[s] || json.Unmarshal([]byte(msg.payload), &doc) != nil {
			continue
		}
		if _, daemon := doc["ts_ms"]; !daemon {
			continue // a transport status or a command request
		}
		done[s] = true
		for _, f := range []func(map[string]any){
			func(d map[string]any) { d["plant_colour"] = "green" },
			func(d map[string]any) { delete(d, "ts_ms") },
			func(d map[string]any) {
				for _, k := range []string{"time", "updated"} {
					if _, ok := d[k]; ok {
						d[k] = "2030-01-02T08:34:05.5+05:30"
					}
				}
			},
			func(d map[string]any) {
				for _, k := range []string{"state", "phase", "type", "status"} {
					if _, ok := d[k]; ok {
						d[k] = "exploded"
					}
				}
			},
		} {
			var c map[string]any
			json.Unmarshal([]byte(msg.payload), &c)
			f(c)
			raw, _ := json.Marshal(c)
			out = append(out, captured{msg.topic, string(raw)})
		}
	}
	return out
}
