// SPDX-License-Identifier: Apache-2.0

package mqtttest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/fieldgate/fieldgate/daemon/mqtt"
)

var _ mqtt.Outbox = (*Outbox)(nil)

// Outbox is an in-memory mqtt.Outbox with knobs. It is safe for concurrent
// use. Unlike a real store it is not durable, but it survives a Session:
// hand the same Outbox to a new Session to simulate a daemon restart.
type Outbox struct {
	mu       sync.Mutex
	seq      uint64
	queue    []mqtt.Message          // not yet acknowledged, in Seq order
	retained map[string]mqtt.Message // latest retained message per topic
	acked    uint64
	acks     []uint64
	notify   chan struct{}
	ackNote  chan struct{}

	// FailPending, when set, is returned by Pending (and cleared if Once).
	FailPending error
	Once        bool
}

// NewOutbox returns an empty Outbox.
func NewOutbox() *Outbox {
	return &Outbox{retained: map[string]mqtt.Message{}, notify: make(chan struct{}), ackNote: make(chan struct{})}
}

// Add appends a message with the next sequence number and returns it.
func (o *Outbox) Add(topic string, payload []byte, retained bool) mqtt.Message {
	return o.AddFunc(topic, retained, func(uint64) []byte { return append([]byte(nil), payload...) })
}

// AddFunc appends a message whose payload is built from its sequence number
// (so payloads can carry their seq, as the daemon's do).
func (o *Outbox) AddFunc(topic string, retained bool, payload func(seq uint64) []byte) mqtt.Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq++
	m := mqtt.Message{Seq: o.seq, Topic: topic, Payload: payload(o.seq), Retained: retained, QoS: 1}
	o.queue = append(o.queue, m)
	if retained {
		o.retained[topic] = m
	}
	close(o.notify)
	o.notify = make(chan struct{})
	return m
}

// Retained implements mqtt.Outbox.
func (o *Outbox) Retained() ([]mqtt.Message, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]mqtt.Message, 0, len(o.retained))
	for _, m := range o.retained {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}

// Pending implements mqtt.Outbox.
func (o *Outbox) Pending(after uint64, max int) ([]mqtt.Message, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.FailPending; err != nil {
		if o.Once {
			o.FailPending = nil
		}
		return nil, err
	}
	i := sort.Search(len(o.queue), func(i int) bool { return o.queue[i].Seq > after })
	n := min(len(o.queue)-i, max)
	return append([]mqtt.Message(nil), o.queue[i:i+n]...), nil
}

// Ack implements mqtt.Outbox.
func (o *Outbox) Ack(seq uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if seq > o.seq {
		return errors.New("ack beyond the last sequence number")
	}
	o.acks = append(o.acks, seq)
	if seq <= o.acked {
		return nil
	}
	o.acked = seq
	close(o.ackNote)
	o.ackNote = make(chan struct{})
	i := sort.Search(len(o.queue), func(i int) bool { return o.queue[i].Seq > seq })
	o.queue = append(o.queue[:0], o.queue[i:]...)
	return nil
}

// Wait implements mqtt.Outbox.
func (o *Outbox) Wait() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.notify
}

// Acked returns the highest acknowledged sequence number.
func (o *Outbox) Acked() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.acked
}

// Last returns the last sequence number added.
func (o *Outbox) Last() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.seq
}

// Depth returns the number of unacknowledged messages.
func (o *Outbox) Depth() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.queue)
}

// AckLog returns every Ack call's argument, in order.
func (o *Outbox) AckLog() []uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]uint64(nil), o.acks...)
}

// WaitAcked blocks until every message up to seq is acknowledged or ctx ends.
func (o *Outbox) WaitAcked(ctx context.Context, seq uint64) error {
	for {
		o.mu.Lock()
		acked, note := o.acked, o.ackNote
		o.mu.Unlock()
		if acked >= seq {
			return nil
		}
		select {
		case <-note:
		case <-ctx.Done():
			return fmt.Errorf("outbox acked %d, want %d: %w", acked, seq, ctx.Err())
		}
	}
}
