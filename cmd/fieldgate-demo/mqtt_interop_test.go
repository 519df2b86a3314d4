// SPDX-License-Identifier: Apache-2.0

package main

// End-to-end MQTT interop: the real binaries (fieldgated, fieldgatectl,
// fieldgate-repo, fieldgate-sim) against a mosquitto broker started by the
// test, observed with mosquitto's own clients. Debian packages: mosquitto,
// mosquitto-clients.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/mqtt/mqtttest"
)

const gwPrefix = "fieldgate/v1/demo/gw1" // the scenario's gateway (site demo, id gw1)

// mosquitto is a broker started by a test on a free loopback port, with
// its own config and persistence in a temp dir.
type mosquitto struct{ *mqtttest.Mosquitto }

// startMosquitto starts mosquitto; the tests also need its clients.
func startMosquitto(t testing.TB) *mosquitto {
	t.Helper()
	mqtttest.NeedPeer(t, "mosquitto", "mosquitto")
	mqtttest.NeedPeer(t, "mosquitto_sub", "mosquitto-clients")
	return &mosquitto{mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{StartTimeout: 10 * time.Second})}
}

// retained runs a fresh `mosquitto_sub -C n -v -t filter [-t more…]` and returns the
// last payload per topic.
func (m *mosquitto) retained(t testing.TB, filter string, n int, more ...string) (map[string]string, error) {
	t.Helper()
	bin := mqtttest.NeedPeer(t, "mosquitto_sub", "mosquitto-clients")
	args := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(m.Port()), "-C", strconv.Itoa(n), "-W", "10", "-v", "-t", filter}
	for _, f := range more {
		args = append(args, "-t", f)
	}
	out, err := exec.Command(bin, args...).Output()
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if topic, payload, ok := strings.Cut(l, " "); ok {
			got[topic] = payload
		}
	}
	if err != nil {
		return got, fmt.Errorf("mosquitto_sub -C %d -t %s: %w (got %d topics)", n, filter, err, len(got))
	}
	return got, nil
}

// eventLog collects the events a mosquitto_sub with a persistent session
// receives, in arrival order.
type eventLog struct {
	mu     sync.Mutex
	seqs   []uint64
	probed bool
	bad    []string
}

func (l *eventLog) snapshot() ([]uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.seqs), l.probed
}

const probeTopic = "fieldgate-interop/probe"

// subscribeEvents starts mosquitto_sub as a central consumer with a
// persistent session (-c -i, QoS 1), so the broker keeps its queue across
// a broker restart, and waits until it is subscribed.
func (m *mosquitto) subscribeEvents(t *testing.T, ctx context.Context) *eventLog {
	t.Helper()
	bin := mqtttest.NeedPeer(t, "mosquitto_sub", "mosquitto-clients")
	pub := mqtttest.NeedPeer(t, "mosquitto_pub", "mosquitto-clients")
	sub := exec.Command(bin, "-h", "127.0.0.1", "-p", strconv.Itoa(m.Port()), "-c", "-i", "fieldgate-interop-central",
		"-q", "1", "-v", "-t", gwPrefix+"/events", "-t", probeTopic)
	stdout, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	l := &eventLog{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			topic, payload, _ := strings.Cut(sc.Text(), " ")
			l.mu.Lock()
			if topic == probeTopic {
				l.probed = true
			} else {
				var e api.Event
				if json.Unmarshal([]byte(payload), &e) != nil || e.Seq == 0 {
					l.bad = append(l.bad, payload)
				} else {
					l.seqs = append(l.seqs, e.Seq)
				}
			}
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() { sub.Process.Kill(); sub.Wait(); <-done })
	for {
		exec.Command(pub, "-h", "127.0.0.1", "-p", strconv.Itoa(m.Port()), "-q", "1", "-t", probeTopic, "-m", "probe").Run()
		if _, ok := l.snapshot(); ok {
			return l
		}
		select {
		case <-ctx.Done():
			t.Fatal("mosquitto_sub never subscribed")
		case <-time.After(100 * time.Millisecond): // waiting for a peer process; not a timing assertion
		}
	}
}

// localStatus asks fieldgated over its socket (independent of the broker).
func localStatus(ctx context.Context, env *Env) (api.Status, error) {
	var out bytes.Buffer
	var st api.Status
	if err := runToolTo(ctx, env.o, &out, "fieldgatectl", "--socket", env.Socket, "status", "--json"); err != nil {
		return st, err
	}
	err := json.Unmarshal(out.Bytes(), &st)
	return st, err
}

// pollStatus polls the local status until cond holds or ctx ends.
func pollStatus(ctx context.Context, env *Env, what string, cond func(api.Status) bool) (api.Status, error) {
	for {
		st, err := localStatus(ctx, env)
		if err == nil && cond(st) {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("waiting for %s: %w (last status error: %v)", what, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// checkFinalRetained checks, with a fresh mosquitto_sub, that the retained
// tree shows the gateway online, every device at the new version and idle,
// and the job succeeded. The daemon delivers asynchronously, so it retries
// until ctx ends.
func checkFinalRetained(t *testing.T, ctx context.Context, m *mosquitto, env *Env) map[string]string {
	t.Helper()
	var problems []string
	var got map[string]string
	for {
		var err error
		// status, devices, one job (the inventory and advisories documents
		// are retained too, but are not what this checks)
		got, err = m.retained(t, gwPrefix+"/status", 2+len(env.IDs), gwPrefix+"/devices/+", gwPrefix+"/jobs/+")
		problems = nil
		if err != nil {
			problems = append(problems, err.Error())
		}
		var g api.Gateway
		if err := json.Unmarshal([]byte(got[gwPrefix+"/status"]), &g); err != nil || !g.Online {
			problems = append(problems, fmt.Sprintf("status = %q, want online true", got[gwPrefix+"/status"]))
		}
		for _, id := range env.IDs {
			var d api.Device
			p := got[gwPrefix+"/devices/"+id]
			if err := json.Unmarshal([]byte(p), &d); err != nil || d.Version != newVersion || d.State != "idle" {
				problems = append(problems, fmt.Sprintf("device %s = %q, want version %s and state idle", id, p, newVersion))
			}
		}
		jobs := 0
		for topic, p := range got {
			if !strings.HasPrefix(topic, gwPrefix+"/jobs/") {
				continue
			}
			jobs++
			var j api.Job
			if err := json.Unmarshal([]byte(p), &j); err != nil || j.Phase != "succeeded" {
				problems = append(problems, fmt.Sprintf("%s = %q, want phase succeeded", topic, p))
			}
		}
		if jobs != 1 {
			problems = append(problems, fmt.Sprintf("%d retained jobs, want 1", jobs))
		}
		if len(problems) == 0 {
			return got
		}
		select {
		case <-ctx.Done():
			t.Errorf("a fresh mosquitto_sub on %s/#:\n  %s", gwPrefix, strings.Join(problems, "\n  "))
			return got
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func interopSetup(t *testing.T, ctx context.Context, m *mosquitto, devices, baud int) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("interop test builds and runs every binary")
	}
	bin := buildAll(t)
	env, err := Setup(ctx, Options{Bin: bin, Work: filepath.Join(t.TempDir(), "work"), Out: output(t),
		Devices: devices, Baud: baud, Broker: m.URL()})
	if env != nil {
		t.Cleanup(env.Close)
	}
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("work dir: %s", env.Work)
		}
	})
	return env
}

// TestInteropRetainedStateThenLastWill runs the update through mosquitto:
// afterwards a fresh mosquitto_sub sees the retained gateway status
// (online), every device at the new version and the job succeeded; after
// kill -9 of fieldgated it sees the retained last will.
func TestInteropRetainedStateThenLastWill(t *testing.T) {
	m := startMosquitto(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	env := interopSetup(t, ctx, m, 2, -1)
	if err := env.StartDaemon(); err != nil {
		t.Fatal(err)
	}
	if _, err := waitSettled(ctx, env); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	got := checkFinalRetained(t, rctx, m, env)
	rcancel()
	t.Logf("retained after the update:\n%s", formatTopics(got))

	env.KillDaemon()
	will, last := waitLastWill(t, m, gwPrefix)
	if will.Reason != "lost" || will.ClientID != "fieldgated-gw1" {
		t.Errorf("last will = %s, want reason lost and client_id fieldgated-gw1", last)
	}
	t.Logf("retained status after kill -9: %s", last)
}

// lastWill is the status payload the broker publishes for a gateway that
// went away (mqtt.StatusPayload as a reader sees it).
type lastWill struct {
	Online   bool   `json:"online"`
	ClientID string `json:"client_id"`
	Reason   string `json:"reason"`
	Gateway  string `json:"gateway"`
	Site     string `json:"site"`
}

// waitLastWill waits until the retained status of the gateway at gwPrefix
// is its last will (online false), after the daemon was killed, and
// returns it decoded and as published.
func waitLastWill(t *testing.T, m *mosquitto, gwPrefix string) (lastWill, string) {
	t.Helper()
	var will lastWill
	var last string
	for deadline := time.Now().Add(20 * time.Second); ; {
		got, err := m.retained(t, gwPrefix+"/status", 1)
		last = got[gwPrefix+"/status"]
		if err == nil && json.Unmarshal([]byte(last), &will) == nil && !will.Online {
			return will, last
		}
		if time.Now().After(deadline) {
			t.Fatalf("retained status after kill -9 = %q (%v), want the last will {\"online\":false,…}", last, err)
		}
		time.Sleep(200 * time.Millisecond) // the broker notices the closed socket; not a timing assertion
	}
}

// TestInteropBrokerOutageDuringJob stops mosquitto while a device is
// being written and restarts it a few seconds later: the update goes on
// regardless, a central consumer with a persistent session receives every
// audit event 1..N at least once, and the retained tree ends right.
func TestInteropBrokerOutageDuringJob(t *testing.T) {
	m := startMosquitto(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	env := interopSetup(t, ctx, m, 2, 0)
	events := m.subscribeEvents(t, ctx)
	if err := env.StartDaemon(); err != nil {
		t.Fatal(err)
	}
	type pos struct {
		phase string
		done  int64
	}
	where := func(st api.Status) pos {
		for _, j := range st.Jobs {
			for _, s := range j.Steps {
				if s.Device == env.IDs[0] {
					p := pos{phase: s.Phase}
					if s.Progress != nil {
						p.done = s.Progress.Done
					}
					return p
				}
			}
		}
		return pos{}
	}
	st, err := pollStatus(ctx, env, "a device in transfer", func(st api.Status) bool {
		p := where(st)
		return p.phase == "transfer" && p.done > 0
	})
	if err != nil {
		t.Fatal(err)
	}
	before := where(st)
	seqBefore := lastAuditSeq(t, ctx, env)
	m.Stop()
	stopped := time.Now()
	// The outage lasts until the first device has been written, activated
	// and verified, so that the gateway makes events while the broker is away.
	st, err = pollStatus(ctx, env, "the device to get past verify during the outage", func(st api.Status) bool {
		switch where(st).phase {
		case "transfer", "activate", "verify":
			return false
		}
		return time.Since(stopped) > 2*time.Second
	})
	if err != nil {
		t.Fatalf("%v: the broker outage held up the update", err)
	}
	if st.Gateway.BrokerConnected {
		t.Errorf("local status during the outage says broker_connected true")
	}
	seqDuring := lastAuditSeq(t, ctx, env)
	if seqDuring <= seqBefore {
		t.Errorf("no audit event during the outage (last seq %d before, %d after)", seqBefore, seqDuring)
	}
	t.Logf("broker down for %v, from %s at %d bytes to %s; events %d..%d made meanwhile, outbox depth %d",
		time.Since(stopped).Round(100*time.Millisecond), before.phase, before.done, where(st).phase, seqBefore+1, seqDuring, st.Gateway.OutboxDepth)
	m.Start()

	if _, err := waitSettled(ctx, env); err != nil {
		t.Fatal(err)
	}
	n := lastAuditSeq(t, ctx, env)
	if n == 0 {
		t.Fatal("audit log is empty")
	}

	var seqs []uint64
	for deadline := time.Now().Add(30 * time.Second); ; {
		seqs, _ = events.snapshot()
		if missing := missingSeqs(seqs, n); len(missing) == 0 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("events missing at the central consumer after the outage: %v (of 1..%d; received %v)", missing, n, seqs)
		}
		time.Sleep(200 * time.Millisecond) // waiting for delivery; not a timing assertion
	}
	dups, outOfOrder := 0, 0
	seen := map[uint64]bool{}
	var high uint64
	for _, s := range seqs {
		if seen[s] {
			dups++
			continue
		}
		seen[s] = true
		if s < high {
			outOfOrder++
		}
		high = max(high, s)
	}
	if outOfOrder > 0 {
		t.Errorf("%d events arrived for the first time after a higher seq, want first arrivals in seq order: %v", outOfOrder, seqs)
	}
	events.mu.Lock()
	if len(events.bad) > 0 {
		t.Errorf("event payloads without a seq: %q", events.bad)
	}
	events.mu.Unlock()
	t.Logf("events 1..%d all received across the broker outage; %d messages, %d duplicates", n, len(seqs), dups)

	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	checkFinalRetained(t, rctx, m, env)
}

// lastAuditSeq returns the highest seq in fieldgated's audit log.
func lastAuditSeq(t *testing.T, ctx context.Context, env *Env) uint64 {
	t.Helper()
	var audit bytes.Buffer
	if err := runToolTo(ctx, env.o, &audit, "fieldgatectl", "--socket", env.Socket, "audit", "export"); err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, l := range strings.Split(strings.TrimSpace(audit.String()), "\n") {
		if l == "" {
			continue
		}
		var e struct{ Seq uint64 }
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("audit export line %q: %v", l, err)
		}
		n = max(n, e.Seq)
	}
	return n
}

// missingSeqs returns the numbers in 1..n that are not in seqs.
func missingSeqs(seqs []uint64, n uint64) []uint64 {
	have := map[uint64]bool{}
	for _, s := range seqs {
		have[s] = true
	}
	var missing []uint64
	for s := uint64(1); s <= n; s++ {
		if !have[s] {
			missing = append(missing, s)
		}
	}
	return missing
}

// TestInteropRemoteApprove sends `fieldgatectl remote approve` through
// mosquitto to a gateway whose group needs a remote approval: a forged
// and a wrongly bound approval are rejected with a result and an audit
// event and change nothing; the signed one succeeds and the update runs.
func TestInteropRemoteApprove(t *testing.T) {
	m := startMosquitto(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	env := interopSetup(t, ctx, m, 1, -1)

	ctl := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := runToolTo(ctx, env.o, &out, append([]string{"fieldgatectl"}, args...)...)
		return out.String(), err
	}
	key, forged := filepath.Join(env.Work, "ops-1.key"), filepath.Join(env.Work, "forger.key")
	pubOut, err := ctl("remote", "keygen", "--out", key)
	if err != nil {
		t.Fatalf("keygen: %v\n%s", err, pubOut)
	}
	pub := strings.TrimSpace(strings.SplitN(pubOut, "\n", 2)[0])
	if out, err := ctl("remote", "keygen", "--out", forged); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	// The scenario's config approves automatically; make group line1 need
	// a remote approval by key ops-1 (see the report: a Setup option would
	// be cleaner).
	cfg, err := os.ReadFile(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(cfg, []byte("approval: auto")) {
		t.Fatalf("scenario config has no \"approval: auto\" to change:\n%s", cfg)
	}
	cfg = bytes.Replace(cfg, []byte("approval: auto"), []byte("approval: remote"), 1)
	cfg = append(cfg, fmt.Sprintf("approvers:\n  - {name: ops-1, public_key: %s}\n", pub)...)
	if err := os.WriteFile(env.Config, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := env.StartDaemon(); err != nil {
		t.Fatal(err)
	}
	st, err := pollStatus(ctx, env, "a job awaiting approval", func(st api.Status) bool {
		return len(st.Jobs) > 0 && st.Jobs[0].Phase == "awaiting-approval"
	})
	if err != nil {
		t.Fatal(err)
	}
	job := st.Jobs[0]
	if job.Policy != "remote" {
		t.Fatalf("job approval_policy = %q, want remote", job.Policy)
	}
	common := []string{"--broker", m.URL(), "--gateway", gwPrefix, "--key-id", "ops-1", "--timeout", "20s"}
	approve := func(keyFile, sha string) (string, error) {
		return ctl(append([]string{"remote", "approve", job.ID, "--sha256", sha, "--key", keyFile}, common...)...)
	}

	for _, tt := range []struct {
		name, key, sha, want string
	}{
		{"forged", forged, job.SHA256, "rejected: bad-signature"},
		{"other image", key, strings.Repeat("0", 64), "rejected: approve " + job.ID + ": refused: approval is for image"},
	} {
		out, err := approve(tt.key, tt.sha)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Errorf("%s approval: fieldgatectl = %v, want exit status 1\n%s", tt.name, err, out)
		}
		if !strings.Contains(out, tt.want) {
			t.Errorf("%s approval printed:\n%s\nwant %q in it", tt.name, out, tt.want)
		}
	}
	if st, err := localStatus(ctx, env); err != nil || st.Jobs[0].Phase != "awaiting-approval" || len(st.Jobs[0].Approvals) != 0 {
		t.Errorf("after rejected approvals job = %+v (%v), want still awaiting-approval without approvals", st.Jobs, err)
	}

	out, err := approve(key, job.SHA256)
	if err != nil || !strings.Contains(out, "approve succeeded") {
		t.Fatalf("signed approval: fieldgatectl = %v, want exit 0 and \"approve succeeded\"\n%s", err, out)
	}
	t.Logf("fieldgatectl remote approve printed:\n%s", out)
	final, err := waitSettled(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	j := final.Jobs[0]
	if j.Phase != "succeeded" || len(j.Approvals) != 1 || j.Approvals[0].Kind != "remote" || j.Approvals[0].Actor != "key ops-1" {
		t.Errorf("job after the signed approval = phase %s approvals %+v, want succeeded with one remote approval by key ops-1", j.Phase, j.Approvals)
	}

	var audit bytes.Buffer
	if err := runToolTo(ctx, env.o, &audit, "fieldgatectl", "--socket", env.Socket, "audit", "export"); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(audit.String()), "\n") {
		var e struct{ Type string }
		json.Unmarshal([]byte(l), &e)
		counts[e.Type]++
	}
	// The forged command is rejected on arrival; the one for another image
	// is accepted (well-formed, signed) and then rejected by the job check.
	if counts["command-rejected"] != 2 || counts["command-accepted"] != 2 || counts["command-succeeded"] != 1 {
		t.Errorf("audit command events = rejected %d, accepted %d, succeeded %d; want 2, 2, 1",
			counts["command-rejected"], counts["command-accepted"], counts["command-succeeded"])
	}
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	checkFinalRetained(t, rctx, m, env)
}

func formatTopics(m map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "  %s %s\n", k, m[k])
	}
	return b.String()
}
