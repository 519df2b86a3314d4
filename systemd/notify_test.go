// SPDX-License-Identifier: Apache-2.0

package systemd

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listen creates the datagram socket systemd would own and returns its
// NOTIFY_SOCKET value and a function returning the next message.
func listen(t *testing.T, abstract bool) (string, func() string) {
	t.Helper()
	var name string
	if abstract {
		name = fmt.Sprintf("@fieldgate-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	} else {
		dir, err := os.MkdirTemp("", "sdn") // short: sun_path holds 108 bytes
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		name = filepath.Join(dir, "notify")
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen %s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	return name, func() string {
		t.Helper()
		buf := make([]byte, 4096)
		// A deadline only so a broken notifier fails instead of hanging.
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		k, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("read notification: %v", err)
		}
		return string(buf[:k])
	}
}

func TestNotifier(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		t.Run(fmt.Sprintf("abstract=%v", abstract), func(t *testing.T) {
			sock, next := listen(t, abstract)
			t.Setenv("NOTIFY_SOCKET", sock)
			n := NewNotifier()
			if !n.Enabled() {
				t.Fatalf("Enabled() = false with NOTIFY_SOCKET=%s", sock)
			}
			tests := []struct {
				name string
				send func() error
				want string
			}{
				{"Ready", n.Ready, "READY=1"},
				{"Status", func() error { return n.Status("pushing io16-a 42%") }, "STATUS=pushing io16-a 42%"},
				{"Status with line breaks", func() error { return n.Status("x\nREADY=1\r\ny") }, "STATUS=x READY=1 y"},
				{"Watchdog", n.Watchdog, "WATCHDOG=1"},
				{"ExtendTimeout", func() error { return n.ExtendTimeout(90 * time.Second) }, "EXTEND_TIMEOUT_USEC=90000000"},
				{"Notify", func() error { return n.Notify("STATUS=a", "ERRNO=5") }, "STATUS=a\nERRNO=5"},
				{"Stopping", n.Stopping, "STOPPING=1"},
			}
			for _, tt := range tests {
				if err := tt.send(); err != nil {
					t.Fatalf("%s() = %v", tt.name, err)
				}
				if got := next(); got != tt.want {
					t.Errorf("%s() sent %q, want %q", tt.name, got, tt.want)
				}
			}
		})
	}
}

func TestNotifierErrors(t *testing.T) {
	sock, _ := listen(t, false)
	n := &Notifier{socket: sock}
	for _, bad := range []string{"READY", "STATUS=a\nREADY=1"} {
		if err := n.Notify(bad); err == nil {
			t.Errorf("Notify(%q) = nil, want error", bad)
		}
	}
	gone := &Notifier{socket: filepath.Join(filepath.Dir(sock), "gone")}
	if err := gone.Ready(); err == nil || !strings.Contains(err.Error(), "sd_notify READY") {
		t.Errorf("Ready() to a missing socket = %v, want an error naming READY", err)
	}
	if err := (&Notifier{socket: "relative"}).Ready(); err == nil {
		t.Errorf("Ready() with NOTIFY_SOCKET=relative = nil, want error")
	}
}

func TestNotifierDisabled(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := NewNotifier()
	if n.Enabled() {
		t.Errorf("Enabled() = true without NOTIFY_SOCKET")
	}
	for name, f := range map[string]func() error{"Ready": n.Ready, "Stopping": n.Stopping, "Watchdog": n.Watchdog,
		"Status": func() error { return n.Status("x") }} {
		if err := f(); err != nil {
			t.Errorf("%s() without NOTIFY_SOCKET = %v, want nil", name, err)
		}
	}
}

func TestWatchdogInterval(t *testing.T) {
	const pid = 4242
	tests := []struct {
		usec, wpid string
		want       time.Duration
	}{
		{"", "", 0},
		{"30000000", "", 15 * time.Second},
		{"30000000", "4242", 15 * time.Second},
		{"30000000", "1", 0}, // meant for another process
		{"0", "", 0},
		{"junk", "", 0},
		{"-5", "", 0},
		{"99999999999999999999", "", 0},
	}
	for _, tt := range tests {
		env := map[string]string{"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": tt.usec, "WATCHDOG_PID": tt.wpid}
		n := newNotifier(func(k string) string { return env[k] }, pid)
		if got := n.WatchdogInterval(); got != tt.want {
			t.Errorf("WatchdogInterval() with WATCHDOG_USEC=%q WATCHDOG_PID=%q = %v, want %v", tt.usec, tt.wpid, got, tt.want)
		}
	}
}
