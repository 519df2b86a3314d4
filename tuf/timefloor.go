// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrClockUnsynced is returned (wrapped) by Refresh and CheckClock when the
// system clock is below the persisted time floor: TUF expiry checks would be
// meaningless, so refresh is held until the clock is plausible.
var ErrClockUnsynced = errors.New("clock unsynced: system time is below the trusted time floor")

const floorFile = "timefloor"

// TimeFloor returns the newest trusted time the client has seen (never
// earlier than Config.BuildTime).
func (c *Client) TimeFloor() time.Time {
	floor := c.cfg.BuildTime
	if t, err := c.readFloor(); err == nil && t.After(floor) {
		floor = t
	}
	return floor.UTC()
}

// CheckClock returns an error wrapping ErrClockUnsynced when the system clock
// is below the time floor, for health reporting.
func (c *Client) CheckClock() error {
	_, err := c.refTime()
	return err
}

// refTime returns the reference time for expiry checks.
func (c *Client) refTime() (time.Time, error) {
	if !c.cfg.RefTime.IsZero() {
		return c.cfg.RefTime.UTC(), nil
	}
	now := c.now().UTC()
	floor := c.TimeFloor()
	if now.Before(floor) {
		return time.Time{}, fmt.Errorf("system time %s is below %s: %w", now.Format(time.RFC3339), floor.Format(time.RFC3339), ErrClockUnsynced)
	}
	return now, nil
}

func (c *Client) readFloor() (time.Time, error) {
	b, err := os.ReadFile(filepath.Join(c.cfg.MetadataDir, floorFile))
	if err != nil {
		return time.Time{}, err
	}
	return time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
}

// raiseFloor persists t as the new floor if it is newer than the current one.
// An explicit Config.RefTime never moves the floor.
func (c *Client) raiseFloor(t time.Time) error {
	if !c.cfg.RefTime.IsZero() || !t.After(c.TimeFloor()) {
		return nil
	}
	data := []byte(t.UTC().Format(time.RFC3339Nano) + "\n")
	if err := writeFileAtomic(filepath.Join(c.cfg.MetadataDir, floorFile), data); err != nil {
		return fmt.Errorf("persist time floor: %w", err)
	}
	return nil
}
