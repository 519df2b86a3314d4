// SPDX-License-Identifier: Apache-2.0

package main

// fieldgatectl status --watch (alias: fieldgatectl watch): a live view of
// the gateway from its control socket. On a terminal it redraws one screen
// in place (the alternate screen, restored on exit and on Ctrl-C); when
// stdout is not a terminal it prints one plain line per change, each with
// the gateway's time, and no escape codes, so that it can be logged.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/control"
)

// watchFlags are the flags of status --watch and of watch.
type watchFlags struct {
	on       bool
	interval time.Duration
}

// run watches the daemon at socket until ctx ends, which is not an error.
// A daemon that cannot be reached is reported and asked again every
// interval, as watch(1) does.
func (f watchFlags) run(ctx context.Context, socket string, stdout io.Writer, tf timeFormat) error {
	if f.interval <= 0 {
		return fmt.Errorf("--interval %v: must be positive", f.interval)
	}
	w := newWatcher(stdout, tf, f.interval)
	w.socket = socket
	client := control.NewClient(socket)
	w.fetch = func(ctx context.Context) (api.Status, []api.WindowInfo, error) {
		st, err := client.Status(ctx)
		if err != nil {
			return st, nil, err
		}
		var ws []api.WindowInfo
		if err := client.Get(ctx, "/v1/windows", &ws); err != nil {
			return st, nil, fmt.Errorf("windows: %w", err)
		}
		return st, ws, nil
	}
	if file, ok := stdout.(*os.File); ok && term.IsTerminal(int(file.Fd())) {
		fd := int(file.Fd())
		w.size = func() (int, int) {
			cols, lines, err := term.GetSize(fd)
			if err != nil || cols <= 0 || lines <= 0 { // a pty nobody sized
				return 80, 24
			}
			return cols, lines
		}
	}
	return w.run(ctx)
}

// watcher keeps what the view needs between refreshes. It is used from
// one goroutine.
type watcher struct {
	out      io.Writer
	tf       timeFormat
	interval time.Duration
	socket   string
	fetch    func(context.Context) (api.Status, []api.WindowInfo, error)
	// size returns the terminal's columns and lines; nil when stdout is
	// not a terminal (plain output).
	size func() (cols, lines int)

	last    map[string]string   // plain: row key -> last line printed
	order   []string            // plain: row keys of the last refresh, in order
	gone    map[string]string   // plain: row key -> what to print when it goes
	samples map[string]progress // step key -> the last progress seen, for the fallback rate
	down    string              // the error while the daemon is not reachable
}

// progress is one sample of a transfer, at the gateway's clock.
type progress struct {
	at   time.Time
	done int64
}

func newWatcher(out io.Writer, tf timeFormat, interval time.Duration) *watcher {
	return &watcher{out: out, tf: tf, interval: interval,
		last: map[string]string{}, gone: map[string]string{}, samples: map[string]progress{}}
}

// Escape sequences of the terminal view (ECMA-48 and xterm's alternate
// screen, which every terminal emulator in use understands).
const (
	enterScreen = "\x1b[?1049h\x1b[?25l" // alternate screen, cursor hidden
	leaveScreen = "\x1b[?25h\x1b[?1049l" // cursor shown, normal screen back
	home        = "\x1b[H"
	clearLine   = "\x1b[K" // to the end of the line
	clearBelow  = "\x1b[J" // to the end of the screen
)

func (w *watcher) run(ctx context.Context) error {
	if w.size != nil {
		io.WriteString(w.out, enterScreen)
		defer io.WriteString(w.out, leaveScreen)
	}
	tick := time.NewTicker(w.interval)
	defer tick.Stop()
	for {
		w.refresh(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// refresh asks the daemon once and shows the answer.
func (w *watcher) refresh(ctx context.Context) {
	fctx, cancel := context.WithTimeout(ctx, max(w.interval, 5*time.Second))
	st, ws, err := w.fetch(fctx)
	cancel()
	if ctx.Err() != nil {
		return // interrupted: nothing to say
	}
	if err != nil {
		w.unreachable(err)
		return
	}
	plain := w.size == nil
	cols := 0
	if !plain {
		cols, _ = w.size()
	}
	rows := w.rows(st, ws, plain, cols)
	if plain {
		w.printChanges(st.Gateway.Time, rows)
	} else {
		w.draw(st.Gateway.Time, rows)
	}
}

// unreachable reports that the daemon did not answer: once per different
// error in plain output, on every refresh on the terminal.
func (w *watcher) unreachable(err error) {
	msg := fmt.Sprintf("daemon not reachable at %s (%v); retrying every %v", w.socket, err, w.interval)
	if w.size != nil {
		w.draw(time.Now(), []row{{text: msg}})
		return
	}
	if msg != w.down {
		fmt.Fprintf(w.out, "%s  %s\n", w.tf.at(time.Now()), msg)
	}
	w.down = msg
	clear(w.last) // everything again once it answers
	w.order = nil
}

// row is one line of the view.
type row struct {
	section string // heading it goes under on the terminal
	key     string // identity across refreshes (plain output prints it when its line changes)
	text    string // the line on the terminal
	prefix  string // what the plain line says before text (the context a heading gives)
	gone    string // plain: printed when the row disappears; "" prints nothing
}

// The terminal view's sections, in order.
const (
	secWindows = "WINDOWS"
	secJobs    = "JOBS"
	secDevices = "DEVICES"
	secHeld    = "HELD"
)

// barWidth is the progress bar's width in characters where the terminal's
// width does not decide it.
const barWidth = 20

// rows builds the view from one status and the windows. plain asks for
// countdowns in whole minutes, so that a line per change is not a line per
// second; cols (0: unknown) widens the progress bar on a wide terminal.
func (w *watcher) rows(st api.Status, ws []api.WindowInfo, plain bool, cols int) []row {
	g, now, tf := st.Gateway, st.Gateway.Time, w.tf
	health := "healthy"
	if !g.Healthy {
		health = "NOT HEALTHY"
	}
	broker := "disconnected"
	if g.BrokerConnected {
		broker = "connected"
	}
	rows := []row{{key: "gateway", text: fmt.Sprintf("gateway %s/%s  fieldgated %s  %s  %s  broker %s", g.Site, g.ID, g.Version, orDash(g.State), health, broker)}}
	exp, refreshed := "unknown (no refresh yet)", "-"
	if g.MetadataExpires != nil {
		exp = tf.at(*g.MetadataExpires)
	}
	if g.LastRefresh != nil {
		refreshed = tf.at(*g.LastRefresh)
	}
	meta := fmt.Sprintf("metadata expires %s  last refresh %s", exp, refreshed)
	if !plain { // a line per change would be a line per queued report
		meta += fmt.Sprintf("  outbox %d", g.OutboxDepth)
	}
	rows = append(rows, row{key: "metadata", text: meta})
	for _, c := range g.Health {
		subj := ""
		if c.Subject != "" {
			subj = " [" + c.Subject + "]"
		}
		rows = append(rows, row{key: "health/" + c.Name + "/" + c.Subject, text: "  " + conditionLine(c, tf), prefix: "health ", gone: "health " + c.Name + subj + " cleared"})
	}

	for _, win := range ws {
		rows = append(rows, row{section: secWindows, key: "window/" + win.Group, prefix: "group ", text: "  " + windowLine(win, now, tf)})
	}

	bar := barWidth
	if cols >= 140 {
		bar = 40
	}
	shown := 0
	for i, j := range st.Jobs {
		if terminalJob(j.Phase) && !newestTerminal(st.Jobs, i) {
			continue
		}
		shown++
		line := fmt.Sprintf("  %s  %s %s  %s  group %s  approval %s", j.ID, j.Target, j.Version, j.Phase, j.Group, j.Policy)
		if terminalJob(j.Phase) {
			line += "  at " + tf.at(j.Updated)
			if j.Reason != "" {
				line += "  " + j.Reason
			}
		} else if j.Waiting != "" {
			line += "  waiting: " + j.Waiting
		}
		rows = append(rows, row{section: secJobs, key: "job/" + j.ID, prefix: "job ", text: line})
		for _, s := range j.Steps {
			key := "step/" + j.ID + "/" + s.Device
			v := stepView{now: now, tf: tf, bar: bar, coarse: plain, rate: w.fallbackRate(key, now, s.Progress)}
			rows = append(rows, row{section: secJobs, key: key, prefix: "job " + j.ID + ": ", text: "    " + stepLine(s, v)})
		}
	}
	if shown == 0 {
		rows = append(rows, row{section: secJobs, key: "job/none", prefix: "jobs ", text: "  none"})
	}
	for key := range w.samples { // transfers that ended
		if !hasRow(rows, key) {
			delete(w.samples, key)
		}
	}

	for _, d := range st.Devices {
		line := fmt.Sprintf("  %-12s %-8s version %-10s %s", d.ID, d.Protocol, orDash(d.Version), d.State)
		if d.Job != "" {
			line += "  job " + d.Job
		}
		if d.Recovery != "" {
			line += fmt.Sprintf("  NEEDS RECOVERY: %s (fieldgatectl recover %s)", d.Recovery, d.ID)
		}
		if d.LastError != "" {
			line += "  last error: " + d.LastError
		}
		rows = append(rows, row{section: secDevices, key: "device/" + d.ID, prefix: "device ", text: line})
	}
	for _, d := range st.Devices {
		for _, h := range d.Held {
			rows = append(rows, row{section: secHeld, key: "hold/" + d.ID + "/" + h.SHA256, text: "  " + holdLine(d.ID, h, tf),
				gone: fmt.Sprintf("%s: hold on %s %s lifted", d.ID, h.Target, h.Version)})
		}
	}
	return rows
}

// newestTerminal reports whether jobs[i] is the newest finished job (jobs
// are oldest first): the view keeps it, for how the last update ended.
func newestTerminal(jobs []api.Job, i int) bool {
	for _, j := range jobs[i+1:] {
		if terminalJob(j.Phase) {
			return false
		}
	}
	return true
}

func hasRow(rows []row, key string) bool {
	for _, r := range rows {
		if r.key == key {
			return true
		}
	}
	return false
}

// fallbackRate measures a transfer's rate from this refresh and the last
// one, for a daemon that does not report it; 0 if it cannot be measured.
func (w *watcher) fallbackRate(key string, now time.Time, p *api.Progress) int64 {
	if p == nil {
		delete(w.samples, key)
		return 0
	}
	prev, ok := w.samples[key]
	if !ok || p.Done < prev.done || now.Before(prev.at) {
		w.samples[key] = progress{now, p.Done} // a new transfer, or a retry
		return 0
	}
	if dt := now.Sub(prev.at); dt > 0 && p.Done > prev.done {
		w.samples[key] = progress{now, p.Done}
		return int64(float64(p.Done-prev.done) / dt.Seconds())
	}
	return 0
}

// printChanges prints, in plain output, each row whose line changed since
// the last refresh and what disappeared.
func (w *watcher) printChanges(now time.Time, rows []row) {
	at := w.tf.at(now)
	if w.down != "" {
		fmt.Fprintf(w.out, "%s  daemon reachable again\n", at)
		w.down = ""
	}
	seen := map[string]bool{}
	for _, r := range rows {
		seen[r.key] = true
		line := r.prefix + strings.TrimSpace(r.text)
		if w.last[r.key] != line {
			fmt.Fprintf(w.out, "%s  %s\n", at, line)
		}
		w.last[r.key] = line
		w.gone[r.key] = r.gone
	}
	for _, key := range w.order {
		if seen[key] {
			continue
		}
		if g := w.gone[key]; g != "" {
			fmt.Fprintf(w.out, "%s  %s\n", at, g)
		}
		delete(w.last, key)
		delete(w.gone, key)
	}
	w.order = w.order[:0]
	for _, r := range rows {
		w.order = append(w.order, r.key)
	}
}

// draw redraws the terminal: cursor home, each line cleared to its end,
// the rest of the screen cleared, so that nothing flickers and nothing
// old stays. Lines are cut to the terminal's width and the view to its
// height, so that nothing scrolls.
func (w *watcher) draw(now time.Time, rows []row) {
	cols, lines := w.size()
	if cols < 20 {
		cols = 20
	}
	view := []string{fmt.Sprintf("fieldgatectl watch  %s  every %v  (Ctrl-C quits)", w.tf.at(now), w.interval)}
	section := ""
	for _, r := range rows {
		if r.section != section {
			section = r.section
			view = append(view, "", section)
		}
		view = append(view, r.text)
	}
	paint(w.out, view, lines, cols, "a taller terminal shows them")
}

// paint draws view on a terminal of lines × cols from its top-left corner,
// each line cut to the width and the rest of the screen cleared; a view
// taller than the terminal ends with a line saying how many lines are not
// shown and what shows them (hint).
func paint(out io.Writer, view []string, lines, cols int, hint string) {
	if lines > 1 && len(view) > lines-1 {
		more := len(view) - (lines - 2)
		view = append(view[:lines-2], fmt.Sprintf("… %d more lines (%s)", more, hint))
	}
	var b bytes.Buffer
	b.WriteString(home)
	for _, l := range view {
		b.WriteString(cut(l, cols))
		b.WriteString(clearLine + "\n")
	}
	b.WriteString(clearBelow)
	out.Write(b.Bytes())
}

// cut shortens s to at most n characters.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// stepView is how a step is rendered: the gateway's clock, the time
// format, the bar's width (0: none), whether countdowns are in whole
// minutes, and a rate measured by the client for a daemon that reports
// none.
type stepView struct {
	now    time.Time
	tf     timeFormat
	bar    int
	coarse bool
	rate   int64
}

// stepLine describes one device's step: its phase, the transfer's
// progress with rate and ETA, the soak's time left, why it waits, its
// error.
func stepLine(s api.Step, v stepView) string {
	line := fmt.Sprintf("%-12s %-12s attempts %d", s.Device, s.Phase, s.Attempts)
	if s.Progress != nil {
		line += "  " + transferText(*s.Progress, v.rate, v.bar)
	}
	if s.Phase == "soak" && s.SoakUntil != nil {
		left := s.SoakUntil.Sub(v.now)
		text := span(left)
		if v.coarse {
			text = spanMinutes(left)
		}
		line += fmt.Sprintf("  soak %s left (until %s)", text, v.tf.at(*s.SoakUntil))
	}
	if s.Blocked != "" {
		line += "  (" + s.Blocked + ")"
	}
	if s.Error != "" {
		line += "  " + s.Error
	}
	return line
}

// transferText is a transfer's bar, percentage, bytes, rate and ETA. The
// daemon's rate is used; fallback where it reports none.
func transferText(p api.Progress, fallback int64, width int) string {
	if p.Total <= 0 {
		return fmt.Sprintf("%s sent", size(p.Done))
	}
	done := min(max(p.Done, 0), p.Total)
	rate := p.Rate
	if rate <= 0 {
		rate = fallback
	}
	rateText, eta := "-", "-"
	if rate > 0 {
		rateText = size(rate) + "/s"
		eta = span(time.Duration(float64(p.Total-done) / float64(rate) * float64(time.Second)))
	}
	if done == p.Total {
		eta = "0s"
	}
	s := fmt.Sprintf("%3d%%  %s/%s  rate %s  ETA %s", done*100/p.Total, size(done), size(p.Total), rateText, eta)
	if width > 0 {
		s = bar(done, p.Total, width) + " " + s
	}
	return s
}

// bar draws done of total as [#####-----] with width cells inside.
func bar(done, total int64, width int) string {
	full := 0
	if total > 0 {
		full = int(done * int64(width) / total)
	}
	full = min(max(full, 0), width)
	return "[" + strings.Repeat("#", full) + strings.Repeat("-", width-full) + "]"
}

// size formats a byte count with binary prefixes: 512 B, 1.5 KiB, 3.2 MiB.
func size(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, unit := float64(n)/1024, "KiB"
	for _, u := range []string{"MiB", "GiB", "TiB"} {
		if v < 1024 {
			break
		}
		v, unit = v/1024, u
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}

// span formats a duration in its two largest units, rounded to the second
// and then cut: 42s, 3m05s, 1h02m, 2d03h. A negative duration is 0s.
func span(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd%02dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}

// spanMinutes formats a countdown in whole minutes, rounded up (a minute
// left until the last second): 1m, 59m, 1h02m, 2d03h.
func spanMinutes(d time.Duration) string {
	if d <= 0 {
		return "0m"
	}
	m := int((d + time.Minute - 1) / time.Minute)
	switch {
	case m < 60:
		return fmt.Sprintf("%dm", m)
	case m < 24*60:
		return fmt.Sprintf("%dh%02dm", m/60, m%60)
	}
	return fmt.Sprintf("%dd%02dh", m/(24*60), m%(24*60)/60)
}

// windowLine says whether a group's window is open and for how long, or
// when it opens next.
func windowLine(w api.WindowInfo, now time.Time, tf timeFormat) string {
	line := fmt.Sprintf("%-12s window %s (%s)  ", w.Group, w.Window, w.TimeZone)
	switch {
	case w.Open && w.Closes != nil:
		line += fmt.Sprintf("open, closes in %s (at %s)", spanMinutes(w.Closes.Sub(now)), tf.at(*w.Closes))
	case len(w.Next) > 0:
		line += fmt.Sprintf("closed, opens in %s (at %s)", spanMinutes(w.Next[0].Sub(now)), tf.at(w.Next[0]))
	default:
		line += "closed, no opening ahead"
	}
	return line
}
