// SPDX-License-Identifier: Apache-2.0

package sparkplug

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fieldgate/fieldgate/daemon/mqtt"
)

// Run connects to the broker, publishes births and data, and reconnects
// with backoff until ctx ends. Each connect takes the next bdSeq and
// registers NDEATH with it as the will; on cancel, and when the primary
// host goes offline, the node publishes NDEATH itself before it
// disconnects (a clean DISCONNECT suppresses the will). Run returns nil on
// cancel and an error only for a configuration that can never work.
func (n *Node) Run(ctx context.Context) error {
	if err := n.cfg.Validate(); err != nil {
		return fmt.Errorf("sparkplug: %w", err)
	}
	n.log.Info("sparkplug edge node starting", "group", n.cfg.GroupID, "edge_node", n.cfg.EdgeNodeID,
		"primary_host", n.cfg.PrimaryHostID, "client_id", n.cfg.MQTT.ClientID)
	// 500ms doubling to 30s, half of it random; a primary host that went
	// offline is expected, not a warning.
	mqtt.Redial(ctx, n.log, "sparkplug", 500*time.Millisecond, 30*time.Second, n.connection,
		func(err error) bool { return errors.Is(err, errHostOffline) })
	return nil
}

// connection runs one connection; it reports whether it came up and why
// it ended.
func (n *Node) connection(ctx context.Context) (bool, error) {
	bdSeq, err := n.bdSeq.next()
	if err != nil {
		n.log.Warn("sparkplug bdSeq not stored; a restart may reuse it", "err", err)
	}
	inbox := make(chan [2][]byte, 32)
	receive := func(topic string, payload []byte) {
		select {
		case inbox <- [2][]byte{[]byte(topic), payload}:
		default:
			n.log.Warn("sparkplug inbox full; message dropped", "topic", topic)
		}
	}
	will := &mqtt.Will{Topic: n.cfg.Topic("NDEATH", ""), Payload: n.deathPayload(bdSeq), QoS: 1}
	conn, err := mqtt.Dial(ctx, n.cfg.MQTT, n.cfg.MQTT.ClientID, will, receive)
	if err != nil {
		return false, err
	}
	n.log.Info("sparkplug connected", "broker", n.cfg.MQTT.Broker, "bdseq", bdSeq)
	s := n.newSession(bdSeq, func(topic string, qos byte, payload []byte) error {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return conn.Publish(pctx, topic, qos, false, payload)
	})
	err = n.serve(ctx, conn, s, inbox)
	if ctx.Err() != nil || errors.Is(err, errHostOffline) {
		// A planned end: say so before the DISCONNECT that suppresses the will.
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if perr := conn.Publish(dctx, n.cfg.Topic("NDEATH", ""), 1, false, n.deathPayload(bdSeq)); perr != nil {
			n.log.Warn("sparkplug NDEATH not published", "err", perr)
		}
		cancel()
		conn.Close(250 * time.Millisecond)
		return true, err
	}
	conn.Close(0)
	return true, err
}

func (n *Node) serve(ctx context.Context, conn *mqtt.Conn, s *session, inbox <-chan [2][]byte) error {
	subs := []string{n.cfg.Topic("NCMD", ""), n.cfg.Topic("DCMD", "+")}
	if n.cfg.PrimaryHostID != "" {
		subs = append(subs, n.cfg.StateTopic())
	}
	for _, f := range subs {
		if err := conn.Subscribe(ctx, f, 1); err != nil { // STATE needs QoS 1; commands may come with it
			return err
		}
	}
	if err := s.refresh(); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-conn.Lost():
			return fmt.Errorf("connection lost: %w", conn.Err())
		case m := <-inbox:
			if err := s.handle(string(m[0]), m[1]); err != nil {
				return err
			}
		case <-n.changed:
			if err := s.refresh(); err != nil {
				return err
			}
		}
	}
}
