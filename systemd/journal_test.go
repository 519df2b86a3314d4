// SPDX-License-Identifier: Apache-2.0

package systemd

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func TestJournalHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(newJournalHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	log = log.With("part", "tuf")
	log.Debug("d")
	log.Info("refreshed", "version", 3)
	log.Warn("slow")
	log.Error("failed", "err", "line one\nline two")
	log.WithGroup("g").Info("grouped", "time", "kept", "level", "kept")
	want := []string{
		`<7>msg=d part=tuf`,
		`<6>msg=refreshed part=tuf version=3`,
		`<4>msg=slow part=tuf`,
		`<3>msg=failed part=tuf err="line one\nline two"`,
		`<6>msg=grouped part=tuf g.time=kept g.level=kept`,
	}
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d (one per record):\n%s", len(got), len(want), buf.String())
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
}

// Concurrent records never get each other's priority.
func TestJournalHandlerConcurrent(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(newJournalHandler(&buf, nil))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := log.With("g", g)
			for range 200 {
				if g%2 == 0 {
					l.Info("i")
				} else {
					l.Error("e")
				}
			}
		}()
	}
	wg.Wait()
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if !strings.HasPrefix(line, "<6>msg=i ") && !strings.HasPrefix(line, "<3>msg=e ") {
			t.Fatalf("mixed up: %q", line)
		}
	}
}

func TestJournalStream(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stream")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	st := fi.Sys().(*syscall.Stat_t)
	match := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	for _, c := range []struct {
		env  string
		want bool
	}{
		{match, true},
		{"", false},
		{fmt.Sprintf("%d:%d", st.Dev, st.Ino+1), false},
		{fmt.Sprintf("%d", st.Dev), false},
		{match + ":1", false},
		{"x:y", false},
	} {
		if got := JournalStream(f, c.env); got != c.want {
			t.Errorf("JournalStream(%q) = %v, want %v", c.env, got, c.want)
		}
	}

	// Under journald: no time=, a priority prefix. Elsewhere: the text format.
	t.Setenv("JOURNAL_STREAM", match)
	slog.New(NewLogHandler(f, nil)).Warn("under journald")
	t.Setenv("JOURNAL_STREAM", "")
	slog.New(NewLogHandler(f, nil)).Warn("on a terminal")
	b, _ := os.ReadFile(f.Name())
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || lines[0] != `<4>msg="under journald"` || !strings.HasPrefix(lines[1], "time=") {
		t.Fatalf("got %q", lines)
	}
}
