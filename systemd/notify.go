// SPDX-License-Identifier: Apache-2.0

package systemd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Notifier sends sd_notify(3) messages to the service manager over the
// datagram socket named by $NOTIFY_SOCKET (a path, or an abstract socket
// when it starts with '@'). Every method is a no-op that returns nil when
// $NOTIFY_SOCKET was unset. It is safe for concurrent use; each message is
// one datagram on a fresh socket, as libsystemd does, so nothing needs
// closing.
type Notifier struct {
	socket   string        // "" when not under systemd
	watchdog time.Duration // WATCHDOG_USEC, 0 when disabled or meant for another process
}

// NewNotifier reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID. The
// environment is left as it is; systemd's default NotifyAccess=main ignores
// messages from child processes that inherit it.
func NewNotifier() *Notifier {
	return newNotifier(os.Getenv, os.Getpid())
}

func newNotifier(getenv func(string) string, pid int) *Notifier {
	n := &Notifier{socket: getenv("NOTIFY_SOCKET")}
	usec, err := strconv.ParseUint(getenv("WATCHDOG_USEC"), 10, 63)
	if err != nil || usec == 0 || usec > uint64(1<<63-1)/1000 {
		return n
	}
	if p := getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(pid) {
		return n // the watchdog is some other process's business
	}
	n.watchdog = time.Duration(usec) * time.Microsecond
	return n
}

// Enabled reports whether the process runs under systemd with a notify
// socket.
func (n *Notifier) Enabled() bool { return n.socket != "" }

// Ready tells systemd that start-up is complete (READY=1). Send it only when
// the service can do its job: config loaded, store open, hardware up.
func (n *Notifier) Ready() error { return n.Notify("READY=1") }

// Stopping tells systemd that shutdown has begun (STOPPING=1).
func (n *Notifier) Stopping() error { return n.Notify("STOPPING=1") }

// Status sets the one-line status shown by `systemctl status` (STATUS=).
// Line breaks are replaced by spaces, so a status built from untrusted text
// cannot add assignments of its own (such as READY=1).
func (n *Notifier) Status(s string) error {
	return n.Notify("STATUS=" + strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s))
}

// Watchdog pings the service watchdog (WATCHDOG=1). The daemon calls it from
// its main loop every WatchdogInterval, so that a hung loop is restarted.
func (n *Notifier) Watchdog() error { return n.Notify("WATCHDOG=1") }

// ExtendTimeout asks systemd for d more before it gives up on a start or
// stop in progress (EXTEND_TIMEOUT_USEC=), e.g. while a flash write finishes.
func (n *Notifier) ExtendTimeout(d time.Duration) error {
	return n.Notify("EXTEND_TIMEOUT_USEC=" + strconv.FormatInt(d.Microseconds(), 10))
}

// WatchdogInterval returns how often to call Watchdog: half of
// $WATCHDOG_USEC, as sd_watchdog_enabled(3) advises; 0 when the watchdog is
// disabled or belongs to another process.
func (n *Notifier) WatchdogInterval() time.Duration { return n.watchdog / 2 }

// Notify sends the given VARIABLE=value assignments in one datagram.
func (n *Notifier) Notify(assignments ...string) error {
	if n.socket == "" || len(assignments) == 0 {
		return nil
	}
	for _, a := range assignments {
		if !strings.Contains(a, "=") || strings.ContainsAny(a, "\n") {
			return fmt.Errorf("sd_notify %q: want one VARIABLE=value line", a)
		}
	}
	msg := strings.Join(assignments, "\n")
	if len(n.socket) < 2 || (n.socket[0] != '/' && n.socket[0] != '@') {
		return fmt.Errorf("sd_notify %s: NOTIFY_SOCKET %q is neither a path nor an abstract socket", firstVar(msg), n.socket)
	}
	// Go maps a leading '@' to Linux's abstract namespace.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", firstVar(msg), err)
	}
	defer conn.Close()
	k, err := conn.Write([]byte(msg))
	if err == nil && k != len(msg) {
		err = errors.New("short write")
	}
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", firstVar(msg), err)
	}
	return nil
}

// firstVar names a message in errors by its first variable, without values
// (a status line is no business of a log about a socket error).
func firstVar(msg string) string {
	v, _, _ := strings.Cut(msg, "=")
	return v
}
