// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/daemon/store"
	"github.com/fieldgate/fieldgate/tuf"
)

// Reports: every transition writes its audit record and the documents it
// changed into the store's outbox in the same transaction; the MQTT session
// drains the outbox on its own schedule. A broker outage therefore never
// changes what happens to a device. Between transitions, the loop
// publishes on its tick what changed otherwise (a job staged, a block, a
// transfer's progress).

// reporter turns records into the published documents. It is fed plain
// values (records, the live view, what a job waits for) and calls back
// into nothing: what a document says is decided by whoever hands it the
// values. Safe for concurrent use.
type reporter struct {
	prefix string
	devCfg map[string]config.Device
	now    func() time.Time
	live   *live

	mu            sync.Mutex
	lastDevice    map[string]string // device id -> last published document, without its clock
	lastGateway   string            // last published gateway document, without volatile fields
	lastGatewayAt time.Time         // when it was published

	// Set by Daemon.Observe before Run.
	observeView   func(Observation)
	observeResult func([]byte)
}

func newReporter(prefix string, devCfg map[string]config.Device, now func() time.Time, l *live) *reporter {
	return &reporter{prefix: prefix, devCfg: devCfg, now: now, live: l, lastDevice: map[string]string{}}
}

func (r *reporter) topic(parts ...string) string {
	t := r.prefix
	for _, p := range parts {
		t += "/" + p
	}
	return t
}

// record appends an audit event for job j (and step i, if i >= 0) and
// enqueues the event, the job document (waiting: what the job waits for)
// and the step's device document, in tx.
func (r *reporter) record(tx *store.Tx, j store.Job, i int, typ string, detail map[string]any, waiting string) error {
	ev := store.Event{Type: typ, Job: j.ID, Detail: detail}
	if i >= 0 {
		ev.Device = j.Devices[i].Device
	}
	ev, err := r.audit(tx, ev)
	if err != nil {
		return err
	}
	if _, err := tx.Enqueue(r.topic("jobs", j.ID), r.jobDoc(j, waiting), true); err != nil {
		return err
	}
	if i >= 0 {
		rec, _ := tx.Device(ev.Device)
		doc := r.deviceDoc(rec, &j)
		if _, err := tx.Enqueue(r.topic("devices", ev.Device), doc, true); err != nil {
			return err
		}
		r.remember(doc)
	}
	return nil
}

// audit appends ev to the audit chain and queues it on the events topic.
// Detail entries that do not apply (empty strings, nil) are left out.
func (r *reporter) audit(tx *store.Tx, ev store.Event) (store.Event, error) {
	for k, v := range ev.Detail {
		if v == nil || v == "" {
			delete(ev.Detail, k)
		}
	}
	if len(ev.Detail) == 0 {
		ev.Detail = nil
	}
	ev, err := tx.Audit(ev)
	if err != nil {
		return ev, err
	}
	_, err = tx.Enqueue(r.topic("events"), eventDoc(ev), false)
	return ev, err
}

func eventDoc(e store.Event) api.Event {
	return api.Event{Seq: e.Seq, Time: e.Time.UTC(), TSMillis: e.Time.UnixMilli(), Type: e.Type, Job: e.Job, Device: e.Device,
		Actor: e.Actor, Detail: e.Detail, Hash: e.Hash}
}

// Every time in a published document is in UTC: a time.Time marshals with
// its zone's offset, and records read back from the store or made with a
// local clock carry the local zone.

// utcPtr returns t in UTC (nil stays nil).
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// utcProgress returns p with its start in UTC (p may be nil).
func utcProgress(p *api.Progress) *api.Progress {
	if p != nil {
		p.Started = utcPtr(p.Started)
	}
	return p
}

// remember records doc as the device's last published document.
func (r *reporter) remember(doc api.Device) {
	k := deviceKey(doc)
	r.mu.Lock()
	r.lastDevice[doc.ID] = k
	r.mu.Unlock()
}

// changed reports whether doc differs from the device's last published
// document.
func (r *reporter) changed(doc api.Device) bool {
	k := deviceKey(doc)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastDevice[doc.ID] != k
}

// deviceKey is a device document without its clock, for publish-on-change.
func deviceKey(doc api.Device) string {
	doc.Updated, doc.TSMillis = time.Time{}, 0
	raw, _ := json.Marshal(doc)
	return string(raw)
}

// gatewayDue reports whether doc is to be published: its content changed
// since the last gateway document published, or that one is heartbeat old
// (0: never). The clock, the queue's depth and the time of the last
// refresh are not content: an idle refresh publishes nothing, and
// last_refresh goes out with the next change or heartbeat. When it
// returns true, doc counts as published.
func (r *reporter) gatewayDue(doc api.Gateway, heartbeat time.Duration) bool {
	at := doc.Time
	doc.Time, doc.TSMillis, doc.OutboxDepth, doc.LastRefresh = time.Time{}, 0, 0, nil
	raw, _ := json.Marshal(doc)
	r.mu.Lock()
	defer r.mu.Unlock()
	if string(raw) == r.lastGateway && (heartbeat <= 0 || at.Sub(r.lastGatewayAt) < heartbeat) {
		return false
	}
	r.lastGateway, r.lastGatewayAt = string(raw), at
	return true
}

// deviceDoc builds a device's document from its record and the open job
// that involves it (nil if none), with what the live view knows.
func (r *reporter) deviceDoc(rec store.Device, j *store.Job) api.Device {
	id := rec.ID
	cfg := r.devCfg[id]
	now := r.now().UTC()
	doc := api.Device{
		ID: id, Protocol: cfg.Protocol, Group: cfg.Group, HardwareID: cfg.HardwareID,
		Version: rec.Version, ImageSHA256: rec.ImageSHA256, KnownGood: rec.KnownGood,
		Floor: rec.Floor, State: "idle", LastError: rec.LastError, Updated: now, TSMillis: now.UnixMilli(),
		Recovery: rec.Recovery,
	}
	for _, h := range rec.Holds {
		doc.Held = append(doc.Held, api.Hold{Target: h.Target, Version: h.Version, SHA256: h.SHA256, Job: h.Job, Reason: h.Reason, Since: h.Since.UTC()})
	}
	var ident struct{ Model, Serial string }
	if len(rec.Identity) > 0 {
		json.Unmarshal(rec.Identity, &ident)
		doc.Model, doc.Serial = ident.Model, ident.Serial
	}
	if rec.Version == "" && rec.LastError != "" {
		doc.State = "unreachable"
	}
	if rec.Mismatch != "" {
		doc.State, doc.LastError = "mismatch", rec.Mismatch
	}
	if rec.Recovery != "" {
		doc.State = "needs-recovery"
	}
	if j != nil && !jobTerminal(j.Phase) {
		for _, s := range j.Devices {
			if s.Device == id && !stepTerminal(s.Phase) {
				doc.Job, doc.State = j.ID, string(s.Phase)
				if s.Phase == stepPending {
					doc.State = "update-pending"
					if b, ok := r.live.blockOf(id); ok && b.kind == blockInterlock {
						doc.State = "blocked-by-interlock"
					}
				}
			}
		}
	}
	doc.Rollout = r.live.rolloutOf(id)
	doc.Progress = utcProgress(r.live.progressOf(id))
	return doc
}

// jobDoc builds a job's document; waiting is what the job as a whole waits
// for (an approval), if anything.
func (r *reporter) jobDoc(j store.Job, waiting string) api.Job {
	doc := api.Job{
		ID: j.ID, Target: j.Target, Version: j.Version, SHA256: j.SHA256, Length: j.Length,
		Severity: j.Severity, Phase: string(j.Phase), Reason: j.Reason,
		Created: j.Created.UTC(), Updated: j.Updated.UTC(), TSMillis: j.Updated.UnixMilli(),
		Group: j.Group, Window: j.Window, Policy: j.Policy, Waiting: waiting,
	}
	for _, a := range j.Approvals {
		doc.Approvals = append(doc.Approvals, api.Approval{Kind: a.Kind, Actor: a.Actor, At: a.At.UTC(), Expires: a.Expires.UTC()})
	}
	for _, s := range j.Devices {
		st := api.Step{Device: s.Device, Phase: string(s.Phase), Attempts: s.Attempts, From: s.From, Error: s.Error,
			Progress: utcProgress(r.live.progressOf(s.Device))}
		if s.Phase == stepSoak && !s.SoakUntil.IsZero() {
			until := s.SoakUntil.UTC()
			st.SoakUntil = &until
		}
		if b, ok := r.live.blockOf(s.Device); ok && s.Phase == stepPending {
			st.Blocked = b.why
			if doc.Waiting == "" {
				doc.Waiting = st.Blocked
			}
		}
		doc.Steps = append(doc.Steps, st)
	}
	return doc
}

// audit records an event that belongs to no job.
func (d *Daemon) audit(ev store.Event) {
	err := d.st.Update(func(tx *store.Tx) error {
		_, err := d.rep.audit(tx, ev)
		return err
	})
	if err != nil {
		d.health.set(condAudit, "", err.Error())
		d.log.Error("audit", "err", err)
		return
	}
	d.health.clear(condAudit, "")
}

func (d *Daemon) gatewayDoc() api.Gateway {
	g := api.Gateway{
		Online: true, ID: d.cfg.Gateway.ID, Site: d.cfg.Gateway.Site, Version: d.version,
		Cohort: tuf.Cohort(d.cfg.Gateway.Site, d.cfg.Gateway.ID),
		Time:   d.now().UTC(), Health: d.health.list(), Heartbeat: int64(d.cfg.MQTT.Heartbeat / time.Second),
	}
	g.TSMillis = g.Time.UnixMilli()
	g.Healthy = len(g.Health) == 0
	g.State = "running"
	if slices.ContainsFunc(g.Health, func(c api.Condition) bool { return c.Severity == "error" }) {
		g.State = "degraded"
	}
	if d.m.stopped() {
		g.State = "stopped"
	}
	d.mu.Lock()
	if d.snapshot != nil {
		exp := d.snapshot.Expires.UTC()
		g.MetadataExpires = &exp
		lr := d.lastRefresh.UTC()
		g.LastRefresh = &lr
	}
	d.mu.Unlock()
	if d.broker != nil {
		g.BrokerConnected = d.broker.Connected()
	}
	g.OutboxDepth, _ = d.st.Depth()
	if d.ind != nil {
		if g.LEDs = d.ind.LEDs(); g.LEDs != nil {
			g.Display = d.pages.current().String()
		}
	}
	return g
}

// publishGateway enqueues the gateway status when it changed, or when the
// last one is mqtt.heartbeat old.
func (d *Daemon) publishGateway() {
	defer d.observe()
	doc := d.gatewayDoc()
	if !d.rep.gatewayDue(doc, d.cfg.MQTT.Heartbeat) {
		return
	}
	err := d.st.Update(func(tx *store.Tx) error {
		_, err := tx.Enqueue(d.rep.topic("status"), doc, true)
		return err
	})
	if err != nil && d.errlog.allow("publish-status", time.Minute) {
		d.log.Error("publish status", "err", err)
	}
}

// deviceDocs returns every device's document as fieldgatectl status shows
// it, from one read of the records and the jobs.
func (d *Daemon) deviceDocs() ([]api.Device, error) {
	jobs, err := d.st.Jobs()
	if err != nil {
		return nil, err
	}
	open := map[string]*store.Job{}
	for i := range jobs { // oldest first: the newest open job wins
		if jobTerminal(jobs[i].Phase) {
			continue
		}
		for _, s := range jobs[i].Devices {
			open[s.Device] = &jobs[i]
		}
	}
	recs, err := d.st.Devices()
	if err != nil {
		return nil, err
	}
	byID := map[string]store.Device{}
	for _, r := range recs {
		byID[r.ID] = r
	}
	docs := make([]api.Device, 0, len(d.order))
	for _, id := range d.order {
		rec := byID[id]
		rec.ID = id
		docs = append(docs, d.rep.deviceDoc(rec, open[id]))
	}
	return docs, nil
}

// publishDevices enqueues the document of every device whose state changed
// since it was last published, so that the retained documents say what
// fieldgatectl status says (a job staged, a block, a hold, progress) and
// not only what step transitions wrote.
func (d *Daemon) publishDevices() {
	all, err := d.deviceDocs()
	if err != nil {
		return
	}
	docs := slices.DeleteFunc(all, func(doc api.Device) bool { return !d.rep.changed(doc) })
	if len(docs) == 0 {
		return
	}
	err = d.st.Update(func(tx *store.Tx) error {
		for _, doc := range docs {
			if _, err := tx.Enqueue(d.rep.topic("devices", doc.ID), doc, true); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if d.errlog.allow("publish-devices", time.Minute) {
			d.log.Error("publish devices", "err", err)
		}
		return
	}
	for _, doc := range docs {
		d.rep.remember(doc)
	}
}

// Observation is the whole local view handed to an observer (the
// Sparkplug node): what fieldgatectl status shows, each group's window and
// the version of the trusted TUF root (0 before the first refresh).
type Observation struct {
	api.Status
	Windows     []api.WindowInfo
	RootVersion int64
}

// Observe makes the daemon hand view the whole local view after every turn
// of its update loop (when it publishes the gateway status, changed or
// not), and result every command result document as it is published on
// {prefix}/cmd/{id}/result. Both are called on the daemon's goroutines
// and must not block. Call Observe before Run.
func (d *Daemon) Observe(view func(Observation), result func(doc []byte)) {
	d.rep.observeView, d.rep.observeResult = view, result
}

func (d *Daemon) observe() {
	if d.rep.observeView == nil {
		return
	}
	st, err := d.Status(context.Background())
	if err != nil {
		if d.errlog.allow("observe", time.Minute) {
			d.log.Error("observe status", "err", err)
		}
		return
	}
	o := Observation{Status: st, Windows: d.Windows()}
	d.mu.Lock()
	if d.snapshot != nil {
		o.RootVersion = d.snapshot.Versions["root"]
	}
	d.mu.Unlock()
	d.rep.observeView(o)
}

// commandResult hands a command result to the observer, if any.
func (r *reporter) commandResult(res commandResult) {
	if r.observeResult != nil {
		raw, _ := json.Marshal(res)
		r.observeResult(raw)
	}
}
