// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/daemon/store"
	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/devices/devicetest"
	"github.com/fieldgate/fieldgate/tuf"
)

// fakeSource serves fixed, already-verified targets from memory.
type fakeSource struct {
	dir     string
	targets []tuf.Target
	blobs   map[string][]byte // by name
	fetches int
}

func (f *fakeSource) add(t *testing.T, name, version string, counter uint64, hw string, body []byte) {
	sum := sha256.Sum256(body)
	f.targets = append(f.targets, tuf.Target{
		Name: name, Length: int64(len(body)), Hashes: map[string]string{"sha256": hex.EncodeToString(sum[:])},
		Meta: tuf.Meta{Hardware: []string{hw}, Version: version, SecurityCounter: counter, Protocol: "fake"},
	})
	if f.blobs == nil {
		f.blobs = map[string][]byte{}
	}
	f.blobs[name] = body
}

func (f *fakeSource) Refresh(ctx context.Context) (*tuf.Snapshot, error) {
	return &tuf.Snapshot{Targets: f.targets, Expires: time.Now().Add(30 * 24 * time.Hour), RefTime: time.Now()}, nil
}

func (f *fakeSource) Fetch(ctx context.Context, t tuf.Target, _ func(int64, int64)) (string, error) {
	f.fetches++
	p := filepath.Join(f.dir, t.SHA256())
	return p, os.WriteFile(p, f.blobs[t.Name], 0o600)
}

type rig struct {
	d    *Daemon
	st   *store.Store
	src  *fakeSource
	devs map[string]*devicetest.Device
}

// newRig builds a daemon over fake devices (all running 1.0.0) with a
// window that is open unless closed is set.
func newRig(t *testing.T, closed bool, ids ...string) *rig {
	return newRigWith(t, closed, nil, ids...)
}

func newRigWith(t *testing.T, closed bool, tweak func(*config.Config), ids ...string) *rig {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	start := "0 0 * * *"
	if closed {
		start = "0 0 1 1 *" // New Year's midnight, for one minute
	}
	cfg := &config.Config{
		Gateway: config.Gateway{ID: "gw", Site: "s", StateDir: dir, RefreshInterval: time.Minute, InventoryInterval: time.Hour, MaxParallel: 2},
		MQTT:    config.MQTT{Prefix: "fieldgate/v1/s/gw"},
		Windows: []config.Window{{Name: "w", Start: start, Duration: 24 * time.Hour, TimeZone: "UTC"}},
		Groups:  []config.Group{{Name: "g", Window: "w", Approval: "auto", Canary: 1, ApprovalTTL: time.Hour}},
	}
	if closed {
		cfg.Windows[0].Duration = time.Minute
	}
	r := &rig{st: st, src: &fakeSource{dir: t.TempDir()}, devs: map[string]*devicetest.Device{}}
	devs := map[string]devices.Device{}
	for _, id := range ids {
		cfg.Devices = append(cfg.Devices, config.Device{ID: id, Group: "g", Protocol: "fake", HardwareID: "hw1", Address: "x", Segment: "bus-" + id})
		r.devs[id] = devicetest.New("hw1", "1.0.0")
		devs[id] = r.devs[id]
	}
	if tweak != nil {
		tweak(cfg)
	}
	r.d, err = New(Deps{Config: cfg, Store: st, Source: r.src, Devices: devs, Version: "test",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	r.d.m.pollInterval = 10 * time.Millisecond
	return r
}

// cycle runs what turns of the loop do until the workers are done.
func (r *rig) cycle(ctx context.Context) {
	r.d.inventory(ctx)
	r.d.refresh(ctx)
	r.settle(ctx)
}

// settle runs the scheduler and waits for its workers, a few times over,
// so that jobs advance as far as they can now.
func (r *rig) settle(ctx context.Context) {
	for i := 0; i < 10; i++ {
		r.d.m.runJobs(ctx)
		r.d.m.workers.Wait()
	}
}

func (r *rig) onlyJob(t *testing.T) store.Job {
	t.Helper()
	jobs, err := r.st.Jobs()
	if err != nil || len(jobs) != 1 {
		t.Fatalf("Jobs() = %d jobs, %v; want 1", len(jobs), err)
	}
	return jobs[0]
}

func TestUpdateCommitsAndRaisesFloor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a", "b")
		r.src.add(t, "fw-2.0.0", "2.0.0", 5, "hw1", devicetest.Image("2.0.0", 300))
		r.cycle(context.Background())

		j := r.onlyJob(t)
		if j.Phase != jobSucceeded {
			t.Fatalf("job phase = %q (%s), want %q", j.Phase, j.Reason, jobSucceeded)
		}
		for _, id := range []string{"a", "b"} {
			rec, _ := r.st.Device(id)
			if rec.Version != "2.0.0" || rec.KnownGood != "2.0.0" || rec.Floor != 5 {
				t.Errorf("device %s record = version %q known-good %q floor %d, want 2.0.0, 2.0.0, 5", id, rec.Version, rec.KnownGood, rec.Floor)
			}
			calls := r.devs[id].Calls()
			for _, want := range []string{"backup", "transfer", "activate", "identify", "health", "commit"} {
				if !slices.Contains(calls, want) {
					t.Errorf("device %s calls = %v, missing %s", id, calls, want)
				}
			}
		}
		if n, err := r.st.VerifyAudit(); err != nil || n == 0 {
			t.Errorf("VerifyAudit() = %d, %v; want records and no error", n, err)
		}
		// A second cycle finds nothing newer: no new job.
		r.cycle(context.Background())
		if jobs, _ := r.st.Jobs(); len(jobs) != 1 {
			t.Errorf("after a second cycle there are %d jobs, want 1", len(jobs))
		}
	})
}

func TestNothingStartsOutsideTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, true, "a")
		r.src.add(t, "fw-2.0.0", "2.0.0", 1, "hw1", devicetest.Image("2.0.0", 300))
		r.cycle(context.Background())
		j := r.onlyJob(t)
		if j.Phase != jobScheduled || j.Devices[0].Phase != stepPending {
			t.Errorf("job = %s/%s, want scheduled/pending while the window is closed", j.Phase, j.Devices[0].Phase)
		}
		if r.src.fetches != 1 {
			t.Errorf("fetches = %d, want 1: download now, install in the window", r.src.fetches)
		}
		for _, c := range r.devs["a"].Calls() {
			if c != "identify" {
				t.Errorf("device saw %q outside its window", c)
			}
		}
	})
}

func TestBootFailureRollsBackToBackup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a")
		r.devs["a"].BootFail = "2.0.0"
		r.src.add(t, "fw-2.0.0", "2.0.0", 5, "hw1", devicetest.Image("2.0.0", 300))
		r.cycle(context.Background())
		j := r.onlyJob(t)
		if got := j.Devices[0].Phase; got != stepRolledBack {
			t.Fatalf("step phase = %q (%s), want %q", got, j.Devices[0].Error, stepRolledBack)
		}
		if v, _ := r.devs["a"].Identify(context.Background()); v.Version != "1.0.0" {
			t.Errorf("device runs %q after rollback, want 1.0.0", v.Version)
		}
		rec, _ := r.st.Device("a")
		if rec.Floor != 0 {
			t.Errorf("floor = %d after a failed update, want 0 (only commits raise it)", rec.Floor)
		}
		if !slices.Contains(r.devs["a"].Calls(), "backup") {
			t.Errorf("no backup was taken before the push: %v", r.devs["a"].Calls())
		}
	})
}

// TestBackupThatDoesNotMatchIsRefused: a device whose read-back image does
// not hash to what it reports running gives no backup, and nothing is
// written to it: the step ends not-started, the device keeps its version.
func TestBackupThatDoesNotMatchIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a")
		r.devs["a"].WrongHash = true
		r.src.add(t, "fw-2.0.0", "2.0.0", 5, "hw1", devicetest.Image("2.0.0", 300))
		r.cycle(context.Background())
		j := r.onlyJob(t)
		if s := j.Devices[0]; s.Phase != stepFailed || !strings.HasPrefix(s.Error, "not-started: backup") {
			t.Errorf("step = %s (%s), want failed, not-started: backup …", s.Phase, s.Error)
		}
		if c := r.devs["a"].Calls(); slices.Contains(c, "transfer") {
			t.Errorf("device calls = %v: written after a backup that did not match", c)
		}
		if rec, _ := r.st.Device("a"); rec.Version != "1.0.0" || rec.Recovery != "" || len(rec.Backups) != 0 {
			t.Errorf("record = version %q recovery %q backups %d, want 1.0.0, none, 0", rec.Version, rec.Recovery, len(rec.Backups))
		}
	})
}

func TestCanaryFailureHaltsTheRest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a", "b")
		r.devs["a"].WrongHash = true
		r.src.add(t, "fw-2.0.0", "2.0.0", 5, "hw1", devicetest.Image("2.0.0", 300))
		r.cycle(context.Background())
		j := r.onlyJob(t)
		if j.Phase != jobHalted {
			t.Errorf("job phase = %q, want %q", j.Phase, jobHalted)
		}
		if j.Devices[1].Phase != stepSkipped {
			t.Errorf("second device phase = %q, want %q", j.Devices[1].Phase, stepSkipped)
		}
		if slices.Contains(r.devs["b"].Calls(), "transfer") {
			t.Errorf("second device received a transfer after the canary failed")
		}
	})
}

func TestTransientTransferFailureRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a")
		r.devs["a"].FailAt, r.devs["a"].FailTimes = 100, 1
		r.src.add(t, "fw-2.0.0", "2.0.0", 5, "hw1", devicetest.Image("2.0.0", 300))
		r.cycle(context.Background())
		j := r.onlyJob(t)
		if j.Phase != jobSucceeded || j.Devices[0].Attempts != 2 {
			t.Errorf("job %s, attempts %d; want succeeded after 2 attempts", j.Phase, j.Devices[0].Attempts)
		}
	})
}

func TestResumeAfterCrashEndsDefinite(t *testing.T) {
	for _, tc := range []struct {
		phase    phase
		attempts int
		want     []phase // acceptable final step phases
	}{
		{stepTransfer, 1, []phase{stepCommitted}},
		{stepActivate, 1, []phase{stepCommitted}},
		{stepVerify, 1, []phase{stepCommitted}},
		{stepTransfer, maxAttempts, []phase{stepRolledBack}},
		{stepRollback, maxRollbacks, []phase{stepFailed}},
	} {
		t.Run(string(tc.phase), func(t *testing.T) {
			r := newRig(t, false, "a")
			r.src.add(t, "fw-2.0.0", "2.0.0", 5, "hw1", devicetest.Image("2.0.0", 300))
			ctx := context.Background()
			r.d.inventory(ctx)
			snap, _ := r.src.Refresh(ctx)
			r.d.stage(ctx, snap)
			// Simulate a crash in the middle of tc.phase after a backup.
			j := r.onlyJob(t)
			var bk []byte
			if tc.phase != stepTransfer || tc.attempts > 1 {
				bk = r.devs["a"].Installed()
			}
			j.Phase = jobRunning
			j.Devices[0].Phase, j.Devices[0].Attempts = tc.phase, tc.attempts
			if tc.phase == stepRollback {
				j.Devices[0].Rollbacks = tc.attempts
			}
			if bk != nil {
				p := filepath.Join(t.TempDir(), "backup.bin")
				os.WriteFile(p, bk, 0o600)
				j.Devices[0].Backup = p
				sum := sha256.Sum256(bk)
				r.st.UpdateDevice("a", func(d *store.Device) error {
					d.Backups = append(d.Backups, store.Backup{Version: "1.0.0", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(bk)), Path: p})
					return nil
				})
			}
			if tc.phase == stepActivate || tc.phase == stepVerify {
				// the transfer had completed before the crash
				r.devs["a"].Transfer(ctx, devices.Image{Size: j.Length}, mustOpen(t, j.Blob), nil)
				if tc.phase == stepVerify {
					r.devs["a"].Activate(ctx)
				}
			}
			r.st.Update(func(tx *store.Tx) error { return tx.PutJob(j) })

			r.settle(ctx) // the worker counts the interruption first
			j = r.onlyJob(t)
			if !jobTerminal(j.Phase) {
				t.Errorf("job phase = %q after resume, want a terminal phase", j.Phase)
			}
			if !slices.Contains(tc.want, j.Devices[0].Phase) {
				t.Errorf("step phase = %q (%s), want one of %v", j.Devices[0].Phase, j.Devices[0].Error, tc.want)
			}
		})
	}
}

func mustOpen(t *testing.T, p string) io.Reader {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestWakeAndKickReachTheLoop guards the channels the loop selects on: a
// nil one would silently drop every wake-up.
func TestWakeAndKickReachTheLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a")
		r.d.m.kick()
		r.d.Wake()
		select {
		case <-r.d.m.kicks:
		default:
			t.Error("kick() did not reach the loop")
		}
		select {
		case <-r.d.wake:
		default:
			t.Error("Wake() did not reach the loop")
		}
	})
}

func TestOverallStateFollowsTheNewestOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a")
		put := func(id string, ph phase, created time.Time) {
			r.st.Update(func(tx *store.Tx) error { return tx.PutJob(store.Job{ID: id, Phase: ph, Created: created}) })
		}
		base := time.Now()
		if got := r.d.overallState(); got != StateIdle {
			t.Errorf("no jobs: overallState() = %q, want %q", got, StateIdle)
		}
		put("old", jobFailed, base)
		if got := r.d.overallState(); got != StateFailure {
			t.Errorf("after a failed job: overallState() = %q, want %q", got, StateFailure)
		}
		put("new", jobSucceeded, base.Add(time.Hour))
		if got := r.d.overallState(); got != StateSuccess {
			t.Errorf("after a newer successful job: overallState() = %q, want %q", got, StateSuccess)
		}
		put("next", jobAwaitingApproval, base.Add(2*time.Hour))
		if got := r.d.overallState(); got != StateAwaitingApproval {
			t.Errorf("with a job awaiting approval: overallState() = %q, want %q", got, StateAwaitingApproval)
		}
		put("now", jobRunning, base.Add(3*time.Hour))
		r.d.downloading.Store(true)
		if got := r.d.overallState(); got != StatePushing {
			t.Errorf("pushing while downloading: overallState() = %q, want %q (do not power off wins)", got, StatePushing)
		}
	})
}

// setNow gives the daemon and its state machine the clock now.
func (r *rig) setNow(now func() time.Time) {
	r.d.now, r.d.m.now = now, now
	r.d.health.now, r.d.rep.now, r.d.pages.now = now, now, now
}

// deviceDoc returns device id's document as status shows it.
func (r *rig) deviceDoc(t *testing.T, id string) api.Device {
	t.Helper()
	docs, err := r.d.deviceDocs()
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range docs {
		if doc.ID == id {
			return doc
		}
	}
	t.Fatalf("no document for device %s", id)
	return api.Device{}
}

// TestIdentifiedDeviceIsStagedFromTheLastSnapshot: a device that did not
// answer when the snapshot was staged (an offline bundle imported before
// the first inventory reached it) gets its job once it is identified,
// without another refresh — an island's gateway has none.
func TestIdentifiedDeviceIsStagedFromTheLastSnapshot(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, false, "a")
	r.devs["a"].Unreachable = true
	r.src.add(t, "fw", "2.0.0", 1, "hw1", devicetest.Image("2.0.0", 300))
	r.d.inventory(ctx)
	r.d.refresh(ctx)
	if jobs, _ := r.st.Jobs(); len(jobs) != 0 {
		t.Fatalf("%d jobs for a device not identified yet, want none", len(jobs))
	}
	r.devs["a"].Unreachable = false
	r.d.inventory(ctx)
	select {
	case <-r.d.restage:
		r.d.stageLast(ctx)
	default:
		t.Fatal("identifying the device did not ask the loop to stage again")
	}
	if jobs, _ := r.st.Jobs(); len(jobs) != 1 {
		t.Fatalf("%d jobs after the device was identified, want 1", len(jobs))
	}
}
