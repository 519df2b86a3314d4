// SPDX-License-Identifier: Apache-2.0

package store

import bolt "go.etcd.io/bbolt"

// bucketAdvisories holds what the advisory matcher must remember across
// restarts: the advisory documents in use (so that a gateway restarted on
// an island keeps matching from the blobs it verified before) and, per
// device, the matches last published (so that a restart emits no
// advisory-matched event twice). It is created on first write.
var bucketAdvisories = []byte("advisories")

// AdvisoryRecord decodes the JSON record stored under key into v, or
// returns ErrNotFound.
func (s *Store) AdvisoryRecord(key string, v any) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAdvisories)
		if b == nil {
			return ErrNotFound
		}
		return getJSON(b, []byte(key), v)
	})
}

// PutAdvisoryRecord stores v as JSON under key; a nil v deletes the key.
func (t *Tx) PutAdvisoryRecord(key string, v any) error {
	b, err := t.tx.CreateBucketIfNotExists(bucketAdvisories)
	if err != nil {
		return err
	}
	if v == nil {
		return b.Delete([]byte(key))
	}
	return putJSON(b, []byte(key), v)
}

// AdvisoryRecord decodes the record under key inside the transaction, or
// returns ErrNotFound.
func (t *Tx) AdvisoryRecord(key string, v any) error {
	b := t.tx.Bucket(bucketAdvisories)
	if b == nil {
		return ErrNotFound
	}
	return getJSON(b, []byte(key), v)
}
