// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/devices/devicetest"
)

func policy(p string) func(*config.Config) {
	return func(c *config.Config) { c.Groups[0].Approval = p }
}

func approvalFor(r *rig, t *testing.T, kind string) Approval {
	j := r.onlyJob(t)
	var devs []string
	for _, s := range j.Devices {
		devs = append(devs, s.Device)
	}
	return Approval{Job: j.ID, Kind: kind, Actor: "tester", SHA256: j.SHA256, Devices: devs, Window: j.Window}
}

func TestDualApprovalNeedsBothParts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRigWith(t, false, policy(config.ApprovalDual), "a")
		r.src.add(t, "fw", "2.0.0", 1, "hw1", devicetest.Image("2.0.0", 300))
		ctx := context.Background()
		r.cycle(ctx)
		if j := r.onlyJob(t); j.Phase != jobAwaitingApproval {
			t.Fatalf("job phase = %q, want %q", j.Phase, jobAwaitingApproval)
		}
		if err := r.d.Approve(approvalFor(r, t, ApprovalRemote)); err != nil {
			t.Fatalf("remote Approve = %v", err)
		}
		r.settle(ctx)
		if j := r.onlyJob(t); j.Phase != jobAwaitingApproval || slices.Contains(r.devs["a"].Calls(), "transfer") {
			t.Fatalf("after the remote half only: job %q, device calls %v; want still awaiting approval, no transfer", j.Phase, r.devs["a"].Calls())
		}
		if _, err := r.d.ApproveLocal("", "button"); err != nil {
			t.Fatalf("ApproveLocal = %v", err)
		}
		r.settle(ctx)
		if j := r.onlyJob(t); j.Phase != jobSucceeded {
			t.Errorf("after both approvals job phase = %q (%s), want %q", j.Phase, j.Reason, jobSucceeded)
		}
	})
}

func TestApprovalBindingIsChecked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRigWith(t, false, policy(config.ApprovalRemote), "a", "b")
		r.src.add(t, "fw", "2.0.0", 1, "hw1", devicetest.Image("2.0.0", 300))
		ctx := context.Background()
		r.cycle(ctx)
		good := approvalFor(r, t, ApprovalRemote)
		for name, mut := range map[string]func(*Approval){
			"other image":   func(a *Approval) { a.SHA256 = "00" + a.SHA256[2:] },
			"other devices": func(a *Approval) { a.Devices = []string{"a"} },
			"other window":  func(a *Approval) { a.Window = "elsewhen" },
			"expired":       func(a *Approval) { a.Expires = time.Now().Add(-time.Minute) },
			"unknown job":   func(a *Approval) { a.Job = "nope" },
		} {
			a := good
			mut(&a)
			if err := r.d.Approve(a); !errors.Is(err, ErrRefused) {
				t.Errorf("Approve(%s) = %v, want ErrRefused", name, err)
			}
		}
		r.settle(ctx)
		if j := r.onlyJob(t); j.Phase != jobAwaitingApproval || len(j.Approvals) != 0 {
			t.Errorf("after refused approvals: job %q with %d approvals, want awaiting-approval and none", j.Phase, len(j.Approvals))
		}
		if err := r.d.Approve(good); err != nil {
			t.Fatalf("Approve(good) = %v", err)
		}
		r.settle(ctx)
		if j := r.onlyJob(t); j.Phase != jobSucceeded {
			t.Errorf("after a good approval job = %q, want %q", j.Phase, jobSucceeded)
		}
	})
}

func TestExpiredApprovalHoldsTheJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := time.Now()
		r := newRigWith(t, false, policy(config.ApprovalLocal), "a")
		r.setNow(func() time.Time { return now })
		r.src.add(t, "fw", "2.0.0", 1, "hw1", devicetest.Image("2.0.0", 300))
		ctx := context.Background()
		r.d.inventory(ctx)
		r.d.refresh(ctx)
		a := approvalFor(r, t, ApprovalLocal)
		a.Expires = now.Add(time.Minute)
		if err := r.d.Approve(a); err != nil {
			t.Fatal(err)
		}
		now = now.Add(2 * time.Minute) // the approval lapses before the scheduler runs
		r.settle(ctx)
		if slices.Contains(r.devs["a"].Calls(), "transfer") {
			t.Errorf("an expired approval let the push start")
		}
	})
}

func TestInterlockHoldsThePush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a")
		r.devs["a"].Running = true
		r.src.add(t, "fw", "2.0.0", 1, "hw1", devicetest.Image("2.0.0", 300))
		ctx := context.Background()
		r.cycle(ctx)
		if slices.Contains(r.devs["a"].Calls(), "transfer") {
			t.Fatal("pushed while the interlock said the process runs")
		}
		if doc := r.deviceDoc(t, "a"); doc.State != "blocked-by-interlock" {
			t.Errorf("device state = %q, want blocked-by-interlock", doc.State)
		}
		r.devs["a"].Running = false
		r.settle(ctx)
		if j := r.onlyJob(t); j.Phase != jobSucceeded {
			t.Errorf("after the interlock cleared job = %q, want %q", j.Phase, jobSucceeded)
		}
	})
}

func TestSoakFailureRollsBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRigWith(t, false, func(c *config.Config) { c.Groups[0].Soak = 50 * time.Millisecond }, "a")
		r.src.add(t, "fw", "2.0.0", 1, "hw1", devicetest.Image("2.0.0", 300))
		ctx := context.Background()
		r.d.inventory(ctx)
		r.d.refresh(ctx)
		// Break the device's health once it runs the new image: soak must catch it.
		r.devs["a"].BootFail = ""
		go func() {
			for !slices.Contains(r.devs["a"].Calls(), "activate") {
				time.Sleep(time.Millisecond)
			}
			r.devs["a"].SetUnhealthy(true)
		}()
		r.settle(ctx)
		j := r.onlyJob(t)
		if j.Devices[0].Phase != stepRolledBack {
			t.Errorf("step = %q (%s), want rolled-back after a failed soak", j.Devices[0].Phase, j.Devices[0].Error)
		}
	})
}

func TestEmergencyStopStartsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a")
		r.src.add(t, "fw", "2.0.0", 1, "hw1", devicetest.Image("2.0.0", 300))
		if err := r.d.Stop("console"); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		r.cycle(ctx)
		if slices.Contains(r.devs["a"].Calls(), "transfer") {
			t.Fatal("a step started during an emergency stop")
		}
		if got := r.d.overallState(); got != StateStopped {
			t.Errorf("overallState() = %q, want %q", got, StateStopped)
		}
		r.d.Resume("console")
		r.settle(ctx)
		if j := r.onlyJob(t); j.Phase != jobSucceeded {
			t.Errorf("after resume job = %q, want %q", j.Phase, jobSucceeded)
		}
	})
}

func TestCancelSkipsPendingDevices(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, true, "a", "b")
		r.src.add(t, "fw", "2.0.0", 1, "hw1", devicetest.Image("2.0.0", 300))
		ctx := context.Background()
		r.cycle(ctx)
		j := r.onlyJob(t)
		if err := r.d.Cancel(j.ID, "console"); err != nil {
			t.Fatal(err)
		}
		j = r.onlyJob(t)
		if j.Phase != jobCancelled || j.Devices[0].Phase != stepSkipped || j.Devices[1].Phase != stepSkipped {
			t.Errorf("after Cancel: job %q, steps %q/%q; want cancelled, skipped, skipped", j.Phase, j.Devices[0].Phase, j.Devices[1].Phase)
		}
		if err := r.d.Cancel(j.ID, "console"); !errors.Is(err, ErrRefused) {
			t.Errorf("second Cancel = %v, want ErrRefused", err)
		}
	})
}

func TestSegmentNeverRunsTwoDevicesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRigWith(t, false, func(c *config.Config) {
			c.Gateway.MaxParallel = 4
			c.Groups[0].Canary = 1
			for i := range c.Devices {
				c.Devices[i].Segment = "rs485-1"
			}
		}, "a", "b", "c")
		r.src.add(t, "fw", "2.0.0", 1, "hw1", devicetest.Image("2.0.0", 300))
		ctx := context.Background()
		r.d.inventory(ctx)
		r.d.refresh(ctx)
		r.d.m.runJobs(ctx) // canary a starts
		r.d.m.workers.Wait()
		r.d.m.runJobs(ctx) // b and c are eligible, on one segment: only one may start
		if n := r.d.m.runningCount(); n > 1 {
			t.Errorf("runningCount() = %d on a single segment, want at most 1", n)
		}
		r.d.m.workers.Wait()
		r.settle(ctx)
		if j := r.onlyJob(t); j.Phase != jobSucceeded {
			t.Errorf("job = %q, want %q", j.Phase, jobSucceeded)
		}
	})
}

func TestMismatchedDeviceGetsNoUpdate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a")
		r.devs["a"].HardwareID = "someone-else"
		r.src.add(t, "fw", "2.0.0", 1, "hw1", devicetest.Image("2.0.0", 300))
		r.cycle(context.Background())
		if jobs, _ := r.st.Jobs(); len(jobs) != 0 {
			t.Errorf("a device reporting another hardware id got %d job(s), want none", len(jobs))
		}
		if !r.d.health.has(condMismatch) {
			t.Errorf("health = %v, want %s", r.d.health.list(), condMismatch)
		}
		if doc := r.deviceDoc(t, "a"); doc.State != "mismatch" {
			t.Errorf("device state = %q, want mismatch", doc.State)
		}
	})
}

func TestUnidentifiedDeviceGetsNoUpdate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a")
		r.devs["a"].Unreachable = true
		r.src.add(t, "fw", "2.0.0", 1, "hw1", devicetest.Image("2.0.0", 300))
		r.cycle(context.Background())
		if jobs, _ := r.st.Jobs(); len(jobs) != 0 {
			t.Errorf("a device that never answered got %d job(s), want none: its version is unknown", len(jobs))
		}
	})
}

func TestRollbackCommandRestoresAndHoldsTheTarget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a")
		r.src.add(t, "fw", "2.0.0", 5, "hw1", devicetest.Image("2.0.0", 300))
		ctx := context.Background()
		r.cycle(ctx)
		if v, _ := r.devs["a"].Identify(ctx); v.Version != "2.0.0" {
			t.Fatalf("device runs %q, want 2.0.0 before the rollback", v.Version)
		}
		if _, err := r.d.Rollback([]string{"nope"}, "ops", "c1"); !errors.Is(err, ErrRefused) {
			t.Errorf("Rollback(unknown device) = %v, want ErrRefused", err)
		}
		ids, err := r.d.Rollback([]string{"a"}, "key ops", "c2")
		if err != nil || len(ids) != 1 {
			t.Fatalf("Rollback(a) = %v, %v", ids, err)
		}
		r.settle(ctx)
		j, _ := r.st.Job(ids[0])
		if j.Phase != jobSucceeded {
			t.Fatalf("recovery job = %q (%+v), want succeeded", j.Phase, j.Devices)
		}
		if v, _ := r.devs["a"].Identify(ctx); v.Version != "1.0.0" {
			t.Errorf("device runs %q after the rollback, want 1.0.0", v.Version)
		}
		rec, _ := r.st.Device("a")
		if rec.Version != "1.0.0" || rec.Floor != 5 {
			t.Errorf("record = version %q floor %d, want 1.0.0 and the floor kept at 5", rec.Version, rec.Floor)
		}
		// The rolled-back target is held: the next refresh does not offer it again.
		r.cycle(ctx)
		if jobs, _ := r.st.Jobs(); len(jobs) != 2 {
			t.Errorf("after another cycle there are %d jobs, want 2 (the update and the recovery)", len(jobs))
		}
		// A newer release is offered again.
		r.src.add(t, "fw3", "3.0.0", 6, "hw1", devicetest.Image("3.0.0", 300))
		r.cycle(ctx)
		if v, _ := r.devs["a"].Identify(ctx); v.Version != "3.0.0" {
			t.Errorf("device runs %q, want 3.0.0 once a newer release appears", v.Version)
		}
	})
}
