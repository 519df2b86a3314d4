// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// maxRolloutList bounds Rollout.Sites and Rollout.Gateways. The custom
// metadata's own size limit (64 KiB) applies too, so long ids fill it first.
const maxRolloutList = 1024

// Rollout is a staged rollout of a target, in its signed custom metadata
// ("rollout" inside the "fieldgate" object):
//
//	"rollout": {
//	  "percent": 10,                        // required: 0..100 of the gateways take it
//	  "not_before": "2026-06-01T00:00:00Z", // optional: no gateway takes it earlier
//	  "sites": ["plant-1"],                 // optional: only gateways of these sites…
//	  "gateways": ["gw-0042"]               // optional: …or with these ids
//	}
//
// A gateway takes the target only when Admits says so. Widening is
// publishing the same target (same file, same hashes) with a higher
// percent; halting is percent 0, which stops staging and keeps pending
// device steps of open jobs from starting, but never interrupts a running
// step. A target without a rollout is for every gateway at once.
type Rollout struct {
	// Percent is the share of gateways, by cohort, that take the target:
	// those whose Cohort is below it. 0 halts the rollout, 100 is everyone.
	Percent int `json:"percent"`
	// NotBefore is when the rollout starts; zero means now. It is RFC 3339
	// in JSON and held in UTC.
	NotBefore time.Time `json:"not_before,omitzero"`
	// Sites, when given, limits the rollout to gateways of these sites
	// (gateway.site), or listed in Gateways.
	Sites []string `json:"sites,omitempty"`
	// Gateways, when given, limits the rollout to gateways with these ids
	// (gateway.id), or of a site listed in Sites.
	Gateways []string `json:"gateways,omitempty"`
}

// UnmarshalJSON decodes a rollout strictly: percent is required (a missing
// percent is an error, not 0), unknown and repeated keys are errors, and
// not_before must be RFC 3339. Its errors start with "rollout: ".
func (r *Rollout) UnmarshalJSON(b []byte) error {
	if err := r.unmarshal(b); err != nil {
		return fmt.Errorf("rollout: %w", err)
	}
	return nil
}

func (r *Rollout) unmarshal(b []byte) error {
	if err := checkDuplicateKeys(b); err != nil {
		return err
	}
	var raw struct {
		Percent   *int     `json:"percent"`
		NotBefore *string  `json:"not_before"`
		Sites     []string `json:"sites"`
		Gateways  []string `json:"gateways"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data")
	}
	if raw.Percent == nil {
		return errors.New("percent: required (0 halts the rollout, 100 is every gateway)")
	}
	out := Rollout{Percent: *raw.Percent, Sites: raw.Sites, Gateways: raw.Gateways}
	if raw.NotBefore != nil {
		t, err := time.Parse(time.RFC3339, *raw.NotBefore)
		if err != nil {
			return fmt.Errorf("not_before %q: want RFC 3339, e.g. 2026-06-01T00:00:00Z", *raw.NotBefore)
		}
		out.NotBefore = t.UTC()
	}
	*r = out
	return nil
}

// MarshalJSON writes not_before as RFC 3339 in UTC, the form UnmarshalJSON
// reads back.
func (r Rollout) MarshalJSON() ([]byte, error) {
	type plain Rollout
	p := plain(r)
	var nb string
	if !r.NotBefore.IsZero() {
		nb = r.NotBefore.UTC().Format(time.RFC3339Nano)
	}
	p.NotBefore = time.Time{}
	return json.Marshal(struct {
		plain
		NotBefore string `json:"not_before,omitempty"`
	}{p, nb})
}

// Validate reports the first problem of r: percent outside 0..100, a list
// too long, an entry that is not an id, an entry listed twice.
func (r *Rollout) Validate() error {
	if r.Percent < 0 || r.Percent > 100 {
		return fmt.Errorf("percent %d: want 0..100", r.Percent)
	}
	if err := checkRolloutList("sites", r.Sites); err != nil {
		return err
	}
	return checkRolloutList("gateways", r.Gateways)
}

func checkRolloutList(name string, list []string) error {
	if len(list) > maxRolloutList {
		return fmt.Errorf("%s: %d entries, limit %d", name, len(list), maxRolloutList)
	}
	seen := make(map[string]bool, len(list))
	for i, s := range list {
		if err := checkID(s); err != nil {
			return fmt.Errorf("%s[%d]: %w", name, i, err)
		}
		if seen[s] {
			return fmt.Errorf("%s[%d]: %q listed twice", name, i, s)
		}
		seen[s] = true
	}
	return nil
}

// cohortDomain separates the cohort hash from any other use of SHA-256 over
// gateway ids. Changing it reshuffles every fleet's cohorts.
const cohortDomain = "fieldgate-rollout-v1\x00"

// Cohort returns the rollout cohort of gateway gatewayID at site, uniform
// over 0..99: the first 8 bytes of SHA-256("fieldgate-rollout-v1\x00" +
// site + "/" + gatewayID) as a big-endian integer, modulo 100.
//
// It does not depend on the target, so the same gateways go first in every
// rollout: a rollout at 5 % reaches the same 5 % each time, which is what
// canary gateways want (they gain experience, and the rest of the fleet is
// never first). Anyone can compute a fleet's cohorts from its ids to
// predict, or check, which gateways a percent reaches.
func Cohort(site, gatewayID string) int {
	sum := sha256.Sum256([]byte(cohortDomain + site + "/" + gatewayID))
	return int(binary.BigEndian.Uint64(sum[:8]) % 100)
}

// Admits reports whether the gateway gatewayID at site takes a target with
// rollout r at time now; when it does not, reason says why, for people
// ("rollout at 10 %, this gateway's cohort is 63"). A nil rollout admits
// every gateway.
func (r *Rollout) Admits(site, gatewayID string, now time.Time) (ok bool, reason string) {
	if r == nil {
		return true, ""
	}
	if len(r.Sites) > 0 || len(r.Gateways) > 0 {
		if !slices.Contains(r.Sites, site) && !slices.Contains(r.Gateways, gatewayID) {
			switch {
			case len(r.Gateways) == 0:
				return false, fmt.Sprintf("site %s not listed", site)
			case len(r.Sites) == 0:
				return false, fmt.Sprintf("gateway %s not listed", gatewayID)
			}
			return false, fmt.Sprintf("neither site %s nor gateway %s listed", site, gatewayID)
		}
	}
	if now.Before(r.NotBefore) {
		return false, "not before " + r.NotBefore.UTC().Format(time.RFC3339)
	}
	if r.Percent == 0 {
		return false, "rollout at 0 % (halted)"
	}
	if c := Cohort(site, gatewayID); c >= r.Percent {
		return false, fmt.Sprintf("rollout at %d %%, this gateway's cohort is %d", r.Percent, c)
	}
	return true, ""
}
