// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/daemon/control"
	"github.com/fieldgate/fieldgate/daemon/store"
	"github.com/fieldgate/fieldgate/daemon/testreport"
	"github.com/fieldgate/fieldgate/internal/atomicfile"
	"github.com/fieldgate/fieldgate/tuf"
)

// Staging test reports (docs/staging.md). A gateway with role staging
// signs one for every device step that commits and keeps it under
// reports/ in its state directory; a production gateway keeps the reports
// it verified (from TUF documents of kind test-report, or imported on
// site) under reports/imported/<key>/, and its groups with require_tested
// approve and run no job that they do not cover.

// reportsDir is where signed and imported reports live.
func reportsDir(stateDir string) string { return filepath.Join(stateDir, "reports") }

// reportFile is a report's file name: the image, the hardware and the
// device it was tested on, so that the gate reads only a sha256's files
// and a newer test of the same device replaces the older one.
func reportFile(r testreport.Report) string {
	return r.SHA256 + "-" + r.HardwareID + "-" + r.Device + ".json"
}

// testCommitted signs, on a staging gateway, the test report of device
// dev's step of job jobID, which has just committed; it stores it,
// audits it and publishes it retained on reports/<sha256>/<hardware_id>.
// A failure is logged and audited: the device stays committed, and the
// update is simply not proven tested.
func (m *machine) testCommitted(jobID, dev string) {
	gw := m.cfg.Gateway
	if gw.Role != config.RoleStaging {
		return
	}
	r, raw, err := m.signReport(jobID, dev)
	if err != nil {
		m.log.Error("test report", "job", jobID, "device", dev, "err", err)
		if err := m.st.Update(func(tx *store.Tx) error {
			_, err := m.rep.audit(tx, store.Event{Type: "test-report-failed", Job: jobID, Device: dev, Detail: map[string]any{"error": err.Error()}})
			return err
		}); err != nil {
			m.auditFailed(err)
		}
		return
	}
	err = m.st.Update(func(tx *store.Tx) error {
		if _, err := m.rep.audit(tx, store.Event{Type: "test-report-signed", Job: jobID, Device: dev, Detail: map[string]any{
			"id": r.ID, "sha256": r.SHA256, "hardware_id": r.HardwareID, "version": r.VersionReadBack,
			"key": r.Key, "expires": r.Expires.Format(time.RFC3339)}}); err != nil {
			return err
		}
		_, err := tx.Enqueue(m.rep.topic("reports", r.SHA256, r.HardwareID), json.RawMessage(raw), true)
		return err
	})
	if err != nil {
		m.auditFailed(err)
	}
	m.log.Info("test report signed", "job", jobID, "device", dev, "id", r.ID, "file", reportFile(r))
}

func (m *machine) signReport(jobID, dev string) (testreport.Report, []byte, error) {
	gw := m.cfg.Gateway
	b, err := os.ReadFile(gw.TestReportKey)
	if err != nil {
		return testreport.Report{}, nil, fmt.Errorf("read test report key: %w", err)
	}
	priv, err := testreport.ParsePrivateKey(gw.TestReportKey, b)
	if err != nil {
		return testreport.Report{}, nil, err
	}
	j, err := m.st.Job(jobID)
	if err != nil {
		return testreport.Report{}, nil, err
	}
	rec, err := m.st.Device(dev)
	if err != nil {
		return testreport.Report{}, nil, err
	}
	steps, err := m.stepHistory(jobID, dev)
	if err != nil {
		return testreport.Report{}, nil, err
	}
	now, ttl := m.now().UTC(), gw.TestReportTTL
	if ttl <= 0 {
		ttl = config.DefaultTestReportTTL
	}
	r := testreport.Report{
		ID: gw.ID + "." + jobID + "." + dev, Site: gw.Site, Gateway: gw.ID,
		Target: j.Target, SHA256: j.SHA256, Length: j.Length, Version: j.Version,
		HardwareID: m.devCfg[dev].HardwareID, Device: dev, Steps: steps,
		VersionReadBack: rec.Version, ImageSHA256ReadBack: strings.ToLower(rec.ImageSHA256),
		Soak: m.groups[j.Group].Soak, Started: steps[0].At, Finished: now, Expires: now.Add(ttl),
	}
	raw, err := testreport.Sign(r, gw.ID, priv)
	if err != nil {
		return r, nil, err
	}
	// Read it back as a production gateway would: a report this gateway
	// cannot verify is not worth keeping.
	pub := map[string]ed25519.PublicKey{gw.ID: priv.Public().(ed25519.PublicKey)}
	if r, err = testreport.Parse(raw, pub, now); err != nil {
		return r, nil, err
	}
	dir := reportsDir(gw.StateDir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return r, nil, err
	}
	return r, raw, atomicfile.Write(filepath.Join(dir, reportFile(r)), raw, 0o640)
}

// stepHistory returns the phases device dev's step of job jobID went
// through, from the audit chain (step-* events), each with its result:
// ok when the next phase moved on, retry when the same phase came again,
// failed when the next one was a rollback or failure.
func (m *machine) stepHistory(jobID, dev string) ([]testreport.Step, error) {
	var buf bytes.Buffer
	if err := m.st.ExportAudit(&buf); err != nil {
		return nil, err
	}
	var steps []testreport.Step
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e store.Event
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Job != jobID || e.Device != dev || !strings.HasPrefix(e.Type, "step-") {
			continue
		}
		why, _ := e.Detail["error"].(string)
		if len(why) > 200 {
			why = why[:200]
		}
		steps = append(steps, testreport.Step{Phase: strings.TrimPrefix(e.Type, "step-"), At: e.Time, Error: strings.ToValidUTF8(why, "?")})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(steps) == 0 {
		return nil, errors.New("no step events in the audit log")
	}
	if len(steps) > testreport.MaxSteps {
		steps = append(steps[:testreport.MaxSteps/2], steps[len(steps)-testreport.MaxSteps/2:]...)
	}
	for i := range steps {
		steps[i].Result = testreport.ResultOK
		if i+1 < len(steps) {
			switch next := steps[i+1].Phase; {
			case next == steps[i].Phase:
				steps[i].Result = testreport.ResultRetry
			case slices.Contains([]string{"rollback", "rolled-back", "failed"}, next):
				steps[i].Result = testreport.ResultFailed
			}
		}
		steps[i].Error = strings.Map(func(r rune) rune {
			if r < ' ' || r == 0x7f {
				return ' '
			}
			return r
		}, steps[i].Error)
	}
	return steps, nil
}

// untested says why job j may not be approved or run yet: a device of it
// whose hardware no valid report covers for j's image, from one of its
// group's require_tested keys. "" when the group requires none, or every
// device is covered. Recovery jobs return a device to an image it held.
func (m *machine) untested(j store.Job) string {
	need := m.groups[j.Group].RequireTested
	if len(need) == 0 || j.Kind == jobKindRecovery {
		return ""
	}
	keys := m.cfg.StagingPublicKeys()
	now := m.now()
	var missing []string
	seen := map[string]bool{}
	for _, s := range j.Devices {
		hw := m.devCfg[s.Device].HardwareID
		if seen[hw] {
			continue
		}
		seen[hw] = true
		if why := coveredBy(m.cfg.Gateway.StateDir, j, hw, need, keys, now); why != "" {
			missing = append(missing, why)
		}
	}
	return strings.Join(missing, "; ")
}

// coveredBy returns "" if a stored report covers image j on hardware hw,
// else what is missing, with why the closest report does not count.
func coveredBy(stateDir string, j store.Job, hw string, need []string, keys map[string]ed25519.PublicKey, now time.Time) string {
	dir := reportsDir(stateDir)
	var files []string
	for _, pat := range []string{filepath.Join(dir, j.SHA256+"-*.json"), filepath.Join(dir, "imported", "*", j.SHA256+"-*.json")} {
		m, _ := filepath.Glob(pat)
		files = append(files, m...)
	}
	var near string
	for _, f := range files {
		raw, err := readReport(f)
		if err == nil {
			var r testreport.Report
			if r, err = testreport.Parse(raw, keys, now); err == nil {
				if r.HardwareID != hw {
					continue // another hardware id whose name shares a prefix
				}
				if err = r.Covers(j.SHA256, j.Version, hw, need); err == nil {
					return ""
				}
			}
		}
		near = err.Error()
	}
	short := j.SHA256
	if len(short) > 12 {
		short = short[:12] + "…"
	}
	why := fmt.Sprintf("no test report for sha256 %s on hardware %s from staging key %s", short, hw, strings.Join(need, " or "))
	if near != "" {
		why += " (" + near + ")"
	}
	return why
}

func readReport(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, testreport.MaxSize+1))
}

// ImportTestReport verifies a test report (JSON) against staging_keys and
// stores it for the gate. source says where it came from ("local", or
// "tuf:<target>") for the audit log. A report seen before changes nothing
// and reports added false; a refused one is audited with its reason.
func (d *Daemon) ImportTestReport(payload []byte, actor, source string) (r testreport.Report, added bool, err error) {
	r, err = testreport.Parse(payload, d.cfg.StagingPublicKeys(), d.now())
	if err != nil {
		d.audit(store.Event{Type: "test-report-refused", Actor: actor, Detail: map[string]any{
			"source": source, "reason": testreport.Reason(err), "error": err.Error()}})
		return r, false, fmt.Errorf("import test report: %w", err)
	}
	dir := filepath.Join(reportsDir(d.cfg.Gateway.StateDir), "imported", r.Key)
	path := filepath.Join(dir, reportFile(r))
	if old, err := readReport(path); err == nil {
		if o, err := testreport.Parse(old, d.cfg.StagingPublicKeys(), d.now()); err == nil && (o.ID == r.ID || o.Finished.After(r.Finished)) {
			return r, false, nil // a replay, or an older test of the same device: harmless
		}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return r, false, fmt.Errorf("import test report: %w", err)
	}
	if err := atomicfile.Write(path, payload, 0o640); err != nil {
		return r, false, fmt.Errorf("import test report: %w", err)
	}
	d.audit(store.Event{Type: "test-report-imported", Actor: actor, Detail: map[string]any{
		"source": source, "id": r.ID, "sha256": r.SHA256, "hardware_id": r.HardwareID, "key": r.Key,
		"version": r.Version, "expires": r.Expires.Format(time.RFC3339)}})
	d.log.Info("test report imported", "id", r.ID, "source", source, "sha256", r.SHA256, "hardware_id", r.HardwareID, "key", r.Key)
	d.m.kick()
	return r, true, nil
}

// importReportDocuments fetches, verifies and stores the test reports
// the repository publishes as documents. Fetch keeps verified blobs in
// the store, so after a restart nothing is downloaded again; a report
// already stored is not audited again.
//
// Each document is looked at once per run (by name and sha256): a shared
// repository carries reports of other sites' staging keys, which this
// gateway does not trust and skips quietly, and a refused report is
// audited once, not at every refresh.
func (d *Daemon) importReportDocuments(ctx context.Context, docs []tuf.Document) {
	for _, doc := range docs {
		if doc.Meta.Kind != tuf.DocumentTestReport {
			continue
		}
		key := doc.Name + "\x00" + doc.Hashes["sha256"]
		d.reportDocs.Lock()
		seen := d.reportDocs.seen[key]
		if d.reportDocs.seen == nil {
			d.reportDocs.seen = map[string]bool{}
		}
		d.reportDocs.seen[key] = true
		d.reportDocs.Unlock()
		if seen {
			continue
		}
		if doc.Length > testreport.MaxSize {
			d.log.Warn("test report document too large", "target", doc.Name, "length", doc.Length)
			continue
		}
		p, err := d.src.Fetch(ctx, tuf.Target{Name: doc.Name, Role: doc.Role, Length: doc.Length, Hashes: doc.Hashes}, nil)
		if err != nil {
			d.log.Warn("fetch test report", "target", doc.Name, "err", err)
			continue
		}
		raw, err := readReport(p)
		if err != nil {
			d.log.Warn("read test report", "target", doc.Name, "err", err)
			continue
		}
		if _, err := testreport.Parse(raw, d.cfg.StagingPublicKeys(), d.now()); errors.Is(err, testreport.ErrUnknownKey) {
			d.log.Debug("test report of a staging key not trusted here", "target", doc.Name, "err", err)
			continue
		}
		if _, _, err := d.ImportTestReport(raw, "tuf", "tuf:"+doc.Name); err != nil {
			d.log.Warn("test report", "target", doc.Name, "err", err)
		}
	}
}

// reportDocs remembers the test report documents looked at in this run.
type reportDocs struct {
	sync.Mutex
	seen map[string]bool // name and sha256
}

// TestReports returns every stored report that verifies now (own and
// imported), newest first, with the raw JSON of each.
func (d *Daemon) TestReports() ([]testreport.Report, [][]byte, error) {
	dir := reportsDir(d.cfg.Gateway.StateDir)
	own, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	imp, _ := filepath.Glob(filepath.Join(dir, "imported", "*", "*.json"))
	keys := d.cfg.StagingPublicKeys()
	if d.cfg.Gateway.Role == config.RoleStaging {
		if b, err := os.ReadFile(d.cfg.Gateway.TestReportKey); err == nil {
			if priv, err := testreport.ParsePrivateKey("", b); err == nil {
				keys[d.cfg.Gateway.ID] = priv.Public().(ed25519.PublicKey)
			}
		}
	}
	var out []testreport.Report
	var raws [][]byte
	for _, f := range append(own, imp...) {
		raw, err := readReport(f)
		if err != nil {
			continue
		}
		r, err := testreport.Parse(raw, keys, d.now())
		if err != nil {
			continue
		}
		out, raws = append(out, r), append(raws, raw)
	}
	idx := make([]int, len(out))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return out[b].Finished.Compare(out[a].Finished) })
	so, sr := make([]testreport.Report, len(out)), make([][]byte, len(out))
	for i, k := range idx {
		so[i], sr[i] = out[k], raws[k]
	}
	return so, sr, nil
}

// TestReportsJSON implements control.TestReports.
func (d *Daemon) TestReportsJSON() ([]json.RawMessage, error) {
	_, raws, err := d.TestReports()
	out := make([]json.RawMessage, len(raws))
	for i, r := range raws {
		out[i] = r
	}
	return out, err
}

// ImportTestReportFile implements control.TestReports: the report a site
// carried by hand (fieldgatectl reports import FILE).
func (d *Daemon) ImportTestReportFile(path, actor string) (string, bool, error) {
	raw, err := readReport(path)
	if err != nil {
		return "", false, fmt.Errorf("import test report: %w", err)
	}
	r, added, err := d.ImportTestReport(raw, actor, "local")
	return r.ID, added, err
}

var _ control.TestReports = (*Daemon)(nil)
