// SPDX-License-Identifier: Apache-2.0

package store

import (
	"encoding/json"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Phase is the persisted name of a job's or a step's phase. The names
// are the daemon's state machine's; the store keeps them as written.
type Phase string

// Job is the durable record of one update: one target for a set of
// devices. Phase names are owned by the daemon's state machine; the store
// keeps them as written.
type Job struct {
	ID        string            `json:"id"`
	Target    string            `json:"target"`
	SHA256    string            `json:"sha256"`
	Hashes    map[string]string `json:"hashes"`
	Length    int64             `json:"length"`
	Version   string            `json:"version"`
	Counter   uint64            `json:"security_counter"`
	Severity  string            `json:"severity,omitempty"`
	Protocol  string            `json:"protocol,omitempty"`
	Blob      string            `json:"blob,omitempty"`
	Group     string            `json:"group"`
	Window    string            `json:"window"`
	Policy    string            `json:"approval_policy"`
	Approvals []Approval        `json:"approvals,omitempty"`
	Phase     Phase             `json:"phase"`
	Kind      string            `json:"kind,omitempty"` // "" an update; "recovery" returns a device to an image the gateway holds
	Reason    string            `json:"reason,omitempty"`
	NotBefore time.Time         `json:"not_before,omitempty"` // deferred until
	Created   time.Time         `json:"created"`
	Updated   time.Time         `json:"updated"`
	Devices   []Step            `json:"devices"`
}

// Approval is one recorded approval of a job. It binds the job's image,
// device set and window: an approval for anything else is refused.
type Approval struct {
	Kind    string    `json:"kind"`  // local | remote
	Actor   string    `json:"actor"` // the signing key's name, or the local console/button
	SHA256  string    `json:"sha256"`
	Devices []string  `json:"devices"`
	Window  string    `json:"window"`
	From    time.Time `json:"from,omitempty"` // the window occurrence approved, when given
	Until   time.Time `json:"until,omitempty"`
	At      time.Time `json:"at"`
	Expires time.Time `json:"expires"`
	Command string    `json:"command,omitempty"` // remote command id
}

// Step is one device's progress through a job.
type Step struct {
	Device    string `json:"device"`
	Phase     Phase  `json:"phase"`
	Attempts  int    `json:"attempts"`            // entries into transfer (each may write the device)
	Restarts  int    `json:"restarts,omitempty"`  // phases resumed after an interruption
	Rollbacks int    `json:"rollbacks,omitempty"` // entries into rollback
	// Wrote is set once anything may have reached the device: a transfer
	// that did not fail before its first byte, or one interrupted. A step
	// that never wrote ends failed as not-started, with no rollback.
	Wrote     bool      `json:"wrote,omitempty"`
	Done      int64     `json:"done,omitempty"`
	Total     int64     `json:"total,omitempty"`
	From      string    `json:"from_version,omitempty"`
	Backup    string    `json:"backup,omitempty"` // path of the image read back before the push
	SoakUntil time.Time `json:"soak_until,omitempty"`
	Blocked   string    `json:"blocked,omitempty"` // why the step waits (interlock), not persisted as a phase
	Error     string    `json:"error,omitempty"`
}

// Jobs returns every job, oldest first.
func (s *Store) Jobs() ([]Job, error) {
	var out []Job
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJobs).ForEach(func(_, v []byte) error {
			var j Job
			if err := json.Unmarshal(v, &j); err != nil {
				return err
			}
			out = append(out, j)
			return nil
		})
	})
	sort.Slice(out, func(a, b int) bool {
		if !out[a].Created.Equal(out[b].Created) {
			return out[a].Created.Before(out[b].Created)
		}
		return out[a].ID < out[b].ID
	})
	return out, err
}

// Job returns the job with id, or ErrNotFound.
func (s *Store) Job(id string) (Job, error) {
	var j Job
	err := s.db.View(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketJobs), []byte(id), &j)
	})
	return j, err
}

// PruneJobs deletes the oldest finished jobs (those for which done reports
// true), keeping the newest keep of them; open jobs are never deleted. The
// audit log keeps the history of every job; this bounds what the daemon
// reads on each turn of its loop.
func (s *Store) PruneJobs(keep int, done func(Phase) bool) (int, error) {
	jobs, err := s.Jobs() // oldest first
	if err != nil {
		return 0, err
	}
	var finished []string
	for _, j := range jobs {
		if done(j.Phase) {
			finished = append(finished, j.ID)
		}
	}
	if len(finished) <= keep {
		return 0, nil
	}
	drop := finished[:len(finished)-keep]
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJobs)
		for _, id := range drop {
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return len(drop), nil
}
