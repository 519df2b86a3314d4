// SPDX-License-Identifier: Apache-2.0

package main

// Property tests through the real binaries. They judge the gateway by
// what the simulated devices themselves counted (fieldgate-sim counters:
// flash writes, partial writes, bytes written, boots), never by what the
// gateway reports about itself.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
)

// simCounters is one device's own account, as `fieldgate-sim counters`
// prints it (devices/sim.Counters).
type simCounters struct {
	Writes        int   `json:"writes"`
	PartialWrites int   `json:"partial_writes"`
	BytesWritten  int64 `json:"bytes_written"`
	Boots         int   `json:"boots"`
	Writing       bool  `json:"writing"`
}

func (c simCounters) String() string {
	s := fmt.Sprintf("writes=%d partial=%d bytes=%d boots=%d", c.Writes, c.PartialWrites, c.BytesWritten, c.Boots)
	if c.Writing {
		s += " (writing)"
	}
	return s
}

// readSimCounters asks fieldgate-sim for the counters of every device in
// the simulator configuration simConfig.
func readSimCounters(ctx context.Context, o Options, simConfig string) (map[string]simCounters, error) {
	var out bytes.Buffer
	if err := runToolTo(ctx, o, &out, "fieldgate-sim", "counters", "--config", simConfig); err != nil {
		return nil, fmt.Errorf("%w: %s", err, out.String())
	}
	var m map[string]simCounters
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		return nil, fmt.Errorf("fieldgate-sim counters printed %q: %w", out.String(), err)
	}
	return m, nil
}

// propStatus is `fieldgatectl status --json`, decoded here (not with
// api.Status) so that the test names the fields it depends on: the
// gateway's state and a device's held list.
type propStatus struct {
	Gateway propGateway  `json:"gateway"`
	Devices []propDevice `json:"devices"`
	Jobs    []api.Job    `json:"jobs"`
}

type propGateway struct {
	Online  bool            `json:"online"`
	ID      string          `json:"gateway"`
	Site    string          `json:"site"`
	State   string          `json:"state"` // running | stopped | degraded
	Healthy bool            `json:"healthy"`
	Health  []api.Condition `json:"health"`
}

type propDevice struct {
	ID      string            `json:"id"`
	Version string            `json:"version"`
	State   string            `json:"state"`
	Job     string            `json:"job"`
	Held    []json.RawMessage `json:"held"` // held target sha256s, or objects carrying one
}

// heldSHAs returns the sha256s of d's holds.
func (d propDevice) heldSHAs() []string {
	var sums []string
	for _, raw := range d.Held {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			sums = append(sums, s)
			continue
		}
		var h struct {
			SHA256 string `json:"sha256"`
		}
		if json.Unmarshal(raw, &h) == nil {
			sums = append(sums, h.SHA256)
		}
	}
	return sums
}

func (st propStatus) device(id string) (propDevice, bool) {
	i := slices.IndexFunc(st.Devices, func(d propDevice) bool { return d.ID == id })
	if i < 0 {
		return propDevice{}, false
	}
	return st.Devices[i], true
}

func (st propStatus) hasCondition(name, subject string) bool {
	return slices.ContainsFunc(st.Gateway.Health, func(c api.Condition) bool {
		return c.Name == name && (c.Subject == "" || c.Subject == subject)
	})
}

func propStatusOf(ctx context.Context, env *Env) (propStatus, error) {
	var out bytes.Buffer
	var st propStatus
	if err := runToolTo(ctx, env.o, &out, "fieldgatectl", "--socket", env.Socket, "status", "--json"); err != nil {
		return st, fmt.Errorf("%w: %s", err, out.String())
	}
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		return st, fmt.Errorf("fieldgatectl status --json: %w", err)
	}
	return st, nil
}

// durationEnv reads a duration from the environment variable name.
func durationEnv(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 2m", name, s)
	}
	return d
}

// counterWatch polls one device's counters and remembers every change, for
// the failure message.
type counterWatch struct {
	env       *Env
	simConfig string
	id        string
	start     time.Time
	last      simCounters
	changes   []string
}

func (w *counterWatch) poll(ctx context.Context) (simCounters, error) {
	m, err := readSimCounters(ctx, w.env.o, w.simConfig)
	if err != nil {
		return w.last, err
	}
	c := m[w.id]
	if c != w.last || len(w.changes) == 0 {
		w.changes = append(w.changes, fmt.Sprintf("%6.1fs %s", time.Since(w.start).Seconds(), c))
		w.last = c
	}
	return c, nil
}

// watchFor polls the counters until d has passed (or ctx ends).
func (w *counterWatch) watchFor(ctx context.Context, d time.Duration) simCounters {
	end := time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		w.poll(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond): // polling a peer process; not a timing assertion
		}
	}
	c, _ := w.poll(ctx)
	return c
}

// until polls the counters until cond holds, or gives up after d.
func (w *counterWatch) until(ctx context.Context, d time.Duration, cond func(simCounters) bool) (simCounters, bool) {
	end := time.Now().Add(d)
	for {
		c, err := w.poll(ctx)
		if err == nil && cond(c) {
			return c, true
		}
		if !time.Now().Before(end) || ctx.Err() != nil {
			return c, false
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond): // polling a peer process; not a timing assertion
		}
	}
}

func (w *counterWatch) history() string { return "\n  " + strings.Join(w.changes, "\n  ") }

// failedOnce is one simulated device whose new image never boots
// (boot-fail), seen through a running gateway.
type failedOnce struct {
	env       *Env
	simConfig string
	id        string
	// once is what one attempt leaves in the device's counters: the image
	// and the re-pushed backup.
	once simCounters
	// exact says that once.BytesWritten is known exactly.
	exact bool
}

// checkFailureFlashedOnce is the property "a failure is flashed once, not
// forever": for FIELDGATE_PROPERTY_DURATION (2m) with refresh_interval
// at its minimum, the device's own counters show exactly one attempt (the
// image and its rollback re-push); status shows the hold and the
// update-held condition; fieldgatectl retry leads to exactly one more
// attempt.
func checkFailureFlashedOnce(t *testing.T, ctx context.Context, f failedOnce, refresh time.Duration) {
	env, id := f.env, f.id
	duration := durationEnv(t, "FIELDGATE_PROPERTY_DURATION", 2*time.Minute)
	w := &counterWatch{env: env, simConfig: f.simConfig, id: id, start: time.Now()}
	before, err := w.poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if before.Writes != 0 {
		t.Fatalf("device %s counted %s before fieldgated started, want no writes", id, before)
	}
	if err := env.StartDaemon(); err != nil {
		t.Fatal(err)
	}
	t.Logf("watching %s for %v (refresh_interval %v; FIELDGATE_PROPERTY_DURATION sets how long)", id, duration, refresh)
	got := w.watchFor(ctx, duration)
	sameAttempts := func(c simCounters, n int) bool {
		ok := c.Writes == n*f.once.Writes && c.PartialWrites == 0 && !c.Writing
		if f.exact {
			ok = ok && c.BytesWritten == int64(n)*f.once.BytesWritten
		}
		return ok
	}
	if !sameAttempts(got, 1) {
		t.Errorf("device %s counted %s after %v, want exactly one attempt: %d writes (the image and its rollback re-push), no partial ones%s; counter history:%s",
			id, got, duration, f.once.Writes, bytesNote(f), w.history())
	} else {
		t.Logf("device %s after %v: %s (one attempt)", id, duration, got)
	}

	st, err := propStatusOf(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	var sha string
	for _, j := range st.Jobs {
		for _, s := range j.Steps {
			if s.Device == id {
				sha = j.SHA256
				t.Logf("job %s (%s): device %s ended %s after %d attempts: %s", j.ID, j.Phase, id, s.Phase, s.Attempts, s.Error)
			}
		}
	}
	d, ok := st.device(id)
	switch {
	case !ok:
		t.Errorf("fieldgatectl status --json has no device %s", id)
	case sha == "":
		t.Errorf("fieldgatectl status --json has no job with a step for %s", id)
	case !slices.Contains(d.heldSHAs(), sha):
		t.Errorf("status device %s held = %s, want the failed job's target %s among them", id, rawList(d.Held), sha)
	}
	if !st.hasCondition("update-held", id) {
		t.Errorf("status health = %v, want a condition update-held for %s", conditionNames(st), id)
	}

	var out bytes.Buffer
	if err := runToolTo(ctx, env.o, &out, "fieldgatectl", "--socket", env.Socket, "retry", id); err != nil {
		t.Errorf("fieldgatectl retry %s: %v\n%s", id, err, out.String())
		return
	}
	t.Logf("fieldgatectl retry %s: %s", id, strings.TrimSpace(out.String()))
	if c, ok := w.until(ctx, 90*time.Second, func(c simCounters) bool { return c.Writes >= 2*f.once.Writes && !c.Writing }); !ok {
		t.Errorf("device %s counted %s within 90s of fieldgatectl retry, want a second attempt (%d writes); counter history:%s", id, c, 2*f.once.Writes, w.history())
		return
	}
	settle := max(30*time.Second, 3*refresh)
	got = w.watchFor(ctx, settle)
	if !sameAttempts(got, 2) {
		t.Errorf("device %s counted %s %v after the retried attempt, want exactly two attempts in all (%d writes, no partial ones); counter history:%s",
			id, got, settle, 2*f.once.Writes, w.history())
	} else {
		t.Logf("device %s after retry: %s (exactly one more attempt)", id, got)
	}
	if st, err := propStatusOf(ctx, env); err == nil {
		if d, _ := st.device(id); !slices.Contains(d.heldSHAs(), sha) {
			t.Errorf("after the retried attempt failed, status device %s held = %s, want %s held again", id, rawList(d.Held), sha)
		}
	}
}

func bytesNote(f failedOnce) string {
	if !f.exact {
		return ""
	}
	return fmt.Sprintf(", %d bytes", f.once.BytesWritten)
}

func rawList(l []json.RawMessage) string {
	parts := make([]string, len(l))
	for i, r := range l {
		parts[i] = string(r)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func conditionNames(st propStatus) []string {
	var names []string
	for _, c := range st.Gateway.Health {
		n := c.Name
		if c.Subject != "" {
			n += "(" + c.Subject + ")"
		}
		names = append(names, n)
	}
	return names
}

// TestPropertyFailureFlashedOnce: a console device whose new image never
// boots gets the image once and its backup re-pushed once, however many
// refreshes pass, and exactly once more after fieldgatectl retry.
func TestPropertyFailureFlashedOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("property test builds and runs every binary for minutes")
	}
	t.Parallel() // minutes of mostly waiting: the two variants overlap
	duration := durationEnv(t, "FIELDGATE_PROPERTY_DURATION", 2*time.Minute)
	bin := buildAll(t)
	ctx, cancel := context.WithTimeout(context.Background(), duration+4*time.Minute)
	defer cancel()
	const refresh = 10 * time.Second // the smallest gateway.refresh_interval (daemon/config/validate.go)
	const id = "io16-a"
	env, err := Setup(ctx, Options{Bin: bin, Work: filepath.Join(t.TempDir(), "work"), Out: output(t), Devices: 1, Baud: 460800,
		Approval: "auto", Faults: map[string][]string{id: {"boot-fail"}}, RefreshInterval: refresh})
	if env != nil {
		defer env.Close()
	}
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	// The image is pushed with XMODEM-1K, whose padding the console cuts
	// by the image header; the backup is the console's factory image
	// (32768 bytes, its default image_size).
	const factorySize = 32 << 10
	checkFailureFlashedOnce(t, ctx, failedOnce{env: env, simConfig: env.SimConfig, id: id,
		once: simCounters{Writes: 2, BytesWritten: imageSize + factorySize}, exact: true}, refresh)
	if t.Failed() {
		t.Logf("work dir: %s", env.Work)
	}
}

// TestPropertyFailureFlashedOnceModbus is TestPropertyFailureFlashedOnce
// over a network protocol: a Modbus TCP device (single slot) whose new
// image never boots.
func TestPropertyFailureFlashedOnceModbus(t *testing.T) {
	if testing.Short() {
		t.Skip("property test builds and runs every binary for minutes")
	}
	t.Parallel() // minutes of mostly waiting: the two variants overlap
	duration := durationEnv(t, "FIELDGATE_PROPERTY_DURATION", 2*time.Minute)
	var plc protoDevice
	for _, d := range everyProtocol() {
		if d.kind == "modbus-tcp" {
			plc = d
		}
	}
	if plc.id == "" {
		t.Fatal("everyProtocol() has no modbus-tcp device")
	}
	bin := buildAll(t)
	ctx, cancel := context.WithTimeout(context.Background(), duration+4*time.Minute)
	defer cancel()
	work := filepath.Join(t.TempDir(), "work")
	// setupEveryProtocol configures refresh_interval 10s, the smallest the
	// configuration accepts.
	env, err := setupEveryProtocol(ctx, Options{Bin: bin, Work: work, Out: output(t)}, []protoDevice{plc}, []string{"boot-fail"})
	if env != nil {
		defer env.Close()
	}
	if err != nil {
		t.Fatalf("setupEveryProtocol: %v", err)
	}
	// Both the image (mkimage --size 4096) and the backup (the factory
	// image, image_size 4096) are written as file records.
	checkFailureFlashedOnce(t, ctx, failedOnce{env: env, simConfig: filepath.Join(env.Work, "sim.yaml"), id: plc.id,
		once: simCounters{Writes: 2, BytesWritten: 4096 + 4096}, exact: true}, 10*time.Second)
	if t.Failed() {
		t.Logf("work dir: %s", env.Work)
	}
}
