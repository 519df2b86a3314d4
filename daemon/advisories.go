// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fieldgate/fieldgate/daemon/advisory"
	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/control"
	"github.com/fieldgate/fieldgate/daemon/store"
	"github.com/fieldgate/fieldgate/tuf"
)

// condAdvisory is raised per document (subject: the target name) that
// could not be fetched or parsed; the other documents are still used.
var condAdvisory = &condition{name: "advisory-unreadable", severity: "warning"}

// Keys of the store's advisories bucket: the documents in use, and per
// device the result last published ("device/" + id).
const (
	advisoryDocsKey   = "documents"
	advisoryFloorsKey = "floors" // advisory id (or "kev") -> the newest revision used
	advisoryDevPrefix = "device/"
)

// advisoryDoc is one CSAF or KEV document in use, as remembered in the
// store: enough to read its verified blob again without metadata (a
// restart on an island).
type advisoryDoc struct {
	Name     string            `json:"name"`
	Role     string            `json:"role"`
	Length   int64             `json:"length"`
	Hashes   map[string]string `json:"hashes"`
	Kind     string            `json:"kind"`
	ID       string            `json:"id"`
	Revision string            `json:"revision"`
}

func (a advisoryDoc) key() string { return a.Name + "\x00" + a.Hashes["sha256"] }

// parsedDoc is a document read and parsed; exactly one of adv and kev is set.
type parsedDoc struct {
	adv *advisory.Advisory
	kev *advisory.KEV
}

// advisoryRecord is what is kept per device: the document last published
// and the firmware it was computed for.
type advisoryRecord struct {
	Firmware string               `json:"firmware"`
	Doc      api.DeviceAdvisories `json:"doc"`
}

// advisories is the daemon's advisory state. The loop (and refresh, which
// the loop runs) writes it; the control socket and the job scheduler read
// it. Safe for concurrent use.
type advisories struct {
	mu      sync.Mutex
	loaded  bool                 // the documents remembered in the store were read
	docs    []advisoryDoc        // in use, sorted by name
	parsed  map[string]parsedDoc // by advisoryDoc.key
	index   *advisory.Index
	ids     map[string]bool // advisory ids the index holds
	gen     int             // bumped on every rebuild of the index
	snap    *tuf.Snapshot   // the snapshot the documents were last synced from
	lastKey string          // what the last evaluation was computed from
	results map[string]api.DeviceAdvisories
}

// syncAdvisories brings the advisory documents in line with the newest
// verified snapshot (a refresh or an offline bundle): the csaf and kev
// documents whose name or sha256 changed are read from the blob store
// (fetched first if not there) and parsed, and the index is rebuilt when
// the set changed. A document that cannot be read or parsed raises
// advisory-unreadable naming it; the others are used. On its first call it
// reads the documents remembered in the store, so a gateway restarted with
// no uplink matches as before.
func (d *Daemon) syncAdvisories(ctx context.Context) {
	d.mu.Lock()
	snap := d.snapshot
	d.mu.Unlock()
	a := &d.adv
	a.mu.Lock()
	loaded, same := a.loaded, snap == a.snap
	a.mu.Unlock()
	if !loaded {
		var docs []advisoryDoc
		if err := d.st.AdvisoryRecord(advisoryDocsKey, &docs); err != nil && !errors.Is(err, store.ErrNotFound) {
			d.log.Warn("advisory documents", "err", err)
		}
		d.useAdvisoryDocs(ctx, docs, false)
		a.mu.Lock()
		a.loaded = true
		a.mu.Unlock()
	}
	if snap == nil || same {
		return
	}
	var docs []advisoryDoc
	for _, doc := range snap.Documents {
		if doc.Meta.Kind != tuf.DocumentCSAF && doc.Meta.Kind != tuf.DocumentKEV {
			continue
		}
		docs = append(docs, advisoryDoc{Name: doc.Name, Role: doc.Role, Length: doc.Length, Hashes: doc.Hashes,
			Kind: doc.Meta.Kind, ID: doc.Meta.ID, Revision: doc.Meta.Revision})
	}
	d.useAdvisoryDocs(ctx, docs, true)
	a.mu.Lock()
	a.snap = snap
	a.mu.Unlock()
}

// useAdvisoryDocs makes docs the documents in use, parsing those not
// parsed yet, and rebuilds the index if the set changed; remember stores
// the list.
func (d *Daemon) useAdvisoryDocs(ctx context.Context, docs []advisoryDoc, remember bool) {
	slices.SortFunc(docs, func(x, y advisoryDoc) int { return strings.Compare(x.Name, y.Name) })
	a := &d.adv
	a.mu.Lock()
	changed := a.index == nil || !slices.EqualFunc(docs, a.docs, func(x, y advisoryDoc) bool { return x.key() == y.key() })
	old, oldDocs := a.parsed, a.docs
	a.mu.Unlock()
	if !changed {
		return
	}
	parsed := map[string]parsedDoc{}
	for _, doc := range docs {
		if p, ok := old[doc.key()]; ok {
			parsed[doc.key()] = p
			continue
		}
		p, err := d.readAdvisoryDoc(ctx, doc)
		if err != nil {
			d.health.set(condAdvisory, doc.Name, err.Error())
			d.log.Warn("advisory document not used", "target", doc.Name, "err", err)
			continue
		}
		d.health.clear(condAdvisory, doc.Name)
		parsed[doc.key()] = p
	}
	for _, doc := range oldDocs { // a document no longer listed raises nothing
		if !slices.ContainsFunc(docs, func(x advisoryDoc) bool { return x.Name == doc.Name }) {
			d.health.clear(condAdvisory, doc.Name)
		}
	}

	// The newest revision of each advisory id, and the newest KEV catalog.
	byID := map[string]advisoryDoc{}
	var kev *advisory.KEV
	var kevDoc advisoryDoc
	for _, doc := range docs {
		p, ok := parsed[doc.key()]
		switch {
		case !ok:
		case p.kev != nil:
			if kev == nil || tuf.CompareRevisions(doc.Revision, kevDoc.Revision) > 0 {
				kev, kevDoc = p.kev, doc
			}
		default:
			id := p.adv.ID
			if prev, ok := byID[id]; !ok || tuf.CompareRevisions(p.adv.Revision, parsed[prev.key()].adv.Revision) > 0 {
				byID[id] = doc
			}
		}
	}
	// TUF keeps the metadata from going back, not a document's own
	// revision: a signer may republish an older revision of an advisory
	// (fieldgate-repo refuses it without --force). The gateway keeps a
	// floor per advisory id and never uses a revision below the newest it
	// has used; it keeps the one it had, if this run still holds it.
	floors := map[string]string{}
	if err := d.st.AdvisoryRecord(advisoryFloorsKey, &floors); err != nil && !errors.Is(err, store.ErrNotFound) {
		d.log.Warn("advisory floors", "err", err)
	}
	raised := false
	keep := func(id, rev string, doc advisoryDoc) (advisoryDoc, bool) {
		f, ok := floors[id]
		if !ok || tuf.CompareRevisions(rev, f) > 0 {
			floors[id], raised = rev, true
			return doc, true
		}
		if tuf.CompareRevisions(rev, f) == 0 {
			return doc, true
		}
		why := fmt.Sprintf("revision %s of %s is older than revision %s used before: not used", rev, id, f)
		d.health.set(condAdvisory, doc.Name, why)
		d.log.Warn("advisory rollback refused", "target", doc.Name, "id", id, "revision", rev, "floor", f)
		for _, o := range oldDocs {
			p, ok := old[o.key()]
			if !ok || o.Kind != doc.Kind {
				continue
			}
			if (p.kev != nil && id == "kev" && tuf.CompareRevisions(o.Revision, f) == 0) ||
				(p.adv != nil && p.adv.ID == id && tuf.CompareRevisions(p.adv.Revision, f) == 0) {
				parsed[o.key()] = p
				docs = append(docs, o)
				return o, true
			}
		}
		return advisoryDoc{}, false
	}
	if kev != nil {
		if o, ok := keep("kev", kevDoc.Revision, kevDoc); !ok {
			kev = nil
		} else if o.key() != kevDoc.key() {
			kev = parsed[o.key()].kev
		}
	}
	for id, doc := range byID {
		if o, ok := keep(id, parsed[doc.key()].adv.Revision, doc); ok {
			byID[id] = o
		} else {
			delete(byID, id)
		}
	}
	if raised && remember {
		if err := d.st.Update(func(tx *store.Tx) error { return tx.PutAdvisoryRecord(advisoryFloorsKey, floors) }); err != nil {
			d.log.Error("remember advisory floors", "err", err)
		}
	}
	var advs []*advisory.Advisory
	ids := map[string]bool{}
	for _, doc := range byID {
		advs = append(advs, parsed[doc.key()].adv)
		ids[parsed[doc.key()].adv.ID] = true
	}
	slices.SortFunc(advs, func(x, y *advisory.Advisory) int { return strings.Compare(x.ID, y.ID) })
	x := advisory.NewIndex(advs, kev)
	a.mu.Lock()
	a.docs, a.parsed, a.index, a.ids = docs, parsed, x, ids
	a.gen++
	a.mu.Unlock()
	d.log.Info("advisories", "documents", len(docs), "advisories", len(advs), "kev", kev != nil)
	if remember {
		if err := d.st.Update(func(tx *store.Tx) error { return tx.PutAdvisoryRecord(advisoryDocsKey, docs) }); err != nil {
			d.log.Error("remember advisory documents", "err", err)
		}
	}
}

// readAdvisoryDoc reads a document's verified bytes through the source
// (the blob store first; tuf.Client.Fetch checks length and hashes), checks
// them once more and parses them.
func (d *Daemon) readAdvisoryDoc(ctx context.Context, doc advisoryDoc) (parsedDoc, error) {
	if doc.Length > tuf.MaxDocumentBytes {
		return parsedDoc{}, fmt.Errorf("%d bytes, limit %d", doc.Length, tuf.MaxDocumentBytes)
	}
	p, err := d.src.Fetch(ctx, tuf.Target{Name: doc.Name, Role: doc.Role, Length: doc.Length, Hashes: doc.Hashes}, nil)
	if err != nil {
		return parsedDoc{}, err
	}
	f, err := os.Open(p)
	if err != nil {
		return parsedDoc{}, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, doc.Length+1))
	if err != nil {
		return parsedDoc{}, err
	}
	sum := sha256.Sum256(raw)
	if int64(len(raw)) != doc.Length || hex.EncodeToString(sum[:]) != doc.Hashes["sha256"] {
		return parsedDoc{}, fmt.Errorf("stored bytes differ from the signed length or sha256")
	}
	if doc.Kind == tuf.DocumentKEV {
		k, err := advisory.ParseKEV(bytes.NewReader(raw))
		if err != nil {
			return parsedDoc{}, fmt.Errorf("parse KEV catalog: %w", err)
		}
		return parsedDoc{kev: k}, nil
	}
	adv, err := advisory.ParseCSAF(bytes.NewReader(raw))
	if err != nil {
		return parsedDoc{}, fmt.Errorf("parse CSAF: %w", err)
	}
	if doc.ID != "" && adv.ID != doc.ID {
		return parsedDoc{}, fmt.Errorf("document is %s, its signed metadata says %s", adv.ID, doc.ID)
	}
	return parsedDoc{adv: adv}, nil
}

// evaluateAdvisories matches every device's inventory record against the
// index when either changed (a new document set, a new firmware version
// after an update, a new snapshot's targets), publishes each device's
// result retained on {prefix}/advisories/{device} when it differs from the
// one stored, and audits advisory-matched for every (device, advisory, CVE)
// that became affected and advisory-fixed for every one that stopped being
// affected. The result and its events are written in one transaction with
// the record, so a restart neither repeats nor loses an event. Called from
// the loop only.
func (d *Daemon) evaluateAdvisories(ctx context.Context) {
	d.syncAdvisories(ctx)
	inv, err := d.Inventory(ctx)
	if err != nil {
		return
	}
	d.mu.Lock()
	snap := d.snapshot
	d.mu.Unlock()
	a := &d.adv
	a.mu.Lock()
	x, ids, gen, last := a.index, a.ids, a.gen, a.lastKey
	a.mu.Unlock()
	verdicts := map[string][]advisory.Verdict{}
	for _, dev := range inv.Devices {
		vs, err := d.st.Verdicts(dev.ID)
		if err != nil {
			d.log.Warn("verdicts", "device", dev.ID, "err", err)
		}
		verdicts[dev.ID] = vs
	}
	now := d.now()
	raw, _ := json.Marshal(inv)
	vraw, _ := json.Marshal(verdicts)
	// A risk acceptance ends with its day: evaluate again on a new day.
	key := fmt.Sprintf("%d %p %s %s %s", gen, snap, now.UTC().Format(time.DateOnly), raw, vraw)
	if key == last {
		return
	}
	var targets []tuf.Target
	if snap != nil {
		targets = snap.Targets
	}
	results := map[string]api.DeviceAdvisories{}
	ok := true
	for _, dev := range inv.Devices {
		var prev advisoryRecord
		if err := d.st.AdvisoryRecord(advisoryDevPrefix+dev.ID, &prev); err != nil && !errors.Is(err, store.ErrNotFound) {
			d.log.Warn("advisory record", "device", dev.ID, "err", err)
		}
		doc := deviceAdvisories(x, ids, dev, verdicts[dev.ID], now, targets, snap != nil, prev)
		results[dev.ID] = doc
		if err := d.publishDeviceAdvisories(dev, doc, prev); err != nil {
			ok = false
			if d.errlog.allow("publish-advisories", time.Minute) {
				d.log.Error("publish advisories", "device", dev.ID, "err", err)
			}
		}
	}
	a.mu.Lock()
	a.results = results
	if ok {
		a.lastKey = key
	}
	a.mu.Unlock()
}

// publishDeviceAdvisories stores doc, enqueues it if it changed and audits
// the events it implies, in one transaction.
func (d *Daemon) publishDeviceAdvisories(dev api.InventoryDevice, doc api.DeviceAdvisories, prev advisoryRecord) error {
	before := pairs(prev.Doc)
	after := pairs(doc)
	var events []store.Event
	for _, k := range slices.Sorted(mapKeys(after)) {
		c, p := after[k], before[k]
		adv, cve, _ := strings.Cut(k, " ")
		switch {
		case open(c.Status) && !open(p.Status):
			events = append(events, store.Event{Type: "advisory-matched", Device: dev.ID,
				Detail: map[string]any{"advisory": adv, "cve": cve, "priority": doc.Priority, "status": c.Status}})
		case c.Status == string(advisory.Fixed) && open(p.Status):
			events = append(events, store.Event{Type: "advisory-fixed", Device: dev.ID,
				Detail: map[string]any{"advisory": adv, "cve": cve, "firmware": dev.Firmware, "fixed_by": c.FixedBy}})
		}
	}
	oldRaw, _ := json.Marshal(prev.Doc)
	newRaw, _ := json.Marshal(doc)
	changed := !bytes.Equal(oldRaw, newRaw)
	if !changed && len(events) == 0 && prev.Firmware == dev.Firmware {
		return nil
	}
	return d.st.Update(func(tx *store.Tx) error {
		if err := tx.PutAdvisoryRecord(advisoryDevPrefix+dev.ID, advisoryRecord{Firmware: dev.Firmware, Doc: doc}); err != nil {
			return err
		}
		if changed {
			if _, err := tx.Enqueue(d.rep.topic("advisories", dev.ID), doc, true); err != nil {
				return err
			}
		}
		for _, ev := range events {
			if _, err := d.rep.audit(tx, ev); err != nil {
				return err
			}
		}
		return nil
	})
}

// open reports whether a status asks for action.
func open(s string) bool {
	return s == string(advisory.Affected) || s == string(advisory.UnderInvestigation)
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// pairs indexes a document's findings by "advisory cve".
func pairs(doc api.DeviceAdvisories) map[string]api.AdvisoryCVE {
	out := map[string]api.AdvisoryCVE{}
	for _, m := range doc.Matches {
		for _, c := range m.CVEs {
			out[m.Advisory+" "+c.CVE] = c
		}
	}
	return out
}

// deviceAdvisories computes one device's document. The site's verdicts
// apply (advisory.ApplyVerdicts; a finding's verdict is its Effective
// text). A finding whose fixed
// version the running firmware meets (advisory.Compare, the tolerant
// comparison the advisories' own ranges are evaluated with) is fixed. A
// CVE the device was matched for before and that no longer matches, while
// its advisory is still in use and the firmware changed, is kept as fixed:
// the update took the device out of the affected range. Without a
// snapshot (a restart before the first refresh) the target links of prev
// are kept.
// matchDevice matches dev against the index (nil: nothing) and marks a
// finding fixed when the device's firmware meets its fixed version:
// advisories list the affected versions, the firmware moves on.
func matchDevice(x *advisory.Index, dev api.InventoryDevice) []advisory.Match {
	if x == nil {
		return nil
	}
	ms := x.Match(InventoryItem(dev))
	fw, hasFW := advisory.ParseVersion(dev.Firmware)
	for i := range ms {
		for j := range ms[i].Findings {
			f := &ms[i].Findings[j]
			if f.Status != advisory.Affected || f.FixedBy == "" || !hasFW {
				continue
			}
			if fix, ok := advisory.ParseVersion(f.FixedBy); ok && advisory.Compare(fw, fix) >= 0 {
				f.Status = advisory.Fixed
				f.Reason = "firmware " + dev.Firmware + " is at or past the fixed version " + f.FixedBy
			}
		}
	}
	return ms
}

// currentMatches implements advisoryState (triage.go): the device's
// matches now, before verdicts, so a verdict is pinned to the revision and
// the findings the engineer decided on.
func (d *Daemon) currentMatches(device string) []advisory.Match {
	a := &d.adv
	a.mu.Lock()
	x := a.index
	a.mu.Unlock()
	inv, err := d.Inventory(context.Background())
	if x == nil || err != nil {
		return nil
	}
	for _, dev := range inv.Devices {
		if dev.ID == device {
			return matchDevice(x, dev)
		}
	}
	return nil
}

func deviceAdvisories(x *advisory.Index, ids map[string]bool, dev api.InventoryDevice, verdicts []advisory.Verdict, now time.Time,
	targets []tuf.Target, haveTargets bool, prev advisoryRecord) api.DeviceAdvisories {
	item := InventoryItem(dev)
	ms := matchDevice(x, dev)
	ms = advisory.ApplyVerdicts(dev.ID, ms, verdicts, nil, now) // after the fixed check: a verdict is on what is still affected
	pr := advisory.Prioritize(item, ms)
	doc := api.DeviceAdvisories{Device: dev.ID, Priority: api.PriorityNone, Matches: []api.AdvisoryMatch{}}
	if len(ms) > 0 {
		doc.Priority, doc.Reasons = string(pr.Decision), pr.Reasons
		if pr.CVE != "" {
			doc.Reasons = append([]string{pr.Advisory + " " + pr.CVE + " decides"}, doc.Reasons...)
		}
	}
	prevPairs := pairs(prev.Doc)
	for _, m := range ms {
		am := api.AdvisoryMatch{Advisory: m.Advisory, Revision: m.Revision, Title: m.Title, Tier: m.Tier.String(), Confidence: string(m.Confidence)}
		for _, f := range m.Findings {
			c := api.AdvisoryCVE{CVE: f.CVE, Status: string(f.Status), KEV: f.KEV, CVSS: f.CVSS, CVSSv4Safety: safetyMetric(f.CVSS4),
				FixedBy: f.FixedBy, Remediation: f.Remediations, Verdict: f.Effective}
			if open(c.Status) {
				if haveTargets {
					c.FixedByTarget = fixingTarget(targets, dev.HardwareID, dev.Firmware, m.Advisory, f)
				} else {
					c.FixedByTarget = prevPairs[m.Advisory+" "+f.CVE].FixedByTarget
				}
			}
			am.CVEs = append(am.CVEs, c)
		}
		slices.SortFunc(am.CVEs, func(x, y api.AdvisoryCVE) int { return strings.Compare(x.CVE, y.CVE) })
		doc.Matches = append(doc.Matches, am)
	}
	// Matches the update took the device out of stay, as fixed.
	for _, pm := range prev.Doc.Matches {
		if !ids[pm.Advisory] || dev.Firmware == "" {
			continue
		}
		i := slices.IndexFunc(doc.Matches, func(m api.AdvisoryMatch) bool { return m.Advisory == pm.Advisory })
		var kept []api.AdvisoryCVE
		for _, c := range pm.CVEs {
			if i >= 0 && slices.ContainsFunc(doc.Matches[i].CVEs, func(x api.AdvisoryCVE) bool { return x.CVE == c.CVE }) {
				continue
			}
			if c.Status == string(advisory.Fixed) || (open(c.Status) && dev.Firmware != prev.Firmware) {
				c.Status, c.FixedByTarget = string(advisory.Fixed), ""
				kept = append(kept, c)
			}
		}
		if len(kept) == 0 {
			continue
		}
		if i < 0 {
			pm.CVEs = kept
			doc.Matches = append(doc.Matches, pm)
			continue
		}
		doc.Matches[i].CVEs = append(doc.Matches[i].CVEs, kept...)
		slices.SortFunc(doc.Matches[i].CVEs, func(x, y api.AdvisoryCVE) int { return strings.Compare(x.CVE, y.CVE) })
	}
	if doc.Priority == api.PriorityNone && len(doc.Matches) > 0 {
		doc.Priority, doc.Reasons = api.PriorityTrack, []string{"no affected finding"}
	}
	slices.SortFunc(doc.Matches, func(x, y api.AdvisoryMatch) int { return strings.Compare(x.Advisory, y.Advisory) })
	return doc
}

// fixingTarget names the target for hardware id hw, newer than the running
// firmware, that fixes finding f of advisory adv: its signed version meets
// the vendor fix's version (advisory.Compare), or its signed advisories
// list the CVE or the advisory id. Of several, the newest
// (tuf.CompareVersions) is named: it is the one the gateway offers.
func fixingTarget(targets []tuf.Target, hw, firmware, adv string, f advisory.Finding) string {
	fix, hasFix := advisory.ParseVersion(f.FixedBy)
	best := ""
	var bestVer string
	for _, t := range targets {
		if t.MetaErr != nil || !slices.Contains(t.Meta.Hardware, hw) {
			continue
		}
		if firmware != "" && tuf.CompareVersions(t.Meta.Version, firmware) <= 0 {
			continue
		}
		meets := slices.Contains(t.Meta.Advisories, f.CVE) || slices.Contains(t.Meta.Advisories, adv)
		if !meets && hasFix && f.FixedBy != "" {
			if v, ok := advisory.ParseVersion(t.Meta.Version); ok && advisory.Compare(v, fix) >= 0 {
				meets = true
			}
		}
		if meets && (best == "" || tuf.CompareVersions(t.Meta.Version, bestVer) > 0) {
			best, bestVer = t.Name, t.Meta.Version
		}
	}
	return best
}

// safetyMetric reads the Safety supplemental metric (S) of a CVSS 4.0
// vector: present, negligible, or "" when the vector has none.
func safetyMetric(v4 string) string {
	for _, m := range strings.Split(v4, "/") {
		switch m {
		case "S:P":
			return "present"
		case "S:N":
			return "negligible"
		}
	}
	return ""
}

// advisoryRank orders devices by their advisory priority for the job
// scheduler: act 0, attend 1, track 2, none (or not evaluated) 3.
func (d *Daemon) advisoryRank(dev string) int {
	d.adv.mu.Lock()
	defer d.adv.mu.Unlock()
	return priorityRank(d.adv.results[dev].Priority)
}

func priorityRank(p string) int {
	switch p {
	case api.PriorityAct:
		return 0
	case api.PriorityAttend:
		return 1
	case api.PriorityTrack:
		return 2
	}
	return 3
}

// Advisories returns every configured device's advisories as last
// evaluated (or, before the first evaluation of this run, as last stored),
// in configuration order. Safe for concurrent use.
func (d *Daemon) Advisories(context.Context) (api.Advisories, error) {
	out := api.Advisories{Gateway: d.cfg.Gateway.ID, Devices: make([]api.DeviceAdvisories, 0, len(d.order))}
	d.adv.mu.Lock()
	results := d.adv.results
	d.adv.mu.Unlock()
	for _, id := range d.order {
		doc, ok := results[id]
		if !ok {
			var rec advisoryRecord
			if err := d.st.AdvisoryRecord(advisoryDevPrefix+id, &rec); err != nil && !errors.Is(err, store.ErrNotFound) {
				return out, err
			}
			doc = rec.Doc
			if doc.Device == "" {
				doc = api.DeviceAdvisories{Device: id, Priority: api.PriorityNone, Matches: []api.AdvisoryMatch{}}
			}
		}
		out.Devices = append(out.Devices, doc)
	}
	return out, nil
}

// The control socket serves the advisories.
var _ control.AdvisoryReader = (*Daemon)(nil)
