// SPDX-License-Identifier: Apache-2.0

package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Tx is one atomic, fsynced change: a job transition, its audit record and
// its reports are written together or not at all. A Tx is valid only
// inside the function passed to Update.
type Tx struct {
	tx       *bolt.Tx
	now      time.Time
	enqueued bool
}

// Update runs fn in one read-write transaction and commits it (bbolt
// fsyncs on commit) if fn returns nil.
func (s *Store) Update(fn func(*Tx) error) error {
	if p := s.failWrites.Load(); p != nil {
		return *p
	}
	var enqueued bool
	err := s.db.Update(func(btx *bolt.Tx) error {
		t := &Tx{tx: btx, now: time.Now().UTC()}
		if err := fn(t); err != nil {
			return err
		}
		enqueued = t.enqueued
		return nil
	})
	if err == nil && enqueued {
		s.notify()
	}
	return err
}

// Device returns the record for id, or ErrNotFound.
func (t *Tx) Device(id string) (Device, error) {
	var d Device
	err := getJSON(t.tx.Bucket(bucketDevices), []byte(id), &d)
	d.migrate()
	return d, err
}

// PutDevice stores d.
func (t *Tx) PutDevice(d Device) error {
	return putJSON(t.tx.Bucket(bucketDevices), []byte(d.ID), &d)
}

// Job returns the job with id, or ErrNotFound.
func (t *Tx) Job(id string) (Job, error) {
	var j Job
	err := getJSON(t.tx.Bucket(bucketJobs), []byte(id), &j)
	return j, err
}

// PutJob stores j.
func (t *Tx) PutJob(j Job) error {
	if j.ID == "" {
		return fmt.Errorf("put job: empty id")
	}
	return putJSON(t.tx.Bucket(bucketJobs), []byte(j.ID), &j)
}

// Enqueue appends a report to the outbox and returns its sequence number.
// A retained report also replaces the topic's entry in the retained table,
// which is republished on every reconnect.
func (t *Tx) Enqueue(topic string, payload any, retained bool) (uint64, error) {
	raw, err := json.Marshal(payload)
	if err != nil {
		return 0, fmt.Errorf("enqueue %s: %w", topic, err)
	}
	b := t.tx.Bucket(bucketOutbox)
	seq, err := b.NextSequence()
	if err != nil {
		return 0, err
	}
	m := Message{Seq: seq, Topic: topic, Payload: raw, Retained: retained, QoS: 1}
	if err := putJSON(b, u64(seq), &m); err != nil {
		return 0, err
	}
	if retained {
		if err := putJSON(t.tx.Bucket(bucketRetained), []byte(topic), &m); err != nil {
			return 0, err
		}
	}
	t.enqueued = true
	if err := addCount(t.tx, 1); err != nil {
		return 0, err
	}
	return seq, t.compact()
}

// MaxOutbox bounds the outbox. Past it, the oldest undelivered messages
// are compacted: retained messages superseded by a newer one on the same
// topic go first (the retained table keeps the newest), then the oldest
// events, which are replaced by one counted summary on their topic, so a
// consumer sees exactly how many it missed. Nothing is dropped silently.
const MaxOutbox = 20000

func (t *Tx) compact() error {
	n := outboxCount(t.tx)
	if n <= MaxOutbox {
		return nil
	}
	b := t.tx.Bucket(bucketOutbox)
	ret := t.tx.Bucket(bucketRetained)
	excess := n - MaxOutbox*9/10 // compact in batches, not on every enqueue
	var drop [][]byte
	var summaryTopic string
	var events, first, last uint64 // first/last: the dropped events' own "seq" (audit numbers), when they carry one
	c := b.Cursor()
	for k, v := c.First(); k != nil && len(drop) < excess; k, v = c.Next() {
		var m Message
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		if m.Retained {
			var latest Message
			if err := getJSON(ret, []byte(m.Topic), &latest); err == nil && latest.Seq > m.Seq {
				drop = append(drop, append([]byte(nil), k...))
			}
			continue
		}
		if summaryTopic == "" {
			summaryTopic = m.Topic
		}
		if m.Topic == summaryTopic {
			drop = append(drop, append([]byte(nil), k...))
			events++
			var p struct{ Seq uint64 }
			if json.Unmarshal(m.Payload, &p) == nil && p.Seq != 0 {
				if first == 0 {
					first = p.Seq
				}
				last = p.Seq
			}
		}
	}
	for _, k := range drop {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	if err := addCount(t.tx, -len(drop)); err != nil {
		return err
	}
	if events == 0 {
		return nil
	}
	summary := map[string]any{"type": "outbox-compacted", "dropped": events,
		"reason": "outbox full while the broker was unreachable"}
	if first != 0 {
		summary["first_seq"], summary["last_seq"] = first, last
	}
	_, err := t.Enqueue(summaryTopic, summary, false)
	return err
}

var keyOutboxCount = []byte("outbox-count")

func outboxCount(tx *bolt.Tx) int {
	v := tx.Bucket(bucketMeta).Get(keyOutboxCount)
	if len(v) != 8 {
		return tx.Bucket(bucketOutbox).Stats().KeyN // first use after an upgrade
	}
	return int(binary.BigEndian.Uint64(v))
}

func addCount(tx *bolt.Tx, d int) error {
	n := outboxCount(tx) + d
	if n < 0 {
		n = 0
	}
	return tx.Bucket(bucketMeta).Put(keyOutboxCount, u64(uint64(n)))
}
