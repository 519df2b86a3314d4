// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
)

// protoDevice is one simulated device of the every-protocol scenario: the
// fieldgate-sim kind that plays it, the fieldgated protocol that drives it,
// and the release the repository offers for its hardware.
type protoDevice struct {
	id       string
	kind     string // fieldgate-sim kind
	protocol string // fieldgated driver
	hw       string // a hardware id of its own: one target per family
	from, to string // factory version, offered version
	counter  int    // the target's security counter
	mcuboot  bool   // the target is an MCUboot image (SMP)
	serial   bool   // the address is a pty link
	udp      bool   // the address is a UDP port
	simOpts  map[string]string
	drvOpts  map[string]string
	// rollback is how the device ends with the boot-fail fault: A/B
	// devices revert ("rolled-back"), single-slot devices get their backup
	// re-pushed ("rolled-back"); a device that can neither revert nor be
	// read back ends "failed" on its first update.
	rollback string
	why      string // why that outcome
}

// everyProtocol lists one device per fieldgated driver that has a
// simulated peer (all but ssh, which has no fieldgate-sim kind).
func everyProtocol() []protoDevice {
	const img = "4096"
	return []protoDevice{
		{id: "io16", kind: "xmodem-console", protocol: "xmodem", hw: "acme-io16-rev3", from: "1.0.0", to: "2.4.1", counter: 3, serial: true,
			simOpts:  map[string]string{"image_size": img, "boot_delay": "50ms"},
			drvOpts:  map[string]string{"boot_timeout": "10s"},
			rollback: "rolled-back", why: "single slot: the backup read with dump is re-pushed"},
		{id: "io8", kind: "xmodem-console", protocol: "ymodem", hw: "acme-io8-rev1", from: "1.1.0", to: "1.2.0", counter: 2, serial: true,
			simOpts:  map[string]string{"image_size": img, "boot_delay": "50ms"},
			drvOpts:  map[string]string{"boot_timeout": "10s"},
			rollback: "rolled-back", why: "single slot: the backup read with dump is re-pushed"},
		{id: "plc", kind: "modbus-tcp", protocol: "modbus-tcp", hw: "acme-plc-m40", from: "3.0.0", to: "3.1.0", counter: 5,
			simOpts:  map[string]string{"image_size": img, "boot_time": "100ms"},
			drvOpts:  map[string]string{"poll_interval": "100ms", "activate_timeout": "10s"},
			rollback: "rolled-back", why: "single slot: the backup read with file records is re-pushed"},
		{id: "rtu", kind: "modbus-rtu", protocol: "modbus-rtu", hw: "acme-rtu-r2", from: "1.4.0", to: "1.5.0", counter: 4, serial: true,
			simOpts:  map[string]string{"image_size": img, "boot_time": "100ms", "slots": "2"},
			drvOpts:  map[string]string{"poll_interval": "100ms", "activate_timeout": "10s", "slots": "2"},
			rollback: "rolled-back", why: "A/B profile (slots=2): cmd_revert boots the previous slot"},
		{id: "switch", kind: "tftp-server", protocol: "tftp", hw: "acme-sw8", from: "5.0.0", to: "5.0.1", counter: 9, udp: true,
			simOpts:  map[string]string{"image_size": img},
			drvOpts:  map[string]string{"timeout": "200ms", "poll_interval": "100ms", "boot_timeout": "10s"},
			rollback: "rolled-back", why: "single slot: the backup read by RRQ is re-pushed"},
		{id: "pull", kind: "tftp-pull", protocol: "tftp-pull", hw: "acme-rtu-p1", from: "2.0.0", to: "2.1.0", counter: 1,
			simOpts:  map[string]string{"image_size": img},
			drvOpts:  map[string]string{"listen": "127.0.0.1:0", "timeout": "200ms", "poll_interval": "100ms", "boot_timeout": "10s", "fetch_timeout": "30s"},
			rollback: "failed", why: "a pulling device cannot be read back and has no known-good image on the gateway yet"},
		{id: "mcu-udp", kind: "smp-udp", protocol: "smp-udp", hw: "acme-nrf52-dk", from: "1.0.0", to: "1.1.0", counter: 2, mcuboot: true, udp: true,
			simOpts:  map[string]string{"factory_size": img, "boot_delay": "100ms"},
			drvOpts:  map[string]string{"timeout": "500ms", "boot_timeout": "10s"},
			rollback: "rolled-back", why: "MCUboot: the test boot is not confirmed and the old image swaps back"},
		{id: "mcu-ser", kind: "smp-serial", protocol: "smp-serial", hw: "acme-stm32-h7", from: "0.9.0", to: "1.0.0", counter: 1, mcuboot: true, serial: true,
			simOpts:  map[string]string{"factory_size": img, "boot_delay": "100ms"},
			drvOpts:  map[string]string{"timeout": "1s", "boot_timeout": "10s"},
			rollback: "rolled-back", why: "MCUboot: the test boot is not confirmed and the old image swaps back"},
	}
}

// setupEveryProtocol is Setup for one device of every protocol family: it
// signs one target per hardware id, serves the repository, starts every
// simulated device (with faults, if given) and writes fieldgated's
// configuration. Devices on loopback get a segment each so that the daemon
// updates them in parallel.
func setupEveryProtocol(ctx context.Context, o Options, devs []protoDevice, faults []string) (*Env, error) {
	work, err := filepath.Abs(o.Work)
	if err != nil {
		return nil, err
	}
	e := &Env{o: o, Work: work, Bin: o.Bin, procs: &procGroup{}, start: time.Now()}
	os.RemoveAll(work)
	for _, d := range []string{"repo", "dev", "state", "sim", "img"} {
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			return e, err
		}
	}
	repo := filepath.Join(work, "repo")
	if err := runTool(ctx, o, o.Out, "fieldgate-repo", "init", repo, "--insecure-plaintext-keys"); err != nil {
		return e, err
	}
	for _, d := range devs {
		img := filepath.Join(work, "img", d.id+"-"+d.to+".bin")
		format := "fgsim"
		if d.mcuboot {
			format = "mcuboot"
		}
		steps := [][]string{
			{"fieldgate-sim", "mkimage", "--format", format, "--hw", d.hw, "--version", d.to, "--size", "4096", "-o", img},
			{"fieldgate-repo", "add", repo, img, "--name", d.hw + "/fw-" + d.to + ".bin", "--hardware", d.hw, "--version", d.to,
				"--security-counter", fmt.Sprint(d.counter), "--protocol", d.protocol, "--severity", "medium"},
		}
		for _, s := range steps {
			if err := runTool(ctx, o, o.Out, s...); err != nil {
				return e, err
			}
		}
	}
	if err := runTool(ctx, o, o.Out, "fieldgate-repo", "commit", repo, "--insecure-plaintext-keys"); err != nil {
		return e, err
	}
	repoAddr, err := e.serveRepo(repo)
	if err != nil {
		return e, err
	}

	addrs := map[string]string{}
	simCfg := "devices:\n"
	for _, d := range devs {
		addr := filepath.Join(work, "dev", d.id)
		switch {
		case d.udp:
			addr, err = freeUDPAddr()
		case !d.serial:
			addr, err = freeAddr()
		}
		if err != nil {
			return e, err
		}
		addrs[d.id] = addr
		simCfg += fmt.Sprintf("  - {id: %s, kind: %s, hardware_id: %s, version: %q, state_dir: %s, address: %s, baud: 0, faults: [%s], options: {%s}}\n",
			d.id, d.kind, d.hw, d.from, filepath.Join(work, "sim", d.id), addr, strings.Join(faults, ", "), flowMap(d.simOpts))
	}
	simPath := filepath.Join(work, "sim.yaml")
	if err := os.WriteFile(simPath, []byte(simCfg), 0o644); err != nil {
		return e, err
	}
	simLogPath := filepath.Join(work, "sim.log")
	simLog, err := os.Create(simLogPath)
	if err != nil {
		return e, err
	}
	if _, err := e.procs.start(o, simLog, "sim", "fieldgate-sim", "run", "--config", simPath); err != nil {
		return e, err
	}
	for _, d := range devs {
		e.IDs = append(e.IDs, d.id)
		if err := waitLogLine(ctx, simLogPath, "device "+d.id+" ("); err != nil {
			return e, fmt.Errorf("simulated device %s (%s) did not come up: %w", d.id, d.kind, err)
		}
	}

	brokerAddr, err := freeAddr()
	if err != nil {
		return e, err
	}
	e.BrokerAddr = brokerAddr
	e.Socket = filepath.Join(work, "fieldgated.sock")
	cfg := fmt.Sprintf(`gateway:
  id: gw1
  site: demo
  state_dir: %s
  socket: %s
  refresh_interval: 10s
  max_parallel: %d
  log_level: info
tuf:
  metadata_url: http://%s/metadata
  targets_url: http://%s/targets
  trusted_root: %s
mqtt:
  listen: %s
windows:
  - {name: always, start: "0 0 * * *", duration: 24h, timezone: UTC}
groups:
  - {name: line1, window: always, approval: auto}
devices:
`, filepath.Join(work, "state"), e.Socket, len(devs), repoAddr, repoAddr,
		filepath.Join(repo, "repository", "metadata", "1.root.json"), brokerAddr)
	for _, d := range devs {
		baud := ""
		if d.serial {
			baud = ", baud: 115200"
		}
		cfg += fmt.Sprintf("  - {id: %s, group: line1, protocol: %s, hardware_id: %s, address: %q, segment: %s%s, options: {%s}}\n",
			d.id, d.protocol, d.hw, addrs[d.id], d.id, baud, flowMap(d.drvOpts))
	}
	e.Config = filepath.Join(work, "fieldgated.yaml")
	if err := os.WriteFile(e.Config, []byte(cfg), 0o644); err != nil {
		return e, err
	}
	return e, nil
}

// flowMap formats m as the inside of a YAML flow mapping, keys sorted.
func flowMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %q", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// freeUDPAddr returns a loopback UDP address that was free a moment ago.
func freeUDPAddr() (string, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.LocalAddr().String(), nil
}

// waitLogLine waits until the file at path has a line containing s.
func waitLogLine(ctx context.Context, path, s string) error {
	for {
		if b, err := os.ReadFile(path); err == nil {
			sc := bufio.NewScanner(bytes.NewReader(b))
			for sc.Scan() {
				if strings.Contains(sc.Text(), s) {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no line %q in %s: %w", s, path, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// runEveryProtocol sets up the scenario, runs fieldgated until one job per
// device has ended, and returns the final status. It fails t on errors and
// shows the work directory's logs when t has failed.
func runEveryProtocol(t *testing.T, devs []protoDevice, faults []string) api.Status {
	t.Helper()
	bin := buildAll(t)
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	work, runLog := runDirs(t, 100)
	progress := io.MultiWriter(output(t), runLog)
	env, err := setupEveryProtocol(ctx, Options{Bin: bin, Work: work, Out: progress}, devs, faults)
	if env != nil {
		defer env.Close()
	}
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	if err := env.StartDaemon(); err != nil {
		t.Fatal(err)
	}
	st, err := waitJobs(ctx, env, len(devs))
	if err != nil {
		t.Fatalf("waiting for %d jobs to end: %v\nlast status: %s", len(devs), err, summary(st))
	}
	var out bytes.Buffer
	if err := runToolTo(ctx, env.o, &out, "fieldgatectl", "--socket", env.Socket, "audit", "verify"); err != nil {
		t.Errorf("fieldgatectl audit verify: %v\n%s", err, out.String())
	}
	t.Logf("%d devices settled in %s", len(devs), time.Since(env.start).Round(time.Millisecond))
	t.Logf("final status:\n%s", summary(st))
	return st
}

// waitJobs polls fieldgatectl status --json until n jobs exist and all
// have ended.
func waitJobs(ctx context.Context, env *Env, n int) (api.Status, error) {
	for {
		st, err := waitSettled(ctx, env)
		if err != nil || len(st.Jobs) >= n {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func summary(st api.Status) string {
	var b strings.Builder
	for _, d := range st.Devices {
		fmt.Fprintf(&b, "  device %-8s %-10s version %-6s state %-12s %s\n", d.ID, d.Protocol, d.Version, d.State, d.LastError)
	}
	for _, j := range st.Jobs {
		fmt.Fprintf(&b, "  job %s %s %s\n", j.ID, j.Target, j.Phase)
		for _, s := range j.Steps {
			fmt.Fprintf(&b, "      %-8s %-12s attempts %d %s\n", s.Device, s.Phase, s.Attempts, s.Error)
		}
	}
	return b.String()
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stepOf returns the step of device id in any job, and its job.
func stepOf(st api.Status, id string) (api.Job, api.Step, bool) {
	for _, j := range st.Jobs {
		for _, s := range j.Steps {
			if s.Device == id {
				return j, s, true
			}
		}
	}
	return api.Job{}, api.Step{}, false
}

func deviceOf(st api.Status, id string) api.Device {
	for _, d := range st.Devices {
		if d.ID == id {
			return d
		}
	}
	return api.Device{}
}

// TestEndToEndEveryProtocol updates one simulated device of every protocol
// family fieldgate-sim offers (XMODEM-1K and YMODEM consoles, Modbus TCP
// and RTU, TFTP push and pull, SMP over UDP and serial) with the real
// binaries: one signed target per hardware id, all devices in parallel.
// Every device must end committed on its new version with a raised floor,
// every job must succeed, and the audit chain must verify.
func TestEndToEndEveryProtocol(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs every binary")
	}
	devs := everyProtocol()
	st := runEveryProtocol(t, devs, nil)
	for _, d := range devs {
		t.Run(d.protocol, func(t *testing.T) {
			j, s, ok := stepOf(st, d.id)
			if !ok {
				t.Fatalf("no job for device %s (%s): fieldgated staged none", d.id, d.protocol)
			}
			if s.Phase != "committed" || j.Phase != "succeeded" {
				t.Errorf("device %s (%s): step %s, job %s %s; want committed and succeeded (error: %s)", d.id, d.protocol, s.Phase, j.Target, j.Phase, s.Error)
			}
			if j.Version != d.to {
				t.Errorf("device %s got a job for version %s, want %s", d.id, j.Version, d.to)
			}
			dv := deviceOf(st, d.id)
			if dv.Version != d.to || dv.KnownGood != d.to || dv.Floor != uint64(d.counter) {
				t.Errorf("device %s (%s): version %q known_good %q floor %d, want %q, %q, %d", d.id, d.protocol, dv.Version, dv.KnownGood, dv.Floor, d.to, d.to, d.counter)
			}
			if dv.ImageSHA256 != "" && dv.ImageSHA256 != j.SHA256 {
				t.Errorf("device %s (%s) reports image sha256 %s, want the target's %s", d.id, d.protocol, dv.ImageSHA256, j.SHA256)
			}
		})
	}
}

// TestEndToEndRollbackEveryProtocol injects the boot-fail fault into one
// device of every family: the new image never comes up. A/B devices
// (Modbus with slots=2, MCUboot) revert to their previous slot; single-slot
// devices that can be read back (consoles, Modbus, TFTP push) get the
// backup taken before the transfer re-pushed. Both end rolled-back and run
// their old version again. A tftp-pull device can neither revert nor be
// read back, and on its first update the gateway holds no known-good image
// for it: it ends failed, with an error that says so.
func TestEndToEndRollbackEveryProtocol(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs every binary")
	}
	devs := everyProtocol()
	st := runEveryProtocol(t, devs, []string{"boot-fail"})
	for _, d := range devs {
		t.Run(d.protocol, func(t *testing.T) {
			_, s, ok := stepOf(st, d.id)
			if !ok {
				t.Fatalf("no job for device %s (%s): fieldgated staged none", d.id, d.protocol)
			}
			if s.Phase != d.rollback {
				t.Errorf("device %s (%s) with boot-fail ended %q (%s), want %q: %s", d.id, d.protocol, s.Phase, s.Error, d.rollback, d.why)
			}
			switch d.rollback {
			case "rolled-back":
				if dv := deviceOf(st, d.id); dv.Version != d.from {
					t.Errorf("device %s (%s) reports version %q after the rollback, want the old %q", d.id, d.protocol, dv.Version, d.from)
				}
			case "failed":
				if !strings.Contains(s.Error, "no verified image") {
					t.Errorf("device %s (%s) failed with %q, want an error saying the gateway holds no verified image", d.id, d.protocol, s.Error)
				}
				// It still answers: what it runs is read back, not assumed.
				if dv := deviceOf(st, d.id); dv.Version != d.from || dv.State == "needs-recovery" {
					t.Errorf("device %s (%s) = version %q state %q after a failed rollback, want the version it reports (%s)", d.id, d.protocol, dv.Version, dv.State, d.from)
				}
			}
		})
	}
}

// runDirs makes a run's directories: work (which Setup wipes) and, outside
// it, the run's own log (tools, fieldgated). When t fails, the last lines
// of both the simulator's and the run's log are shown; the cleanup is
// registered after TempDir, so it runs before the directory goes, and
// after the callers' subtests have had their say.
func runDirs(t *testing.T, lines int) (work string, runLog *os.File) {
	t.Helper()
	dir := t.TempDir()
	work = filepath.Join(dir, "work")
	runLog, err := os.Create(filepath.Join(dir, "run.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		runLog.Close()
		if t.Failed() {
			for _, p := range []string{filepath.Join(work, "sim.log"), runLog.Name()} {
				b, _ := os.ReadFile(p)
				t.Logf("%s:\n%s", filepath.Base(p), tail(b, lines))
			}
		}
	})
	return work, runLog
}
