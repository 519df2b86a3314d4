// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/devices/devicetest"
	"github.com/fieldgate/fieldgate/tuf"
)

// TestRolloutFollowsCohorts: ten gateways see the same target at 50 %;
// exactly those whose cohort is below 50 stage it.
func TestRolloutFollowsCohorts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		admitted := 0
		for i := range 10 {
			id := fmt.Sprintf("gw-%d", i)
			r := newRigWith(t, true, func(c *config.Config) { c.Gateway.ID = id }, "a")
			r.src.add(t, "fw-2.0.0", "2.0.0", 5, "hw1", devicetest.Image("2.0.0", 300))
			r.src.targets[0].Meta.Rollout = &tuf.Rollout{Percent: 50}
			ctx := context.Background()
			r.d.inventory(ctx)
			snap, _ := r.src.Refresh(ctx)
			cohort := tuf.Cohort("s", id)
			want := 0
			if cohort < 50 {
				want = 1
				admitted++
			}
			if n := r.d.stage(ctx, snap); n != want {
				t.Errorf("gateway %s (cohort %d): stage at 50 %% = %d jobs, want %d", id, cohort, n, want)
			}
			if got := r.d.gatewayDoc().Cohort; got != cohort {
				t.Errorf("gateway %s: document cohort = %d, want %d", id, got, cohort)
			}
		}
		if admitted == 0 || admitted == 10 {
			t.Errorf("%d of 10 gateways admitted at 50 %%: the ids do not test both sides", admitted)
		}
	})
}

// TestRolloutWidens: below the gateway's cohort the target is not staged
// and the device document says why (an older target without a rollout is
// offered meanwhile); widened past the cohort, it is staged and installed.
func TestRolloutWidens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a")
		cohort := tuf.Cohort("s", "gw")
		r.src.add(t, "fw-2.0.0", "2.0.0", 5, "hw1", devicetest.Image("2.0.0", 300))
		r.src.targets[0].Meta.Rollout = &tuf.Rollout{Percent: cohort}
		ctx := context.Background()
		r.cycle(ctx)
		if jobs, _ := r.st.Jobs(); len(jobs) != 0 {
			t.Fatalf("at %d %% (cohort %d): %d jobs, want none", cohort, cohort, len(jobs))
		}
		doc := r.deviceDoc(t, "a")
		if want := fmt.Sprintf("fw-2.0.0 (2.0.0): rollout at %d %%, this gateway's cohort is %d", cohort, cohort); cohort > 0 && doc.Rollout != want {
			t.Errorf("device document rollout = %q, want %q", doc.Rollout, want)
		}
		if doc.State != "idle" {
			t.Errorf("device state = %q, want idle", doc.State)
		}

		// An older target for everyone is taken meanwhile.
		r.src.add(t, "fw-1.5.0", "1.5.0", 5, "hw1", devicetest.Image("1.5.0", 300))
		r.cycle(ctx)
		if rec, _ := r.st.Device("a"); rec.Version != "1.5.0" {
			t.Fatalf("version after the older target = %q, want 1.5.0", rec.Version)
		}
		if doc := r.deviceDoc(t, "a"); !strings.Contains(doc.Rollout, "fw-2.0.0") {
			t.Errorf("device document rollout = %q, want fw-2.0.0 kept back", doc.Rollout)
		}

		r.src.targets[0].Meta.Rollout = &tuf.Rollout{Percent: min(cohort+1, 100)}
		r.cycle(ctx)
		if rec, _ := r.st.Device("a"); rec.Version != "2.0.0" {
			t.Errorf("version after widening past the cohort = %q, want 2.0.0", rec.Version)
		}
		if doc := r.deviceDoc(t, "a"); doc.Rollout != "" {
			t.Errorf("device document rollout after widening = %q, want none", doc.Rollout)
		}
	})
}

// gated holds Transfer until release is closed, so that a test can change
// the world while a step runs.
type gated struct {
	*devicetest.Device
	release chan struct{}
}

func (g gated) Transfer(ctx context.Context, img devices.Image, r io.Reader, p devices.Progress) error {
	<-g.release
	return g.Device.Transfer(ctx, img, r, p)
}

// TestRolloutHaltKeepsPendingSteps: percent 0 while device a transfers and
// device b waits: a's step runs to committed, b's does not start (blocked,
// "rollout halted") until the rollout is widened again.
func TestRolloutHaltKeepsPendingSteps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRigWith(t, false, func(c *config.Config) {
			c.Gateway.MaxParallel = 1 // b waits while a updates
			c.Groups[0].Canary = 0
		}, "a", "b")
		release := make(chan struct{})
		r.d.m.devs["a"] = gated{r.devs["a"], release}
		r.src.add(t, "fw-2.0.0", "2.0.0", 5, "hw1", devicetest.Image("2.0.0", 300))
		r.src.targets[0].Meta.Rollout = &tuf.Rollout{Percent: 100}
		ctx := context.Background()
		r.d.inventory(ctx)
		r.d.refresh(ctx)
		r.d.m.runJobs(ctx)
		synctest.Wait() // a's worker is in transfer, held by the gate
		j := r.onlyJob(t)
		if j.Devices[0].Phase != stepTransfer || j.Devices[1].Phase != stepPending {
			t.Fatalf("steps = %s, %s; want transfer, pending", j.Devices[0].Phase, j.Devices[1].Phase)
		}

		r.src.targets[0].Meta.Rollout = &tuf.Rollout{Percent: 0}
		r.d.refresh(ctx)
		r.d.m.runJobs(ctx)
		close(release)
		r.settle(ctx)
		j = r.onlyJob(t)
		if j.Devices[0].Phase != stepCommitted {
			t.Errorf("running step after the halt = %s (%s), want committed", j.Devices[0].Phase, j.Devices[0].Error)
		}
		if j.Devices[1].Phase != stepPending || jobTerminal(j.Phase) {
			t.Fatalf("pending step after the halt = %s, job %s; want pending, open", j.Devices[1].Phase, j.Phase)
		}
		if n := count(r.devs["b"].Calls(), "transfer"); n != 0 {
			t.Errorf("b transferred %d times while halted, want 0", n)
		}
		const halted = "rollout halted: rollout at 0 % (halted)"
		if doc := r.d.rep.jobDoc(j, ""); doc.Steps[1].Blocked != halted || doc.Waiting != halted {
			t.Errorf("job document: step b blocked %q, job waiting %q; want %q", doc.Steps[1].Blocked, doc.Waiting, halted)
		}
		if doc := r.deviceDoc(t, "b"); doc.Rollout != halted || doc.State != "update-pending" {
			t.Errorf("device b: state %q rollout %q, want update-pending, %q", doc.State, doc.Rollout, halted)
		}

		r.src.targets[0].Meta.Rollout = &tuf.Rollout{Percent: 100}
		r.cycle(ctx)
		j = r.onlyJob(t)
		if j.Devices[1].Phase != stepCommitted || j.Phase != jobSucceeded {
			t.Errorf("after widening again: step b %s, job %s; want committed, succeeded", j.Devices[1].Phase, j.Phase)
		}
		if doc := r.deviceDoc(t, "b"); doc.Rollout != "" {
			t.Errorf("device b rollout after widening = %q, want none", doc.Rollout)
		}
	})
}
