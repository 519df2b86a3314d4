// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"github.com/fieldgate/fieldgate/daemon/mqtt"
	"github.com/fieldgate/fieldgate/daemon/store"
)

// Outbox adapts the store's report queue to what the MQTT session drains.
type Outbox struct{ Store *store.Store }

var _ mqtt.Outbox = Outbox{}

func toMQTT(ms []store.Message, err error) ([]mqtt.Message, error) {
	out := make([]mqtt.Message, len(ms))
	for i, m := range ms {
		out[i] = mqtt.Message{Seq: m.Seq, Topic: m.Topic, Payload: m.Payload, Retained: m.Retained, QoS: m.QoS}
	}
	return out, err
}

// Retained implements mqtt.Outbox.
func (o Outbox) Retained() ([]mqtt.Message, error) { return toMQTT(o.Store.Retained()) }

// Pending implements mqtt.Outbox.
func (o Outbox) Pending(after uint64, max int) ([]mqtt.Message, error) {
	return toMQTT(o.Store.Pending(after, max))
}

// Ack implements mqtt.Outbox.
func (o Outbox) Ack(seq uint64) error { return o.Store.Ack(seq) }

// Wait implements mqtt.Outbox.
func (o Outbox) Wait() <-chan struct{} { return o.Store.Wait() }
