// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
)

// TestCrashRecovery kills fieldgated with SIGKILL at random moments while a
// job updates simulated devices, restarts it, and checks that it always
// reaches a definite outcome: every device committed or rolled back, no job
// left open, an audit chain that verifies, and a gateway that reports the
// version each simulated device really runs (asked of the simulator, see
// checkAgainstSim). FIELDGATE_CRASH_ITERATIONS sets the number of runs
// (make test-crash uses 100). The targeted and dense variants are in
// chaos_test.go.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs every binary")
	}
	iterations := crashIterations(t, 3)
	bin := buildAll(t)
	rng := rand.New(rand.NewPCG(crashSeed(t), 0))
	kills := 0
	for it := 0; it < iterations; it++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		env, err := Setup(ctx, Options{Bin: bin, Work: filepath.Join(t.TempDir(), "work"), Out: output(t), Devices: 2, Baud: 460800})
		if err != nil {
			cancel()
			t.Fatalf("iteration %d: Setup: %v", it, err)
		}
		want, err := knownImages(env)
		if err != nil {
			env.Close()
			cancel()
			t.Fatal(err)
		}
		n := 1 + rng.IntN(3)
		for k := 0; k < n; k++ {
			if err := env.StartDaemon(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(rng.IntN(2500)) * time.Millisecond)
			env.KillDaemon()
			kills++
		}
		if err := env.StartDaemon(); err != nil {
			t.Fatal(err)
		}
		st, err := waitSettled(ctx, env)
		if err != nil {
			t.Errorf("iteration %d (%d kills): %v", it, n, err)
		} else {
			checkDefinite(t, it, st)
			var out bytes.Buffer
			if err := runToolTo(ctx, env.o, &out, "fieldgatectl", "--socket", env.Socket, "audit", "verify"); err != nil {
				t.Errorf("iteration %d: audit verify: %v\n%s", it, err, out.String())
			}
			env.KillDaemon() // out of the way of the device's console
			checkAgainstSim(ctx, t, env, st, want, false)
		}
		env.Close()
		cancel()
		if t.Failed() {
			t.Logf("work dir of the failed iteration: %s", env.Work)
			break
		}
	}
	t.Logf("%d iterations, %d kills", iterations, kills)
}

// waitSettled polls the daemon until a job exists and every job has ended.
func waitSettled(ctx context.Context, env *Env) (api.Status, error) {
	var st api.Status
	for {
		var out bytes.Buffer
		if err := runToolTo(ctx, env.o, &out, "fieldgatectl", "--socket", env.Socket, "status", "--json"); err == nil {
			st = api.Status{}
			if json.Unmarshal(out.Bytes(), &st) == nil && len(st.Jobs) > 0 {
				open := 0
				for _, j := range st.Jobs {
					if !terminal(j.Phase) {
						open++
					}
				}
				if open == 0 {
					return st, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func terminal(p string) bool {
	switch p {
	case "succeeded", "partially-failed", "failed", "halted", "cancelled":
		return true
	}
	return false
}

func checkDefinite(t *testing.T, it int, st api.Status) {
	t.Helper()
	for _, j := range st.Jobs {
		for _, s := range j.Steps {
			switch {
			case s.Phase == "committed", s.Phase == "rolled-back", s.Phase == "skipped", notStarted(s):
			default:
				t.Errorf("iteration %d: job %s device %s ended %q (%s), want committed, rolled-back, skipped or failed before anything was written", it, j.ID, s.Device, s.Phase, s.Error)
			}
		}
	}
	for _, d := range st.Devices {
		if d.Version != oldVersion && d.Version != newVersion {
			t.Errorf("iteration %d: device %s reports %q, want %s or %s", it, d.ID, d.Version, oldVersion, newVersion)
		}
	}
}
