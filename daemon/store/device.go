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
	// Held lists targets (sha256) an operator rolled this device back
	// from: they are not offered to it again.
	Held []string `json:"held,omitempty"`
}

// Device returns the record for id, or ErrNotFound.
func (s *Store) Device(id string) (Device, error) {
	var d Device
	err := s.db.View(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketDevices), []byte(id), &d)
	})
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
