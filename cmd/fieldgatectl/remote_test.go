// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/mqtt"
)

func TestParseWindow(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 500, time.UTC)
	tests := []struct {
		in         string
		start, end string // RFC 3339; empty: want an error (or no window for in == "")
	}{
		{"", "", ""},
		{"2026-05-01T22:00:00Z/2026-05-02T02:00:00Z", "2026-05-01T22:00:00Z", "2026-05-02T02:00:00Z"},
		{"2026-05-02T00:00:00+02:00/2026-05-02T04:00:00+02:00", "2026-05-01T22:00:00Z", "2026-05-02T02:00:00Z"},
		{"0s/4h", "2026-05-01T12:00:00Z", "2026-05-01T16:00:00Z"},
		{"24h/2026-05-03T00:00:00Z", "2026-05-02T12:00:00Z", "2026-05-03T00:00:00Z"},
		{"4h/0s", "", ""},
		{"2026-05-01T22:00:00Z", "", ""},
		{"tonight/tomorrow", "", ""},
		{"2026-05-01T22:00:00.5Z/2026-05-02T02:00:00Z", "", ""},
	}
	for _, tt := range tests {
		w, err := parseWindow(tt.in, now)
		if tt.start == "" {
			if tt.in == "" && (err != nil || !w.IsZero()) {
				t.Errorf("parseWindow(%q) = %v, %v, want no window", tt.in, w, err)
			}
			if tt.in != "" && err == nil {
				t.Errorf("parseWindow(%q) = %v, want an error", tt.in, w)
			}
			continue
		}
		if want := tt.start + "/" + tt.end; err != nil || w.String() != want {
			t.Errorf("parseWindow(%q) = %q, %v, want %q", tt.in, w, err, want)
		}
	}
}

func TestParseSigningKey(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	good := base64.StdEncoding.EncodeToString(priv)
	mixed := append(ed25519.PrivateKey(nil), priv...)
	mixed[40] ^= 1 // public half no longer matches the seed
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"line", good + "\n", true},
		{"spaces", "  " + good + "\r\n", true},
		{"empty", "", false},
		{"public key only", base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)), false},
		{"seed only", base64.StdEncoding.EncodeToString(priv.Seed()), false},
		{"not base64", "ed25519:" + good, false},
		{"halves do not match", base64.StdEncoding.EncodeToString(mixed), false},
	}
	for _, tt := range tests {
		k, err := parseSigningKey("k", []byte(tt.in))
		if (err == nil) != tt.ok {
			t.Errorf("parseSigningKey(%s) error = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err == nil && !bytes.Equal(k, priv) {
			t.Errorf("parseSigningKey(%s) returned another key", tt.name)
		}
	}
}

func TestKeygenWritesKeyAndPrintsPublicKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ops.key")
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"remote", "keygen", "--out", path}, &out, &errOut); err != nil {
		t.Fatalf("keygen: %v\n%s", err, errOut.String())
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v, want 0600", fi.Mode().Perm())
	}
	priv, err := readSigningKey(path, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := base64.StdEncoding.DecodeString(strings.TrimSpace(out.String()))
	if err != nil || !bytes.Equal(pub, priv.Public().(ed25519.PublicKey)) {
		t.Errorf("keygen printed %q, want the base64 public key of the key it wrote", out.String())
	}
	var again bytes.Buffer
	if err := run(context.Background(), []string{"remote", "pubkey", "--key", path}, &again, &errOut); err != nil || again.String() != out.String() {
		t.Errorf("pubkey = %q, %v, want %q", again.String(), err, out.String())
	}
	if err := run(context.Background(), []string{"remote", "keygen", "--out", path}, &out, &errOut); err == nil {
		t.Errorf("keygen over an existing key = nil, want an error")
	}
}

func TestWatchFilter(t *testing.T) {
	tests := []struct{ gateway, site, want string }{
		{"", "", "fieldgate/v1/#"},
		{"fieldgate/v1/s1/gw1", "", "fieldgate/v1/s1/gw1/#"},
		{"", "s1", "fieldgate/v1/s1/+/#"},
		{"a", "b", ""},
		{"fieldgate/v1/+/gw1", "", ""},
		{"", "s1/gw1", ""},
	}
	for _, tt := range tests {
		got, err := watchFilter(tt.gateway, tt.site)
		if got != tt.want || (err != nil) != (tt.want == "") {
			t.Errorf("watchFilter(%q, %q) = %q, %v, want %q", tt.gateway, tt.site, got, err, tt.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	const p = "fieldgate/v1/demo/gw1"
	tests := []struct {
		topic, payload string
		want           string // "" : not described
		seq            uint64
	}{
		{p + "/status", `{"online":true,"gateway":"gw1","version":"0.3.0","healthy":false,"outbox_depth":2,"time":"2026-05-01T12:00:03Z",` +
			`"health":[{"name":"device-unreachable","severity":"warning","subject":"io16-b","message":"x","since":"2026-05-01T12:00:00Z"}]}`,
			"status online NOT HEALTHY fieldgated 0.3.0 | warning device-unreachable[io16-b]", 0},
		{p + "/status", `{"online":false,"client_id":"fieldgated-gw1","reason":"lost"}`, "status OFFLINE (lost)", 0},
		{p + "/status", `{"online":true,"client_id":"fieldgated-gw1","time":"2026-05-01T12:00:03Z"}`, "status online", 0},
		{p + "/status", ``, "status cleared", 0},
		{p + "/devices/io16-a", `{"id":"io16-a","version":"1.0.0","state":"transfer","job":"j1","progress":{"done":10240,"total":40960}}`,
			"device io16-a version 1.0.0 state transfer 25% job j1", 0},
		{p + "/devices/status", `{"id":"status","version":"1.0.0","state":"idle"}`, "device status version 1.0.0 state idle", 0},
		{p + "/jobs/j1", `{"id":"j1","phase":"running","target":"acme-io16/fw-2.4.1.bin","devices":[{"device":"io16-a","phase":"transfer"},{"device":"io16-b","phase":"pending"}]}`,
			"job j1 running acme-io16/fw-2.4.1.bin [io16-a=transfer io16-b=pending]", 0},
		{p + "/events", `{"seq":7,"type":"step-committed","device":"io16-a","job":"j1","detail":{"version":"2.4.1","empty":""}}`,
			"event #7 step-committed device io16-a job j1 version=2.4.1", 7},
		{p + "/events", `{"type":"outbox-compacted","dropped":12,"first_seq":3,"last_seq":20}`,
			"event outbox-compacted: 12 events were dropped while the broker was unreachable", 0},
		{p + "/cmd/c1/result", `{"id":"c1","action":"approve","status":"rejected","reason":"expired: x"}`, "cmd c1 approve rejected: expired: x", 0},
		{p + "/cmd/c1", `{"id":"c1","action":"cancel","key":"ops","expires":"2026-05-01T13:00:00Z"}`,
			"cmd c1 cancel requested (key ops, expires 2026-05-01 13:00:00 +00:00)", 0},
		{p + "/cmd/c1/probe", `subscription check`, "", 0},
		{p + "/devices/io16-a", `not json`, "", 0},
		{"other", `{}`, "", 0},
	}
	for _, tt := range tests {
		r, ok := describe(tt.topic, []byte(tt.payload), timeFormat{loc: time.UTC})
		if tt.want == "" {
			if ok {
				t.Errorf("describe(%s, %.20q) = %q, want not described", tt.topic, tt.payload, r.line)
			}
			continue
		}
		if !ok || r.line != tt.want || r.gateway != p || r.seq != tt.seq {
			t.Errorf("describe(%s, %.20q) = %q (gateway %q seq %d, ok %v), want %q (gateway %q seq %d)",
				tt.topic, tt.payload, r.line, r.gateway, r.seq, ok, tt.want, p, tt.seq)
		}
	}
}

func TestWatchPrinterDropsRepeatsAndDuplicateEvents(t *testing.T) {
	const p = "fieldgate/v1/demo/gw1"
	var out bytes.Buffer
	w := newWatchPrinter(&out, false, true, true)
	w.now = func() time.Time { return time.Date(2026, 5, 1, 12, 0, 9, 0, time.UTC) }
	msgs := []struct{ topic, payload string }{
		{p + "/devices/a", `{"id":"a","version":"1","state":"idle","updated":"2026-05-01T12:00:00Z"}`},
		{p + "/devices/a", `{"id":"a","version":"1","state":"idle","updated":"2026-05-01T12:00:05Z"}`}, // same state
		{p + "/events", `{"seq":1,"type":"x","time":"2026-05-01T12:00:06Z"}`},
		{p + "/events", `{"seq":2,"type":"y","time":"2026-05-01T12:00:07Z"}`},
		{p + "/events", `{"seq":2,"type":"y","time":"2026-05-01T12:00:07Z"}`}, // redelivered
		{p + "/devices/a", `{"id":"a","version":"2","state":"idle","updated":"2026-05-01T12:00:08Z"}`},
		{p + "/cmd/c1", `{"id":"c1","action":"refresh","key":"ops","expires":"2026-05-01T12:10:00Z"}`}, // no time: when received
	}
	printed := 0
	for _, m := range msgs {
		if w.handle(m.topic, []byte(m.payload), false) {
			printed++
		}
	}
	want := "2026-05-01 12:00:00 +00:00 demo/gw1  device a version 1 state idle\n" +
		"2026-05-01 12:00:06 +00:00 demo/gw1  event #1 x\n" +
		"2026-05-01 12:00:07 +00:00 demo/gw1  event #2 y\n" +
		"2026-05-01 12:00:08 +00:00 demo/gw1  device a version 2 state idle\n" +
		"2026-05-01 12:00:09 +00:00 demo/gw1  cmd c1 refresh requested (key ops, expires 2026-05-01 12:10:00 +00:00)\n"
	if out.String() != want || printed != 5 {
		t.Errorf("watch output (%d lines) =\n%s\nwant\n%s", printed, out.String(), want)
	}
}

// fakeGateway answers commands on prefix the way fieldgated does: it
// verifies them with keys and publishes accepted, then succeeded or a
// rejection, on the result topic.
type fakeGateway struct {
	mu   sync.Mutex
	seen []mqtt.Command
}

func startFakeGateway(t *testing.T, broker, prefix string, keys map[string]ed25519.PublicKey, answer bool) *fakeGateway {
	t.Helper()
	g := &fakeGateway{}
	cfg := mqtt.Config{Broker: broker, Prefix: prefix}
	ctx, cancel := context.WithCancel(context.Background())
	subscribed := make(chan struct{})
	var once sync.Once
	done := make(chan struct{})
	go func() {
		defer close(done)
		mqtt.Watch(ctx, broker, prefix+"/cmd/#", func(topic string, payload []byte, _ bool) {
			if topic == prefix+"/cmd/ready" {
				once.Do(func() { close(subscribed) })
				return
			}
			id, ok := cfg.CommandID(topic)
			if !ok || !answer {
				return
			}
			var action string
			publish := func(results ...[2]string) {
				go func() { // in order: each is acknowledged by the broker before the next
					for _, r := range results {
						b, _ := json.Marshal(commandResult{ID: id, Status: r[0], Reason: r[1], Action: action, Time: time.Now().UTC()})
						mqtt.Publish(ctx, cfg, mqtt.Message{Topic: cfg.ResultTopic(id), Payload: b, QoS: 1})
					}
				}()
			}
			c, err := cfg.ParseCommand(payload, keys, time.Now())
			if err != nil {
				publish([2]string{"rejected", mqtt.RejectReason(err) + ": " + err.Error()})
				return
			}
			action = c.Action
			g.mu.Lock()
			g.seen = append(g.seen, c)
			g.mu.Unlock()
			publish([2]string{"accepted", ""}, [2]string{"succeeded", ""})
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	for {
		mqtt.Publish(ctx, cfg, mqtt.Message{Topic: prefix + "/cmd/ready", QoS: 1})
		select {
		case <-subscribed:
			return g
		case <-time.After(100 * time.Millisecond): // waiting for the subscription; not a timing assertion
		}
	}
}

func (g *fakeGateway) commands() []mqtt.Command {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]mqtt.Command(nil), g.seen...)
}

func TestRemoteCommandRoundTrip(t *testing.T) {
	b, err := mqtt.StartBroker("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "ops.key")
	var pubOut, errOut bytes.Buffer
	if err := run(context.Background(), []string{"remote", "keygen", "--out", keyFile}, &pubOut, &errOut); err != nil {
		t.Fatal(err)
	}
	pub, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(pubOut.String()))
	const prefix = "fieldgate/v1/test/gw1"
	gw := startFakeGateway(t, b.URL(), prefix, map[string]ed25519.PublicKey{"ops-1": pub}, true)
	sha := strings.Repeat("ab", 32)
	common := []string{"--broker", b.URL(), "--gateway", prefix, "--key", keyFile, "--timeout", "20s"}

	tests := []struct {
		name    string
		args    []string
		ok      bool
		output  string
		command mqtt.Command // what the gateway must have received (ID, Expires ignored)
	}{
		{"approve", []string{"remote", "approve", "j-17", "--sha256", strings.ToUpper(sha), "--devices", "plc1,plc2", "--key-id", "ops-1"}, true, "approve succeeded",
			mqtt.Command{Action: "approve", Gateway: prefix, Job: "j-17", SHA256: sha, Devices: []string{"plc1", "plc2"}, Key: "ops-1"}},
		{"defer", []string{"remote", "defer", "j-17", "--window", "2026-05-01T22:00:00Z/2026-05-02T02:00:00Z", "--key-id", "ops-1"}, true, "defer succeeded",
			mqtt.Command{Action: "defer", Gateway: prefix, Job: "j-17", Key: "ops-1", Window: mqtt.Window{
				Start: time.Date(2026, 5, 1, 22, 0, 0, 0, time.UTC), End: time.Date(2026, 5, 2, 2, 0, 0, 0, time.UTC)}}},
		{"stop", []string{"remote", "stop", "--key-id", "ops-1"}, true, "stop succeeded",
			mqtt.Command{Action: "stop", Gateway: prefix, Key: "ops-1"}},
		{"unknown key", []string{"remote", "cancel", "j-17", "--key-id", "mallory"}, false, "rejected: unknown-key", mqtt.Command{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(gw.commands())
			var out, errOut bytes.Buffer
			err := run(context.Background(), append(tt.args, common...), &out, &errOut)
			if (err == nil) != tt.ok {
				t.Errorf("fieldgatectl %v = %v, want ok=%v\n%s%s", tt.args, err, tt.ok, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), tt.output) {
				t.Errorf("fieldgatectl %v printed %q, want %q in it", tt.args, out.String(), tt.output)
			}
			cmds := gw.commands()
			if !tt.ok {
				if len(cmds) != before {
					t.Errorf("gateway executed %+v, want nothing", cmds[before:])
				}
				return
			}
			if len(cmds) != before+1 {
				t.Fatalf("gateway got %d commands, want 1", len(cmds)-before)
			}
			got := cmds[before]
			if !strings.Contains(out.String(), got.ID) {
				t.Errorf("output %q does not name the command id %s", out.String(), got.ID)
			}
			if d := time.Until(got.Expires); d < 5*time.Minute || d > 10*time.Minute {
				t.Errorf("command expires in %v, want the default 10m", d)
			}
			got.ID, got.Expires = "", time.Time{}
			if gb, wb := mustJSON(got), mustJSON(tt.command); gb != wb {
				t.Errorf("gateway received %s, want %s", gb, wb)
			}
		})
	}
}

func TestRemoteCommandTimesOutWithoutResult(t *testing.T) {
	b, err := mqtt.StartBroker("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	key := filepath.Join(t.TempDir(), "k")
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"remote", "keygen", "--out", key}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = run(context.Background(), []string{"remote", "refresh", "--broker", b.URL(), "--gateway", "fieldgate/v1/x/silent",
		"--key", key, "--key-id", "ops", "--timeout", "1s"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "no final result") || !strings.Contains(err.Error(), "stays valid until") {
		t.Errorf("refresh to a silent gateway = %v, want a timeout that says the command stays valid", err)
	}
}

func TestRemoteCommandArgumentErrors(t *testing.T) {
	key := filepath.Join(t.TempDir(), "k")
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"remote", "keygen", "--out", key}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	base := []string{"--broker", "tcp://127.0.0.1:1", "--gateway", "fieldgate/v1/s/g", "--key", key, "--key-id", "ops"}
	tests := []struct {
		args []string // before base; flags after base override it
		want string
	}{
		{[]string{"remote", "approve", "j1", "--sha256", "abc"}, "sha256"},
		{[]string{"remote", "approve", "j1"}, "sha256"},
		{[]string{"remote", "defer", "j1", "--window", "4h/1h"}, "START must be before END"},
		{[]string{"remote", "update-now"}, "needs JOB or --devices"},
		{[]string{"remote", "cancel", "j1", "--expires", "48h"}, "at most"},
		{[]string{"remote", "cancel", "bad job"}, "job"},
		{[]string{"remote", "cancel", "j1"}, "connect"}, // nothing listens on port 1
	}
	for _, tt := range tests {
		args := append(append([]string(nil), tt.args...), base...)
		if err := run(context.Background(), args, &out, &errOut); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("fieldgatectl %v = %v, want an error about %q", args, err, tt.want)
		}
	}
	for _, tt := range []struct {
		flag, value, want string
	}{
		{"--broker", "http://x", "scheme"},
		{"--gateway", "", "--gateway is required"},
		{"--key", filepath.Join(t.TempDir(), "missing"), "signing key"},
	} {
		args := append(append([]string{"remote", "cancel", "j1"}, base...), tt.flag, tt.value)
		if err := run(context.Background(), args, &out, &errOut); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("fieldgatectl %v = %v, want an error about %q", args, err, tt.want)
		}
	}
}

func TestRemoteWatchPrintsRetainedState(t *testing.T) {
	b, err := mqtt.StartBroker("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const p = "fieldgate/v1/demo/gw1"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := mqtt.Config{Broker: b.URL()}
	for _, m := range []mqtt.Message{
		{Topic: p + "/status", Payload: []byte(`{"online":true,"gateway":"gw1","healthy":true,"version":"0.3.0","time":"2026-05-01T12:00:00Z"}`), Retained: true, QoS: 1},
		{Topic: p + "/devices/io16-a", Payload: []byte(`{"id":"io16-a","version":"2.4.1","state":"idle","updated":"2026-05-01T12:00:01Z"}`), Retained: true, QoS: 1},
		{Topic: "fieldgate/v1/other/gw9/status", Payload: []byte(`{"online":false,"reason":"lost"}`), Retained: true, QoS: 1},
	} {
		if err := mqtt.Publish(ctx, cfg, m); err != nil {
			t.Fatal(err)
		}
	}
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"remote", "watch", "--broker", b.URL(), "--gateway", p, "--count", "2", "--utc"}, &out, &errOut); err != nil {
		t.Fatalf("watch: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{
		"2026-05-01 12:00:00 +00:00 demo/gw1  status online healthy fieldgated 0.3.0\n",
		"2026-05-01 12:00:01 +00:00 demo/gw1  device io16-a version 2.4.1 state idle\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("watch printed\n%s\nwant a line %q", out.String(), want)
		}
	}
	out.Reset()
	if err := run(ctx, []string{"remote", "watch", "--broker", b.URL(), "--site", "other", "--json", "--count", "1"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	var m struct {
		Topic    string
		Retained bool
		Payload  map[string]any
	}
	if err := json.Unmarshal(out.Bytes(), &m); err != nil || m.Topic != "fieldgate/v1/other/gw9/status" || !m.Retained || m.Payload["online"] != false {
		t.Errorf("watch --json printed %q (%v), want the retained last will of gw9", out.String(), err)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestRemoteRefreshBroadcast: refresh --broadcast signs a refresh hint for
// the broadcast prefix (the default one, or PREFIX) and publishes it on
// {PREFIX}/cmd/{id}, where a gateway's ParseBroadcast accepts it; it waits
// for no result.
func TestRemoteRefreshBroadcast(t *testing.T) {
	b, err := mqtt.StartBroker("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	keyFile := filepath.Join(t.TempDir(), "ops.key")
	var pubOut, errOut bytes.Buffer
	if err := run(context.Background(), []string{"remote", "keygen", "--out", keyFile}, &pubOut, &errOut); err != nil {
		t.Fatal(err)
	}
	pub, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(pubOut.String()))
	keys := map[string]ed25519.PublicKey{"ops-1": pub}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := make(chan [2]string, 10)
	go mqtt.Watch(ctx, b.URL(), "fieldgate/#", func(topic string, payload []byte, _ bool) {
		got <- [2]string{topic, string(payload)}
	})
	for subscribed := false; !subscribed; { // the watch's subscription is live once it sees this
		mqtt.Publish(ctx, mqtt.Config{Broker: b.URL()}, mqtt.Message{Topic: "fieldgate/ready", QoS: 1})
		select {
		case m := <-got:
			subscribed = m[0] == "fieldgate/ready"
		case <-time.After(100 * time.Millisecond): // waiting for the subscription; not a timing assertion
		case <-ctx.Done():
			t.Fatal("watch never subscribed")
		}
	}
	for _, tt := range []struct {
		args   []string
		prefix string
	}{
		{[]string{"--broadcast"}, mqtt.DefaultBroadcastPrefix},
		{[]string{"--broadcast", "fieldgate/v1/site1/broadcast"}, "fieldgate/v1/site1/broadcast"},
		{[]string{"--broadcast=fieldgate/v1/site2/broadcast"}, "fieldgate/v1/site2/broadcast"},
	} {
		var out bytes.Buffer
		args := append([]string{"remote", "refresh", "--broker", b.URL(), "--key", keyFile, "--key-id", "ops-1"}, tt.args...)
		if err := run(ctx, args, &out, &errOut); err != nil {
			t.Fatalf("fieldgatectl %v = %v\n%s", args, err, errOut.String())
		}
		var m [2]string
		for m[0] == "" || m[0] == "fieldgate/ready" {
			select {
			case m = <-got:
			case <-ctx.Done():
				t.Fatalf("fieldgatectl %v: no hint on the broker", args)
			}
		}
		cfg := mqtt.Config{Broadcast: tt.prefix}
		id, ok := cfg.BroadcastID(m[0])
		if !ok {
			t.Fatalf("fieldgatectl %v published on %s, want %s/cmd/{id}", args, m[0], tt.prefix)
		}
		c, err := cfg.ParseBroadcast([]byte(m[1]), keys, time.Now())
		if err != nil || c.ID != id || c.Action != mqtt.ActionRefresh {
			t.Errorf("hint %s on %s: %+v, %v; want a refresh hint a gateway accepts", m[1], m[0], c, err)
		}
		if !strings.Contains(out.String(), id) {
			t.Errorf("fieldgatectl printed %q, want the hint's id %s", out.String(), id)
		}
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--broadcast", "--gateway", "fieldgate/v1/s/g"}, "exclude each other"},
		{[]string{"--broadcast=fieldgate/+/broadcast"}, "wildcard"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		args := append([]string{"remote", "refresh", "--broker", b.URL(), "--key", keyFile, "--key-id", "ops-1"}, tt.args...)
		if err := run(ctx, args, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("fieldgatectl %v = %v, want an error about %q", args, err, tt.want)
		}
	}
}
