// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Select picks the target a device should get: among the targets whose
// metadata is valid (MetaErr == nil) and lists hardwareID, the newest version
// that is strictly newer than installed and whose SecurityCounter is at least
// floor (the device's persisted anti-rollback floor). installed == "" means
// nothing is known to be installed; any valid version is then newer. Between
// targets of the same version, the higher security counter wins, then the
// lexically first name, so the choice is deterministic.
//
// When nothing qualifies, ok is false and reason explains why, naming the
// best refused candidate where there is one. Select never offers a downgrade:
// restoring the gateway's own backup is a separate, explicit path.
func Select(targets []Target, hardwareID, installed string, floor uint64) (t Target, ok bool, reason string) {
	if hardwareID == "" {
		return Target{}, false, "no hardware id given"
	}
	if installed != "" {
		if err := ValidVersion(installed); err != nil {
			return Target{}, false, fmt.Sprintf("installed version cannot be ordered: %v", err)
		}
	}
	var (
		best                          Target
		found                         bool
		matching, malformed, notNewer int
		belowFloor                    *Target
		newestSeen                    string
	)
	for _, c := range targets {
		if c.MetaErr != nil {
			malformed++
			continue
		}
		if !slices.Contains(c.Meta.Hardware, hardwareID) {
			continue
		}
		matching++
		if newestSeen == "" || CompareVersions(c.Meta.Version, newestSeen) > 0 {
			newestSeen = c.Meta.Version
		}
		if installed != "" && CompareVersions(c.Meta.Version, installed) <= 0 {
			notNewer++
			continue
		}
		if c.Meta.SecurityCounter < floor {
			if belowFloor == nil || CompareVersions(c.Meta.Version, belowFloor.Meta.Version) > 0 {
				c := c
				belowFloor = &c
			}
			continue
		}
		if !found || better(c, best) {
			best, found = c, true
		}
	}
	if found {
		return best, true, ""
	}
	var parts []string
	switch {
	case matching == 0:
		parts = append(parts, fmt.Sprintf("no target for hardware %q", hardwareID))
	case belowFloor != nil:
		parts = append(parts, fmt.Sprintf("target %s (version %s) refused: security counter %d is below the device floor %d",
			belowFloor.Name, belowFloor.Meta.Version, belowFloor.Meta.SecurityCounter, floor))
	default:
		parts = append(parts, fmt.Sprintf("no target newer than installed %s (newest for %s is %s)", installed, hardwareID, newestSeen))
	}
	if malformed > 0 {
		parts = append(parts, fmt.Sprintf("%d target(s) ignored for unusable metadata", malformed))
	}
	return Target{}, false, strings.Join(parts, "; ")
}

func better(a, b Target) bool {
	if c := CompareVersions(a.Meta.Version, b.Meta.Version); c != 0 {
		return c > 0
	}
	if a.Meta.SecurityCounter != b.Meta.SecurityCounter {
		return a.Meta.SecurityCounter > b.Meta.SecurityCounter
	}
	return a.Name < b.Name
}

// SelectRollout is Select among the targets whose rollout admits the
// gateway id at site at time now (Rollout.Admits). A newer target kept back
// by its rollout does not hide an older one that is admitted: the older is
// selected. deferred names the newest target the rollout kept back and why
// (String: "fw-2.5.0 (2.5.0): rollout at 10 %, this gateway's cohort is
// 63"), or is nil when none was; it is set whether or not a target was
// selected.
func SelectRollout(targets []Target, hardwareID, installed string, floor uint64, site, id string, now time.Time) (t Target, ok bool, reason string, deferred *Deferral) {
	cands := targets
	for range len(targets) + 1 {
		t, ok, reason = Select(cands, hardwareID, installed, floor)
		if !ok {
			if deferred != nil {
				reason = "newest target kept back by its rollout: " + deferred.String()
			}
			return Target{}, false, reason, deferred
		}
		admit, why := t.Meta.Rollout.Admits(site, id, now)
		if admit {
			return t, true, "", deferred
		}
		if deferred == nil {
			deferred = &Deferral{Target: t, Why: why}
		}
		if cands = slices.DeleteFunc(slices.Clone(cands), func(c Target) bool { return c.Name == t.Name }); len(cands) == 0 {
			break
		}
	}
	return Target{}, false, "newest target kept back by its rollout: " + deferred.String(), deferred
}

// Deferral is a target that a rollout keeps back from this gateway, and
// why (Rollout.Admits).
type Deferral struct {
	Target Target
	Why    string
}

// String says which target is kept back and why, for people.
func (d Deferral) String() string {
	return fmt.Sprintf("%s (%s): %s", d.Target.Name, d.Target.Meta.Version, d.Why)
}
