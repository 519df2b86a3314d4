// SPDX-License-Identifier: Apache-2.0

package mqtt

import (
	"context"
	"fmt"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Will is the last will of a Conn.
type Will struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retained bool
}

// Conn is one plain MQTT connection for a protocol that lives beside the
// gateway's topic tree and needs a last will of its own (Sparkplug B's
// NDEATH): the broker, TLS settings and credentials of a Config, its own
// client id, a clean session, no outbox and no reconnect (the owner dials
// again). Safe for concurrent use.
type Conn struct {
	c    paho.Client
	lost *lostSignal
}

// Dial connects to cfg.Broker as clientID with will (nil: none), waiting
// at most until ctx ends. handler receives the messages of every
// subscription, in arrival order, on the client's delivery goroutine: it
// must return quickly and must not call the Conn. The payloads are
// untrusted.
func Dial(ctx context.Context, cfg Config, clientID string, will *Will, handler func(topic string, payload []byte)) (*Conn, error) {
	d, err := newDialer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	lost := newLostSignal()
	d.broken = func(err error) { lost.fire(nil, err) }
	o := clientOptions(cfg, clientID, d).
		SetCleanSession(true).
		SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { handler(m.Topic(), m.Payload()) }).
		SetConnectionLostHandler(lost.fire)
	if will != nil {
		o.SetBinaryWill(will.Topic, will.Payload, will.QoS, will.Retained)
	}
	c := paho.NewClient(o)
	if err := connect(ctx, c, d); err != nil {
		return nil, fmt.Errorf("connect %s: %w", cfg.Broker, err)
	}
	return &Conn{c: c, lost: lost}, nil
}

// Subscribe subscribes to filter and waits for the broker's SUBACK.
func (c *Conn) Subscribe(ctx context.Context, filter string, qos byte) error {
	if err := wait(ctx, c.c.Subscribe(filter, qos, nil), c.lost); err != nil {
		return fmt.Errorf("subscribe %s: %w", filter, err)
	}
	return nil
}

// Publish publishes payload on topic and waits until it is written
// (QoS 0) or acknowledged (QoS 1 and 2).
func (c *Conn) Publish(ctx context.Context, topic string, qos byte, retained bool, payload []byte) error {
	if c.lost.isDone() {
		return fmt.Errorf("publish %s: connection lost: %w", topic, c.lost.err)
	}
	if err := wait(ctx, c.c.Publish(topic, qos, retained, payload), c.lost); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

// Lost is closed when the connection is lost; Err then says why.
func (c *Conn) Lost() <-chan struct{} { return c.lost.done }

// Err returns why the connection was lost, or nil while it is up.
func (c *Conn) Err() error {
	if !c.lost.isDone() {
		return nil
	}
	return c.lost.err
}

// Close sends DISCONNECT, which tells the broker not to publish the will,
// after waiting up to quiesce for work in flight.
func (c *Conn) Close(quiesce time.Duration) { c.c.Disconnect(uint(quiesce / time.Millisecond)) }
