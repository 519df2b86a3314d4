// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon"
	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/daemon/control"
	"github.com/fieldgate/fieldgate/daemon/store"
	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/devices/devicetest"
	"github.com/fieldgate/fieldgate/tuf"
)

// memSource serves one already-verified target from memory.
type memSource struct {
	dir    string
	target tuf.Target
	body   []byte
	now    func() time.Time
}

func (s *memSource) Refresh(context.Context) (*tuf.Snapshot, error) {
	return &tuf.Snapshot{Targets: []tuf.Target{s.target}, Expires: s.now().Add(30 * 24 * time.Hour), RefTime: s.now()}, nil
}

func (s *memSource) Fetch(_ context.Context, t tuf.Target, _ func(int64, int64)) (string, error) {
	p := filepath.Join(s.dir, t.SHA256())
	return p, os.WriteFile(p, s.body, 0o600)
}

// gatedDevice is a slow device whose speed the test sets: its transfer
// takes one chunk each time the test sends on gate, and reports progress
// after each.
type gatedDevice struct {
	*devicetest.Device
	chunk int
	gate  chan struct{}
}

func (d *gatedDevice) Transfer(ctx context.Context, img devices.Image, r io.Reader, progress devices.Progress) error {
	var buf bytes.Buffer
	for int64(buf.Len()) < img.Size {
		select {
		case <-ctx.Done():
			return devices.Transient("transfer", ctx.Err())
		case <-d.gate:
		}
		if _, err := io.CopyN(&buf, r, int64(d.chunk)); err != nil && err != io.EOF {
			return devices.Transient("transfer", err)
		}
		progress(int64(buf.Len()), img.Size)
	}
	return d.Device.Transfer(ctx, img, &buf, nil)
}

// lockedBuffer is the watch's stdout: written by the watch, read by the
// test, with a signal on each write.
type lockedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	wrote  chan struct{}
	closed bool
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case l.wrote <- struct{}{}:
	default:
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var percentRE = regexp.MustCompile(`\] +(\d+)%  [^ ]+ [KM]?i?B/[^ ]+ [KM]?i?B  rate ([^ ]+ [KM]?i?B/s|-)  ETA ([0-9dhms]+|-)`)

// TestWatchDaemonTransfer runs fieldgatectl status --watch, with stdout not
// a terminal, against a daemon pushing an update to a slow device, and
// checks what an operator would read: a line per change, progress that
// grows, with its rate and ETA, the soak's time left, the window's time
// left, and no escape codes. The device moves one chunk each time the
// watch printed the last one, so nothing depends on how fast this machine
// is.
func TestWatchDaemonTransfer(t *testing.T) {
	const chunks, chunk = 12, 1024
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	// The gateway's clock runs from noon, inside a window open all day.
	noon, began := time.Date(2030, 1, 2, 12, 0, 0, 0, time.UTC), time.Now()
	now := func() time.Time { return noon.Add(time.Since(began)) }

	image := devicetest.Image("2.0.0", chunks*chunk)
	sum := sha256.Sum256(image)
	src := &memSource{dir: t.TempDir(), body: image, now: now, target: tuf.Target{
		Name: "plc/fw-2.0.0.bin", Length: int64(len(image)), Hashes: map[string]string{"sha256": hex.EncodeToString(sum[:])},
		Meta: tuf.Meta{Hardware: []string{"hw1"}, Version: "2.0.0", SecurityCounter: 2, Protocol: "fake"},
	}}
	dev := &gatedDevice{Device: devicetest.New("hw1", "1.0.0"), chunk: chunk, gate: make(chan struct{})}
	cfg := &config.Config{
		Gateway: config.Gateway{ID: "gw", Site: "s", StateDir: dir, RefreshInterval: time.Hour, InventoryInterval: time.Hour, MaxParallel: 1},
		MQTT:    config.MQTT{Prefix: "fieldgate/v1/s/gw"},
		Windows: []config.Window{{Name: "daily", Start: "0 0 * * *", Duration: 24 * time.Hour, TimeZone: "UTC"}},
		Groups:  []config.Group{{Name: "line-1", Window: "daily", Approval: "auto", Canary: 1, ApprovalTTL: time.Hour, Soak: time.Hour}},
		Devices: []config.Device{{ID: "plc-1", Group: "line-1", Protocol: "fake", HardwareID: "hw1", Address: "x", Segment: "bus-1"}},
	}
	d, err := daemon.New(daemon.Deps{Config: cfg, Store: st, Source: src, Devices: map[string]devices.Device{"plc-1": dev},
		Version: "test", Now: now, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "fg.sock")
	srv := &control.Server{Path: sock, Reader: d, Commander: d, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dctx, stopDaemon := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopDaemon()
	wg.Add(2)
	go func() { defer wg.Done(); d.Run(dctx) }()
	go func() { defer wg.Done(); srv.Run(dctx) }()

	out := &lockedBuffer{wrote: make(chan struct{}, 1)}
	var errOut bytes.Buffer
	wctx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan error, 1)
	go func() {
		watchDone <- run(wctx, []string{"--socket", sock, "--utc", "status", "--watch", "--interval", "200ms"}, out, &errOut)
	}()
	defer func() {
		stopWatch()
		<-watchDone
	}()

	// Let a chunk through each time the watch shows the last one arrived,
	// until the step is in soak.
	var (
		percents   []int
		rated      []string // lines with a rate and an ETA
		released   int
		daemonRate int64
		soakLine   string
	)
	for soakLine == "" {
		select {
		case <-ctx.Done():
			t.Fatalf("the watch did not show the transfer through to the soak; output:\n%s", out.String())
		case <-out.wrote:
		}
		percents, rated = percents[:0], rated[:0]
		for _, l := range strings.Split(out.String(), "\n") {
			if !strings.Contains(l, "job ") || !strings.Contains(l, ": plc-1") {
				continue
			}
			if m := percentRE.FindStringSubmatch(l); m != nil {
				p, _ := strconv.Atoi(m[1])
				if len(percents) == 0 || p != percents[len(percents)-1] {
					percents = append(percents, p)
				}
				if m[2] != "-" && m[3] != "-" {
					rated = append(rated, l)
				}
			}
			if strings.Contains(l, " soak ") && strings.Contains(l, " left (until ") {
				soakLine = l
			}
		}
		// The step shows up in transfer (no progress yet), then each
		// chunk's percentage: release the next chunk when the last one
		// was shown.
		shownTransfer := strings.Contains(out.String(), "transfer     attempts 1")
		if released < chunks && shownTransfer && len(percents) == released {
			if released == chunks-2 { // the transfer has run for more than two seconds of watch intervals
				s, err := control.NewClient(sock).Status(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if p := s.Jobs[0].Steps[0].Progress; p != nil && p.Started != nil {
					daemonRate = p.Rate
				}
			}
			select {
			case dev.gate <- struct{}{}:
				released++
			case <-ctx.Done():
			}
		}
	}
	stopWatch()
	if err := <-watchDone; err != nil {
		t.Errorf("watch = %v (stderr %q), want nil when interrupted", err, errOut.String())
	}
	watchDone <- nil // for the deferred wait
	got := out.String()

	// The last chunk may end the transfer before the next refresh.
	if len(percents) < chunks-1 {
		t.Errorf("progress shown %v, want a growing step for each of at least %d chunks", percents, chunks-1)
	}
	for i := 1; i < len(percents); i++ {
		if percents[i] <= percents[i-1] {
			t.Errorf("progress went from %d%% to %d%%, want it to grow", percents[i-1], percents[i])
		}
	}
	if len(rated) < chunks/2 {
		t.Errorf("%d progress lines with a rate and an ETA, want most of the %d:\n%s", len(rated), chunks, got)
	}
	if daemonRate <= 0 {
		t.Errorf("the daemon's own rate after %d chunks over more than two seconds = %d, want it measured", chunks-2, daemonRate)
	}
	if !strings.Contains(soakLine, "soak 1h00m left (until 2030-01-02 ") {
		t.Errorf("soak line %q, want an hour left in whole minutes and the end in UTC", soakLine)
	}
	if !strings.Contains(got, "group line-1       window daily (UTC)  open, closes in 12h00m (at 2030-01-03 00:00:00 +00:00)") {
		t.Errorf("no window line saying it closes at midnight, 12 h after noon:\n%s", got)
	}
	if strings.Contains(got, "\x1b") {
		t.Errorf("plain output has escape codes:\n%q", got)
	}
	for _, l := range strings.Split(strings.TrimSpace(got), "\n") {
		if _, err := time.Parse(timeLayout, l[:len(timeLayout)]); err != nil || !strings.HasPrefix(l, "2030-01-02 12:") {
			t.Errorf("line %q does not start with the gateway's time in UTC", l)
		}
	}
	if t.Failed() {
		fmt.Println(got)
	}

	// windows, local and --utc: the same instants, in the one layout.
	instants := func(args ...string) []time.Time {
		var b bytes.Buffer
		if err := run(ctx, append([]string{"--socket", sock}, args...), &b, io.Discard); err != nil {
			t.Fatalf("fieldgatectl %v = %v", args, err)
		}
		var ts []time.Time
		for _, m := range timeRE.FindAllString(b.String(), -1) {
			at, err := time.Parse(timeLayout, m)
			if err != nil {
				t.Fatalf("fieldgatectl %v prints %q: %v", args, m, err)
			}
			ts = append(ts, at)
		}
		if len(ts) == 0 {
			t.Fatalf("fieldgatectl %v prints no time:\n%s", args, b.String())
		}
		return ts
	}
	local, utc := instants("windows"), instants("windows", "--utc")
	if len(local) != len(utc) {
		t.Fatalf("windows prints %d times, --utc %d", len(local), len(utc))
	}
	for i := range local {
		if !local[i].Equal(utc[i]) {
			t.Errorf("windows time %d: %v local, %v --utc; want one instant", i, local[i], utc[i])
		}
	}
	if !utc[0].Equal(time.Date(2030, 1, 3, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("windows --utc: open until %v, want midnight after the gateway's noon", utc[0])
	}
}

var timeRE = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d`)
