// SPDX-License-Identifier: Apache-2.0

package store

import (
	"bytes"
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
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Type   string    `json:"type"`
	Job    string    `json:"job,omitempty"`
	Device string    `json:"device,omitempty"`
	Actor  string    `json:"actor,omitempty"`
	// Detail holds strings, numbers and booleans only: records are
	// re-encoded to be verified, and those re-encode byte for byte.
	Detail map[string]any `json:"detail,omitempty"`
	Prev   string         `json:"prev"`
	Hash   string         `json:"hash"`
}

// decodeEvent reads a stored record, keeping numbers as written so that
// the digest of a re-read record equals the digest at write time.
func decodeEvent(raw []byte, e *Event) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(e)
}

var (
	keyAuditHead   = []byte("audit-head")
	keyAuditAnchor = []byte("audit-anchor") // {first kept seq, hash of the record before it}
)

// MaxAudit bounds the audit log. Past it, the oldest tenth is pruned; the
// chain stays verifiable from an anchor (the first kept sequence number and
// the hash of the record before it), and the pruning is itself audited.
// Export the log regularly (fieldgatectl audit export) to keep it all.
var MaxAudit uint64 = 200000

type auditAnchor struct {
	Seq  uint64 `json:"seq"`
	Prev string `json:"prev"`
}

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
	if ev.Type != "audit-pruned" {
		if err := t.pruneAudit(seq); err != nil {
			return Event{}, err
		}
	}
	return ev, nil
}

func (t *Tx) anchor() auditAnchor {
	a := auditAnchor{Seq: 1}
	if raw := t.tx.Bucket(bucketMeta).Get(keyAuditAnchor); raw != nil {
		json.Unmarshal(raw, &a)
	}
	return a
}

// pruneAudit drops the oldest tenth of the log once it holds more than
// MaxAudit records, moving the anchor past them.
func (t *Tx) pruneAudit(last uint64) error {
	a := t.anchor()
	if last-a.Seq+1 <= MaxAudit {
		return nil
	}
	b := t.tx.Bucket(bucketAudit)
	n := max(MaxAudit/10, 1)
	var prev string
	for seq := a.Seq; seq < a.Seq+n; seq++ {
		var e Event
		if raw := b.Get(u64(seq)); raw != nil && decodeEvent(raw, &e) == nil {
			prev = e.Hash
		}
		if err := b.Delete(u64(seq)); err != nil {
			return err
		}
	}
	raw, _ := json.Marshal(auditAnchor{Seq: a.Seq + n, Prev: prev})
	if err := t.tx.Bucket(bucketMeta).Put(keyAuditAnchor, raw); err != nil {
		return err
	}
	_, err := t.Audit(Event{Type: "audit-pruned", Detail: map[string]any{
		"records": n, "first_kept": a.Seq + n}})
	return err
}

// ExportAudit writes every audit record as JSON lines, oldest first.
func (s *Store) ExportAudit(w io.Writer) error {
	enc := json.NewEncoder(w)
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAudit).ForEach(func(_, v []byte) error {
			var e Event
			if err := decodeEvent(v, &e); err != nil {
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
		a := (&Tx{tx: tx}).anchor()
		prev := a.Prev
		want := a.Seq
		err := tx.Bucket(bucketAudit).ForEach(func(k, v []byte) error {
			var e Event
			if err := decodeEvent(v, &e); err != nil {
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
