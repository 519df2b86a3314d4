// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/daemon/mqtt"
	"github.com/fieldgate/fieldgate/daemon/mqtt/mqtttest"
	"github.com/fieldgate/fieldgate/daemon/store"
	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/devices/devicetest"
	"github.com/fieldgate/fieldgate/tuf"
)

// clockSource is an idle repository whose every refresh moves the
// daemon's clock on by one step: the test counts refreshes, and the
// daemon's heartbeat is measured in them, not in wall time.
type clockSource struct {
	expires   time.Time
	step      time.Duration
	now       atomic.Int64 // Unix nanoseconds of the daemon's clock
	refreshes atomic.Int64
}

func (s *clockSource) Now() time.Time { return time.Unix(0, s.now.Load()) }

func (s *clockSource) Refresh(ctx context.Context) (*tuf.Snapshot, error) {
	s.refreshes.Add(1)
	if s.step > 0 {
		s.now.Add(int64(s.step))
	}
	return &tuf.Snapshot{Expires: s.expires, RefTime: s.Now(), Versions: map[string]int64{"root": 1}}, nil
}

func (s *clockSource) Fetch(context.Context, tuf.Target, func(int64, int64)) (string, error) {
	panic("idle repository has no targets")
}

// brokerGateway is a daemon with two devices, its MQTT session to a real
// mosquitto and a subscriber to everything under its prefix.
type brokerGateway struct {
	cfg  *config.Config
	st   *store.Store
	src  *clockSource
	priv ed25519.PrivateKey
	pub  mqtt.Config // for the test's own publishes

	mu   sync.Mutex
	seen []mqttMsg // under the prefix, in arrival order
}

type mqttMsg struct {
	topic   string // below the prefix
	payload []byte
}

func startBrokerGateway(t *testing.T, refresh, heartbeat, step time.Duration) *brokerGateway {
	t.Helper()
	broker := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pubKey, priv, _ := ed25519.GenerateKey(nil)
	cfg := &config.Config{
		Gateway: config.Gateway{ID: "gw", Site: "s", StateDir: dir, RefreshInterval: refresh, InventoryInterval: time.Hour, MaxParallel: 1},
		MQTT: config.MQTT{Prefix: "fieldgate/v1/s/gw", ClientID: "fieldgated-gw", Heartbeat: heartbeat,
			BroadcastPrefix: mqtt.DefaultBroadcastPrefix, HintSpread: time.Second},
		Windows:   []config.Window{{Name: "w", Start: "0 0 * * *", Duration: 24 * time.Hour, TimeZone: "UTC"}},
		Groups:    []config.Group{{Name: "g", Window: "w", Approval: "auto", Canary: 1, ApprovalTTL: time.Hour}},
		Approvers: []config.Approver{{Name: "ops", PublicKey: base64.StdEncoding.EncodeToString(pubKey)}},
	}
	devs := map[string]devices.Device{}
	for _, id := range []string{"a", "b"} {
		cfg.Devices = append(cfg.Devices, config.Device{ID: id, Group: "g", Protocol: "fake", HardwareID: "hw1", Address: "x", Segment: "bus-" + id})
		devs[id] = devicetest.New("hw1", "1.0.0")
	}
	g := &brokerGateway{cfg: cfg, st: st, priv: priv, pub: mqtt.Config{Broker: broker.URL()},
		src: &clockSource{expires: time.Now().Add(30 * 24 * time.Hour), step: step}}
	g.src.now.Store(time.Now().UnixNano())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	subscribed := make(chan struct{})
	var once sync.Once
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := mqtt.Watch(ctx, broker.URL(), cfg.MQTT.Prefix+"/#", func(topic string, payload []byte, _ bool) {
			rel := strings.TrimPrefix(topic, cfg.MQTT.Prefix+"/")
			if rel == "probe" {
				once.Do(func() { close(subscribed) })
				return
			}
			g.mu.Lock()
			g.seen = append(g.seen, mqttMsg{rel, append([]byte(nil), payload...)})
			g.mu.Unlock()
		})
		if err != nil {
			t.Errorf("watch: %v", err)
		}
	}()
	for probing := true; probing; {
		g.publish(t, ctx, cfg.MQTT.Prefix+"/probe", []byte("x"))
		select {
		case <-subscribed:
			probing = false
		case <-time.After(100 * time.Millisecond): // waiting for the subscription; not a timing assertion
		}
	}

	mcfg := mqtt.Config{Broker: broker.URL(), ClientID: cfg.MQTT.ClientID, Prefix: cfg.MQTT.Prefix, Broadcast: cfg.MQTT.BroadcastPrefix,
		Gateway: "gw", Site: "s"}
	var d *Daemon
	session := mqtt.NewSession(mcfg, Outbox{Store: st}, log, mqtt.WithBackoff(50*time.Millisecond, time.Second),
		mqtt.WithCommandHandler(func(topic string, payload []byte) { d.CommandHandler()(topic, payload) }))
	d, err = New(Deps{Config: cfg, Store: st, Source: g.src, Devices: devs, Broker: session, Runners: []Runner{session},
		Version: "test", Log: log, Now: g.src.Now, Rand: func() float64 { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := d.Run(ctx); err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	return g
}

func (g *brokerGateway) publish(t *testing.T, ctx context.Context, topic string, payload []byte) {
	t.Helper()
	if err := mqtt.Publish(ctx, g.pub, mqtt.Message{Topic: topic, Payload: payload, QoS: 1}); err != nil {
		t.Fatal(err)
	}
}

// messages returns what the subscriber received so far.
func (g *brokerGateway) messages() []mqttMsg {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]mqttMsg(nil), g.seen...)
}

// await polls until ok holds for the messages received (returning them),
// failing the test after a generous deadline (a failure guard, not a
// timing assertion).
func (g *brokerGateway) await(t *testing.T, what string, ok func([]mqttMsg) bool) []mqttMsg {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if msgs := g.messages(); ok(msgs) {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: received %d messages", what, len(g.messages()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// flush waits until the daemon's outbox is delivered and a marker sent
// after that came back, so that every message the daemon queued so far has
// reached the subscriber.
func (g *brokerGateway) flush(t *testing.T, marker string) []mqttMsg {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for n, err := g.st.Depth(); n > 0 || err != nil; n, err = g.st.Depth() {
		if time.Now().After(deadline) {
			t.Fatalf("outbox still holds %d messages (%v)", n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.publish(t, context.Background(), g.cfg.MQTT.Prefix+"/marker/"+marker, nil)
	msgs := g.await(t, "marker "+marker, func(m []mqttMsg) bool { return len(m) > 0 && m[len(m)-1].topic == "marker/"+marker })
	return msgs[:len(msgs)-1]
}

// TestInteropRefreshHint: a signed refresh hint published on the broadcast
// topic of a real mosquitto makes the gateway refresh and say so on its
// events topic; a forged one makes it say why not, and refresh not.
func TestInteropRefreshHint(t *testing.T) {
	g := startBrokerGateway(t, 24*time.Hour, time.Hour, 0)
	for g.src.refreshes.Load() < 1 { // the start's refresh (no delay with Rand 0)
		time.Sleep(20 * time.Millisecond)
	}
	g.flush(t, "start")
	hint := func(id string, priv ed25519.PrivateKey) {
		payload, err := mqtt.SignCommand(mqtt.Command{ID: id, Action: mqtt.ActionRefresh, Gateway: mqtt.DefaultBroadcastPrefix,
			Expires: time.Now().Add(time.Hour)}, "ops", priv)
		if err != nil {
			t.Fatal(err)
		}
		g.publish(t, context.Background(), mqtt.DefaultBroadcastPrefix+"/cmd/"+id, payload)
	}
	event := func(typ, id string) func([]mqttMsg) bool {
		return func(msgs []mqttMsg) bool {
			for _, m := range msgs {
				var e api.Event
				if m.topic == "events" && json.Unmarshal(m.payload, &e) == nil && e.Type == typ && e.Detail["command"] == id {
					return true
				}
			}
			return false
		}
	}
	_, forger, _ := ed25519.GenerateKey(nil)
	hint("forged", forger)
	g.await(t, "refresh-hint-rejected for the forged hint", event("refresh-hint-rejected", "forged"))
	hint("h1", g.priv)
	g.await(t, "refresh-hint for h1", event("refresh-hint", "h1"))
	for g.src.refreshes.Load() < 2 {
		time.Sleep(20 * time.Millisecond)
	}
	msgs := g.flush(t, "end")
	if n := g.src.refreshes.Load(); n != 2 {
		t.Errorf("%d refreshes after the start's, want 1 (the good hint's only)", n-1)
	}
	for _, m := range msgs {
		if strings.HasPrefix(m.topic, "cmd/") {
			t.Errorf("a hint got an answer on %s, want only events", m.topic)
		}
	}
}
