// SPDX-License-Identifier: Apache-2.0

package store

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fieldgate/fieldgate/daemon/advisory"
)

// TestVerdictsRoundTripAndRestart: verdicts are stored per device,
// advisory and CVE, replaced by a newer one with the same key, removed,
// and still there after the store is closed and opened again.
func TestVerdictsRoundTripAndRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	whole := advisory.Verdict{Device: "plc1", Advisory: "ICSA-24-011-01", Kind: advisory.VerdictMitigated, Control: "port 502 closed",
		Revision: "1.0.0", Basis: []advisory.Basis{{CVE: "CVE-2024-0001", Status: advisory.Affected, FixedBy: "2.1"}}, Actor: "console uid=1000 (ops)", At: at, Note: "n"}
	cve := advisory.Verdict{Device: "plc1", Advisory: "ICSA-24-011-01", CVE: "CVE-2024-0001", Kind: advisory.VerdictNotAffected, Justification: "component_not_present", At: at}
	rtu := advisory.Verdict{Device: "rtu-3", Advisory: "ICSA-24-011-01", Kind: advisory.VerdictRiskAccepted, Until: "2027-01-31", At: at}
	// plc10 sorts after plc1 but must not show up in plc1's list.
	plc10 := rtu
	plc10.Device = "plc10"
	err = s.Update(func(tx *Tx) error {
		for _, v := range []advisory.Verdict{rtu, cve, whole, plc10} {
			if _, err := tx.PutVerdict(v); !errors.Is(err, ErrNotFound) {
				t.Errorf("PutVerdict(new %s) = %v, want %v (nothing replaced)", v.Key(), err, ErrNotFound)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	newer := cve
	newer.Justification = "vulnerable_code_not_present"
	err = s.Update(func(tx *Tx) error {
		old, err := tx.PutVerdict(newer)
		if err != nil || old.Justification != "component_not_present" {
			t.Errorf("PutVerdict(replacing) = %+v, %v; want the old verdict", old, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Verdicts("plc1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]advisory.Verdict{whole, newer}, got); diff != "" {
		t.Errorf("Verdicts(plc1) after reopen (-want +got):\n%s", diff)
	}
	all, _ := s.Verdicts("")
	if len(all) != 4 {
		t.Errorf("Verdicts(\"\") = %d verdicts, want 4", len(all))
	}
	err = s.Update(func(tx *Tx) error {
		if v, err := tx.DeleteVerdict("plc1", "ICSA-24-011-01", ""); err != nil || v.Control != "port 502 closed" {
			t.Errorf("DeleteVerdict(whole advisory) = %+v, %v; want the verdict", v, err)
		}
		if _, err := tx.DeleteVerdict("plc1", "ICSA-24-011-01", ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("DeleteVerdict(again) = %v, want %v", err, ErrNotFound)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Verdicts("plc1"); len(got) != 1 || got[0].CVE != cve.CVE {
		t.Errorf("Verdicts(plc1) after delete = %+v, want only the CVE verdict", got)
	}
}

func TestVerdictsEmptyStore(t *testing.T) {
	s := openTest(t)
	if v, err := s.Verdicts(""); err != nil || len(v) != 0 {
		t.Errorf("Verdicts on a new store = %v, %v; want none", v, err)
	}
	err := s.Update(func(tx *Tx) error {
		_, err := tx.DeleteVerdict("plc1", "A", "")
		return err
	})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteVerdict on a new store = %v, want %v", err, ErrNotFound)
	}
}
