// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"

	"github.com/fieldgate/fieldgate/daemon/store"
	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/devices/devicetest"
	"github.com/fieldgate/fieldgate/tuf"
)

func count(calls []string, name string) int {
	n := 0
	for _, c := range calls {
		if c == name {
			n++
		}
	}
	return n
}

// TestFailureIsFlashedOnce: an update that does not boot is rolled back
// once and then held: refreshes stage nothing for it, cancel does not
// bring it back; a person's retry runs it exactly once more; a newer
// target lifts the hold.
func TestFailureIsFlashedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a")
		r.devs["a"].BootFail = "2.0.0"
		r.src.add(t, "fw-2.0.0", "2.0.0", 5, "hw1", devicetest.Image("2.0.0", 300))
		ctx := context.Background()
		for i := 0; i < 6; i++ {
			r.cycle(ctx)
		}
		j := r.onlyJob(t)
		if j.Devices[0].Phase != stepRolledBack {
			t.Fatalf("step = %s (%s), want rolled-back", j.Devices[0].Phase, j.Devices[0].Error)
		}
		// One transfer of the image, one of the backup.
		if n := count(r.devs["a"].Calls(), "transfer"); n != 2 {
			t.Errorf("transfers after 6 refreshes = %d, want 2 (image + rollback)", n)
		}
		rec, _ := r.st.Device("a")
		if !rec.HeldSHA(j.SHA256) || rec.RolledBack == "" {
			t.Errorf("record holds %v, rolled back %q; want the target held and the rollback recorded", rec.Holds, rec.RolledBack)
		}
		r.d.checkHealth()
		if !r.d.health.has(condHeld) || !r.d.health.has(condRollback) {
			t.Errorf("health = %v, want %s and %s", r.d.health.list(), condHeld, condRollback)
		}
		doc := r.deviceDoc(t, "a")
		if len(doc.Held) != 1 || doc.Held[0].SHA256 != j.SHA256 {
			t.Errorf("device document held = %+v, want the target", doc.Held)
		}

		// A person retries: exactly one more attempt.
		if _, err := r.d.Retry("a", "console", ""); err != nil {
			t.Fatalf("Retry: %v", err)
		}
		snap, _ := r.src.Refresh(ctx)
		r.d.stage(ctx, snap)
		r.settle(ctx)
		for i := 0; i < 3; i++ {
			r.cycle(ctx)
		}
		if n := count(r.devs["a"].Calls(), "transfer"); n != 4 {
			t.Errorf("transfers after a retry = %d, want 4", n)
		}
		if _, err := r.d.Retry("nobody", "console", ""); !errors.Is(err, ErrRefused) {
			t.Errorf("Retry(unknown) = %v, want ErrRefused", err)
		}

		// A newer target lifts the hold of the older one.
		r.devs["a"].BootFail = ""
		r.src.add(t, "fw-2.1.0", "2.1.0", 6, "hw1", devicetest.Image("2.1.0", 300))
		r.cycle(ctx)
		rec, _ = r.st.Device("a")
		if rec.Version != "2.1.0" || len(rec.Holds) != 0 || rec.RolledBack != "" {
			t.Errorf("after a newer target: version %q holds %v rolled back %q; want 2.1.0, none, none", rec.Version, rec.Holds, rec.RolledBack)
		}
	})
}

// TestCancelHolds: a cancelled job's target is not staged again.
func TestCancelHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, true, "a") // window closed: the job waits
		r.src.add(t, "fw-2.0.0", "2.0.0", 5, "hw1", devicetest.Image("2.0.0", 300))
		ctx := context.Background()
		r.cycle(ctx)
		j := r.onlyJob(t)
		if err := r.d.Cancel(j.ID, "console"); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			r.cycle(ctx)
		}
		if jobs, _ := r.st.Jobs(); len(jobs) != 1 {
			t.Errorf("after cancel and 3 refreshes: %d jobs, want 1", len(jobs))
		}
		if _, err := r.d.Retry(j.ID, "console", ""); err != nil {
			t.Errorf("Retry(job) = %v", err)
		}
		snap, _ := r.src.Refresh(ctx)
		if n := r.d.stage(ctx, snap); n != 1 {
			t.Errorf("stage after retry = %d jobs, want 1", n)
		}
	})
}

// untouched refuses every transfer before the first byte, as an SSH
// device with a mismatching host key does.
type untouched struct{ *devicetest.Device }

func (u untouched) Transfer(ctx context.Context, img devices.Image, r io.Reader, p devices.Progress) error {
	return devices.Untouched(devices.Permanent("transfer", errors.New("host key mismatch")))
}

// TestNotStartedIsNoRollback: a step refused before anything was written
// ends failed as not-started, runs no rollback, and keeps the version.
func TestNotStartedIsNoRollback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a")
		r.d.devs["a"] = untouched{r.devs["a"]}
		r.src.add(t, "fw-2.0.0", "2.0.0", 5, "hw1", devicetest.Image("2.0.0", 300))
		r.cycle(context.Background())
		s := r.onlyJob(t).Devices[0]
		if s.Phase != stepFailed || !strings.HasPrefix(s.Error, "not-started: transfer") || s.Rollbacks != 0 {
			t.Errorf("step = %s (%s), rollbacks %d; want failed, not-started: transfer…, 0", s.Phase, s.Error, s.Rollbacks)
		}
		if rec, _ := r.st.Device("a"); rec.Version != "1.0.0" || rec.Recovery != "" {
			t.Errorf("record = version %q recovery %q, want 1.0.0 and none", rec.Version, rec.Recovery)
		}
		r.d.checkHealth()
		if r.d.health.has(condRecovery) || r.d.health.has(condRollback) {
			t.Errorf("health = %v, want no rollback or recovery condition", r.d.health.list())
		}
	})
}

// bricked reports no running version, as a bootloader holding a fragment
// does.
type bricked struct{ *devicetest.Device }

func (b bricked) Identify(ctx context.Context) (devices.Identity, error) {
	id, err := b.Device.Identify(ctx)
	id.Version, id.ImageSHA256 = "", ""
	return id, err
}

// TestInterruptedRollbackNeedsRecovery: a rollback interrupted past its
// limit leaves a device that reports no version as needing recovery (not
// as its old version), with a persisted condition and no new job; a
// person's recover pushes the verified known-good image and clears it.
func TestInterruptedRollbackNeedsRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a")
		ctx := context.Background()
		r.src.add(t, "fw-2.0.0", "2.0.0", 5, "hw1", devicetest.Image("2.0.0", 300))
		r.d.inventory(ctx)
		// A verified backup of 1.0.0 from an earlier job.
		good := r.devs["a"].Installed()
		if _, err := r.d.Recover(ctx, "a", "known-good", "console", ""); err == nil {
			t.Error("Recover with no image of the known-good version succeeded")
		}
		r.st.UpdateDevice("a", func(d *store.Device) error {
			d.Backups = append(d.Backups, backupFile(t, r.d.m.backups, "1.0.0", good))
			return nil
		})
		snap, _ := r.src.Refresh(ctx)
		r.d.stage(ctx, snap)
		j := r.onlyJob(t)
		j.Phase = jobRunning
		j.Devices[0].Phase, j.Devices[0].Attempts, j.Devices[0].Rollbacks, j.Devices[0].Wrote = stepRollback, maxAttempts, maxRollbacks, true
		r.st.Update(func(tx *store.Tx) error { return tx.PutJob(j) })
		r.d.devs["a"] = bricked{r.devs["a"]}
		r.settle(ctx)

		s := r.onlyJob(t).Devices[0]
		rec, _ := r.st.Device("a")
		if s.Phase != stepFailed || rec.Version != "" || rec.Recovery == "" {
			t.Fatalf("step %s (%s), record version %q recovery %q; want failed, no version, needs recovery", s.Phase, s.Error, rec.Version, rec.Recovery)
		}
		if doc := r.deviceDoc(t, "a"); doc.State != "needs-recovery" || doc.Version != "" {
			t.Errorf("device document = state %q version %q, want needs-recovery and no version", doc.State, doc.Version)
		}
		r.d.checkHealth()
		if !r.d.health.has(condRecovery) || r.d.overallState() != StateFailure {
			t.Errorf("health %v, state %s; want %s and %s", r.d.health.list(), r.d.overallState(), condRecovery, StateFailure)
		}
		// A new daemon over the same store (a restart) still says so.
		d2, err := New(Deps{Config: r.d.cfg, Store: r.st, Source: r.src, Devices: r.d.devs, Log: r.d.log})
		if err != nil {
			t.Fatal(err)
		}
		d2.checkHealth()
		if !d2.health.has(condRecovery) {
			t.Errorf("after a restart health = %v, want %s", d2.health.list(), condRecovery)
		}
		for i := 0; i < 3; i++ {
			r.cycle(ctx)
		}
		if jobs, _ := r.st.Jobs(); len(jobs) != 1 {
			t.Errorf("%d jobs while the device needs recovery, want 1", len(jobs))
		}

		// The person recovers it with the known-good image.
		r.d.devs["a"] = r.devs["a"]
		id, err := r.d.Recover(ctx, "a", "known-good", "console", "")
		if err != nil {
			t.Fatalf("Recover: %v", err)
		}
		r.settle(ctx)
		rj, _ := r.st.Job(id)
		rec, _ = r.st.Device("a")
		if rj.Phase != jobSucceeded || rec.Version != "1.0.0" || rec.Recovery != "" {
			t.Errorf("recovery job %s, record version %q recovery %q; want succeeded, 1.0.0, none", rj.Phase, rec.Version, rec.Recovery)
		}
		if v, _ := r.devs["a"].Identify(ctx); v.Version != "1.0.0" {
			t.Errorf("device runs %q after recovery, want 1.0.0", v.Version)
		}
	})
}

// onWrite calls hook after each completed transfer.
type onWrite struct {
	*devicetest.Device
	hook func()
}

func (o onWrite) Transfer(ctx context.Context, img devices.Image, r io.Reader, p devices.Progress) error {
	err := o.Device.Transfer(ctx, img, r, p)
	o.hook()
	return err
}

// TestStoreUnwritableNoPushLoop: when the store stops taking writes right
// after a transfer, the step in flight is not run again: the worker stops,
// backs off, and the next one cannot count its attempt, so it touches
// nothing.
func TestStoreUnwritableNoPushLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a")
		r.d.devs["a"] = onWrite{r.devs["a"], func() { r.st.FailWrites(errors.New("no space left on device")) }}
		r.src.add(t, "fw-2.0.0", "2.0.0", 5, "hw1", devicetest.Image("2.0.0", 300))
		ctx := context.Background()
		r.cycle(ctx)
		for i := 0; i < 50; i++ {
			r.d.m.runJobs(ctx)
			r.d.m.workers.Wait()
			// Past any backoff: the worker starts again but must not push.
			r.d.mu.Lock()
			for k := range r.d.m.backoff {
				delete(r.d.m.backoff, k)
			}
			r.d.mu.Unlock()
		}
		if n := count(r.devs["a"].Calls(), "transfer"); n != 1 {
			t.Errorf("transfers with the store unwritable = %d, want 1", n)
		}
		if !r.d.health.has(condStore) {
			t.Errorf("health = %v, want %s", r.d.health.list(), condStore)
		}
		// Writes work again: the step resumes, counted, and ends definite.
		r.st.FailWrites(nil)
		r.d.devs["a"] = r.devs["a"]
		r.settle(ctx)
		s := r.onlyJob(t).Devices[0]
		if !stepTerminal(s.Phase) || s.Restarts == 0 {
			t.Errorf("step = %s after writes work again (restarts %d), want a terminal phase and the interruption counted", s.Phase, s.Restarts)
		}
		if r.d.health.has(condStore) {
			t.Errorf("health = %v after writes work again, want no %s", r.d.health.list(), condStore)
		}
	})
}

// TestFragmentIsNeverABackup: a device that reports no running version
// gives no backup; it needs recovery and is not written.
func TestFragmentIsNeverABackup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a")
		ctx := context.Background()
		r.src.add(t, "fw-2.0.0", "2.0.0", 5, "hw1", devicetest.Image("2.0.0", 300))
		r.d.inventory(ctx)
		snap, _ := r.src.Refresh(ctx)
		r.d.stage(ctx, snap)
		r.d.devs["a"] = bricked{r.devs["a"]}
		r.settle(ctx)
		rec, _ := r.st.Device("a")
		if len(rec.Backups) != 0 || rec.Recovery == "" {
			t.Errorf("record backups %v recovery %q; want none and needs recovery", rec.Backups, rec.Recovery)
		}
		if c := r.devs["a"].Calls(); slices.Contains(c, "transfer") || slices.Contains(c, "backup") {
			t.Errorf("device calls = %v, want no backup read and no transfer", c)
		}
	})
}

func backupFile(t *testing.T, dir, version string, img []byte) store.Backup {
	t.Helper()
	p := dir + "/known-good-" + version + ".bin"
	if err := writeFile(p, img); err != nil {
		t.Fatal(err)
	}
	sum, n, err := hashFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return store.Backup{Version: version, SHA256: sum, Size: n, Path: p}
}

func writeFile(p string, b []byte) error { return os.WriteFile(p, b, 0o600) }

// TestResumeTellsTheDeviceItsImage: after a restart mid-activate, the
// device (which forgot the transferred image, as a new driver instance
// does) is told the job's image before the phase runs again, and the step
// commits.
func TestResumeTellsTheDeviceItsImage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a")
		r.devs["a"].NeedResume = true
		r.src.add(t, "fw-2.0.0", "2.0.0", 5, "hw1", devicetest.Image("2.0.0", 300))
		ctx := context.Background()
		r.d.inventory(ctx)
		snap, _ := r.src.Refresh(ctx)
		r.d.stage(ctx, snap)
		j := r.onlyJob(t)
		r.devs["a"].Transfer(ctx, devices.Image{Name: j.Target, Version: j.Version, Size: j.Length, SHA256: j.SHA256}, mustOpen(t, j.Blob), nil)
		r.devs["a"].Forget() // the daemon restarted
		j.Phase = jobRunning
		j.Devices[0].Phase, j.Devices[0].Attempts, j.Devices[0].Wrote = stepActivate, 1, true
		r.st.Update(func(tx *store.Tx) error { return tx.PutJob(j) })
		r.settle(ctx)
		if s := r.onlyJob(t).Devices[0]; s.Phase != stepCommitted {
			t.Errorf("step = %s (%s), want committed", s.Phase, s.Error)
		}
		if c := r.devs["a"].Calls(); !slices.Contains(c, "resume") {
			t.Errorf("device calls = %v, want resume before activate", c)
		}
	})
}

// noSpace fails the backup as a full state directory does.
type noSpace struct{ *devicetest.Device }

func (n noSpace) Backup(ctx context.Context, w io.Writer) (int64, error) {
	return 0, &os.PathError{Op: "write", Path: "backups/a.partial", Err: syscall.ENOSPC}
}

// TestBackupWithoutSpaceWaits: no space for a backup is transient: the
// step returns to pending with disk-low raised, nothing is written to the
// device, and nothing is failed or held.
func TestBackupWithoutSpaceWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a")
		r.d.devs["a"] = noSpace{r.devs["a"]}
		r.src.add(t, "fw-2.0.0", "2.0.0", 5, "hw1", devicetest.Image("2.0.0", 300))
		r.cycle(context.Background())
		s := r.onlyJob(t).Devices[0]
		if s.Phase != stepPending {
			t.Errorf("step = %s (%s), want pending (waiting for space)", s.Phase, s.Error)
		}
		if !r.d.health.has(condDisk) {
			t.Errorf("health = %v, want %s", r.d.health.list(), condDisk)
		}
		if c := r.devs["a"].Calls(); slices.Contains(c, "transfer") {
			t.Errorf("device calls = %v, want no transfer", c)
		}
		if rec, _ := r.st.Device("a"); len(rec.Holds) != 0 {
			t.Errorf("holds = %v, want none", rec.Holds)
		}
	})
}

// fallbackSource reports a trust-anchor fall-back while fallback is set.
type fallbackSource struct {
	*fakeSource
	fallback string
}

func (f *fallbackSource) Refresh(ctx context.Context) (*tuf.Snapshot, error) {
	snap, err := f.fakeSource.Refresh(ctx)
	snap.TrustFallback = f.fallback
	return snap, err
}

// TestTrustFallbackIsAnAlarm: a refresh that started from an older root
// raises trust-fallback (a trust problem on the LEDs) until a refresh
// reaches the newest trusted root again.
func TestTrustFallbackIsAnAlarm(t *testing.T) {
	r := newRig(t, false, "a")
	src := &fallbackSource{fakeSource: r.src, fallback: "started from root v1: root v3 unreadable"}
	r.d.src = src
	ctx := context.Background()
	r.d.refresh(ctx)
	if !r.d.health.has(condAnchor) || r.d.overallState() != StateTrustProblem {
		t.Errorf("health %v, state %s; want %s and %s", r.d.health.list(), r.d.overallState(), condAnchor, StateTrustProblem)
	}
	r.d.refresh(ctx) // still falling back: still raised
	if !r.d.health.has(condAnchor) {
		t.Errorf("second refresh cleared %s while the fall-back lasts", condAnchor)
	}
	src.fallback = ""
	r.d.refresh(ctx)
	if r.d.health.has(condAnchor) {
		t.Errorf("health %v after a refresh from the newest root, want no %s", r.d.health.list(), condAnchor)
	}
}
