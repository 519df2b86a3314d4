// SPDX-License-Identifier: Apache-2.0

package main

// fieldgatectl fleet: the centre's view of every gateway, read from the
// retained documents gateways publish (docs/mqtt.md): {prefix}/{site}/
// {gateway}/status, …/devices/{id} and …/jobs/{id}. The fleet model here
// (fleet, apply, view) has no I/O; fleet_render.go prints it and the
// command below feeds it from one MQTT subscription.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/mqtt"
)

// fleetLimits bound what a fleet tracks, so that a hostile or runaway
// publisher cannot exhaust the operator's memory: documents beyond a limit
// are ignored and counted (reason over-limit), as is a larger document.
type fleetLimits struct {
	gateways int // gateways tracked
	devices  int // device documents, over all gateways
	jobs     int // job documents, over all gateways
	steps    int // job steps kept, over all jobs
	doc      int // largest document read, in bytes
	level    int // longest site, gateway, device or job id (topic level), in bytes
}

// defaultFleetLimits are far above a real fleet (a 100 000-gateway fleet
// with ten devices each fits); at the limits the model holds a few
// hundred MiB at most.
func defaultFleetLimits() fleetLimits {
	return fleetLimits{gateways: 100_000, devices: 1_000_000, jobs: 1_000_000, steps: 4_000_000, doc: 64 << 10, level: 128}
}

// Why a document was ignored: the keys of fleetIgnored.Reasons.
const (
	ignoredMalformed = "malformed-json" // not JSON
	ignoredType      = "wrong-type"     // JSON, but not the document's shape
	ignoredSize      = "too-large"      // over the document limit
	ignoredTopic     = "bad-topic"      // a topic level that does not fit (empty, too long, control characters)
	ignoredLimit     = "over-limit"     // more gateways, devices, jobs or steps than tracked
)

// Gateway states in the fleet view (fleetRow.State).
const (
	fleetOnline          = "online"
	fleetStale           = "stale"            // online, but its status is older than twice its heartbeat
	fleetOfflineLost     = "offline-lost"     // the broker published its last will
	fleetOfflineShutdown = "offline-shutdown" // it said goodbye (planned stop)
	fleetOffline         = "offline"          // offline for a reason this version does not know
	fleetUnknown         = "unknown"          // devices or jobs, but no status document
)

type gatewayKey struct{ site, id string }

type versionKey struct{ site, hardware, version string }

// fleet is the model: what the retained documents say, per gateway. It is
// not safe for concurrent use (the command feeds it from one goroutine).
type fleet struct {
	prefix   string
	limits   fleetLimits
	gateways map[gatewayKey]*fleetGateway
	devices  int // device documents tracked
	jobs     int // job documents tracked
	steps    int // job steps kept
	versions map[versionKey]int
	ignored  map[string]int
}

type fleetGateway struct {
	status  *fleetStatus // nil: no status document
	devices map[string]fleetDevice
	jobs    map[string]fleetJob
}

// fleetStatus is what the view needs of a status document (api.Gateway or
// one of the session's transport statuses, mqtt.StatusPayload).
type fleetStatus struct {
	online    bool
	reason    string // with !online: lost or shutdown
	version   string
	time      time.Time
	heartbeat time.Duration // 0: the document has none
	health    int
}

type fleetDevice struct {
	hardware, version, state string
	holds                    int
	recovery                 bool
}

type fleetJob struct {
	phase   string
	updated time.Time
	steps   []fleetStep
}

type fleetStep struct{ device, phase string }

func newFleet(prefix string, limits fleetLimits) *fleet {
	return &fleet{prefix: prefix, limits: limits, gateways: map[gatewayKey]*fleetGateway{},
		versions: map[versionKey]int{}, ignored: map[string]int{}}
}

func (f *fleet) ignore(reason string) { f.ignored[reason]++ }

// apply reads one message of the gateways' topic tree; an empty payload
// clears the retained document, as in MQTT. A document that cannot be
// read is ignored and counted; apply never fails.
func (f *fleet) apply(topic string, payload []byte) {
	if len(payload) > f.limits.doc {
		f.ignore(ignoredSize)
		return
	}
	rest, ok := strings.CutPrefix(topic, f.prefix+"/")
	if !ok {
		f.ignore(ignoredTopic)
		return
	}
	lv := strings.SplitN(rest, "/", 5)
	kind := ""
	switch {
	case len(lv) == 3 && lv[2] == mqtt.TopicStatus:
		kind = mqtt.TopicStatus
	case len(lv) == 4 && (lv[2] == mqtt.TopicDevices || lv[2] == mqtt.TopicJobs):
		kind = lv[2]
	}
	if kind == "" || !f.goodLevel(lv[0]) || !f.goodLevel(lv[1]) || (len(lv) == 4 && !f.goodLevel(lv[3])) {
		f.ignore(ignoredTopic)
		return
	}
	key := gatewayKey{lv[0], lv[1]}
	if len(bytes.TrimSpace(payload)) == 0 {
		f.clear(key, kind, lv)
		return
	}
	switch kind {
	case mqtt.TopicStatus:
		s, reason := decodeStatus(payload)
		if reason != "" {
			f.ignore(reason)
			return
		}
		if g := f.gateway(key); g != nil {
			g.status = &s
		}
	case mqtt.TopicDevices:
		var d api.Device
		if reason := decodeDoc(payload, &d); reason != "" {
			f.ignore(reason)
			return
		}
		f.setDevice(key, lv[3], fleetDevice{hardware: d.HardwareID, version: d.Version, state: d.State,
			holds: len(d.Held), recovery: d.Recovery != ""})
	case mqtt.TopicJobs:
		var j api.Job
		if reason := decodeDoc(payload, &j); reason != "" {
			f.ignore(reason)
			return
		}
		job := fleetJob{phase: j.Phase, updated: j.Updated, steps: make([]fleetStep, 0, len(j.Steps))}
		for _, s := range j.Steps {
			job.steps = append(job.steps, fleetStep{s.Device, s.Phase})
		}
		f.setJob(key, lv[3], job)
	}
}

// goodLevel reports whether a topic level can name a site, gateway,
// device or job: not empty, not too long, no control characters.
func (f *fleet) goodLevel(s string) bool {
	if s == "" || len(s) > f.limits.level {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// gateway returns the gateway's entry, made if new; nil (and counted)
// past the gateway limit.
func (f *fleet) gateway(k gatewayKey) *fleetGateway {
	if g, ok := f.gateways[k]; ok {
		return g
	}
	if len(f.gateways) >= f.limits.gateways {
		f.ignore(ignoredLimit)
		return nil
	}
	g := &fleetGateway{}
	f.gateways[k] = g
	return g
}

func (f *fleet) setDevice(k gatewayKey, id string, d fleetDevice) {
	g := f.gateways[k]
	old, had := fleetDevice{}, false
	if g != nil {
		old, had = g.devices[id]
	}
	if !had && f.devices >= f.limits.devices {
		f.ignore(ignoredLimit)
		return
	}
	if g = f.gateway(k); g == nil {
		return
	}
	if g.devices == nil {
		g.devices = map[string]fleetDevice{}
	}
	if had {
		f.countVersion(k.site, old, -1)
	} else {
		f.devices++
	}
	g.devices[id] = d
	f.countVersion(k.site, d, +1)
}

func (f *fleet) countVersion(site string, d fleetDevice, n int) {
	vk := versionKey{site, d.hardware, d.version}
	if f.versions[vk] += n; f.versions[vk] <= 0 {
		delete(f.versions, vk)
	}
}

func (f *fleet) setJob(k gatewayKey, id string, j fleetJob) {
	g := f.gateways[k]
	old, had := fleetJob{}, false
	if g != nil {
		old, had = g.jobs[id]
	}
	if (!had && f.jobs >= f.limits.jobs) || f.steps-len(old.steps)+len(j.steps) > f.limits.steps {
		f.ignore(ignoredLimit)
		return
	}
	if g = f.gateway(k); g == nil {
		return
	}
	if g.jobs == nil {
		g.jobs = map[string]fleetJob{}
	}
	if !had {
		f.jobs++
	}
	f.steps += len(j.steps) - len(old.steps)
	g.jobs[id] = j
}

// clear removes a retained document; a gateway with nothing left goes.
func (f *fleet) clear(k gatewayKey, kind string, lv []string) {
	g := f.gateways[k]
	if g == nil {
		return
	}
	switch kind {
	case mqtt.TopicStatus:
		g.status = nil
	case mqtt.TopicDevices:
		if d, ok := g.devices[lv[3]]; ok {
			f.countVersion(k.site, d, -1)
			delete(g.devices, lv[3])
			f.devices--
		}
	case mqtt.TopicJobs:
		if j, ok := g.jobs[lv[3]]; ok {
			f.steps -= len(j.steps)
			delete(g.jobs, lv[3])
			f.jobs--
		}
	}
	if g.status == nil && len(g.devices) == 0 && len(g.jobs) == 0 {
		delete(f.gateways, k)
	}
}

// decodeDoc decodes a JSON object into v; it returns why not, or "".
func decodeDoc(b []byte, v any) string {
	if t := bytes.TrimSpace(b); len(t) == 0 || t[0] != '{' {
		if json.Valid(b) {
			return ignoredType
		}
		return ignoredMalformed
	}
	if err := json.Unmarshal(b, v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return ignoredMalformed
		}
		return ignoredType
	}
	return ""
}

// decodeStatus reads a status document: the daemon's (api.Gateway) or the
// session's own (last will, shutdown, first connect).
func decodeStatus(b []byte) (fleetStatus, string) {
	var d struct {
		api.Gateway
		Reason string `json:"reason"` // mqtt.StatusPayload's
		// Heartbeat is the period of the status document's heartbeat,
		// in seconds; older gateways send none. Read leniently: a
		// number of seconds or a Go duration string.
		Heartbeat json.RawMessage `json:"heartbeat"`
	}
	if reason := decodeDoc(b, &d); reason != "" {
		return fleetStatus{}, reason
	}
	return fleetStatus{online: d.Online, reason: d.Reason, version: d.Version, time: d.Time,
		heartbeat: heartbeatOf(d.Heartbeat), health: len(d.Health)}, ""
}

// heartbeatOf reads a heartbeat period; 0 when absent or unreadable.
func heartbeatOf(raw json.RawMessage) time.Duration {
	if len(raw) == 0 {
		return 0
	}
	var secs float64
	if json.Unmarshal(raw, &secs) == nil {
		if secs > 0 && secs < 1e7 {
			return time.Duration(secs * float64(time.Second))
		}
		return 0
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if d, err := time.ParseDuration(s); err == nil && d > 0 {
			return d
		}
	}
	return 0
}

// The fleet view: what `fieldgatectl fleet --json` prints. Its field names are
// a contract (TestFleetJSONFields pins them).
type fleetView struct {
	Time     time.Time      `json:"time"`
	Prefix   string         `json:"prefix"`
	Site     string         `json:"site,omitempty"`
	Summary  fleetSummary   `json:"summary"`
	Gateways []fleetRow     `json:"gateways"`
	Versions []fleetVersion `json:"versions"`
	Ignored  fleetIgnored   `json:"ignored"`
}

type fleetSummary struct {
	Gateways        int `json:"gateways"`
	Online          int `json:"online"`
	Stale           int `json:"stale"`
	Offline         int `json:"offline"`
	OfflineLost     int `json:"offline_lost"`
	OfflineShutdown int `json:"offline_shutdown"`
	Unknown         int `json:"unknown"`
	Devices         int `json:"devices"`
	JobsRunning     int `json:"jobs_running"`
	Failures        int `json:"failures"`
	Holds           int `json:"holds"`
}

// fleetRow is one gateway.
type fleetRow struct {
	Site    string `json:"site"`
	Gateway string `json:"gateway"`
	State   string `json:"state"`
	// Version is fieldgated's version ("" when the status has none).
	Version string `json:"version"`
	// StatusTime is the status document's time (absent in a last will).
	StatusTime *time.Time `json:"status_time,omitempty"`
	// Heartbeat is the status heartbeat in seconds; 0 when not published.
	Heartbeat   float64 `json:"heartbeat_s"`
	Devices     int     `json:"devices"`
	JobsRunning int     `json:"jobs_running"`
	JobsOpen    int     `json:"jobs_open"`
	// Failures counts devices that need recovery or whose last job step
	// failed or rolled back.
	Failures int `json:"failures"`
	Holds    int `json:"holds"`
	Health   int `json:"health_conditions"`
}

// fleetVersion counts the devices of one site, hardware id and version.
type fleetVersion struct {
	Site     string `json:"site"`
	Hardware string `json:"hardware_id"`
	Version  string `json:"version"`
	Devices  int    `json:"devices"`
}

type fleetIgnored struct {
	Total   int            `json:"total"`
	Reasons map[string]int `json:"reasons"`
}

// view summarises the model at now (the instant staleness is judged at).
func (f *fleet) view(now time.Time, site string) fleetView {
	v := fleetView{Time: now.UTC(), Prefix: f.prefix, Site: site, Gateways: make([]fleetRow, 0, len(f.gateways)),
		Versions: make([]fleetVersion, 0, len(f.versions)), Ignored: fleetIgnored{Reasons: map[string]int{}}}
	for k, g := range f.gateways {
		r := g.row(k, now)
		v.Gateways = append(v.Gateways, r)
		s := &v.Summary
		s.Gateways++
		switch r.State {
		case fleetOnline:
			s.Online++
		case fleetStale:
			s.Stale++
		case fleetUnknown:
			s.Unknown++
		case fleetOfflineLost:
			s.Offline++
			s.OfflineLost++
		case fleetOfflineShutdown:
			s.Offline++
			s.OfflineShutdown++
		default:
			s.Offline++
		}
		s.Devices += r.Devices
		s.JobsRunning += r.JobsRunning
		s.Failures += r.Failures
		s.Holds += r.Holds
	}
	sort.Slice(v.Gateways, func(i, j int) bool {
		a, b := v.Gateways[i], v.Gateways[j]
		if a.Site != b.Site {
			return a.Site < b.Site
		}
		return a.Gateway < b.Gateway
	})
	for k, n := range f.versions {
		v.Versions = append(v.Versions, fleetVersion{k.site, k.hardware, k.version, n})
	}
	sort.Slice(v.Versions, func(i, j int) bool {
		a, b := v.Versions[i], v.Versions[j]
		if a.Site != b.Site {
			return a.Site < b.Site
		}
		if a.Hardware != b.Hardware {
			return a.Hardware < b.Hardware
		}
		return a.Version < b.Version
	})
	for r, n := range f.ignored {
		v.Ignored.Reasons[r] = n
		v.Ignored.Total += n
	}
	return v
}

// row summarises one gateway.
func (g *fleetGateway) row(k gatewayKey, now time.Time) fleetRow {
	r := fleetRow{Site: k.site, Gateway: k.id, State: fleetUnknown, Devices: len(g.devices)}
	if s := g.status; s != nil {
		r.Version, r.Health, r.Heartbeat = s.version, s.health, s.heartbeat.Seconds()
		if !s.time.IsZero() {
			t := s.time.UTC()
			r.StatusTime = &t
		}
		switch {
		case s.online && s.heartbeat > 0 && !s.time.IsZero() && now.Sub(s.time) > 2*s.heartbeat:
			r.State = fleetStale
		case s.online:
			r.State = fleetOnline
		case s.reason == "lost":
			r.State = fleetOfflineLost
		case s.reason == "shutdown":
			r.State = fleetOfflineShutdown
		default:
			r.State = fleetOffline
		}
	}
	type last struct {
		at    time.Time
		phase string
	}
	lastStep := map[string]last{} // device -> its step in the newest job naming it
	for _, j := range g.jobs {
		switch {
		case j.phase == "running":
			r.JobsRunning++
			r.JobsOpen++
		case !terminalJob(j.phase):
			r.JobsOpen++
		}
		for _, s := range j.steps {
			if l, ok := lastStep[s.device]; !ok || j.updated.After(l.at) {
				lastStep[s.device] = last{j.updated, s.phase}
			}
		}
	}
	for id, d := range g.devices {
		r.Holds += d.holds
		p := lastStep[id].phase
		if d.recovery || d.state == "needs-recovery" || p == api.StepFailed || p == api.StepRolledBack {
			r.Failures++
		}
	}
	return r
}

// fleetFilters are the subscriptions: the three retained documents of
// every gateway under prefix (of one site, if given).
func fleetFilters(prefix, site string) []string {
	base := prefix + "/+/+/"
	if site != "" {
		base = prefix + "/" + site + "/+/"
	}
	return []string{base + mqtt.TopicStatus, base + mqtt.TopicDevices + "/+", base + mqtt.TopicJobs + "/+"}
}

// fleetOptions are the flags of fleet.
type fleetOptions struct {
	broker   brokerFlags
	prefix   string
	site     string
	json     bool
	watch    bool
	stats    bool
	timeout  time.Duration
	interval time.Duration
	limits   fleetLimits
	times    timeFormat
	// size returns the terminal's size; nil when stdout is not a
	// terminal (--watch then prints a line per change).
	size func() (cols, lines int)
}

func fleetCommand(stdout io.Writer) *cobra.Command {
	o := fleetOptions{limits: defaultFleetLimits()}
	cmd := &cobra.Command{
		Use:   "fleet --broker URL [--site SITE]",
		Short: "Every gateway at a glance: online state, versions, jobs, failures and holds, from the broker's retained documents",
		Long: `Read the retained status, device and job documents of every gateway under
--prefix (default fieldgate/v1; one site with --site) from the broker, and
print a table of gateways, the device versions per site and hardware id,
and a summary.

A gateway is online, stale (online, but its last status is older than twice
the heartbeat it publishes), offline-lost (the broker published its last
will), offline-shutdown (a planned stop) or unknown (devices or jobs but no
status). FAILURES counts devices that need recovery or whose last job step
failed or rolled back; HOLDS the updates held back from devices; HEALTH the
active health conditions.

The retained backlog is complete when a probe this command publishes on a
topic of its own ({prefix}/fleet-probe/{client id}) comes back; the broker
must let the client publish and subscribe there. --timeout bounds the wait.

--watch keeps the subscription and redraws on change (on a terminal in
place; otherwise one line per change). Documents that cannot be read
(malformed JSON, wrong types, over 64 KiB, topic levels that do not fit) are
ignored and counted; at most 100000 gateways and 1000000 devices and jobs
are tracked.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.times = timesOf(cmd)
			o.size = terminalSize(stdout)
			return o.run(cmd.Context(), stdout, cmd.ErrOrStderr())
		},
	}
	o.broker.add(cmd)
	f := cmd.Flags()
	f.StringVar(&o.prefix, "prefix", "fieldgate/v1", "topic root above {site}/{gateway}")
	f.StringVar(&o.site, "site", "", "only this site's gateways")
	f.BoolVar(&o.json, "json", false, "print one JSON document (with --watch: one a line, on every change)")
	f.BoolVarP(&o.watch, "watch", "w", false, "keep watching and redraw on change")
	f.BoolVar(&o.stats, "stats", false, "print to stderr how long the retained backlog took and the memory it holds")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long to wait for the retained backlog")
	f.DurationVar(&o.interval, "interval", time.Second, "--watch: shortest time between redraws")
	return cmd
}

// fleetMsg is one message, handed from the MQTT client to the model.
type fleetMsg struct {
	topic   string
	payload []byte
}

func (o fleetOptions) run(ctx context.Context, stdout, stderr io.Writer) error {
	switch {
	case o.prefix == "" || strings.ContainsAny(o.prefix, "+#") || strings.HasPrefix(o.prefix, "/") || strings.HasSuffix(o.prefix, "/"):
		return fmt.Errorf("--prefix %q: want topic levels without wildcards or a leading or trailing slash", o.prefix)
	case strings.ContainsAny(o.site, "/+#"):
		return fmt.Errorf("--site %q: want one topic level", o.site)
	case o.timeout <= 0 || o.interval <= 0:
		return errors.New("--timeout and --interval must be positive")
	}
	cfg, err := o.broker.config(o.prefix)
	if err != nil {
		return err
	}
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()

	id := "fieldgatectl-fleet-" + randomHex(6)
	probe := o.prefix + "/fleet-probe/" + id
	msgs := make(chan fleetMsg, 256)
	handler := func(topic string, p []byte) {
		if len(p) > o.limits.doc {
			p = p[:o.limits.doc+1] // enough to count it as too large
		}
		select {
		case msgs <- fleetMsg{topic, bytes.Clone(p)}:
		case <-ctx.Done():
		}
	}
	probed := make(chan struct{})
	notes := make(chan string, 8) // connection news for the watch view
	ended := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		up, err := fleetSession(ctx, cfg, id, fleetFilters(o.prefix, o.site), probe, probed, handler)
		if ctx.Err() != nil || !o.watch || !up {
			ended <- err
			return
		}
		session := func(ctx context.Context) (bool, error) {
			select {
			case notes <- fmt.Sprintf("broker connection lost (%v); reconnecting", err):
			default:
			}
			up, err = fleetSession(ctx, cfg, id, fleetFilters(o.prefix, o.site), probe, probed, handler)
			return up, err
		}
		mqtt.Redial(ctx, slog.New(slog.DiscardHandler), "fleet", 200*time.Millisecond, 5*time.Second, session, nil)
		ended <- nil
	}()

	f := newFleet(o.prefix, o.limits)
	r := newFleetRenderer(stdout, o)
	deadline := time.NewTimer(o.timeout)
	defer deadline.Stop()
	var tick <-chan time.Time
	complete, dirty, docs := false, false, 0
	var drawn time.Time
	for {
		select {
		case m := <-msgs:
			if m.topic == probe {
				if complete {
					continue
				}
				complete = true
				close(probed)
				if o.stats {
					o.report(stderr, f, docs, time.Since(start))
				}
				if !o.watch {
					return r.once(f.view(time.Now(), o.site))
				}
				defer r.close()
				r.show(f.view(time.Now(), o.site), "")
				drawn = time.Now()
				t := time.NewTicker(o.interval)
				defer t.Stop()
				tick = t.C
				continue
			}
			docs++
			f.apply(m.topic, m.payload)
			dirty = true
		case note := <-notes:
			if complete {
				r.show(f.view(time.Now(), o.site), note)
				drawn = time.Now()
			}
		case now := <-tick:
			// Redraw on change, and now and then without one: a gateway
			// turns stale by the clock alone.
			if dirty || now.Sub(drawn) >= 10*time.Second {
				r.show(f.view(now, o.site), "")
				dirty, drawn = false, now
			}
		case err := <-ended:
			if complete {
				return nil // the watch ended with ctx
			}
			if err == nil {
				err = errors.New("interrupted")
			}
			return fmt.Errorf("read the fleet from %s: %w", cfg.Broker, err)
		case <-deadline.C:
			if !complete {
				return fmt.Errorf("read the fleet from %s: the retained backlog was not complete after %v: the broker never echoed the probe on %s (does its ACL let this client publish and subscribe there?); %d documents had arrived",
					cfg.Broker, o.timeout, probe, docs)
			}
		case <-ctx.Done():
			if complete {
				return nil
			}
			return errors.New("read the fleet: interrupted before the retained backlog was complete")
		}
	}
}

// report prints how long the first full view took and what it holds.
func (o fleetOptions) report(w io.Writer, f *fleet, docs int, took time.Duration) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(w, "fieldgatectl fleet: %d documents of %d gateways in %v; heap %.1f MiB after GC\n",
		docs, len(f.gateways), took.Round(time.Millisecond), float64(ms.HeapAlloc)/(1<<20))
}

// fleetSession is one connection: it subscribes to filters and to the
// probe topic, publishes the probe every second until probed is closed,
// then holds the subscription until ctx ends (nil) or the connection is
// lost. up says whether it connected.
func fleetSession(ctx context.Context, cfg mqtt.Config, id string, filters []string, probe string, probed <-chan struct{}, handler func(string, []byte)) (up bool, err error) {
	c, err := mqtt.Dial(ctx, cfg, id, nil, handler)
	if err != nil {
		return false, err
	}
	defer c.Close(0)
	for _, f := range append(filters, probe) {
		if err := c.Subscribe(ctx, f, 1); err != nil {
			return true, err
		}
	}
	// The broker sends a subscription's retained messages before any
	// message published after it, so the probe arrives after the backlog.
	// It is sent again every second until it is seen, in case the broker
	// dropped it.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	waiting := probed
	select {
	case <-probed:
		waiting = nil // a reconnect: the view is complete already
	default:
		if err := c.Publish(ctx, probe, 1, false, []byte("fleet backlog probe")); err != nil {
			return true, err
		}
	}
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case <-c.Lost():
			return true, c.Err()
		case <-waiting:
			waiting = nil
		case <-tick.C:
			if waiting == nil {
				continue
			}
			if err := c.Publish(ctx, probe, 1, false, []byte("fleet backlog probe")); err != nil {
				return true, err
			}
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// clean makes a string from the wire safe to print on a terminal: control
// characters (escape sequences among them) and invalid UTF-8 become '?',
// and it is cut to 64 characters.
func clean(s string) string {
	if s == "" {
		return "-"
	}
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == 64 {
			b.WriteString("…")
			break
		}
		if r == utf8.RuneError || unicode.IsControl(r) {
			r = '?'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
