// SPDX-License-Identifier: Apache-2.0

package main

// Sparkplug B interop: a host application built on Eclipse Tahu's own
// JavaScript libraries (daemon/mqtt/sparkplug/testdata/tahu/host.js with
// npm sparkplug-payload and the mqtt client of sparkplug-client) follows a
// real fieldgated with simulated devices through mosquitto. Debian
// packages: mosquitto, mosquitto-clients, nodejs, npm (and `npm ci
// --prefix daemon/mqtt/sparkplug/testdata/tahu`).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/mqtt"
	"github.com/fieldgate/fieldgate/daemon/mqtt/mqtttest"
)

const tahuDir = "../../daemon/mqtt/sparkplug/testdata/tahu"

// spMessage is one Sparkplug message as host.js decoded it with Tahu's
// sparkplug-payload, DATA metrics named from the births' aliases.
type spMessage struct {
	Event   string              `json:"event"`
	Topic   string              `json:"topic"`
	Type    string              `json:"type"`
	Group   string              `json:"group"`
	Node    string              `json:"node"`
	Device  string              `json:"device"`
	Seq     *uint64             `json:"seq"`
	Metrics map[string]spMetric `json:"metrics"`
	Unnamed []uint64            `json:"unnamed"`
}

type spMetric struct {
	Type  string  `json:"type"`
	Value any     `json:"value"`
	Alias *uint64 `json:"alias"`
	Named bool    `json:"named"`
}

func (m spMessage) String() string {
	seq := "-"
	if m.Seq != nil {
		seq = fmt.Sprint(*m.Seq)
	}
	var ms []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range m.Metrics {
			if !yield(k) {
				return
			}
		}
	}) {
		ms = append(ms, fmt.Sprintf("%s=%v", k, m.Metrics[k].Value))
	}
	return fmt.Sprintf("%s seq %s: %s", m.Topic, seq, strings.Join(ms, ", "))
}

// tahuHost is host.js running under node.
type tahuHost struct {
	t      *testing.T
	stdin  io.WriteCloser
	mu     sync.Mutex
	msgs   []spMessage
	notify chan struct{}
	stderr bytes.Buffer
}

// startTahuHost starts host.js as host hostID on broker and waits until
// its STATE is online.
func startTahuHost(t *testing.T, ctx context.Context, broker, hostID string) *tahuHost {
	t.Helper()
	node := mqtttest.NeedPeer(t, "node", "nodejs")
	if _, err := os.Stat(filepath.Join(tahuDir, "node_modules", "sparkplug-payload")); err != nil {
		msg := "Tahu's JavaScript libraries are not installed: run npm ci --prefix daemon/mqtt/sparkplug/testdata/tahu (Debian nodejs, npm)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	h := &tahuHost{t: t, notify: make(chan struct{}, 1)}
	cmd := exec.Command(node, "host.js", broker, hostID)
	cmd.Dir = tahuDir
	cmd.Stderr = &h.stderr
	var err error
	if h.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var m spMessage
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("host.js printed %q: %v", sc.Text(), err)
				continue
			}
			h.mu.Lock()
			h.msgs = append(h.msgs, m)
			h.mu.Unlock()
			select {
			case h.notify <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		<-done
		if t.Failed() {
			t.Logf("host.js stderr:\n%s", h.stderr.String())
		}
	})
	h.waitFor(ctx, "the host's STATE online", 0, func(m spMessage) bool { return m.Event == "online" })
	return h
}

// waitFor returns the index and the first message at or after from for
// which cond holds, waiting for it until ctx ends.
func (h *tahuHost) waitFor(ctx context.Context, what string, from int, cond func(spMessage) bool) (int, spMessage) {
	h.t.Helper()
	for {
		h.mu.Lock()
		for i := from; i < len(h.msgs); i++ {
			if cond(h.msgs[i]) {
				m := h.msgs[i]
				h.mu.Unlock()
				return i, m
			}
		}
		n := len(h.msgs)
		h.mu.Unlock()
		select {
		case <-h.notify:
		case <-ctx.Done():
			h.t.Fatalf("waiting for %s: %v; the host saw %d messages:\n%s", what, ctx.Err(), n, h.dump(from))
		}
	}
}

func (h *tahuHost) all() []spMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.msgs)
}

func (h *tahuHost) dump(from int) string {
	var b strings.Builder
	for _, m := range h.all()[from:] {
		if m.Event == "" {
			fmt.Fprintf(&b, "  %s\n", m)
		}
	}
	return b.String()
}

// send makes the host publish a Sparkplug payload with metrics on topic.
func (h *tahuHost) send(topic string, metrics ...map[string]any) {
	h.t.Helper()
	line, _ := json.Marshal(map[string]any{"topic": topic, "metrics": metrics})
	if _, err := h.stdin.Write(append(line, '\n')); err != nil {
		h.t.Fatalf("host.js stdin: %v", err)
	}
}

func spNum(v any) (float64, bool) { f, ok := v.(float64); return f, ok }

// TestInteropSparkplugTahu: a Tahu-based host decodes fieldgated's NBIRTH
// and DBIRTHs, approves the job with a signed command written to a
// device's Update Control/Command (DCMD), follows the update through DDATA
// to committed, requests a rebirth (NCMD) and gets NBIRTH and every DBIRTH
// again, sees NDEATH with the NBIRTH's bdSeq after kill -9 of fieldgated,
// and the next NBIRTH with bdSeq + 1. seq runs 0..255 over every message.
func TestInteropSparkplugTahu(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test builds and runs every binary")
	}
	m := startMosquitto(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	const hostID, group, node = "tahu1", "demo", "gw1"
	host := startTahuHost(t, ctx, m.URL(), hostID)

	env, err := Setup(ctx, Options{Bin: buildAll(t), Work: filepath.Join(t.TempDir(), "work"), Out: output(t),
		Devices: 2, Baud: 38400, Broker: m.URL(), Approval: "remote"})
	if env != nil {
		t.Cleanup(env.Close)
	}
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	cfg, err := os.ReadFile(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(cfg, []byte("\nmqtt:\n")) {
		t.Fatalf("scenario config has no mqtt section:\n%s", cfg)
	}
	cfg = bytes.Replace(cfg, []byte("\nmqtt:\n"), []byte("\nmqtt:\n  sparkplug: {enabled: true, primary_host_id: "+hostID+"}\n"), 1)
	cfg = append(cfg, fmt.Sprintf("approvers:\n  - {name: ops-1, public_key: %s}\n", base64.StdEncoding.EncodeToString(pub))...)
	if err := os.WriteFile(env.Config, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := env.StartDaemon(); err != nil {
		t.Fatal(err)
	}

	topic := func(typ, dev string) string {
		if dev != "" {
			return "spBv1.0/" + group + "/" + typ + "/" + node + "/" + dev
		}
		return "spBv1.0/" + group + "/" + typ + "/" + node
	}
	// Births.
	i, nbirth := host.waitFor(ctx, "NBIRTH", 0, func(m spMessage) bool { return m.Type == "NBIRTH" })
	bdSeq, ok := spNum(nbirth.Metrics["bdSeq"].Value)
	if !ok || nbirth.Metrics["bdSeq"].Type != "Int64" || nbirth.Seq == nil || *nbirth.Seq != 0 {
		t.Fatalf("NBIRTH = %s, want seq 0 and an Int64 bdSeq", nbirth)
	}
	for name, typ := range map[string]string{
		"Properties/Gateway Version": "String", "Update Agent/State": "String", "Update Agent/TUF Root Version": "Int64",
		"Update Agent/Metadata Expires": "DateTime", "Update Agent/Outbox Depth": "Int64", "Update Control/Command": "String",
		"Update Control/Last Result": "String", "Node Control/Rebirth": "Boolean",
	} {
		if got := nbirth.Metrics[name]; got.Type != typ || !got.Named || got.Alias == nil {
			t.Errorf("NBIRTH %q = %+v, want type %s with name and alias", name, got, typ)
		}
	}
	for _, id := range env.IDs {
		_, db := host.waitFor(ctx, "DBIRTH "+id, i, func(m spMessage) bool { return m.Topic == topic("DBIRTH", id) })
		for name, typ := range map[string]string{
			"Properties/Hardware Make": "String", "Properties/FW": "String", "Update/State": "String",
			"Update/Progress": "Int32", "Update/Window Opens": "DateTime", "Update Control/Command": "String",
		} {
			if got := db.Metrics[name]; got.Type != typ || !got.Named || got.Alias == nil {
				t.Errorf("DBIRTH %s %q = %+v, want type %s with name and alias", id, name, got, typ)
			}
		}
	}

	// The job waits for a remote approval; the host writes a signed one.
	st, err := pollStatus(ctx, env, "a job awaiting approval", func(st api.Status) bool {
		return len(st.Jobs) > 0 && st.Jobs[0].Phase == "awaiting-approval"
	})
	if err != nil {
		t.Fatal(err)
	}
	job := st.Jobs[0]
	doc, err := mqtt.SignCommand(mqtt.Command{ID: "sp-approve-1", Action: mqtt.ActionApprove, Gateway: gwPrefix,
		Expires: time.Now().Add(10 * time.Minute), Job: job.ID, SHA256: job.SHA256}, "ops-1", priv)
	if err != nil {
		t.Fatal(err)
	}
	mark := len(host.all())
	host.send(topic("DCMD", env.IDs[0]), map[string]any{"name": "Update Control/Command", "type": "String", "value": string(doc)})
	_, res := host.waitFor(ctx, "Last Result succeeded", mark, func(m spMessage) bool {
		r, _ := m.Metrics["Update Control/Last Result"].Value.(string)
		return m.Type == "NDATA" && strings.Contains(r, `"status":"succeeded"`)
	})
	t.Logf("Last Result: %v", res.Metrics["Update Control/Last Result"].Value)

	// DDATA follows the update to committed on every device.
	for _, id := range env.IDs {
		host.waitFor(ctx, id+" committed", mark, func(m spMessage) bool {
			return m.Topic == topic("DDATA", id) && m.Metrics["Update/State"].Value == "committed"
		})
	}
	var states []string
	midProgress := false
	for _, msg := range host.all()[mark:] {
		if msg.Type != "DDATA" {
			continue
		}
		if s, ok := msg.Metrics["Update/State"].Value.(string); ok {
			states = append(states, msg.Device+":"+s)
		}
		if p, ok := spNum(msg.Metrics["Update/Progress"].Value); ok && p > 0 && p < 100 {
			midProgress = true
		}
		for name, mt := range msg.Metrics {
			if mt.Named || mt.Alias == nil {
				t.Errorf("%s carries %q by name, want the alias only", msg.Topic, name)
			}
		}
		if len(msg.Unnamed) > 0 {
			t.Errorf("%s carries aliases %v no birth declared", msg.Topic, msg.Unnamed)
		}
	}
	t.Logf("Update/State in DDATA: %s", strings.Join(states, " "))
	if !slices.Contains(states, env.IDs[0]+":transfer") || !midProgress {
		t.Errorf("DDATA states %v (progress between 0 and 100 seen: %v), want the transfer followed with its progress", states, midProgress)
	}
	final, err := waitSettled(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	if j := final.Jobs[0]; j.Phase != "succeeded" || len(j.Approvals) != 1 || j.Approvals[0].Kind != "remote" || j.Approvals[0].Actor != "key ops-1" {
		t.Errorf("job = phase %s approvals %+v, want succeeded with one remote approval by key ops-1", j.Phase, j.Approvals)
	}
	var audit bytes.Buffer
	if err := runToolTo(ctx, env.o, &audit, "fieldgatectl", "--socket", env.Socket, "audit", "export"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"command-accepted"`, `"command-succeeded"`, `"sp-approve-1"`} {
		if !strings.Contains(audit.String(), want) {
			t.Errorf("audit has no %s", want)
		}
	}

	// Rebirth on request.
	mark = len(host.all())
	host.send(topic("NCMD", ""), map[string]any{"name": "Node Control/Rebirth", "type": "Boolean", "value": true})
	i, re := host.waitFor(ctx, "NBIRTH after the rebirth request", mark, func(m spMessage) bool { return m.Type == "NBIRTH" })
	if b, _ := spNum(re.Metrics["bdSeq"].Value); b != bdSeq || *re.Seq != 0 {
		t.Errorf("rebirth NBIRTH = %s, want seq 0 and bdSeq %v", re, bdSeq)
	}
	for _, id := range env.IDs {
		_, db := host.waitFor(ctx, "DBIRTH "+id+" after the rebirth", i, func(m spMessage) bool { return m.Topic == topic("DBIRTH", id) })
		if db.Metrics["Update/State"].Value != "committed" || db.Metrics["Properties/FW"].Value != newVersion {
			t.Errorf("DBIRTH %s after rebirth = %s, want state committed and FW %s", id, db, newVersion)
		}
	}

	// kill -9: the broker publishes NDEATH, the will, with the NBIRTH's bdSeq.
	mark = len(host.all())
	env.KillDaemon()
	_, death := host.waitFor(ctx, "NDEATH after kill -9", mark, func(m spMessage) bool { return m.Type == "NDEATH" })
	if b, _ := spNum(death.Metrics["bdSeq"].Value); b != bdSeq || death.Seq != nil {
		t.Errorf("NDEATH = %s, want bdSeq %v and no seq", death, bdSeq)
	}
	if err := env.StartDaemon(); err != nil {
		t.Fatal(err)
	}
	_, again := host.waitFor(ctx, "NBIRTH after the restart", mark, func(m spMessage) bool { return m.Type == "NBIRTH" })
	if b, _ := spNum(again.Metrics["bdSeq"].Value); b != float64((int(bdSeq)+1)%256) {
		t.Errorf("NBIRTH after restart has bdSeq %v, want %v", again.Metrics["bdSeq"].Value, (int(bdSeq)+1)%256)
	}

	// seq: 0 in NBIRTH, then +1 (mod 256) on every message of the node and its devices.
	var next uint64
	for _, msg := range host.all() {
		switch {
		case msg.Event != "":
		case msg.Type == "NDEATH":
			next = 0
		case msg.Seq == nil:
			t.Errorf("%s has no seq", msg.Topic)
		case msg.Type == "NBIRTH":
			if *msg.Seq != 0 {
				t.Errorf("%s has seq %d, want 0", msg.Topic, *msg.Seq)
			}
			next = 1
		default:
			if *msg.Seq != next {
				t.Errorf("%s has seq %d, want %d", msg.Topic, *msg.Seq, next)
			}
			next = (next + 1) % 256
		}
	}
	if t.Failed() {
		t.Logf("the host saw:\n%s", host.dump(0))
	}
}
