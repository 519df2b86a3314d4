// SPDX-License-Identifier: Apache-2.0

package publish_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/tuf/publish"
)

// TestSigningLog runs init, add+commit, timestamp, rotate, export
// --expires and checks that the log lists exactly those signing events,
// in order, each with its key ids and time.
func TestSigningLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	open := func(cmd string) *publish.Repo {
		t.Helper()
		o := testOptions()
		o.Command = cmd
		r, err := publish.OpenWith(dir, o)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	o := testOptions()
	o.Command = "init"
	began := time.Now().Add(-time.Second)
	r, err := publish.Init(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	keyOf := func(role string) string { return r.RootMetadata().Signed.Roles[role].KeyIDs[0] }
	rootKey, tsKey := keyOf("root"), keyOf("timestamp")

	r = open("commit")
	if err := r.AddTargetBytes("fw.bin", []byte("fw"), meta); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := open("timestamp").Timestamp(); err != nil {
		t.Fatal(err)
	}
	r = open("rotate timestamp")
	if err := r.Rotate("timestamp"); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	newTS := r.RootMetadata().Signed.Roles["timestamp"].KeyIDs[0]
	if _, err := open("export --expires").ExportWith(filepath.Join(t.TempDir(), "bundle"), publish.ExportOptions{Expires: 48 * time.Hour}); err != nil {
		t.Fatal(err)
	}

	l, err := publish.ReadSigningLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range l.Events {
		got = append(got, fmt.Sprintf("%s: %s v%d", ev.Command, ev.Role, ev.Version))
		if len(ev.KeyIDs) != 1 || ev.Time.Before(began) || ev.Time.After(time.Now()) || !ev.Published || ev.Expires.IsZero() {
			t.Errorf("event %+v: want one key id, a time during the test, published, an expiry", ev)
		}
	}
	want := []string{
		"init: root v1", "init: targets v1", "init: snapshot v1", "init: timestamp v1",
		"commit: targets v2", "commit: snapshot v2", "commit: timestamp v2",
		"timestamp: timestamp v3",
		"rotate timestamp: root v2", "rotate timestamp: snapshot v3", "rotate timestamp: timestamp v4",
		"export --expires: timestamp v5", "export --expires: timestamp v6",
	}
	if !slices.Equal(got, want) {
		t.Errorf("signing log:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(l.Events) == len(want) {
		for i, id := range map[int]string{0: rootKey, 3: tsKey, 7: tsKey, 8: rootKey, 10: newTS, 12: newTS} {
			if l.Events[i].KeyIDs[0] != id {
				t.Errorf("event %d (%s) key %s, want %s", i, want[i], l.Events[i].KeyIDs[0], id)
			}
		}
	}
	if len(l.Damaged) != 0 {
		t.Errorf("damaged lines %v, want none", l.Damaged)
	}
}

// TestSigningLogTruncatedLine: a write cut short leaves a last line
// without its newline; it is reported, the events before it are read, and
// the next event starts on a line of its own.
func TestSigningLogTruncatedLine(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	r, err := publish.Init(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, publish.SigningLogFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	cut := lines[len(lines)-2] // the last event, with its newline
	if err := os.WriteFile(path, []byte(strings.Join(lines[:len(lines)-2], "")+cut[:len(cut)/2]), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := publish.ReadSigningLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Events) != 3 || len(l.Damaged) != 1 || !l.Damaged[0].Truncated || l.Damaged[0].Line != 4 {
		t.Fatalf("ReadSigningLog = %d events, damaged %+v; want 3 events and line 4 truncated", len(l.Events), l.Damaged)
	}
	if err := r.Timestamp(); err != nil {
		t.Fatal(err)
	}
	l, err = publish.ReadSigningLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Events) != 4 || l.Events[3].Role != "timestamp" || len(l.Damaged) != 1 || l.Damaged[0].Line != 4 {
		t.Errorf("after one more event: %d events (last %+v), damaged %+v; want 4 and line 4 still reported", len(l.Events), l.Events[len(l.Events)-1], l.Damaged)
	}
}

// TestSigningLogStagedSignatures: sign logs unpublished signatures, and
// a caller that brings signatures made elsewhere logs them with LogSigning.
func TestSigningLogStagedSignatures(t *testing.T) {
	a := newHolder(t, "alice")
	dir := filepath.Join(t.TempDir(), "repo")
	o := testOptions()
	o.RootPublicKeys = append(o.RootPublicKeys, a.public(t))
	if _, err := publish.Init(dir, o); err != nil {
		t.Fatal(err)
	}
	a.sign(t, dir, "root")
	r, err := publish.OpenWith(dir, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LogSigning(publish.SigningEvent{Command: "import-role", Role: "acme", Version: 3, KeyIDs: []string{"b", "a"}, Published: true}); err != nil {
		t.Fatal(err)
	}
	l, err := publish.ReadSigningLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	var sign, imported *publish.SigningEvent
	for i, ev := range l.Events {
		switch ev.Command {
		case "sign":
			sign = &l.Events[i]
		case "import-role":
			imported = &l.Events[i]
		}
	}
	if sign == nil || sign.Role != "root" || sign.Version != 1 || sign.Published || sign.KeyIDs[0] != mustID(t, a.public(t)) {
		t.Errorf("sign event %+v, want root v1 by alice's key, not published", sign)
	}
	if imported == nil || !slices.Equal(imported.KeyIDs, []string{"a", "b"}) || imported.Time.IsZero() {
		t.Errorf("imported event %+v, want sorted key ids and a time", imported)
	}
}
