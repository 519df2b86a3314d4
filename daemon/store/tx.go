package store

import (
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
	return seq, nil
}
