package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Event is one audit record. Records form a hash chain: Hash covers the
// record (without Hash) and the previous record's Hash, so an edited,
// deleted or reordered record breaks verification.
type Event struct {
	Seq    uint64            `json:"seq"`
	Time   time.Time         `json:"time"`
	Type   string            `json:"type"`
	Job    string            `json:"job,omitempty"`
	Device string            `json:"device,omitempty"`
	Actor  string            `json:"actor,omitempty"`
	Detail map[string]string `json:"detail,omitempty"`
	Prev   string            `json:"prev"`
	Hash   string            `json:"hash"`
}

var keyAuditHead = []byte("audit-head")

func (e Event) digest() string {
	e.Hash = ""
	raw, _ := json.Marshal(e) // a struct of strings, maps and times: cannot fail
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// Audit appends ev to the audit chain (setting Seq, Time, Prev and Hash)
// and returns the stored record.
func (t *Tx) Audit(ev Event) (Event, error) {
	b := t.tx.Bucket(bucketAudit)
	seq, err := b.NextSequence()
	if err != nil {
		return Event{}, err
	}
	ev.Seq = seq
	if ev.Time.IsZero() {
		ev.Time = t.now
	}
	ev.Prev = string(t.tx.Bucket(bucketMeta).Get(keyAuditHead))
	ev.Hash = ev.digest()
	if err := putJSON(b, u64(seq), &ev); err != nil {
		return Event{}, err
	}
	if err := t.tx.Bucket(bucketMeta).Put(keyAuditHead, []byte(ev.Hash)); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// ExportAudit writes every audit record as JSON lines, oldest first.
func (s *Store) ExportAudit(w io.Writer) error {
	enc := json.NewEncoder(w)
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAudit).ForEach(func(_, v []byte) error {
			var e Event
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			return enc.Encode(e)
		})
	})
}

// VerifyAudit walks the chain and reports the first record that does not
// fit: an edited record, a gap or reordering, or a head that does not match.
func (s *Store) VerifyAudit() (n int, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		prev := ""
		var want uint64 = 1
		err := tx.Bucket(bucketAudit).ForEach(func(k, v []byte) error {
			var e Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("audit record at key %x: %w", k, err)
			}
			if e.Seq != want {
				return fmt.Errorf("audit record %d: expected sequence %d (record missing or reordered)", e.Seq, want)
			}
			if e.Prev != prev {
				return fmt.Errorf("audit record %d: chain broken (prev %.12s, want %.12s)", e.Seq, e.Prev, prev)
			}
			if e.digest() != e.Hash {
				return fmt.Errorf("audit record %d: content does not match its hash (edited)", e.Seq)
			}
			prev = e.Hash
			want++
			n++
			return nil
		})
		if err != nil {
			return err
		}
		if head := string(tx.Bucket(bucketMeta).Get(keyAuditHead)); head != prev {
			return fmt.Errorf("audit head %.12s does not match last record %.12s (records removed from the end)", head, prev)
		}
		return nil
	})
	return n, err
}
