// SPDX-License-Identifier: Apache-2.0

package fleet_test

// A site broker bridged to the centre: a real fieldgated publishes to a
// site mosquitto, whose own bridge (mosquitto.conf's connection section)
// forwards fieldgate/v1/# to a central mosquitto through a TCP proxy the
// test can cut. Debian packages: mosquitto, mosquitto-clients.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/mqtt/mqtttest"
	"github.com/fieldgate/fieldgate/internal/proctest"
)

// bridgeName is the bridge's connection name and its client id at the
// centre, so its state is $SYS/broker/connection/site-demo/state there.
const bridgeName = "site-demo"

// bridgeConfig is the site broker's bridge to the centre, as docs/fleet.md
// shows it; centre is the address the bridge dials.
func bridgeConfig(centre string) string {
	return `max_queued_messages 100000
connection ` + bridgeName + `
address ` + centre + `
remote_clientid ` + bridgeName + `
bridge_protocol_version mqttv311
topic fieldgate/v1/# out 1
cleansession false
notifications true
keepalive_interval 5
restart_timeout 2 10
bridge_attempt_unsubscribe false
`
}

// TestInteropBridge runs jobs on a real gateway whose site broker is
// bridged to a central broker, cuts the bridge for a minute while the
// jobs run (FIELDGATE_BRIDGE_CUT overrides the length), and checks at the
// centre: every event the gateway made arrives, in order and without a
// gap; the retained status, device and job documents equal the site's and
// fieldgatectl status; the bridge's state notification went 1, 0, 1.
func TestInteropBridge(t *testing.T) {
	mqtttest.NeedPeer(t, "mosquitto", "mosquitto")
	mqtttest.NeedPeer(t, "mosquitto_sub", "mosquitto-clients")
	if testing.Short() {
		t.Skip("bridge test builds and runs every binary and cuts the bridge for a minute")
	}
	cut := time.Minute
	if s := os.Getenv("FIELDGATE_BRIDGE_CUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("FIELDGATE_BRIDGE_CUT=%q: want a positive duration (90s)", s)
		}
		cut = d
	}
	bin := buildBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute+2*cut)
	defer cancel()

	centre := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
	link := startProxy(t, fmt.Sprintf("127.0.0.1:%d", centre.Port()))
	central := subscribe(t, ctx, centre.Port(), "fieldgate/v1/#", "$SYS/broker/connection/+/state")
	site := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{Config: "log_type notice\n" + bridgeConfig(link.Addr())})
	local := subscribe(t, ctx, site.Port(), "fieldgate/v1/#")
	waitBridgeState(t, ctx, central, "1")

	// Two groups, so two jobs; two devices at a time, and each soaks for
	// a little over half the cut: the jobs run through the whole cut and
	// end after it.
	const parallel = 2
	soak := (cut/2 + 5*time.Second).Round(time.Second)
	var devs []simDevice
	for i, g := range []string{"line1", "line1", "line2", "line2"} {
		devs = append(devs, simDevice{id: fmt.Sprintf("plc-%d", i+1), group: g, kind: "modbus-tcp", protocol: "modbus-tcp",
			simOpts: map[string]string{"image_size": "4096", "boot_time": "100ms"},
			drvOpts: map[string]string{"poll_interval": "100ms", "activate_timeout": "10s"}})
	}
	gw := setupGateway(t, ctx, gatewayOptions{bin: bin, broker: site.URL(), protocol: "modbus-tcp", imageSize: 4096,
		devices: devs, maxParallel: parallel, groups: []group{{name: "line1", soak: soak}, {name: "line2", soak: soak}}})
	gw.start(t)

	if _, err := gw.poll(ctx, "a device step under way", func(st api.Status) bool {
		return slices.ContainsFunc(st.Jobs, func(j api.Job) bool {
			return slices.ContainsFunc(j.Steps, func(s api.Step) bool { return s.Phase != "pending" && !terminal(s.Phase) })
		})
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("cutting the bridge for %s", cut)
	cutAt := time.Now()
	link.cut()
	select {
	case <-time.After(cut): // the outage the test simulates; not a timing assertion
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	st, err := gw.status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(st.Jobs, func(j api.Job) bool { return !terminal(j.Phase) }) {
		t.Errorf("every job had ended when the bridge came back: the cut did not overlap the jobs for its whole length")
	}
	link.restore()
	restoredAt := time.Now()
	t.Logf("bridge restored")

	final, err := gw.poll(ctx, "every job ended", func(st api.Status) bool {
		return len(st.Jobs) == 2 && !slices.ContainsFunc(st.Jobs, func(j api.Job) bool { return !terminal(j.Phase) })
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range final.Jobs {
		if j.Phase != "succeeded" {
			t.Errorf("job %s ended %s (%s), want succeeded", j.ID, j.Phase, j.Reason)
		}
	}

	// Events: the audit log is the truth; the site broker saw them all,
	// and the centre must see them all, in order.
	last := gw.lastAuditSeq(t, ctx)
	var during int
	for _, m := range local.all() {
		if strings.HasSuffix(m.topic, "/events") && m.at.After(cutAt) && m.at.Before(restoredAt) {
			during++
		}
	}
	if during == 0 {
		t.Errorf("the gateway published no event while the bridge was cut: the cut tested nothing")
	}
	for what, c := range map[string]*capture{"site": local, "centre": central} {
		var seqs []uint64
		for ctx.Err() == nil {
			seqs = eventSeqs(t, c.all())
			if len(seqs) > 0 && seqs[len(seqs)-1] >= last {
				break
			}
			sleep(ctx, 200*time.Millisecond)
		}
		if want := seqRange(last); !slices.Equal(inOrder(seqs), want) {
			t.Errorf("events at the %s, kept in arrival order when seq rises (%d of %d arrivals):\n  got  %v\n  want %v (audit log 1..%d)",
				what, len(inOrder(seqs)), len(seqs), inOrder(seqs), want, last)
		}
	}
	t.Logf("%d events (audit seq 1..%d), %d published while the bridge was cut", last, last, during)
	var n, size int
	for _, m := range local.all() {
		if m.at.After(cutAt) && m.at.Before(restoredAt) {
			n++
			size += len(m.topic) + len(m.payload)
		}
	}
	t.Logf("site broker, while the bridge was cut (%s, %d devices updating): %d messages, %d bytes of topic and payload: %.2f messages/s",
		restoredAt.Sub(cutAt).Round(time.Second), parallel, n, size, float64(n)/restoredAt.Sub(cutAt).Seconds())

	// Retained documents: the centre's equal the site's, and both say what
	// fieldgatectl status says.
	var siteDocs, centreDocs map[string]string
	for ctx.Err() == nil {
		siteDocs = retained(t, ctx, site.Port(), "fieldgate/v1/#")
		centreDocs = retained(t, ctx, centre.Port(), "fieldgate/v1/#")
		if maps.Equal(siteDocs, centreDocs) && len(disagreements(siteDocs, final)) == 0 {
			break
		}
		sleep(ctx, 500*time.Millisecond)
		if final, err = gw.status(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !maps.Equal(siteDocs, centreDocs) {
		t.Errorf("retained documents at the centre differ from the site's:\n%s", diffDocs(siteDocs, centreDocs))
	}
	if d := disagreements(centreDocs, final); len(d) > 0 {
		t.Errorf("retained documents at the centre disagree with fieldgatectl status --json:\n  %s", strings.Join(d, "\n  "))
	}

	// The bridge's own state, as the centre saw it: 1, then 0 during the
	// cut, then 1 after it.
	var states []string
	var sawDown, sawUp bool
	for _, m := range central.all() {
		if m.topic != "$SYS/broker/connection/"+bridgeName+"/state" {
			continue
		}
		states = append(states, m.payload)
		switch {
		case m.payload == "0" && m.at.After(cutAt) && m.at.Before(restoredAt):
			sawDown = true
		case m.payload == "1" && sawDown && m.at.After(restoredAt):
			sawUp = true
		}
	}
	t.Logf("$SYS/broker/connection/%s/state at the centre: %v", bridgeName, states)
	if !sawDown || !sawUp {
		t.Errorf("$SYS/broker/connection/%s/state at the centre went %v; want 1, then 0 during the cut, then 1 after it", bridgeName, states)
	}
}

// waitBridgeState waits until the centre has seen the bridge's state
// notification payload want.
func waitBridgeState(t testing.TB, ctx context.Context, c *capture, want string) {
	t.Helper()
	for {
		for _, m := range c.all() {
			if m.topic == "$SYS/broker/connection/"+bridgeName+"/state" && m.payload == want {
				return
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("the bridge never reported state %s at the centre", want)
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

// eventSeqs returns the seq of every event in msgs, in arrival order.
func eventSeqs(t testing.TB, msgs []message) []uint64 {
	t.Helper()
	var seqs []uint64
	for _, m := range msgs {
		if !strings.HasSuffix(m.topic, "/events") {
			continue
		}
		var e api.Event
		if err := json.Unmarshal([]byte(m.payload), &e); err != nil || e.Seq == 0 {
			t.Errorf("event %s %q: no seq (%v)", m.topic, m.payload, err)
			continue
		}
		seqs = append(seqs, e.Seq)
	}
	return seqs
}

// inOrder keeps the arrivals whose seq is above every seq before them:
// what a consumer keeps that drops redeliveries as docs/mqtt.md says. A
// lost event, or one overtaken by a later one, leaves a gap.
func inOrder(seqs []uint64) []uint64 {
	var out []uint64
	for _, s := range seqs {
		if len(out) == 0 || s > out[len(out)-1] {
			out = append(out, s)
		}
	}
	return out
}

// seqRange returns 1..n.
func seqRange(n uint64) []uint64 {
	out := make([]uint64, 0, n)
	for s := uint64(1); s <= n; s++ {
		out = append(out, s)
	}
	return out
}

// disagreements lists where retained documents (topic → payload) and a
// gateway's status disagree: the gateway's state, each device's state,
// version and job, each job's phase and steps.
func disagreements(docs map[string]string, st api.Status) []string {
	var out []string
	prefix := "fieldgate/v1/" + st.Gateway.Site + "/" + st.Gateway.ID
	var g api.Gateway
	if err := json.Unmarshal([]byte(docs[prefix+"/status"]), &g); err != nil {
		out = append(out, fmt.Sprintf("%s/status %q: %v", prefix, docs[prefix+"/status"], err))
	} else if !g.Online || g.State != st.Gateway.State || g.Healthy != st.Gateway.Healthy {
		out = append(out, fmt.Sprintf("status: online=%v state=%q healthy=%v, want online, state=%q healthy=%v",
			g.Online, g.State, g.Healthy, st.Gateway.State, st.Gateway.Healthy))
	}
	for _, want := range st.Devices {
		topic := prefix + "/devices/" + want.ID
		var d api.Device
		if err := json.Unmarshal([]byte(docs[topic]), &d); err != nil {
			out = append(out, fmt.Sprintf("%s %q: %v", topic, docs[topic], err))
		} else if d.State != want.State || d.Version != want.Version || d.Job != want.Job {
			out = append(out, fmt.Sprintf("device %s: state=%q version=%q job=%q, status says state=%q version=%q job=%q",
				want.ID, d.State, d.Version, d.Job, want.State, want.Version, want.Job))
		}
	}
	for _, want := range st.Jobs {
		topic := prefix + "/jobs/" + want.ID
		var j api.Job
		if err := json.Unmarshal([]byte(docs[topic]), &j); err != nil {
			out = append(out, fmt.Sprintf("%s %q: %v", topic, docs[topic], err))
			continue
		}
		var got, exp []string
		for _, s := range j.Steps {
			got = append(got, s.Device+":"+s.Phase)
		}
		for _, s := range want.Steps {
			exp = append(exp, s.Device+":"+s.Phase)
		}
		if j.Phase != want.Phase || !slices.Equal(got, exp) {
			out = append(out, fmt.Sprintf("job %s: phase %s %v, status says %s %v", want.ID, j.Phase, got, want.Phase, exp))
		}
	}
	return out
}

func diffDocs(want, got map[string]string) string {
	var b strings.Builder
	topics := maps.Clone(want)
	maps.Copy(topics, got)
	for _, topic := range slices.Sorted(maps.Keys(topics)) {
		if want[topic] != got[topic] {
			fmt.Fprintf(&b, "  %s\n    site:   %q\n    centre: %q\n", topic, want[topic], got[topic])
		}
	}
	return b.String()
}

// proxy is a TCP link the test can cut: while cut it forwards nothing in
// either direction and passes on no close, as a broken WAN link does (the
// peers notice by their keepalives), and connections made during the
// cut reach nothing. restore closes every connection it held, so both
// sides start afresh.
type proxy struct {
	ln    net.Listener
	to    string
	mu    sync.Mutex
	down  bool
	conns []net.Conn
	wg    sync.WaitGroup
}

// startProxy listens on a free loopback port and forwards to to until the
// test ends.
func startProxy(t testing.TB, to string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, to: to}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.closeAll()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c)
		}()
	}
}

func (p *proxy) handle(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	down := p.down
	p.mu.Unlock()
	if down {
		io.Copy(io.Discard, c) // held until restore closes it
		return
	}
	up, err := net.Dial("tcp", p.to)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, up)
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.pipe(up, c)
	}()
	p.pipe(c, up)
}

// pipe copies src to dst while the link is up and drops what it reads
// while it is cut. When src ends it closes dst, unless the link is cut.
func (p *proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.isDown() {
			if _, err := dst.Write(buf[:n]); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	if !p.isDown() {
		dst.Close()
	}
}

func (p *proxy) isDown() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.down
}

func (p *proxy) cut() {
	p.mu.Lock()
	p.down = true
	p.mu.Unlock()
}

func (p *proxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
	p.closeAll()
}

func (p *proxy) closeAll() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// message is one message a subscriber received, with when.
type message struct {
	topic, payload string
	retained       bool
	at             time.Time
}

// capture is a real subscriber (mosquitto_sub, QoS 1) that keeps every
// message it receives until the test ends.
type capture struct {
	mu    sync.Mutex
	msgs  []message
	probe string
	got   chan struct{} // closed when the probe came back
	stop  func()
}

func (c *capture) all() []message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// subscribe starts mosquitto_sub on the broker at port with filters and
// returns once its subscription is in place: it publishes to a probe
// topic of its own until the probe comes back.
func subscribe(t testing.TB, ctx context.Context, port int, filters ...string) *capture {
	t.Helper()
	bin := mqtttest.NeedPeer(t, "mosquitto_sub", "mosquitto-clients")
	pub := mqtttest.NeedPeer(t, "mosquitto_pub", "mosquitto-clients")
	c := &capture{probe: "fieldgate-test/probe/" + strconv.FormatInt(time.Now().UnixNano(), 36), got: make(chan struct{})}
	args := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-q", "1", "-F", "%r %t %p", "-t", c.probe}
	for _, f := range filters {
		args = append(args, "-t", f)
	}
	sub := exec.Command(bin, args...)
	stdout, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var once sync.Once
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			flag, rest, _ := strings.Cut(sc.Text(), " ")
			topic, payload, _ := strings.Cut(rest, " ")
			if topic == c.probe {
				once.Do(func() { close(c.got) })
				continue
			}
			c.mu.Lock()
			c.msgs = append(c.msgs, message{topic, payload, flag == "1", time.Now()})
			c.mu.Unlock()
		}
	}()
	var stopped sync.Once
	c.stop = func() { stopped.Do(func() { sub.Process.Kill(); sub.Wait(); <-done }) }
	t.Cleanup(c.stop)
	for {
		exec.Command(pub, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-t", c.probe, "-m", "probe").Run()
		select {
		case <-c.got:
			return c
		case <-ctx.Done():
			t.Fatalf("mosquitto_sub on port %d never subscribed", port)
		case <-time.After(100 * time.Millisecond): // waiting for a peer process; not a timing assertion
		}
	}
}

// retained returns the retained messages (topic → payload) under filter
// as a fresh subscriber reads them: a broker sends them when the
// subscription is made, before any probe published after it.
func retained(t testing.TB, ctx context.Context, port int, filter string) map[string]string {
	t.Helper()
	c := subscribe(t, ctx, port, filter)
	c.stop()
	docs := map[string]string{}
	for _, m := range c.all() {
		if m.retained {
			docs[m.topic] = m.payload
		}
	}
	return docs
}

// sleep waits d or until ctx ends; it paces polling of peer processes.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// buildBinaries builds fieldgated, fieldgatectl, fieldgate-repo and
// fieldgate-sim into a temp dir.
func buildBinaries(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir, "../../cmd/fieldgated", "../../cmd/fieldgatectl", "../../cmd/fieldgate-repo", "../../cmd/fieldgate-sim")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// simDevice is one fieldgate-sim device and how fieldgated reaches it.
type simDevice struct {
	id, group        string
	kind, protocol   string // fieldgate-sim kind, fieldgated driver
	serial           bool   // a pty (its address is a path), else TCP on loopback
	baud             int    // serial line rate, paced by fieldgate-sim
	simOpts, drvOpts map[string]string
}

// group is a device group of the gateway: window always open, automatic
// approval.
type group struct {
	name   string
	soak   time.Duration
	canary int
}

type gatewayOptions struct {
	bin         string
	broker      string // tcp://host:port; empty: fieldgated's embedded broker
	protocol    string // the target's protocol metadata
	imageSize   int
	devices     []simDevice
	groups      []group
	maxParallel int
}

// gateway is one fieldgated with its simulated devices and a signed
// repository served by fieldgate-repo, in a work dir of the test.
type gateway struct {
	bin, work, config, socket string
	procs                     []*exec.Cmd
	pids                      map[string]int // tag → pid
	ids                       []string
}

const (
	hardware   = "acme-fleet-rev1"
	newVersion = "2.0.0"
)

// setupGateway signs a repository with one target for hardware, serves it,
// starts the devices and writes fieldgated's configuration; gateway.start
// starts fieldgated. Every process stops when the test ends.
func setupGateway(t testing.TB, ctx context.Context, o gatewayOptions) *gateway {
	t.Helper()
	g := &gateway{bin: o.bin, work: t.TempDir()}
	t.Cleanup(g.stop)
	for _, d := range []string{"repo", "dev", "state", "sim"} {
		if err := os.MkdirAll(filepath.Join(g.work, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	repo := filepath.Join(g.work, "repo")
	img := filepath.Join(g.work, "fw.bin")
	for _, s := range [][]string{
		{"fieldgate-sim", "mkimage", "--hw", hardware, "--version", newVersion, "--size", strconv.Itoa(o.imageSize), "-o", img},
		{"fieldgate-repo", "init", repo, "--insecure-plaintext-keys"},
		{"fieldgate-repo", "add", repo, img, "--name", "fleet/fw-" + newVersion + ".bin", "--hardware", hardware,
			"--version", newVersion, "--security-counter", "1", "--protocol", o.protocol},
		{"fieldgate-repo", "commit", repo, "--insecure-plaintext-keys"},
	} {
		if out, err := g.tool(ctx, s...); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}
	repoAddr := freeAddr(t)
	g.spawn(t, "repo", "fieldgate-repo", "serve", repo, "--listen", repoAddr)

	addrs := map[string]string{}
	sim := "devices:\n"
	for _, d := range o.devices {
		addr := filepath.Join(g.work, "dev", d.id)
		if !d.serial {
			addr = freeAddr(t)
		}
		addrs[d.id] = addr
		sim += fmt.Sprintf("  - {id: %s, kind: %s, hardware_id: %s, version: \"1.0.0\", state_dir: %s, address: %s, baud: %d, options: {%s}}\n",
			d.id, d.kind, hardware, filepath.Join(g.work, "sim", d.id), addr, d.baud, flowMap(d.simOpts))
		g.ids = append(g.ids, d.id)
	}
	simPath := filepath.Join(g.work, "sim.yaml")
	if err := os.WriteFile(simPath, []byte(sim), 0o644); err != nil {
		t.Fatal(err)
	}
	simLog := g.spawn(t, "sim", "fieldgate-sim", "run", "--config", simPath)
	for _, d := range o.devices {
		if err := waitLogLine(ctx, simLog, "device "+d.id+" ("); err != nil {
			t.Fatalf("simulated device %s did not come up: %v", d.id, err)
		}
	}

	g.socket = filepath.Join(g.work, "fieldgated.sock")
	mqttConfig := "broker: " + o.broker
	if o.broker == "" {
		mqttConfig = "listen: " + freeAddr(t)
	}
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
  %s
windows:
  - {name: always, start: "0 0 * * *", duration: 24h, timezone: UTC}
groups:
`, filepath.Join(g.work, "state"), g.socket, o.maxParallel, repoAddr, repoAddr,
		filepath.Join(repo, "repository", "metadata", "1.root.json"), mqttConfig)
	for _, gr := range o.groups {
		cfg += fmt.Sprintf("  - {name: %s, window: always, approval: auto, soak: %s, canary: %d}\n", gr.name, gr.soak, gr.canary)
	}
	cfg += "devices:\n"
	for _, d := range o.devices {
		baud := ""
		if d.serial {
			baud = fmt.Sprintf(", baud: %d", d.baud)
		}
		cfg += fmt.Sprintf("  - {id: %s, group: %s, protocol: %s, hardware_id: %s, address: %q, segment: %s%s, options: {%s}}\n",
			d.id, d.group, d.protocol, hardware, addrs[d.id], d.id, baud, flowMap(d.drvOpts))
	}
	g.config = filepath.Join(g.work, "fieldgated.yaml")
	if err := os.WriteFile(g.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"fieldgated", "sim"} {
				b, _ := os.ReadFile(filepath.Join(g.work, name+".log"))
				t.Logf("%s log (tail):\n%s", name, tail(b, 40))
			}
		}
	})
	return g
}

// start starts fieldgated.
func (g *gateway) start(t testing.TB) { g.spawn(t, "fieldgated", "fieldgated", "--config", g.config) }

// spawn starts bin/name with args in its own process group, its output in
// work/tag.log, whose path it returns.
func (g *gateway) spawn(t testing.TB, tag, name string, args ...string) string {
	t.Helper()
	logPath := filepath.Join(g.work, tag+".log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(filepath.Join(g.bin, name), args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	g.procs = append(g.procs, cmd)
	if g.pids == nil {
		g.pids = map[string]int{}
	}
	g.pids[tag] = cmd.Process.Pid
	return logPath
}

// stop stops every process, newest first: SIGTERM to its group, SIGKILL
// after 10 s.
func (g *gateway) stop() {
	for i := len(g.procs) - 1; i >= 0; i-- {
		cmd := g.procs[i]
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	g.procs = nil
}

// cpu returns the CPU time (user and system) the process started as tag
// has used so far.
func (g *gateway) cpu(tag string) (time.Duration, error) {
	return proctest.CPUTime(g.pids[tag])
}

// tool runs bin/args[0] to completion and returns its output.
func (g *gateway) tool(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(g.bin, args[0]), args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// status is fieldgatectl status --json.
func (g *gateway) status(ctx context.Context) (api.Status, error) {
	var st api.Status
	out, err := g.tool(ctx, "fieldgatectl", "--socket", g.socket, "status", "--json")
	if err != nil {
		return st, fmt.Errorf("fieldgatectl status: %w: %s", err, out)
	}
	err = json.Unmarshal(out, &st)
	return st, err
}

// poll asks for the status until cond holds or ctx ends.
func (g *gateway) poll(ctx context.Context, what string, cond func(api.Status) bool) (api.Status, error) {
	for {
		st, err := g.status(ctx)
		if err == nil && cond(st) {
			return st, nil
		}
		if ctx.Err() != nil {
			return st, fmt.Errorf("waiting for %s: %w (last status error: %v)", what, ctx.Err(), err)
		}
		sleep(ctx, 200*time.Millisecond)
	}
}

// lastAuditSeq returns the highest seq of fieldgatectl audit export.
func (g *gateway) lastAuditSeq(t testing.TB, ctx context.Context) uint64 {
	t.Helper()
	out, err := g.tool(ctx, "fieldgatectl", "--socket", g.socket, "audit", "export")
	if err != nil {
		t.Fatalf("fieldgatectl audit export: %v: %s", err, out)
	}
	var n uint64
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var e struct{ Seq uint64 }
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("audit export line %q: %v", l, err)
		}
		n = max(n, e.Seq)
	}
	return n
}

func terminal(phase string) bool {
	switch phase {
	case "succeeded", "partially-failed", "halted", "cancelled", "expired",
		"committed", "rolled-back", "failed", "skipped":
		return true
	}
	return strings.HasPrefix(phase, "not-started")
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitLogLine(ctx context.Context, path, s string) error {
	for {
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(s)) {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("no line %q in %s: %w", s, path, ctx.Err())
		}
		sleep(ctx, 50*time.Millisecond)
	}
}

// flowMap formats m as the inside of a YAML flow mapping, keys sorted.
func flowMap(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %q", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
