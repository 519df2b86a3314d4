// SPDX-License-Identifier: Apache-2.0

package store

import (
	"os"

	bolt "go.etcd.io/bbolt"
)

// Usage is how much the store holds.
type Usage struct {
	AuditRecords uint64 // records the audit log keeps (at most MaxAudit and the pruning record)
	Bytes        int64  // size of the store file on disk (bbolt grows it ahead of use)
}

// Usage returns how much the store holds. It reads no record: the audit
// count follows from the last sequence number and the anchor, so a
// metrics scrape can call it as often as it likes.
func (s *Store) Usage() (Usage, error) {
	var u Usage
	err := s.db.View(func(tx *bolt.Tx) error {
		if last := tx.Bucket(bucketAudit).Sequence(); last > 0 {
			u.AuditRecords = last - (&Tx{tx: tx}).anchor().Seq + 1
		}
		return nil
	})
	if err != nil {
		return u, err
	}
	fi, err := os.Stat(s.db.Path())
	if err != nil {
		return u, err
	}
	u.Bytes = fi.Size()
	return u, nil
}
