// SPDX-License-Identifier: Apache-2.0

package main

// How fieldgatectl fleet prints its view: a table for people, one JSON
// document for scripts, and with --watch the same redrawn in place on a
// terminal or, in a pipe, one line per change (the rows and change
// printing of status --watch, watch.go).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"
)

// terminalSize returns a function giving the terminal's size when out is
// one, or nil.
func terminalSize(out io.Writer) func() (int, int) {
	file, ok := out.(*os.File)
	if !ok || !term.IsTerminal(int(file.Fd())) {
		return nil
	}
	fd := int(file.Fd())
	return func() (int, int) {
		cols, lines, err := term.GetSize(fd)
		if err != nil || cols <= 0 || lines <= 0 {
			return 80, 24
		}
		return cols, lines
	}
}

// fleetRenderer prints views; it is used from one goroutine.
type fleetRenderer struct {
	out    io.Writer
	o      fleetOptions
	plain  *watcher // --watch without a terminal: a line per changed row
	screen bool     // the alternate screen is on
	last   []byte   // --watch --json: the last document printed
}

func newFleetRenderer(out io.Writer, o fleetOptions) *fleetRenderer {
	r := &fleetRenderer{out: out, o: o}
	if o.watch && o.size == nil && !o.json {
		r.plain = newWatcher(out, o.times, o.interval)
	}
	return r
}

// once prints a view: JSON or the table.
func (r *fleetRenderer) once(v fleetView) error {
	if r.o.json {
		enc := json.NewEncoder(r.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	r.table(r.out, v)
	return nil
}

// show prints a view in --watch: a JSON line when it changed, the changed
// rows, or the whole screen; note is news of the connection.
func (r *fleetRenderer) show(v fleetView, note string) {
	switch {
	case r.o.json:
		t := v.Time
		v.Time = time.Time{} // compare without the time
		b, _ := json.Marshal(v)
		if bytes.Equal(b, r.last) {
			return
		}
		r.last = b
		v.Time = t
		line, _ := json.Marshal(v)
		fmt.Fprintf(r.out, "%s\n", line)
	case r.plain != nil:
		rows := fleetRows(v)
		if note != "" {
			rows = append(rows, row{key: "broker", text: note})
		}
		r.plain.printChanges(v.Time, rows)
	default:
		r.draw(v, note)
	}
}

// close leaves the alternate screen.
func (r *fleetRenderer) close() {
	if r.screen {
		io.WriteString(r.out, leaveScreen)
	}
}

// table prints the gateways, the versions and the summary.
func (r *fleetRenderer) table(w io.Writer, v fleetView) {
	r.tables(w, v)
	fmt.Fprintln(w)
	fmt.Fprintln(w, summaryLine(v))
	if l := ignoredLine(v.Ignored); l != "" {
		fmt.Fprintln(w, l)
	}
}

// tables prints the gateways and the versions.
func (r *fleetRenderer) tables(w io.Writer, v fleetView) {
	tf := r.o.times
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tGATEWAY\tSTATE\tFIELDGATED\tDEVICES\tRUNNING\tFAILURES\tHOLDS\tHEALTH\tSTATUS TIME")
	for _, g := range v.Gateways {
		at := "-"
		if g.StatusTime != nil {
			at = tf.at(*g.StatusTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", clean(g.Site), clean(g.Gateway), g.State, clean(g.Version),
			g.Devices, g.JobsRunning, g.Failures, g.Holds, g.Health, at)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nVERSIONS")
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tHARDWARE\tVERSION\tDEVICES")
	for _, x := range v.Versions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", clean(x.Site), clean(x.Hardware), clean(x.Version), x.Devices)
	}
	tw.Flush()
}

// summaryLine is the fleet in one line.
func summaryLine(v fleetView) string {
	s := v.Summary
	line := fmt.Sprintf("%d gateways: %d online, %d stale, %d offline (%d lost, %d shutdown)", s.Gateways, s.Online, s.Stale, s.Offline, s.OfflineLost, s.OfflineShutdown)
	if s.Unknown > 0 {
		line += fmt.Sprintf(", %d without status", s.Unknown)
	}
	return line + fmt.Sprintf("; %d devices; %d jobs running; %d failures; %d holds", s.Devices, s.JobsRunning, s.Failures, s.Holds)
}

// ignoredLine says how many documents were ignored and why; "" if none.
func ignoredLine(ig fleetIgnored) string {
	if ig.Total == 0 {
		return ""
	}
	names := map[string]string{ignoredMalformed: "malformed JSON", ignoredType: "wrong type", ignoredSize: "over 64 KiB",
		ignoredTopic: "topic that does not fit", ignoredLimit: "over the tracking limits"}
	keys := make([]string, 0, len(ig.Reasons))
	for k := range ig.Reasons {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		name := names[k]
		if name == "" {
			name = k
		}
		parts = append(parts, fmt.Sprintf("%d %s", ig.Reasons[k], name))
	}
	word := "documents"
	if ig.Total == 1 {
		word = "document"
	}
	return fmt.Sprintf("%d %s ignored (%s)", ig.Total, word, strings.Join(parts, ", "))
}

// fleetRows are the view as rows for a line per change: no times in
// them, so that a heartbeat alone prints nothing.
func fleetRows(v fleetView) []row {
	rows := []row{{key: "summary", text: summaryLine(v)}}
	if l := ignoredLine(v.Ignored); l != "" {
		rows = append(rows, row{key: "ignored", text: l})
	}
	for _, g := range v.Gateways {
		name := clean(g.Site) + "/" + clean(g.Gateway)
		rows = append(rows, row{key: "gateway/" + g.Site + "/" + g.Gateway, prefix: "gateway ",
			text: fmt.Sprintf("%s %s fieldgated %s devices %d running %d failures %d holds %d health %d",
				name, g.State, clean(g.Version), g.Devices, g.JobsRunning, g.Failures, g.Holds, g.Health),
			gone: "gateway " + name + ": no retained documents left"})
	}
	for _, x := range v.Versions {
		what := clean(x.Site) + " " + clean(x.Hardware) + " " + clean(x.Version)
		rows = append(rows, row{key: "version/" + x.Site + "/" + x.Hardware + "/" + x.Version, prefix: "version ",
			text: fmt.Sprintf("%s: %d devices", what, x.Devices), gone: "version " + what + ": no devices"})
	}
	return rows
}

// draw redraws the terminal as status --watch does: the summary first,
// then the table cut to the screen.
func (r *fleetRenderer) draw(v fleetView, note string) {
	if !r.screen {
		io.WriteString(r.out, enterScreen)
		r.screen = true
	}
	cols, lines := r.o.size()
	cols = max(cols, 20)
	view := []string{fmt.Sprintf("fieldgatectl fleet %s  %s  (Ctrl-C quits)", clean(v.Prefix+"/"+v.Site), r.o.times.at(v.Time)), summaryLine(v)}
	if l := ignoredLine(v.Ignored); l != "" {
		view = append(view, l)
	}
	if note != "" {
		view = append(view, note)
	}
	view = append(view, "")
	var b bytes.Buffer
	r.tables(&b, v)
	view = append(view, strings.Split(strings.TrimRight(b.String(), "\n"), "\n")...)
	paint(r.out, view, lines, cols, "a taller terminal, --site or --json show them")
}
