// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/mqtt"
)

// Options configure one run of the scenario.
type Options struct {
	Bin     string    // directory with fieldgated, fieldgatectl, fieldgate-repo, fieldgate-sim
	Work    string    // work directory; wiped first
	Out     io.Writer // progress for a person
	Devices int       // number of simulated serial devices
	Baud    int       // line rate the simulated devices are paced at; 0: 115200, -1: unpaced
	// Approval is the device group's approval policy; "" means auto.
	// With "local" the scenario approves like a field engineer: it holds
	// the virtual board's approve button for 3 s once the job waits.
	Approval string
	// Offline serves no repository: the update arrives as an offline
	// bundle (fieldgate-repo export) imported with fieldgatectl import.
	Offline bool
	// Broker is an external MQTT broker URL (tcp://host:port) for
	// fieldgated; empty starts fieldgated's embedded broker.
	Broker string
	// Emulator runs every binary through this program (e.g.
	// qemu-aarch64-static) to prove cross-built binaries work.
	Emulator string
	// Tamper alters the target's bytes in the repository after signing:
	// nothing may reach a device.
	Tamper bool
	// Until stops the scenario when it returns true for the retained
	// device documents seen so far; nil waits for every device to report
	// the new version.
	Until func(r *Result) bool
	// Faults injects fieldgate-sim faults into simulated devices, by
	// device id (e.g. "io16-a": {"boot-fail"}: the new image does not
	// boot, so the update must roll back).
	Faults map[string][]string
	// RefreshInterval is fieldgated's gateway.refresh_interval; 0 means
	// 10s, the smallest the configuration accepts.
	RefreshInterval time.Duration
}

// Result is what the scenario observed over MQTT.
type Result struct {
	Version string
	Devices map[string]api.Device
	Jobs    map[string]api.Job
	Gateway api.Gateway
	Status  string              // fieldgatectl status output at the end
	Seen    map[string][]string // device id -> every state it published, in order
	Elapsed time.Duration
}

const (
	hardware   = "acme-io16-rev3"
	oldVersion = "1.0.0"
	newVersion = "2.4.1"
	imageSize  = 40 << 10
)

// Env is a prepared scenario: a signed repository being served, simulated
// devices running, and a configuration for fieldgated.
type Env struct {
	o          Options
	Work       string
	Bin        string
	Config     string
	Socket     string
	BrokerAddr string
	IDs        []string
	SimConfig  string // fieldgate-sim's configuration (fieldgate-sim counters --config)
	procs      *procGroup
	daemon     *exec.Cmd
	start      time.Time
}

// Run executes the scenario and stops every process it started.
func Run(ctx context.Context, o Options) (*Result, error) {
	env, err := Setup(ctx, o)
	if err != nil {
		if env != nil {
			env.Close()
		}
		return nil, err
	}
	defer env.Close()
	if err := env.StartDaemon(); err != nil {
		return nil, err
	}
	if o.Offline {
		if err := env.importBundle(ctx); err != nil {
			return nil, err
		}
	}
	if o.Approval == "local" {
		go env.approveByButton(ctx)
	}
	env.say("watching retained MQTT state as a central dashboard would (fieldgate/v1/demo/gw1/#)")
	res := &Result{Version: newVersion, Devices: map[string]api.Device{}, Jobs: map[string]api.Job{}, Seen: map[string][]string{}}
	until := o.Until
	if until == nil {
		until = func(r *Result) bool {
			for _, id := range env.IDs {
				if d := r.Devices[id]; d.Version != newVersion || d.State != "idle" {
					return false
				}
			}
			for _, j := range r.Jobs {
				if j.Phase != "succeeded" {
					return false
				}
			}
			return len(r.Jobs) > 0
		}
	}
	if err := watch(ctx, "tcp://"+env.BrokerAddr, o.Out, res, until); err != nil {
		return res, err
	}
	var st bytes.Buffer
	if err := runToolTo(ctx, o, &st, "fieldgatectl", "--socket", env.Socket, "status"); err != nil {
		return res, err
	}
	res.Status = st.String()
	fmt.Fprintf(o.Out, "\n$ fieldgatectl status\n%s", res.Status)
	res.Elapsed = time.Since(env.start)
	return res, nil
}

func (e *Env) say(format string, a ...any) { fmt.Fprintf(e.o.Out, "==> "+format+"\n", a...) }

// importBundle imports the exported bundle through fieldgatectl once the
// daemon's socket answers.
func (e *Env) importBundle(ctx context.Context) error {
	bundle := filepath.Join(e.Work, "bundle")
	e.say("importing the bundle: fieldgatectl import %s", bundle)
	for {
		var out bytes.Buffer
		err := runToolTo(ctx, e.o, &out, "fieldgatectl", "--socket", e.Socket, "import", bundle)
		if err == nil {
			fmt.Fprintf(e.o.Out, "      %s", out.String())
			return nil
		}
		if !strings.Contains(out.String(), "is fieldgated running") {
			return fmt.Errorf("%w: %s", err, out.String())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// approveByButton waits until a job awaits approval, then holds the
// virtual approve button for 3 s, as a field engineer would.
func (e *Env) approveByButton(ctx context.Context) {
	for ctx.Err() == nil {
		var out bytes.Buffer
		if runToolTo(ctx, e.o, &out, "fieldgatectl", "--socket", e.Socket, "jobs") == nil &&
			strings.Contains(out.String(), "awaiting-approval") {
			e.say("a job awaits local approval: holding the approve button for 3 s (fieldgatectl board press approve --hold 3s)")
			var press bytes.Buffer
			if err := runToolTo(ctx, e.o, &press, "fieldgatectl", "--socket", e.Socket, "board", "press", "approve", "--hold", "3s"); err != nil {
				fmt.Fprintf(e.o.Out, "      press failed: %v %s", err, press.String())
			}
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// Close stops every process the scenario started.
func (e *Env) Close() { e.procs.stop() }

// StartDaemon starts fieldgated with the scenario's configuration.
func (e *Env) StartDaemon() error {
	broker := "embedded MQTT broker on " + e.BrokerAddr
	if e.o.Broker != "" {
		broker = "MQTT broker " + e.o.Broker
	}
	e.say("starting fieldgated (%s, window 'always' open now)", broker)
	cmd, err := e.procs.start(e.o, e.o.Out, "fieldgated", "fieldgated", "--config", e.Config)
	e.daemon = cmd
	return err
}

// KillDaemon kills fieldgated with SIGKILL, as a power cut would.
func (e *Env) KillDaemon() {
	if e.daemon != nil {
		e.procs.kill(e.daemon)
		e.daemon = nil
	}
}

// Setup builds the repository, serves it, starts the simulated devices and
// writes fieldgated's configuration.
func Setup(ctx context.Context, o Options) (*Env, error) {
	work, err := filepath.Abs(o.Work)
	if err != nil {
		return nil, err
	}
	e := &Env{o: o, Work: work, Bin: o.Bin, procs: &procGroup{}, start: time.Now()}
	os.RemoveAll(work)
	for _, d := range []string{"repo", "dev", "state", "sim"} {
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			return e, err
		}
	}
	say := e.say
	approval := o.Approval
	if approval == "" {
		approval = "auto"
	}
	baud := o.Baud
	switch baud {
	case 0:
		baud = 115200
	case -1:
		baud = 0
	}
	// A throwaway repository in the demo's work directory: its keys stay
	// unencrypted, which fieldgate-repo allows only when told so.
	say("signing a repository with fieldgate-repo (ed25519 keys, consistent snapshots; throwaway keys, unencrypted)")
	repo := filepath.Join(work, "repo")
	img := filepath.Join(work, "fw-"+newVersion+".bin")
	target := "acme-io16/fw-" + newVersion + ".bin"
	steps := [][]string{
		{"fieldgate-sim", "mkimage", "--hw", hardware, "--version", newVersion, "--size", fmt.Sprint(imageSize), "-o", img},
		{"fieldgate-repo", "init", repo, "--insecure-plaintext-keys"},
		{"fieldgate-repo", "add", repo, img, "--name", target, "--hardware", hardware, "--version", newVersion,
			"--security-counter", "3", "--protocol", "xmodem", "--severity", "high", "--advisory", "CVE-2026-1234",
			"--notes", "Fixes Modbus stack overflow"},
		{"fieldgate-repo", "commit", repo, "--insecure-plaintext-keys"},
	}
	for _, s := range steps {
		if err := runTool(ctx, o, o.Out, s...); err != nil {
			return e, err
		}
	}
	if o.Tamper {
		say("tampering: flipping one byte of the signed target in the repository")
		if err := tamperTargets(filepath.Join(repo, "repository", "targets")); err != nil {
			return e, err
		}
	}

	var repoAddr string
	if o.Offline {
		say("exporting an offline bundle (no repository server: the gateway has no uplink)")
		if err := runTool(ctx, o, o.Out, "fieldgate-repo", "export", repo, filepath.Join(work, "bundle"), "--insecure-plaintext-keys"); err != nil {
			return e, err
		}
		if repoAddr, err = freeAddr(); err != nil { // nothing listens there
			return e, err
		}
	} else if repoAddr, err = e.serveRepo(repo); err != nil {
		return e, err
	}

	say("starting %d simulated XMODEM-1K console devices (fieldgate-sim, ptys paced at %d baud)", o.Devices, baud)
	var ids []string
	simCfg := "devices:\n"
	for i := 0; i < o.Devices; i++ {
		id := fmt.Sprintf("io16-%c", 'a'+i)
		ids = append(ids, id)
		simCfg += fmt.Sprintf("  - {id: %s, kind: xmodem-console, hardware_id: %s, version: %q, state_dir: %s, address: %s, baud: %d, faults: [%s]}\n",
			id, hardware, oldVersion, filepath.Join(work, "sim", id), filepath.Join(work, "dev", id), baud, strings.Join(o.Faults[id], ", "))
	}
	simPath := filepath.Join(work, "sim.yaml")
	if err := os.WriteFile(simPath, []byte(simCfg), 0o644); err != nil {
		return e, err
	}
	e.SimConfig = simPath
	simLog, err := logFile(work, "sim")
	if err != nil {
		return e, err
	}
	if _, err := e.procs.start(o, simLog, "sim", "fieldgate-sim", "run", "--config", simPath); err != nil {
		return e, err
	}
	for _, id := range ids {
		if err := waitFile(ctx, filepath.Join(work, "dev", id)); err != nil {
			return e, fmt.Errorf("simulated device %s did not come up: %w", id, err)
		}
	}

	e.IDs = ids
	brokerAddr, err := freeAddr()
	if err != nil {
		return e, err
	}
	mqttCfg := "  listen: " + brokerAddr
	if o.Broker != "" {
		brokerAddr = strings.TrimPrefix(o.Broker, "tcp://")
		mqttCfg = "  broker: " + o.Broker
	}
	e.BrokerAddr = brokerAddr
	sock := filepath.Join(work, "fieldgated.sock")
	e.Socket = sock
	refresh := o.RefreshInterval
	if refresh == 0 {
		refresh = 10 * time.Second
	}
	cfg := fmt.Sprintf(`gateway:
  id: gw1
  site: demo
  state_dir: %s
  socket: %s
  refresh_interval: %s
  log_level: info
tuf:
  metadata_url: http://%s/metadata
  targets_url: http://%s/targets
  trusted_root: %s
mqtt:
%s
windows:
  - {name: always, start: "0 0 * * *", duration: 24h, timezone: UTC}
groups:
  - {name: line1, window: always, approval: %s}
devices:
`, filepath.Join(work, "state"), sock, refresh, repoAddr, repoAddr, filepath.Join(repo, "repository", "metadata", "1.root.json"), mqttCfg, approval)
	for _, id := range ids {
		cfg += fmt.Sprintf("  - {id: %s, group: line1, protocol: xmodem, hardware_id: %s, address: %s, baud: %d}\n",
			id, hardware, filepath.Join(work, "dev", id), baud)
	}
	cfgPath := filepath.Join(work, "fieldgated.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return e, err
	}
	e.Config = cfgPath
	return e, nil
}

// watch follows the retained tree until until is satisfied or ctx ends.
func watch(ctx context.Context, broker string, out io.Writer, res *Result, until func(*Result) bool) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	lastLine := map[string]string{}
	done := make(chan struct{})
	var once sync.Once
	handle := func(topic string, payload []byte, retained bool) {
		mu.Lock()
		defer mu.Unlock()
		parts := strings.Split(topic, "/")
		var line string
		switch {
		case len(parts) >= 6 && parts[4] == "devices":
			var d api.Device
			if json.Unmarshal(payload, &d) != nil {
				return
			}
			res.Devices[d.ID] = d
			if seen := res.Seen[d.ID]; len(seen) == 0 || seen[len(seen)-1] != d.State {
				res.Seen[d.ID] = append(seen, d.State)
			}
			line = fmt.Sprintf("device %-8s version %-6s state %-14s", d.ID, d.Version, d.State)
			if d.Progress != nil && d.Progress.Total > 0 {
				line += fmt.Sprintf(" %3d%%", d.Progress.Done*100/d.Progress.Total)
			}
			if d.LastError != "" {
				line += "  error: " + d.LastError
			}
		case len(parts) >= 6 && parts[4] == "jobs":
			var j api.Job
			if json.Unmarshal(payload, &j) != nil {
				return
			}
			res.Jobs[j.ID] = j
			line = fmt.Sprintf("job    %s %s", j.ID, j.Phase)
		case len(parts) == 5 && parts[4] == "status":
			var g api.Gateway
			if json.Unmarshal(payload, &g) != nil {
				return
			}
			res.Gateway = g
			var conds []string
			for _, c := range g.Health {
				conds = append(conds, c.Name)
			}
			line = fmt.Sprintf("gateway online=%v healthy=%v %s", g.Online, g.Healthy, strings.Join(conds, ","))
		default:
			return
		}
		if lastLine[topic] != line {
			lastLine[topic] = line
			fmt.Fprintf(out, "    mqtt %s\n", line)
		}
		if until(res) {
			once.Do(func() { close(done) })
		}
	}
	errc := make(chan error, 1)
	go func() {
		for { // the broker starts with fieldgated: retry until it answers
			err := mqtt.Watch(wctx, broker, "fieldgate/v1/demo/gw1/#", handle)
			if wctx.Err() != nil {
				errc <- nil
				return
			}
			select {
			case <-wctx.Done():
				errc <- nil
				return
			case <-time.After(200 * time.Millisecond):
				_ = err // not up yet
			}
		}
	}()
	select {
	case <-done:
		cancel()
		<-errc
		return nil
	case err := <-errc:
		if err == nil {
			err = ctx.Err()
		}
		return fmt.Errorf("watch: %w", err)
	case <-ctx.Done():
		cancel()
		<-errc
		mu.Lock()
		defer mu.Unlock()
		ids := make([]string, 0, len(res.Devices))
		for id := range res.Devices {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		return fmt.Errorf("gave up waiting (devices seen: %v): %w", ids, ctx.Err())
	}
}

func tamperTargets(dir string) error {
	n := 0
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b[len(b)/2] ^= 0xff
		n++
		return os.WriteFile(p, b, fi.Mode())
	})
	if err == nil && n == 0 {
		err = errors.New("tamper: no target files found")
	}
	return err
}

// serveRepo serves repo with fieldgate-repo on a free loopback port,
// logging to work/repo.log, and returns the address.
func (e *Env) serveRepo(repo string) (string, error) {
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	log, err := logFile(e.Work, "repo")
	if err != nil {
		return "", err
	}
	_, err = e.procs.start(e.o, log, "repo", "fieldgate-repo", "serve", repo, "--listen", addr)
	return addr, err
}

// logFile opens work/name.log for a child process's output; the process
// group's stop closes nothing, the OS does at exit.
func logFile(work, name string) (*os.File, error) {
	return os.Create(filepath.Join(work, name+".log"))
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitFile(ctx context.Context, p string) error {
	for {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func runTool(ctx context.Context, o Options, out io.Writer, args ...string) error {
	fmt.Fprintf(out, "    $ %s\n", strings.Join(args, " "))
	var buf bytes.Buffer
	err := runToolTo(ctx, o, &buf, args...)
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l != "" {
			fmt.Fprintf(out, "      %s\n", l)
		}
	}
	return err
}

// command runs binary name from o.Bin, through o.Emulator if set.
func command(ctx context.Context, o Options, name string, args ...string) *exec.Cmd {
	path := filepath.Join(o.Bin, name)
	if o.Emulator != "" {
		return exec.CommandContext(ctx, o.Emulator, append([]string{path}, args...)...)
	}
	return exec.CommandContext(ctx, path, args...)
}

func runToolTo(ctx context.Context, o Options, out io.Writer, args ...string) error {
	cmd := command(ctx, o, args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// procGroup starts long-running processes and stops them all, each in its
// own process group so that nothing is left behind.
type procGroup struct {
	mu    sync.Mutex
	procs []*proc
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (g *procGroup) start(o Options, out io.Writer, tag, name string, args ...string) (*exec.Cmd, error) {
	cmd := command(context.Background(), o, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	w := &prefixWriter{w: out, prefix: fmt.Sprintf("    [%s] ", tag)}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	g.mu.Lock()
	g.procs = append(g.procs, p)
	g.mu.Unlock()
	return cmd, nil
}

// kill sends SIGKILL to cmd's process group and waits for it.
func (g *procGroup) kill(cmd *exec.Cmd) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, p := range g.procs {
		if p.cmd == cmd {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
			g.procs = append(g.procs[:i], g.procs[i+1:]...)
			return
		}
	}
}

// stop sends SIGTERM to every group, newest first, and SIGKILL to any that
// has not exited after a grace period.
func (g *procGroup) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := len(g.procs) - 1; i >= 0; i-- {
		p := g.procs[i]
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
	g.procs = nil
}

// prefixWriter prefixes each line a child process writes.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}
