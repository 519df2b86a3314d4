package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
}

// Display is what the status display shows. A short press of a button
// cycles its pages; after pageTimeout without a press it returns to
// PageState.
type Display struct {
	Page  Page
	State State // the gateway state, whatever the page
	// Good and Bad are the two checks of PageUplink and PageDevices: the
	// status LED is lit when Good, the fault LED when Bad.
	Good, Bad bool
}

// Page is a page of the status display, numbered from 1 as the LEDs flash
// it when it opens.
type Page int

// The pages of the status display.
const (
	PageState   Page = 1 + iota // the gateway state (the blink-code table)
	PageUplink                  // status: MQTT broker connected; fault: the repository refresh is failing
	PageDevices                 // status: every device answers; fault: a device drifted or was rolled back
)

// String returns "state", "uplink" or "devices".
func (p Page) String() string {
	switch p {
	case PageUplink:
		return "uplink"
	case PageDevices:
		return "devices"
	}
	return "state"
}

// pageTimeout is how long a page other than PageState stays without a press.
const pageTimeout = time.Minute

// State is the gateway's overall state as shown on LEDs.
type State string

// States, from the most to the least urgent.
const (
	StateTrustProblem     State = "trust-problem"
	StateFailure          State = "failure"
	StatePushing          State = "pushing"
	StateDownloading      State = "downloading"
	StateAwaitingApproval State = "awaiting-approval"
	StateUpdateAvailable  State = "update-available"
	StateSuccess          State = "success"
	StateIdle             State = "idle"
	StateStopped          State = "stopped"
)

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
	Broker    interface{ Connected() bool }
	Runners   []Runner // run alongside the update loop
	Version   string
	Log       *slog.Logger
	Now       func() time.Time // nil: time.Now
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
	broker   interface{ Connected() bool }
	runners  []Runner
	version  string
	log      *slog.Logger
	now      func() time.Time

	windows     map[string]*Window // by window name
	groups      map[string]config.Group
	devCfg      map[string]config.Device
	order       []string // device ids in configuration order
	backups     string   // directory of device backups
	wake        chan struct{}
	kicks       chan struct{}
	health      *health
	progress    sync.Map // device id -> api.Progress while a transfer runs
	blocked     sync.Map // device id -> why its pending step waits
	commands    chan rawCommand
	downloading atomic.Bool // a target is being fetched
	workers     sync.WaitGroup
	live        liveness
	errlog      ratelimit
	restage     chan struct{} // stage again from the last snapshot (a hold was lifted)

	pollInterval time.Duration // interlock and soak probes

	mu              sync.Mutex // guards the fields below
	snapshot        *tuf.Snapshot
	lastRefresh     time.Time
	lastGateway     string             // last published gateway document, without volatile fields
	running         map[string]string  // device id -> job id of its running worker
	backoff         map[string]backoff // device id ("" for jobs) -> when its worker may start again
	lastDevice      map[string]string  // device id -> last published document, without volatile fields
	lastBundle      string             // timestamp hash of the last bundle seen in the import dir
	brokerDownSince time.Time          // loop goroutine only
	page            Page               // page of the status display (0: PageState)
	pageUntil       time.Time          // when the page returns to PageState
}

// New builds a daemon from its parts.
func New(d Deps) (*Daemon, error) {
	if d.Now == nil {
		d.Now = time.Now
	}
	dm := &Daemon{
		cfg: d.Config, st: d.Store, src: d.Source, importer: d.Importer, devs: d.Devices, ind: d.Indicator, buttons: d.Buttons,
		broker: d.Broker, runners: d.Runners, version: d.Version, log: d.Log, now: d.Now,
		windows: map[string]*Window{}, groups: map[string]config.Group{}, devCfg: map[string]config.Device{},
		backups: filepath.Join(d.Config.Gateway.StateDir, "backups"),
		wake:    make(chan struct{}, 1),
		kicks:   make(chan struct{}, 1),
		health:  newHealth(d.Now),
		running: map[string]string{},
		backoff: map[string]backoff{},
		restage: make(chan struct{}, 1),

		lastDevice: map[string]string{},
		commands:   make(chan rawCommand, 64),

		pollInterval: 5 * time.Second,
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
	if err := os.MkdirAll(dm.backups, 0o700); err != nil {
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
func (d *Daemon) kick() {
	select {
	case d.kicks <- struct{}{}:
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
	g.Go(func() error { return d.commandLoop(ctx) })
	return g.Wait()
}

func (d *Daemon) loop(ctx context.Context) error {
	d.audit(store.Event{Type: "daemon-started", Detail: map[string]any{"version": d.version}})
	d.live.beat() // from now on the watchdog asks whether the loop turns
	d.inventory(ctx)
	d.confirmSelf()
	refresh := time.NewTimer(0)
	inventory := time.NewTicker(d.cfg.Gateway.InventoryInterval)
	tick := time.NewTicker(5 * time.Second) // windows open on minute boundaries; events kick the loop sooner
	importTick := time.NewTicker(5 * time.Second)
	defer importTick.Stop()
	defer refresh.Stop()
	defer inventory.Stop()
	defer tick.Stop()
	for {
		d.live.beat()
		d.checkHealth()
		d.publishDevices()
		d.publishGateway()
		d.showState()
		select {
		case <-ctx.Done():
			d.workers.Wait() // phases in flight finish under their own deadlines
			d.audit(store.Event{Type: "daemon-stopped"})
			d.publishGateway()
			return nil
		case <-refresh.C:
			if d.refresh(ctx) {
				return d.restart()
			}
			refresh.Reset(d.cfg.Gateway.RefreshInterval)
		case <-d.wake:
			if d.refresh(ctx) {
				return d.restart()
			}
		case <-inventory.C:
			d.inventory(ctx)
		case <-importTick.C:
			d.watchImportDir(ctx)
		case <-d.restage:
			d.mu.Lock()
			snap := d.snapshot
			d.mu.Unlock()
			if snap != nil {
				d.stage(ctx, snap)
			}
		case <-d.kicks:
		case <-tick.C:
		}
		d.runJobs(ctx)
	}
}

// restart stops the loop to hand over to a newly installed fieldgated.
func (d *Daemon) restart() error {
	d.workers.Wait()
	d.audit(store.Event{Type: "daemon-stopped", Detail: map[string]any{"reason": "self-update"}})
	return ErrRestart
}

// refresh pulls verified metadata, stages a job for every device that has a
// newer target, and downloads the job's image now (install happens in the
// window). It returns true when a new fieldgated was installed and the
// daemon should restart into it.
func (d *Daemon) refresh(ctx context.Context) bool {
	snap, err := d.src.Refresh(ctx)
	if err != nil {
		if errors.Is(err, tuf.ErrClockUnsynced) {
			d.health.set(condClock, "", "error", err.Error())
		} else {
			d.health.set(condRefresh, "", "warning", err.Error())
		}
		d.log.Warn("refresh", "err", err)
		d.audit(store.Event{Type: "refresh-failed", Detail: map[string]any{"error": err.Error()}})
		return false
	}
	d.health.clear(condClock, "")
	d.health.clear(condRefresh, "")
	d.mu.Lock()
	d.snapshot, d.lastRefresh = snap, d.now()
	d.mu.Unlock()
	// The timestamp role usually lives a day and is re-signed often; warn
	// when what the gateway holds would lapse within a few hours.
	if !snap.Expires.IsZero() && snap.Expires.Before(snap.RefTime.Add(expiryWarning)) {
		d.health.set(condExpiry, "", "warning", "metadata expires "+snap.Expires.UTC().Format(time.RFC3339))
	} else {
		d.health.clear(condExpiry, "")
	}
	for _, t := range snap.Targets {
		if t.MetaErr != nil {
			d.log.Warn("target rejected", "target", t.Name, "reason", t.MetaErr)
		}
	}
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
	for _, id := range d.order {
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
		t, ok, reason := tuf.Select(offered, d.devCfg[id].HardwareID, rec.Version, rec.Floor)
		if !ok {
			d.log.Debug("no update", "device", id, "reason", reason)
			continue
		}
		d.releaseOlderHolds(id, t)
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
				d.health.set(condVerify, name, "error", err.Error())
			} else {
				d.health.set(condDownload, name, "warning", err.Error())
			}
			d.audit(store.Event{Type: "download-failed", Detail: map[string]any{"target": name, "error": err.Error()}})
			d.publishTargetRejected(byTarget[k], name, err)
			continue
		}
		d.health.clear(condVerify, name)
		d.health.clear(condDownload, name)
		if err := d.createJob(t, path, d.groups[group], byTarget[k]); err != nil {
			d.log.Error("stage job", "target", name, "err", err)
			continue
		}
		staged++
	}
	return staged
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

// brokerGrace is how long the broker may be unreachable before it shows
// as a health condition (reconnects after a blip are normal).
const brokerGrace = time.Minute

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
			d.brokerDownSince = time.Time{}
			d.health.clear(condBroker, "")
		} else if d.brokerDownSince.IsZero() {
			d.brokerDownSince = now
		} else if now.Sub(d.brokerDownSince) > brokerGrace {
			d.health.set(condBroker, "", "warning", "no MQTT broker connection since "+d.brokerDownSince.UTC().Format(time.RFC3339)+"; reports wait in the outbox")
		}
	}
	if free, total, err := diskSpace(d.cfg.Gateway.StateDir); err == nil {
		if free < minFreeBytes || free*100 < total*minFreePercent {
			d.health.set(condDisk, "", "error", fmt.Sprintf("%d MiB free of %d MiB in %s: no device step starts", free>>20, total>>20, d.cfg.Gateway.StateDir))
		} else {
			d.health.clear(condDisk, "")
		}
	}
	if v, err := d.st.Flag("stop"); err != nil || v != "" {
		d.health.set(condStopped, "", "warning", "emergency stop by "+v+": no device step starts until resume")
	} else {
		d.health.clear(condStopped, "")
	}
	d.deriveHealth()
	d.mu.Lock()
	snap := d.snapshot
	d.mu.Unlock()
	if snap != nil && !snap.Expires.IsZero() && now.After(snap.Expires) {
		d.health.set(condExpired, "", "error", "trusted metadata expired "+snap.Expires.UTC().Format(time.RFC3339)+"; no new updates until a refresh succeeds")
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
	d.health.sync(condRecovery, "error", d.order, recovery)
	d.health.sync(condHeld, "warning", append(slices.Clone(d.order), selfSubject), held)
	d.health.sync(condRollback, "warning", d.order, rolled)
	d.health.sync(condMismatch, "error", d.order, mismatch)
}

// fetch downloads a target, showing "downloading" on the LEDs meanwhile.
func (d *Daemon) fetch(ctx context.Context, t tuf.Target) (string, error) {
	d.downloading.Store(true)
	d.showState()
	defer d.downloading.Store(false)
	return d.src.Fetch(ctx, t, func(done, total int64) { d.live.beat() })
}

// showState derives the LED state from health and jobs.
func (d *Daemon) showState() {
	if d.ind == nil {
		return
	}
	d.ind.Show(d.display())
}

// display is what the status display shows now.
func (d *Daemon) display() Display {
	disp := Display{Page: d.currentPage(), State: d.overallState()}
	switch disp.Page {
	case PageUplink:
		disp.Good = d.broker != nil && d.broker.Connected()
		disp.Bad = d.health.has(condRefresh)
	case PageDevices:
		disp.Good = !d.health.has(condUnreachable)
		disp.Bad = d.health.has(condMismatch) || d.health.has(condRollback)
	}
	return disp
}

// currentPage returns the page of the status display, back at PageState
// once pageTimeout has passed since the last press.
func (d *Daemon) currentPage() Page {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.page == 0 || !d.now().Before(d.pageUntil) {
		d.page = PageState
	}
	return d.page
}

// nextPage turns the status display to its next page (after the last, the
// first) and returns it.
func (d *Daemon) nextPage() Page {
	p := d.currentPage()%PageDevices + 1
	d.mu.Lock()
	d.page, d.pageUntil = p, d.now().Add(pageTimeout)
	d.mu.Unlock()
	return p
}

func (d *Daemon) overallState() State {
	if slices.ContainsFunc(trustConds, d.health.has) {
		return StateTrustProblem
	}
	if d.stopped() {
		return StateStopped
	}
	jobs, _ := d.st.Jobs() // oldest first
	if slices.ContainsFunc(jobs, func(j store.Job) bool { return j.Phase == jobRunning }) {
		return StatePushing // do not power off
	}
	// A device left needing recovery is a failure whatever else waits.
	if d.health.has(condRecovery) {
		return StateFailure
	}
	var awaiting, scheduled bool
	last := "" // outcome of the newest finished job
	for _, j := range jobs {
		switch {
		case j.Phase == jobRunning:
			return StatePushing
		case j.Phase == jobAwaitingApproval:
			awaiting = true
		case j.Phase == jobScheduled:
			scheduled = true
		case jobTerminal(j.Phase):
			last = j.Phase
		}
	}
	switch {
	case d.downloading.Load():
		return StateDownloading
	case awaiting:
		return StateAwaitingApproval
	case scheduled:
		return StateUpdateAvailable
	case last == jobSucceeded:
		return StateSuccess
	case last == jobFailed || last == jobPartial || last == jobHalted:
		return StateFailure
	}
	return StateIdle
}

// Status implements api.Backend.
func (d *Daemon) Status(ctx context.Context) (api.Status, error) {
	st := api.Status{Gateway: d.gatewayDoc()}
	for _, id := range d.order {
		st.Devices = append(st.Devices, d.deviceDoc(id))
	}
	jobs, err := d.st.Jobs()
	if err != nil {
		return st, err
	}
	for _, j := range jobs {
		st.Jobs = append(st.Jobs, d.jobDoc(j))
	}
	return st, nil
}

var _ api.Backend = (*Daemon)(nil)
