// SPDX-License-Identifier: Apache-2.0

package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/fieldgate/fieldgate/daemon/mqtt/mqtttest"
	"github.com/fieldgate/fieldgate/internal/proctest"
	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/tuftest"
)

// The fleet's shape and the devices' firmware.
const (
	hardwareID   = "acme-plc-m40"
	baseVersion  = "1.0.0" // what the devices run, and the repository's first target
	imageSize    = 4096    // bytes of a simulated firmware image
	devicesPerGW = 2
	// broadcastPrefix is where the gateways take signed refresh hints.
	broadcastPrefix = "fieldgate/v1/broadcast"
)

// params are the harness's knobs, from the environment.
type params struct {
	n            int           // FLEET_N: gateways
	sites        int           // FLEET_SITES: sites the gateways are spread over
	sims         int           // FLEET_SIMS: fieldgate-sim processes serving all devices
	idleInterval time.Duration // FLEET_IDLE_INTERVAL: refresh interval of the idle measurement
	idle         time.Duration // FLEET_IDLE: length of the idle measurement
	interval     time.Duration // FLEET_INTERVAL: refresh interval of the new-target measurement
	heartbeat    time.Duration // FLEET_HEARTBEAT: mqtt.heartbeat, 0: fieldgated's default (1h)
	out          string        // FLEET_OUT: file the results table is written to
}

func loadParams(t *testing.T) params {
	t.Helper()
	p := params{n: 200, sites: 10, sims: 4, idleInterval: time.Minute, idle: 5 * time.Minute, interval: 15 * time.Minute, out: os.Getenv("FLEET_OUT")}
	for name, v := range map[string]*int{"FLEET_N": &p.n, "FLEET_SITES": &p.sites, "FLEET_SIMS": &p.sims} {
		if s := os.Getenv(name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				t.Fatalf("%s=%q: want a whole number of at least 1", name, s)
			}
			*v = n
		}
	}
	for name, v := range map[string]*time.Duration{"FLEET_IDLE_INTERVAL": &p.idleInterval, "FLEET_IDLE": &p.idle, "FLEET_INTERVAL": &p.interval, "FLEET_HEARTBEAT": &p.heartbeat} {
		if s := os.Getenv(name); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d < 10*time.Second {
				t.Fatalf("%s=%q: want a duration of at least 10s", name, s)
			}
			*v = d
		}
	}
	p.sites = min(p.sites, p.n)
	p.sims = min(p.sims, p.n)
	return p
}

// TestFleet runs the fleet harness; see the package documentation.
//
//	make fleet                       # FLEET_N=200
//	FIELDGATE_FLEET=1 FLEET_N=10 FLEET_INTERVAL=1m go test -run TestFleet -v -timeout 30m ./internal/fleet
func TestFleet(t *testing.T) {
	if os.Getenv("FIELDGATE_FLEET") != "1" {
		t.Skip("fleet harness, minutes to half an hour of N real gateways: run make fleet (FIELDGATE_FLEET=1, FLEET_N=200)")
	}
	p := loadParams(t)
	r := newRig(t, p)
	r.res.add("gateways", "%d on %d sites, %d simulated Modbus TCP devices each (%d fieldgate-sim processes)", p.n, p.sites, devicesPerGW, p.sims)
	r.res.add("machine", "%d CPUs (%s)", nproc(), firstLine("/proc/cpuinfo", "model name"))

	t.Cleanup(func() { // also after a failure: the figures made so far
		r.res.add("load", "1-min load average during the run: mean %.2f, max %.2f (%d CPUs)", r.load.mean(), r.load.max(), nproc())
		if t.Failed() {
			r.res.add("incomplete", "the run failed; the figures above are those made before")
		}
		r.res.print(t, p.out)
	})

	r.measureIdle()
	r.measureNewTarget()
	r.measureHint()
	r.measureFleetView()
	r.measureRollout()
}

// rig is the fleet and its surroundings.
type rig struct {
	t     *testing.T
	p     params
	ctx   context.Context // the whole run's deadline
	bin   string          // the four binaries
	work  string          // short: Unix socket paths hold 108 bytes
	repo  string          // fieldgate-repo directory
	ng    *tuftest.Nginx
	mq    *mqtttest.Mosquitto
	w     *watcher
	gws   []*gateway
	load  *loadSampler
	res   *results
	ports [devicesPerGW]int // of the devices, one loopback address per gateway
	key   string            // the approver's signing key file, for refresh hints
	pub   string            // its public key, in every gateway's approvers[]
	hint  time.Time         // when the last refresh hint was published
	build int               // targets published so far (versions 1.0.0, 1.1.0, …)
}

func newRig(t *testing.T, p params) *rig {
	t.Helper()
	deadline, ok := t.Deadline()
	if !ok {
		deadline = time.Now().Add(90 * time.Minute)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(-time.Minute)) // time left to stop everything
	t.Cleanup(cancel)
	work, err := os.MkdirTemp("", "fgfleet")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("fleet work directory kept for the logs: %s", work)
			return
		}
		os.RemoveAll(work)
	})
	r := &rig{t: t, p: p, ctx: ctx, work: work, bin: filepath.Join(work, "bin"), res: &results{}}
	r.load = startLoadSampler(t, ctx)

	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", r.bin+"/",
		"./cmd/fieldgated", "./cmd/fieldgatectl", "./cmd/fieldgate-repo", "./cmd/fieldgate-sim")
	cmd.Dir = moduleRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built the binaries in %v", time.Since(start).Round(time.Second))

	r.key = filepath.Join(work, "approver.key")
	out, err := exec.CommandContext(ctx, filepath.Join(r.bin, "fieldgatectl"), "remote", "keygen", "--out", r.key).Output()
	if err != nil {
		t.Fatalf("fieldgatectl remote keygen: %v", err)
	}
	r.pub = strings.TrimSpace(string(out))

	r.repo = filepath.Join(work, "repo")
	r.tool("fieldgate-repo", "init", r.repo, "--insecure-plaintext-keys")
	r.publish(baseVersion)
	r.ng = tuftest.StartNginx(t, filepath.Join(r.repo, "repository"))
	r.mq = mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{Config: "sys_interval 1\n"})
	r.w = startWatcher(t, r.mq.URL())
	r.startSims()
	for i := range p.n {
		g := &gateway{id: fmt.Sprintf("gw%03d", i), site: fmt.Sprintf("site%02d", i%p.sites), dir: filepath.Join(work, "gw", strconv.Itoa(i))}
		if err := os.MkdirAll(filepath.Join(g.dir, "state"), 0o755); err != nil {
			t.Fatal(err)
		}
		r.gws = append(r.gws, g)
	}
	t.Cleanup(r.stopAll)
	return r
}

// moduleRoot is the directory of go.mod, two levels above this package.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// tool runs one of the built binaries to completion.
func (r *rig) tool(name string, args ...string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, filepath.Join(r.bin, name), args...).CombinedOutput(); err != nil {
		r.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// targetName is the repository's name of the image of version v.
func targetName(v string) string { return hardwareID + "/fw-" + v + ".bin" }

// publish signs a new target of version v for the devices' hardware id
// (with the extra fieldgate-repo add flags) and commits the repository:
// new targets, snapshot and timestamp. It returns when the files are in
// place.
func (r *rig) publish(v string, addFlags ...string) time.Time {
	r.t.Helper()
	r.build++
	img := filepath.Join(r.work, "fw-"+v+".bin")
	r.tool("fieldgate-sim", "mkimage", "--hw", hardwareID, "--version", v, "--size", strconv.Itoa(imageSize), "-o", img)
	r.tool("fieldgate-repo", append([]string{"add", r.repo, img, "--name", targetName(v), "--hardware", hardwareID, "--version", v,
		"--security-counter", strconv.Itoa(r.build), "--protocol", "modbus-tcp"}, addFlags...)...)
	r.tool("fieldgate-repo", "commit", r.repo, "--insecure-plaintext-keys")
	return time.Now()
}

// deviceAddr is the loopback address of device d of gateway g: one
// address of 127.0.0.0/8 per gateway, so that ports picked once serve the
// whole fleet.
func deviceAddr(g, port int) string {
	return fmt.Sprintf("127.77.%d.%d:%d", g/200, g%200+1, port)
}

// startSims starts p.sims fieldgate-sim processes that serve the
// devices of every gateway, and waits until each device listens.
func (r *rig) startSims() {
	t := r.t
	t.Helper()
	ports := [devicesPerGW]int{}
	for i := range ports {
		ports[i] = freePort(t)
	}
	r.ports = ports
	cfgs := make([]strings.Builder, r.p.sims)
	for g := range r.p.n {
		for d := range devicesPerGW {
			fmt.Fprintf(&cfgs[g%r.p.sims], "  - {id: g%03dd%d, kind: modbus-tcp, hardware_id: %s, version: %q, state_dir: %s, address: %q, options: {image_size: \"%d\", boot_time: \"100ms\"}}\n",
				g, d, hardwareID, baseVersion, filepath.Join(r.work, "sim", fmt.Sprintf("g%03dd%d", g, d)), deviceAddr(g, ports[d]), imageSize)
		}
	}
	for i := range cfgs {
		path := filepath.Join(r.work, fmt.Sprintf("sim%d.yaml", i))
		if err := os.WriteFile(path, []byte("devices:\n"+cfgs[i].String()), 0o644); err != nil {
			t.Fatal(err)
		}
		r.background(fmt.Sprintf("sim%d", i), "fieldgate-sim", "run", "--config", path)
	}
	// Every device listens: dial them all (a connect is cheap for the
	// simulator; the gateways identify them later anyway).
	for g := range r.p.n {
		for d := range devicesPerGW {
			addr := deviceAddr(g, ports[d])
			r.waitFor(fmt.Sprintf("simulated device %s listening", addr), 30*time.Second, func() (int, int) {
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					return 0, 1
				}
				c.Close()
				return 1, 1
			})
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", ":0") // free on every address
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// background starts a helper in its own process group, stopped with its
// group at the end of the test; output goes to work/tag.log.
func (r *rig) background(tag, name string, args ...string) {
	t := r.t
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
		stopGroup(cmd, nil)
		log.Close()
	})
}

// stopGroup sends SIGTERM to cmd's process group, and SIGKILL if it has
// not exited 20 s later. done, if not nil, is closed when cmd has been
// waited for elsewhere.
func stopGroup(cmd *exec.Cmd, done chan struct{}) {
	if done == nil {
		done = make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// waitFor polls count (made, of want) once a second until made == want,
// and fails the test naming what and how many made it if that takes
// longer than d or the run's deadline.
func (r *rig) waitFor(what string, d time.Duration, count func() (made, want int)) time.Duration {
	r.t.Helper()
	start := time.Now()
	deadline := start.Add(d)
	for {
		made, want := count()
		if made >= want {
			return time.Since(start)
		}
		if time.Now().After(deadline) || r.ctx.Err() != nil {
			r.t.Fatalf("waited %v for %s: %d of %d made it", time.Since(start).Round(time.Second), what, made, want)
		}
		select {
		case <-r.ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// gateway is one fieldgated process and its directory.
type gateway struct {
	id, site, dir string
	cmd           *exec.Cmd
	done          chan struct{}
	log           *os.File
}

func (g *gateway) prefix() string { return "fieldgate/v1/" + g.site + "/" + g.id }

// config writes g's configuration: the shared repository and broker, two
// devices in a group whose window is always open, approval auto.
func (r *rig) config(g *gateway, i int, interval time.Duration) string {
	heartbeat := "" // the default, 1h
	if r.p.heartbeat > 0 {
		heartbeat = fmt.Sprintf("  heartbeat: %s\n", r.p.heartbeat)
	}
	var devs strings.Builder
	for d := range devicesPerGW {
		fmt.Fprintf(&devs, "  - {id: plc%d, group: line1, protocol: modbus-tcp, hardware_id: %s, address: %q, segment: plc%d, options: {poll_interval: \"100ms\", activate_timeout: \"10s\"}}\n",
			d, hardwareID, deviceAddr(i, r.ports[d]), d)
	}
	cfg := fmt.Sprintf(`gateway:
  id: %s
  site: %s
  state_dir: %s
  socket: %s
  refresh_interval: %s
  max_parallel: %d
tuf:
  metadata_url: %s/metadata
  targets_url: %s/targets
  trusted_root: %s
mqtt:
  broker: %s
  broadcast_prefix: %s
%swindows:
  - {name: always, start: "0 0 * * *", duration: 24h, timezone: UTC}
groups:
  - {name: line1, window: always, approval: auto}
approvers:
  - {name: fleet, public_key: %s}
devices:
%s`, g.id, g.site, filepath.Join(g.dir, "state"), filepath.Join(g.dir, "s.sock"), interval, devicesPerGW,
		r.ng.URL, r.ng.URL, filepath.Join(r.repo, "repository", "metadata", "1.root.json"), r.mq.URL(), broadcastPrefix, heartbeat, r.pub, devs.String())
	path := filepath.Join(g.dir, "fieldgated.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		r.t.Fatal(err)
	}
	return path
}

// startAll starts every gateway, one right after the other, with the
// refresh interval. It returns when the first was started, and how long
// starting them all took.
func (r *rig) startAll(interval time.Duration) (time.Time, time.Duration) {
	t := r.t
	t.Helper()
	paths := make([]string, len(r.gws))
	for i, g := range r.gws {
		paths[i] = r.config(g, i, interval)
	}
	start := time.Now()
	for i, g := range r.gws {
		log, err := os.OpenFile(filepath.Join(g.dir, "fieldgated.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		g.log = log
		g.cmd = exec.Command(filepath.Join(r.bin, "fieldgated"), "--config", paths[i])
		g.cmd.Stdout, g.cmd.Stderr = log, log
		g.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := g.cmd.Start(); err != nil {
			t.Fatalf("start fieldgated %s: %v", g.id, err)
		}
		g.done = make(chan struct{})
		go func() { g.cmd.Wait(); close(g.done) }()
	}
	return start, time.Since(start)
}

// stopAll stops every running gateway, all at once, and waits for them.
func (r *rig) stopAll() {
	var wg sync.WaitGroup
	for _, g := range r.gws {
		if g.cmd == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			stopGroup(g.cmd, g.done)
			g.log.Close()
			g.cmd = nil
		}()
	}
	wg.Wait()
}

// exited names the gateways whose process has ended.
func (r *rig) exited() []string {
	var ids []string
	for _, g := range r.gws {
		select {
		case <-g.done:
			ids = append(ids, g.id)
		default:
		}
	}
	return ids
}

// rootProbes counts the requests for the next root version (every
// refresh makes exactly one) at or after since.
func rootProbes(reqs []tuftest.Request, since time.Time) int {
	n := 0
	for _, q := range reqs {
		if !q.At.Before(since) && isRootProbe(q) {
			n++
		}
	}
	return n
}

var versionedRoot = regexp.MustCompile(`^/metadata/[0-9]+\.root\.json$`)

func isRootProbe(q tuftest.Request) bool { return q.Status == 404 && versionedRoot.MatchString(q.URI) }

// waitRefreshed waits until every gateway has refreshed at least once
// since start (N root probes in nginx's log) and is online on the broker.
func (r *rig) waitRefreshed(start time.Time, d time.Duration) time.Duration {
	r.t.Helper()
	return r.waitFor("every gateway online (a status after the first exec) and refreshed once (N next-root probes in the access log)", d, func() (int, int) {
		if ex := r.exited(); len(ex) > 0 {
			r.t.Fatalf("fieldgated exited: %v (logs in %s/gw/*/fieldgated.log)", ex, r.work)
		}
		online := r.w.online(r.gws, start)
		return min(online, rootProbes(r.ng.Requests(r.t), start)), len(r.gws)
	})
}

// measureIdle starts the fleet at the idle interval and measures, from
// outside, what the idle gateways cost: repository requests and bytes per
// refresh (nginx's access log), broker messages and bytes ($SYS counters,
// and per topic from a subscriber), RSS and CPU per process (/proc). The
// first requests after the start are shown as a histogram.
func (r *rig) measureIdle() {
	t, p := r.t, r.p
	start, launch := r.startAll(p.idleInterval)
	took := r.waitRefreshed(start, 3*time.Minute)
	r.res.add("start", "%d gateways started together (the last exec %v after the first); all online and refreshed once %v after the first exec",
		p.n, launch.Round(100*time.Millisecond), (launch + took).Round(time.Second))

	// The idle window starts after two intervals: start-up inventory and
	// the first refreshes are over.
	settle := start.Add(2 * p.idleInterval)
	r.sleepUntil(settle, "the fleet to settle before the idle window")
	sys0, topics0 := r.w.sys(), r.w.topics()
	ticks0 := make([]time.Duration, len(r.gws))
	for i, g := range r.gws {
		ticks0[i] = cpuTime(t, g.cmd.Process.Pid)
	}
	winStart := time.Now()
	var rss []int64
	for end := winStart.Add(p.idle); time.Now().Before(end); {
		next := time.Now().Add(15 * time.Second)
		if next.After(end) {
			next = end
		}
		r.sleepUntil(next, "the end of the idle window")
		if ex := r.exited(); len(ex) > 0 {
			t.Fatalf("fieldgated exited during the idle window: %v", ex)
		}
		for _, g := range r.gws {
			rss = append(rss, procStatusKB(t, g.cmd.Process.Pid, "VmRSS")<<10)
		}
	}
	winEnd := time.Now()
	win := winEnd.Sub(winStart)
	cpu := make([]float64, len(r.gws))
	for i, g := range r.gws {
		cpu[i] = (cpuTime(t, g.cmd.Process.Pid) - ticks0[i]).Seconds() / win.Seconds() * 100
	}
	sys1, topics1 := r.w.sys(), r.w.topics()
	reqs := r.ng.Requests(t)

	// Repository.
	var inWin []tuftest.Request
	for _, q := range reqs {
		if !q.At.Before(winStart) && q.At.Before(winEnd) {
			inWin = append(inWin, q)
		}
	}
	refreshes := rootProbes(inWin, winStart)
	if refreshes == 0 {
		t.Fatalf("no refresh in the idle window of %v at a refresh interval of %v", win, p.idleInterval)
	}
	perGW := float64(refreshes) / float64(p.n)
	reqPer, bytesPer := float64(len(inWin))/float64(refreshes), float64(tuftest.BytesSent(inWin))/float64(refreshes)
	r.res.add("idle window", "%v at refresh_interval %v: %d refreshes (%.1f per gateway)", win.Round(time.Second), p.idleInterval, refreshes, perGW)
	r.res.add("repository per idle refresh", "%.2f requests, %.0f bytes sent (%s)", reqPer, bytesPer, requestKinds(inWin, refreshes))
	r.res.add("repository per gateway at 15 min", "%.1f requests/h, %.0f bytes/h, %.0f kB/day; fleet of %d: %.3f requests/s",
		reqPer*4, bytesPer*4, bytesPer*96/1000, p.n, reqPer*float64(p.n)/900)

	// Broker, from its own counters: received is what the clients sent
	// (the harness's subscriber sends no keep-alives), sent is what the
	// broker sent to them, less what it sent to the harness's subscriber.
	hours := win.Hours()
	delta := func(key string) float64 {
		d, ok := sysDelta(sys0, sys1, key)
		if !ok {
			t.Fatalf("mosquitto published no $SYS/broker/%s (sys_interval 1)", key)
		}
		return d
	}
	perGWh := func(v float64) float64 { return v / float64(p.n) / hours }
	harness := topics1[harnessKey].sub(topics0[harnessKey])
	r.res.add("broker, from each gateway", "%.1f packets/h, %.0f bytes/h ($SYS received, at refresh_interval %v)",
		perGWh(delta("messages/received")), perGWh(delta("bytes/received")), p.idleInterval)
	r.res.add("broker, to each gateway", "%.1f packets/h, %.0f bytes/h ($SYS sent, less the %d messages to the harness's subscriber)",
		perGWh(delta("messages/sent")-float64(harness.msgs)), perGWh(delta("bytes/sent")-float64(harness.bytes)), harness.msgs)
	var kinds []string
	for _, k := range slices.Sorted(maps.Keys(topics1)) {
		c := topics1[k].sub(topics0[k])
		if c.msgs > 0 && k != harnessKey {
			kinds = append(kinds, fmt.Sprintf("%s %.2f msgs %.0f B", k, float64(c.msgs)/float64(p.n)/hours, float64(c.bytes)/float64(p.n)/hours))
		}
	}
	if len(kinds) == 0 {
		kinds = []string{"none"}
	}
	r.res.add("published per gateway-hour by topic (subscriber)", "%s (payload bytes)", strings.Join(kinds, "; "))
	heartbeat := "mqtt.heartbeat default, 1h"
	if p.heartbeat > 0 {
		heartbeat = "mqtt.heartbeat " + p.heartbeat.String()
	}
	r.res.add("status document", "%.0f bytes of payload on average (published on change and once per heartbeat: %s)", r.w.statusSize(), heartbeat)

	// Processes.
	rssMean, rssMax := meanMax(rss)
	cpuMean, cpuMax := meanMaxF(cpu)
	r.res.add("fieldgated RSS", "mean %.1f MiB, max %.1f MiB (VmRSS every 15 s)", rssMean/(1<<20), rssMax/(1<<20))
	r.res.add("fieldgated CPU", "mean %.3f %%, max %.3f %% of one CPU (utime+stime over the window)", cpuMean, cpuMax)

	// The start, second by second.
	hist := min(3*time.Minute, winEnd.Sub(start))
	t.Logf("repository requests after %d gateways started together (refresh_interval %v; 5 s bins):\n%s", p.n, p.idleInterval, histogram(reqs, start, hist, 5*time.Second))
	r.res.add("start histogram", "first %v after the start, per second: %s", hist.Round(time.Second), spread(reqs, start, hist))
}

// measureNewTarget restarts the fleet at the new-target interval (15 min
// by default), shows the restart's requests second by second, then
// publishes a new target and measures for each gateway the time from the
// commit to its job for the target (the job's created time).
func (r *rig) measureNewTarget() {
	t, p := r.t, r.p
	r.stopAll()
	start, launch := r.startAll(p.interval)
	took := launch + r.waitRefreshed(start, 3*time.Minute)
	r.sleepUntil(time.Now().Add(5*time.Second), "the first refreshes to end")
	reqs := r.ng.Requests(t)
	t.Logf("repository requests after %d gateways restarted together (refresh_interval %v; 1 s bins):\n%s", p.n, p.interval, histogram(reqs, start, 30*time.Second, time.Second))
	r.res.add("restart histogram", "all refreshed after %v; first 30 s, per second: %s", took.Round(time.Second), spread(reqs, start, 30*time.Second))

	v := fmt.Sprintf("1.%d.0", r.build)
	pub := r.publish(v)
	name := targetName(v)
	wait := p.interval + p.interval/10 + 2*time.Minute // the longest jittered interval, and a margin
	r.waitFor("a job for "+name+" on every gateway", wait, func() (int, int) { return len(r.w.jobs(name)), p.n })
	lat := latencies(r.w.jobs(name), pub)
	r.res.add("new target, polling only", "publish to job staged on each of %d gateways at refresh_interval %v: p50 %v, p99 %v, max %v",
		p.n, p.interval, pct(lat, 50), pct(lat, 99), pct(lat, 100))
}

// sleepUntil waits until at, or fails at the run's deadline.
func (r *rig) sleepUntil(at time.Time, what string) {
	select {
	case <-time.After(time.Until(at)):
	case <-r.ctx.Done():
		r.t.Fatalf("run deadline while waiting for %s", what)
	}
}

// requestKinds sorts requests into kinds and statuses, per refresh.
func requestKinds(reqs []tuftest.Request, refreshes int) string {
	counts := map[string]int{}
	for _, q := range reqs {
		k := q.URI
		switch {
		case isRootProbe(q):
			k = "next root"
		case strings.HasPrefix(q.URI, "/targets/"):
			k = "target file"
		case strings.HasPrefix(q.URI, "/metadata/"):
			k = regexp.MustCompile(`[0-9]+\.`).ReplaceAllString(strings.TrimPrefix(q.URI, "/metadata/"), "N.")
		}
		counts[fmt.Sprintf("%s %d", k, q.Status)]++
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s: %.2f", k, float64(counts[k])/float64(refreshes)))
	}
	return strings.Join(parts, ", ")
}

// histogram draws the requests in [start, start+span) in bins of bin.
func histogram(reqs []tuftest.Request, start time.Time, span, bin time.Duration) string {
	counts := make([]int, int((span+bin-1)/bin))
	for _, q := range reqs {
		if d := q.At.Sub(start); d >= 0 && d < span {
			counts[int(d/bin)]++
		}
	}
	most := slices.Max(counts)
	var b strings.Builder
	for i, c := range counts {
		bar := 0
		if most > 0 {
			bar = int(math.Ceil(float64(c) * 60 / float64(most)))
		}
		fmt.Fprintf(&b, "%6v %5d %s\n", time.Duration(i)*bin, c, strings.Repeat("#", bar))
	}
	return b.String()
}

// spread summarises requests per second in [start, start+span): the
// busiest second, and in how many seconds there were any.
func spread(reqs []tuftest.Request, start time.Time, span time.Duration) string {
	counts := make([]int, int(span/time.Second)+1)
	total := 0
	for _, q := range reqs {
		if d := q.At.Sub(start); d >= 0 && d < span {
			counts[int(d/time.Second)]++
			total++
		}
	}
	busy := 0
	for _, c := range counts {
		if c > 0 {
			busy++
		}
	}
	return fmt.Sprintf("%d requests, peak %d/s, requests in %d of %d seconds", total, slices.Max(counts), busy, len(counts)-1)
}

// latencies returns, per gateway's job, the time from pub to its creation.
func latencies(jobs map[string]jobDoc, pub time.Time) []time.Duration {
	var l []time.Duration
	for _, j := range jobs {
		l = append(l, j.Created.Sub(pub))
	}
	slices.Sort(l)
	return l
}

// pct is the p-th percentile (nearest rank) of sorted l.
func pct(l []time.Duration, p int) time.Duration {
	if len(l) == 0 {
		return 0
	}
	i := int(math.Ceil(float64(p)/100*float64(len(l)))) - 1
	return l[max(0, min(i, len(l)-1))].Round(100 * time.Millisecond)
}

func meanMax(v []int64) (mean, most float64) {
	for _, x := range v {
		mean += float64(x)
		most = max(most, float64(x))
	}
	return mean / float64(max(1, len(v))), most
}

func meanMaxF(v []float64) (mean, most float64) {
	for _, x := range v {
		mean += x
		most = max(most, x)
	}
	return mean / float64(max(1, len(v))), most
}

// watcher is the harness's MQTT subscriber: it keeps mosquitto's $SYS
// counters, counts what the gateways publish per kind of topic, and keeps
// each gateway's status and jobs.
type watcher struct {
	c paho.Client

	mu      sync.Mutex
	sysVals map[string]float64
	counts  map[string]count // kind of topic → live (not retained) messages
	status  map[string]statusDoc
	jobDocs map[string]map[string]jobDoc // target → gateway prefix → first document of its job
	latest  map[string]map[string]jobDoc // target → gateway prefix → newest document of its job
	statusB count                        // every status document, retained ones too
}

type count struct{ msgs, bytes int }

// harnessKey counts every message the harness's subscriber received, with
// the bytes of its PUBLISH packets.
const harnessKey = " harness"

// publishSize is the size of a QoS 0 PUBLISH packet of MQTT 3.1.1: fixed
// header, remaining length, topic and payload.
func publishSize(topic string, payload []byte) int {
	rem := 2 + len(topic) + len(payload)
	n := 1 + 1 + rem
	for x := rem >> 7; x > 0; x >>= 7 {
		n++
	}
	return n
}

func (c count) sub(o count) count { return count{c.msgs - o.msgs, c.bytes - o.bytes} }

type statusDoc struct {
	Online      bool      `json:"online"`
	LastRefresh time.Time `json:"last_refresh"`
	at          time.Time // arrival
}

type jobDoc struct {
	Target  string    `json:"target"`
	Phase   string    `json:"phase"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	Steps   []struct {
		Device  string `json:"device"`
		Phase   string `json:"phase"`
		Blocked string `json:"blocked"`
	} `json:"devices"`
}

func startWatcher(t *testing.T, broker string) *watcher {
	t.Helper()
	w := &watcher{sysVals: map[string]float64{}, counts: map[string]count{}, status: map[string]statusDoc{}, jobDocs: map[string]map[string]jobDoc{}, latest: map[string]map[string]jobDoc{}}
	o := paho.NewClientOptions().AddBroker(broker).SetClientID("fleet-harness").SetCleanSession(true).
		SetOrderMatters(false).SetAutoReconnect(true).
		SetKeepAlive(0) // no PINGREQ: what the broker receives comes from the gateways
	o.SetDefaultPublishHandler(w.handle)
	w.c = paho.NewClient(o)
	if tok := w.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("harness subscriber: connect to %s: %v", broker, tok.Error())
	}
	if tok := w.c.SubscribeMultiple(map[string]byte{"fieldgate/#": 0, "$SYS/broker/#": 0}, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("harness subscriber: subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { w.c.Disconnect(100) })
	return w
}

// topicKind names the kind of a gateway's topic: status, devices, jobs,
// events, cmd, … (the level after the gateway's prefix).
func topicKind(topic string) (prefix, kind string) {
	f := strings.Split(topic, "/")
	if len(f) < 5 {
		return "", topic
	}
	return strings.Join(f[:4], "/"), f[4]
}

func (w *watcher) handle(_ paho.Client, m paho.Message) {
	topic, payload := m.Topic(), m.Payload()
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.counts[harnessKey]
	h.msgs++
	h.bytes += publishSize(topic, payload)
	w.counts[harnessKey] = h
	if key, ok := strings.CutPrefix(topic, "$SYS/broker/"); ok {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(payload)), 64); err == nil {
			w.sysVals[key] = v
		}
		return
	}
	prefix, kind := topicKind(topic)
	if !m.Retained() {
		c := w.counts[kind]
		c.msgs++
		c.bytes += len(payload)
		w.counts[kind] = c
	}
	switch kind {
	case "status":
		var s statusDoc
		if json.Unmarshal(payload, &s) == nil {
			s.at = time.Now()
			w.status[prefix] = s
			w.statusB.msgs++
			w.statusB.bytes += len(payload)
		}
	case "jobs":
		var j jobDoc
		if json.Unmarshal(payload, &j) == nil && j.Target != "" {
			if w.jobDocs[j.Target] == nil {
				w.jobDocs[j.Target] = map[string]jobDoc{}
			}
			if _, seen := w.jobDocs[j.Target][prefix]; !seen {
				w.jobDocs[j.Target][prefix] = j
			}
			if w.latest[j.Target] == nil {
				w.latest[j.Target] = map[string]jobDoc{}
			}
			if old, ok := w.latest[j.Target][prefix]; !ok || !j.Updated.Before(old.Updated) {
				w.latest[j.Target][prefix] = j
			}
		}
	}
}

// sys returns the latest $SYS/broker values.
func (w *watcher) sys() map[string]float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := make(map[string]float64, len(w.sysVals))
	for k, v := range w.sysVals {
		m[k] = v
	}
	return m
}

func sysDelta(a, b map[string]float64, key string) (float64, bool) {
	x, ok1 := a[key]
	y, ok2 := b[key]
	return y - x, ok1 && ok2
}

// topics returns the live messages counted so far per kind of topic.
func (w *watcher) topics() map[string]count {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := make(map[string]count, len(w.counts))
	for k, v := range w.counts {
		m[k] = v
	}
	return m
}

// online counts the gateways whose latest status says online and arrived
// after since.
func (w *watcher) online(gws []*gateway, since time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, g := range gws {
		if s, ok := w.status[g.prefix()]; ok && s.Online && s.at.After(since) {
			n++
		}
	}
	return n
}

// jobs returns, per gateway prefix, the first document of its job for
// target.
func (w *watcher) jobs(target string) map[string]jobDoc {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := map[string]jobDoc{}
	for k, v := range w.jobDocs[target] {
		m[k] = v
	}
	return m
}

// latestJobs returns, per gateway prefix, the newest document of its job
// for target.
func (w *watcher) latestJobs(target string) map[string]jobDoc {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := map[string]jobDoc{}
	for k, v := range w.latest[target] {
		m[k] = v
	}
	return m
}

// statusSize is the mean payload size of the status documents seen.
func (w *watcher) statusSize() float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return float64(w.statusB.bytes) / float64(max(1, w.statusB.msgs))
}

// results is the run's results table, in the order the figures were made.
type results struct{ rows [][2]string }

func (r *results) add(what, format string, args ...any) {
	r.rows = append(r.rows, [2]string{what, fmt.Sprintf(format, args...)})
}

func (r *results) print(t *testing.T, out string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("| measurement | result |\n| --- | --- |\n")
	for _, row := range r.rows {
		fmt.Fprintf(&b, "| %s | %s |\n", row[0], strings.ReplaceAll(row[1], "|", "\\|"))
	}
	t.Logf("fleet results:\n%s", b.String())
	if out != "" {
		if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
			t.Errorf("FLEET_OUT: %v", err)
		}
	}
}

// loadSampler reads the 1-minute load average every 10 s.
type loadSampler struct {
	mu      sync.Mutex
	samples []float64
}

func startLoadSampler(t *testing.T, ctx context.Context) *loadSampler {
	l := &loadSampler{}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if b, err := os.ReadFile("/proc/loadavg"); err == nil {
				if f := strings.Fields(string(b)); len(f) > 0 {
					if v, err := strconv.ParseFloat(f[0], 64); err == nil {
						l.mu.Lock()
						l.samples = append(l.samples, v)
						l.mu.Unlock()
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Second):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

func (l *loadSampler) mean() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, _ := meanMaxF(l.samples)
	return m
}

func (l *loadSampler) max() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, m := meanMaxF(l.samples)
	return m
}

func nproc() int { return runtime.NumCPU() }

// firstLine returns the value of the first "key: value" line of path.
func firstLine(path, key string) string {
	b, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// cpuTime returns the CPU time, user and system, pid has used so far.
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	d, err := proctest.CPUTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// procStatusKB returns a "kB" field of /proc/PID/status.
func procStatusKB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	n, err := proctest.StatusKB(pid, field)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// hintRefresh publishes one signed refresh hint on the broadcast prefix
// (fieldgatectl remote refresh --broadcast), at least 42 s after the last
// one: a gateway's hinted refreshes are at least 30 s apart, and the last
// one may have come up to hint_spread (10 s) after its hint.
func (r *rig) hintRefresh() {
	r.t.Helper()
	if !r.hint.IsZero() {
		r.sleepUntil(r.hint.Add(42*time.Second), "the hint rate limit (hinted refreshes 30 s apart)")
	}
	r.tool("fieldgatectl", "remote", "refresh", "--broadcast", broadcastPrefix, "--broker", r.mq.URL(), "--key", r.key, "--key-id", "fleet")
	r.hint = time.Now()
}

// measureHint publishes a new target and, right after the commit, one
// signed broadcast refresh hint, and measures the time from the commit to
// a job on every gateway.
func (r *rig) measureHint() {
	p := r.p
	v := fmt.Sprintf("1.%d.0", r.build)
	name := targetName(v)
	pub := r.publish(v)
	r.hintRefresh()
	r.waitFor("a job for "+name+" on every gateway after a refresh hint", 3*time.Minute, func() (int, int) { return len(r.w.jobs(name)), p.n })
	lat := latencies(r.w.jobs(name), pub)
	r.res.add("new target, with a refresh hint", "publish, then one signed broadcast hint (hint_spread default 10 s), to job staged on each of %d gateways: p50 %v, p99 %v, max %v",
		p.n, pct(lat, 50), pct(lat, 99), pct(lat, 100))
}

// cohortSet is the set of gateway prefixes whose rollout cohort is below
// percent.
func (r *rig) cohortSet(percent int) map[string]bool {
	set := map[string]bool{}
	for _, g := range r.gws {
		if tuf.Cohort(g.site, g.id) < percent {
			set[g.prefix()] = true
		}
	}
	return set
}

// checkStaged fails unless the gateways with a job for target are exactly
// want; it names the first differences.
func (r *rig) checkStaged(stage, target string, want map[string]bool) {
	r.t.Helper()
	got := r.w.jobs(target)
	var extra, missing []string
	for k := range got {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(extra)+len(missing) > 0 {
		slices.Sort(extra)
		slices.Sort(missing)
		r.t.Fatalf("%s: %d gateways have a job for %s, the cohort math says %d; staged outside the cohort: %v; in the cohort, not staged: %v",
			stage, len(got), target, len(want), extra[:min(len(extra), 10)], missing[:min(len(missing), 10)])
	}
}

// rolloutStage waits until the gateways of the cohort below percent have
// a job for target, then for one more hint spread and a margin, and
// checks that exactly they (by the cohort math) staged it.
func (r *rig) rolloutStage(target string, percent int) {
	r.t.Helper()
	want := r.cohortSet(percent)
	stage := fmt.Sprintf("rollout %d %%", percent)
	took := r.waitFor(fmt.Sprintf("%s: a job for %s on the %d gateways of cohort < %d", stage, target, len(want), percent), 3*time.Minute, func() (int, int) {
		n := 0
		for k := range r.w.jobs(target) {
			if want[k] {
				n++
			}
		}
		return n, len(want)
	})
	r.sleepUntil(r.hint.Add(30*time.Second), "gateways outside the cohort to refresh too")
	r.checkStaged(stage, target, want)
	r.res.add(stage, "%d of %d gateways staged %s (cohort math: %d, the same set), all within %v of the hint",
		len(r.w.jobs(target)), r.p.n, target, len(want), took.Round(time.Second))
}

// measureRollout publishes a target with a rollout of 10 %, widens it to
// 50 % and 100 % (fieldgate-repo rollout, commit, a refresh hint each),
// checking at each stage that exactly the gateways of the cohort staged
// it; then publishes another at 50 % and halts it (percent 0) seconds
// after the hint, while some gateways are still refreshing: none stages
// it after the halt, and no running step is interrupted.
func (r *rig) measureRollout() {
	t, p := r.t, r.p
	v := fmt.Sprintf("1.%d.0", r.build)
	name := targetName(v)
	r.publish(v, "--rollout-percent", "10")
	r.hintRefresh()
	r.rolloutStage(name, 10)
	for _, percent := range []int{50, 100} {
		r.tool("fieldgate-repo", "rollout", r.repo, name, "--percent", strconv.Itoa(percent))
		r.tool("fieldgate-repo", "commit", r.repo, "--insecure-plaintext-keys")
		r.hintRefresh()
		r.rolloutStage(name, percent)
	}
	r.waitFor("the 100 % rollout's jobs to end", 5*time.Minute, func() (int, int) { return r.ended(name), p.n })

	// Halt while the fleet is refreshing.
	v = fmt.Sprintf("1.%d.0", r.build)
	name = targetName(v)
	r.publish(v, "--rollout-percent", "50")
	r.hintRefresh()
	r.sleepUntil(r.hint.Add(3*time.Second), "some gateways to take the hint")
	r.tool("fieldgate-repo", "rollout", r.repo, name, "--percent", "0")
	r.tool("fieldgate-repo", "commit", r.repo, "--insecure-plaintext-keys")
	halted := time.Now()
	r.sleepUntil(halted.Add(20*time.Second), "the hinted refreshes to end") // hint_spread (10 s) and the refresh
	before := r.w.jobs(name)
	r.hintRefresh() // everyone refreshes again, with the halt
	r.sleepUntil(r.hint.Add(30*time.Second), "the hinted refreshes after the halt to end")
	after := r.w.jobs(name)
	cohort := r.cohortSet(50)
	late := 0
	var inFlight time.Duration // a refresh that read the metadata before the commit stages a little later
	for k, j := range after {
		if !cohort[k] {
			t.Errorf("halt: %s staged %s outside the 50 %% cohort", k, name)
		}
		if _, ok := before[k]; !ok {
			late++
		}
		inFlight = max(inFlight, j.Created.Sub(halted))
	}
	if late > 0 {
		t.Errorf("halt: %d gateways staged %s after the halt (percent 0) had been committed and hinted", late, name)
	}
	// Every staged job goes on: steps that had started end committed; the
	// others wait, blocked by the halt. None fails or is cancelled.
	r.sleepUntil(time.Now().Add(15*time.Second), "running steps to end")
	phases := map[string]int{}
	for k, j := range r.w.latestJobs(name) {
		for _, s := range j.Steps {
			what := s.Phase
			if s.Blocked != "" {
				what += " (blocked: " + firstWords(s.Blocked, 2) + ")"
			}
			phases[what]++
			if s.Phase == "failed" || s.Phase == "skipped" || s.Phase == "rolled-back" {
				t.Errorf("halt: %s step %s of %s ended %s: a halt must not interrupt a step", k, s.Device, name, s.Phase)
			}
		}
	}
	var ph []string
	for _, k := range slices.Sorted(maps.Keys(phases)) {
		ph = append(ph, fmt.Sprintf("%s %d", k, phases[k]))
	}
	r.res.add("rollout halt", "%s at 50 %%, halted (0 %%) 3 s after the hint: %d gateways had staged it (cohort < 50: %d; the last job made %v after the halt's commit, by a refresh already under way), none after a second hint; their steps: %s",
		name, len(before), len(cohort), inFlight.Round(100*time.Millisecond), strings.Join(ph, ", "))
}

// ended counts the gateways whose job for target has ended.
func (r *rig) ended(target string) int {
	n := 0
	for _, j := range r.w.latestJobs(target) {
		switch j.Phase {
		case "succeeded", "partially-failed", "failed", "halted", "cancelled":
			n++
		}
	}
	return n
}

func firstWords(s string, n int) string {
	f := strings.Fields(s)
	return strings.Join(f[:min(n, len(f))], " ")
}

// measureFleetView runs fieldgatectl fleet --json once over the whole
// fleet and once for one site, and reports the time to the first full
// table and the command's peak RSS (getrusage ru_maxrss).
func (r *rig) measureFleetView() {
	t, p := r.t, r.p
	site := r.gws[0].site
	want := 0
	for _, g := range r.gws {
		if g.site == site {
			want++
		}
	}
	for _, c := range []struct {
		site string
		want int
	}{{"", p.n}, {site, want}} {
		args := []string{"fleet", "--broker", r.mq.URL(), "--json", "--stats", "--timeout", "2m"}
		what := "every gateway"
		if c.site != "" {
			args = append(args, "--site", c.site)
			what = "site " + c.site
		}
		ctx, cancel := context.WithTimeout(r.ctx, 3*time.Minute)
		cmd := exec.CommandContext(ctx, filepath.Join(r.bin, "fieldgatectl"), args...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		err := cmd.Run()
		took := time.Since(start)
		cancel()
		if err != nil {
			t.Fatalf("fieldgatectl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		var table struct {
			Summary struct {
				Gateways int `json:"gateways"`
				Online   int `json:"online"`
				Devices  int `json:"devices"`
			} `json:"summary"`
		}
		if err := json.Unmarshal([]byte(stdout.String()), &table); err != nil {
			t.Fatalf("fieldgatectl fleet --json: %v\n%.500s", err, stdout.String())
		}
		if s := table.Summary; s.Gateways != c.want || s.Online != c.want || s.Devices != devicesPerGW*c.want {
			t.Fatalf("fieldgatectl fleet (%s): %d gateways, %d online, %d devices; want %d, %d, %d",
				what, s.Gateways, s.Online, s.Devices, c.want, c.want, devicesPerGW*c.want)
		}
		maxRSS := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB on Linux
		r.res.add("fieldgatectl fleet, "+what, "%d gateways, all online: first full table after %v (process start to exit), peak RSS %.1f MiB; --stats: %s",
			c.want, took.Round(10*time.Millisecond), float64(maxRSS)/1024, strings.Join(strings.Fields(stderr.String()), " "))
	}
}
