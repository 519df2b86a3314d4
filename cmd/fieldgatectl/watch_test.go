// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin on a machine without a zone database
	"unicode/utf8"

	"github.com/fieldgate/fieldgate/daemon/api"
)

var (
	now0   = time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC)
	utcFmt = timeFormat{loc: time.UTC}
)

func ptr[T any](v T) *T { return &v }

func TestTransferText(t *testing.T) {
	tests := []struct {
		name     string
		p        api.Progress
		fallback int64
		width    int
		want     string
	}{
		{"daemon's rate", api.Progress{Done: 165888, Total: 393216, Rate: 11520}, 0, 20,
			"[########------------]  42%  162.0 KiB/384.0 KiB  rate 11.2 KiB/s  ETA 20s"},
		{"fallback rate", api.Progress{Done: 165888, Total: 393216}, 1024, 10,
			"[####------]  42%  162.0 KiB/384.0 KiB  rate 1.0 KiB/s  ETA 3m42s"},
		{"daemon's rate wins", api.Progress{Done: 0, Total: 4 << 20, Rate: 1 << 20}, 7, 0,
			"  0%  0 B/4.0 MiB  rate 1.0 MiB/s  ETA 4s"},
		{"rate not known yet", api.Progress{Done: 512, Total: 1024}, 0, 4,
			"[##--]  50%  512 B/1.0 KiB  rate -  ETA -"},
		{"done", api.Progress{Done: 1024, Total: 1024, Rate: 100}, 0, 4,
			"[####] 100%  1.0 KiB/1.0 KiB  rate 100 B/s  ETA 0s"},
		{"slow and long", api.Progress{Done: 1 << 20, Total: 10 << 30, Rate: 9600}, 0, 0,
			"  0%  1.0 MiB/10.0 GiB  rate 9.4 KiB/s  ETA 12d22h"},
		{"total unknown", api.Progress{Done: 2048}, 0, 10, "2.0 KiB sent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := transferText(tt.p, tt.fallback, tt.width); got != tt.want {
				t.Errorf("transferText(%+v, %d, %d) =\n%q, want\n%q", tt.p, tt.fallback, tt.width, got, tt.want)
			}
		})
	}
}

func TestSpan(t *testing.T) {
	tests := []struct {
		d             time.Duration
		secs, minutes string
	}{
		{-time.Second, "0s", "0m"},
		{0, "0s", "0m"},
		{400 * time.Millisecond, "0s", "1m"},
		{42 * time.Second, "42s", "1m"},
		{3*time.Minute + 5*time.Second, "3m05s", "4m"},
		{time.Hour, "1h00m", "1h00m"},
		{time.Hour + 2*time.Minute + 30*time.Second, "1h02m", "1h03m"},
		{51*time.Hour + 10*time.Minute, "2d03h", "2d03h"},
	}
	for _, tt := range tests {
		if got := span(tt.d); got != tt.secs {
			t.Errorf("span(%v) = %q, want %q", tt.d, got, tt.secs)
		}
		if got := spanMinutes(tt.d); got != tt.minutes {
			t.Errorf("spanMinutes(%v) = %q, want %q", tt.d, got, tt.minutes)
		}
	}
}

func TestStepLine(t *testing.T) {
	v := stepView{now: now0, tf: utcFmt, bar: 10}
	tests := []struct {
		name   string
		s      api.Step
		coarse bool
		want   string
	}{
		{"transfer", api.Step{Device: "plc-1", Phase: "transfer", Attempts: 1, Progress: &api.Progress{Done: 300, Total: 1000, Rate: 100}},
			false, "plc-1        transfer     attempts 1  [###-------]  30%  300 B/1000 B  rate 100 B/s  ETA 7s"},
		{"soak", api.Step{Device: "plc-1", Phase: "soak", Attempts: 1, SoakUntil: ptr(now0.Add(4*time.Minute + 12*time.Second))},
			false, "plc-1        soak         attempts 1  soak 4m12s left (until 2026-12-04 02:04:12 +00:00)"},
		{"soak in minutes", api.Step{Device: "plc-1", Phase: "soak", Attempts: 1, SoakUntil: ptr(now0.Add(4*time.Minute + 12*time.Second))},
			true, "plc-1        soak         attempts 1  soak 5m left (until 2026-12-04 02:04:12 +00:00)"},
		{"soak over", api.Step{Device: "plc-1", Phase: "soak", Attempts: 1, SoakUntil: ptr(now0.Add(-time.Second))},
			false, "plc-1        soak         attempts 1  soak 0s left (until 2026-12-04 01:59:59 +00:00)"},
		{"blocked", api.Step{Device: "plc-2", Phase: "pending", Blocked: "interlock: process running"},
			false, "plc-2        pending      attempts 0  (interlock: process running)"},
		{"failed", api.Step{Device: "plc-3", Phase: "rolled-back", Attempts: 3, Error: "verify: version 2.4.0"},
			false, "plc-3        rolled-back  attempts 3  verify: version 2.4.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := v
			v.coarse = tt.coarse
			if got := stepLine(tt.s, v); got != tt.want {
				t.Errorf("stepLine(%+v) =\n%q, want\n%q", tt.s, got, tt.want)
			}
		})
	}
}

func TestWindowLine(t *testing.T) {
	tests := []struct {
		name string
		w    api.WindowInfo
		want string
	}{
		{"open", api.WindowInfo{Group: "line-1", Window: "nightly", TimeZone: "Europe/Berlin", Open: true,
			Closes: ptr(now0.Add(83*time.Minute + 20*time.Second)), Next: []time.Time{now0.Add(24 * time.Hour)}},
			"line-1       window nightly (Europe/Berlin)  open, closes in 1h24m (at 2026-12-04 03:23:20 +00:00)"},
		{"closed", api.WindowInfo{Group: "line-2", Window: "weekend", TimeZone: "UTC", Next: []time.Time{now0.Add(51 * time.Hour)}},
			"line-2       window weekend (UTC)  closed, opens in 2d03h (at 2026-12-06 05:00:00 +00:00)"},
		{"never", api.WindowInfo{Group: "line-3", Window: "never", TimeZone: "UTC"},
			"line-3       window never (UTC)  closed, no opening ahead"},
	}
	for _, tt := range tests {
		if got := windowLine(tt.w, now0, utcFmt); got != tt.want {
			t.Errorf("windowLine(%s) =\n%q, want\n%q", tt.name, got, tt.want)
		}
	}
}

// TestTimesOneInstant: local time with its offset and --utc name the same
// instant, in the layout every command uses, and parseUntil reads it back.
func TestTimesOneInstant(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	opening := time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC)
	local, utc := timeFormat{loc: berlin}.at(opening), timeFormat{loc: time.UTC}.at(opening)
	if local != "2026-12-04 03:00:00 +01:00" || utc != "2026-12-04 02:00:00 +00:00" {
		t.Errorf("at(%v) = %q local, %q UTC; want 2026-12-04 03:00:00 +01:00 and 2026-12-04 02:00:00 +00:00", opening, local, utc)
	}
	for _, s := range []string{local, utc, "2026-12-04 03:00 +01:00", "2026-12-04T02:00:00Z"} {
		got, err := parseUntil(s, now0)
		if err != nil || !got.Equal(opening) {
			t.Errorf("parseUntil(%q) = %v, %v; want %v", s, got, err, opening)
		}
	}
	summer := time.Date(2026, 7, 1, 0, 30, 0, 0, time.UTC)
	if got := (timeFormat{loc: berlin}).at(summer); got != "2026-07-01 02:30:00 +02:00" {
		t.Errorf("at(%v) in Berlin = %q, want the summer offset +02:00", summer, got)
	}
	if got := utcFmt.at(time.Time{}); got != "-" {
		t.Errorf("at(zero) = %q, want -", got)
	}
}

// sampleStatus is a gateway in the middle of a job: one device
// transferring, one soaking, one waiting, one held update.
func sampleStatus(now time.Time, done int64) api.Status {
	return api.Status{
		Gateway: api.Gateway{ID: "gw1", Site: "plant", Version: "1.0.0", Time: now, State: "running",
			Health:          []api.Condition{{Name: "device-unreachable", Severity: "warning", Subject: "plc-9", Message: "no answer", Since: now0}},
			MetadataExpires: ptr(now0.Add(24 * time.Hour)), LastRefresh: ptr(now0)},
		Devices: []api.Device{
			{ID: "plc-1", Protocol: "tftp", Version: "2.4.0", State: "transfer", Job: "j1"},
			{ID: "plc-2", Protocol: "tftp", Version: "2.4.1", State: "soak", Job: "j1",
				Held: []api.Hold{{Target: "fw-2.3.bin", Version: "2.3", SHA256: "ab", Reason: "rolled back", Since: now0}}},
		},
		Jobs: []api.Job{
			{ID: "j0", Target: "fw-2.4.0.bin", Version: "2.4.0", Phase: "succeeded", Group: "line-1", Policy: "auto", Updated: now0},
			{ID: "j1", Target: "fw-2.4.1.bin", Version: "2.4.1", Phase: "running", Group: "line-1", Policy: "auto", Steps: []api.Step{
				{Device: "plc-1", Phase: "transfer", Attempts: 1, Progress: &api.Progress{Done: done, Total: 4096, Rate: 1024, Started: &now0}},
				{Device: "plc-2", Phase: "soak", Attempts: 1, SoakUntil: ptr(now0.Add(10 * time.Minute))},
			}},
		},
	}
}

func sampleWindows() []api.WindowInfo {
	return []api.WindowInfo{{Group: "line-1", Window: "nightly", TimeZone: "UTC", Open: true, Closes: ptr(now0.Add(3 * time.Hour))}}
}

// script is a fake daemon for the watcher: each fetch returns the next
// answer; after the last it cancels the watch.
type script struct {
	answers []func() (api.Status, []api.WindowInfo, error)
	cancel  context.CancelFunc
	calls   int
}

func (s *script) fetch(context.Context) (api.Status, []api.WindowInfo, error) {
	if s.calls >= len(s.answers) {
		s.cancel()
		return api.Status{}, nil, context.Canceled
	}
	s.calls++
	return s.answers[s.calls-1]()
}

func answer(st api.Status, ws []api.WindowInfo, err error) func() (api.Status, []api.WindowInfo, error) {
	return func() (api.Status, []api.WindowInfo, error) { return st, ws, err }
}

func runScript(t *testing.T, w *watcher, answers ...func() (api.Status, []api.WindowInfo, error)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &script{answers: answers, cancel: cancel}
	w.fetch = s.fetch
	if err := w.run(ctx); err != nil {
		t.Fatalf("watch = %v, want nil when interrupted", err)
	}
	if s.calls != len(answers) {
		t.Fatalf("watch asked %d times, want %d", s.calls, len(answers))
	}
}

// TestWatchPlain: without a terminal, the first refresh prints every line
// and the next ones only what changed, with the gateway's time and no
// escape codes; a daemon that goes away is reported once and the view is
// printed whole when it answers again.
func TestWatchPlain(t *testing.T) {
	var out bytes.Buffer
	w := newWatcher(&out, utcFmt, time.Millisecond)
	w.socket = "/run/fg.sock"
	second := sampleStatus(now0.Add(time.Second), 2048)
	second.Gateway.Health = nil
	second.Devices[1].Held = nil
	down := errors.New("connection refused")
	runScript(t, w,
		answer(sampleStatus(now0, 1024), sampleWindows(), nil),
		answer(sampleStatus(now0, 1024), sampleWindows(), nil), // nothing changed
		answer(second, sampleWindows(), nil),
		answer(api.Status{}, nil, down),
		answer(api.Status{}, nil, down),
		answer(second, sampleWindows(), nil),
	)
	got := out.String()
	if strings.Contains(got, "\x1b") {
		t.Errorf("plain output has escape codes:\n%q", got)
	}
	// The unreachable line has the client's clock: compare it apart.
	var lines []string
	unreachable := 0
	for _, l := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
		if strings.Contains(l, "daemon not reachable") {
			unreachable++
			if !strings.HasSuffix(l, "daemon not reachable at /run/fg.sock (connection refused); retrying every 1ms") {
				t.Errorf("unreachable line = %q", l)
			}
			l = "(unreachable)"
		}
		lines = append(lines, l)
	}
	if unreachable != 1 {
		t.Errorf("%d unreachable lines, want 1 for the same error twice", unreachable)
	}
	want := `2026-12-04 02:00:00 +00:00  gateway plant/gw1  fieldgated 1.0.0  running  NOT HEALTHY  broker disconnected
2026-12-04 02:00:00 +00:00  metadata expires 2026-12-05 02:00:00 +00:00  last refresh 2026-12-04 02:00:00 +00:00
2026-12-04 02:00:00 +00:00  health warning device-unreachable [plc-9]: no answer (since 2026-12-04 02:00:00 +00:00)
2026-12-04 02:00:00 +00:00  group line-1       window nightly (UTC)  open, closes in 3h00m (at 2026-12-04 05:00:00 +00:00)
2026-12-04 02:00:00 +00:00  job j0  fw-2.4.0.bin 2.4.0  succeeded  group line-1  approval auto  at 2026-12-04 02:00:00 +00:00
2026-12-04 02:00:00 +00:00  job j1  fw-2.4.1.bin 2.4.1  running  group line-1  approval auto
2026-12-04 02:00:00 +00:00  job j1: plc-1        transfer     attempts 1  [#####---------------]  25%  1.0 KiB/4.0 KiB  rate 1.0 KiB/s  ETA 3s
2026-12-04 02:00:00 +00:00  job j1: plc-2        soak         attempts 1  soak 10m left (until 2026-12-04 02:10:00 +00:00)
2026-12-04 02:00:00 +00:00  device plc-1        tftp     version 2.4.0      transfer  job j1
2026-12-04 02:00:00 +00:00  device plc-2        tftp     version 2.4.1      soak  job j1
2026-12-04 02:00:00 +00:00  plc-2 held: fw-2.3.bin 2.3 since 2026-12-04 02:00:00 +00:00: rolled back (fieldgatectl retry plc-2)
2026-12-04 02:00:01 +00:00  job j1: plc-1        transfer     attempts 1  [##########----------]  50%  2.0 KiB/4.0 KiB  rate 1.0 KiB/s  ETA 2s
2026-12-04 02:00:01 +00:00  health device-unreachable [plc-9] cleared
2026-12-04 02:00:01 +00:00  plc-2: hold on fw-2.3.bin 2.3 lifted
(unreachable)
2026-12-04 02:00:01 +00:00  daemon reachable again
2026-12-04 02:00:01 +00:00  gateway plant/gw1  fieldgated 1.0.0  running  NOT HEALTHY  broker disconnected
2026-12-04 02:00:01 +00:00  metadata expires 2026-12-05 02:00:00 +00:00  last refresh 2026-12-04 02:00:00 +00:00
2026-12-04 02:00:01 +00:00  group line-1       window nightly (UTC)  open, closes in 3h00m (at 2026-12-04 05:00:00 +00:00)
2026-12-04 02:00:01 +00:00  job j0  fw-2.4.0.bin 2.4.0  succeeded  group line-1  approval auto  at 2026-12-04 02:00:00 +00:00
2026-12-04 02:00:01 +00:00  job j1  fw-2.4.1.bin 2.4.1  running  group line-1  approval auto
2026-12-04 02:00:01 +00:00  job j1: plc-1        transfer     attempts 1  [##########----------]  50%  2.0 KiB/4.0 KiB  rate 1.0 KiB/s  ETA 2s
2026-12-04 02:00:01 +00:00  job j1: plc-2        soak         attempts 1  soak 10m left (until 2026-12-04 02:10:00 +00:00)
2026-12-04 02:00:01 +00:00  device plc-1        tftp     version 2.4.0      transfer  job j1
2026-12-04 02:00:01 +00:00  device plc-2        tftp     version 2.4.1      soak  job j1`
	if g := strings.Join(lines, "\n"); g != want {
		t.Errorf("plain watch output:\n%s\nwant\n%s", g, want)
	}
}

// TestWatchFallbackRate: a daemon that reports no rate (an older
// fieldgated) gets one measured between refreshes.
func TestWatchFallbackRate(t *testing.T) {
	var out bytes.Buffer
	w := newWatcher(&out, utcFmt, time.Millisecond)
	at := func(sec int, done int64) func() (api.Status, []api.WindowInfo, error) {
		st := sampleStatus(now0.Add(time.Duration(sec)*time.Second), done)
		st.Jobs[1].Steps[0].Progress.Rate = 0
		return answer(st, nil, nil)
	}
	runScript(t, w, at(0, 0), at(2, 1024))
	got := out.String()
	if !strings.Contains(got, "0%  0 B/4.0 KiB  rate -  ETA -") {
		t.Errorf("first refresh: want no rate yet, got\n%s", got)
	}
	if !strings.Contains(got, "25%  1.0 KiB/4.0 KiB  rate 512 B/s  ETA 6s") {
		t.Errorf("second refresh: want 1024 B in 2 s measured, got\n%s", got)
	}
}

// TestWatchTerminal: on a terminal the view is redrawn in place on the
// alternate screen, cut to the terminal's size, and the screen is given
// back when the watch ends.
func TestWatchTerminal(t *testing.T) {
	var out bytes.Buffer
	w := newWatcher(&out, utcFmt, time.Millisecond)
	w.size = func() (int, int) { return 60, 12 }
	runScript(t, w,
		answer(sampleStatus(now0, 1024), sampleWindows(), nil),
		answer(sampleStatus(now0.Add(time.Second), 2048), sampleWindows(), nil),
	)
	got := out.String()
	if !strings.HasPrefix(got, enterScreen+home) || !strings.HasSuffix(got, clearBelow+leaveScreen) {
		t.Fatalf("terminal output does not enter the alternate screen, redraw from home and leave it:\n%q", got)
	}
	frames := strings.Split(strings.TrimSuffix(strings.TrimPrefix(got, enterScreen), leaveScreen), home)[1:]
	if len(frames) != 2 {
		t.Fatalf("%d frames, want 2", len(frames))
	}
	lines := strings.Split(strings.TrimSuffix(frames[1], clearBelow), "\n")
	lines = lines[:len(lines)-1] // after the last newline
	if len(lines) != 11 {
		t.Errorf("frame has %d lines, want 11 (a 12-line terminal, the last one free)", len(lines))
	}
	for _, l := range lines {
		if !strings.HasSuffix(l, clearLine) {
			t.Errorf("line %q is not cleared to its end", l)
		}
		if n := utf8.RuneCountInString(strings.TrimSuffix(l, clearLine)); n > 60 {
			t.Errorf("line %q has %d characters, wider than the terminal's 60", l, n)
		}
	}
	want := []string{
		"fieldgatectl watch  2026-12-04 02:00:01 +00:00  every 1ms  …",
		"gateway plant/gw1  fieldgated 1.0.0  running  NOT HEALTHY  …",
		"metadata expires 2026-12-05 02:00:00 +00:00  last refresh 2…",
		"  warning device-unreachable [plc-9]: no answer (since 2026…",
		"",
		"WINDOWS",
		"  line-1       window nightly (UTC)  open, closes in 3h00m …",
		"",
		"JOBS",
		"  j0  fw-2.4.0.bin 2.4.0  succeeded  group line-1  approval…",
		"… 10 more lines (a taller terminal shows them)",
	}
	for i := range min(len(want), len(lines)) {
		if got := strings.TrimSuffix(lines[i], clearLine); got != want[i] {
			t.Errorf("line %d = %q, want %q", i, got, want[i])
		}
	}
}

// TestWatchTerminalUnreachable: the terminal says the daemon is not
// reachable on every refresh, and still gives the screen back.
func TestWatchTerminalUnreachable(t *testing.T) {
	var out bytes.Buffer
	w := newWatcher(&out, utcFmt, time.Millisecond)
	w.socket = "/run/fg.sock"
	w.size = func() (int, int) { return 200, 50 }
	down := errors.New("connection refused")
	runScript(t, w, answer(api.Status{}, nil, down), answer(api.Status{}, nil, down))
	got := out.String()
	if n := strings.Count(got, "daemon not reachable at /run/fg.sock (connection refused); retrying every 1ms"); n != 2 {
		t.Errorf("unreachable shown %d times, want on both refreshes:\n%q", n, got)
	}
	if !strings.HasSuffix(got, leaveScreen) {
		t.Errorf("terminal not given back:\n%q", got)
	}
}

func TestWatchIntervalMustBePositive(t *testing.T) {
	err := watchFlags{interval: 0}.run(context.Background(), "/nonexistent", &bytes.Buffer{}, utcFmt)
	if err == nil || !strings.Contains(err.Error(), "--interval") {
		t.Errorf("watch --interval 0 = %v, want an error naming --interval", err)
	}
}

func TestWatchFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "--watch", "--json"}, "--json and --watch"},
		{[]string{"status", "--watch", "--interval", "0s"}, "--interval 0s: must be positive"},
		{[]string{"watch", "--interval", "-1s"}, "--interval -1s: must be positive"},
	} {
		err := run(context.Background(), append([]string{"--socket", "/nonexistent/fg.sock"}, tt.args...), &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("fieldgatectl %v = %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
}
