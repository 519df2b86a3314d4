// SPDX-License-Identifier: Apache-2.0

package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Device is the gateway's durable record of one field device.
type Device struct {
	ID string `json:"id"`
	// Version and ImageSHA256 are what the device last reported.
	Version     string          `json:"version"`
	ImageSHA256 string          `json:"image_sha256,omitempty"`
	Identity    json.RawMessage `json:"identity,omitempty"`
	// KnownGood is the version recorded when the device was first seen or
	// last committed; recovery returns to it.
	KnownGood string `json:"known_good"`
	// KnownGoodBlob is the sha256 of the image the gateway holds for
	// KnownGood, when it has one (backup or the committed target).
	KnownGoodBlob string `json:"known_good_blob,omitempty"`
	// Floor is the anti-rollback security-counter floor: a target with a
	// lower counter is refused.
	Floor     uint64    `json:"floor"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	LastError string    `json:"last_error,omitempty"`
	// Mismatch says why the device that answers is not the configured one
	// (another hardware id): no update is offered to it.
	Mismatch string `json:"mismatch,omitempty"`
	// Held is the list of held sha256s written by earlier versions; reads
	// move it into Holds.
	Held []string `json:"held,omitempty"`
	// Holds are targets that are not offered to the device again on their
	// own: an update that ended failed, rolled back or cancelled, or one an
	// operator rolled back. A newer target for the device, or a person's
	// retry, lifts a hold.
	Holds []Hold `json:"holds,omitempty"`
	// Recovery, when set, says why what the device holds is not known (a
	// write was interrupted, a rollback did not verify). Version is then
	// empty, no update is offered, and the device must be recovered.
	Recovery string `json:"recovery,omitempty"`
	// Backups are verified images read back from the device, oldest first.
	Backups []Backup `json:"backups,omitempty"`
	// RolledBack names the update the device was last rolled back from;
	// a later commit clears it.
	RolledBack string `json:"rolled_back,omitempty"`
}

// Hold is one held (device, target) pair.
type Hold struct {
	SHA256  string    `json:"sha256"`
	Target  string    `json:"target,omitempty"`
	Version string    `json:"version,omitempty"`
	Job     string    `json:"job,omitempty"`
	Reason  string    `json:"reason"` // e.g. "rolled-back: boot failed"
	Since   time.Time `json:"since"`
}

// Backup is an image read back from a device and checked against what the
// device was known to run: its version, and its sha256 where the device
// reports one.
type Backup struct {
	Version string    `json:"version"`
	SHA256  string    `json:"sha256"`
	Size    int64     `json:"size"`
	Path    string    `json:"path"`
	Taken   time.Time `json:"taken"`
}

// HeldSHA reports whether the target with sha256 sum is held.
func (d *Device) HeldSHA(sum string) bool {
	for _, h := range d.Holds {
		if h.SHA256 == sum {
			return true
		}
	}
	return false
}

// migrate moves fields written by earlier versions into their current form.
func (d *Device) migrate() {
	for _, sum := range d.Held {
		if !d.HeldSHA(sum) {
			d.Holds = append(d.Holds, Hold{SHA256: sum, Reason: "rolled back by command"})
		}
	}
	d.Held = nil
}

// Device returns the record for id, or ErrNotFound.
func (s *Store) Device(id string) (Device, error) {
	var d Device
	err := s.db.View(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketDevices), []byte(id), &d)
	})
	d.migrate()
	return d, err
}

// Devices returns every device record, ordered by id.
func (s *Store) Devices() ([]Device, error) {
	var out []Device
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDevices).ForEach(func(_, v []byte) error {
			var d Device
			if err := json.Unmarshal(v, &d); err != nil {
				return err
			}
			d.migrate()
			out = append(out, d)
			return nil
		})
	})
	return out, err
}

// UpdateDevice applies fn to the record for id (a zero record with ID set if
// none exists) and stores the result in one transaction.
func (s *Store) UpdateDevice(id string, fn func(*Device) error) (Device, error) {
	var d Device
	err := s.Update(func(t *Tx) error {
		var err error
		d, err = t.Device(id)
		if err != nil && err != ErrNotFound {
			return err
		}
		d.ID = id
		if err := fn(&d); err != nil {
			return err
		}
		return t.PutDevice(d)
	})
	if err != nil {
		return Device{}, fmt.Errorf("update device %s: %w", id, err)
	}
	return d, nil
}
