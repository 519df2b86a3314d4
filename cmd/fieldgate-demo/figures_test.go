// SPDX-License-Identifier: Apache-2.0

package main

// What one job costs on the wire: the JSON tree and the Sparkplug B node
// of the same fieldgated, counted by one subscriber on a real mosquitto.
// Not a test of anything: FIELDGATE_FIGURES=1 go test -run
// TestSparkplugVsJSONFigures -v ./cmd/fieldgate-demo prints the table for
// BENCHMARKS.md. Debian packages: mosquitto, mosquitto-clients.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/mqtt/mqtttest"
)

// figuresDevices is the job of the figures: one target for eight
// simulated Modbus TCP devices of one hardware id on loopback, each on
// its own segment, so that one job updates all eight in parallel.
const figuresDevices = 8

// wireCount is messages and payload bytes.
type wireCount struct{ msgs, bytes int }

func (c *wireCount) add(n int) { c.msgs++; c.bytes += n }

// wireTally sorts what one subscriber received into tree × phase × kind.
type wireTally struct {
	mu       sync.Mutex
	jobSeen  bool
	byKey    map[string]*wireCount // "json|before|devices" …
	received int
	jobStart int // index of the first message on {prefix}/jobs/
}

// kindOf names the kind of message on topic: the JSON tree's topic level
// below the prefix, or the Sparkplug message type.
func kindOf(topic string) (tree, kind string) {
	if rest, ok := strings.CutPrefix(topic, "spBv1.0/"); ok {
		parts := strings.Split(rest, "/")
		if len(parts) >= 2 {
			return "sparkplug", parts[1]
		}
		return "sparkplug", rest
	}
	rest := strings.TrimPrefix(topic, gwPrefix+"/")
	kind, _, _ = strings.Cut(rest, "/")
	if kind == "cmd" && strings.HasSuffix(rest, "/result") {
		kind = "cmd result"
	}
	return "json", kind
}

func (w *wireTally) add(topic string, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	tree, kind := kindOf(topic)
	if tree == "json" && kind == "jobs" && !w.jobSeen {
		w.jobSeen, w.jobStart = true, w.received
	}
	phase := "before"
	if w.jobSeen {
		phase = "job"
	}
	w.received++
	for _, k := range []string{tree + "|" + phase + "|" + kind, tree + "|" + phase + "|*", tree + "|*|*"} {
		if w.byKey[k] == nil {
			w.byKey[k] = &wireCount{}
		}
		w.byKey[k].add(n)
	}
}

func (w *wireTally) get(key string) wireCount {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c := w.byKey[key]; c != nil {
		return *c
	}
	return wireCount{}
}

// countAll subscribes with mosquitto_sub to the JSON tree and the
// Sparkplug topics and tallies topic and payload length of each message
// (-F '%l %t': the payloads are binary on Sparkplug); it returns once the
// subscription is in place.
func countAll(t *testing.T, ctx context.Context, m *mosquitto) (*wireTally, func()) {
	t.Helper()
	bin := mqtttest.NeedPeer(t, "mosquitto_sub", "mosquitto-clients")
	pub := mqtttest.NeedPeer(t, "mosquitto_pub", "mosquitto-clients")
	probe := "figures/probe"
	sub := exec.Command(bin, "-h", "127.0.0.1", "-p", strconv.Itoa(m.Port()), "-q", "1", "-F", "%l %t",
		"-t", "fieldgate/v1/#", "-t", "spBv1.0/#", "-t", probe)
	stdout, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	w := &wireTally{byKey: map[string]*wireCount{}}
	probed := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var once sync.Once
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			l, topic, _ := strings.Cut(sc.Text(), " ")
			n, err := strconv.Atoi(l)
			if err != nil {
				t.Errorf("mosquitto_sub printed %q", sc.Text())
				continue
			}
			if topic == probe {
				once.Do(func() { close(probed) })
				continue
			}
			w.add(topic, n)
		}
	}()
	var stopped sync.Once
	stop := func() { stopped.Do(func() { sub.Process.Kill(); sub.Wait(); <-done }) }
	t.Cleanup(stop)
	for {
		exec.Command(pub, "-h", "127.0.0.1", "-p", strconv.Itoa(m.Port()), "-t", probe, "-m", "probe").Run()
		select {
		case <-probed:
			return w, stop
		case <-ctx.Done():
			t.Fatal("mosquitto_sub never subscribed")
		case <-time.After(100 * time.Millisecond): // waiting for a peer process; not a timing assertion
		}
	}
}

// setupFigures signs one target for the figures' devices, serves it,
// starts the simulated devices and writes fieldgated's configuration with
// mosquitto as its broker and the Sparkplug node enabled.
func setupFigures(ctx context.Context, o Options) (*Env, error) {
	const hw, from, to = "acme-plc-m40", "3.0.0", "3.1.0"
	work, err := filepath.Abs(o.Work)
	if err != nil {
		return nil, err
	}
	e := &Env{o: o, Work: work, Bin: o.Bin, procs: &procGroup{}, start: time.Now()}
	os.RemoveAll(work)
	for _, d := range []string{"repo", "state", "sim"} {
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			return e, err
		}
	}
	repo, img := filepath.Join(work, "repo"), filepath.Join(work, "fw-"+to+".bin")
	for _, s := range [][]string{
		{"fieldgate-sim", "mkimage", "--hw", hw, "--version", to, "--size", strconv.Itoa(imageSize), "-o", img},
		{"fieldgate-repo", "init", repo, "--insecure-plaintext-keys"},
		{"fieldgate-repo", "add", repo, img, "--name", hw + "/fw-" + to + ".bin", "--hardware", hw, "--version", to,
			"--security-counter", "5", "--protocol", "modbus-tcp", "--severity", "medium"},
		{"fieldgate-repo", "commit", repo, "--insecure-plaintext-keys"},
	} {
		if err := runTool(ctx, o, o.Out, s...); err != nil {
			return e, err
		}
	}
	repoAddr, err := e.serveRepo(repo)
	if err != nil {
		return e, err
	}
	simCfg, devCfg := "devices:\n", ""
	for i := 1; i <= figuresDevices; i++ {
		id := fmt.Sprintf("plc%d", i)
		addr, err := freeAddr()
		if err != nil {
			return e, err
		}
		e.IDs = append(e.IDs, id)
		simCfg += fmt.Sprintf("  - {id: %s, kind: modbus-tcp, hardware_id: %s, version: %q, state_dir: %s, address: %s, options: {image_size: \"4096\", boot_time: \"100ms\"}}\n",
			id, hw, from, filepath.Join(work, "sim", id), addr)
		devCfg += fmt.Sprintf("  - {id: %s, group: line1, protocol: modbus-tcp, hardware_id: %s, address: %q, segment: %s, options: {poll_interval: \"100ms\", activate_timeout: \"10s\"}}\n",
			id, hw, addr, id)
	}
	simPath, simLogPath := filepath.Join(work, "sim.yaml"), filepath.Join(work, "sim.log")
	if err := os.WriteFile(simPath, []byte(simCfg), 0o644); err != nil {
		return e, err
	}
	simLog, err := os.Create(simLogPath)
	if err != nil {
		return e, err
	}
	if _, err := e.procs.start(o, simLog, "sim", "fieldgate-sim", "run", "--config", simPath); err != nil {
		return e, err
	}
	for _, id := range e.IDs {
		if err := waitLogLine(ctx, simLogPath, "device "+id+" ("); err != nil {
			return e, err
		}
	}
	e.BrokerAddr = strings.TrimPrefix(o.Broker, "tcp://")
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
  broker: %s
  sparkplug: {enabled: true}
windows:
  - {name: always, start: "0 0 * * *", duration: 24h, timezone: UTC}
groups:
  - {name: line1, window: always, approval: auto}
devices:
%s`, filepath.Join(work, "state"), e.Socket, figuresDevices, repoAddr, repoAddr,
		filepath.Join(repo, "repository", "metadata", "1.root.json"), o.Broker, devCfg)
	e.Config = filepath.Join(work, "fieldgated.yaml")
	return e, os.WriteFile(e.Config, []byte(cfg), 0o644)
}

// TestSparkplugVsJSONFigures counts, for one job of eight devices, the
// MQTT messages and payload bytes fieldgated publishes on its JSON tree
// (fieldgate/v1/#) and as a Sparkplug B edge node (spBv1.0/#), from its
// start until the job has ended and both have reported it: "before" is
// the connect and the first inventory (the JSON tree's first documents,
// Sparkplug's NBIRTH and DBIRTHs), "job" everything from the job's first
// document on.
func TestSparkplugVsJSONFigures(t *testing.T) {
	if os.Getenv("FIELDGATE_FIGURES") == "" {
		t.Skip("figures, not a test: FIELDGATE_FIGURES=1 go test -run TestSparkplugVsJSONFigures -v ./cmd/fieldgate-demo")
	}
	m := startMosquitto(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env, err := setupFigures(ctx, Options{Bin: buildAll(t), Work: filepath.Join(t.TempDir(), "work"), Out: output(t), Broker: m.URL()})
	if env != nil {
		t.Cleanup(env.Close)
	}
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	tally, stop := countAll(t, ctx, m)
	if err := env.StartDaemon(); err != nil {
		t.Fatal(err)
	}
	final, err := waitSettled(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	if len(final.Jobs) != 1 || final.Jobs[0].Phase != api.JobSucceeded || len(final.Jobs[0].Steps) != figuresDevices {
		t.Fatalf("jobs %+v, want one job of %d devices that succeeded", final.Jobs, figuresDevices)
	}
	if _, err := pollStatus(ctx, env, "an empty outbox", func(st api.Status) bool { return st.Gateway.OutboxDepth == 0 }); err != nil {
		t.Fatal(err)
	}
	// The Sparkplug node is fed once per turn of the update loop (at
	// least every 5 s): wait one more turn for its last DDATA.
	time.Sleep(6 * time.Second)
	stop()

	var b bytes.Buffer
	fmt.Fprintf(&b, "one job, %d simulated Modbus TCP devices, %d KiB image each, JSON tree and Sparkplug B on one mosquitto\n\n", figuresDevices, imageSize>>10)
	fmt.Fprintf(&b, "| tree | phase | kind | messages | payload bytes |\n| --- | --- | --- | ---: | ---: |\n")
	rows := []struct{ tree, phase, kinds string }{
		{"json", "before", "status devices jobs events"},
		{"json", "job", "status devices jobs events"},
		{"sparkplug", "before", "NBIRTH DBIRTH NDATA DDATA"},
		{"sparkplug", "job", "NBIRTH DBIRTH NDATA DDATA"},
	}
	for _, r := range rows {
		for _, k := range strings.Fields(r.kinds) {
			if c := tally.get(r.tree + "|" + r.phase + "|" + k); c.msgs > 0 {
				fmt.Fprintf(&b, "| %s | %s | %s | %d | %d |\n", r.tree, r.phase, k, c.msgs, c.bytes)
			}
		}
		c := tally.get(r.tree + "|" + r.phase + "|*")
		fmt.Fprintf(&b, "| %s | %s | **all** | **%d** | **%d** |\n", r.tree, r.phase, c.msgs, c.bytes)
	}
	for _, tree := range []string{"json", "sparkplug"} {
		c := tally.get(tree + "|*|*")
		fmt.Fprintf(&b, "| %s | total | | **%d** | **%d** |\n", tree, c.msgs, c.bytes)
	}
	j, s := tally.get("json|*|*"), tally.get("sparkplug|*|*")
	if j.msgs == 0 || s.msgs == 0 {
		t.Fatalf("counted %d JSON and %d Sparkplug messages: one of the trees published nothing\n%s", j.msgs, s.msgs, b.String())
	}
	fmt.Fprintf(&b, "\nSparkplug / JSON: %.2f of the messages, %.2f of the bytes\n", float64(s.msgs)/float64(j.msgs), float64(s.bytes)/float64(j.bytes))
	t.Logf("\n%s", b.String())
}
