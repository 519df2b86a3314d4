// SPDX-License-Identifier: Apache-2.0

package systemd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestInteropSystemdBoot boots a real systemd as PID 1 of a container
// (systemd-nspawn --boot on a throwaway overlay of the host's root, with a
// private network) and checks fieldgated.service for real, installed as
// the package installs it with its sysusers.d and tmpfiles.d snippets:
//
//   - Type=notify: `systemctl start` returns once READY=1 came, the unit is
//     active/running with fieldgated's STATUS= text, and the daemon works
//     under the unit's sandbox as user fieldgate: it answers fieldgatectl
//     over its socket, refreshes TUF metadata into its state directory and
//     reads its simulated devices, whose ptys are given a real UART's
//     owner and mode (root:dialout 0660) so that only SupplementaryGroups=
//     can open them;
//   - the watchdog: a frozen fieldgated is killed and restarted, and so
//     is one whose update loop is stuck while the rest of it runs (the
//     loop waits on a repository that accepts and never answers);
//   - a start that never sends READY=1 fails after TimeoutStartSec;
//   - self-update (issue 8): a signed new fieldgated that never becomes
//     ready is tried, killed by the watchdog and rolled back for good;
//   - DevicePolicy= is really enforced in the container, so that the
//     checks above ran under it.
//
// The few test-only settings are in a drop-in (bootDropIn), each with its
// reason. Needs root and systemd-nspawn (Debian package systemd-container).
func TestInteropSystemdBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a systemd container")
	}
	needPeer(t, "systemd-nspawn", "systemd-container")
	needPeer(t, "unshare", "util-linux")
	needPeer(t, "nsenter", "util-linux")
	if os.Geteuid() != 0 {
		missing(t, "systemd-nspawn needs root")
	}
	t.Parallel()
	began := time.Now()

	bin := t.TempDir()
	// A version that orders (tuf.ValidVersion): self-update compares
	// the gateway's targets with it.
	crossBuild(t, runtime.GOARCH, bin, bootVersion, fieldgateBinaries...)
	buildNeverReady(t, bin)
	// The good self-update: the same daemon, a newer version.
	crossBuild(t, runtime.GOARCH, filepath.Join(bin, "good"), bootGoodVersion, "fieldgated")
	stage := bootStage(t, bin)
	c := bootContainer(t, stage)
	t.Logf("container booted %v after the test began", time.Since(began).Round(100*time.Millisecond))
	ptys := c.fixPTYs(t, bootDevices)
	// As README's installation step does (install -m 0640 -o root -g
	// fieldgate): the group exists only once sysusers.d ran at boot.
	c.must(t, "chown", "root:fieldgate", "/etc/fieldgate/fieldgated.yaml")

	// DevicePolicy= is enforced in this container (bootScript says what
	// that takes): /dev/net/tun, one of the few devices systemd-nspawn
	// gives a container and not on the unit's list, opens without a
	// policy and not with DevicePolicy=closed, which admits ptys by
	// itself, so the simulated devices need no DeviceAllow= of their own.
	t.Run("device-policy", func(t *testing.T) {
		const node = "/dev/net/tun"
		probe := func(dev string, props ...string) (string, error) {
			args := []string{"systemd-run", "--wait", "--pipe", "--quiet"}
			for _, p := range props {
				args = append(args, "-p", p)
			}
			return c.run(append(args, "sh", "-c", "exec 3<>"+dev)...)
		}
		if out, err := probe(node); err != nil {
			t.Fatalf("opening %s without a device policy: %v %q, want success", node, err, out)
		}
		if out, err := probe(node, "DevicePolicy=closed"); err == nil || !strings.Contains(out, "Operation not permitted") {
			t.Errorf("opening %s under DevicePolicy=closed: %v %q, want EPERM", node, err, out)
		}
		if out, err := probe(ptys[0], "DevicePolicy=closed"); err != nil {
			t.Errorf("opening %s under DevicePolicy=closed: %v %q, want success", ptys[0], err, out)
		}
	})

	var firstPID string
	t.Run("notify", func(t *testing.T) {
		start := time.Now()
		if out, err := c.run("systemctl", "start", "fieldgated"); err != nil {
			t.Fatalf("systemctl start fieldgated: %v\n%s\n%s", err, out, c.journal("fieldgated"))
		}
		t.Logf("systemctl start fieldgated returned after %v", time.Since(start).Round(time.Millisecond))
		// Type=notify: the start job ends only with READY=1, so the unit
		// is already running (not activating) when systemctl returns.
		p := c.show(t, "fieldgated", "ActiveState", "SubState", "MainPID", "Type", "NotifyAccess")
		if p["ActiveState"] != "active" || p["SubState"] != "running" || p["MainPID"] == "0" {
			t.Fatalf("after systemctl start: %v, want ActiveState=active SubState=running and a MainPID\n%s", p, c.journal("fieldgated"))
		}
		if p["Type"] != "notify" || p["NotifyAccess"] != "main" {
			t.Errorf("Type = %q, NotifyAccess = %q, want notify, main", p["Type"], p["NotifyAccess"])
		}
		firstPID = p["MainPID"]
		// READY=1 comes after the control socket listens: fieldgatectl
		// answers at once, with no wait.
		if out, err := c.run("fieldgatectl", "--socket", "/run/fieldgate/fieldgated.sock", "status"); err != nil {
			t.Errorf("fieldgatectl status right after systemctl start: %v\n%s", err, out)
		}

		// STATUS= comes from the daemon's display once it runs.
		status := c.waitShow(t, "fieldgated", "StatusText", func(p map[string]string) bool { return p["StatusText"] != "" })
		if status["StatusText"] != "idle" {
			t.Errorf("StatusText = %q, want idle (fieldgated's state with an empty repository)", status["StatusText"])
		}

		// The main process: user fieldgate, in dialout and gpio, no
		// capabilities, no new privileges, a seccomp filter.
		uid := strings.TrimSpace(c.must(t, "id", "-u", "fieldgate"))
		groups := map[string]bool{}
		for _, g := range []string{"dialout", "gpio"} {
			out := c.must(t, "getent", "group", g)
			groups[strings.Split(strings.TrimSpace(out), ":")[2]] = true
		}
		st := procStatus(c.must(t, "cat", "/proc/"+firstPID+"/status"))
		if f := strings.Fields(st["Uid"]); len(f) != 4 || f[0] != uid || f[1] != uid || f[2] != uid {
			t.Errorf("fieldgated Uid: %q, want %s (fieldgate)", st["Uid"], uid)
		}
		for g := range groups {
			if !strings.Contains(" "+st["Groups"]+" ", " "+g+" ") {
				t.Errorf("fieldgated Groups: %q, want it to contain %s (dialout, gpio)", st["Groups"], g)
			}
		}
		for field, want := range map[string]string{"CapEff": "0000000000000000", "CapBnd": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2"} {
			if st[field] != want {
				t.Errorf("fieldgated %s = %q, want %q", field, st[field], want)
			}
		}
		if ns := c.must(t, "readlink", "/proc/"+firstPID+"/ns/user", "/proc/1/ns/user"); len(strings.Fields(ns)) != 2 || strings.Fields(ns)[0] == strings.Fields(ns)[1] {
			t.Errorf("fieldgated's user namespace is PID 1's (%q), want its own (PrivateUsers=yes)", ns)
		}

		// It works under the sandbox: the control socket answers, the TUF
		// refresh reached the repository and wrote to the state directory,
		// and every simulated device was read over its root:dialout pty.
		var last string
		ok := waitFor(30*time.Second, func() bool {
			out, err := c.run("fieldgatectl", "--socket", "/run/fieldgate/fieldgated.sock", "status", "--json")
			last = out
			if err != nil {
				return false
			}
			var s bootStatus
			if err := json.Unmarshal([]byte(out), &s); err != nil {
				return false
			}
			if s.Gateway.ID != "gw1" || s.Gateway.LastRefresh == nil || len(s.Devices) != bootDevices {
				return false
			}
			for _, d := range s.Devices {
				if d.Version != "1.0.0" {
					return false
				}
			}
			return true
		})
		if !ok {
			t.Fatalf("fieldgatectl status --json never showed gateway gw1 refreshed with %d devices at 1.0.0; last answer:\n%s\n%s", bootDevices, last, c.journal("fieldgated"))
		}
		state := c.must(t, "stat", "-c", "%U:%G %a %n", "/var/lib/fieldgate", "/var/lib/fieldgate/state.db", "/var/lib/fieldgate/tuf/timestamp.json")
		for _, line := range strings.Split(strings.TrimSpace(state), "\n") {
			if !strings.HasPrefix(line, "fieldgate:fieldgate ") {
				t.Errorf("state: %q, want owned by fieldgate:fieldgate", line)
			}
		}
		if !strings.HasPrefix(state, "fieldgate:fieldgate 750 ") {
			t.Errorf("state directory: %q, want mode 750 (StateDirectoryMode=)", strings.Split(state, "\n")[0])
		}
		if cfg := c.must(t, "stat", "-c", "%U:%G %a", "/etc/fieldgate"); strings.TrimSpace(cfg) != "root:fieldgate 750" {
			t.Errorf("/etc/fieldgate: %q, want root:fieldgate 750 (tmpfiles.d)", strings.TrimSpace(cfg))
		}

		// Logs fit journald: one entry per record, no time= or level= of
		// the daemon's own, the level as the entry's PRIORITY.
		entries := c.must(t, "journalctl", "--no-pager", "-o", "json", "-u", "fieldgated", "_PID="+firstPID)
		var started bool
		for _, line := range strings.Split(strings.TrimSpace(entries), "\n") {
			var e struct{ MESSAGE, PRIORITY string }
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("journal entry %q: %v", line, err)
			}
			if strings.HasPrefix(e.MESSAGE, "time=") || strings.Contains(e.MESSAGE, " level=") || strings.HasPrefix(e.MESSAGE, "<") {
				t.Errorf("journal entry %q: want no time=, level= or priority prefix left in the message", e.MESSAGE)
			}
			if strings.HasPrefix(e.MESSAGE, `msg="fieldgated started"`) {
				started = true
				if e.PRIORITY != "6" {
					t.Errorf("%q has PRIORITY=%s, want 6 (info)", e.MESSAGE, e.PRIORITY)
				}
			}
		}
		if !started {
			t.Errorf("no 'fieldgated started' entry of PID %s in the journal:\n%s", firstPID, entries)
		}
	})
	if firstPID == "" {
		t.Fatal("fieldgated did not start; the other checks need it")
	}

	t.Run("watchdog", func(t *testing.T) {
		frozen := time.Now()
		c.must(t, "systemctl", "kill", "--kill-who=main", "--signal=SIGSTOP", "fieldgated")
		p := c.waitShow(t, "fieldgated", "NRestarts", func(p map[string]string) bool {
			return p["NRestarts"] != "0" && p["ActiveState"] == "active" && p["SubState"] == "running" && p["MainPID"] != firstPID && p["MainPID"] != "0"
		})
		t.Logf("frozen fieldgated (PID %s) replaced by PID %s after %v (WatchdogSec=%v, RestartSec=%v)",
			firstPID, p["MainPID"], time.Since(frozen).Round(100*time.Millisecond), bootWatchdog, bootRestart)
		j := c.journal("fieldgated")
		for _, want := range []string{"Watchdog timeout", "Failed with result 'watchdog'"} {
			if !strings.Contains(j, want) {
				t.Errorf("journal of fieldgated has no %q:\n%s", want, j)
			}
		}
		if _, err := c.run("fieldgatectl", "--socket", "/run/fieldgate/fieldgated.sock", "status"); err != nil {
			t.Errorf("fieldgatectl status after the restart: %v", err)
		}
	})

	// The watchdog watches the update loop, not the process: with the
	// repository stopped (its socket still accepts, nobody answers), a
	// refresh holds the loop in a metadata request for tuf.http_timeout
	// (30s), longer than half of WatchdogSec. fieldgated stops pinging,
	// says why, and systemd kills and restarts it. Everything else in it
	// (control socket, MQTT, a ticker) goes on meanwhile.
	t.Run("watchdog-loop", func(t *testing.T) {
		before := c.waitShow(t, "fieldgated", "NRestarts", bootRunning(""))
		pid := before["MainPID"]
		kills := strings.Count(c.journal("fieldgated"), "Failed with result 'watchdog'")
		c.must(t, "systemctl", "kill", "--signal=SIGSTOP", "fieldgate-test-repo")
		resumed := false
		resume := func() {
			if !resumed {
				c.must(t, "systemctl", "kill", "--signal=SIGCONT", "fieldgate-test-repo")
				resumed = true
			}
		}
		defer resume()

		blocked := time.Now()
		c.must(t, "fieldgatectl", "--socket", bootSocket, "refresh")
		var complaint string
		p := c.waitShow(t, "fieldgated", "StatusText", func(p map[string]string) bool {
			if strings.HasPrefix(p["StatusText"], "watchdog: ") && complaint == "" {
				complaint = p["StatusText"]
				t.Logf("STATUS=%s %v after the refresh", complaint, time.Since(blocked).Round(100*time.Millisecond))
			}
			return bootRunning(pid)(p) && p["NRestarts"] != before["NRestarts"]
		})
		t.Logf("fieldgated (PID %s) with its update loop stuck replaced by PID %s %v after the refresh (WatchdogSec=%v, RestartSec=%v)",
			pid, p["MainPID"], time.Since(blocked).Round(100*time.Millisecond), bootWatchdog, bootRestart)
		resume()

		j := c.journal("fieldgated")
		if n := strings.Count(j, "Failed with result 'watchdog'"); n != kills+1 {
			t.Errorf("journal of fieldgated: %d watchdog failures, want %d\n%s", n, kills+1, j)
		}
		if n := strings.Count(j, "not pinging systemd's watchdog"); n != 1 || !strings.Contains(j, "update loop has not turned") {
			t.Errorf("journal of fieldgated: %d lines saying the watchdog is not pinged, want 1, naming the update loop\n%s", n, j)
		}
		for _, line := range strings.Split(j, "\n") {
			if strings.Contains(line, "not pinging") || strings.Contains(line, "Watchdog timeout") {
				t.Logf("journal: %s", line)
			}
		}
		if complaint == "" {
			t.Errorf("StatusText never named the reason the watchdog is not pinged")
		}
		// The new process's loop turns once the repository answers.
		c.refreshNow(t)
	})

	// The same unit with a main process that never sends READY=1: the
	// start job waits for it (so the notify subtest's start did wait for
	// fieldgated's READY=1) and fails at TimeoutStartSec, which is what
	// a self-update's rollback relies on.
	t.Run("start-timeout", func(t *testing.T) {
		start := time.Now()
		out, err := c.run("systemctl", "start", "fieldgated-hang")
		if err == nil {
			t.Fatalf("systemctl start fieldgated-hang succeeded, want a failure: a service that never sends READY=1\n%s", out)
		}
		t.Logf("systemctl start fieldgated-hang failed after %v (TimeoutStartSec=%v): %s", time.Since(start).Round(100*time.Millisecond), bootStartTimeout, strings.TrimSpace(out))
		p := c.show(t, "fieldgated-hang", "ActiveState", "Result")
		if p["ActiveState"] != "failed" || p["Result"] != "timeout" {
			t.Errorf("fieldgated-hang: %v, want ActiveState=failed Result=timeout", p)
		}
	})

	// Self-update (issue 8): the repository gets a signed fieldgated for
	// this gateway's hardware id that starts but never becomes ready (no
	// READY=1, no WATCHDOG=1). The daemon installs it and re-executes into
	// it in its main process; systemd's watchdog kills it and restarts the
	// unit; the packaged binary marks the trial bad, runs itself, reports
	// the rollback, and never tries that binary again. Last, since it
	// leaves the rollback in the daemon's health.
	t.Run("self-update-rollback", func(t *testing.T) {
		begun := time.Now()
		before := c.waitShow(t, "fieldgated", "NRestarts", bootRunning(""))
		pid := before["MainPID"]
		sha := fileSHA256(t, filepath.Join(bin, bootNeverReady))
		trial := "/var/lib/fieldgate/self/" + sha + "/fieldgated"
		kills := strings.Count(c.journal("fieldgated"), "Failed with result 'watchdog'")

		c.must(t, "fieldgate-repo", "add", "/srv/fieldgate-repo", "/srv/fieldgate-self/fieldgated",
			"--name", "fieldgated/fieldgated-"+bootTrialVersion, "--hardware", bootGatewayHardware, "--version", bootTrialVersion)
		c.must(t, "fieldgate-repo", "commit", "/srv/fieldgate-repo", "--insecure-plaintext-keys")
		c.must(t, "fieldgatectl", "--socket", bootSocket, "refresh")

		// The trial runs in the main process systemd watches: same PID,
		// the installed binary.
		var exe string
		if !waitFor(30*time.Second, func() bool { exe = c.exe(pid); return exe == trial }) {
			t.Fatalf("PID %s runs %q, never the trial %s\n%s", pid, exe, trial, c.journal("fieldgated"))
		}
		tried := time.Now()
		t.Logf("PID %s re-executed into the trial %v after the refresh", pid, tried.Sub(begun).Round(100*time.Millisecond))
		// To systemd the service is still up, so its watchdog is armed. (A
		// STOPPING=1 before the re-exec would leave it deactivating, with
		// no watchdog, until TimeoutStopSec= kills the trial.)
		if p := c.show(t, "fieldgated", "ActiveState", "SubState", "MainPID"); p["ActiveState"] != "active" || p["SubState"] != "running" || p["MainPID"] != pid {
			t.Fatalf("while the trial runs: %v, want ActiveState=active SubState=running MainPID=%s: only then does systemd's watchdog catch a trial that never becomes ready\n%s",
				p, pid, c.journal("fieldgated"))
		}

		p := c.waitShow(t, "fieldgated", "NRestarts", bootRunning(pid))
		t.Logf("trial (PID %s) replaced by PID %s %v after it began (WatchdogSec=%v, RestartSec=%v)",
			pid, p["MainPID"], time.Since(tried).Round(100*time.Millisecond), bootWatchdog, bootRestart)
		if n := strings.Count(c.journal("fieldgated"), "Failed with result 'watchdog'"); n != kills+1 {
			t.Errorf("journal of fieldgated: %d watchdog failures, want %d (the trial's)\n%s", n, kills+1, c.journal("fieldgated"))
		}
		if got := c.exe(p["MainPID"]); got != "/usr/bin/fieldgated" {
			t.Errorf("after the restart PID %s runs %q, want /usr/bin/fieldgated (rolled back)", p["MainPID"], got)
		}
		s := c.selfState(t)
		if s.Trial != "" || s.Current != "" || !slices.Contains(s.Bad, sha) {
			t.Errorf("self-update state after the restart: %+v, want no trial, the packaged binary current, %s bad", s, sha)
		}

		// The daemon reports it: in its health and in the audit log.
		var health string
		if !waitFor(30*time.Second, func() bool {
			st, err := c.status()
			if err != nil {
				return false
			}
			for _, h := range st.Gateway.Health {
				if h.Name == "rollback" && h.Subject == "fieldgated" && strings.Contains(h.Message, bootTrialVersion) {
					health = h.Severity + ": " + h.Message
					return true
				}
			}
			return false
		}) {
			st, err := c.status()
			t.Errorf("fieldgatectl status never showed the rollback of %s in its health: %+v %v", bootTrialVersion, st.Gateway.Health, err)
		}
		t.Logf("health: %s", health)
		audit := c.audit(t)
		if n := audit.count("self-update-staged", "sha256", sha); n != 1 {
			t.Errorf("audit log: %d self-update-staged events for %s, want 1", n, sha)
		}
		if n := audit.count("self-update-rolled-back", "failed_version", bootTrialVersion); n != 1 {
			t.Errorf("audit log: %d self-update-rolled-back events for %s, want 1", n, bootTrialVersion)
		}

		// Never again: neither a refresh nor a restart tries it.
		rolled := p["MainPID"]
		c.refreshNow(t)
		c.must(t, "systemctl", "restart", "fieldgated")
		p = c.waitShow(t, "fieldgated", "NRestarts", bootRunning(rolled))
		c.refreshNow(t)
		if q := c.show(t, "fieldgated", "MainPID"); q["MainPID"] != p["MainPID"] || c.exe(p["MainPID"]) != "/usr/bin/fieldgated" {
			t.Errorf("after a refresh, a restart and a refresh: MainPID %s running %q, want PID %s still on /usr/bin/fieldgated", q["MainPID"], c.exe(q["MainPID"]), p["MainPID"])
		}
		if s := c.selfState(t); s.Trial != "" || s.Attempts != 0 {
			t.Errorf("self-update state after a refresh, a restart and a refresh: %+v, want no trial", s)
		}
		if n := c.audit(t).count("self-update-staged", "sha256", sha); n != 1 {
			t.Errorf("audit log: %d self-update-staged events for %s, want still 1", n, sha)
		}
		t.Logf("self-update-rollback: %v", time.Since(begun).Round(100*time.Millisecond))
	})

	// A good self-update after the bad one: a real fieldgated, newer. It
	// runs in the same main process, sends READY=1 and pings the watchdog
	// (systemd leaves it running past WatchdogSec + RestartSec), and
	// commits itself: it is what every later start hands over to.
	t.Run("self-update-commit", func(t *testing.T) {
		begun := time.Now()
		before := c.waitShow(t, "fieldgated", "NRestarts", bootRunning(""))
		pid := before["MainPID"]
		sha := fileSHA256(t, filepath.Join(bin, "good", "fieldgated"))
		installed := "/var/lib/fieldgate/self/" + sha + "/fieldgated"

		c.must(t, "fieldgate-repo", "add", "/srv/fieldgate-repo", "/srv/fieldgate-self-good/fieldgated",
			"--name", "fieldgated/fieldgated-"+bootGoodVersion, "--hardware", bootGatewayHardware, "--version", bootGoodVersion)
		c.must(t, "fieldgate-repo", "commit", "/srv/fieldgate-repo", "--insecure-plaintext-keys")
		c.must(t, "fieldgatectl", "--socket", bootSocket, "refresh")

		var exe string
		if !waitFor(30*time.Second, func() bool { exe = c.exe(pid); return exe == installed }) {
			t.Fatalf("PID %s runs %q, never the new binary %s\n%s", pid, exe, installed, c.journal("fieldgated"))
		}
		if !waitFor(30*time.Second, func() bool { s := c.selfState(t); return s.Current == sha && s.Trial == "" }) {
			t.Fatalf("self-update state: %+v, want %s committed as current\n%s", c.selfState(t), sha, c.journal("fieldgated"))
		}
		time.Sleep(bootWatchdog + bootRestart + time.Second)
		after := c.show(t, "fieldgated", "ActiveState", "SubState", "MainPID", "NRestarts")
		if after["ActiveState"] != "active" || after["SubState"] != "running" || after["MainPID"] != pid || after["NRestarts"] != before["NRestarts"] {
			t.Errorf("%v after the new binary committed: %v, want still active/running as PID %s with NRestarts %s (its watchdog pings arrive)",
				bootWatchdog+bootRestart+time.Second, after, pid, before["NRestarts"])
		}
		if n := c.audit(t).count("self-update-committed", "sha256", sha); n != 1 {
			t.Errorf("audit log: %d self-update-committed events for %s, want 1", n, sha)
		}

		// The next start hands over to it.
		c.must(t, "systemctl", "restart", "fieldgated")
		p := c.waitShow(t, "fieldgated", "NRestarts", bootRunning(pid))
		if got := c.exe(p["MainPID"]); got != installed {
			t.Errorf("after systemctl restart PID %s runs %q, want the committed %s", p["MainPID"], got, installed)
		}
		t.Logf("self-update-commit: %v", time.Since(begun).Round(100*time.Millisecond))
	})
	t.Logf("whole test: %v", time.Since(began).Round(100*time.Millisecond))
}

// Test-only timings, shortened from the unit's so that the test is quick.
// fieldgated pings the watchdog only while its update loop turned within
// half of WatchdogSec, and the loop turns every 5s when idle: WatchdogSec
// cannot be much below 12s.
const (
	bootWatchdog     = 12 * time.Second
	bootRestart      = time.Second
	bootStartTimeout = 3 * time.Second
	bootDevices      = 2
	bootRepoAddr     = "127.0.0.1:8080" // the container has a network of its own
	bootBrokerAddr   = "127.0.0.1:1883"
	bootSocket       = "/run/fieldgate/fieldgated.sock"

	// Self-update: the packaged fieldgated's version, the gateway's
	// hardware id, and the version of the trial that never becomes ready.
	bootVersion         = "1.0.0"
	bootGatewayHardware = "fieldgate-gw-boot"
	bootTrialVersion    = "9.9.9"
	bootGoodVersion     = "10.0.0"      // a real fieldgated, published after the bad trial
	bootNeverReady      = "never-ready" // the trial's binary, in bin
)

// bootDropIn is the only change the test makes to fieldgated.service.
var bootDropIn = fmt.Sprintf(`# Test-only settings for fieldgated.service in the boot test.
[Service]
# No DeviceAllow= for the simulated devices' ptys: DevicePolicy=closed
# itself admits char-pts (the device-policy subtest shows it).
# Shorter than the unit's WatchdogSec=30s and RestartSec=5s, so that the
# freeze-and-restart checks take seconds; not below 12s, since fieldgated
# pings only while its update loop (which turns every 5s) turned within
# half of WatchdogSec.
WatchdogSec=%ds
RestartSec=%ds
`, int(bootWatchdog.Seconds()), int(bootRestart.Seconds()))

// bootHangDropIn turns a copy of the unit, fieldgated-hang.service, into a
// service that starts but never sends READY=1.
var bootHangDropIn = fmt.Sprintf(`# Test-only: a start that never becomes ready.
[Service]
ExecStart=
ExecStart=/usr/bin/sleep infinity
# Shorter than the unit's 60s, so that the test waits seconds.
TimeoutStartSec=%ds
# One failed start is the point; Restart=on-failure would start it again.
Restart=no
# Not fieldgated's runtime directory: systemd removes it when this unit
# stops, and with it the control socket of the running fieldgated.
RuntimeDirectory=
`, int(bootStartTimeout.Seconds()))

// bootStage writes the files the test adds to the container's root: the
// binaries, unit and snippets where the package installs them, a signed
// empty repository, the configuration, and the test's own units (the
// repository server, the simulated devices and the target that boots
// them).
func bootStage(t *testing.T, bin string) string {
	t.Helper()
	stage := t.TempDir()
	// cp -a copies the stage's own mode onto the container's root.
	if err := os.Chmod(stage, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(stage, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	read := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, b := range fieldgateBinaries {
		write("usr/bin/"+b, read(filepath.Join(bin, b)), 0o755)
	}
	unit := read("fieldgated.service")
	write("usr/lib/systemd/system/fieldgated.service", unit, 0o644)
	write("usr/lib/sysusers.d/fieldgate.conf", read("fieldgate.sysusers.conf"), 0o644)
	write("usr/lib/tmpfiles.d/fieldgate.conf", read("fieldgate.tmpfiles.conf"), 0o644)
	write("etc/systemd/system/fieldgated.service.d/test.conf", bootDropIn, 0o644)
	write("etc/systemd/system/fieldgated-hang.service", unit, 0o644)
	write("etc/systemd/system/fieldgated-hang.service.d/test.conf", bootHangDropIn, 0o644)

	repo := filepath.Join(stage, "srv/fieldgate-repo")
	initRepo(t, bin, repo)
	sim, devs := simDevices(bootDevices, "/run/fieldgate-sim", "/var/lib/fieldgate-sim")
	write("etc/fieldgate-sim.yaml", sim, 0o644)
	write("etc/fieldgate/root.json", read(filepath.Join(repo, "repository/metadata/1.root.json")), 0o644)
	// Self-update on, in a window that is always open; the repository
	// has no target for the gateway until self-update-rollback adds one.
	cfg := gatewayConfig("/var/lib/fieldgate", bootSocket,
		bootRepoAddr, "/etc/fieldgate/root.json", bootBrokerAddr, devs)
	cfg = strings.Replace(cfg, "gateway:\n", "gateway:\n  hardware_id: "+bootGatewayHardware+"\n  self_update_window: always\n", 1)
	cfg = strings.Replace(cfg, "windows:\n", "windows:\n  - {name: always, start: \"* * * * *\", duration: 2h, timezone: UTC}\n", 1)
	write("etc/fieldgate/fieldgated.yaml", cfg, 0o640)
	write("srv/fieldgate-self/fieldgated", read(filepath.Join(bin, bootNeverReady)), 0o755)
	write("srv/fieldgate-self-good/fieldgated", read(filepath.Join(bin, "good", "fieldgated")), 0o755)

	write("etc/systemd/system/fieldgate-test-repo.service", `[Unit]
Description=fieldgate boot test: repository
[Service]
ExecStart=/usr/bin/fieldgate-repo serve /srv/fieldgate-repo --listen `+bootRepoAddr+`
`, 0o644)
	write("etc/systemd/system/fieldgate-test-sim.service", `[Unit]
Description=fieldgate boot test: simulated devices
[Service]
RuntimeDirectory=fieldgate-sim
StateDirectory=fieldgate-sim
ExecStart=/usr/bin/fieldgate-sim run --config /etc/fieldgate-sim.yaml
`, 0o644)
	// Booted instead of the host's default target: the base system and
	// the test's peers, none of the host's other services.
	write("etc/systemd/system/fieldgate-test.target", `[Unit]
Description=fieldgate boot test
Requires=basic.target
After=basic.target
Wants=fieldgate-test-repo.service fieldgate-test-sim.service
AllowIsolate=yes
`, 0o644)
	return stage
}

// bootScript runs in a mount namespace of its own (unshare), so that
// whatever happens to the test no mount outlives the container: a tmpfs
// at $1 holds the overlay's upper layer over the host's root, the stage
// $2 is copied in, and systemd-nspawn boots it as machine $3, from the
// cgroups given after $3 (one per hierarchy: the container's cgroups go
// below them, and the test removes them).
//
// systemd-nspawn options beyond the obvious:
//   - --register=no --keep-unit: no systemd-machined nor a systemd on the
//     host is needed;
//   - --private-network: only loopback, so the fixed ports of the test's
//     repository and broker cannot clash with anything on the host;
//   - --system-call-filter=bpf: nspawn's seccomp filter refuses bpf(2) by
//     default, and without it the container's systemd cannot load the
//     cgroup device program of DevicePolicy=, which it then ignores
//     silently (fieldgated would get every device);
//   - SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 (in the environment): cgroup v2
//     in the container even on a host with the hybrid layout, since the
//     v1 devices controller cannot be delegated to a container either.
const bootScript = `set -eu
mount -t tmpfs -o mode=0755 fieldgate-boot "$1"
mkdir "$1/upper" "$1/work" "$1/root"
mount -t overlay -o lowerdir=/,upperdir="$1/upper",workdir="$1/work" fieldgate-boot "$1/root"
cp -a "$2/." "$1/root/"
root=$1/root stage=$2 machine=$3
shift 3
for cg; do echo $$ >"$cg/cgroup.procs"; done
exec systemd-nspawn --quiet --boot --register=no --keep-unit --private-network \
	--system-call-filter=bpf --directory="$root" --machine="$machine" -- --unit=fieldgate-test.target
`

// container is a booted systemd-nspawn container.
type container struct {
	leader int    // its PID 1, as the host sees it
	log    string // systemd-nspawn's output (the console)
}

// bootContainer boots the container and waits until its systemd has
// finished starting up. t.Cleanup kills it.
func bootContainer(t *testing.T, stage string) *container {
	t.Helper()
	mnt := t.TempDir()
	c := &container{log: filepath.Join(t.TempDir(), "console.log")}
	log, err := os.Create(c.log)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("fieldgate-boot-%d-%d", os.Getpid(), bootSeq.Add(1))
	cgroups := bootCgroups(t, name)
	cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "--", "sh", "-c", bootScript, "sh", mnt, stage, name}, cgroups...)...)
	cmd.Env = append(os.Environ(), "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1")
	cmd.Stdout, cmd.Stderr = log, log
	// Should the test process die without its cleanup (a -timeout
	// panic), systemd-nspawn (the command after its execs) gets SIGTERM
	// and shuts the container down; it outlives a SIGKILL of nspawn.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start systemd-nspawn: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); log.Close(); close(exited) }()
	t.Cleanup(func() {
		// Killing the container's PID 1 ends its PID namespace; nspawn then
		// exits, and with it the mount namespace holding the overlay.
		if c.leader > 0 {
			syscall.Kill(c.leader, syscall.SIGKILL)
		}
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		for _, cg := range cgroups {
			// The killed PID namespace's processes may take a moment to go.
			var err error
			waitFor(10*time.Second, func() bool { err = removeCgroup(cg); return err == nil })
			if err != nil {
				t.Errorf("remove the container's cgroup: %v", err)
			}
		}
		// systemd-nspawn leaves this behind when /run is not a tmpfs.
		os.Remove(filepath.Join("/run/systemd/nspawn/propagate", name))
		if t.Failed() {
			b, _ := os.ReadFile(c.log)
			t.Logf("container console:\n%s", b)
		}
	})

	// systemd-nspawn (cmd, after the execs) forks the container's PID 1.
	if !waitFor(30*time.Second, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		c.leader = childSystemd(cmd.Process.Pid)
		return c.leader > 0
	}) || c.leader == 0 {
		b, _ := os.ReadFile(c.log)
		t.Fatalf("no container PID 1 running systemd: %v\n%s", cmd.ProcessState, b)
	}
	var state string
	if !waitFor(60*time.Second, func() bool {
		out, _ := c.run("systemctl", "is-system-running", "--wait")
		state = strings.TrimSpace(out)
		return state == "running" || state == "degraded"
	}) {
		t.Fatalf("container's systemd did not finish starting up: is-system-running = %q", state)
	}
	if state != "running" {
		out, _ := c.run("systemctl", "--failed", "--no-pager")
		t.Logf("container is %s:\n%s", state, out)
	}
	for _, u := range []string{"fieldgate-test-repo", "fieldgate-test-sim"} {
		if p := c.show(t, u, "ActiveState"); p["ActiveState"] != "active" {
			t.Fatalf("%s: %v, want active\n%s", u, p, c.journal(u))
		}
	}
	return c
}

// bootSeq tells apart the containers of one test process (-count).
var bootSeq atomic.Int64

// bootCgroups makes a cgroup called name below the test's own in each
// hierarchy systemd-nspawn uses: the cgroup v2 one and the v1 name=systemd
// one when they are mounted. t.Cleanup of bootContainer removes them.
func bootCgroups(t *testing.T, name string) []string {
	t.Helper()
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, m := range strings.Split(string(mounts), "\n") {
		// ID parent maj:min root mountpoint options [optional...] - fstype source superoptions
		pre, post, ok := strings.Cut(m, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 {
			continue
		}
		var prefix string // the hierarchy's line in /proc/self/cgroup
		switch {
		case g[0] == "cgroup2":
			prefix = "0::"
		case g[0] == "cgroup" && slices.Contains(strings.Split(g[2], ","), "name=systemd"):
			prefix = "name=systemd:"
		default:
			continue
		}
		path := cgroupPath(string(self), prefix)
		if path == "" {
			continue
		}
		dir := filepath.Join(f[4], path, name)
		removeStaleCgroups(filepath.Dir(dir))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("cgroup for the container: %v", err)
		}
		dirs = append(dirs, dir)
	}
	if len(dirs) == 0 {
		t.Fatal("no cgroup v2 nor name=systemd hierarchy mounted")
	}
	return dirs
}

// cgroupPath returns the test's cgroup in the hierarchy whose
// /proc/self/cgroup lines start (after the ID) with prefix: "0::" for v2,
// "name=systemd:" for v1.
func cgroupPath(self, prefix string) string {
	for _, line := range strings.Split(self, "\n") {
		if prefix == "0::" {
			if p, ok := strings.CutPrefix(line, "0::"); ok {
				return p
			}
			continue
		}
		_, rest, ok := strings.Cut(line, ":")
		if p, ok2 := strings.CutPrefix(rest, prefix); ok && ok2 {
			return p
		}
	}
	return ""
}

// removeStaleCgroups removes the cgroups in dir left by test processes
// that died without their cleanup (fieldgate-boot-PID-N, PID gone).
func removeStaleCgroups(dir string) {
	stale, _ := filepath.Glob(filepath.Join(dir, "fieldgate-boot-*-*"))
	for _, cg := range stale {
		pid, err := strconv.Atoi(strings.Split(filepath.Base(cg), "-")[2])
		if err != nil || syscall.Kill(pid, 0) == nil {
			continue
		}
		removeCgroup(cg) // fails, harmlessly, while processes remain
	}
}

// removeCgroup removes a cgroup and the ones below it, deepest first.
func removeCgroup(dir string) error {
	var dirs []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	slices.Reverse(dirs)
	for _, d := range dirs {
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// childSystemd returns the PID of ppid's child running systemd, or 0.
func childSystemd(ppid int) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		f := strings.Fields(s[closing+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) && s[open+1:closing] == "systemd" {
			return pid
		}
	}
	return 0
}

// run runs a command inside the container (all of its namespaces) and
// returns its combined output.
func (c *container) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--target", strconv.Itoa(c.leader), "--all", "--"}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("%w (timed out)", err)
	}
	return out.String(), err
}

func (c *container) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.run(args...)
	if err != nil {
		t.Fatalf("in the container, %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// show returns properties of a unit (systemctl show).
func (c *container) show(t *testing.T, unit string, props ...string) map[string]string {
	t.Helper()
	out := c.must(t, "systemctl", "show", unit, "--property="+strings.Join(props, ","))
	p := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			p[k] = v
		}
	}
	return p
}

// waitShow polls a unit's state (ActiveState, SubState, MainPID, NRestarts
// and prop) until done accepts it; it fails the test after 60s.
func (c *container) waitShow(t *testing.T, unit, prop string, done func(map[string]string) bool) map[string]string {
	t.Helper()
	var p map[string]string
	if !waitFor(60*time.Second, func() bool {
		p = c.show(t, unit, "ActiveState", "SubState", "MainPID", "NRestarts", prop)
		return done(p)
	}) {
		t.Fatalf("%s: %v, still not as wanted after 60s\n%s", unit, p, c.journal(unit))
	}
	return p
}

// journal returns the unit's log in the container's journal.
func (c *container) journal(unit string) string {
	out, err := c.run("journalctl", "--no-pager", "--quiet", "-o", "short-monotonic", "-u", unit)
	if err != nil {
		return fmt.Sprintf("journalctl -u %s: %v\n%s", unit, err, out)
	}
	return out
}

// fixPTYs waits for the simulated devices' ptys and gives them the owner
// and mode of a real UART on Debian (root:dialout 0660), so that fieldgated
// opens them only through SupplementaryGroups=dialout.
func (c *container) fixPTYs(t *testing.T, n int) []string {
	t.Helper()
	var ptys []string
	for i := range n {
		link := fmt.Sprintf("/run/fieldgate-sim/io%02d", i)
		var pts string
		if !waitFor(30*time.Second, func() bool {
			out, err := c.run("readlink", "-e", link)
			pts = strings.TrimSpace(out)
			return err == nil && strings.HasPrefix(pts, "/dev/pts/")
		}) {
			t.Fatalf("simulated device %s: no pty (%q)\n%s", link, pts, c.journal("fieldgate-test-sim"))
		}
		c.must(t, "chown", "root:dialout", pts)
		c.must(t, "chmod", "0660", pts)
		ptys = append(ptys, pts)
	}
	return ptys
}

// waitFor polls cond until it holds or d has passed. It bounds a hang; it
// is not a timed assertion.
func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(100 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// procStatus parses /proc/PID/status.
func procStatus(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// bootStatus is the part of `fieldgatectl status --json` the test reads.
type bootStatus struct {
	Gateway struct {
		ID          string  `json:"gateway"`
		LastRefresh *string `json:"last_refresh"`
		Health      []struct {
			Name     string `json:"name"`
			Severity string `json:"severity"`
			Subject  string `json:"subject"`
			Message  string `json:"message"`
		} `json:"health"`
	} `json:"gateway"`
	Devices []struct {
		ID      string `json:"id"`
		Version string `json:"version"`
	} `json:"devices"`
}

// neverReadySource is a fieldgated that starts but never becomes ready: it
// sends neither READY=1 nor WATCHDOG=1, and runs until killed.
const neverReadySource = `package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	fmt.Fprintln(os.Stderr, "never-ready fieldgated: running, never ready", os.Args[1:])
	time.Sleep(time.Hour)
}
`

// buildNeverReady builds neverReadySource, static, into bin/bootNeverReady.
func buildNeverReady(t *testing.T, bin string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "main.go")
	if err := os.WriteFile(src, []byte(neverReadySource), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(bin, bootNeverReady), src)
	cmd.Dir = filepath.Dir(src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the never-ready fieldgated: %v\n%s", err, out)
	}
}

// fileSHA256 returns the hex sha256 of a file: a self-update's name in the
// gateway's state directory.
func fileSHA256(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// bootRunning accepts a unit that is active/running, after a restart when
// old is a PID: with a MainPID other than old, NRestarts above 0.
func bootRunning(old string) func(map[string]string) bool {
	return func(p map[string]string) bool {
		if p["ActiveState"] != "active" || p["SubState"] != "running" || p["MainPID"] == "0" {
			return false
		}
		return old == "" || p["MainPID"] != old
	}
}

// exe returns the program a process in the container runs (/proc/PID/exe).
func (c *container) exe(pid string) string {
	out, _ := c.run("readlink", "/proc/"+pid+"/exe")
	return strings.TrimSpace(out)
}

// status returns fieldgated's `fieldgatectl status --json`.
func (c *container) status() (bootStatus, error) {
	var s bootStatus
	out, err := c.run("fieldgatectl", "--socket", bootSocket, "status", "--json")
	if err != nil {
		return s, fmt.Errorf("fieldgatectl status: %w: %s", err, out)
	}
	return s, json.Unmarshal([]byte(out), &s)
}

// refreshNow asks fieldgated to refresh and waits until two refreshes
// have passed since: the loop refreshes one at a time, so the first one's
// self-update decision has then been taken.
func (c *container) refreshNow(t *testing.T) {
	t.Helper()
	last := func() string {
		s, err := c.status()
		if err != nil || s.Gateway.LastRefresh == nil {
			return ""
		}
		return *s.Gateway.LastRefresh
	}
	for range 2 {
		prev := last()
		c.must(t, "fieldgatectl", "--socket", bootSocket, "refresh")
		var now string
		if !waitFor(30*time.Second, func() bool { now = last(); return now != "" && now != prev }) {
			t.Fatalf("fieldgatectl refresh: last_refresh still %q after 30s\n%s", now, c.journal("fieldgated"))
		}
	}
}

// bootSelfState is the part of state_dir/self/state.json (the daemon's
// SelfState) the test reads.
type bootSelfState struct {
	Current    string   `json:"current"`
	Trial      string   `json:"trial"`
	Attempts   int      `json:"attempts"`
	Bad        []string `json:"bad"`
	RolledBack string   `json:"rolled_back"`
}

func (c *container) selfState(t *testing.T) bootSelfState {
	t.Helper()
	var s bootSelfState
	out := c.must(t, "cat", "/var/lib/fieldgate/self/state.json")
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("self-update state %q: %v", out, err)
	}
	return s
}

// bootAudit is fieldgated's audit log (fieldgatectl audit export).
type bootAudit []bootEvent

type bootEvent struct {
	Type   string            `json:"type"`
	Detail map[string]string `json:"detail"`
}

func (c *container) audit(t *testing.T) bootAudit {
	t.Helper()
	var a bootAudit
	out := c.must(t, "fieldgatectl", "--socket", bootSocket, "audit", "export")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e bootEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit export line %q: %v", line, err)
		}
		a = append(a, e)
	}
	return a
}

// count returns how many events of type typ have detail key = value.
func (a bootAudit) count(typ, key, value string) int {
	n := 0
	for _, e := range a {
		if e.Type == typ && e.Detail[key] == value {
			n++
		}
	}
	return n
}
