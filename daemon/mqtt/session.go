// SPDX-License-Identifier: Apache-2.0

package mqtt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Message is one report. Seq orders messages and lets consumers drop duplicates.
type Message struct {
	Seq      uint64
	Topic    string
	Payload  []byte
	Retained bool
	QoS      byte
}

// Outbox is the durable queue a Session drains. The daemon's store implements
// it; mqtttest.Outbox is an in-memory fake. Methods are called from the
// Session's goroutine only, but concurrently with the daemon adding messages.
type Outbox interface {
	// Retained returns the latest retained message per topic, delivered or
	// not. The Session republishes the delivered ones on every connect,
	// because a broker may have lost them.
	Retained() ([]Message, error)
	// Pending returns up to max messages that are not yet acknowledged and
	// have Seq > after, in Seq order.
	Pending(after uint64, max int) ([]Message, error)
	// Ack records that every message with Seq <= seq was delivered (PUBACK
	// received); the store may delete or compact them.
	Ack(seq uint64) error
	// Wait returns a channel that is closed (or receives) once a message is
	// added after the call to Wait. The Session calls Wait before Pending, so
	// a message added in between is never missed.
	Wait() <-chan struct{}
}

// Option configures a Session.
type Option func(*Session)

// WithCommandHandler makes the Session subscribe to command requests
// (Config.CommandFilter and, if Config.Broadcast is set,
// Config.BroadcastFilter; QoS 1, kept by the broker in the persistent
// session while the gateway is offline) and call h for each with the raw
// topic and payload. h runs on the MQTT client's delivery goroutine: it must return
// quickly (hand the command to the daemon) and must not call the Session.
// The payload is untrusted: pass it to ParseCommand.
func WithCommandHandler(h func(topic string, payload []byte)) Option {
	return func(s *Session) { s.handler = h }
}

// WithBackoff sets the reconnect backoff bounds (default 500ms to 30s).
func WithBackoff(min, max time.Duration) Option {
	return func(s *Session) { s.backoffMin, s.backoffMax = min, max }
}

// WithWindow sets how many QoS 1 messages the Session keeps in flight while
// draining (default 128). A larger window raises the drain rate after an
// outage; the order on the wire is the Seq order either way.
func WithWindow(n int) Option {
	return func(s *Session) {
		if n > 0 {
			s.window = n
		}
	}
}

// Session is the gateway's MQTT connection: it keeps the connection up and
// drains the Outbox. Run it once; Connected is safe for concurrent use.
type Session struct {
	cfg     Config
	out     Outbox
	log     *slog.Logger
	handler func(topic string, payload []byte)

	backoffMin, backoffMax time.Duration
	window                 int

	connected atomic.Bool
}

// NewSession returns a Session for cfg that drains out. It does no I/O.
// cfg.Broker must be set (for the embedded broker, to Broker.URL()).
func NewSession(cfg Config, out Outbox, log *slog.Logger, opts ...Option) *Session {
	s := &Session{
		cfg:        cfg,
		out:        out,
		log:        log.With("component", "mqtt"),
		backoffMin: 500 * time.Millisecond,
		backoffMax: 30 * time.Second,
		window:     128,
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Connected reports whether the Session is connected to the broker now.
func (s *Session) Connected() bool { return s.connected.Load() }

// StatusPayload is the payload the Session itself publishes on the status
// topic: the last will, the shutdown status and, only when the Outbox holds
// no retained status yet, the online status. The daemon's own retained status
// replaces it and must carry "online": true.
type StatusPayload struct {
	Online   bool   `json:"online"`
	Gateway  string `json:"gateway,omitempty"`
	Site     string `json:"site,omitempty"`
	ClientID string `json:"client_id"`
	Reason   string `json:"reason,omitempty"` // "lost" (last will) or "shutdown"
	Time     string `json:"time,omitempty"`   // UTC RFC 3339; absent in the last will
}

func (s *Session) status(online bool, reason string, now time.Time) []byte {
	p := StatusPayload{Online: online, Gateway: s.cfg.Gateway, Site: s.cfg.Site, ClientID: s.cfg.ClientID, Reason: reason}
	if !now.IsZero() {
		p.Time = now.UTC().Format(time.RFC3339)
	}
	b, _ := json.Marshal(p)
	return b
}

// Run connects, drains the Outbox and reconnects with backoff and jitter
// until ctx ends. On cancel it publishes a retained offline status with a
// short deadline, disconnects and returns nil. It returns an error only for
// a configuration that can never work.
func (s *Session) Run(ctx context.Context) error {
	if s.cfg.Broker == "" {
		return errors.New("mqtt session: no broker url (start the embedded broker and set Broker to its URL)")
	}
	if err := s.cfg.Validate(); err != nil {
		return fmt.Errorf("mqtt session: %w", err)
	}
	if _, err := newDialer(ctx, s.cfg); err != nil { // TLS files readable?
		return fmt.Errorf("mqtt session: %w", err)
	}
	s.log.Info("mqtt session starting", "config", s.cfg)
	Redial(ctx, s.log, "mqtt", s.backoffMin, s.backoffMax, s.session, nil)
	return nil
}

// Redial runs connect until ctx ends, waiting between runs with backoff
// from min to max (reset once a connection came up). connect reports
// whether the connection came up and why it ended. A failure logs a
// warning, one that quiet says is expected an info line, and a repeated
// one a debug line, so an outage does not flood the log. The MQTT session
// and the Sparkplug node reconnect through it.
func Redial(ctx context.Context, log *slog.Logger, what string, min, max time.Duration, connect func(context.Context) (bool, error), quiet func(error) bool) {
	attempt := 0
	var lastErr string
	for {
		up, err := connect(ctx)
		if ctx.Err() != nil {
			return
		}
		if up {
			attempt = 0
		}
		if err == nil {
			err = errors.New("connection ended")
		}
		delay := backoff(min, max, attempt, rand.Float64())
		attempt++
		level := slog.LevelWarn
		switch {
		case err.Error() == lastErr:
			level = slog.LevelDebug
		case quiet != nil && quiet(err):
			level = slog.LevelInfo
		}
		lastErr = err.Error()
		log.Log(ctx, level, what+" disconnected, retrying", "err", err, "retry_in", delay.Round(time.Millisecond))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// backoff returns the delay before reconnect attempt n (0-based): exponential
// from min to max, with "equal jitter" (half fixed, half random, r in [0,1))
// so that gateways of a plant do not reconnect in lockstep after a broker restart.
func backoff(min, max time.Duration, n int, r float64) time.Duration {
	d := min
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	d = chooseMin(d, max)
	return d/2 + time.Duration(r*float64(d/2))
}

func chooseMin(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

// session runs one connection: connect, announce, republish, drain. It
// reports whether the connection came up, and why it ended.
func (s *Session) session(ctx context.Context) (up bool, err error) {
	d, err := newDialer(ctx, s.cfg)
	if err != nil {
		return false, err
	}
	lost := newLostSignal()
	d.broken = func(err error) { lost.fire(nil, err) }
	o := clientOptions(s.cfg, s.cfg.ClientID, d).
		SetCleanSession(false).
		SetOrderMatters(true).
		SetBinaryWill(s.cfg.StatusTopic(), s.status(false, "lost", time.Time{}), 1, true).
		SetConnectionLostHandler(lost.fire)
	c := paho.NewClient(o)
	if err := connect(ctx, c, d); err != nil {
		return false, fmt.Errorf("connect %s: %w", s.cfg.Broker, err)
	}
	s.connected.Store(true)
	s.log.Info("mqtt connected", "broker", s.cfg.Broker)
	defer s.connected.Store(false)

	err = s.serve(ctx, c, lost)
	if ctx.Err() != nil {
		s.shutdown(c)
		return true, nil
	}
	c.Disconnect(0)
	return true, err
}

// shutdown publishes the final offline status with a short deadline and
// disconnects. A clean DISCONNECT suppresses the last will, so this status is
// what subscribers see after a planned stop.
func (s *Session) shutdown(c paho.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	tok := c.Publish(s.cfg.StatusTopic(), 1, true, s.status(false, "shutdown", time.Now()))
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			s.log.Warn("mqtt final status not published", "err", err)
		}
	case <-ctx.Done():
		s.log.Warn("mqtt final status not acknowledged in time")
	}
	c.Disconnect(250)
	s.log.Info("mqtt session stopped")
}

// serve runs on a live connection until it is lost or ctx ends.
func (s *Session) serve(ctx context.Context, c paho.Client, lost *lostSignal) error {
	if s.handler != nil {
		h := s.handler
		for _, filter := range []string{s.cfg.CommandFilter(), s.cfg.BroadcastFilter()} {
			if filter == "" {
				continue
			}
			tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
				h(m.Topic(), m.Payload())
			})
			if err := wait(ctx, tok, lost); err != nil {
				return fmt.Errorf("subscribe %s: %w", filter, err)
			}
		}
	}
	if err := s.republish(ctx, c, lost); err != nil {
		return err
	}
	return s.drain(ctx, c, lost)
}

// republish publishes the retained state that was already delivered before,
// because the broker may have lost it (restart without persistence) or
// replaced the status by the last will. Retained messages not yet delivered
// come through the drain, in order, so a topic never goes back in time.
func (s *Session) republish(ctx context.Context, c paho.Client, lost *lostSignal) error {
	first := ^uint64(0)
	pending, err := s.out.Pending(0, 1)
	if err != nil {
		return fmt.Errorf("outbox pending: %w", err)
	}
	if len(pending) > 0 {
		first = pending[0].Seq
	}
	retained, err := s.out.Retained()
	if err != nil {
		return fmt.Errorf("outbox retained: %w", err)
	}
	status := false
	var toks []paho.Token
	for _, m := range retained {
		if m.Topic == s.cfg.StatusTopic() {
			status = true
		}
		if m.Seq >= first {
			continue
		}
		toks = append(toks, c.Publish(m.Topic, qos(m.QoS), true, m.Payload))
	}
	if !status {
		toks = append([]paho.Token{c.Publish(s.cfg.StatusTopic(), 1, true, s.status(true, "", time.Now()))}, toks...)
	}
	for _, tok := range toks {
		if err := wait(ctx, tok, lost); err != nil {
			return fmt.Errorf("republish retained state: %w", err)
		}
	}
	s.log.Debug("mqtt retained state republished", "messages", len(toks))
	return nil
}

// qos is the QoS a report is published with: at least 1, so that a PUBACK
// tells us the broker has it.
func qos(q byte) byte {
	if q < 1 {
		return 1
	}
	return min(q, 2)
}

// drain publishes pending messages in Seq order with up to s.window in
// flight, and acknowledges them to the Outbox after the broker's PUBACKs. It
// starts from the first unacknowledged message, which is what makes a
// reconnect resume without losing anything. The window slides (it is
// refilled when half empty) rather than going batch by batch: a broker
// that sends PUBACKs with Nagle's algorithm (mosquitto's default) would
// otherwise hold the last PUBACK of every batch for a delayed-ACK timeout.
func (s *Session) drain(ctx context.Context, c paho.Client, lost *lostSignal) error {
	type inflight struct {
		seq uint64
		tok paho.Token
	}
	var (
		queue         []inflight // published, PUBACK not yet seen, in Seq order
		sent          uint64     // last Seq published on this connection
		done, acked   uint64     // last Seq PUBACKed (all before it too); last Seq acked to the Outbox
		storeFailures int
		ackEvery      = uint64(max(1, s.window/2))
		notify        <-chan struct{}
	)
	ack := func() {
		if done > acked {
			if err := s.out.Ack(done); err != nil {
				// Not fatal: the messages are sent again later and dropped as duplicates.
				s.log.Warn("mqtt outbox ack", "seq", done, "err", err)
			}
			acked = done
		}
	}
	defer ack()
	for {
		if len(queue) <= s.window/2 {
			notify = s.out.Wait()
			msgs, err := s.out.Pending(sent, s.window-len(queue))
			if err != nil {
				// The store is the daemon's problem; keep the connection and retry.
				delay := backoff(s.backoffMin, s.backoffMax, storeFailures, rand.Float64())
				storeFailures++
				s.log.Warn("mqtt outbox unreadable", "err", err, "retry_in", delay)
				t := time.NewTimer(delay)
				select {
				case <-t.C:
					continue
				case <-lost.done:
					t.Stop()
					return fmt.Errorf("connection lost: %w", lost.err)
				case <-ctx.Done():
					t.Stop()
					return nil
				}
			}
			storeFailures = 0
			for _, m := range msgs {
				if lost.isDone() {
					break // publishing now could block in paho until its write timeout
				}
				queue = append(queue, inflight{m.Seq, c.Publish(m.Topic, qos(m.QoS), m.Retained, m.Payload)})
				sent = m.Seq
			}
		}
		if len(queue) == 0 {
			ack()
			select {
			case <-notify:
				continue
			case <-lost.done:
				return fmt.Errorf("connection lost: %w", lost.err)
			case <-ctx.Done():
				return nil
			}
		}
		if err := wait(ctx, queue[0].tok, lost); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("publish seq %d: %w", queue[0].seq, err)
		}
		done = queue[0].seq
		queue = queue[1:]
		if done-acked >= ackEvery {
			ack()
		}
	}
}
