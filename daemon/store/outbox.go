// SPDX-License-Identifier: Apache-2.0

package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Message is one queued report.
type Message struct {
	Seq      uint64          `json:"seq"`
	Topic    string          `json:"topic"`
	Payload  json.RawMessage `json:"payload"`
	Retained bool            `json:"retained,omitempty"`
	QoS      byte            `json:"qos"`
}

func (s *Store) notify() {
	s.mu.Lock()
	close(s.waiters)
	s.waiters = make(chan struct{})
	s.mu.Unlock()
}

// Wait returns a channel closed when the outbox next grows.
func (s *Store) Wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiters
}

// Retained returns the latest retained message of every topic.
func (s *Store) Retained() ([]Message, error) {
	var out []Message
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRetained).ForEach(func(_, v []byte) error {
			var m Message
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			out = append(out, m)
			return nil
		})
	})
	return out, err
}

// Pending returns up to max queued messages with Seq > after, in order.
func (s *Store) Pending(after uint64, max int) ([]Message, error) {
	var out []Message
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && len(out) < max; k, v = c.Next() {
			var m Message
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("outbox record %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

// Ack records that every message up to seq was delivered and removes them.
func (s *Store) Ack(seq uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		var done [][]byte // deleting while a bbolt cursor walks skips keys
		c := b.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= seq; k, _ = c.Next() {
			done = append(done, append([]byte(nil), k...))
		}
		for _, k := range done {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		if err := addCount(tx, -len(done)); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyAcked, u64(seq))
	})
}

// Acked returns the highest sequence number acknowledged so far.
func (s *Store) Acked() (uint64, error) {
	var n uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyAcked); len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return n, err
}

// Depth returns the number of undelivered messages.
func (s *Store) Depth() (int, error) {
	var n int
	err := s.db.View(func(tx *bolt.Tx) error {
		n = outboxCount(tx)
		return nil
	})
	return n, err
}
