// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
)

// TestPatchLoop runs `fieldgate-demo patch-loop` with the real binaries and
// checks each step from outside: the advisories and status documents of
// the production gateway, its audit log, and the simulated devices' own
// state.
func TestPatchLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs every binary")
	}
	bin := buildAll(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	work := filepath.Join(t.TempDir(), "work")
	res, err := PatchLoop(ctx, Options{Bin: bin, Work: work, Out: output(t)})
	if err != nil {
		t.Fatalf("PatchLoop = %v", err)
	}
	t.Logf("patch loop took %s", res.Elapsed.Round(time.Millisecond))

	// 2. The advisory arrived and matched the device, linked to the update.
	if st := plCVEStatus(res.Matched, plDevice); st != "affected" {
		t.Errorf("before the update, %s %s on %s is %q, want affected", plAdvisory, plCVE, plDevice, st)
	}
	if fix := plFixedByTarget(res.Matched, plDevice); fix != "acme-io16/fw-"+newVersion+".bin" {
		t.Errorf("before the update, the fixing target is %q, want the signed %s image", fix, newVersion)
	}
	// The job waited, untested, and a local approval was refused.
	if !strings.Contains(res.Untested, "staging test") || !strings.Contains(res.Untested, plStagingKey) || !strings.Contains(res.Untested, hardware) {
		t.Errorf("untested job's waiting reason = %q, want a staging test from %s on %s", res.Untested, plStagingKey, hardware)
	}
	if !strings.Contains(res.Refused, "refused") {
		t.Errorf("fieldgatectl approve before the test printed %q, want a refusal", res.Refused)
	}

	// 4. The device runs the update: the gateway says so, and so does the
	// device itself.
	var found bool
	for _, d := range res.Final.Devices {
		if d.ID == plDevice {
			found = true
			if d.Version != newVersion || d.State != "idle" {
				t.Errorf("gw1 status: %s version %q state %q, want %s idle", d.ID, d.Version, d.State, newVersion)
			}
		}
	}
	if !found {
		t.Errorf("gw1 status lists no device %s", plDevice)
	}
	if len(res.Final.Jobs) != 1 || res.Final.Jobs[0].Phase != "succeeded" {
		t.Errorf("gw1 jobs = %+v, want one succeeded", res.Final.Jobs)
	}
	if res.Running != newVersion {
		t.Errorf("the simulated %s runs %q by its own state, want %s", plDevice, res.Running, newVersion)
	}
	if v, err := simRunning(filepath.Join(work, "sim", plTwin)); err != nil || v != newVersion {
		t.Errorf("the staging twin %s runs %q (%v), want %s", plTwin, v, err, newVersion)
	}
	// The advisory shows fixed.
	if st := plCVEStatus(res.Fixed, plDevice); st != "fixed" {
		t.Errorf("after the update, %s %s on %s is %q, want fixed", plAdvisory, plCVE, plDevice, st)
	}

	// The audit log, in order: matched, approval refused for want of a
	// test, the report imported, approved, committed, fixed.
	want := []string{"advisory-matched", "approval-refused", "test-report-imported", "approval", "step-committed", "advisory-fixed"}
	var got []string
	next := 0
	for _, ev := range res.Audit {
		if next < len(want) && ev.Type == want[next] {
			got = append(got, ev.Type)
			next++
			if ev.Type == "approval-refused" {
				if r := fmt.Sprint(ev.Detail["reason"]); !strings.Contains(r, "no test report") {
					t.Errorf("approval-refused reason = %q, want it to name the missing test report", r)
				}
			}
		}
		if ev.Type == "approval" && next <= 1 {
			t.Errorf("an approval was recorded before the refusal: %+v", ev)
		}
	}
	if next < len(want) {
		var types []string
		for _, ev := range res.Audit {
			types = append(types, ev.Type)
		}
		t.Errorf("audit log has %v of %v in order; all events: %v", got, want, types)
	}
}

// plFixedByTarget is the fixing target of the demo CVE for dev.
func plFixedByTarget(a api.Advisories, dev string) string {
	for _, d := range a.Devices {
		for _, m := range d.Matches {
			for _, c := range m.CVEs {
				if d.Device == dev && m.Advisory == plAdvisory && c.CVE == plCVE {
					return c.FixedByTarget
				}
			}
		}
	}
	return ""
}
