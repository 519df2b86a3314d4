// SPDX-License-Identifier: Apache-2.0

package mqtt

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Watch subscribes to filter on broker (a URL as in Config.Broker) with
// QoS 1 and calls fn for every message until ctx ends; it returns nil then.
// It fails if the first connection fails, and reconnects and resubscribes
// with backoff after later losses (messages sent meanwhile are missed; see
// WatchConfig for a persistent session). fn is called from one goroutine at
// a time, in arrival order.
func Watch(ctx context.Context, broker string, filter string, fn func(topic string, payload []byte, retained bool)) error {
	return WatchConfig(ctx, Config{Broker: broker}, filter, fn)
}

// WatchConfig is Watch with TLS and credentials from cfg (Prefix is not
// used). If cfg.ClientID is set, the subscription is a persistent session:
// the broker queues QoS 1 messages while the watcher is disconnected and
// delivers them when it comes back, so nothing is missed across outages.
// Otherwise a random client id and a clean session are used.
func WatchConfig(ctx context.Context, cfg Config, filter string, fn func(topic string, payload []byte, retained bool)) error {
	id, persistent := cfg.ClientID, cfg.ClientID != ""
	if !persistent {
		id = randomID("fieldgate-watch-")
	}
	handler := func(_ paho.Client, m paho.Message) { fn(m.Topic(), m.Payload(), m.Retained()) }
	attempt := 0
	for first := true; ; first = false {
		err := watchOnce(ctx, cfg, id, persistent, filter, handler)
		if ctx.Err() != nil {
			return nil
		}
		if first && errors.Is(err, errNoConnection) {
			return fmt.Errorf("watch %s on %s: %w", filter, cfg.Broker, err)
		}
		if !errors.Is(err, errNoConnection) {
			attempt = 0
		}
		t := time.NewTimer(backoff(200*time.Millisecond, 5*time.Second, attempt, rand.Float64()))
		attempt++
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

var errNoConnection = errors.New("no connection")

func watchOnce(ctx context.Context, cfg Config, id string, persistent bool, filter string, h paho.MessageHandler) error {
	d, err := newDialer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("%w: %w", errNoConnection, err)
	}
	lost := newLostSignal()
	o := clientOptions(cfg, id, d).
		SetCleanSession(!persistent).
		SetOrderMatters(true).
		SetDefaultPublishHandler(h). // messages queued in a persistent session arrive before SUBSCRIBE
		SetConnectionLostHandler(lost.fire)
	c := paho.NewClient(o)
	if err := connect(ctx, c, d); err != nil {
		return fmt.Errorf("%w: %w", errNoConnection, err)
	}
	defer c.Disconnect(100)
	if err := wait(ctx, c.Subscribe(filter, 1, h), lost); err != nil {
		return fmt.Errorf("subscribe %s: %w", filter, err)
	}
	select {
	case <-ctx.Done():
		return nil
	case <-lost.done:
		return fmt.Errorf("connection lost: %w", lost.err)
	}
}

// Publish connects to cfg.Broker, publishes m (m.Seq is ignored) and waits
// for the broker to acknowledge it (QoS 1 and 2) or for ctx to end. It is
// meant for tools such as `fieldgatectl remote`, not for the daemon, whose
// reports go through the Outbox.
func Publish(ctx context.Context, cfg Config, m Message) error {
	id := cfg.ClientID
	if id == "" {
		id = randomID("fieldgate-pub-")
	}
	d, err := newDialer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("publish %s: %w", m.Topic, err)
	}
	lost := newLostSignal()
	c := paho.NewClient(clientOptions(cfg, id, d).SetCleanSession(true).SetConnectionLostHandler(lost.fire))
	if err := connect(ctx, c, d); err != nil {
		return fmt.Errorf("publish %s: connect %s: %w", m.Topic, cfg.Broker, err)
	}
	defer c.Disconnect(250)
	if err := wait(ctx, c.Publish(m.Topic, m.QoS, m.Retained, m.Payload), lost); err != nil {
		return fmt.Errorf("publish %s: %w", m.Topic, err)
	}
	return nil
}

func randomID(prefix string) string {
	b := make([]byte, 6)
	_, _ = crand.Read(b)
	return prefix + hex.EncodeToString(b)
}
