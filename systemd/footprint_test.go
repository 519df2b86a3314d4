// SPDX-License-Identifier: Apache-2.0

package systemd

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/internal/proctest"
)

// The footprint goals of issue 8.
const (
	maxDaemonSizeARM = 12 << 20         // stripped fieldgated for armv7
	maxReady         = time.Second      // exec to READY=1
	maxIdleRSS       = 20 << 20         // with 32 simulated devices
	maxIdleCPU       = 0.1              // percent of one CPU
	footprintDevices = 32               // simulated devices configured
	idleSettle       = 30 * time.Second // start-up inventory, excluded from the idle CPU figure
)

// clockTicks is the unit of utime and stime in /proc/PID/stat: USER_HZ,
// 100 on every Linux architecture fieldgate is built for.
const clockTicks = 100

// footprintEnabled skips the footprint measurements unless
// FIELDGATE_FOOTPRINT=1: they take minutes and measure the machine.
func footprintEnabled(t *testing.T) {
	t.Helper()
	if os.Getenv("FIELDGATE_FOOTPRINT") != "1" {
		t.Skip("footprint measurement: run with FIELDGATE_FOOTPRINT=1 (and -timeout 30m)")
	}
}

// TestFootprintSizes reports the stripped size of every binary per
// architecture and holds fieldgated for armv7 to its goal.
//
//	FIELDGATE_FOOTPRINT=1 go test -run TestFootprintSizes -v ./systemd
func TestFootprintSizes(t *testing.T) {
	footprintEnabled(t)
	var table strings.Builder
	fmt.Fprintf(&table, "%-16s", "binary")
	arches := []string{"amd64", "arm64", "arm"}
	for _, a := range arches {
		fmt.Fprintf(&table, " %12s", "linux/"+a)
	}
	table.WriteString("\n")
	sizes := map[string]map[string]int64{}
	for _, a := range arches {
		dir := t.TempDir()
		crossBuild(t, a, dir, "footprint", fieldgateBinaries...)
		sizes[a] = map[string]int64{}
		for _, b := range fieldgateBinaries {
			fi, err := os.Stat(filepath.Join(dir, b))
			if err != nil {
				t.Fatal(err)
			}
			sizes[a][b] = fi.Size()
		}
	}
	for _, b := range fieldgateBinaries {
		fmt.Fprintf(&table, "%-16s", b)
		for _, a := range arches {
			fmt.Fprintf(&table, " %8.2f MiB", float64(sizes[a][b])/(1<<20))
		}
		table.WriteString("\n")
	}
	t.Logf("stripped sizes (-trimpath -ldflags '-s -w', CGO_ENABLED=0):\n%s", table.String())
	if got := sizes["arm"]["fieldgated"]; got > maxDaemonSizeARM {
		t.Errorf("fieldgated for linux/arm (v7) is %.2f MiB stripped, goal ≤ %d MiB", float64(got)/(1<<20), maxDaemonSizeARM>>20)
	}
}

// footprintRig is fieldgated's surroundings for the measurements: a
// signed, empty repository being served, 32 simulated serial devices on
// pseudo-terminals (fieldgate-sim, xmodem-console at 115200 baud), and a
// configuration naming all of them.
type footprintRig struct {
	bin, work, config string
}

func newFootprintRig(t *testing.T) *footprintRig {
	t.Helper()
	bin := t.TempDir()
	crossBuild(t, runtime.GOARCH, bin, "footprint", "fieldgated", "fieldgate-repo", "fieldgate-sim")
	work, err := os.MkdirTemp("", "fgfp") // short: socket paths hold 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	r := &footprintRig{bin: bin, work: work}

	repo := filepath.Join(work, "repo")
	initRepo(t, bin, repo)
	repoAddr, brokerAddr := freeTCPAddr(t), freeTCPAddr(t)
	r.background(t, "repo", "fieldgate-repo", "serve", repo, "--listen", repoAddr)

	sim, devs := simDevices(footprintDevices, filepath.Join(work, "dev"), filepath.Join(work, "sim"))
	for _, d := range []string{"dev", "sim", "state"} {
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	simPath := filepath.Join(work, "sim.yaml")
	if err := os.WriteFile(simPath, []byte(sim), 0o644); err != nil {
		t.Fatal(err)
	}
	r.background(t, "sim", "fieldgate-sim", "run", "--config", simPath)
	for i := range footprintDevices {
		waitPath(t, filepath.Join(work, "dev", fmt.Sprintf("io%02d", i)))
	}

	cfg := gatewayConfig(filepath.Join(work, "state"), filepath.Join(work, "fieldgated.sock"), repoAddr,
		filepath.Join(repo, "repository", "metadata", "1.root.json"), brokerAddr, devs)
	r.config = filepath.Join(work, "fieldgated.yaml")
	if err := os.WriteFile(r.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

// initRepo creates a signed, empty fieldgate repository in dir with the
// fieldgate-repo in bin; a test repository, so its keys stay unencrypted
// (--insecure-plaintext-keys, also needed by every later command that signs).
func initRepo(t *testing.T, bin, dir string) {
	t.Helper()
	for _, args := range [][]string{{"init", dir, "--insecure-plaintext-keys"}, {"commit", dir, "--insecure-plaintext-keys"}} {
		if out, err := exec.Command(filepath.Join(bin, "fieldgate-repo"), args...).CombinedOutput(); err != nil {
			t.Fatalf("fieldgate-repo %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// simDevices returns n simulated xmodem-console devices (io00, io01, …) as
// fieldgate-sim's configuration and as the matching devices: list of
// fieldgated's. Their pty links are made in devDir and their state is
// kept under simDir.
func simDevices(n int, devDir, simDir string) (simYAML, devsYAML string) {
	simYAML = "devices:\n"
	for i := range n {
		id := fmt.Sprintf("io%02d", i)
		tty := filepath.Join(devDir, id)
		simYAML += fmt.Sprintf("  - {id: %s, kind: xmodem-console, hardware_id: acme-io16-rev3, version: 1.0.0, state_dir: %s, address: %s, baud: 115200}\n",
			id, filepath.Join(simDir, id), tty)
		devsYAML += fmt.Sprintf("  - {id: %s, group: line1, protocol: xmodem, hardware_id: acme-io16-rev3, address: %s, baud: 115200}\n", id, tty)
	}
	return simYAML, devsYAML
}

// background starts a helper process in its own process group and stops
// it (by its process group id) when the test ends. Its output goes to
// work/tag.log.
func (r *footprintRig) background(t *testing.T, tag, name string, args ...string) {
	t.Helper()
	log, err := os.Create(filepath.Join(r.work, tag+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(r.bin, name), args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
		log.Close()
	})
}

// daemonProc is one fieldgated process with the notify socket it reports to.
type daemonProc struct {
	cmd     *exec.Cmd
	started time.Time
	msgs    chan notification
	done    chan struct{}
}

type notification struct {
	at  time.Time
	msg string
}

// startDaemon execs fieldgated with $NOTIFY_SOCKET pointing at a socket of
// its own, as systemd does for Type=notify.
func (r *footprintRig) startDaemon(t *testing.T, n int) *daemonProc {
	t.Helper()
	sock := filepath.Join(r.work, fmt.Sprintf("notify%d", n))
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	d := &daemonProc{msgs: make(chan notification, 64), done: make(chan struct{})}
	go func() { // drains the socket so that the daemon never blocks on it
		defer close(d.msgs)
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			select {
			case d.msgs <- notification{time.Now(), string(buf[:k])}:
			default:
			}
		}
	}()
	log, err := os.Create(filepath.Join(r.work, fmt.Sprintf("fieldgated%d.log", n)))
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(filepath.Join(r.bin, "fieldgated"), "--config", r.config)
	d.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	d.cmd.Stdout, d.cmd.Stderr = log, log
	d.started = time.Now()
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start fieldgated: %v", err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.stop()
		conn.Close()
		log.Close()
	})
	return d
}

// ready waits for READY=1 and returns the time from exec to its arrival.
func (d *daemonProc) ready(t *testing.T) time.Duration {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case n := <-d.msgs:
			if slices.Contains(strings.Split(n.msg, "\n"), "READY=1") {
				return n.at.Sub(d.started)
			}
		case <-d.done:
			t.Fatalf("fieldgated exited before READY=1: %v", d.cmd.ProcessState)
		case <-timeout:
			t.Fatal("fieldgated sent no READY=1 within 30s")
		}
	}
}

func (d *daemonProc) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

// TestFootprintReady measures exec-to-READY=1 of fieldgated with 32
// configured devices, over several starts on the same state directory.
//
//	FIELDGATE_FOOTPRINT=1 go test -run TestFootprintReady -v ./systemd
func TestFootprintReady(t *testing.T) {
	footprintEnabled(t)
	r := newFootprintRig(t)
	var times []time.Duration
	for i := range 7 {
		d := r.startDaemon(t, i)
		times = append(times, d.ready(t))
		d.stop()
	}
	t.Logf("start-to-READY over %d starts (first on an empty state dir): %v", len(times), times)
	slices.Sort(times)
	median := times[len(times)/2]
	t.Logf("start-to-READY: min %v, median %v, max %v (goal ≤ %v)", times[0], median, times[len(times)-1], maxReady)
	if median > maxReady {
		t.Errorf("median start-to-READY = %v, goal ≤ %v", median, maxReady)
	}
}

// TestFootprintIdle runs fieldgated with 32 configured simulated devices and
// no pending work for FIELDGATE_FOOTPRINT_DURATION (default 10m), and
// reports its resident memory (VmRSS, peak VmHWM) and CPU use
// (utime+stime) from /proc.
//
//	FIELDGATE_FOOTPRINT=1 go test -run TestFootprintIdle -v -timeout 30m ./systemd
func TestFootprintIdle(t *testing.T) {
	footprintEnabled(t)
	duration := 10 * time.Minute
	if s := os.Getenv("FIELDGATE_FOOTPRINT_DURATION"); s != "" {
		var err error
		if duration, err = time.ParseDuration(s); err != nil || duration <= idleSettle {
			t.Fatalf("FIELDGATE_FOOTPRINT_DURATION=%q: want a duration longer than %v", s, idleSettle)
		}
	}
	r := newFootprintRig(t)
	d := r.startDaemon(t, 0)
	d.ready(t)
	pid := d.cmd.Process.Pid
	readyAt := time.Now()
	ticks0 := cpuTicks(t, pid)

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var maxRSS, sumRSS, samples int64
	var settledTicks int64 = -1
	var settledSwitches int64
	var settledAt time.Time
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
		case <-d.done:
			t.Fatalf("fieldgated exited during the measurement: %v (log in %s)", d.cmd.ProcessState, r.work)
		}
		if settledTicks < 0 && time.Since(readyAt) >= idleSettle {
			settledTicks, settledAt = cpuTicks(t, pid), time.Now()
			settledSwitches = contextSwitches(t, pid)
		}
		rss := procStatusKB(t, pid, "VmRSS") << 10
		maxRSS = max(maxRSS, rss)
		sumRSS += rss
		samples++
	}
	end, elapsed := cpuTicks(t, pid), time.Since(readyAt)
	// VmHWM is updated lazily by the kernel; a sample may be above it.
	hwm := max(procStatusKB(t, pid, "VmHWM")<<10, maxRSS)
	rss := procStatusKB(t, pid, "VmRSS") << 10
	anon, file := procStatusKB(t, pid, "RssAnon")<<10, procStatusKB(t, pid, "RssFile")<<10
	rollup := fmt.Sprintf("/proc/%d/smaps_rollup", pid)
	dirty := procKB(t, rollup, "Private_Dirty") << 10
	cpuAll := cpuPercent(end-ticks0, elapsed)
	cpuIdle := cpuPercent(end-settledTicks, time.Since(settledAt))
	wakeups := float64(contextSwitches(t, pid)-settledSwitches) / time.Since(settledAt).Seconds()
	t.Logf("fieldgated with %d simulated devices over %v after READY (%s/%s):", footprintDevices, elapsed.Round(time.Second), runtime.GOOS, runtime.GOARCH)
	t.Logf("  RSS at end %.1f MiB (anonymous %.1f, file-backed %.1f; private dirty %.1f), mean %.1f MiB, peak %.1f MiB",
		mib(rss), mib(anon), mib(file), mib(dirty), mib(sumRSS/samples), mib(hwm))
	if v := os.Getenv("GOMEMLIMIT") + os.Getenv("GOGC"); v != "" {
		t.Logf("  with GOMEMLIMIT=%q GOGC=%q", os.Getenv("GOMEMLIMIT"), os.Getenv("GOGC"))
	}
	t.Logf("  CPU %.3f%% from READY (incl. start-up inventory), %.3f%% after the first %v; %.1f context switches/s (all threads)",
		cpuAll, cpuIdle, idleSettle, wakeups)
	if hwm > maxIdleRSS {
		t.Errorf("peak RSS = %.1f MiB, goal ≤ %d MiB", mib(hwm), maxIdleRSS>>20)
	}
	if cpuIdle > maxIdleCPU {
		t.Errorf("idle CPU = %.3f%%, goal ≤ %.1f%%", cpuIdle, maxIdleCPU)
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func cpuPercent(ticks int64, d time.Duration) float64 {
	return float64(ticks) / clockTicks / d.Seconds() * 100
}

// contextSwitches returns the voluntary and involuntary context switches
// of every thread of pid: a measure of how often an idle daemon wakes up.
// cpuTicks returns the CPU time pid has used, in USER_HZ ticks (10 ms).
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	d, err := proctest.CPUTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	return int64(d / (10 * time.Millisecond))
}

// procStatusKB returns a "kB" field of /proc/PID/status.
func procStatusKB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	return procKB(t, fmt.Sprintf("/proc/%d/status", pid), field)
}

// procKB returns a "kB" field of a /proc file such as status or
// smaps_rollup.
func procKB(t *testing.T, path, field string) int64 {
	t.Helper()
	n, err := proctest.KB(path, field)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func contextSwitches(t *testing.T, pid int) int64 {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
		if err != nil {
			continue // the thread has exited
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
				c, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += c
			}
		}
	}
	return n
}

func freeTCPAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitPath waits for a helper process to create p (a simulated device's
// pty link); it is not a timed assertion, only a bound on a hang.
func waitPath(t *testing.T, p string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(p); err == nil {
			return
		}
	}
	t.Fatalf("%s did not appear within 30s", p)
}

// gatewayConfig is a fieldgated configuration for gateway gw1: the
// repository served at repoAddr, the embedded MQTT broker on brokerAddr,
// and devs (from simDevices) in group line1 with a nightly window.
func gatewayConfig(stateDir, socket, repoAddr, trustedRoot, brokerAddr, devs string) string {
	return fmt.Sprintf(`gateway:
  id: gw1
  site: footprint
  state_dir: %s
  socket: %s
tuf:
  metadata_url: http://%s/metadata
  targets_url: http://%s/targets
  trusted_root: %s
mqtt:
  listen: %s
windows:
  - {name: nightly, start: "0 2 * * *", duration: 2h, timezone: UTC}
groups:
  - {name: line1, window: nightly, approval: auto}
devices:
%s`, stateDir, socket, repoAddr, repoAddr, trustedRoot, brokerAddr, devs)
}
