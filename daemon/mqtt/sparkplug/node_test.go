// SPDX-License-Identifier: Apache-2.0

package sparkplug

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/mqtt"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testConfig() Config {
	return Config{
		MQTT:    mqtt.Config{Broker: "tcp://127.0.0.1:1883", ClientID: "fieldgated-gw1-sparkplug", Prefix: "fieldgate/v1/site1/gw1"},
		GroupID: "site1", EdgeNodeID: "gw1",
		Now: func() time.Time { return t0 },
	}
}

// sent is one published message, decoded.
type sent struct {
	topic string
	qos   byte
	p     Payload
}

type harness struct {
	t        *testing.T
	n        *Node
	s        *session
	out      []sent
	commands [][2]string // topic, payload
}

func newHarness(t *testing.T, cfg Config) *harness {
	h := &harness{t: t}
	h.n = New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), func(topic string, payload []byte) {
		h.commands = append(h.commands, [2]string{topic, string(payload)})
	})
	h.s = h.n.newSession(7, func(topic string, qos byte, payload []byte) error {
		p, err := Unmarshal(payload)
		if err != nil {
			t.Fatalf("published payload on %s does not decode: %v", topic, err)
		}
		h.out = append(h.out, sent{topic, qos, p})
		return nil
	})
	return h
}

// take returns the messages published since the last take.
func (h *harness) take() []sent {
	out := h.out
	h.out = nil
	return out
}

func (h *harness) update(v View) {
	h.t.Helper()
	h.n.Update(v)
	if err := h.s.refresh(); err != nil {
		h.t.Fatal(err)
	}
}

func topics(ms []sent) []string {
	var ts []string
	for _, m := range ms {
		ts = append(ts, m.topic)
	}
	return ts
}

func seqs(ms []sent) []uint64 {
	var qs []uint64
	for _, m := range ms {
		qs = append(qs, m.p.Seq)
	}
	return qs
}

func testView() View {
	exp := t0.Add(48 * time.Hour)
	return View{
		Gateway: api.Gateway{ID: "gw1", Site: "site1", Version: "1.4.0", State: "running", MetadataExpires: &exp, OutboxDepth: 3},
		Devices: []api.Device{
			{ID: "plc1", HardwareID: "acme-plc-r2", Model: "PLC-9", Serial: "S1", Version: "1.0.0", Group: "line1", State: "idle"},
			{ID: "io1", HardwareID: "acme-io16-rev3", Version: "2.0.0", Group: "line1", State: "idle"},
		},
		Windows:     []api.WindowInfo{{Group: "line1", Window: "nightly", Next: []time.Time{t0.Add(10 * time.Hour)}}},
		RootVersion: 2,
	}
}

func TestTopics(t *testing.T) {
	cfg := testConfig()
	cfg.PrimaryHostID = "scada1"
	for _, tc := range []struct{ typ, dev, want string }{
		{"NBIRTH", "", "spBv1.0/site1/NBIRTH/gw1"},
		{"NDEATH", "", "spBv1.0/site1/NDEATH/gw1"},
		{"NDATA", "", "spBv1.0/site1/NDATA/gw1"},
		{"NCMD", "", "spBv1.0/site1/NCMD/gw1"},
		{"DBIRTH", "plc1", "spBv1.0/site1/DBIRTH/gw1/plc1"},
		{"DDEATH", "plc1", "spBv1.0/site1/DDEATH/gw1/plc1"},
		{"DDATA", "plc1", "spBv1.0/site1/DDATA/gw1/plc1"},
		{"DCMD", "plc1", "spBv1.0/site1/DCMD/gw1/plc1"},
	} {
		if got := cfg.Topic(tc.typ, tc.dev); got != tc.want {
			t.Errorf("Topic(%q, %q) = %q, want %q", tc.typ, tc.dev, got, tc.want)
		}
	}
	if got, want := cfg.StateTopic(), "spBv1.0/STATE/scada1"; got != want {
		t.Errorf("StateTopic() = %q, want %q", got, want)
	}
}

func TestCheckID(t *testing.T) {
	for _, id := range []string{"", "a/b", "a+", "#", "a\x00", "\xff"} {
		if CheckID(id) == nil {
			t.Errorf("CheckID(%q) = nil, want an error", id)
		}
	}
	for _, id := range []string{"site1", "Halle 3", "gw-1.a"} {
		if err := CheckID(id); err != nil {
			t.Errorf("CheckID(%q) = %v, want nil", id, err)
		}
	}
}

// TestBirths pins the births: NBIRTH with seq 0 and the connection's
// bdSeq, every node metric with name, alias and type (Node
// Control/Rebirth a Boolean), then one DBIRTH per device with the next
// seqs; aliases unique across the node and its devices; QoS 0.
func TestBirths(t *testing.T) {
	h := newHarness(t, testConfig())
	h.update(testView())
	out := h.take()
	if diff := cmp.Diff([]string{"spBv1.0/site1/NBIRTH/gw1", "spBv1.0/site1/DBIRTH/gw1/plc1", "spBv1.0/site1/DBIRTH/gw1/io1"}, topics(out)); diff != "" {
		t.Fatalf("births (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint64{0, 1, 2}, seqs(out)); diff != "" {
		t.Errorf("seq (-want +got):\n%s", diff)
	}
	aliases := map[uint64]string{}
	for _, m := range out {
		if m.qos != 0 || !m.p.HasSeq || m.p.Timestamp != uint64(t0.UnixMilli()) {
			t.Errorf("%s: qos %d, seq present %v, timestamp %d; want 0, true, %d", m.topic, m.qos, m.p.HasSeq, m.p.Timestamp, t0.UnixMilli())
		}
		for _, mt := range m.p.Metrics {
			if mt.Name == "" || !mt.HasAlias {
				t.Errorf("%s: metric %q alias %v: births carry name and alias", m.topic, mt.Name, mt.HasAlias)
			}
			if prev, dup := aliases[mt.Alias]; dup {
				t.Errorf("alias %d used by %s and %s", mt.Alias, prev, mt.Name)
			}
			aliases[mt.Alias] = m.topic + " " + mt.Name
		}
	}
	byName := map[string]Metric{}
	for _, mt := range out[0].p.Metrics {
		byName[mt.Name] = mt
	}
	for _, tc := range []struct {
		name string
		typ  DataType
		val  any
	}{
		{MetricBdSeq, Int64, int64(7)},
		{MetricRebirth, Boolean, false},
		{MetricGatewayVersion, String, "1.4.0"},
		{MetricAgentState, String, "running"},
		{MetricRootVersion, Int64, int64(2)},
		{MetricMetadataExpires, DateTime, t0.Add(48 * time.Hour).UnixMilli()},
		{MetricOutboxDepth, Int64, int64(3)},
		{MetricCommand, String, ""},
		{MetricLastResult, String, ""},
	} {
		m, ok := byName[tc.name]
		if !ok {
			t.Errorf("NBIRTH has no %q", tc.name)
			continue
		}
		if m.Type != tc.typ || metricValue(m) != tc.val {
			t.Errorf("NBIRTH %q = %v %v, want %v %v", tc.name, m.Type, metricValue(m), tc.typ, tc.val)
		}
	}
	if got := len(out[0].p.Metrics); got != len(nodeDefs) {
		t.Errorf("NBIRTH has %d metrics, want %d", got, len(nodeDefs))
	}
	dev := map[string]any{}
	for _, mt := range out[1].p.Metrics {
		dev[mt.Name] = metricValue(mt)
	}
	want := map[string]any{
		MetricHardwareMake: "acme-plc-r2", MetricHardwareModel: "PLC-9", MetricFW: "1.0.0", MetricSerial: "S1",
		MetricUpdateState: "idle", MetricAvailableVersion: "", MetricProgress: int64(0), MetricJobID: "",
		MetricWindowOpens: t0.Add(10 * time.Hour).UnixMilli(), MetricPriority: "", MetricCommand: "",
	}
	if diff := cmp.Diff(want, dev); diff != "" {
		t.Errorf("DBIRTH plc1 (-want +got):\n%s", diff)
	}
}

func metricValue(m Metric) any {
	switch {
	case m.Null:
		return nil
	case m.Type == Boolean:
		return m.Bool
	case m.Type == String:
		return m.Str
	}
	return m.Int
}

// TestDataOnlyChanged pins DATA: only the metrics that changed, by alias
// and without name; nothing for a device that did not change; seq goes on
// from the births.
func TestDataOnlyChanged(t *testing.T) {
	h := newHarness(t, testConfig())
	v := testView()
	h.update(v)
	births := h.take()
	alias := map[string]uint64{}
	for _, m := range births {
		for _, mt := range m.p.Metrics {
			alias[m.topic+" "+mt.Name] = mt.Alias
		}
	}

	h.update(v) // nothing changed
	if out := h.take(); len(out) != 0 {
		t.Fatalf("unchanged view published %v", topics(out))
	}

	v.Devices[0].State, v.Devices[0].Job = "transfer", "job-1"
	v.Devices[0].Progress = &api.Progress{Done: 512, Total: 1024}
	v.Jobs = []api.Job{{ID: "job-1", Version: "1.1.0", Severity: "high", Group: "line1", Steps: []api.Step{{Device: "plc1", Phase: "transfer"}}}}
	v.Gateway.OutboxDepth = 9
	h.update(v)
	out := h.take()
	if diff := cmp.Diff([]string{"spBv1.0/site1/NDATA/gw1", "spBv1.0/site1/DDATA/gw1/plc1"}, topics(out)); diff != "" {
		t.Fatalf("data (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint64{3, 4}, seqs(out)); diff != "" {
		t.Errorf("seq (-want +got):\n%s", diff)
	}
	for _, m := range out {
		for _, mt := range m.p.Metrics {
			if mt.Name != "" || !mt.HasAlias {
				t.Errorf("%s: metric %q, alias %v: DATA carries the alias only", m.topic, mt.Name, mt.HasAlias)
			}
		}
	}
	got := map[uint64]any{}
	for _, mt := range out[1].p.Metrics {
		got[mt.Alias] = metricValue(mt)
	}
	dbirth := "spBv1.0/site1/DBIRTH/gw1/plc1 "
	want := map[uint64]any{
		alias[dbirth+MetricUpdateState]:      "transfer",
		alias[dbirth+MetricProgress]:         int64(50),
		alias[dbirth+MetricJobID]:            "job-1",
		alias[dbirth+MetricAvailableVersion]: "1.1.0",
		alias[dbirth+MetricPriority]:         "high",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DDATA plc1 by alias (-want +got):\n%s", diff)
	}
	if n := out[0].p.Metrics; len(n) != 1 || n[0].Alias != alias["spBv1.0/site1/NBIRTH/gw1 "+MetricOutboxDepth] || n[0].Int != 9 {
		t.Errorf("NDATA = %+v, want only Outbox Depth = 9", n)
	}

	// The step commits: the job ends, the device goes back to idle, and
	// its state says how its last update ended.
	v.Devices[0].State, v.Devices[0].Job, v.Devices[0].Progress, v.Devices[0].Version = "idle", "", nil, "1.1.0"
	v.Jobs[0].Phase, v.Jobs[0].Steps[0].Phase = "succeeded", "committed"
	h.update(v)
	out = h.take()
	got = map[uint64]any{}
	for _, mt := range out[0].p.Metrics {
		got[mt.Alias] = metricValue(mt)
	}
	want = map[uint64]any{
		alias[dbirth+MetricUpdateState]: "committed", alias[dbirth+MetricProgress]: int64(100),
		alias[dbirth+MetricFW]: "1.1.0", alias[dbirth+MetricAvailableVersion]: "", alias[dbirth+MetricPriority]: "",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DDATA after commit (-want +got):\n%s", diff)
	}
}

// TestSeqWraps pins seq: 0 in NBIRTH, then one more per message of the
// node and its devices, 255 followed by 0.
func TestSeqWraps(t *testing.T) {
	h := newHarness(t, testConfig())
	v := testView()
	h.update(v)
	h.take() // births: 0, 1, 2
	var all []uint64
	for i := range 300 {
		v.Gateway.OutboxDepth = i + 100
		h.update(v)
	}
	for _, m := range h.take() {
		all = append(all, m.p.Seq)
	}
	for i, q := range all {
		if want := uint64(i+3) % 256; q != want {
			t.Fatalf("message %d after the births has seq %d, want %d", i, q, want)
		}
	}
	if !slices.Contains(all, 255) || all[len(all)-1] != (300+2)%256 {
		t.Errorf("seq did not wrap: last %d", all[len(all)-1])
	}
}

func TestBdSeqPersisted(t *testing.T) {
	dir := t.TempDir()
	s := newBdSeqStore(dir)
	for want := int64(0); want < 3; want++ {
		if got, err := s.next(); err != nil || got != want {
			t.Fatalf("next() = %d, %v, want %d", got, err, want)
		}
	}
	// A restart goes on from the stored number.
	s = newBdSeqStore(dir)
	if got, _ := s.next(); got != 3 {
		t.Errorf("after restart next() = %d, want 3", got)
	}
	if raw, _ := os.ReadFile(filepath.Join(dir, bdSeqFile)); string(raw) != "3\n" {
		t.Errorf("stored %q, want \"3\\n\"", raw)
	}
	// mod 256
	if err := os.WriteFile(filepath.Join(dir, bdSeqFile), []byte("255\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := newBdSeqStore(dir).next(); got != 0 {
		t.Errorf("after 255 next() = %d, want 0", got)
	}
	// A corrupt file starts again at 0.
	os.WriteFile(filepath.Join(dir, bdSeqFile), []byte("garbage"), 0o600)
	if got, _ := newBdSeqStore(dir).next(); got != 0 {
		t.Errorf("after a corrupt file next() = %d, want 0", got)
	}
}

func TestDeathPayload(t *testing.T) {
	n := New(testConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	p, err := Unmarshal(n.deathPayload(42))
	if err != nil {
		t.Fatal(err)
	}
	if p.HasSeq || len(p.Metrics) != 1 || p.Metrics[0].Name != MetricBdSeq || p.Metrics[0].Type != Int64 || p.Metrics[0].Int != 42 {
		t.Errorf("NDEATH = %+v, want only bdSeq = 42 (Int64) and no seq", p)
	}
}

func state(online bool, ts int64) []byte {
	return fmt.Appendf(nil, `{"online":%v,"timestamp":%d}`, online, ts)
}

// TestStateGating pins the primary host rule: no birth until its STATE
// says online; a stale STATE is ignored; offline after the births ends
// the session.
func TestStateGating(t *testing.T) {
	cfg := testConfig()
	cfg.PrimaryHostID = "scada1"
	h := newHarness(t, cfg)
	h.update(testView())
	if out := h.take(); len(out) != 0 {
		t.Fatalf("published %v before the host's STATE", topics(out))
	}
	for _, p := range [][]byte{state(false, 100), []byte(`{"timestamp":1}`), []byte("ONLINE"), []byte(`{"online":"yes"}`)} {
		if err := h.s.handle("spBv1.0/STATE/scada1", p); err != nil {
			t.Fatal(err)
		}
		if out := h.take(); len(out) != 0 {
			t.Fatalf("STATE %s published %v", p, topics(out))
		}
	}
	if err := h.s.handle("spBv1.0/STATE/other", state(true, 200)); err != nil || len(h.take()) != 0 {
		t.Fatalf("another host's STATE started the births")
	}
	if err := h.s.handle("spBv1.0/STATE/scada1", state(true, 200)); err != nil {
		t.Fatal(err)
	}
	if out := h.take(); len(out) != 3 || out[0].topic != "spBv1.0/site1/NBIRTH/gw1" {
		t.Fatalf("online STATE published %v, want NBIRTH and 2 DBIRTH", topics(out))
	}
	if err := h.s.handle("spBv1.0/STATE/scada1", state(false, 150)); err != nil {
		t.Fatalf("stale offline STATE: %v, want it ignored", err)
	}
	if err := h.s.handle("spBv1.0/STATE/scada1", state(false, 300)); !errors.Is(err, errHostOffline) {
		t.Fatalf("offline STATE: %v, want errHostOffline", err)
	}
}

func ncmd(ms ...Metric) []byte { return Payload{Timestamp: 1, Metrics: ms}.Marshal() }

// TestRebirth pins NCMD Node Control/Rebirth = true: NBIRTH (seq 0, the
// same bdSeq) and every DBIRTH again, whether the host names the metric or
// uses its alias.
func TestRebirth(t *testing.T) {
	h := newHarness(t, testConfig())
	h.update(testView())
	births := h.take()
	var rebirthAlias uint64
	for _, mt := range births[0].p.Metrics {
		if mt.Name == MetricRebirth {
			rebirthAlias = mt.Alias
		}
	}
	for _, m := range []Metric{
		{Name: MetricRebirth, Type: Boolean, Bool: true},
		{Alias: rebirthAlias, HasAlias: true, Type: Boolean, Bool: true},
	} {
		h.update(View{Gateway: api.Gateway{OutboxDepth: 1}, Devices: testView().Devices}) // a DATA in between
		h.take()
		if err := h.s.handle("spBv1.0/site1/NCMD/gw1", ncmd(m)); err != nil {
			t.Fatal(err)
		}
		out := h.take()
		if diff := cmp.Diff(topics(births), topics(out)); diff != "" {
			t.Fatalf("rebirth (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]uint64{0, 1, 2}, seqs(out)); diff != "" {
			t.Errorf("rebirth seq (-want +got):\n%s", diff)
		}
		if bd := out[0].p.Metrics[0]; bd.Name != MetricBdSeq || bd.Int != 7 {
			t.Errorf("rebirth bdSeq = %+v, want 7", bd)
		}
	}
	for _, m := range []Metric{{Name: MetricRebirth, Type: Boolean, Bool: false}, {Name: MetricGatewayVersion, Type: String, Str: "x"}} {
		if err := h.s.handle("spBv1.0/site1/NCMD/gw1", ncmd(m)); err != nil {
			t.Fatal(err)
		}
		if out := h.take(); len(out) != 0 {
			t.Errorf("NCMD %+v published %v", m, topics(out))
		}
	}
}

// TestCommandRouting pins that a command written to Update Control/Command
// reaches the daemon's handler on the JSON tree's command topic of its id,
// unchanged, from NCMD and DCMD; that a document without a usable id goes
// to the topic of id "-" (which the daemon rejects and audits); and that
// malformed payloads and unknown devices change nothing.
func TestCommandRouting(t *testing.T) {
	h := newHarness(t, testConfig())
	h.update(testView())
	births := h.take()
	var devCmdAlias uint64
	for _, mt := range births[1].p.Metrics {
		if mt.Name == MetricCommand {
			devCmdAlias = mt.Alias
		}
	}
	doc := `{"id":"c-1","action":"approve","sig":"…"}`
	steps := []struct {
		topic   string
		payload []byte
		want    [][2]string
	}{
		{"spBv1.0/site1/NCMD/gw1", ncmd(Metric{Name: MetricCommand, Type: String, Str: doc}), [][2]string{{"fieldgate/v1/site1/gw1/cmd/c-1", doc}}},
		{"spBv1.0/site1/DCMD/gw1/plc1", ncmd(Metric{Alias: devCmdAlias, HasAlias: true, Type: String, Str: doc}), [][2]string{{"fieldgate/v1/site1/gw1/cmd/c-1", doc}}},
		{"spBv1.0/site1/NCMD/gw1", ncmd(Metric{Name: MetricCommand, Type: String, Str: `{"id":"a/b"}`}), [][2]string{{"fieldgate/v1/site1/gw1/cmd/-", `{"id":"a/b"}`}}},
		{"spBv1.0/site1/NCMD/gw1", ncmd(Metric{Name: MetricCommand, Type: String, Str: "not json"}), [][2]string{{"fieldgate/v1/site1/gw1/cmd/-", "not json"}}},
		{"spBv1.0/site1/DCMD/gw1/nosuch", ncmd(Metric{Name: MetricCommand, Type: String, Str: doc}), nil},
		{"spBv1.0/site1/NCMD/gw1", []byte{0x12, 0xff}, nil},                                           // truncated
		{"spBv1.0/site1/NCMD/gw1", ncmd(Metric{Name: MetricCommand, Type: Int64, Int: 5}), nil},       // wrong type
		{"spBv1.0/site1/NCMD/gw1", ncmd(Metric{Name: MetricLastResult, Type: String, Str: doc}), nil}, // not writable
		{"spBv1.0/other/NCMD/gw1", ncmd(Metric{Name: MetricCommand, Type: String, Str: doc}), nil},
	}
	for _, st := range steps {
		h.commands = nil
		if err := h.s.handle(st.topic, st.payload); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(st.want, h.commands); diff != "" {
			t.Errorf("handle(%s, %x) commands (-want +got):\n%s", st.topic, st.payload, diff)
		}
	}
	if out := h.take(); len(out) != 0 {
		t.Errorf("commands published %v", topics(out))
	}
	h.n.CommandResult([]byte(`{"id":"c-1","status":"succeeded"}`))
	if err := h.s.refresh(); err != nil {
		t.Fatal(err)
	}
	out := h.take()
	if len(out) != 1 || len(out[0].p.Metrics) != 1 || out[0].p.Metrics[0].Str != `{"id":"c-1","status":"succeeded"}` {
		t.Errorf("after a result: %+v, want one NDATA with Last Result", out)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		group, node, host string
		ok                bool
	}{
		{"site1", "gw1", "", true},
		{"site1", "gw1", "scada", true},
		{"", "gw1", "", false},
		{"site1", "", "", false},
		{"site1", "gw1", "a/b", false},
		{"a+b", "gw1", "", false},
	} {
		cfg := Config{GroupID: tc.group, EdgeNodeID: tc.node, PrimaryHostID: tc.host}
		if err := cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%q, %q, %q) = %v, want ok %v", tc.group, tc.node, tc.host, err, tc.ok)
		}
	}
}
