// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fieldgate/fieldgate/systemd"
)

// notifySocket is the datagram socket systemd owns and reads sd_notify
// messages from; the test sets NOTIFY_SOCKET to it.
type notifySocket struct {
	conn *net.UnixConn
}

func listenNotify(t *testing.T) (string, *notifySocket) {
	t.Helper()
	dir, err := os.MkdirTemp("", "wdg") // short: sun_path holds 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	name := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen %s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	return name, &notifySocket{conn: conn}
}

// drain returns the messages queued on the socket, without waiting for
// more (it does not block, so it works in a synctest bubble).
func (s *notifySocket) drain(t *testing.T) []string {
	t.Helper()
	raw, err := s.conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	buf := make([]byte, 4096)
	for {
		var k int
		var rerr error
		if err := raw.Read(func(fd uintptr) bool {
			k, _, rerr = syscall.Recvfrom(int(fd), buf, syscall.MSG_DONTWAIT)
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if errors.Is(rerr, syscall.EAGAIN) {
			return msgs
		}
		if rerr != nil {
			t.Fatalf("read notification: %v", rerr)
		}
		msgs = append(msgs, string(buf[:k]))
	}
}

// fakeLiveness stands in for daemon.Daemon.Alive: it reports what the
// test sets and records the periods it was asked about.
type fakeLiveness struct {
	mu      sync.Mutex
	err     error
	periods map[time.Duration]int
}

func (f *fakeLiveness) alive(period time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.periods == nil {
		f.periods = map[time.Duration]int{}
	}
	f.periods[period]++
	return f.err
}

func (f *fakeLiveness) set(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// watchdogLog is a log destination the watchdog and the test share.
type watchdogLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *watchdogLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *watchdogLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func countMsgs(msgs []string, want string) int {
	n := 0
	for _, m := range msgs {
		if m == want {
			n++
		}
	}
	return n
}

// TestWatchdogFollowsLiveness runs the watchdog against the real notifier
// and a datagram socket standing in for systemd's, with WatchdogSec=12s:
// it pings every 3s while the daemon is alive, stops while Alive reports a
// stuck loop (saying why, once, in the log and in STATUS=), and resumes
// when the loop turns again.
func TestWatchdogFollowsLiveness(t *testing.T) {
	sock, systemdSide := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "12000000")
	t.Setenv("WATCHDOG_PID", "")
	notify := systemd.NewNotifier()

	synctest.Test(t, func(t *testing.T) {
		live := &fakeLiveness{}
		var logs watchdogLog
		var restored atomic.Int32
		w := &watchdog{
			notify:  notify,
			alive:   live.alive,
			restore: func() { restored.Add(1); notify.Status("idle") },
			log:     slog.New(slog.NewTextHandler(&logs, nil)),
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()

		// Alive: a ping at once, then one every 3s (a quarter of
		// WatchdogSec).
		time.Sleep(12 * time.Second)
		synctest.Wait()
		msgs := systemdSide.drain(t)
		if got := countMsgs(msgs, "WATCHDOG=1"); got != 5 || len(msgs) != 5 {
			t.Fatalf("alive for 12s: sent %q, want WATCHDOG=1 five times (at 0s, 3s, ... 12s)", msgs)
		}

		// Stuck: no ping for as long as it lasts, past WatchdogSec; the
		// reason shows once in STATUS= and once in the log.
		stuck := errors.New("update loop has not turned for 7s")
		live.set(stuck)
		time.Sleep(30 * time.Second)
		synctest.Wait()
		msgs = systemdSide.drain(t)
		if got := countMsgs(msgs, "WATCHDOG=1"); got != 0 {
			t.Errorf("stuck for 30s: sent WATCHDOG=1 %d times, want none", got)
		}
		if want := "STATUS=watchdog: " + stuck.Error(); countMsgs(msgs, want) != 1 || len(msgs) != 1 {
			t.Errorf("stuck for 30s: sent %q, want only %q", msgs, want)
		}
		if got := strings.Count(logs.String(), stuck.Error()); got != 1 {
			t.Errorf("stuck for 30s: the log names the reason %d times, want once:\n%s", got, logs.String())
		}

		// Alive again: pings resume at the next check, and the daemon's
		// own status replaces the watchdog's.
		live.set(nil)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		msgs = systemdSide.drain(t)
		if countMsgs(msgs, "WATCHDOG=1") != 1 || countMsgs(msgs, "STATUS=idle") != 1 || restored.Load() != 1 {
			t.Errorf("alive again for 3s: sent %q, restored %d times; want STATUS=idle and WATCHDOG=1, restored once", msgs, restored.Load())
		}
		if !strings.Contains(logs.String(), "progress again") {
			t.Errorf("the log does not say that pings resumed:\n%s", logs.String())
		}

		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
		live.mu.Lock()
		defer live.mu.Unlock()
		for p := range live.periods {
			if p != 6*time.Second {
				t.Errorf("Alive asked about the last %v, want 6s (half of WatchdogSec) every time: %v", p, live.periods)
			}
		}
	})
}

// TestWatchdogLogIsRateLimited: a daemon stuck for long (systemd's
// watchdog off, or slow to act) logs its reason at most once a minute.
func TestWatchdogLogIsRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs watchdogLog
		n := &fakeNotifier{interval: 15 * time.Second}
		w := &watchdog{
			notify: n,
			alive:  func(time.Duration) error { return errors.New("update loop has not turned for a while") },
			log:    slog.New(slog.NewTextHandler(&logs, nil)),
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go w.Run(ctx)
		time.Sleep(5*time.Minute - time.Second)
		synctest.Wait()
		if got := strings.Count(logs.String(), "not pinging"); got != 5 {
			t.Errorf("stuck for 5 minutes: logged %d times, want 5 (once a minute):\n%s", got, logs.String())
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.pings != 0 || n.statuses != 1 {
			t.Errorf("stuck for 5 minutes: %d pings and %d STATUS= lines, want 0 and 1", n.pings, n.statuses)
		}
	})
}

// TestWatchdogOff: without WATCHDOG_USEC (or with it meant for another
// process) the watchdog neither checks nor pings, and returns.
func TestWatchdogOff(t *testing.T) {
	n := &fakeNotifier{}
	called := false
	w := &watchdog{notify: n, alive: func(time.Duration) error { called = true; return nil }, log: slog.New(slog.DiscardHandler)}
	if err := w.Run(t.Context()); err != nil || called || n.pings != 0 {
		t.Errorf("Run with the watchdog off = %v after %d pings (Alive called: %v), want nil, no pings, no checks", err, n.pings, called)
	}
}

// fakeNotifier counts what the watchdog sends.
type fakeNotifier struct {
	interval        time.Duration
	mu              sync.Mutex
	pings, statuses int
}

func (f *fakeNotifier) WatchdogInterval() time.Duration { return f.interval }

func (f *fakeNotifier) Watchdog() error {
	f.mu.Lock()
	f.pings++
	f.mu.Unlock()
	return nil
}

func (f *fakeNotifier) Status(string) error {
	f.mu.Lock()
	f.statuses++
	f.mu.Unlock()
	return nil
}
