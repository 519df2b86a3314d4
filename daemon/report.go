package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/store"
)

// Reports: every transition writes its audit record and the documents it
// changed into the store's outbox in the same transaction; the MQTT session
// drains the outbox on its own schedule. A broker outage therefore never
// changes what happens to a device.

func (d *Daemon) topic(parts ...string) string {
	t := d.cfg.MQTT.Prefix
	for _, p := range parts {
		t += "/" + p
	}
	return t
}

// recordTx appends an audit event for job j (and step i, if i >= 0) and
// enqueues the event, the job document and the device document.
func (d *Daemon) recordTx(tx *store.Tx, j store.Job, i int, typ string, detail map[string]any) error {
	ev := store.Event{Type: typ, Job: j.ID, Detail: detail}
	if i >= 0 {
		ev.Device = j.Devices[i].Device
	}
	ev, err := d.auditTx(tx, ev)
	if err != nil {
		return err
	}
	if _, err := tx.Enqueue(d.topic("jobs", j.ID), d.jobDoc(j), true); err != nil {
		return err
	}
	if i >= 0 {
		rec, _ := tx.Device(ev.Device)
		doc := d.deviceDocFrom(rec, &j)
		if _, err := tx.Enqueue(d.topic("devices", ev.Device), doc, true); err != nil {
			return err
		}
		d.remember(doc)
	}
	return nil
}

// remember records doc as the device's last published document.
func (d *Daemon) remember(doc api.Device) {
	key := deviceKey(doc)
	d.mu.Lock()
	d.lastDevice[doc.ID] = key
	d.mu.Unlock()
}

// deviceKey is a device document without its volatile fields (the clock,
// transfer progress), for publish-on-change.
func deviceKey(doc api.Device) string {
	doc.Updated, doc.Progress = time.Time{}, nil
	raw, _ := json.Marshal(doc)
	return string(raw)
}

// publishDevices enqueues the document of every device whose state changed
// since it was last published, so that the retained documents say what
// fieldgatectl status says (a job staged, a block, a hold) and not only
// what step transitions wrote.
func (d *Daemon) publishDevices() {
	var docs []api.Device
	for _, id := range d.order {
		doc := d.deviceDoc(id)
		d.mu.Lock()
		same := d.lastDevice[id] == deviceKey(doc)
		d.mu.Unlock()
		if !same {
			docs = append(docs, doc)
		}
	}
	if len(docs) == 0 {
		return
	}
	err := d.st.Update(func(tx *store.Tx) error {
		for _, doc := range docs {
			if _, err := tx.Enqueue(d.topic("devices", doc.ID), doc, true); err != nil {
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
		d.remember(doc)
	}
}

// auditTx appends ev to the audit chain and queues it on the events topic.
// Detail entries that do not apply (empty strings, nil) are left out.
func (d *Daemon) auditTx(tx *store.Tx, ev store.Event) (store.Event, error) {
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
	_, err = tx.Enqueue(d.topic("events"), eventDoc(ev), false)
	return ev, err
}

// audit records an event that belongs to no job.
func (d *Daemon) audit(ev store.Event) {
	err := d.st.Update(func(tx *store.Tx) error {
		_, err := d.auditTx(tx, ev)
		return err
	})
	if err != nil {
		d.health.set(condAudit, "", "error", err.Error())
		d.log.Error("audit", "err", err)
		return
	}
	d.health.clear(condAudit, "")
}

func eventDoc(e store.Event) api.Event {
	return api.Event{Seq: e.Seq, Time: e.Time, Type: e.Type, Job: e.Job, Device: e.Device, Actor: e.Actor, Detail: e.Detail, Hash: e.Hash}
}

func (d *Daemon) gatewayDoc() api.Gateway {
	g := api.Gateway{
		Online: true, ID: d.cfg.Gateway.ID, Site: d.cfg.Gateway.Site, Version: d.version,
		Time: d.now().UTC(), Health: d.health.list(),
	}
	g.Healthy = len(g.Health) == 0
	g.State = "running"
	if slices.ContainsFunc(g.Health, func(c api.Condition) bool { return c.Severity == "error" }) {
		g.State = "degraded"
	}
	if d.stopped() {
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
	if l, ok := d.ind.(interface{ LEDs() map[string]string }); ok {
		g.LEDs = l.LEDs()
		g.Display = d.currentPage().String()
	}
	return g
}

// publishGateway enqueues the gateway status when it changed.
func (d *Daemon) publishGateway() {
	doc := d.gatewayDoc()
	cmp := doc // compare content, not the clock or the queue
	cmp.Time, cmp.OutboxDepth = time.Time{}, 0
	raw, _ := json.Marshal(cmp)
	d.mu.Lock()
	same := string(raw) == d.lastGateway
	d.lastGateway = string(raw)
	d.mu.Unlock()
	if same {
		return
	}
	err := d.st.Update(func(tx *store.Tx) error {
		_, err := tx.Enqueue(d.topic("status"), doc, true)
		return err
	})
	if err != nil && d.errlog.allow("publish-status", time.Minute) {
		d.log.Error("publish status", "err", err)
	}
}

func (d *Daemon) publishDevice(id string) {
	err := d.st.Update(func(tx *store.Tx) error {
		rec, _ := tx.Device(id)
		_, err := tx.Enqueue(d.topic("devices", id), d.deviceDocFrom(rec, d.openJobFor(id)), true)
		return err
	})
	if err != nil && d.errlog.allow("publish-device", time.Minute) {
		d.log.Error("publish device", "device", id, "err", err)
	}
}

func (d *Daemon) openJobFor(id string) *store.Job {
	jobs, _ := d.st.Jobs()
	for i := len(jobs) - 1; i >= 0; i-- {
		for _, s := range jobs[i].Devices {
			if s.Device == id && !jobTerminal(jobs[i].Phase) {
				return &jobs[i]
			}
		}
	}
	return nil
}

func (d *Daemon) deviceDoc(id string) api.Device {
	rec, _ := d.st.Device(id)
	return d.deviceDocFrom(rec, d.openJobFor(id))
}

// deviceDocFrom builds a device's document from its record and the job
// that involves it (nil if none).
func (d *Daemon) deviceDocFrom(rec store.Device, j *store.Job) api.Device {
	id := rec.ID
	cfg := d.devCfg[id]
	doc := api.Device{
		ID: id, Protocol: cfg.Protocol, Group: cfg.Group, HardwareID: cfg.HardwareID,
		Version: rec.Version, ImageSHA256: rec.ImageSHA256, KnownGood: rec.KnownGood,
		Floor: rec.Floor, State: "idle", LastError: rec.LastError, Updated: d.now().UTC(),
		Recovery: rec.Recovery,
	}
	for _, h := range rec.Holds {
		doc.Held = append(doc.Held, api.Hold{Target: h.Target, Version: h.Version, SHA256: h.SHA256, Job: h.Job, Reason: h.Reason, Since: h.Since})
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
				doc.Job, doc.State = j.ID, s.Phase
				if s.Phase == stepPending {
					doc.State = "update-pending"
					if why, ok := d.blocked.Load(id); ok && strings.HasPrefix(why.(string), "blocked by interlock") {
						doc.State = "blocked-by-interlock"
					}
				}
			}
		}
	}
	if p, ok := d.progress.Load(id); ok {
		pp := p.(api.Progress)
		doc.Progress = &pp
	}
	return doc
}

func (d *Daemon) jobDoc(j store.Job) api.Job {
	doc := api.Job{
		ID: j.ID, Target: j.Target, Version: j.Version, SHA256: j.SHA256, Length: j.Length,
		Severity: j.Severity, Phase: j.Phase, Reason: j.Reason, Created: j.Created, Updated: j.Updated,
		Group: j.Group, Window: j.Window, Policy: j.Policy,
	}
	if j.Phase == jobAwaitingApproval {
		_, doc.Waiting = d.approved(j)
	}
	for _, a := range j.Approvals {
		doc.Approvals = append(doc.Approvals, api.Approval{Kind: a.Kind, Actor: a.Actor, At: a.At, Expires: a.Expires})
	}
	for _, s := range j.Devices {
		st := api.Step{Device: s.Device, Phase: s.Phase, Attempts: s.Attempts, From: s.From, Error: s.Error}
		if p, ok := d.progress.Load(s.Device); ok {
			pp := p.(api.Progress)
			st.Progress = &pp
		}
		if why, ok := d.blocked.Load(s.Device); ok && s.Phase == stepPending {
			st.Blocked = why.(string)
			if doc.Waiting == "" {
				doc.Waiting = st.Blocked
			}
		}
		doc.Steps = append(doc.Steps, st)
	}
	return doc
}

// publishTargetRejected records, on each device it was meant for, why a
// target was refused (download or verification failure).
func (d *Daemon) publishTargetRejected(devs []string, target string, err error) {
	for _, id := range devs {
		d.st.UpdateDevice(id, func(r *store.Device) error {
			r.LastError = "target " + target + " rejected: " + err.Error()
			return nil
		})
		d.publishDevice(id)
	}
}

// inventory identifies every device, records a device's first-seen state
// as its known-good state, and raises drift when a version changed that no
// job installed.
func (d *Daemon) inventory(ctx context.Context) {
	busy := d.devicesInOpenJobs()
	for _, id := range d.order {
		if ctx.Err() != nil {
			return
		}
		if busy[id] {
			continue // a job owns the device's conversation and its record
		}
		ident, err := d.devs[id].Identify(ctx)
		now := d.now().UTC()
		if err != nil {
			d.health.set(condUnreachable, id, "warning", err.Error())
			d.log.Warn("identify", "device", id, "err", err)
			d.st.UpdateDevice(id, func(r *store.Device) error { r.LastError = "identify: " + err.Error(); return nil })
			d.publishDevice(id)
			continue
		}
		d.health.clear(condUnreachable, id)
		mismatch := ""
		if want := d.devCfg[id].HardwareID; ident.HardwareID != "" && ident.HardwareID != want {
			mismatch = fmt.Sprintf("device reports hardware id %q, configured %q", ident.HardwareID, want)
			d.health.set(condMismatch, id, "error", mismatch+": no update is offered to it")
		} else {
			d.health.clear(condMismatch, id)
		}
		var drift, first, lost, recovered bool
		var prev string
		_, err = d.st.UpdateDevice(id, func(r *store.Device) error {
			if r.FirstSeen.IsZero() {
				first = true
				r.FirstSeen, r.KnownGood = now, ident.Version
			} else if r.Version != "" && ident.Version != "" && r.Version != ident.Version {
				drift, prev = true, r.Version
			}
			switch {
			case ident.Version == "" && r.Recovery == "":
				r.Recovery = "device reports no running version"
				lost = true
			case ident.Version != "" && r.Recovery != "":
				r.Recovery, recovered = "", true
			}
			r.Version, r.ImageSHA256, r.LastSeen, r.LastError, r.Mismatch = ident.Version, ident.ImageSHA256, now, "", mismatch
			r.Identity, _ = json.Marshal(ident)
			return nil
		})
		if err != nil {
			d.log.Error("inventory", "device", id, "err", err)
			continue
		}
		switch {
		case lost:
			d.log.Warn("device reports no running version: it needs recovery", "device", id)
			d.audit(store.Event{Type: "device-needs-recovery", Device: id, Detail: map[string]any{"reason": "device reports no running version"}})
		case recovered:
			d.log.Info("device reports a version again", "device", id, "version", ident.Version)
			d.audit(store.Event{Type: "device-recovered", Device: id, Detail: map[string]any{"version": ident.Version}})
		case first:
			d.audit(store.Event{Type: "device-first-seen", Device: id, Detail: map[string]any{"version": ident.Version, "known_good": ident.Version}})
		case drift:
			d.log.Warn("drift: version changed without a job", "device", id, "from", prev, "to", ident.Version)
			d.audit(store.Event{Type: "device-drift", Device: id, Detail: map[string]any{"from": prev, "to": ident.Version}})
		}
		d.publishDevice(id)
	}
}
