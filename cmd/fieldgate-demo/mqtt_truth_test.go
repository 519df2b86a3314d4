// SPDX-License-Identifier: Apache-2.0

package main

// Property: MQTT tells the truth. What a central consumer reads from the
// retained tree converges to what fieldgatectl status says, at any moment
// of a job; events keep their JSON types; the last will names the gateway.
// Debian packages: mosquitto, mosquitto-clients.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
)

// retainedView is the retained tree as a fresh subscriber reads it.
type retainedView struct {
	Gateway propGateway
	Devices map[string]propDevice
	Raw     map[string]string
}

// retainedNow subscribes afresh and reads the retained gateway status and
// the retained document of every device in ids.
func retainedNow(t *testing.T, m *mosquitto, ids []string) (retainedView, error) {
	t.Helper()
	v := retainedView{Devices: map[string]propDevice{}, Raw: map[string]string{}}
	devs, err := m.retained(t, gwPrefix+"/devices/+", len(ids))
	if err != nil {
		return v, err
	}
	st, err := m.retained(t, gwPrefix+"/status", 1)
	if err != nil {
		return v, err
	}
	for topic, p := range devs {
		v.Raw[topic] = p
		var d propDevice
		if err := json.Unmarshal([]byte(p), &d); err != nil {
			return v, fmt.Errorf("retained %s = %q: %w", topic, p, err)
		}
		v.Devices[d.ID] = d
	}
	p := st[gwPrefix+"/status"]
	v.Raw[gwPrefix+"/status"] = p
	if err := json.Unmarshal([]byte(p), &v.Gateway); err != nil {
		return v, fmt.Errorf("retained status = %q: %w", p, err)
	}
	return v, nil
}

// differences lists where the retained view and a status disagree: each
// device's state, version and job, and the gateway's state and health.
func differences(v retainedView, st propStatus, ids []string) []string {
	var diffs []string
	for _, id := range ids {
		want, ok := st.device(id)
		if !ok {
			diffs = append(diffs, fmt.Sprintf("status has no device %s", id))
			continue
		}
		got, ok := v.Devices[id]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("no retained document for device %s", id))
			continue
		}
		if got.State != want.State || got.Version != want.Version || got.Job != want.Job {
			diffs = append(diffs, fmt.Sprintf("device %s: retained state=%q version=%q job=%q, status state=%q version=%q job=%q",
				id, got.State, got.Version, got.Job, want.State, want.Version, want.Job))
		}
	}
	switch v.Gateway.State {
	case "running", "stopped", "degraded":
	default:
		diffs = append(diffs, fmt.Sprintf("gateway: retained state=%q, want running, stopped or degraded", v.Gateway.State))
	}
	if v.Gateway.State != st.Gateway.State || v.Gateway.Healthy != st.Gateway.Healthy {
		diffs = append(diffs, fmt.Sprintf("gateway: retained state=%q healthy=%v, status state=%q healthy=%v",
			v.Gateway.State, v.Gateway.Healthy, st.Gateway.State, st.Gateway.Healthy))
	}
	return diffs
}

// converged takes a status, lets the outbox drain for settle, reads the
// retained tree and takes a status again: the retained tree must equal one
// of the two. Both move during a job, so it tries a few times before it
// calls a difference a mismatch.
func converged(t *testing.T, ctx context.Context, m *mosquitto, env *Env, settle time.Duration) (propStatus, []string) {
	t.Helper()
	var diffs []string
	var st propStatus
	for try := 0; try < 5; try++ {
		before, err := propStatusOf(ctx, env)
		if err != nil {
			diffs = []string{err.Error()}
			continue
		}
		st = before
		select {
		case <-ctx.Done():
			return st, append(diffs, ctx.Err().Error())
		case <-time.After(settle): // the outbox drains to the broker; not a timing assertion
		}
		v, err := retainedNow(t, m, env.IDs)
		if err != nil {
			diffs = []string{err.Error()}
			continue
		}
		after, err := propStatusOf(ctx, env)
		if err != nil {
			diffs = []string{err.Error()}
			continue
		}
		d1, d2 := differences(v, before, env.IDs), differences(v, after, env.IDs)
		if len(d1) == 0 || len(d2) == 0 {
			return after, nil
		}
		diffs = d1
	}
	return st, diffs
}

var numberInString = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// eventProblems checks event payloads: no field carries an empty string
// (a field that does not apply is omitted), and detail values keep their
// JSON types (a number or a boolean is not sent as a string). It also
// reports whether some event carried a "floor".
func eventProblems(payloads []string) (problems []string, floors int) {
	for _, p := range payloads {
		var e map[string]any
		if err := json.Unmarshal([]byte(p), &e); err != nil {
			problems = append(problems, fmt.Sprintf("event %q: %v", p, err))
			continue
		}
		typ, _ := e["type"].(string)
		where := fmt.Sprintf("event seq %v (%s)", e["seq"], typ)
		for k, v := range e {
			if s, ok := v.(string); ok && s == "" {
				problems = append(problems, fmt.Sprintf("%s: %q is an empty string, want it omitted", where, k))
			}
		}
		detail, _ := e["detail"].(map[string]any)
		keys := make([]string, 0, len(detail))
		for k := range detail {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := detail[k]
			if k == "floor" {
				floors++
				if _, ok := v.(float64); !ok {
					problems = append(problems, fmt.Sprintf("%s: detail floor = %#v, want a JSON number", where, v))
				}
				continue
			}
			s, ok := v.(string)
			switch {
			case !ok:
			case s == "":
				problems = append(problems, fmt.Sprintf("%s: detail %s is an empty string, want it omitted", where, k))
			case numberInString.MatchString(s) && k != "version" && !strings.HasSuffix(k, "_version"):
				problems = append(problems, fmt.Sprintf("%s: detail %s = %q, a number sent as a string", where, k, s))
			case s == "true" || s == "false":
				problems = append(problems, fmt.Sprintf("%s: detail %s = %q, a boolean sent as a string", where, k, s))
			}
		}
	}
	return problems, floors
}

// TestPropertyMQTTTellsTheTruth runs a job over three paced console
// devices through mosquitto and, at random moments, compares what a fresh
// subscriber reads from the retained tree with fieldgatectl status --json:
// each device's state, version and job, and the gateway's state and health
// must converge. Then an emergency stop must show as state stopped and
// healthy false in the retained status, events must keep their JSON types
// and omit what does not apply, and the last will must name the site and
// the gateway.
func TestPropertyMQTTTellsTheTruth(t *testing.T) {
	m := startMosquitto(t)
	if testing.Short() {
		t.Skip("property test builds and runs every binary")
	}
	bin := buildAll(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// 115200 baud: each device's backup and image take about 7 s on the
	// line, so the job runs for about half a minute.
	env, err := Setup(ctx, Options{Bin: bin, Work: filepath.Join(t.TempDir(), "work"), Out: output(t),
		Devices: 3, Baud: 115200, Broker: m.URL(), Approval: "auto"})
	if env != nil {
		defer env.Close()
	}
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("work dir: %s", env.Work)
		}
	}()
	events := subscribe(t, ctx, m, gwPrefix+"/events")
	if err := env.StartDaemon(); err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	const settle = time.Second

	// The first moment is the one where a job has just been staged: the
	// devices wait for their turn (update-pending).
	if _, err := pollStatus(ctx, env, "a job", func(st api.Status) bool { return len(st.Jobs) > 0 }); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	mismatches, samples := 0, 0
	check := func(when string) propStatus {
		st, diffs := converged(t, ctx, m, env, settle)
		samples++
		if len(diffs) > 0 {
			mismatches++
			t.Errorf("%s (%.1fs into the job): the retained tree does not converge to fieldgatectl status:\n  %s",
				when, time.Since(start).Seconds(), strings.Join(diffs, "\n  "))
		}
		return st
	}
	st := check("a job staged")
	for ctx.Err() == nil {
		if len(st.Jobs) > 0 && !slices.ContainsFunc(st.Jobs, func(j api.Job) bool { return !terminal(j.Phase) }) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(500+rng.IntN(3000)) * time.Millisecond): // a random moment; not a timing assertion
		}
		st = check("a random moment")
	}
	if ctx.Err() != nil {
		t.Fatalf("the job did not end: %v", ctx.Err())
	}
	t.Logf("job ended after %v; %d moments compared, %d never converged", time.Since(start).Round(time.Second), samples, mismatches)
	for _, id := range env.IDs {
		if d, _ := st.device(id); d.Version != newVersion {
			t.Errorf("device %s at %q after the job, want %s", id, d.Version, newVersion)
		}
	}
	check("after the job")

	// Emergency stop: the retained status says stopped and unhealthy.
	var out bytes.Buffer
	if err := runToolTo(ctx, env.o, &out, "fieldgatectl", "--socket", env.Socket, "stop"); err != nil {
		t.Fatalf("fieldgatectl stop: %v\n%s", err, out.String())
	}
	var v retainedView
	for deadline := time.Now().Add(15 * time.Second); ; {
		v, err = retainedNow(t, m, env.IDs)
		if err == nil && v.Gateway.State == "stopped" && !v.Gateway.Healthy {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("retained status during an emergency stop = %s (%v), want state stopped and healthy false", v.Raw[gwPrefix+"/status"], err)
			break
		}
		time.Sleep(200 * time.Millisecond) // waiting for delivery; not a timing assertion
	}
	if st, err := propStatusOf(ctx, env); err != nil || st.Gateway.State != "stopped" {
		t.Errorf("fieldgatectl status during an emergency stop: gateway state %q (%v), want stopped", st.Gateway.State, err)
	}
	check("during the emergency stop")
	out.Reset()
	if err := runToolTo(ctx, env.o, &out, "fieldgatectl", "--socket", env.Socket, "resume"); err != nil {
		t.Errorf("fieldgatectl resume: %v\n%s", err, out.String())
	}
	check("after resume")

	// Events: JSON types kept, fields that do not apply omitted.
	payloads := events.payloads()
	problems, floors := eventProblems(payloads)
	if len(payloads) == 0 {
		t.Error("no events received on " + gwPrefix + "/events")
	}
	if floors == 0 {
		t.Errorf("no event among %d carries the raised floor in its detail (step-committed)", len(payloads))
	}
	if len(problems) > 0 {
		t.Errorf("%d problems in %d events:\n  %s", len(problems), len(payloads), strings.Join(problems, "\n  "))
	}

	// The last will names the site and the gateway.
	env.KillDaemon()
	will, last := waitLastWill(t, m, gwPrefix)
	if will.Site != "demo" || will.Gateway != "gw1" {
		t.Errorf("last will = %s, want site demo and gateway gw1 in it", last)
	}
}
