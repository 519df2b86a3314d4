// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseCustomRollout(t *testing.T) {
	const base = `{"fieldgate":{"hardware":["a"],"version":"1","rollout":%s}}`
	good := []struct {
		name, in string
		want     Rollout
	}{
		{"percent only", `{"percent":10}`, Rollout{Percent: 10}},
		{"halted", `{"percent":0}`, Rollout{Percent: 0}},
		{"everything", `{"percent":100,"not_before":"2026-06-01T02:00:00+02:00","sites":["plant-1"],"gateways":["gw-1","gw-2"]}`,
			Rollout{Percent: 100, NotBefore: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), Sites: []string{"plant-1"}, Gateways: []string{"gw-1", "gw-2"}}},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseCustom([]byte(fmt.Sprintf(base, tt.in)))
			if err != nil {
				t.Fatalf("ParseCustom(%s) = %v", tt.in, err)
			}
			if m.Rollout == nil {
				t.Fatalf("ParseCustom(%s).Rollout = nil", tt.in)
			}
			got, _ := json.Marshal(m.Rollout)
			want, _ := json.Marshal(tt.want)
			if string(got) != string(want) || !m.Rollout.NotBefore.Equal(tt.want.NotBefore) {
				t.Errorf("ParseCustom(%s).Rollout = %s, want %s", tt.in, got, want)
			}
		})
	}
	many := make([]string, maxRolloutList+1)
	for i := range many {
		many[i] = fmt.Sprintf("%q", fmt.Sprintf("g%d", i))
	}
	bad := []struct{ name, in, want string }{
		{"no percent", `{}`, "percent: required"},
		{"percent null", `{"percent":null}`, "percent: required"},
		{"only lists", `{"sites":["plant-1"]}`, "percent: required"},
		{"negative", `{"percent":-1}`, "percent -1: want 0..100"},
		{"over 100", `{"percent":101}`, "percent 101: want 0..100"},
		{"fraction", `{"percent":12.5}`, "percent"},
		{"string percent", `{"percent":"10"}`, "percent"},
		{"unknown key", `{"percent":10,"precent":20}`, "unknown field"},
		{"duplicate key", `{"percent":100,"percent":0}`, "appears twice"},
		{"not an object", `[10]`, "not a JSON object"},
		{"bad time", `{"percent":10,"not_before":"tomorrow"}`, `not_before "tomorrow": want RFC 3339`},
		{"date only", `{"percent":10,"not_before":"2026-06-01"}`, "want RFC 3339"},
		{"empty site", `{"percent":10,"sites":[""]}`, "sites[0]: empty"},
		{"site with space", `{"percent":10,"sites":["plant 1"]}`, "sites[0]"},
		{"duplicate gateway", `{"percent":10,"gateways":["gw-1","gw-2","gw-1"]}`, `gateways[2]: "gw-1" listed twice`},
		{"too many gateways", `{"percent":10,"gateways":[` + strings.Join(many, ",") + `]}`, "gateways: 1025 entries, limit 1024"},
		{"rollout null", `null`, ""},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseCustom([]byte(fmt.Sprintf(base, tt.in)))
			if tt.want == "" { // null is no rollout at all
				if err != nil || m.Rollout != nil {
					t.Errorf("ParseCustom(%s) = %+v, %v; want no rollout, no error", tt.in, m.Rollout, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseCustom(%s) = %v, want an error containing %q", tt.in, err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), "rollout") && tt.name != "too many gateways" {
				t.Errorf("ParseCustom(%s) = %v, want the error to name rollout", tt.in, err)
			}
		})
	}
}

func TestRolloutMarshalRoundTrip(t *testing.T) {
	m := Meta{Hardware: []string{"hw"}, Version: "1.0.0", Rollout: &Rollout{Percent: 50,
		NotBefore: time.Date(2026, 6, 1, 22, 0, 0, 0, time.FixedZone("CEST", 2*3600)), Sites: []string{"plant-1"}}}
	raw, err := MarshalCustom(m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"fieldgate":{"hardware":["hw"],"version":"1.0.0","security_counter":0,"rollout":{"percent":50,"sites":["plant-1"],"not_before":"2026-06-01T20:00:00Z"}}}`
	if string(raw) != want {
		t.Errorf("MarshalCustom = %s, want %s", raw, want)
	}
	back, err := ParseCustom(raw)
	if err != nil {
		t.Fatalf("ParseCustom(MarshalCustom) = %v", err)
	}
	if !back.Rollout.NotBefore.Equal(m.Rollout.NotBefore) || back.Rollout.Percent != 50 {
		t.Errorf("round trip = %+v, want %+v", back.Rollout, m.Rollout)
	}
	if _, err := MarshalCustom(Meta{Hardware: []string{"hw"}, Version: "1", Rollout: &Rollout{Percent: 200}}); err == nil {
		t.Error("MarshalCustom(percent 200) = nil error")
	}
}

// TestCohortPinned: the cohort of a gateway never changes between releases
// (the vectors were computed independently, with Python's hashlib).
func TestCohortPinned(t *testing.T) {
	for _, tt := range []struct {
		site, id string
		want     int
	}{
		{"plant-1", "gw-0001", 9},
		{"plant-1", "gw-0002", 28},
		{"plant-2", "gw-0001", 36},
		{"", "gw", 57},
		{"demo", "gw1", 53},
	} {
		if got := Cohort(tt.site, tt.id); got != tt.want {
			t.Errorf("Cohort(%q, %q) = %d, want %d", tt.site, tt.id, got, tt.want)
		}
	}
}

// TestCohortUniform: 10 000 gateway ids spread evenly over the deciles.
func TestCohortUniform(t *testing.T) {
	var deciles [10]int
	for i := range 10000 {
		c := Cohort(fmt.Sprintf("site-%d", i%40), fmt.Sprintf("gw-%05d", i))
		if c < 0 || c > 99 {
			t.Fatalf("Cohort = %d, want 0..99", c)
		}
		deciles[c/10]++
	}
	for d, n := range deciles {
		if n < 850 || n > 1150 {
			t.Errorf("decile %d holds %d of 10000 gateways, want 1000±150 (all: %v)", d, n, deciles)
		}
	}
}

func TestRolloutAdmits(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	// Cohorts: plant-1/gw-0001 is 9, plant-1/gw-0002 is 28, plant-2/gw-0001 is 36.
	for _, tt := range []struct {
		name     string
		r        *Rollout
		site, id string
		ok       bool
		why      string
	}{
		{"no rollout", nil, "plant-1", "gw-0002", true, ""},
		{"cohort below percent", &Rollout{Percent: 10}, "plant-1", "gw-0001", true, ""},
		{"cohort equal to percent", &Rollout{Percent: 9}, "plant-1", "gw-0001", false, "rollout at 9 %, this gateway's cohort is 9"},
		{"cohort above percent", &Rollout{Percent: 10}, "plant-1", "gw-0002", false, "rollout at 10 %, this gateway's cohort is 28"},
		{"everyone", &Rollout{Percent: 100}, "plant-2", "gw-0001", true, ""},
		{"halted", &Rollout{Percent: 0}, "plant-1", "gw-0001", false, "rollout at 0 % (halted)"},
		{"site listed", &Rollout{Percent: 100, Sites: []string{"plant-1"}}, "plant-1", "gw-0002", true, ""},
		{"site not listed", &Rollout{Percent: 100, Sites: []string{"plant-1"}}, "plant-2", "gw-0001", false, "site plant-2 not listed"},
		{"gateway listed", &Rollout{Percent: 100, Gateways: []string{"gw-0001"}}, "plant-2", "gw-0001", true, ""},
		{"gateway not listed", &Rollout{Percent: 100, Gateways: []string{"gw-0009"}}, "plant-2", "gw-0001", false, "gateway gw-0001 not listed"},
		{"neither listed", &Rollout{Percent: 100, Sites: []string{"plant-1"}, Gateways: []string{"gw-0009"}}, "plant-2", "gw-0001", false, "neither site plant-2 nor gateway gw-0001 listed"},
		{"listed by gateway, site elsewhere", &Rollout{Percent: 100, Sites: []string{"plant-1"}, Gateways: []string{"gw-0001"}}, "plant-2", "gw-0001", true, ""},
		{"listed but cohort too high", &Rollout{Percent: 20, Sites: []string{"plant-1"}}, "plant-1", "gw-0002", false, "rollout at 20 %, this gateway's cohort is 28"},
		{"not before in the future", &Rollout{Percent: 100, NotBefore: now.Add(time.Hour)}, "plant-1", "gw-0001", false, "not before 2026-06-01T13:00:00Z"},
		{"not before now", &Rollout{Percent: 100, NotBefore: now}, "plant-1", "gw-0001", true, ""},
		{"not before passed", &Rollout{Percent: 100, NotBefore: now.Add(-time.Hour)}, "plant-1", "gw-0001", true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ok, why := tt.r.Admits(tt.site, tt.id, now)
			if ok != tt.ok || why != tt.why {
				t.Errorf("Admits(%q, %q) = %v, %q; want %v, %q", tt.site, tt.id, ok, why, tt.ok, tt.why)
			}
		})
	}
}

func TestSelectRollout(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	mk := func(name, version string, r *Rollout) Target {
		return Target{Name: name, Meta: Meta{Hardware: []string{"hw"}, Version: version, Rollout: r}}
	}
	// plant-1/gw-0002 has cohort 28.
	targets := []Target{
		mk("fw-2.0.0", "2.0.0", nil),
		mk("fw-2.1.0", "2.1.0", &Rollout{Percent: 50}),
		mk("fw-2.2.0", "2.2.0", &Rollout{Percent: 10}),
	}
	got, ok, _, deferred := SelectRollout(targets, "hw", "1.0.0", 0, "plant-1", "gw-0002", now)
	if !ok || got.Name != "fw-2.1.0" {
		t.Errorf("SelectRollout = %s, %v; want fw-2.1.0 (2.2.0 at 10 %% keeps back cohort 28)", got.Name, ok)
	}
	if deferred == nil || deferred.String() != "fw-2.2.0 (2.2.0): rollout at 10 %, this gateway's cohort is 28" {
		t.Errorf("deferred = %v, want fw-2.2.0 kept back at 10 %%", deferred)
	}
	_, ok, reason, deferred := SelectRollout(targets, "hw", "2.1.0", 0, "plant-1", "gw-0002", now)
	if ok || deferred == nil || deferred.Target.Name != "fw-2.2.0" || !strings.Contains(reason, "kept back by its rollout") {
		t.Errorf("SelectRollout(installed 2.1.0) = %v, %q, %v; want nothing, kept back", ok, reason, deferred)
	}
	got, ok, _, deferred = SelectRollout(targets[:2], "hw", "1.0.0", 0, "plant-1", "gw-0002", now)
	if !ok || got.Name != "fw-2.1.0" || deferred != nil {
		t.Errorf("SelectRollout(admitted newest) = %s, %v, %v; want fw-2.1.0, nothing deferred", got.Name, ok, deferred)
	}
	_, ok, reason, _ = SelectRollout(targets, "other", "1.0.0", 0, "plant-1", "gw-0002", now)
	if ok || !strings.Contains(reason, `no target for hardware "other"`) {
		t.Errorf("SelectRollout(other hardware) = %v, %q", ok, reason)
	}
}
