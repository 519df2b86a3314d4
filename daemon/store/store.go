// SPDX-License-Identifier: Apache-2.0

package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketDevices  = []byte("devices")
	bucketJobs     = []byte("jobs")
	bucketOutbox   = []byte("outbox")
	bucketRetained = []byte("retained")
	bucketAudit    = []byte("audit")
	bucketMeta     = []byte("meta")

	keyAcked = []byte("outbox-acked")
)

// ErrNotFound is returned for a record that does not exist.
var ErrNotFound = errors.New("not found")

// Store is the durable state. Close it when done.
type Store struct {
	db *bolt.DB

	mu      sync.Mutex
	waiters chan struct{} // closed and replaced when the outbox grows

	failWrites atomic.Pointer[error] // see FailWrites
}

// FailWrites makes every later Update fail with err, as a full or broken
// disk would; nil makes writes work again. It is the fault knob of the
// daemon's tests: the store is the one place all durable writes pass.
func (s *Store) FailWrites(err error) {
	if err == nil {
		s.failWrites.Store(nil)
		return
	}
	s.failWrites.Store(&err)
}

// Open opens (creating if needed) the store file at path.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketDevices, bucketJobs, bucketOutbox, bucketRetained, bucketAudit, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Store{db: db, waiters: make(chan struct{})}, nil
}

// Close closes the store file.
func (s *Store) Close() error { return s.db.Close() }

func u64(n uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return b[:]
}

func getJSON(b *bolt.Bucket, key []byte, v any) error {
	raw := b.Get(key)
	if raw == nil {
		return ErrNotFound
	}
	return json.Unmarshal(raw, v)
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

// Flag returns a named durable setting (e.g. the emergency stop), "" if unset.
func (s *Store) Flag(name string) (string, error) {
	var v string
	err := s.db.View(func(tx *bolt.Tx) error {
		v = string(tx.Bucket(bucketMeta).Get([]byte("flag/" + name)))
		return nil
	})
	return v, err
}

// SetFlag sets (or, with "", clears) a named durable setting.
func (t *Tx) SetFlag(name, value string) error {
	b := t.tx.Bucket(bucketMeta)
	if value == "" {
		return b.Delete([]byte("flag/" + name))
	}
	return b.Put([]byte("flag/"+name), []byte(value))
}

var bucketCommands = []byte("commands")

// SeenCommand records a remote command id until it expires and reports
// whether it was already recorded: a replayed command is refused. Expired
// ids are forgotten here too, so the table stays as small as the commands
// still valid.
func (t *Tx) SeenCommand(id string, expires, now time.Time) (bool, error) {
	b, err := t.tx.CreateBucketIfNotExists(bucketCommands)
	if err != nil {
		return false, err
	}
	var old [][]byte
	seen := false
	err = b.ForEach(func(k, v []byte) error {
		exp, err := time.Parse(time.RFC3339Nano, string(v))
		if err == nil && exp.Before(now) {
			old = append(old, append([]byte(nil), k...))
		}
		if string(k) == id {
			seen = true
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return false, err
		}
	}
	if seen {
		return true, nil
	}
	return false, b.Put([]byte(id), []byte(expires.UTC().Format(time.RFC3339Nano)))
}
