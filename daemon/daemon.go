// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/daemon/control"
	"github.com/fieldgate/fieldgate/daemon/store"
	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/tuf"
)

// Source is the verified source of updates (tuf.Client).
type Source interface {
	Refresh(ctx context.Context) (*tuf.Snapshot, error)
	Fetch(ctx context.Context, t tuf.Target, progress func(done, total int64)) (string, error)
}

// Importer verifies an offline bundle with the gateway's current trust
// and stages its targets (tuf.ImportBundle).
type Importer func(ctx context.Context, dir string) (*tuf.Snapshot, error)

// Indicator shows the gateway's state to a person on site (the board's
// LEDs, systemd's STATUS= line).
type Indicator interface {
	Show(d Display)
	// LEDs returns what each LED shows, by name, for the status
	// document; nil if the indicator has no LEDs.
	LEDs() map[string]string
}

// Uplink is the connection reports leave by (the MQTT session).
type Uplink interface {
	Connected() bool
}

// Runner is a part with its own loop (MQTT session, control socket, board).
type Runner interface {
	Run(ctx context.Context) error
}

// Deps are the concrete parts the daemon is wired with.
type Deps struct {
	Config    *config.Config
	Store     *store.Store
	Source    Source
	Importer  Importer                  // may be nil: offline bundles not supported
	Devices   map[string]devices.Device // by device id
	Indicator Indicator                 // may be nil
	Buttons   Buttons                   // may be nil
	Broker    Uplink                    // may be nil: no uplink
	Meter     Meter                     // may be nil: nothing measured
	Runners   []Runner                  // run alongside the update loop
	Version   string
	Log       *slog.Logger
	Now       func() time.Time // nil: time.Now
	Rand      func() float64   // uniform in [0, 1), for refresh jitter and hint delays; called from two goroutines; nil: math/rand/v2
}

// Daemon is the update cycle. Create it with New and call Run once.
type Daemon struct {
	cfg      *config.Config
	st       *store.Store
	src      Source
	importer Importer
	devs     map[string]devices.Device
	ind      Indicator
	buttons  Buttons
	broker   Uplink
	meter    Meter
	runners  []Runner
	version  string
	log      *slog.Logger
	now      func() time.Time
	rand     func() float64

	m           *machine           // the job state machine
	windows     map[string]*Window // by window name
	groups      map[string]config.Group
	devCfg      map[string]config.Device
	order       []string // device ids in configuration order
	wake        chan struct{}
	health      *health
	cmds        *commander
	pages       *pager      // page of the status display
	downloading atomic.Bool // a target is being fetched
	pulse       *liveness   // for systemd's watchdog
	live        *live       // progress and blocks, not stored
	rep         *reporter
	errlog      *ratelimit
	restage     chan struct{} // stage again from the last snapshot (a hold was lifted, a device identified)

	lastInventory string     // the inventory document last published; the loop's own
	adv           advisories // advisory documents, index and results (advisories.go)
	reportDocs    reportDocs // test report documents looked at (staging.go)

	mu          sync.Mutex // guards the fields below
	snapshot    *tuf.Snapshot
	lastRefresh time.Time
	lastBundle  string // timestamp hash of the last bundle seen in the import dir
}

// New builds a daemon from its parts.
func New(d Deps) (*Daemon, error) {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Meter == nil {
		d.Meter = noMeter{}
	}
	if d.Rand == nil {
		d.Rand = rand.Float64
	}
	dm := &Daemon{
		cfg: d.Config, st: d.Store, src: d.Source, importer: d.Importer, devs: d.Devices, ind: d.Indicator, buttons: d.Buttons,
		broker: d.Broker, meter: d.Meter, runners: d.Runners, version: d.Version, log: d.Log, now: d.Now, rand: d.Rand,
		windows: map[string]*Window{}, groups: map[string]config.Group{}, devCfg: map[string]config.Device{},
		wake:    make(chan struct{}, 1),
		health:  newHealth(d.Now),
		restage: make(chan struct{}, 1),
		pulse:   &liveness{},
		live:    newLive(d.Now),
		errlog:  &ratelimit{},
		pages:   &pager{now: d.Now},
	}
	for _, w := range d.Config.Windows {
		pw, err := ParseWindow(w)
		if err != nil {
			return nil, err
		}
		dm.windows[w.Name] = pw
	}
	for _, g := range d.Config.Groups {
		dm.groups[g.Name] = g
	}
	for _, c := range d.Config.Devices {
		if d.Devices[c.ID] == nil {
			return nil, fmt.Errorf("device %s: no driver instance", c.ID)
		}
		dm.devCfg[c.ID] = c
		dm.order = append(dm.order, c.ID)
	}
	dm.cmds = &commander{d: dm, queue: make(chan rawCommand, 64)}
	dm.rep = newReporter(d.Config.MQTT.Prefix, dm.devCfg, d.Now, dm.live)
	dm.m = &machine{
		st: d.Store, cfg: d.Config, devs: d.Devices, devCfg: dm.devCfg, groups: dm.groups, windows: dm.windows,
		backups: filepath.Join(d.Config.Gateway.StateDir, "backups"),
		now:     d.Now, log: d.Log, rep: dm.rep, live: dm.live, health: dm.health, pulse: dm.pulse, errlog: dm.errlog,
		meter:        d.Meter,
		kicks:        make(chan struct{}, 1),
		pollInterval: 5 * time.Second,
		running:      map[string]string{},
		backoff:      map[string]backoff{},
	}
	dm.m.admits = dm.rolloutAdmits
	dm.m.priority = dm.advisoryRank
	if err := os.MkdirAll(dm.m.backups, 0o700); err != nil {
		return nil, fmt.Errorf("backups: %w", err)
	}
	return dm, nil
}

// AddRunners adds parts that run alongside the update loop; call before Run.
func (d *Daemon) AddRunners(r ...Runner) { d.runners = append(d.runners, r...) }

// expiryWarning is how close to expiry trusted metadata raises a warning.
const expiryWarning = 6 * time.Hour

// Wake asks the update loop to refresh metadata now.
func (d *Daemon) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// kick asks the update loop to schedule jobs now (a worker ended, an
// approval arrived).
func (m *machine) kick() {
	select {
	case m.kicks <- struct{}{}:
	default:
	}
}

// Run runs the update loop and every runner until ctx ends.
func (d *Daemon) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, r := range d.runners {
		g.Go(func() error { return r.Run(ctx) })
	}
	g.Go(func() error { return d.loop(ctx) })
	g.Go(func() error { return d.buttonLoop(ctx) })
	g.Go(func() error { return d.cmds.run(ctx) })
	return g.Wait()
}

func (d *Daemon) loop(ctx context.Context) error {
	d.audit(store.Event{Type: "daemon-started", Detail: map[string]any{"version": d.version}})
	d.pulse.beat() // from now on the watchdog asks whether the loop turns
	d.inventory(ctx)
	d.confirmSelf()
	refresh := time.NewTimer(startDelay(d.cfg.Gateway.RefreshInterval, d.rand()))
	inventory := time.NewTicker(d.cfg.Gateway.InventoryInterval)
	tick := time.NewTicker(5 * time.Second) // windows open on minute boundaries; events kick the loop sooner
	importTick := time.NewTicker(5 * time.Second)
	defer importTick.Stop()
	defer refresh.Stop()
	defer inventory.Stop()
	defer tick.Stop()
	for {
		d.pulse.beat()
		d.checkHealth()
		d.publishDevices()
		d.publishInventory()
		d.evaluateAdvisories(ctx)
		d.publishGateway()
		d.showState()
		select {
		case <-ctx.Done():
			d.m.workers.Wait() // phases in flight finish under their own deadlines
			d.audit(store.Event{Type: "daemon-stopped"})
			d.publishGateway()
			return nil
		case <-refresh.C:
			if d.refresh(ctx) {
				return d.restart()
			}
			refresh.Reset(jittered(d.cfg.Gateway.RefreshInterval, d.rand()))
		case <-d.wake:
			if d.refresh(ctx) {
				return d.restart()
			}
		case <-inventory.C:
			d.inventory(ctx)
		case <-importTick.C:
			d.watchImportDir(ctx)
		case <-d.restage:
			d.stageLast(ctx)
		case <-d.m.kicks:
		case <-tick.C:
		}
		d.m.runJobs(ctx)
	}
}

// refreshJitter is the fraction by which each refresh interval is moved,
// uniformly either way, and maxStartSpread bounds the delay of the first
// refresh after a start: gateways restarted together (a site's power, a
// fleet-wide self-update) spread their first requests over up to a tenth of
// the interval (at most maxStartSpread), and their phases drift further
// apart on every turn instead of polling the repository in lockstep.
const (
	refreshJitter  = 0.1
	maxStartSpread = 10 * time.Second
)

// jittered returns interval moved by up to ±refreshJitter of itself; u is
// uniform in [0, 1).
func jittered(interval time.Duration, u float64) time.Duration {
	return interval + time.Duration((2*u-1)*refreshJitter*float64(interval))
}

// startDelay returns the delay of the first refresh after a start: uniform
// in [0, min(interval/10, maxStartSpread)); u is uniform in [0, 1).
func startDelay(interval time.Duration, u float64) time.Duration {
	return time.Duration(u * float64(min(interval/10, maxStartSpread)))
}

// restart stops the loop to hand over to a newly installed fieldgated.
func (d *Daemon) restart() error {
	d.m.workers.Wait()
	d.audit(store.Event{Type: "daemon-stopped", Detail: map[string]any{"reason": "self-update"}})
	return ErrRestart
}

// stageLast stages again from the last verified snapshot, if any: a hold
// was lifted, or a device the last staging skipped is identified now.
func (d *Daemon) stageLast(ctx context.Context) {
	d.mu.Lock()
	snap := d.snapshot
	d.mu.Unlock()
	if snap != nil {
		d.stage(ctx, snap)
	}
}

// askRestage makes the loop stage again from the last snapshot on its next
// turn; it never blocks.
func (d *Daemon) askRestage() {
	select {
	case d.restage <- struct{}{}:
	default:
	}
}

// refresh pulls verified metadata, stages a job for every device that has a
// newer target, and downloads the job's image now (install happens in the
// window). It returns true when a new fieldgated was installed and the
// daemon should restart into it.
func (d *Daemon) refresh(ctx context.Context) bool {
	snap, err := d.src.Refresh(ctx)
	d.meter.Refresh(err)
	if err != nil {
		if errors.Is(err, tuf.ErrClockUnsynced) {
			d.health.set(condClock, "", err.Error())
		} else {
			d.health.set(condRefresh, "", err.Error())
		}
		d.log.Warn("refresh", "err", err)
		d.audit(store.Event{Type: "refresh-failed", Detail: map[string]any{"error": err.Error()}})
		return false
	}
	d.health.clear(condClock, "")
	d.health.clear(condRefresh, "")
	// An older trust anchor in use stays an alarm until a refresh reaches
	// the newest trusted root again.
	if snap.TrustFallback != "" {
		d.health.set(condAnchor, "", snap.TrustFallback)
	} else {
		d.health.clear(condAnchor, "")
	}
	d.mu.Lock()
	d.snapshot, d.lastRefresh = snap, d.now()
	d.mu.Unlock()
	// The timestamp role usually lives a day and is re-signed often; warn
	// when what the gateway holds would lapse within a few hours.
	if !snap.Expires.IsZero() && snap.Expires.Before(snap.RefTime.Add(expiryWarning)) {
		d.health.set(condExpiry, "", "metadata expires "+snap.Expires.UTC().Format(time.RFC3339))
	} else {
		d.health.clear(condExpiry, "")
	}
	for _, t := range snap.Targets {
		if t.MetaErr != nil {
			d.log.Warn("target rejected", "target", t.Name, "reason", t.MetaErr)
		}
	}
	d.importReportDocuments(ctx, snap.Documents)
	d.evaluateAdvisories(ctx) // new advisory documents, and jobs about to be staged ordered by their priority
	d.stage(ctx, snap)
	return d.selfUpdate(ctx, snap)
}

// stage creates jobs for devices with a newer target and downloads them;
// it returns the number of jobs staged. A device that needs recovery, or
// whose version is not known yet, gets none. Held targets are not offered
// again; a newer target for the device lifts the holds of older ones.
func (d *Daemon) stage(ctx context.Context, snap *tuf.Snapshot) int {
	busy := d.devicesInOpenJobs()
	byTarget := map[string][]string{} // "target\x00group" -> devices
	targets := map[string]tuf.Target{}
	gw, now := d.cfg.Gateway, d.now()
	for _, id := range d.order {
		d.live.setRollout(id, "") // set again below while a rollout keeps a newer target back
		if busy[id] {
			continue
		}
		rec, err := d.st.Device(id)
		if err != nil || rec.Version == "" || rec.Recovery != "" {
			continue // not identified yet (inventory retries), or needs recovery: no way to know a target is newer
		}
		if rec.Mismatch != "" {
			continue // the device on this address is not the one configured
		}
		offered := slices.DeleteFunc(slices.Clone(snap.Targets), func(t tuf.Target) bool { return rec.HeldSHA(t.SHA256()) })
		t, ok, reason, deferred := tuf.SelectRollout(offered, d.devCfg[id].HardwareID, rec.Version, rec.Floor, gw.Site, gw.ID, now)
		if deferred != nil {
			d.live.setRollout(id, deferred.String())
			if d.live.newRolloutReason(deferred.Target.Name, deferred.Why) {
				d.log.Info("rollout keeps target back", "target", deferred.Target.Name, "version", deferred.Target.Meta.Version,
					"reason", deferred.Why, "cohort", tuf.Cohort(gw.Site, gw.ID))
			}
		}
		if !ok {
			d.log.Debug("no update", "device", id, "reason", reason)
			continue
		}
		d.m.releaseOlderHolds(id, t)
		k := t.Name + "\x00" + d.devCfg[id].Group
		byTarget[k] = append(byTarget[k], id)
		targets[t.Name] = t
	}
	names := make([]string, 0, len(byTarget))
	for n := range byTarget {
		names = append(names, n)
	}
	sort.Strings(names)
	staged := 0
	for _, k := range names {
		name, group, _ := strings.Cut(k, "\x00")
		t := targets[name]
		path, err := d.fetch(ctx, t)
		if err != nil {
			d.log.Error("download", "target", name, "err", err)
			if errors.Is(err, tuf.ErrTargetMismatch) {
				d.health.set(condVerify, name, err.Error())
			} else {
				d.health.set(condDownload, name, err.Error())
			}
			d.audit(store.Event{Type: "download-failed", Detail: map[string]any{"target": name, "error": err.Error()}})
			for _, id := range byTarget[k] { // each device it was meant for says why
				d.st.UpdateDevice(id, func(r *store.Device) error {
					r.LastError = "target " + name + " rejected: " + err.Error()
					return nil
				})
			}
			continue
		}
		d.health.clear(condVerify, name)
		d.health.clear(condDownload, name)
		if err := d.m.createJob(t, path, d.groups[group], byTarget[k]); err != nil {
			d.log.Error("stage job", "target", name, "err", err)
			continue
		}
		staged++
	}
	return staged
}

// rolloutAdmits reports whether the rollout of job j's target, as the
// newest verified metadata says, admits this gateway now. A target no
// longer listed, or listed with other hashes, says nothing about j: it is
// admitted, as before rollouts. Until the first refresh of this run there
// is no snapshot, and every job is admitted.
func (d *Daemon) rolloutAdmits(j store.Job) (bool, string) {
	d.mu.Lock()
	snap := d.snapshot
	d.mu.Unlock()
	if snap == nil {
		return true, ""
	}
	for _, t := range snap.Targets {
		if t.Name == j.Target && t.MetaErr == nil && t.SHA256() == j.SHA256 {
			ok, why := t.Meta.Rollout.Admits(d.cfg.Gateway.Site, d.cfg.Gateway.ID, d.now())
			if !ok {
				if d.live.newRolloutReason(t.Name, why) {
					d.log.Info("rollout halted", "target", t.Name, "job", j.ID, "reason", why)
				}
			} else if t.Meta.Rollout != nil {
				d.live.newRolloutReason(t.Name, "")
			}
			return ok, why
		}
	}
	return true, ""
}

func (d *Daemon) devicesInOpenJobs() map[string]bool {
	busy := map[string]bool{}
	jobs, _ := d.st.Jobs()
	for _, j := range jobs {
		if jobTerminal(j.Phase) {
			continue
		}
		for _, s := range j.Devices {
			busy[s.Device] = true
		}
	}
	return busy
}

// Below these, the state directory counts as full: state, audit records,
// backups and blobs might not be written, so no device step starts.
const (
	minFreeBytes   = 64 << 20
	minFreePercent = 2
)

func diskSpace(dir string) (free, total uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}

// checkHealth raises or clears the conditions that follow from time
// passing: an uplink down too long, trusted metadata past its expiry.
func (d *Daemon) checkHealth() {
	now := d.now()
	if d.broker != nil {
		if d.broker.Connected() {
			d.health.clear(condBroker, "")
		} else {
			// Shows after condBroker's delay: reconnects after a blip are normal.
			d.health.set(condBroker, "", "no MQTT broker connection; reports wait in the outbox")
		}
	}
	if free, total, err := diskSpace(d.cfg.Gateway.StateDir); err == nil {
		if free < minFreeBytes || free*100 < total*minFreePercent {
			d.health.set(condDisk, "", fmt.Sprintf("%d MiB free of %d MiB in %s: no device step starts", free>>20, total>>20, d.cfg.Gateway.StateDir))
		} else {
			d.health.clear(condDisk, "")
		}
	}
	if v, err := d.st.Flag("stop"); err != nil || v != "" {
		d.health.set(condStopped, "", "emergency stop by "+v+": no device step starts until resume")
	} else {
		d.health.clear(condStopped, "")
	}
	d.deriveHealth()
	d.mu.Lock()
	snap := d.snapshot
	d.mu.Unlock()
	if snap != nil && !snap.Expires.IsZero() && now.After(snap.Expires) {
		d.health.set(condExpired, "", "trusted metadata expired "+snap.Expires.UTC().Format(time.RFC3339)+"; no new updates until a refresh succeeds")
	} else {
		d.health.clear(condExpired, "")
	}
}

// deriveHealth sets the conditions that describe device records (needs
// recovery, held updates, a rollback, a mismatch), so they follow the
// records: they survive restarts and clear when the record does.
func (d *Daemon) deriveHealth() {
	recs, err := d.st.Devices()
	if err != nil {
		return
	}
	recovery, held, rolled, mismatch := map[string]string{}, map[string]string{}, map[string]string{}, map[string]string{}
	for _, r := range recs {
		if _, ok := d.devCfg[r.ID]; !ok {
			continue
		}
		if r.Recovery != "" {
			recovery[r.ID] = r.Recovery + ": fieldgatectl recover " + r.ID
		}
		if n := len(r.Holds); n > 0 {
			h := r.Holds[n-1]
			held[r.ID] = fmt.Sprintf("%s %s not retried on its own (%s): fieldgatectl retry %s", h.Target, h.Version, h.Reason, r.ID)
			if n > 1 {
				held[r.ID] += fmt.Sprintf(" (%d updates held)", n)
			}
		}
		if r.RolledBack != "" {
			rolled[r.ID] = r.RolledBack
		}
		if r.Mismatch != "" {
			mismatch[r.ID] = r.Mismatch + ": no update is offered to it"
		}
	}
	if self, err := LoadSelfState(d.cfg.Gateway.StateDir); err == nil && len(self.Bad) > 0 {
		held[selfSubject] = fmt.Sprintf("%d self-update(s) of fieldgated did not come up and are not tried again on their own: fieldgatectl retry %s", len(self.Bad), selfSubject)
	}
	d.health.sync(condRecovery, d.order, recovery)
	d.health.sync(condHeld, append(slices.Clone(d.order), selfSubject), held)
	d.health.sync(condRollback, d.order, rolled)
	d.health.sync(condMismatch, d.order, mismatch)
}

// fetch downloads a target, showing "downloading" on the LEDs meanwhile.
func (d *Daemon) fetch(ctx context.Context, t tuf.Target) (string, error) {
	d.downloading.Store(true)
	d.showState()
	defer d.downloading.Store(false)
	return d.src.Fetch(ctx, t, func(done, total int64) { d.pulse.beat() })
}

// Status implements control.Reader.
func (d *Daemon) Status(ctx context.Context) (api.Status, error) {
	st := api.Status{Gateway: d.gatewayDoc()}
	var err error
	if st.Devices, err = d.deviceDocs(); err != nil {
		return st, err
	}
	jobs, err := d.st.Jobs()
	if err != nil {
		return st, err
	}
	for _, j := range jobs {
		st.Jobs = append(st.Jobs, d.rep.jobDoc(j, d.m.waiting(j)))
	}
	return st, nil
}

// The control socket serves the daemon.
var (
	_ control.Reader    = (*Daemon)(nil)
	_ control.Commander = (*Daemon)(nil)
)
