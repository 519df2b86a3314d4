// SPDX-License-Identifier: Apache-2.0

package testreport_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fieldgate/fieldgate/daemon/testreport"
)

var (
	t0      = time.Date(2026, 5, 1, 22, 0, 0, 0, time.UTC)
	sha     = strings.Repeat("ab12", 16)
	bench1  = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	other   = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
	keys    = map[string]ed25519.PublicKey{"bench-1": bench1.Public().(ed25519.PublicKey), "other": other.Public().(ed25519.PublicKey)}
	trusted = []string{"bench-1"}
)

func report() testreport.Report {
	return testreport.Report{
		ID: "staging-gw.2.4.1-ab12ab12-io.io-1", Site: "lab", Gateway: "staging-gw",
		Target: "acme-io16/2.4.1/fw.bin", SHA256: sha, Length: 4096, Version: "2.4.1",
		HardwareID: "acme-io16-rev3", Device: "io-1",
		Steps: []testreport.Step{
			{Phase: "pending", Result: "ok", At: t0},
			{Phase: "transfer", Result: "retry", At: t0.Add(time.Second), Error: "timeout: no ACK after block 3"},
			{Phase: "transfer", Result: "ok", At: t0.Add(2 * time.Second)},
			{Phase: "activate", Result: "ok", At: t0.Add(3 * time.Second)},
			{Phase: "verify", Result: "ok", At: t0.Add(4 * time.Second)},
			{Phase: "soak", Result: "ok", At: t0.Add(5 * time.Second)},
			{Phase: "committed", Result: "ok", At: t0.Add(65 * time.Second)},
		},
		VersionReadBack: "2.4.1", ImageSHA256ReadBack: sha, Soak: time.Minute,
		Started: t0, Finished: t0.Add(65 * time.Second), Expires: t0.Add(90 * 24 * time.Hour),
	}
}

func sign(t *testing.T, r testreport.Report, key string, priv ed25519.PrivateKey) []byte {
	t.Helper()
	b, err := testreport.Sign(r, key, priv)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	r := report()
	got, err := testreport.Parse(sign(t, r, "bench-1", bench1), keys, t0.Add(time.Hour))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	r.Format, r.Key, r.Sig = testreport.Format, "bench-1", got.Sig
	if diff := cmp.Diff(r, got); diff != "" {
		t.Errorf("Parse(Sign(r)) (-want +got):\n%s", diff)
	}
	if err := got.Covers(sha, "2.4.1", "acme-io16-rev3", trusted); err != nil {
		t.Errorf("Covers(own sha, version, hardware, key) = %v, want nil", err)
	}
}

// TestAttacks is the attack list: each report must be refused, by
// Parse or by Covers, and the test fails if that check is removed.
func TestAttacks(t *testing.T) {
	now := t0.Add(time.Hour)
	tests := []struct {
		name    string
		payload func(t *testing.T) []byte
		reason  string // Parse's reason, or "" when Parse accepts and Covers must refuse
		covers  string // a part of Covers' error
	}{
		{"another sha256", func(t *testing.T) []byte {
			r := report()
			r.SHA256 = strings.Repeat("cd34", 16)
			return sign(t, r, "bench-1", bench1)
		}, "", "is for sha256 cd34"},
		{"another hardware id", func(t *testing.T) []byte {
			r := report()
			r.HardwareID = "acme-io16-rev2"
			return sign(t, r, "bench-1", bench1)
		}, "", "is for hardware acme-io16-rev2"},
		{"another version", func(t *testing.T) []byte {
			r := report()
			r.Version, r.VersionReadBack = "2.4.0", "2.4.0"
			return sign(t, r, "bench-1", bench1)
		}, "", "is for version 2.4.0"},
		{"untrusted key known to the gateway", func(t *testing.T) []byte {
			return sign(t, report(), "other", other)
		}, "", "signed by staging key other, not by bench-1"},
		{"unknown key", func(t *testing.T) []byte {
			return sign(t, report(), "mallory", other)
		}, "unknown-key", ""},
		{"key id of a trusted key, signed by another", func(t *testing.T) []byte {
			return sign(t, report(), "bench-1", other)
		}, "bad-signature", ""},
		{"expired", func(t *testing.T) []byte {
			r := report()
			r.Expires = now
			return sign(t, r, "bench-1", bench1)
		}, "expired", ""},
		{"rolled back", func(t *testing.T) []byte {
			r := report()
			r.Steps = append(r.Steps[:4:4], testreport.Step{Phase: "rollback", Result: "ok", At: t0.Add(4 * time.Second), Error: "verify: wrong version"},
				testreport.Step{Phase: "committed", Result: "ok", At: t0.Add(9 * time.Second)})
			return sign(t, r, "bench-1", bench1)
		}, "", "phase rollback"},
		{"a failed phase", func(t *testing.T) []byte {
			r := report()
			r.Steps[4].Result = "failed"
			return sign(t, r, "bench-1", bench1)
		}, "", "phase verify failed"},
		{"not committed", func(t *testing.T) []byte {
			r := report()
			r.Steps = r.Steps[:6]
			return sign(t, r, "bench-1", bench1)
		}, "", "did not commit"},
		{"read back another version", func(t *testing.T) []byte {
			r := report()
			r.VersionReadBack = "2.4.0"
			return sign(t, r, "bench-1", bench1)
		}, "", `read back version "2.4.0"`},
		{"sha256 tampered after signing", func(t *testing.T) []byte {
			return bytes.Replace(sign(t, report(), "bench-1", bench1), []byte(sha), []byte(strings.Repeat("cd34", 16)), 1)
		}, "bad-signature", ""},
		{"hardware tampered after signing", func(t *testing.T) []byte {
			return bytes.Replace(sign(t, report(), "bench-1", bench1), []byte(`"acme-io16-rev3"`), []byte(`"acme-io16-rev2"`), 1)
		}, "bad-signature", ""},
		{"expiry extended after signing", func(t *testing.T) []byte {
			return bytes.Replace(sign(t, report(), "bench-1", bench1), []byte(`"expires": "2026-07-30`), []byte(`"expires": "2027-07-30`), 1)
		}, "bad-signature", ""},
		{"step result tampered after signing", func(t *testing.T) []byte {
			r := report()
			r.Steps[4].Result = "failed"
			return bytes.Replace(sign(t, r, "bench-1", bench1), []byte(`"failed"`), []byte(`"ok"`), 1)
		}, "bad-signature", ""},
		{"duplicate key hides a value", func(t *testing.T) []byte {
			return bytes.Replace(sign(t, report(), "bench-1", bench1), []byte(`"sha256": `), []byte(`"sha256": "`+strings.Repeat("cd34", 16)+`", "sha256": `), 1)
		}, "malformed", ""},
		{"unknown field", func(t *testing.T) []byte {
			return bytes.Replace(sign(t, report(), "bench-1", bench1), []byte(`"sha256": `), []byte(`"approved": true, "sha256": `), 1)
		}, "malformed", ""},
		{"trailing data", func(t *testing.T) []byte {
			return append(sign(t, report(), "bench-1", bench1), []byte(`{}`)...)
		}, "malformed", ""},
		{"too large", func(t *testing.T) []byte {
			return append(sign(t, report(), "bench-1", bench1), bytes.Repeat([]byte(" "), testreport.MaxSize)...)
		}, "too-large", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := testreport.Parse(tt.payload(t), keys, now)
			if tt.reason != "" {
				if err == nil || testreport.Reason(err) != tt.reason {
					t.Fatalf("Parse = %v (reason %q), want reason %q", err, testreport.Reason(err), tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			err = r.Covers(sha, "2.4.1", "acme-io16-rev3", trusted)
			if err == nil || !strings.Contains(err.Error(), tt.covers) {
				t.Errorf("Covers = %v, want an error with %q", err, tt.covers)
			}
		})
	}
}

// TestReplay: a report parsed twice is the same report, with the same id;
// it proves nothing more the second time and nothing else than the first.
func TestReplay(t *testing.T) {
	b := sign(t, report(), "bench-1", bench1)
	a, err1 := testreport.Parse(b, keys, t0)
	c, err2 := testreport.Parse(b, keys, t0.Add(24*time.Hour))
	if err1 != nil || err2 != nil {
		t.Fatalf("Parse = %v, %v", err1, err2)
	}
	if diff := cmp.Diff(a, c); diff != "" {
		t.Errorf("Parse twice (-first +second):\n%s", diff)
	}
	if _, err := testreport.Parse(b, keys, t0.Add(91*24*time.Hour)); testreport.Reason(err) != "expired" {
		t.Errorf("Parse after expiry = %v, want expired", err)
	}
}

func TestSignRefuses(t *testing.T) {
	for name, mut := range map[string]func(*testreport.Report){
		"newline in target": func(r *testreport.Report) { r.Target = "a\nsha256=" + sha },
		"newline in error":  func(r *testreport.Report) { r.Steps[1].Error = "x\nkey=bench-1" },
		"upper-case sha":    func(r *testreport.Report) { r.SHA256 = strings.ToUpper(sha) },
		"unknown phase":     func(r *testreport.Report) { r.Steps[0].Phase = "approved" },
		"no steps":          func(r *testreport.Report) { r.Steps = nil },
		"expires before":    func(r *testreport.Report) { r.Expires = r.Finished },
	} {
		r := report()
		mut(&r)
		if _, err := testreport.Sign(r, "bench-1", bench1); err == nil {
			t.Errorf("Sign(%s) = nil error, want one", name)
		}
	}
}

// TestCanonical pins the signed bytes: another implementation must
// produce exactly these (docs/staging.md).
func TestCanonical(t *testing.T) {
	r := report()
	r.Format, r.Key = testreport.Format, "bench-1"
	r.Steps = r.Steps[5:]
	want := "fieldgate-test-report-v1\nid=staging-gw.2.4.1-ab12ab12-io.io-1\nsite=lab\ngateway=staging-gw\n" +
		"target=acme-io16/2.4.1/fw.bin\nsha256=" + sha + "\nlength=4096\nversion=2.4.1\nhardware_id=acme-io16-rev3\ndevice=io-1\nsteps=2\n" +
		"step=soak ok 2026-05-01T22:00:05Z \nstep=committed ok 2026-05-01T22:01:05Z \n" +
		"version_read_back=2.4.1\nimage_sha256_read_back=" + sha + "\nsoak_seconds=60\n" +
		"started=2026-05-01T22:00:00Z\nfinished=2026-05-01T22:01:05Z\nexpires=2026-07-30T22:00:00Z\nkey=bench-1\n"
	if got := string(r.Canonical()); got != want {
		t.Errorf("Canonical() (-want +got):\n%s", cmp.Diff(want, got))
	}
}

func TestDuplicateKeysNested(t *testing.T) {
	b := sign(t, report(), "bench-1", bench1)
	bad := bytes.Replace(b, []byte(`"phase": "pending",`), []byte(`"phase": "pending", "phase": "committed",`), 1)
	if _, err := testreport.Parse(bad, keys, t0); !errors.Is(err, testreport.ErrMalformed) {
		t.Errorf("Parse(step with a key twice) = %v, want malformed", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sign(&testing.T{}, report(), "bench-1", bench1))
	f.Add([]byte(`{"format":"fieldgate-test-report-v1","steps":[{"phase":"x"}]}`))
	f.Add([]byte(`{"a":{"b":[{"c":1},{"c":1}]},"a":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := testreport.Parse(b, keys, t0)
		if err != nil {
			if testreport.Reason(err) == "invalid" {
				t.Fatalf("Parse error without a reason: %v", err)
			}
			return
		}
		// A verified report signs again to bytes that verify to itself.
		again, err := testreport.Parse(sign(t, r, r.Key, map[string]ed25519.PrivateKey{"bench-1": bench1, "other": other}[r.Key]), keys, t0)
		if err != nil {
			t.Fatalf("re-signed report: %v", err)
		}
		if !bytes.Equal(again.Canonical(), r.Canonical()) {
			t.Fatalf("canonical bytes changed on re-signing")
		}
	})
}
