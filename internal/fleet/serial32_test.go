// SPDX-License-Identifier: Apache-2.0

package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
)

// Serial devices of the 32-line measurement: XMODEM-1K console
// bootloaders paced at 115200 baud, 64 KiB images (a backup read with
// dump and the new image pushed: about 6 s on the line each).
const (
	serialBaud  = 115200
	serialImage = 64 << 10
)

// BenchmarkSerial32 updates 32 simulated serial devices on 32 lines (one
// segment each, max_parallel 32) with one job (one group, canary 0,
// automatic approval, window open), and the same device alone on a
// gateway of its own (FIELDGATE_SERIAL_SINGLES runs, default 3; the
// slowest counts). It reports the job's wall time, created to succeeded,
// for both and their ratio (issue 20's goal: at most 1.1), the median
// and slowest step phases, and the CPU time fieldgated and fieldgate-sim
// used. The simulated devices share the machine's cores with fieldgated,
// which real devices do not.
func BenchmarkSerial32(b *testing.B) {
	singles := 3
	if s := os.Getenv("FIELDGATE_SERIAL_SINGLES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("FIELDGATE_SERIAL_SINGLES=%q: want a count of at least 1", s)
		}
		singles = n
	}
	bin := buildBinaries(b)
	for b.Loop() {
		var slowest serialRun
		for i := range singles {
			r := serialJob(b, bin, 1)
			b.Logf("1 device, run %d: %s", i+1, r)
			if r.job > slowest.job {
				slowest = r
			}
		}
		all := serialJob(b, bin, 32)
		ratio := all.job.Seconds() / slowest.job.Seconds()
		b.Logf("32 devices: %s", all)
		b.Logf("32 devices / slowest single device: %.2f×", ratio)
		b.ReportMetric(all.job.Seconds(), "s/job32")
		b.ReportMetric(slowest.job.Seconds(), "s/job1")
		b.ReportMetric(ratio, "ratio")
		b.ReportMetric(all.daemonCPU.Seconds(), "cpu-s/fieldgated32")
	}
}

// serialRun is what one run measured.
type serialRun struct {
	job                time.Duration // job created → succeeded
	backup, transfer   []time.Duration
	rest               []time.Duration // activate, verify, soak, commit
	daemonCPU, simCPU  time.Duration
	afterFirstCommit   int // steps that began after the first commit (a canary)
	firstStart, spread time.Duration
}

func (r serialRun) String() string {
	return fmt.Sprintf("job %s; backup %s, transfer %s, activate to commit %s (median/max); steps began within %s of the job (first after %s); CPU fieldgated %s, fieldgate-sim %s",
		r.job.Round(10*time.Millisecond), medMax(r.backup), medMax(r.transfer), medMax(r.rest),
		r.spread.Round(10*time.Millisecond), r.firstStart.Round(10*time.Millisecond),
		r.daemonCPU.Round(10*time.Millisecond), r.simCPU.Round(10*time.Millisecond))
}

func medMax(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Sorted(slices.Values(ds))
	return fmt.Sprintf("%.2fs/%.2fs", s[len(s)/2].Seconds(), s[len(s)-1].Seconds())
}

// serialJob runs a gateway with n serial devices until its one job
// succeeds and measures it from fieldgatectl status and the audit log.
func serialJob(tb testing.TB, bin string, n int) serialRun {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var devs []simDevice
	for i := range n {
		devs = append(devs, simDevice{id: fmt.Sprintf("io-%02d", i+1), group: "line1", kind: "xmodem-console", protocol: "xmodem",
			serial: true, baud: serialBaud,
			simOpts: map[string]string{"image_size": strconv.Itoa(serialImage)}})
	}
	gw := setupGateway(tb, ctx, gatewayOptions{bin: bin, protocol: "xmodem", imageSize: serialImage,
		devices: devs, maxParallel: n, groups: []group{{name: "line1", canary: 0}}})
	defer gw.stop()
	gw.start(tb)
	st, err := gw.poll(ctx, "the job to end", func(st api.Status) bool {
		return len(st.Jobs) > 0 && terminal(st.Jobs[0].Phase)
	})
	if err != nil {
		tb.Fatal(err)
	}
	var r serialRun
	if r.daemonCPU, err = gw.cpu("fieldgated"); err != nil {
		tb.Fatal(err)
	}
	if r.simCPU, err = gw.cpu("sim"); err != nil {
		tb.Fatal(err)
	}
	if len(st.Jobs) != 1 {
		tb.Fatalf("%d jobs, want 1 over all %d devices", len(st.Jobs), n)
	}
	j := st.Jobs[0]
	if j.Phase != "succeeded" || len(j.Steps) != n {
		tb.Fatalf("job %s ended %s with %d steps, want succeeded with %d: %+v", j.ID, j.Phase, len(j.Steps), n, j.Steps)
	}
	for _, d := range st.Devices {
		if d.Version != newVersion {
			tb.Errorf("device %s runs %q, want %s", d.ID, d.Version, newVersion)
		}
	}
	r.job = j.Updated.Sub(j.Created)

	// The step phases, from the audit log: when each step entered backup,
	// transfer, activate and committed.
	out, err := gw.tool(ctx, "fieldgatectl", "--socket", gw.socket, "audit", "export")
	if err != nil {
		tb.Fatalf("fieldgatectl audit export: %v: %s", err, out)
	}
	at := map[string]map[string]time.Time{} // device → event type → time
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var e api.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			tb.Fatalf("audit export line %q: %v", l, err)
		}
		if e.Device != "" && e.Job == j.ID {
			if at[e.Device] == nil {
				at[e.Device] = map[string]time.Time{}
			}
			at[e.Device][e.Type] = e.Time
		}
	}
	var firstCommit, first, last time.Time
	for _, ev := range at {
		if c := ev["step-committed"]; firstCommit.IsZero() || c.Before(firstCommit) {
			firstCommit = c
		}
	}
	for id, ev := range at {
		b, t, a, c := ev["step-backup"], ev["step-transfer"], ev["step-activate"], ev["step-committed"]
		if b.IsZero() || t.IsZero() || a.IsZero() || c.IsZero() {
			tb.Fatalf("device %s: audit log lacks a step phase: %v", id, ev)
		}
		r.backup = append(r.backup, t.Sub(b))
		r.transfer = append(r.transfer, a.Sub(t))
		r.rest = append(r.rest, c.Sub(a))
		if b.After(firstCommit) {
			r.afterFirstCommit++
		}
		if first.IsZero() || b.Before(first) {
			first = b
		}
		if b.After(last) {
			last = b
		}
	}
	r.firstStart, r.spread = first.Sub(j.Created), last.Sub(first)
	if r.afterFirstCommit > 0 {
		tb.Logf("%d of %d steps began only after the first commit: the group ran with a canary although it says canary: 0", r.afterFirstCommit, n)
	}
	return r
}
