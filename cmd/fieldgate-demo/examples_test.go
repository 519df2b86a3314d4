// SPDX-License-Identifier: Apache-2.0

package main

// The integrator examples in docs/examples bind what the gateway really
// publishes: every topic filter and every payload field the Node-RED flow
// and the Grafana dashboard read exists in the JSON Schema of a topic the
// filter matches (TestExamplesMatchSchemas) and in payloads a real
// fieldgated published through mosquitto, where Node-RED runs the flow
// itself (TestInteropExamplesBindCapturedPayloads). Debian packages:
// mosquitto, mosquitto-clients, nodejs, npm (and `npm ci --prefix
// cmd/fieldgate-demo/testdata/node-red`).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
)

const (
	nodeRedFlow    = "../../docs/examples/node-red-flow.json"
	grafanaExample = "../../docs/examples/grafana-mqtt.json"
	nodeRedDir     = "testdata/node-red"
)

// exampleRef is one thing an example reads: a payload field (path, dot
// separated, "" for the topic alone) of the messages on filter.
type exampleRef struct {
	example, where, filter, path string
}

func (r exampleRef) String() string {
	return fmt.Sprintf("%s %s: %q on %s", r.example, r.where, r.path, r.filter)
}

// flowNode is the part of a Node-RED node the test reads.
type flowNode struct {
	ID           string     `json:"id"`
	Type         string     `json:"type"`
	Z            string     `json:"z"`
	Name         string     `json:"name"`
	Topic        string     `json:"topic"`
	Broker       string     `json:"broker"`
	Property     string     `json:"property"`
	PropertyType string     `json:"propertyType"`
	Rules        []flowRule `json:"rules"`
	Wires        [][]string `json:"wires"`
}

type flowRule struct {
	T   string `json:"t"`
	P   string `json:"p"`
	PT  string `json:"pt"`
	To  string `json:"to"`
	ToT string `json:"tot"`
}

// nodeRedRefs reads the flow: from each mqtt in node along the wires, the
// payload fields the switch nodes test and the first change node copies
// (after it, msg.payload is the change node's own summary).
func nodeRedRefs(t *testing.T) []exampleRef {
	t.Helper()
	raw, err := os.ReadFile(nodeRedFlow)
	if err != nil {
		t.Fatal(err)
	}
	var nodes []flowNode
	if err := json.Unmarshal(raw, &nodes); err != nil {
		t.Fatalf("%s: %v", nodeRedFlow, err)
	}
	byID := map[string]flowNode{}
	for _, n := range nodes {
		if n.ID == "" || n.Type == "" {
			t.Errorf("%s: node %+v has no id or type", nodeRedFlow, n)
		}
		if _, dup := byID[n.ID]; dup {
			t.Errorf("%s: id %q twice", nodeRedFlow, n.ID)
		}
		byID[n.ID] = n
	}
	var refs []exampleRef
	for _, in := range nodes {
		if in.Type != "mqtt in" {
			continue
		}
		if b, ok := byID[in.Broker]; !ok || b.Type != "mqtt-broker" {
			t.Errorf("%s: mqtt in %q names broker %q, which is no mqtt-broker node", nodeRedFlow, in.Name, in.Broker)
		}
		refs = append(refs, exampleRef{"node-red", "mqtt in " + in.Name, in.Topic, ""})
		seen := map[string]bool{}
		queue := []string{in.ID}
		for len(queue) > 0 {
			n := byID[queue[0]]
			queue = queue[1:]
			if seen[n.ID] {
				continue
			}
			seen[n.ID] = true
			next := true
			switch n.Type {
			case "mqtt in", "json":
			case "switch":
				if n.PropertyType == "msg" && strings.HasPrefix(n.Property, "payload.") {
					refs = append(refs, exampleRef{"node-red", "switch " + n.Name, in.Topic, strings.TrimPrefix(n.Property, "payload.")})
				}
			case "change":
				for _, r := range n.Rules {
					if r.ToT == "msg" && strings.HasPrefix(r.To, "payload.") {
						refs = append(refs, exampleRef{"node-red", "change " + n.Name, in.Topic, strings.TrimPrefix(r.To, "payload.")})
					}
				}
				next = false
			case "debug":
				next = false
			default:
				t.Errorf("%s: node %q of type %q: this test does not know what it reads", nodeRedFlow, n.Name, n.Type)
			}
			if !next {
				continue
			}
			for _, out := range n.Wires {
				for _, id := range out {
					if _, ok := byID[id]; !ok {
						t.Errorf("%s: node %q is wired to %q, which does not exist", nodeRedFlow, n.Name, id)
						continue
					}
					queue = append(queue, id)
				}
			}
		}
	}
	return refs
}

// grafanaRefs reads the dashboard: each panel's MQTT topic (dashboard
// variables replaced by their defaults) and the fields its
// transformations name. The plugin makes a field of each top-level key of
// a JSON payload (and Time, the arrival time); extractFields reaches into
// an object field.
func grafanaRefs(t *testing.T) []exampleRef {
	t.Helper()
	raw, err := os.ReadFile(grafanaExample)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Templating struct {
			List []struct {
				Name    string `json:"name"`
				Current struct {
					Value string `json:"value"`
				} `json:"current"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title      string `json:"title"`
			Datasource struct {
				Type string `json:"type"`
			} `json:"datasource"`
			Targets []struct {
				RefID string `json:"refId"`
				Topic string `json:"topic"`
			} `json:"targets"`
			Transformations []struct {
				ID      string          `json:"id"`
				Options json.RawMessage `json:"options"`
			} `json:"transformations"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", grafanaExample, err)
	}
	vars := map[string]string{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = v.Current.Value
	}
	expand := regexp.MustCompile(`\$\{(\w+)\}`)
	var refs []exampleRef
	for _, p := range dash.Panels {
		if p.Datasource.Type != "grafana-mqtt-datasource" || len(p.Targets) != 1 {
			t.Errorf("%s: panel %q: want one target of grafana-mqtt-datasource", grafanaExample, p.Title)
			continue
		}
		topic := expand.ReplaceAllStringFunc(p.Targets[0].Topic, func(s string) string {
			v, ok := vars[s[2:len(s)-1]]
			if !ok {
				t.Errorf("%s: panel %q: topic %q uses an undefined variable %s", grafanaExample, p.Title, p.Targets[0].Topic, s)
			}
			return v
		})
		add := func(where, path string) {
			refs = append(refs, exampleRef{"grafana", p.Title + " " + where, topic, path})
		}
		add("topic", "")
		made := map[string]bool{"Time": true} // fields the plugin or a transformation makes
		field := func(where, name string) {
			if !made[name] {
				add(where, name)
			}
		}
		for _, tr := range p.Transformations {
			var o struct {
				Include struct {
					Names []string `json:"names"`
				} `json:"include"`
				Source    string `json:"source"`
				JSONPaths []struct {
					Path, Alias string
				} `json:"jsonPaths"`
				Fields json.RawMessage `json:"fields"`
			}
			if err := json.Unmarshal(tr.Options, &o); err != nil {
				t.Fatalf("%s: panel %q %s: %v", grafanaExample, p.Title, tr.ID, err)
			}
			switch tr.ID {
			case "filterFieldsByName":
				for _, n := range o.Include.Names {
					field(tr.ID, n)
				}
			case "extractFields":
				field(tr.ID, o.Source)
				for _, jp := range o.JSONPaths {
					add(tr.ID, o.Source+"."+jp.Path)
					made[cmpOr(jp.Alias, jp.Path)] = true
				}
			case "partitionByValues":
				var names []string
				if err := json.Unmarshal(o.Fields, &names); err != nil {
					t.Fatalf("%s: panel %q %s fields: %v", grafanaExample, p.Title, tr.ID, err)
				}
				for _, n := range names {
					field(tr.ID, n)
				}
			case "groupBy":
				var byName map[string]json.RawMessage
				if err := json.Unmarshal(o.Fields, &byName); err != nil {
					t.Fatalf("%s: panel %q %s fields: %v", grafanaExample, p.Title, tr.ID, err)
				}
				for n := range byName {
					field(tr.ID, n)
				}
			default:
				t.Errorf("%s: panel %q: transformation %q: this test does not know what it reads", grafanaExample, p.Title, tr.ID)
			}
		}
	}
	return refs
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// topicMatches reports whether an MQTT topic filter matches topic.
func topicMatches(filter, topic string) bool {
	f, n := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, l := range f {
		switch {
		case l == "#":
			return true
		case i >= len(n):
			return false
		case l != "+" && l != n[i]:
			return false
		}
	}
	return len(f) == len(n)
}

// exampleTopics is one topic of each kind under the scenario's prefix.
var exampleTopics = []string{gwPrefix + "/status", gwPrefix + "/devices/io16-a", gwPrefix + "/jobs/2.4.1-x-line1",
	gwPrefix + "/events", gwPrefix + "/cmd/c-1", gwPrefix + "/cmd/c-1/result"}

// schemaHas reports whether the schema node s of the document root
// declares the field path.
func schemaHas(root, s map[string]any, path []string) bool {
	if ref, ok := s["$ref"].(string); ok {
		def, _ := root["$defs"].(map[string]any)[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		return def != nil && schemaHas(root, def, path)
	}
	if one, ok := s["oneOf"].([]any); ok {
		for _, b := range one {
			if schemaHas(root, b.(map[string]any), path) {
				return true
			}
		}
		return false
	}
	if len(path) == 0 {
		return true
	}
	if props, ok := s["properties"].(map[string]any); ok {
		if p, ok := props[path[0]].(map[string]any); ok {
			return schemaHas(root, p, path[1:])
		}
	}
	if ap, ok := s["additionalProperties"].(map[string]any); ok { // a map
		return schemaHas(root, ap, path[1:])
	}
	return false
}

// payloadHas reports whether the JSON payload has a non-null value at path.
func payloadHas(payload string, path []string) bool {
	var v any
	if json.Unmarshal([]byte(payload), &v) != nil {
		return false
	}
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		v = m[k]
	}
	return v != nil
}

func exampleRefs(t *testing.T) []exampleRef {
	refs := append(nodeRedRefs(t), grafanaRefs(t)...)
	for _, want := range []exampleRef{
		{"node-red", "", "fieldgate/v1/+/+/devices/+", "id"},
		{"node-red", "", "fieldgate/v1/+/+/status", "healthy"},
		{"grafana", "", gwPrefix + "/status", "outbox_depth"},
		{"grafana", "", gwPrefix + "/devices/+", "state"},
	} {
		if !slices.ContainsFunc(refs, func(r exampleRef) bool {
			return r.example == want.example && r.filter == want.filter && r.path == want.path
		}) {
			t.Errorf("the examples do not read %s", want)
		}
	}
	return refs
}

// TestExamplesMatchSchemas: each topic filter of the examples matches a
// topic of the gateway, and each field they read is declared by the
// schema of every topic the filter matches.
func TestExamplesMatchSchemas(t *testing.T) {
	schemas := map[string]map[string]any{}
	for _, topic := range exampleTopics {
		name := schemaOf(topic)
		raw, err := os.ReadFile(filepath.Join("../../docs/schema", name))
		if err != nil {
			t.Fatal(err)
		}
		var s map[string]any
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		schemas[topic] = s
	}
	refs := exampleRefs(t)
	for _, r := range refs {
		matched := 0
		for _, topic := range exampleTopics {
			if !topicMatches(r.filter, topic) {
				continue
			}
			matched++
			if r.path != "" && !schemaHas(schemas[topic], schemas[topic], strings.Split(r.path, ".")) {
				t.Errorf("%s: %s declares no field %q", r, schemaOf(topic), r.path)
			}
		}
		if matched == 0 {
			t.Errorf("%s: the filter matches no topic of the gateway", r)
		}
	}
	t.Logf("%d topic filters and fields checked", len(refs))
}

// TestExamplesRejectRenamedFields: the schema check is not vacuous; a
// field that is not in the schema, or a filter that matches nothing,
// fails it.
func TestExamplesRejectRenamedFields(t *testing.T) {
	raw, err := os.ReadFile("../../docs/schema/device.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	json.Unmarshal(raw, &s)
	for _, tt := range []struct {
		path string
		want bool
	}{{"progress.done", true}, {"state", true}, {"progress.bytes", false}, {"status", false}, {"version.major", false}} {
		if got := schemaHas(s, s, strings.Split(tt.path, ".")); got != tt.want {
			t.Errorf("schemaHas(device, %q) = %v, want %v", tt.path, got, tt.want)
		}
	}
	for _, tt := range []struct {
		filter, topic string
		want          bool
	}{
		{"fieldgate/v1/+/+/devices/+", gwPrefix + "/devices/io16-a", true},
		{"fieldgate/v1/+/+/devices/+", gwPrefix + "/devices", false},
		{"fieldgate/v1/+/+/device/+", gwPrefix + "/devices/io16-a", false},
		{"fieldgate/v1/#", gwPrefix + "/cmd/c-1/result", true},
		{gwPrefix + "/status", gwPrefix + "/status", true},
	} {
		if got := topicMatches(tt.filter, tt.topic); got != tt.want {
			t.Errorf("topicMatches(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

// nodeRed is Node-RED running a copy of the example flow.
type nodeRed struct {
	mu    sync.Mutex
	lines []string // "<debug node name>\t<JSON payload>"
	log   bytes.Buffer
}

var debugLine = regexp.MustCompile(`\[debug:([^\]]+)\] (\{.*\})$`)

func (n *nodeRed) outputs(name string) []map[string]any {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []map[string]any
	for _, l := range n.lines {
		if k, v, _ := strings.Cut(l, "\t"); k == name {
			var m map[string]any
			if json.Unmarshal([]byte(v), &m) == nil {
				out = append(out, m)
			}
		}
	}
	return out
}

// startNodeRed runs Node-RED headless with the example flow, its broker
// pointed at m and each debug node given a JSON node in front and a
// console output, so that the test reads what the debug sidebar would
// show. It returns nil (failing t under CI=true) when Node-RED is not
// installed.
func startNodeRed(t *testing.T, ctx context.Context, m *mosquitto) *nodeRed {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(nodeRedDir, "node_modules", "node-red", "red.js"))
	}
	if err != nil {
		msg := fmt.Sprintf("Node-RED not installed (%v): install the Debian packages nodejs and npm, then npm ci --prefix cmd/fieldgate-demo/%s; the flow is checked against captured payloads only", err, nodeRedDir)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Log(msg)
		return nil
	}
	raw, err := os.ReadFile(nodeRedFlow)
	if err != nil {
		t.Fatal(err)
	}
	var flow []map[string]any
	if err := json.Unmarshal(raw, &flow); err != nil {
		t.Fatal(err)
	}
	var extra []map[string]any
	for _, n := range flow {
		switch n["type"] {
		case "mqtt-broker":
			n["broker"], n["port"] = "127.0.0.1", strconv.Itoa(m.Port())
		case "debug":
			n["console"], n["tosidebar"] = true, false
		}
	}
	for _, n := range flow { // rewire X -> debug into X -> json (to a string) -> debug
		wires, _ := n["wires"].([]any)
		for _, out := range wires {
			ids, _ := out.([]any)
			for i, id := range ids {
				for _, d := range flow {
					if d["id"] == id && d["type"] == "debug" {
						j := fmt.Sprintf("test.json.%s.%d", n["id"], i)
						extra = append(extra, map[string]any{"id": j, "type": "json", "z": n["z"], "property": "payload",
							"action": "str", "wires": []any{[]any{id}}})
						ids[i] = j
					}
				}
			}
		}
	}
	flow = append(flow, extra...)
	dir := t.TempDir()
	flowFile := filepath.Join(dir, "flow.json")
	raw, _ = json.Marshal(flow)
	if err := os.WriteFile(flowFile, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	port, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ = strings.Cut(port, ":")
	settings, _ := filepath.Abs(filepath.Join(nodeRedDir, "settings.js"))
	red, _ := filepath.Abs(filepath.Join(nodeRedDir, "node_modules", "node-red", "red.js"))
	cmd := exec.Command(node, red, "--settings", settings, "--userDir", filepath.Join(dir, "user"), flowFile)
	cmd.Env = append(os.Environ(), "NODE_RED_PORT="+port)
	n := &nodeRed{}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &prefixWriter{w: &n.log, prefix: "stderr: "}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	connected := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var once sync.Once
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			n.mu.Lock()
			fmt.Fprintln(&n.log, l)
			if d := debugLine.FindStringSubmatch(l); d != nil {
				n.lines = append(n.lines, d[1]+"\t"+d[2])
			}
			n.mu.Unlock()
			if strings.Contains(l, "Connected to broker") {
				once.Do(func() { close(connected) })
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		<-done
		if t.Failed() {
			n.mu.Lock()
			t.Logf("Node-RED's output:\n%s", n.log.String())
			n.mu.Unlock()
		}
	})
	select {
	case <-connected:
	case <-done:
		t.Fatalf("Node-RED exited:\n%s", n.log.String())
	case <-ctx.Done():
		t.Fatalf("Node-RED did not connect to mosquitto:\n%s", n.log.String())
	}
	return n
}

// TestInteropExamplesBindCapturedPayloads runs an update of two devices
// (one fails to boot the new image and is rolled back, which makes the
// gateway unhealthy) through mosquitto, then kills fieldgated for its last
// will. Every message under the prefix is captured: each filter of the
// examples matches captured messages and each field they read is present
// in at least one of them. Node-RED runs the example flow on the same
// broker: its device summaries show each device's id, protocol, version,
// state and the transfer's bytes, and its alerts fire on the unhealthy
// status and on the last will.
func TestInteropExamplesBindCapturedPayloads(t *testing.T) {
	m := startMosquitto(t)
	if testing.Short() {
		t.Skip("interop test builds and runs every binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	red := startNodeRed(t, ctx, m)
	bin := buildAll(t)
	env, err := Setup(ctx, Options{Bin: bin, Work: filepath.Join(t.TempDir(), "work"), Out: output(t),
		Devices: 2, Broker: m.URL(), Faults: map[string][]string{"io16-b": {"boot-fail"}}})
	if env != nil {
		t.Cleanup(env.Close)
	}
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	stop := captureAll(t, ctx, m)
	if err := env.StartDaemon(); err != nil {
		t.Fatal(err)
	}
	final, err := waitSettled(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("job %s ended %s", final.Jobs[0].ID, final.Jobs[0].Phase)
	if _, err := pollStatus(ctx, env, "an empty outbox", func(st api.Status) bool { return st.Gateway.OutboxDepth == 0 }); err != nil {
		t.Fatal(err)
	}
	env.KillDaemon()
	waitLastWill(t, m, gwPrefix)
	msgs := stop()

	for _, r := range exampleRefs(t) {
		matched, has := 0, 0
		for _, msg := range msgs {
			if msg.payload == "" || !topicMatches(r.filter, msg.topic) {
				continue
			}
			matched++
			if r.path == "" || payloadHas(msg.payload, strings.Split(r.path, ".")) {
				has++
			}
		}
		switch {
		case matched == 0:
			t.Errorf("%s: none of the %d captured messages is on a topic the filter matches", r, len(msgs))
		case has == 0:
			t.Errorf("%s: none of the %d captured messages on the filter has the field", r, matched)
		}
	}

	if red == nil {
		return
	}
	var alerts []map[string]any
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); { // the last will reaches Node-RED through the same broker
		if alerts = red.outputs("gateway alert"); slices.ContainsFunc(alerts, func(a map[string]any) bool { return a["alert"] == "offline" }) {
			break
		}
		time.Sleep(100 * time.Millisecond) // waiting for a peer process; not a timing assertion
	}
	devs := red.outputs("device state")
	t.Logf("Node-RED: %d device summaries, %d alerts", len(devs), len(alerts))
	last := map[string]map[string]any{}
	transfer := false
	for _, d := range devs {
		id, _ := d["device"].(string)
		for _, k := range []string{"device", "protocol", "version", "state", "ts_ms"} {
			if d[k] == nil {
				t.Errorf("Node-RED device summary %v has no %s", d, k)
			}
		}
		if d["protocol"] != "xmodem" {
			t.Errorf("Node-RED device summary %v: protocol, want xmodem", d)
		}
		if d["state"] == "transfer" && d["bytes_total"] == float64(imageSize) {
			transfer = true
		}
		last[id] = d
	}
	if !transfer {
		t.Errorf("no Node-RED device summary in transfer with bytes_total %d", imageSize)
	}
	if d := last["io16-a"]; d["version"] != newVersion || d["state"] != "idle" {
		t.Errorf("Node-RED's last summary of io16-a = %v, want version %s, state idle", d, newVersion)
	}
	if d := last["io16-b"]; d["version"] != oldVersion {
		t.Errorf("Node-RED's last summary of io16-b (rolled back) = %v, want version %s", d, oldVersion)
	}
	var unhealthy, offline bool
	for _, a := range alerts {
		switch a["alert"] {
		case "unhealthy":
			conds, _ := json.Marshal(a["conditions"])
			unhealthy = unhealthy || (a["gateway"] == "gw1" && a["site"] == "demo" && bytes.Contains(conds, []byte(`"name":"rollback"`)))
		case "offline":
			offline = offline || (a["reason"] == "lost" && a["topic"] == gwPrefix+"/status")
		}
	}
	if !unhealthy || !offline {
		t.Errorf("Node-RED alerts %v: want an unhealthy gateway gw1 with the condition rollback (%v) and the last will, reason lost (%v)", alerts, unhealthy, offline)
	}
}
