// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/mqtt"
	"github.com/fieldgate/fieldgate/daemon/mqtt/mqtttest"
)

const fleetPrefix = "fieldgate/v1"

// heartbeatStatus is a status document with the heartbeat period that
// newer gateways publish (seconds).
type heartbeatStatus struct {
	api.Gateway
	Heartbeat int `json:"heartbeat,omitempty"`
}

// fleetDoc is one retained document of the synthetic fleet.
type fleetDoc struct {
	topic   string
	payload []byte
}

func docJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// syntheticFleet returns the retained documents of n gateways in sites
// s0, s1, s2 (gateway i in site i%3), made from the api types, two devices
// each (acme-io16-rev3 and acme-plc), and the documents that make the
// special cases below. Gateway gw003 is left without a status: the test
// gives it a real last will.
func syntheticFleet(t testing.TB, n int, now time.Time) []fleetDoc {
	var docs []fleetDoc
	add := func(topic string, v any) {
		docs = append(docs, fleetDoc{fleetPrefix + "/" + topic, docJSON(t, v)})
	}
	for i := range n {
		site, id := fmt.Sprintf("s%d", i%3), fmt.Sprintf("gw%03d", i)
		p := site + "/" + id
		version := "1.5.0"
		if i%4 == 0 {
			version = "1.4.2"
		}
		st := heartbeatStatus{Gateway: api.Gateway{Online: true, ID: id, Site: site, Version: version, Time: now,
			State: "running", Healthy: true, Health: []api.Condition{}, BrokerConnected: true}, Heartbeat: 60}
		switch i {
		case 1, 2: // stale: the last status is 10 minutes old, the heartbeat 60 s
			st.Time = now.Add(-10 * time.Minute)
		case 11: // old, but no heartbeat: an older gateway, online
			st.Time, st.Heartbeat = now.Add(-time.Hour), 0
		case 14: // two health conditions
			st.Healthy, st.State = false, "degraded"
			st.Health = []api.Condition{{Name: "clock-unsynced", Severity: "warning", Since: now}, {Name: "disk-low", Severity: "error", Since: now}}
		}
		switch i {
		case 3: // the last will, given by the test
		case 5, 6: // planned stop
			add(p+"/status", mqtt.StatusPayload{Online: false, Gateway: id, Site: site, ClientID: "fieldgated-" + id, Reason: "shutdown", Time: now.Format(time.RFC3339)})
		default:
			add(p+"/status", st)
		}
		io := api.Device{ID: "io1", Protocol: "xmodem", Group: "line1", HardwareID: "acme-io16-rev3", Version: "2.4.1", State: "idle", Updated: now}
		plc := api.Device{ID: "plc1", Protocol: "tftp", Group: "line1", HardwareID: "acme-plc", Version: "7.0", State: "idle", Updated: now}
		if i%2 == 0 {
			io.Version = "2.5.0"
		}
		switch i {
		case 7: // needs recovery
			io.State, io.Recovery, io.Version = "needs-recovery", "interrupted during activate", ""
		case 8: // its last step failed; the update is held
			plc.Held = []api.Hold{{Target: "acme-plc/7.1.bin", Version: "7.1", SHA256: strings.Repeat("ab", 32), Reason: "failed", Since: now}}
			add(p+"/jobs/7.1-abababab-line1", api.Job{ID: "7.1-abababab-line1", Target: "acme-plc/7.1.bin", Version: "7.1", Phase: "partially-failed",
				Created: now.Add(-time.Hour), Updated: now.Add(-time.Minute), Steps: []api.Step{{Device: "plc1", Phase: api.StepFailed, Error: "verify"}}})
			add(p+"/jobs/7.0-cdcdcdcd-line1", api.Job{ID: "7.0-cdcdcdcd-line1", Target: "acme-plc/7.0.bin", Version: "7.0", Phase: "succeeded",
				Created: now.Add(-48 * time.Hour), Updated: now.Add(-47 * time.Hour), Steps: []api.Step{{Device: "plc1", Phase: api.StepCommitted}}})
		case 9: // a job running; an older one rolled back, then this one
			io.State, io.Job = "transfer", "2.5.0-efefefef-line1"
			add(p+"/jobs/2.5.0-efefefef-line1", api.Job{ID: "2.5.0-efefefef-line1", Phase: "running", Updated: now,
				Steps: []api.Step{{Device: "io1", Phase: "transfer"}}})
			add(p+"/jobs/2.4.9-01010101-line1", api.Job{ID: "2.4.9-01010101-line1", Phase: "failed", Updated: now.Add(-time.Hour),
				Steps: []api.Step{{Device: "io1", Phase: api.StepRolledBack}}})
		case 10: // two holds
			io.Held = []api.Hold{{SHA256: strings.Repeat("01", 32), Reason: "rolled back", Since: now}, {SHA256: strings.Repeat("02", 32), Reason: "cancelled", Since: now}}
		}
		add(p+"/devices/io1", io)
		add(p+"/devices/plc1", plc)
	}
	big := fmt.Sprintf(`{"id":"big","phase":"running","reason":%q}`, strings.Repeat("x", 70<<10))
	docs = append(docs,
		fleetDoc{fleetPrefix + "/s0/bad1/status", []byte(`{"online":true,"gateway":`)},  // malformed
		fleetDoc{fleetPrefix + "/s0/bad2/status", []byte(`[1,2]`)},                      // not an object
		fleetDoc{fleetPrefix + "/s1/gw004/devices/x", []byte(`{"id":"x","version":5}`)}, // wrong type
		fleetDoc{fleetPrefix + "/s2/gw005/jobs/big", []byte(big)},                       // over 64 KiB
		fleetDoc{fleetPrefix + "//gw999/status", []byte(`{"online":true}`)},             // empty site level
	)
	return docs
}

// wantFleet is what the synthetic fleet of 50 gateways shows.
const wantSummary50 = "50 gateways: 45 online, 2 stale, 3 offline (1 lost, 2 shutdown); 100 devices; 1 jobs running; 2 failures; 3 holds"

const wantIgnored50 = "5 documents ignored (1 topic that does not fit, 1 malformed JSON, 1 over 64 KiB, 2 wrong type)"

// lostWill connects as gateway gw003 through a TCP proxy with the last
// will fieldgated sets, then cuts the proxy, so that the broker publishes
// the will as it would after a power cut.
func lostWill(t *testing.T, broker *mqtttest.Mosquitto) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", broker.Port()))
			if err != nil {
				c.Close()
				return
			}
			mu.Lock()
			conns = append(conns, c, u)
			mu.Unlock()
			go io.Copy(u, c)
			go io.Copy(c, u)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	topic := fleetPrefix + "/s0/gw003/status"
	will := mqtt.StatusPayload{Online: false, Gateway: "gw003", Site: "s0", ClientID: "fieldgated-gw003", Reason: "lost"}
	gw, err := mqtt.Dial(ctx, mqtt.Config{Broker: "tcp://" + ln.Addr().String()}, "fieldgated-gw003",
		&mqtt.Will{Topic: topic, Payload: docJSON(t, will), QoS: 1, Retained: true}, func(string, []byte) {})
	if err != nil {
		t.Fatal(err)
	}
	online := docJSON(t, heartbeatStatus{Gateway: api.Gateway{Online: true, ID: "gw003", Site: "s0", Version: "1.5.0", Time: time.Now().UTC()}, Heartbeat: 60})
	if err := gw.Publish(ctx, topic, 1, true, online); err != nil {
		t.Fatal(err)
	}
	ln.Close()
	mu.Lock()
	for _, c := range conns {
		c.Close()
	}
	mu.Unlock()
	<-gw.Lost()

	got := make(chan []byte, 16)
	watch, err := mqtt.Dial(ctx, mqtt.Config{Broker: broker.URL()}, "will-check", nil, func(_ string, p []byte) { got <- bytes.Clone(p) })
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(0)
	if err := watch.Subscribe(ctx, topic, 1); err != nil {
		t.Fatal(err)
	}
	for { // the broker publishes the will when it notices the closed socket
		select {
		case p := <-got:
			if bytes.Contains(p, []byte(`"reason":"lost"`)) {
				return
			}
		case <-ctx.Done():
			t.Fatal("the broker never published gw003's last will")
		}
	}
}

// publishFleet publishes docs retained, QoS 1, on one connection.
func publishFleet(t testing.TB, url string, docs []fleetDoc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := mqtt.Dial(ctx, mqtt.Config{Broker: url}, "fleet-publisher", nil, func(string, []byte) {})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(time.Second)
	for _, d := range docs {
		if err := c.Publish(ctx, d.topic, 1, true, d.payload); err != nil {
			t.Fatal(err)
		}
	}
}

func fleetRowOf(v fleetView, site, id string) fleetRow {
	for _, r := range v.Gateways {
		if r.Site == site && r.Gateway == id {
			return r
		}
	}
	return fleetRow{}
}

// TestInteropFleet publishes the retained documents of 50 gateways in 3
// sites to a real mosquitto (one offline by its real last will, two by a
// planned stop, two stale, failures, holds, a running job, and five
// hostile documents) and checks the table, the JSON and --site.
func TestInteropFleet(t *testing.T) {
	broker := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
	now := time.Now().UTC()
	publishFleet(t, broker.URL(), syntheticFleet(t, 50, now))
	lostWill(t, broker)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"fleet", "--broker", broker.URL(), "--json"}, &out, &errOut); err != nil {
		t.Fatalf("fleet --json: %v\n%s", err, errOut.String())
	}
	var v fleetView
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Fatalf("fleet --json printed %q: %v", out.String(), err)
	}
	want := fleetSummary{Gateways: 50, Online: 45, Stale: 2, Offline: 3, OfflineLost: 1, OfflineShutdown: 2, Devices: 100, JobsRunning: 1, Failures: 2, Holds: 3}
	if v.Summary != want {
		t.Errorf("fleet --json summary = %+v, want %+v", v.Summary, want)
	}
	if want := (fleetIgnored{Total: 5, Reasons: map[string]int{ignoredMalformed: 1, ignoredType: 2, ignoredSize: 1, ignoredTopic: 1}}); fmt.Sprint(v.Ignored) != fmt.Sprint(want) {
		t.Errorf("fleet --json ignored = %v, want %v", v.Ignored, want)
	}
	if len(v.Gateways) != 50 || v.Gateways[0].Site != "s0" || v.Gateways[0].Gateway != "gw000" || v.Gateways[49].Gateway != "gw047" {
		t.Errorf("fleet --json lists %d gateways, from %+v, want 50 sorted by site and gateway", len(v.Gateways), v.Gateways[0])
	}
	for _, c := range []struct {
		site, id string
		check    func(fleetRow) bool
		want     string
	}{
		{"s0", "gw003", func(r fleetRow) bool { return r.State == fleetOfflineLost && r.StatusTime == nil && r.Devices == 2 }, "offline-lost by its will"},
		{"s2", "gw005", func(r fleetRow) bool { return r.State == fleetOfflineShutdown }, "offline-shutdown"},
		{"s1", "gw001", func(r fleetRow) bool { return r.State == fleetStale && r.Heartbeat == 60 }, "stale, heartbeat 60"},
		{"s2", "gw011", func(r fleetRow) bool { return r.State == fleetOnline && r.Heartbeat == 0 }, "online without a heartbeat"},
		{"s1", "gw007", func(r fleetRow) bool { return r.Failures == 1 && r.Holds == 0 }, "1 failure (needs recovery)"},
		{"s2", "gw008", func(r fleetRow) bool {
			return r.Failures == 1 && r.Holds == 1 && r.JobsOpen == 0 && r.Version == "1.4.2"
		}, "1 failure, 1 hold, fieldgated 1.4.2"},
		{"s0", "gw009", func(r fleetRow) bool { return r.Failures == 0 && r.JobsRunning == 1 && r.JobsOpen == 1 }, "a running job, no failure (the rollback was before it)"},
		{"s1", "gw010", func(r fleetRow) bool { return r.Holds == 2 }, "2 holds"},
		{"s2", "gw014", func(r fleetRow) bool { return r.Health == 2 }, "2 health conditions"},
	} {
		if r := fleetRowOf(v, c.site, c.id); !c.check(r) {
			t.Errorf("fleet --json row %s/%s = %+v, want %s", c.site, c.id, r, c.want)
		}
	}
	// Versions: counted from the documents published.
	counts := map[string]int{}
	for i := range 50 {
		io := "2.4.1"
		if i%2 == 0 {
			io = "2.5.0"
		}
		if i == 7 {
			io = ""
		}
		counts[fmt.Sprintf("s%d acme-io16-rev3 %s", i%3, io)]++
		counts[fmt.Sprintf("s%d acme-plc 7.0", i%3)]++
	}
	got := map[string]int{}
	for _, x := range v.Versions {
		got[x.Site+" "+x.Hardware+" "+x.Version] = x.Devices
	}
	if fmt.Sprint(got) != fmt.Sprint(counts) {
		t.Errorf("fleet --json versions = %v, want %v", got, counts)
	}

	out.Reset()
	if err := run(ctx, []string{"fleet", "--broker", broker.URL(), "--utc"}, &out, &errOut); err != nil {
		t.Fatalf("fleet: %v\n%s", err, errOut.String())
	}
	text := out.String()
	for _, want := range []string{"\n" + wantSummary50 + "\n", "\n" + wantIgnored50 + "\n", "\nVERSIONS\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("fleet printed\n%s\nwant %q", text, want)
		}
	}
	for _, want := range [][]string{
		{"s0", "gw003", "offline-lost", "-", "2", "0", "0", "0", "0", "-"},
		{"s2", "gw005", "offline-shutdown", "-", "2", "0", "0", "0", "0", now.Format("2006-01-02")},
		{"s0", "gw009", "online", "1.5.0", "2", "1", "0", "0", "0"},
		{"s2", "gw008", "online", "1.4.2", "2", "0", "1", "1", "0"},
		{"s1", "acme-io16-rev3", "-", "1"},
	} {
		found := false
		for _, l := range strings.Split(text, "\n") {
			if f := strings.Fields(l); len(f) >= len(want) && slices.Equal(f[:len(want)], want) {
				found = true
			}
		}
		if !found {
			t.Errorf("fleet printed\n%s\nwant a row starting %q", text, want)
		}
	}

	out.Reset()
	if err := run(ctx, []string{"fleet", "--broker", broker.URL(), "--site", "s1", "--json"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	v = fleetView{}
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || v.Summary.Gateways != 17 || v.Site != "s1" || v.Ignored.Total != 1 {
		t.Errorf("fleet --site s1 --json = %+v, %v; want the 17 gateways of s1 and its one ignored document", v.Summary, err)
	}
}

// TestInteropFleetWatch follows a change with --watch when stdout is not
// a terminal: a line per change.
func TestInteropFleetWatch(t *testing.T) {
	broker := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
	now := time.Now().UTC()
	publishFleet(t, broker.URL(), syntheticFleet(t, 6, now))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := &lockedBuffer{wrote: make(chan struct{}, 1)}
	var errOut bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"fleet", "--broker", broker.URL(), "--watch", "--interval", "50ms"}, out, &errOut)
	}()
	waitFor := func(want string) {
		t.Helper()
		for !strings.Contains(out.String(), want) {
			select {
			case <-out.wrote:
			case err := <-done:
				t.Fatalf("fleet --watch ended: %v\n%s", err, errOut.String())
			case <-ctx.Done():
				t.Fatalf("fleet --watch printed\n%s\nwant %q", out.String(), want)
			}
		}
	}
	waitFor("gateway s1/gw004 online fieldgated 1.4.2 devices 2")
	publishFleet(t, broker.URL(), []fleetDoc{
		{fleetPrefix + "/s1/gw004/status", docJSON(t, mqtt.StatusPayload{Online: false, ClientID: "fieldgated-gw004", Reason: "lost"})},
		{fleetPrefix + "/s0/gw000/devices/plc1", nil}, // cleared
	})
	waitFor("gateway s1/gw004 offline-lost fieldgated - devices 2")
	waitFor("version s0 acme-plc 7.0: 1 devices")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("fleet --watch = %v, want nil on cancel", err)
	}
	if strings.Contains(out.String(), "\x1b") {
		t.Errorf("fleet --watch into a pipe printed escape codes:\n%q", out.String())
	}
}

// TestInteropFleetTimeout: a broker whose ACL silently drops the probe
// (mosquitto acknowledges a denied publish and subscription, and delivers
// nothing) makes a clear error after --timeout, not a hang or a partial
// table.
func TestInteropFleetTimeout(t *testing.T) {
	bin := mqtttest.NeedPeer(t, "mosquitto", "mosquitto")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nacl_file %s/acl\n", port, dir)
	if os.Geteuid() == 0 {
		conf += "user root\n"
	}
	if err := os.WriteFile(dir+"/acl", []byte("topic readwrite fieldgate/v1/+/+/status\ntopic readwrite fieldgate/v1/+/+/devices/+\ntopic readwrite fieldgate/v1/+/+/jobs/+\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/mosquitto.conf", []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", dir+"/mosquitto.conf")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	url := fmt.Sprintf("tcp://127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto never listened: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling a port the peer opens; not a timing assertion
	}
	publishFleet(t, url, syntheticFleet(t, 3, time.Now().UTC()))
	var out, errOut bytes.Buffer
	err = run(context.Background(), []string{"fleet", "--broker", url, "--timeout", "2s"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "never echoed the probe") || !strings.Contains(err.Error(), "documents had arrived") || out.Len() > 0 {
		t.Errorf("fleet against a broker that drops the probe = %v, printed %q; want an error naming the probe and no table", err, out.String())
	}
}

// TestFleetView checks the model without a broker: states, counts,
// clearing, limits, and what is ignored.
func TestFleetView(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	lim := defaultFleetLimits()
	lim.gateways, lim.devices = 3, 4
	f := newFleet(fleetPrefix, lim)
	apply := func(topic, payload string) { f.apply(fleetPrefix+"/"+topic, []byte(payload)) }
	apply("a/g1/status", `{"online":true,"version":"1.0","time":"2026-05-01T11:59:00Z","heartbeat":"30s"}`)
	apply("a/g2/status", `{"online":true,"time":"2026-05-01T11:58:00Z","heartbeat":30}`)
	apply("a/g3/devices/d1", `{"id":"d1","hardware_id":"hw","version":"1"}`)
	apply("a/g4/status", `{"online":true}`)                                  // over the gateway limit
	apply("a/g1/devices/d1", `{"id":"d1","hardware_id":"hw","version":"1"}`) // device 2
	apply("a/g1/devices/d1", `{"id":"d1","hardware_id":"hw","version":"2"}`) // replaces it
	apply("a/g1/devices/d2", `{"id":"d2","hardware_id":"hw","version":"2"}`)
	apply("a/g1/devices/d3", `{"id":"d3","hardware_id":"hw","version":"2"}`)
	apply("a/g1/devices/d4", `{"id":"d4","hardware_id":"hw","version":"2"}`) // over the device limit
	apply("a/g1/devices/d5/x", `{}`)
	apply("a/g1/status/x", `{}`)
	apply("a/g\x1b[2J/status", `{"online":true}`)
	apply("a/g1/devices/d9", `null`)
	apply("a/g1/devices/d9", `{"id":1}`)
	apply("a/g1/devices/d9", `{"id":"d9"`)
	v := f.view(now, "")
	if got := summaryLine(v); got != "3 gateways: 1 online, 1 stale, 0 offline (0 lost, 0 shutdown), 1 without status; 4 devices; 0 jobs running; 0 failures; 0 holds" {
		t.Errorf("summary = %q", got)
	}
	if got, want := ignoredLine(v.Ignored), "8 documents ignored (3 topic that does not fit, 1 malformed JSON, 2 over the tracking limits, 2 wrong type)"; got != want {
		t.Errorf("ignored = %q, want %q", got, want)
	}
	if got := fmt.Sprint(v.Versions); got != "[{a hw 1 1} {a hw 2 3}]" {
		t.Errorf("versions = %s, want [{a hw 1 1} {a hw 2 3}]", got)
	}
	apply("a/g3/devices/d1", "")
	apply("a/g1/devices/d1", "")
	if _, ok := f.gateways[gatewayKey{"a", "g3"}]; ok || f.devices != 2 {
		t.Errorf("after clearing: g3 kept %v, %d devices tracked, want g3 gone and 2 devices", ok, f.devices)
	}
	if got := fmt.Sprint(f.view(now, "").Versions); got != "[{a hw 2 2}]" {
		t.Errorf("versions after clearing = %s", got)
	}
}

// TestFleetJSONFields pins the names of --json's fields: scripts read them.
func TestFleetJSONFields(t *testing.T) {
	tm := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	v := fleetView{Time: tm, Prefix: fleetPrefix, Site: "s", Gateways: []fleetRow{{StatusTime: &tm}}, Versions: []fleetVersion{{}},
		Ignored: fleetIgnored{Reasons: map[string]int{}}}
	var m map[string]any
	json.Unmarshal(docJSON(t, v), &m)
	keys := func(x any) string {
		var ks []string
		for k := range x.(map[string]any) {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return strings.Join(ks, " ")
	}
	for _, c := range []struct {
		what string
		obj  any
		want string
	}{
		{"view", m, "gateways ignored prefix site summary time versions"},
		{"summary", m["summary"], "devices failures gateways holds jobs_running offline offline_lost offline_shutdown online stale unknown"},
		{"gateway", m["gateways"].([]any)[0], "devices failures gateway health_conditions heartbeat_s holds jobs_open jobs_running site state status_time version"},
		{"version", m["versions"].([]any)[0], "devices hardware_id site version"},
		{"ignored", m["ignored"], "reasons total"},
	} {
		if got := keys(c.obj); got != c.want {
			t.Errorf("fleet --json %s fields = %q, want %q", c.what, got, c.want)
		}
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{"": "-", "gw1": "gw1", "a\x1b[2Jb": "a?[2Jb", "\xff": "?", strings.Repeat("x", 70): strings.Repeat("x", 64) + "…"} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzFleetApply feeds hostile documents to the model: it must never
// panic, never track more than its limits, and its view must add up.
func FuzzFleetApply(f *testing.F) {
	f.Add("s/g/status", []byte(`{"online":true,"heartbeat":1e308,"health":[{}]}`))
	f.Add("s/g/devices/d", []byte(`{"id":"d","held":[{}],"recovery":"x"}`))
	f.Add("s/g/jobs/j", []byte(`{"phase":"running","devices":[{"device":"d","phase":"failed"}]}`))
	f.Add("s/g/jobs/j", []byte(``))
	f.Add("s//status", []byte(`{"online":"yes"}`))
	f.Add("s/g/status", []byte(`{"heartbeat":"-5s","time":"never"}`))
	lim := fleetLimits{gateways: 2, devices: 2, jobs: 2, steps: 3, doc: 256, level: 8}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		fl := newFleet(fleetPrefix, lim)
		for _, p := range [][]byte{payload, []byte(`{"id":"d","hardware_id":"h"}`), payload, nil} {
			fl.apply(fleetPrefix+"/"+topic, p)
			fl.apply(fleetPrefix+"/s/g/devices/"+topic, p)
			fl.apply(fleetPrefix+"/s/h/jobs/"+topic, p)
		}
		if len(fl.gateways) > lim.gateways || fl.devices > lim.devices || fl.jobs > lim.jobs || fl.steps > lim.steps {
			t.Fatalf("tracking %d gateways, %d devices, %d jobs, %d steps: over %+v", len(fl.gateways), fl.devices, fl.jobs, fl.steps, lim)
		}
		v := fl.view(time.Now(), "")
		n := 0
		for _, x := range v.Versions {
			n += x.Devices
		}
		if n != v.Summary.Devices || n != fl.devices {
			t.Fatalf("versions count %d devices, summary %d, model %d", n, v.Summary.Devices, fl.devices)
		}
		r := newFleetRenderer(io.Discard, fleetOptions{})
		r.table(io.Discard, v)
		fleetRows(v)
	})
}

// BenchmarkInteropFleet measures fieldgatectl fleet against mosquitto
// holding the retained documents of 200 gateways (about 630 documents):
// the time to the first full table (connect, subscribe, backlog, render)
// and the heap the model holds.
func BenchmarkInteropFleet(b *testing.B) {
	broker := mqtttest.StartMosquitto(b, mqtttest.MosquittoOptions{})
	publishFleet(b, broker.URL(), syntheticFleet(b, 200, time.Now().UTC()))
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if err := run(ctx, []string{"fleet", "--broker", broker.URL()}, io.Discard, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	f := newFleet(fleetPrefix, defaultFleetLimits())
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, d := range syntheticFleet(b, 200, time.Now().UTC()) {
		f.apply(d.topic, d.payload)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc), "model-heap-B")
	runtime.KeepAlive(f)
}
