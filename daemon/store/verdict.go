// SPDX-License-Identifier: Apache-2.0

package store

import (
	"bytes"
	"encoding/json"

	bolt "go.etcd.io/bbolt"

	"github.com/fieldgate/fieldgate/daemon/advisory"
)

// bucketVerdicts holds the site's triage verdicts, keyed
// "device/advisory/cve" (cve empty for a verdict on the whole advisory;
// device ids and tracking ids hold no "/").
var bucketVerdicts = []byte("verdicts")

// PutVerdict stores v, replacing the verdict with the same device,
// advisory and CVE, and returns the one it replaced (ErrNotFound if none).
func (t *Tx) PutVerdict(v advisory.Verdict) (advisory.Verdict, error) {
	b, err := t.tx.CreateBucketIfNotExists(bucketVerdicts)
	if err != nil {
		return advisory.Verdict{}, err
	}
	var old advisory.Verdict
	gerr := getJSON(b, []byte(v.Key()), &old)
	if err := putJSON(b, []byte(v.Key()), &v); err != nil {
		return advisory.Verdict{}, err
	}
	return old, gerr
}

// DeleteVerdict removes the verdict of device on advisory and cve and
// returns it, or ErrNotFound.
func (t *Tx) DeleteVerdict(device, adv, cve string) (advisory.Verdict, error) {
	var v advisory.Verdict
	b := t.tx.Bucket(bucketVerdicts)
	if b == nil {
		return v, ErrNotFound
	}
	key := []byte(advisory.Verdict{Device: device, Advisory: adv, CVE: cve}.Key())
	if err := getJSON(b, key, &v); err != nil {
		return v, err
	}
	return v, b.Delete(key)
}

// Verdicts returns the stored verdicts of device, or of every device with
// "", ordered by device, advisory and CVE.
func (s *Store) Verdicts(device string) ([]advisory.Verdict, error) {
	var out []advisory.Verdict
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketVerdicts)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		prefix := []byte(device + "/")
		if device == "" {
			prefix = nil
		}
		for k, raw := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, raw = c.Next() {
			var v advisory.Verdict
			if err := json.Unmarshal(raw, &v); err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	return out, err
}
