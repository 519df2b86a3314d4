// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fieldgate/fieldgate/daemon/advisory"
	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/daemon/control"
	"github.com/fieldgate/fieldgate/daemon/store"
	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/devices/devicetest"
	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
	"github.com/fieldgate/fieldgate/tuf/tuftest"
)

// sharedTestdata is the project's shared folder of real public documents,
// beside the repository (../shared/testdata/README.md).
const sharedTestdata = "../../shared/testdata"

func needSharedTestdata(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(sharedTestdata, "csaf", "cisa-ot-2024")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("shared testdata missing under CI: %v", err)
		}
		t.Skipf("shared testdata (../shared/testdata beside the repository) not found: %v", err)
	}
	return sharedTestdata
}

// Real 2024 advisories and the devices they concern:
//   - ICSA-24-123-01, CyberPower PowerPanel Business <= 4.9.0, nine CVEs,
//     vendor fix v4.10.1: device "ups", updated by target ppb/4.10.1.bin;
//   - ICSA-24-011-08, Siemens SICAM A8000 CP-8031 by order number
//     6MF2803-1AA00, fixed in CPCI85 V05.20: device "rtu", no update;
//   - ICSA-24-065-01, Nice Linear eMerge E3-Series <= 1.00-06, twelve CVEs,
//     CVE-2019-7256 on CISA KEV: device "door", exposed in the DMZ.
var advisoryFiles = map[string]string{
	"ICSA-24-123-01": "icsa-24-123-01.json",
	"ICSA-24-011-08": "icsa-24-011-08.json",
	"ICSA-24-065-01": "icsa-24-065-01.json",
}

// advisoryRepo publishes the three advisories, the KEV catalog and the
// firmware that fixes the ups as a real signed repository.
func advisoryRepo(t *testing.T) *tuftest.Repo {
	t.Helper()
	dir := needSharedTestdata(t)
	repo := tuftest.New(t)
	released := time.Date(2024, 5, 2, 0, 0, 0, 0, time.UTC)
	for id, file := range advisoryFiles {
		if _, err := repo.Pub.AddDocument("advisories/"+id+"/"+file, filepath.Join(dir, "csaf", "cisa-ot-2024", file),
			tuf.DocumentMeta{Kind: tuf.DocumentCSAF, ID: id, Revision: "1", Released: released}, publish.DocumentOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := repo.Pub.AddDocument("advisories/kev/known_exploited_vulnerabilities.json", filepath.Join(dir, "kev", "known_exploited_vulnerabilities.json"),
		tuf.DocumentMeta{Kind: tuf.DocumentKEV, ID: "kev", Revision: "2025.01.01", Released: released}, publish.DocumentOptions{}); err != nil {
		t.Fatal(err)
	}
	repo.Add("ppb/4.10.1.bin", devicetest.Image("4.10.1", 300), tuf.Meta{Hardware: []string{"hw-ppb"}, Version: "4.10.1", SecurityCounter: 2, Protocol: "fake"})
	repo.Commit()
	return repo
}

// openStateStore opens a store in a new state directory, closed when the
// test ends; a restart reopens the daemon over both.
func openStateStore(t *testing.T) (string, *store.Store) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return dir, st
}

// advisoryDevices are the three devices, each its own fake.
func advisoryDevices() map[string]*devicetest.Device {
	return map[string]*devicetest.Device{
		"ups":  devicetest.New("hw-ppb", "4.9.0"),
		"rtu":  devicetest.New("hw-rtu", "CPCI85 V05.10"),
		"door": devicetest.New("hw-door", "1.00-06"),
	}
}

// newAdvisoryDaemon builds a daemon over dir and st (a restart reuses
// both) with the three devices; updates need a local approval.
func newAdvisoryDaemon(t *testing.T, dir string, st *store.Store, src Source, imp Importer, fakes map[string]*devicetest.Device) *Daemon {
	t.Helper()
	cfg := &config.Config{
		Gateway: config.Gateway{ID: "gw", Site: "s", StateDir: dir, RefreshInterval: time.Minute, InventoryInterval: time.Hour, MaxParallel: 2},
		MQTT:    config.MQTT{Prefix: "fieldgate/v1/s/gw"},
		Windows: []config.Window{{Name: "w", Start: "0 0 * * *", Duration: 24 * time.Hour, TimeZone: "UTC"}},
		Groups:  []config.Group{{Name: "g", Window: "w", Approval: config.ApprovalLocal, Canary: 1, ApprovalTTL: time.Hour}},
		Devices: []config.Device{
			{ID: "ups", Group: "g", Protocol: "fake", HardwareID: "hw-ppb", Address: "x", Segment: "ups",
				Vendor: "CyberPower", Product: "PowerPanel Business", Zone: "dmz", Criticality: "high"},
			{ID: "rtu", Group: "g", Protocol: "fake", HardwareID: "hw-rtu", Address: "x", Segment: "rtu",
				Vendor: "Siemens", Product: "SICAM A8000 CP-8031", Model: "6MF2803-1AA00", Zone: "control"},
			{ID: "door", Group: "g", Protocol: "fake", HardwareID: "hw-door", Address: "x", Segment: "door",
				Vendor: "Nice", Product: "Linear eMerge E3-Series", Zone: "dmz", Criticality: "medium"},
		},
	}
	devs := map[string]devices.Device{}
	for id, f := range fakes {
		devs[id] = f
	}
	devs["rtu"] = ownModel{fakes["rtu"], "6MF2803-1AA00"} // the fake reports model "fake"
	d, err := New(Deps{Config: cfg, Store: st, Source: src, Importer: imp, Devices: devs, Version: "test",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	d.m.pollInterval = 10 * time.Millisecond
	return d
}

// ownModel is a fake device that reports its order number as a real one
// does (a Modbus device's ProductCode).
type ownModel struct {
	*devicetest.Device
	model string
}

func (o ownModel) Identify(ctx context.Context) (devices.Identity, error) {
	id, err := o.Device.Identify(ctx)
	id.Model = o.model
	return id, err
}

// outboxSince returns the messages enqueued after seq, and the last seq.
func outboxSince(t *testing.T, st *store.Store, after uint64) ([]store.Message, uint64) {
	t.Helper()
	msgs, err := st.Pending(after, 100000)
	if err != nil {
		t.Fatal(err)
	}
	last := after
	if n := len(msgs); n > 0 {
		last = msgs[n-1].Seq
	}
	return msgs, last
}

// advisoryEvents returns "type device advisory cve" of the advisory
// events among msgs.
func advisoryEvents(t *testing.T, msgs []store.Message) []string {
	t.Helper()
	var out []string
	for _, m := range msgs {
		if !strings.HasSuffix(m.Topic, "/events") {
			continue
		}
		var ev api.Event
		if err := json.Unmarshal(m.Payload, &ev); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(ev.Type, "advisory-") {
			out = append(out, fmt.Sprint(ev.Type, " ", ev.Device, " ", ev.Detail["advisory"], " ", ev.Detail["cve"]))
		}
	}
	slices.Sort(out)
	return out
}

// retainedAdvisories returns the last advisories document enqueued for
// each device among msgs.
func retainedAdvisories(t *testing.T, msgs []store.Message) map[string]api.DeviceAdvisories {
	t.Helper()
	out := map[string]api.DeviceAdvisories{}
	for _, m := range msgs {
		dev, ok := strings.CutPrefix(m.Topic, "fieldgate/v1/s/gw/advisories/")
		if !ok {
			continue
		}
		if !m.Retained {
			t.Errorf("%s is not retained", m.Topic)
		}
		var doc api.DeviceAdvisories
		if err := json.Unmarshal(m.Payload, &doc); err != nil {
			t.Fatal(err)
		}
		out[dev] = doc
	}
	return out
}

func findCVE(doc api.DeviceAdvisories, adv, cve string) (api.AdvisoryCVE, bool) {
	for _, m := range doc.Matches {
		if m.Advisory != adv {
			continue
		}
		for _, c := range m.CVEs {
			if c.CVE == cve {
				return c, true
			}
		}
	}
	return api.AdvisoryCVE{}, false
}

// serveControl serves d on a control socket and returns a client for it.
func serveControl(t *testing.T, d *Daemon) *control.Client {
	t.Helper()
	srv := &control.Server{Path: filepath.Join(t.TempDir(), "ctl.sock"), Reader: d, Commander: d,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return control.NewClient(srv.Path)
}

// TestAdvisoriesMatchPublishFix runs the advisory loop against a real
// signed repository carrying three real 2024 ICS advisories and the KEV
// catalog: every device is matched and prioritized, the retained documents
// and the control socket agree, events go out once and not again after a
// restart (which matches from the stored blobs without downloading), and
// the update that fixes the ups flips its findings to fixed with
// advisory-fixed events.
func TestAdvisoriesMatchPublishFix(t *testing.T) {
	ctx := context.Background()
	repo := advisoryRepo(t)
	dir, st := openStateStore(t)
	client := repo.Client(t, nil)
	fakes := advisoryDevices()
	d := newAdvisoryDaemon(t, dir, st, client, nil, fakes)

	d.inventory(ctx)
	d.refresh(ctx)
	d.evaluateAdvisories(ctx)
	msgs, seq := outboxSince(t, st, 0)

	// Each device is matched by the advisory that names it.
	docs := retainedAdvisories(t, msgs)
	wantAdv := map[string]string{"ups": "ICSA-24-123-01", "rtu": "ICSA-24-011-08", "door": "ICSA-24-065-01"}
	for dev, adv := range wantAdv {
		doc, ok := docs[dev]
		if !ok {
			t.Fatalf("no retained advisories document for %s", dev)
		}
		if len(doc.Matches) != 1 || doc.Matches[0].Advisory != adv {
			t.Errorf("%s matched %+v, want only %s", dev, doc.Matches, adv)
		}
	}
	// The ups: nine affected CVEs fixed by v4.10.1, which the target in the
	// repository provides; CVSS 9.8 on a critical asset in the DMZ: attend.
	ups := docs["ups"]
	if n := len(ups.Matches[0].CVEs); n != 9 {
		t.Errorf("ups: %d CVEs, want 9", n)
	}
	if c, ok := findCVE(ups, "ICSA-24-123-01", "CVE-2024-32047"); !ok || c.Status != "affected" || c.FixedBy != "v4.10.1" ||
		c.FixedByTarget != "ppb/4.10.1.bin" || c.CVSS != 9.8 || c.KEV {
		t.Errorf("ups CVE-2024-32047 = %+v, %v; want affected, fixed by v4.10.1 as ppb/4.10.1.bin, CVSS 9.8, not on KEV", c, ok)
	}
	if ups.Priority != api.PriorityAttend {
		t.Errorf("ups priority %s (%q), want attend", ups.Priority, ups.Reasons)
	}
	// The rtu: matched by its order number, fixed in a version no target
	// offers; no exploitation, control zone: track.
	rtu := docs["rtu"]
	if c, ok := findCVE(rtu, "ICSA-24-011-08", "CVE-2023-42797"); !ok || c.Status != "affected" || c.FixedBy != "CPCI85 V05.20" || c.FixedByTarget != "" {
		t.Errorf("rtu CVE-2023-42797 = %+v, %v; want affected, fixed by CPCI85 V05.20, no target", c, ok)
	}
	if rtu.Matches[0].Tier != "model" || rtu.Matches[0].Confidence != "high" || rtu.Priority != api.PriorityTrack {
		t.Errorf("rtu: tier %s confidence %s priority %s, want model, high, track", rtu.Matches[0].Tier, rtu.Matches[0].Confidence, rtu.Priority)
	}
	// The door: CVE-2019-7256 is on KEV, the device in the DMZ: act.
	door := docs["door"]
	if c, ok := findCVE(door, "ICSA-24-065-01", "CVE-2019-7256"); !ok || !c.KEV || c.Status != "affected" {
		t.Errorf("door CVE-2019-7256 = %+v, %v; want affected and on KEV", c, ok)
	}
	if door.Priority != api.PriorityAct || !slices.ContainsFunc(door.Reasons, func(r string) bool { return strings.Contains(r, "CISA KEV") }) {
		t.Errorf("door priority %s (%q), want act because of KEV", door.Priority, door.Reasons)
	}
	// The scheduler sees the same order.
	if a, b, c := d.advisoryRank("door"), d.advisoryRank("ups"), d.advisoryRank("rtu"); !(a < b && b < c) {
		t.Errorf("advisoryRank door, ups, rtu = %d, %d, %d; want increasing (act, attend, track)", a, b, c)
	}

	// One advisory-matched event per (device, advisory, CVE): 9 + 1 + 12.
	events := advisoryEvents(t, msgs)
	if len(events) != 22 || !slices.Contains(events, "advisory-matched door ICSA-24-065-01 CVE-2019-7256") {
		t.Errorf("advisory events = %d %q, want 22 advisory-matched", len(events), events)
	}
	for _, e := range events {
		if !strings.HasPrefix(e, "advisory-matched ") {
			t.Errorf("event %q, want only advisory-matched", e)
		}
	}

	// fieldgatectl advisories reads the same documents from the socket.
	var served api.Advisories
	if err := serveControl(t, d).Get(ctx, "/v1/advisories", &served); err != nil {
		t.Fatal(err)
	}
	if len(served.Devices) != 3 || served.Gateway != "gw" {
		t.Fatalf("GET /v1/advisories = %+v, want 3 devices of gw", served)
	}
	for _, doc := range served.Devices {
		if diff := cmp.Diff(docs[doc.Device], doc); diff != "" {
			t.Errorf("%s: socket and retained document differ (-retained +socket):\n%s", doc.Device, diff)
		}
	}

	// Nothing changed: another turn publishes nothing.
	d.evaluateAdvisories(ctx)
	if msgs, _ := outboxSince(t, st, seq); len(msgs) != 0 {
		t.Errorf("an unchanged evaluation enqueued %d messages", len(msgs))
	}

	// Restart: the documents come from the blob store, not the network,
	// and no event or document goes out again.
	requests := repo.CountRequests("GET /targets/")
	d = newAdvisoryDaemon(t, dir, st, client, nil, fakes)
	d.inventory(ctx)
	d.evaluateAdvisories(ctx)
	if n := repo.CountRequests("GET /targets/"); n != requests {
		t.Errorf("restart downloaded %d targets, want none", n-requests)
	}
	msgs, seq = outboxSince(t, st, seq)
	if ev := advisoryEvents(t, msgs); len(ev) != 0 {
		t.Errorf("after a restart: events %q, want none", ev)
	}
	if docs := retainedAdvisories(t, msgs); len(docs) != 0 {
		t.Errorf("after a restart: documents republished for %d devices, want none", len(docs))
	}
	if got, _ := d.Advisories(ctx); len(got.Devices) != 3 || got.Devices[0].Priority != api.PriorityAttend {
		t.Errorf("after a restart, Advisories = %+v, want the ups at attend", got)
	}

	// The update: approve, install, read the new version back.
	d.refresh(ctx)
	jobs, err := st.Jobs()
	if err != nil || len(jobs) != 1 || jobs[0].Version != "4.10.1" {
		t.Fatalf("jobs = %+v, %v; want one for 4.10.1", jobs, err)
	}
	if _, err := d.ApproveLocal(jobs[0].ID, "console"); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		d.m.runJobs(ctx)
		d.m.workers.Wait()
	}
	d.inventory(ctx)
	d.evaluateAdvisories(ctx)
	msgs, _ = outboxSince(t, st, seq)
	ups = retainedAdvisories(t, msgs)["ups"]
	if len(ups.Matches) != 1 || len(ups.Matches[0].CVEs) != 9 {
		t.Fatalf("ups after the update = %+v, want the advisory kept with its nine CVEs", ups)
	}
	for _, c := range ups.Matches[0].CVEs {
		if c.Status != "fixed" || c.FixedByTarget != "" {
			t.Errorf("ups %s after the update: status %s, target %q; want fixed, no target", c.CVE, c.Status, c.FixedByTarget)
		}
	}
	if ups.Priority != api.PriorityTrack {
		t.Errorf("ups priority after the update = %s, want track", ups.Priority)
	}
	events = advisoryEvents(t, msgs)
	if len(events) != 9 || events[0] != "advisory-fixed ups ICSA-24-123-01 CVE-2024-31409" {
		t.Errorf("events after the update = %q, want nine advisory-fixed for the ups", events)
	}
}

// TestAdvisoriesIsland: a gateway with no uplink gets the advisories from
// an offline bundle and matches them.
func TestAdvisoriesIsland(t *testing.T) {
	ctx := context.Background()
	repo := advisoryRepo(t)
	bundle := repo.Export()
	repo.Server.Close() // an island: nothing but the bundle
	dir, st := openStateStore(t)
	client := repo.Client(t, nil)
	imp := func(ctx context.Context, dir string) (*tuf.Snapshot, error) {
		i, err := tuf.ImportBundle(ctx, client, dir)
		if err != nil {
			return nil, err
		}
		return i.Snapshot, nil
	}
	d := newAdvisoryDaemon(t, dir, st, client, imp, advisoryDevices())
	d.inventory(ctx)
	if _, err := d.Import(ctx, bundle, "test"); err != nil {
		t.Fatal(err)
	}
	d.evaluateAdvisories(ctx)
	got, err := d.Advisories(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range got.Devices {
		if len(doc.Matches) != 1 {
			t.Errorf("%s on an island: %d matches, want 1", doc.Device, len(doc.Matches))
		}
	}
	if c, ok := findCVE(got.Devices[0], "ICSA-24-123-01", "CVE-2024-32047"); !ok || c.FixedByTarget != "ppb/4.10.1.bin" {
		t.Errorf("ups on an island: %+v, %v; want the bundle's target linked", c, ok)
	}
	if d.health.has(condAdvisory) {
		t.Errorf("health %v, want no advisory-unreadable", d.health.list())
	}
}

// TestAdvisoryDocumentUnreadable: a document that does not parse raises
// advisory-unreadable naming it, and the others are still matched.
func TestAdvisoryDocumentUnreadable(t *testing.T) {
	ctx := context.Background()
	repo := advisoryRepo(t)
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"document": "not an object"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Pub.AddDocument("advisories/ICSA-24-999-99/icsa-24-999-99.json", bad,
		tuf.DocumentMeta{Kind: tuf.DocumentCSAF, ID: "ICSA-24-999-99", Revision: "1", Released: time.Now().UTC()}, publish.DocumentOptions{}); err != nil {
		t.Fatal(err)
	}
	repo.Commit()
	dir, st := openStateStore(t)
	d := newAdvisoryDaemon(t, dir, st, repo.Client(t, nil), nil, advisoryDevices())
	d.inventory(ctx)
	d.refresh(ctx)
	var cond *api.Condition
	for _, c := range d.health.list() {
		if c.Name == "advisory-unreadable" {
			cond = &c
		}
	}
	if cond == nil || cond.Subject != "advisories/ICSA-24-999-99/icsa-24-999-99.json" {
		t.Errorf("health %+v, want advisory-unreadable naming the bad document", d.health.list())
	}
	got, _ := d.Advisories(ctx)
	if len(got.Devices) != 3 || len(got.Devices[0].Matches) != 1 {
		t.Errorf("Advisories = %+v, want the good documents still matched", got)
	}
}

// TestOrderJobs: a job for a device with an act finding runs before a
// more severe job for an attend device, which runs before an older,
// critical job for a device no advisory concerns; equal priorities fall
// back to severity, then age.
func TestOrderJobs(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	job := func(id, sev string, age int, devs ...string) store.Job {
		j := store.Job{ID: id, Severity: sev, Created: t0.Add(-time.Duration(age) * time.Hour)}
		for _, d := range devs {
			j.Devices = append(j.Devices, store.Step{Device: d})
		}
		return j
	}
	rank := map[string]int{"door": 0, "ups": 1, "rtu": 2}
	jobs := []store.Job{
		job("none-critical-old", "critical", 5, "plc"),
		job("track-high", "high", 1, "rtu"),
		job("attend-critical", "critical", 1, "ups"),
		job("act-low-new", "low", 0, "plc", "door"),
		job("track-low-old", "low", 3, "rtu"),
		job("track-low-new", "low", 2, "rtu"),
	}
	orderJobs(jobs, func(dev string) int {
		if r, ok := rank[dev]; ok {
			return r
		}
		return 3
	})
	var got []string
	for _, j := range jobs {
		got = append(got, j.ID)
	}
	want := []string{"act-low-new", "attend-critical", "track-high", "track-low-old", "track-low-new", "none-critical-old"}
	if !slices.Equal(got, want) {
		t.Errorf("orderJobs = %q, want %q", got, want)
	}
	orderJobs(jobs, nil) // without priorities: severity, then age
	if jobs[0].ID != "none-critical-old" || jobs[len(jobs)-1].ID != "act-low-new" {
		t.Errorf("orderJobs(nil) = first %s, last %s; want none-critical-old first, act-low-new last", jobs[0].ID, jobs[len(jobs)-1].ID)
	}
}

// TestAdvisoryVerdicts: a site verdict on the whole KEV advisory of the
// door (mitigated by a named control) shows on each of its CVEs, and the
// door no longer decides act; the next turn of the loop picks it up
// without a refresh.
func TestAdvisoryVerdicts(t *testing.T) {
	ctx := context.Background()
	repo := advisoryRepo(t)
	dir, st := openStateStore(t)
	d := newAdvisoryDaemon(t, dir, st, repo.Client(t, nil), nil, advisoryDevices())
	d.inventory(ctx)
	d.refresh(ctx)
	_, seq := outboxSince(t, st, 0)
	if got, _ := d.Advisories(ctx); got.Devices[2].Priority != api.PriorityAct {
		t.Fatalf("door priority %s before the verdict, want act", got.Devices[2].Priority)
	}
	err := st.Update(func(tx *store.Tx) error {
		_, err := tx.PutVerdict(advisory.Verdict{Device: "door", Advisory: "ICSA-24-065-01", Kind: advisory.VerdictMitigated,
			Control: "door controller on its own VLAN, no route from the DMZ", Revision: "1", At: time.Now().UTC()})
		if errors.Is(err, store.ErrNotFound) { // nothing replaced
			err = nil
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	d.evaluateAdvisories(ctx)
	msgs, _ := outboxSince(t, st, seq)
	door, ok := retainedAdvisories(t, msgs)["door"]
	if !ok {
		t.Fatal("the verdict republished nothing for the door")
	}
	if door.Priority == api.PriorityAct {
		t.Errorf("door priority with the verdict = act (%q), want lower", door.Reasons)
	}
	for _, c := range door.Matches[0].CVEs {
		if c.Status == "affected" && c.Verdict != "mitigated: door controller on its own VLAN, no route from the DMZ" {
			t.Errorf("door %s verdict %q, want the mitigation", c.CVE, c.Verdict)
		}
	}
	if ev := advisoryEvents(t, msgs); len(ev) != 0 {
		t.Errorf("a verdict emitted %q, want no advisory event", ev)
	}
}

// TestVerdictPinnedToRevision: a verdict recorded through RecordVerdict is
// pinned to the revision of the advisory the device matches now, with the
// findings it was decided on, so that a later revision that says
// something else about the device asks for a review instead of keeping it.
func TestVerdictPinnedToRevision(t *testing.T) {
	ctx := context.Background()
	repo := advisoryRepo(t)
	dir, st := openStateStore(t)
	d := newAdvisoryDaemon(t, dir, st, repo.Client(t, nil), nil, advisoryDevices())
	d.inventory(ctx)
	d.refresh(ctx)
	d.evaluateAdvisories(ctx)
	got, _ := d.Advisories(ctx)
	var want string
	for _, m := range got.Devices[2].Matches {
		if m.Advisory == "ICSA-24-065-01" {
			want = m.Revision
		}
	}
	if want == "" {
		t.Fatalf("door does not match ICSA-24-065-01: %+v", got.Devices[2])
	}
	v, err := d.RecordVerdict(advisory.Verdict{Device: "door", Advisory: "ICSA-24-065-01", Kind: advisory.VerdictMitigated,
		Control: "door controller on its own VLAN"}, "test", "")
	if err != nil {
		t.Fatal(err)
	}
	if v.Revision != want || len(v.Basis) == 0 {
		t.Errorf("recorded verdict revision %q with %d findings as basis, want revision %q and a basis", v.Revision, len(v.Basis), want)
	}
	stored, err := st.Verdicts("door")
	if err != nil || len(stored) != 1 || stored[0].Revision != want {
		t.Errorf("stored verdicts %+v (%v), want one pinned to revision %q", stored, err, want)
	}
}

// TestAdvisoryRollbackRefused: TUF keeps metadata from going back, not a
// document's own revision. A KEV catalog republished at an older revision
// (forced past fieldgate-repo's own check), here without the entry that
// makes the door's CVE known exploited, is not used: the door stays on
// KEV, and the refusal shows as a health condition naming the document.
func TestAdvisoryRollbackRefused(t *testing.T) {
	ctx := context.Background()
	repo := advisoryRepo(t)
	dir, st := openStateStore(t)
	d := newAdvisoryDaemon(t, dir, st, repo.Client(t, nil), nil, advisoryDevices())
	d.inventory(ctx)
	d.refresh(ctx)

	raw, err := os.ReadFile(filepath.Join(needSharedTestdata(t), "kev", "known_exploited_vulnerabilities.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cat map[string]any
	if err := json.Unmarshal(raw, &cat); err != nil {
		t.Fatal(err)
	}
	vulns := cat["vulnerabilities"].([]any)
	vulns = slices.DeleteFunc(vulns, func(v any) bool { return v.(map[string]any)["cveID"] == "CVE-2019-7256" })
	cat["vulnerabilities"], cat["count"] = vulns, len(vulns)
	older, _ := json.Marshal(cat)
	file := filepath.Join(t.TempDir(), "known_exploited_vulnerabilities.json")
	if err := os.WriteFile(file, older, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Pub.AddDocument("advisories/kev/known_exploited_vulnerabilities.json", file,
		tuf.DocumentMeta{Kind: tuf.DocumentKEV, ID: "kev", Revision: "2024.06.01", Released: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)},
		publish.DocumentOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	repo.Commit()
	d.refresh(ctx)
	d.evaluateAdvisories(ctx)
	got, _ := d.Advisories(ctx)
	var door api.DeviceAdvisories
	for _, dev := range got.Devices {
		if dev.Device == "door" {
			door = dev
		}
	}
	if c, ok := findCVE(door, "ICSA-24-065-01", "CVE-2019-7256"); !ok || !c.KEV || door.Priority != api.PriorityAct {
		t.Errorf("door after an older KEV catalog: CVE-2019-7256 %+v (found %v), priority %s; want still on KEV, act", c, ok, door.Priority)
	}
	if !slices.ContainsFunc(d.health.list(), func(c api.Condition) bool {
		return c.Name == "advisory-unreadable" && strings.Contains(c.Message, "older than revision 2025.01.01")
	}) {
		t.Errorf("health %+v, want advisory-unreadable naming the refused older revision", d.health.list())
	}
}
