// SPDX-License-Identifier: Apache-2.0

package mqtt_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/mqtt"
	"github.com/fieldgate/fieldgate/daemon/mqtt/mqtttest"
)

func testConfig(broker, name string) mqtt.Config {
	return mqtt.Config{Broker: broker, ClientID: "gw-" + name, Prefix: "fieldgate/v1/test/" + name, KeepAlive: 5 * time.Second}
}

func fastRetry() mqtt.Option { return mqtt.WithBackoff(20*time.Millisecond, 200*time.Millisecond) }

func TestSessionPublishesStateAndDrainsInOrder(t *testing.T) {
	b := startBroker(t)
	cfg := testConfig(b.URL(), "drain")
	seen := watch(t, mqtt.Config{Broker: b.URL()}, cfg.Topic("#"))

	out := mqtttest.NewOutbox()
	out.Add(cfg.DeviceTopic("plc1"), []byte(`{"version":"1.0.0"}`), true)
	var want []uint64
	for range 300 {
		want = append(want, out.AddFunc(cfg.EventsTopic(), false, eventPayload).Seq)
	}
	s, stop := runSession(t, cfg, out, fastRetry())
	waitAcked(t, out, out.Last())
	if !s.Connected() {
		t.Errorf("Connected() = false after a drain, want true")
	}
	msgs := seen.waitFor(t, "all events", func(m []received) bool { return distinct(seqs(m, cfg.EventsTopic())) == len(want) })
	if dups := checkDelivery(t, seqs(msgs, cfg.EventsTopic()), want); dups != 0 {
		t.Errorf("%d duplicates on a healthy link, want 0", dups)
	}
	if st, ok := lastStatus(msgs, cfg.StatusTopic()); !ok || !st.Online || st.ClientID != cfg.ClientID {
		t.Errorf("status = %+v (found %v), want online for %s", st, ok, cfg.ClientID)
	}

	// A message added while idle is delivered too (Wait wakes the drain).
	late := out.AddFunc(cfg.EventsTopic(), false, eventPayload)
	seen.waitFor(t, "late event", func(m []received) bool {
		got := seqs(m, cfg.EventsTopic())
		return len(got) > 0 && got[len(got)-1] == late.Seq
	})

	stop()
	if s.Connected() {
		t.Errorf("Connected() = true after Run returned, want false")
	}
	// The planned stop leaves an offline status (not the last will).
	msgs = seen.waitFor(t, "shutdown status", func(m []received) bool {
		st, ok := lastStatus(m, cfg.StatusTopic())
		return ok && !st.Online
	})
	if st, _ := lastStatus(msgs, cfg.StatusTopic()); st.Reason != "shutdown" || st.Time == "" {
		t.Errorf("final status = %+v, want reason shutdown with a time", st)
	}

	// A fresh subscriber sees the retained device state and the offline status.
	fresh := watch(t, mqtt.Config{Broker: b.URL()}, cfg.Topic("#"))
	fresh.waitFor(t, "retained device state", func(m []received) bool {
		for _, r := range m {
			if r.Topic == cfg.DeviceTopic("plc1") && r.Retained && r.Payload == `{"version":"1.0.0"}` {
				return true
			}
		}
		return false
	})
}

func TestSessionResumesAfterLinkCut(t *testing.T) {
	b := startBroker(t)
	p := startProxy(t, b.Addr())
	cfg := testConfig(p.url(), "cut")
	seen := watch(t, mqtt.Config{Broker: b.URL()}, cfg.Topic("#"))

	out := mqtttest.NewOutbox()
	out.Add(cfg.StatusTopic(), []byte(`{"online":true,"health":[]}`), true)
	var want []uint64
	for range 3000 {
		want = append(want, out.AddFunc(cfg.EventsTopic(), false, eventPayload).Seq)
	}
	runSession(t, cfg, out, fastRetry(), mqtt.WithWindow(64))
	seen.waitFor(t, "first events", func(m []received) bool { return len(seqs(m, cfg.EventsTopic())) >= 200 })
	p.setDown(true)

	// The broker publishes the last will once it notices the dead link.
	seen.waitFor(t, "last will", func(m []received) bool {
		st, ok := lastStatus(m, cfg.StatusTopic())
		return ok && !st.Online && st.Reason == "lost"
	})
	// Reports keep queueing during the outage.
	for range 500 {
		want = append(want, out.AddFunc(cfg.EventsTopic(), false, eventPayload).Seq)
	}
	p.setDown(false)

	waitAcked(t, out, out.Last())
	msgs := seen.waitFor(t, "every event", func(m []received) bool { return distinct(seqs(m, cfg.EventsTopic())) == len(want) })
	dups := checkDelivery(t, seqs(msgs, cfg.EventsTopic()), want)
	t.Logf("%d events, %d duplicates after the cut", len(want), dups)
	// After reconnecting, the daemon's retained status replaced the last will.
	seen.waitFor(t, "status back online", func(m []received) bool {
		st, ok := lastStatus(m, cfg.StatusTopic())
		return ok && st.Online
	})
}

func TestSessionRestartResumesFromLastAck(t *testing.T) {
	b := startBroker(t)
	cfg := testConfig(b.URL(), "restart")
	seen := watch(t, mqtt.Config{Broker: b.URL()}, cfg.Topic("#"))
	out := mqtttest.NewOutbox()
	var want []uint64
	for range 2000 {
		want = append(want, out.AddFunc(cfg.EventsTopic(), false, eventPayload).Seq)
	}
	_, stop := runSession(t, cfg, out, fastRetry(), mqtt.WithWindow(16))
	seen.waitFor(t, "first events", func(m []received) bool { return len(seqs(m, cfg.EventsTopic())) >= 100 })
	stop() // the daemon stops mid-drain ...
	for range 100 {
		want = append(want, out.AddFunc(cfg.EventsTopic(), false, eventPayload).Seq)
	}
	runSession(t, cfg, out, fastRetry()) // ... and starts again with the same store.
	waitAcked(t, out, out.Last())
	msgs := seen.waitFor(t, "every event", func(m []received) bool { return distinct(seqs(m, cfg.EventsTopic())) == len(want) })
	checkDelivery(t, seqs(msgs, cfg.EventsTopic()), want)
}

func TestSessionRetriesUnreadableOutbox(t *testing.T) {
	b := startBroker(t)
	cfg := testConfig(b.URL(), "storefail")
	out := mqtttest.NewOutbox()
	out.FailPending, out.Once = errors.New("disk on fire"), true
	e := out.AddFunc(cfg.EventsTopic(), false, eventPayload)
	runSession(t, cfg, out, fastRetry())
	waitAcked(t, out, e.Seq)
}

func TestSessionCommandHandler(t *testing.T) {
	b := startBroker(t)
	cfg := testConfig(b.URL(), "cmd")
	got := make(chan [2]string, 10)
	s, _ := runSession(t, cfg, mqtttest.NewOutbox(), fastRetry(), mqtt.WithCommandHandler(func(topic string, payload []byte) {
		got <- [2]string{topic, string(payload)}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	for !s.Connected() {
		select {
		case <-ctx.Done():
			t.Fatal("session never connected")
		case <-time.After(10 * time.Millisecond):
		}
	}
	// The subscription is made right after connecting; retry until it is live.
	pub := mqtt.Config{Broker: b.URL()}
	for {
		if err := mqtt.Publish(ctx, pub, mqtt.Message{Topic: cfg.ResultTopic("c0"), Payload: []byte("not a request"), QoS: 1}); err != nil {
			t.Fatal(err)
		}
		if err := mqtt.Publish(ctx, pub, mqtt.Message{Topic: cfg.CommandTopic("c1"), Payload: []byte(`{"id":"c1"}`), QoS: 1}); err != nil {
			t.Fatal(err)
		}
		select {
		case g := <-got:
			if g != [2]string{cfg.CommandTopic("c1"), `{"id":"c1"}`} {
				t.Fatalf("handler got %q, want the c1 request", g)
			}
			if id, ok := cfg.CommandID(g[0]); !ok || id != "c1" {
				t.Errorf("CommandID(%q) = %q, %v, want c1, true", g[0], id, ok)
			}
			return
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("command never reached the handler")
		}
	}
}

func TestSessionRejectsBadConfig(t *testing.T) {
	for _, cfg := range []mqtt.Config{
		{ClientID: "gw", Prefix: "a/b"},                             // no broker
		{Broker: "tcp://127.0.0.1:1", Prefix: "a/b"},                // no client id
		{Broker: "ws://127.0.0.1:1", ClientID: "gw", Prefix: "a/b"}, // scheme
		{Broker: "ssl://127.0.0.1:1", ClientID: "gw", Prefix: "a/b", CAFile: "/nonexistent/ca.pem"},
	} {
		err := mqtt.NewSession(cfg, mqtttest.NewOutbox(), testLogger(t)).Run(context.Background())
		if err == nil {
			t.Errorf("Run(%+v) = nil, want an error", cfg)
		}
	}
}

func TestWatchFailsWithoutBroker(t *testing.T) {
	err := mqtt.Watch(context.Background(), "tcp://127.0.0.1:1", "#", func(string, []byte, bool) {})
	if err == nil || !strings.Contains(err.Error(), "watch") {
		t.Errorf("Watch(no broker) = %v, want a watch error", err)
	}
}

func TestStartBrokerPicksFreePort(t *testing.T) {
	b := startBroker(t)
	if strings.HasSuffix(b.Addr(), ":0") || !strings.HasPrefix(b.URL(), "tcp://127.0.0.1:") {
		t.Errorf("Addr() = %q, URL() = %q, want a bound loopback port", b.Addr(), b.URL())
	}
	if _, err := mqtt.StartBroker(b.Addr(), testLogger(t)); err == nil {
		t.Errorf("StartBroker(%s) on a used port = nil error, want one", b.Addr())
	}
}

// TestSessionBroadcastHandler: with Config.Broadcast set, the handler also
// gets the requests under {broadcast}/cmd/+, and still nothing one level
// deeper.
func TestSessionBroadcastHandler(t *testing.T) {
	b := startBroker(t)
	cfg := testConfig(b.URL(), "bcast")
	cfg.Broadcast = "fieldgate/v1/test/broadcast"
	got := make(chan string, 10)
	s, _ := runSession(t, cfg, mqtttest.NewOutbox(), fastRetry(), mqtt.WithCommandHandler(func(topic string, payload []byte) {
		got <- topic
	}))
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	for !s.Connected() {
		select {
		case <-ctx.Done():
			t.Fatal("session never connected")
		case <-time.After(10 * time.Millisecond):
		}
	}
	pub := mqtt.Config{Broker: b.URL()}
	want := cfg.Broadcast + "/cmd/h1"
	for {
		for _, topic := range []string{cfg.Broadcast + "/cmd/h0/result", want} {
			if err := mqtt.Publish(ctx, pub, mqtt.Message{Topic: topic, Payload: []byte(`{}`), QoS: 1}); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case g := <-got:
			if g != want {
				t.Fatalf("handler got %q, want %q", g, want)
			}
			if id, ok := cfg.BroadcastID(g); !ok || id != "h1" {
				t.Errorf("BroadcastID(%q) = %q, %v, want h1, true", g, id, ok)
			}
			return
		case <-time.After(200 * time.Millisecond): // the subscription is made after connecting; not a timing assertion
		case <-ctx.Done():
			t.Fatal("broadcast request never reached the handler")
		}
	}
}
