// SPDX-License-Identifier: Apache-2.0

package main

// The chaos tests kill fieldgated with SIGKILL at chosen moments of a real
// job (targeted: when the canary's step enters a given phase, several
// times in a row) or often (dense: every 0.2–5 s), then let it settle and
// compare what the gateway reports with what the simulated device really
// holds, read from the simulator itself.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/control"
	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/devices/sim"
	"github.com/fieldgate/fieldgate/devices/xmodem"
)

// chaosBaud paces the simulated lines so that backup (32 KiB read back)
// and transfer (40 KiB) each last a few seconds: long enough to be hit.
const chaosBaud = 115200

// needsRecovery is the device state in which the gateway admits that it
// does not know what the device runs and a person must look.
const needsRecovery = "needs-recovery"

// chaosPlan is one run: faults injected into the simulated devices and the
// phases of the canary's step to kill fieldgated in, in order.
type chaosPlan struct {
	name   string
	faults map[string][]string
	kills  []string
}

func (p chaosPlan) String() string {
	s := strings.Join(p.kills, ",")
	for id, f := range p.faults {
		s += fmt.Sprintf(" %s:%s", id, strings.Join(f, "+"))
	}
	return s
}

// targetedPlans run in every `make test`. Every kill counts against the
// step's attempts, so each plan is short enough to reach its phases. The
// second is the sequence that bricked a device in an outside test: three
// kills in transfer, then two in rollback.
func targetedPlans() []chaosPlan {
	bootFail := map[string][]string{"io16-a": {"boot-fail"}}
	return []chaosPlan{
		{name: "backup2", kills: []string{"backup", "backup"}},
		{name: "transfer3-rollback2", kills: []string{"transfer", "transfer", "transfer", "rollback", "rollback"}},
		{name: "activate-verify", kills: []string{"activate", "verify"}},
		{name: "bootfail-verify-rollback2", faults: bootFail, kills: []string{"verify", "rollback", "rollback"}},
		{name: "bootfail-transfer-rollback3", faults: bootFail, kills: []string{"transfer", "rollback", "rollback", "rollback"}},
	}
}

// killPhases are the phases a targeted kill may wait for.
var killPhases = []string{"backup", "transfer", "activate", "verify", "rollback"}

// randomPlan returns a plan of runs of kills in the same phase, in the
// order a step passes through them, with boot-fail on the canary in about
// half the plans.
func randomPlan(rng *rand.Rand, n int) chaosPlan {
	p := chaosPlan{name: fmt.Sprintf("random-%d", n)}
	if rng.IntN(2) == 0 {
		p.faults = map[string][]string{"io16-a": {"boot-fail"}}
	}
	for i, ph := range killPhases {
		if rng.IntN(2) == 0 && !(i == len(killPhases)-1 && len(p.kills) == 0) {
			continue
		}
		for k := 1 + rng.IntN(3); k > 0; k-- {
			p.kills = append(p.kills, ph)
		}
	}
	return p
}

// crashIterations is FIELDGATE_CRASH_ITERATIONS, or def.
func crashIterations(t *testing.T, def int) int {
	t.Helper()
	s := os.Getenv("FIELDGATE_CRASH_ITERATIONS")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("FIELDGATE_CRASH_ITERATIONS=%q: %v", s, err)
	}
	return n
}

// crashSeed is FIELDGATE_CRASH_SEED, or a new seed; it is logged so that a
// failing run's kill delays and plans can be repeated.
func crashSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FIELDGATE_CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FIELDGATE_CRASH_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (FIELDGATE_CRASH_SEED=%d repeats it)", seed, seed)
	return seed
}

// TestCrashRecoveryTargeted kills fieldgated when the canary's step enters
// a chosen phase (backup, transfer, activate, verify, rollback), several
// times in a row, restarts it each time, and after the job has ended checks
// the simulator against the gateway: the gateway's version must be the
// one the device really runs (a complete image that boots), or the gateway
// must say the device needs recovery; the canary must end committed or
// rolled back. With FIELDGATE_CRASH_ITERATIONS set (make test-crash) it
// adds that many random plans.
func TestCrashRecoveryTargeted(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs every binary")
	}
	plans := targetedPlans()
	seed := crashSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	for i := range crashIterations(t, 0) {
		plans = append(plans, randomPlan(rng, i))
	}
	bin := buildAll(t)
	// The plans run in parallel (as many at a time as go test -parallel
	// allows), each with its own devices and daemon, and its own random
	// source seeded from the seed and the plan's index.
	for i, p := range plans {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, uint64(i)+1))
			t.Logf("plan %s", p)
			runChaos(t, bin, p.faults, func(ctx context.Context, t *testing.T, r *chaosRun) {
				for i, ph := range p.kills {
					if !r.killIn(ctx, t, ph, rng) {
						t.Logf("kill %d of %d skipped: the canary's step did not enter %s", i+1, len(p.kills), ph)
					}
				}
			}, true)
		})
	}
}

// TestCrashRecoveryDense kills fieldgated every 0.2–5 s (random) for a
// number of kills, then lets it settle: every canary must end committed or
// rolled back to a verified image, and the gateway must report what each
// simulated device runs. Here a device left needing recovery is a failure
// too. FIELDGATE_CRASH_ITERATIONS sets the number of runs (default 1).
func TestCrashRecoveryDense(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs every binary")
	}
	iterations := crashIterations(t, 1)
	seed := crashSeed(t)
	bin := buildAll(t)
	for it := range iterations {
		t.Run(fmt.Sprintf("run-%d", it), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, uint64(it)))
			var faults map[string][]string
			if rng.IntN(2) == 0 {
				faults = map[string][]string{"io16-a": {"boot-fail"}}
			}
			delays := make([]time.Duration, 4+rng.IntN(5))
			for k := range delays {
				delays[k] = 200*time.Millisecond + time.Duration(rng.Int64N(int64(4800*time.Millisecond)))
			}
			t.Logf("%d kills, faults %v", len(delays), faults)
			runChaos(t, bin, faults, func(ctx context.Context, t *testing.T, r *chaosRun) {
				for _, d := range delays {
					select {
					case <-ctx.Done():
						return
					case <-time.After(d):
					}
					r.kill(ctx, t, fmt.Sprintf("after %s", d.Round(time.Millisecond)))
				}
			}, false)
		})
	}
}

// chaosRun is one scenario under a kill plan.
type chaosRun struct {
	env    *Env
	client *control.Client
	canary string
	kills  int
}

// runChaos sets up two simulated devices (faults injected), starts
// fieldgated, lets plan kill it, restarts it a last time, waits until the
// job has ended and checks the outcome against the simulator. recoveryOK
// accepts a device the gateway reports as needing recovery.
func runChaos(t *testing.T, bin string, faults map[string][]string, plan func(context.Context, *testing.T, *chaosRun), recoveryOK bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 7*time.Minute)
	defer cancel()
	work, runLog := runDirs(t, 120)
	env, err := Setup(ctx, Options{Bin: bin, Work: work, Out: io.MultiWriter(output(t), runLog), Devices: 2, Baud: chaosBaud, Faults: faults})
	if env != nil {
		defer env.Close()
	}
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	want, err := knownImages(env)
	if err != nil {
		t.Fatal(err)
	}
	r := &chaosRun{env: env, client: control.NewClient(env.Socket), canary: env.IDs[0]}
	if err := env.StartDaemon(); err != nil {
		t.Fatal(err)
	}
	plan(ctx, t, r)
	if env.daemon == nil {
		if err := env.StartDaemon(); err != nil {
			t.Fatal(err)
		}
	}
	st, err := r.settled(ctx)
	if err != nil {
		t.Fatalf("after %d kills the job did not end: %v\nlast status:\n%s", r.kills, err, summary(st))
	}
	var out bytes.Buffer
	if err := runToolTo(ctx, env.o, &out, "fieldgatectl", "--socket", env.Socket, "status", "--json"); err != nil {
		t.Fatalf("fieldgatectl status --json: %v\n%s", err, out.String())
	}
	st = api.Status{}
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		t.Fatalf("fieldgatectl status --json: %v", err)
	}
	out.Reset()
	if err := runToolTo(ctx, env.o, &out, "fieldgatectl", "--socket", env.Socket, "audit", "verify"); err != nil {
		t.Errorf("fieldgatectl audit verify: %v\n%s", err, out.String())
	}
	// The device is asked with the gateway out of the way: no port is
	// shared, and a transfer the kills left the simulator waiting in
	// ends (in a fragment) before it answers.
	env.KillDaemon()
	t.Logf("%d kills; gateway after settling:\n%s", r.kills, summary(st))
	checkAgainstSim(ctx, t, env, st, want, recoveryOK)
}

// settled waits until a job exists and every job has ended, or every step
// still open belongs to a device the gateway reports as needing recovery.
func (r *chaosRun) settled(ctx context.Context) (api.Status, error) {
	var st api.Status
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		s, err := r.client.Status(pctx)
		cancel()
		if err == nil {
			st = s
			open := 0
			for _, j := range st.Jobs {
				if terminal(j.Phase) {
					continue
				}
				stuck, running := 0, 0
				for _, s := range j.Steps {
					switch {
					case deviceOf(st, s.Device).State == needsRecovery:
						stuck++
					case !terminalStep(s.Phase):
						running++
					}
				}
				if stuck == 0 || running > 0 {
					open++
				}
			}
			if len(st.Jobs) > 0 && open == 0 {
				return st, nil
			}
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// kill kills fieldgated now and starts it again.
func (r *chaosRun) kill(ctx context.Context, t *testing.T, why string) {
	t.Helper()
	phase, _ := r.phase(ctx)
	r.env.KillDaemon()
	r.kills++
	t.Logf("kill %d %s (canary's step: %s)", r.kills, why, phaseOr(phase))
	if err := r.env.StartDaemon(); err != nil {
		t.Fatal(err)
	}
}

// killIn waits until the canary's step is in phase, kills fieldgated
// after a random part of the phase's usual length and starts it again. It
// returns false if the step ended or went past phase (a step never goes
// back), or did not enter phase within a minute.
func (r *chaosRun) killIn(ctx context.Context, t *testing.T, phase string, rng *rand.Rand) bool {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		ph, err := r.phase(wctx)
		if err == nil && ph == phase {
			break
		}
		if err == nil && (terminalStep(ph) || phaseOrder(ph) > phaseOrder(phase)) {
			return false
		}
		select {
		case <-wctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	d := time.Duration(rng.Int64N(int64(phaseSpan(phase)) + 1))
	time.Sleep(d)
	r.kill(ctx, t, fmt.Sprintf("%s into %s", d.Round(time.Millisecond), phase))
	return true
}

// phaseOrder ranks the phases a step passes through; resumed phases run
// again, but a step never returns to an earlier one.
func phaseOrder(p string) int {
	return slices.Index([]string{"pending", "backup", "transfer", "activate", "verify", "soak", "rollback"}, p)
}

// phaseSpan is how far into a phase a targeted kill may fall: about the
// phase's length at chaosBaud, so that it lands inside it.
func phaseSpan(phase string) time.Duration {
	switch phase {
	case "backup": // 32 KiB read back with YMODEM
		return 2 * time.Second
	case "transfer": // 40 KiB with XMODEM-1K
		return 3 * time.Second
	case "rollback": // the backup pushed again, reset, read back
		return 2500 * time.Millisecond
	}
	return 100 * time.Millisecond // activate, verify: a reset, a few commands
}

// phase returns the phase of the canary's step in the newest job that has
// one; "" while there is none.
func (r *chaosRun) phase(ctx context.Context) (string, error) {
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := r.client.Status(pctx)
	if err != nil {
		return "", err
	}
	_, s, ok := lastStep(st, r.canary)
	if !ok {
		return "", nil
	}
	return s.Phase, nil
}

func phaseOr(p string) string {
	if p == "" {
		return "unknown"
	}
	return p
}

// notStarted reports whether s failed before anything was written to the
// device (fieldgated says so with an error starting "not-started").
func notStarted(s api.Step) bool {
	return s.Phase == "failed" && strings.HasPrefix(s.Error, "not-started")
}

func terminalStep(p string) bool {
	switch p {
	case "committed", "rolled-back", "failed", "skipped":
		return true
	}
	return false
}

// lastStep returns device id's step in the newest job that has one.
func lastStep(st api.Status, id string) (api.Job, api.Step, bool) {
	var job api.Job
	var step api.Step
	found := false
	for _, j := range st.Jobs {
		for _, s := range j.Steps {
			if s.Device == id && (!found || j.Created.After(job.Created)) {
				job, step, found = j, s, true
			}
		}
	}
	return job, step, found
}

// images are the complete images a simulated device may run: the factory
// one it started with and the target.
type images map[string]string // sha256 hex -> version

func knownImages(env *Env) (images, error) {
	want := images{}
	b, err := os.ReadFile(filepath.Join(env.Work, "fw-"+newVersion+".bin"))
	if err != nil {
		return nil, err
	}
	want[sha256Hex(b)] = newVersion
	for _, id := range env.IDs {
		b, err := os.ReadFile(filepath.Join(env.Work, "sim", id, "flash.bin"))
		if err != nil {
			return nil, fmt.Errorf("factory image of %s: %w", id, err)
		}
		want[sha256Hex(b)] = oldVersion
	}
	return want, nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// simView is a simulated device as the simulator itself sees it.
type simView struct {
	Console   devices.Identity // what it answered on its console
	Running   string           // version it runs (its state file), "" in its bootloader
	BootError string
	Boots     int
	FlashLen  int
	FlashSHA  string
	Header    string // version in the flash's image header
	Check     error  // the simulator's boot check of its flash
}

func (v simView) String() string {
	run := v.Running
	if run == "" {
		run = "nothing (bootloader: " + v.BootError + ")"
	}
	img := fmt.Sprintf("flash %d bytes sha256 %.12s header version %q", v.FlashLen, v.FlashSHA, v.Header)
	if v.Check != nil {
		img += " (" + v.Check.Error() + ")"
	}
	return fmt.Sprintf("runs %s, %d boots, %s", run, v.Boots, img)
}

// askSim asks device id over its console (the gateway's own driver, with
// the gateway stopped), which also waits until the simulator has left any
// transfer, then reads its persisted state and flash.
func askSim(ctx context.Context, env *Env, id string) (simView, error) {
	var v simView
	dev, err := xmodem.Driver().Open(devices.Config{ID: id, Protocol: "xmodem", HardwareID: hardware,
		Address: filepath.Join(env.Work, "dev", id), Baud: env.o.Baud}, nil)
	if err != nil {
		return v, err
	}
	defer dev.Close()
	actx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		v.Console, err = dev.Identify(actx)
		if err == nil {
			break
		}
		select {
		case <-actx.Done():
			return v, fmt.Errorf("device %s does not answer on its console: %w", id, err)
		case <-time.After(time.Second):
		}
	}
	dir := filepath.Join(env.Work, "sim", id)
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return v, err
	}
	var state struct { // the simulator's state.json; other fields are ignored
		Running   string `json:"running"`
		BootError string `json:"boot_error"`
		Boots     int    `json:"boots"`
	}
	if err := json.Unmarshal(b, &state); err != nil {
		return v, fmt.Errorf("%s/state.json: %w", id, err)
	}
	v.Running, v.BootError, v.Boots = state.Running, state.BootError, state.Boots
	flash, err := os.ReadFile(filepath.Join(dir, "flash.bin"))
	if err != nil {
		return v, err
	}
	v.FlashLen, v.FlashSHA = len(flash), sha256Hex(flash)
	var h sim.Header
	h, v.Check = sim.VerifyImage(flash, hardware)
	v.Header = h.Version
	return v, nil
}

// checkAgainstSim compares the gateway's final status with every
// simulated device: the gateway's version must be the one the device runs
// from a complete, known image, unless the gateway says the device needs
// recovery (allowed only if recoveryOK); the canary's step must end
// committed, rolled back or failed before anything was written (the others
// also skipped), and agree with what the device runs.
func checkAgainstSim(ctx context.Context, t *testing.T, env *Env, st api.Status, want images, recoveryOK bool) {
	t.Helper()
	for i, id := range env.IDs {
		v, err := askSim(ctx, env, id)
		if err != nil {
			t.Errorf("device %s: %v", id, err)
			continue
		}
		gw := deviceOf(st, id)
		_, step, hasStep := lastStep(st, id)
		t.Logf("device %s: simulator %s; console says version %q sha256 %.12s; gateway says version %q state %q, step %q",
			id, v, v.Console.Version, v.Console.ImageSHA256, gw.Version, gw.State, step.Phase)
		verified := v.Check == nil && want[v.FlashSHA] != "" && v.Running != "" && v.Running == want[v.FlashSHA]
		if gw.State == needsRecovery {
			if !recoveryOK {
				t.Errorf("device %s: gateway reports %s; after dense kills every device must end committed or rolled back to a verified image (simulator %s)", id, needsRecovery, v)
			}
			continue
		}
		switch {
		case !verified:
			t.Errorf("device %s: gateway reports version %q state %q, but the simulator %s: the gateway must say %s",
				id, gw.Version, gw.State, v, needsRecovery)
		case gw.Version != v.Running:
			t.Errorf("device %s: gateway reports version %q, the simulator runs %q", id, gw.Version, v.Running)
		}
		if !hasStep {
			t.Errorf("device %s: no job step", id)
			continue
		}
		ok := []string{"committed", "rolled-back"}
		if i > 0 {
			ok = append(ok, "skipped")
		}
		end := step.Phase
		if notStarted(step) {
			end = "not-started" // nothing was written: the device keeps its verified image
		} else if !slices.Contains(ok, end) {
			t.Errorf("device %s: step ended %q (%s), want one of %v (or failed before anything was written)", id, step.Phase, step.Error, ok)
			continue
		}
		if w := map[string]string{"committed": newVersion, "rolled-back": oldVersion, "skipped": oldVersion, "not-started": oldVersion}[end]; verified && v.Running != w {
			t.Errorf("device %s: step ended %s but the simulator runs %q, want %q", id, end, v.Running, w)
		}
	}
}
