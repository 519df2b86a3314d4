// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/daemon/mqtt"
	"github.com/fieldgate/fieldgate/daemon/store"
	"github.com/fieldgate/fieldgate/daemon/testreport"
	"github.com/fieldgate/fieldgate/devices/devicetest"
	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
	"github.com/fieldgate/fieldgate/tuf/tuftest"
)

// docSource is a fakeSource that also publishes documents, as a TUF
// repository does with `fieldgate-repo report add`.
type docSource struct {
	*fakeSource
	docs []tuf.Document
}

func (s *docSource) addReport(raw []byte) {
	sum := sha256.Sum256(raw)
	name := "reports/" + hex.EncodeToString(sum[:8]) + ".json"
	s.docs = append(s.docs, tuf.Document{Name: name, Role: "targets", Length: int64(len(raw)),
		Hashes: map[string]string{"sha256": hex.EncodeToString(sum[:])},
		Meta:   tuf.DocumentMeta{Kind: tuf.DocumentTestReport, ID: "r", Revision: "1", Released: time.Now()}})
	s.blobs[name] = raw
}

func (s *docSource) Refresh(ctx context.Context) (*tuf.Snapshot, error) {
	snap, err := s.fakeSource.Refresh(ctx)
	snap.Documents = s.docs
	return snap, err
}

func (s *docSource) Fetch(ctx context.Context, t tuf.Target, p func(int64, int64)) (string, error) {
	path := filepath.Join(s.dir, "doc-"+t.SHA256())
	return path, os.WriteFile(path, s.blobs[t.Name], 0o600)
}

func stagingKey(t *testing.T) (ed25519.PrivateKey, string) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	p := filepath.Join(t.TempDir(), "report.key")
	if err := os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(priv)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return priv, p
}

func auditOf(t *testing.T, st *store.Store, typ string) []store.Event {
	t.Helper()
	var buf bytes.Buffer
	if err := st.ExportAudit(&buf); err != nil {
		t.Fatal(err)
	}
	var out []store.Event
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var e store.Event
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// TestStagingToProduction is the loop end to end: a staging gateway runs
// the update on its twin and signs a report; a production gateway whose
// group requires it refuses approval until the report arrives as a TUF
// document, then approves and updates.
func TestStagingToProduction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		priv, keyFile := stagingKey(t)
		image := devicetest.Image("2.0.0", 300)

		stg := newRigWith(t, false, func(c *config.Config) {
			c.Gateway.ID, c.Gateway.Role, c.Gateway.TestReportKey = "bench-1", config.RoleStaging, keyFile // TestReportTTL 0: the default
		}, "twin")
		stg.src.add(t, "fw-2.0.0", "2.0.0", 5, "hw1", image)
		stg.cycle(ctx)
		if j := stg.onlyJob(t); j.Devices[0].Phase != stepCommitted {
			t.Fatalf("staging step = %s (%s), want committed", j.Devices[0].Phase, j.Devices[0].Error)
		}
		files, _ := filepath.Glob(filepath.Join(stg.d.cfg.Gateway.StateDir, "reports", "*.json"))
		if len(files) != 1 {
			t.Fatalf("staging reports = %v, want one", files)
		}
		raw, _ := os.ReadFile(files[0])
		pub := map[string]ed25519.PublicKey{"bench-1": priv.Public().(ed25519.PublicKey)}
		rep, err := testreport.Parse(raw, pub, time.Now())
		if err != nil {
			t.Fatalf("staging report: %v", err)
		}
		if err := rep.Covers(stg.onlyJob(t).SHA256, "2.0.0", "hw1", []string{"bench-1"}); err != nil {
			t.Errorf("staging report does not cover its own test: %v", err)
		}
		if phases := len(rep.Steps); phases < 4 || rep.Steps[phases-1].Phase != "committed" {
			t.Errorf("staging report steps = %+v, want the phases up to committed", rep.Steps)
		}
		if ev := auditOf(t, stg.st, "test-report-signed"); len(ev) != 1 {
			t.Errorf("test-report-signed events = %d, want 1", len(ev))
		}
		retained, _ := stg.st.Retained()
		topic := "fieldgate/v1/s/gw/reports/" + rep.SHA256 + "/hw1"
		found := false
		for _, m := range retained {
			found = found || m.Topic == topic
		}
		if !found {
			t.Errorf("no retained message on %s", topic)
		}

		prod := newRigWith(t, false, func(c *config.Config) {
			c.StagingKeys = []config.StagingKey{{ID: "bench-1", PublicKey: base64.StdEncoding.EncodeToString(pub["bench-1"])}}
			c.Groups[0].Approval = config.ApprovalLocal
			c.Groups[0].RequireTested = []string{"bench-1"}
		}, "a", "b")
		src := &docSource{fakeSource: prod.src}
		prod.d.src = src
		prod.src.add(t, "fw-2.0.0", "2.0.0", 5, "hw1", image)
		prod.cycle(ctx)
		j := prod.onlyJob(t)
		want := "no test report for sha256 " + j.SHA256[:12] + "… on hardware hw1 from staging key bench-1"
		if w := prod.d.m.waiting(j); !strings.Contains(w, want) {
			t.Errorf("waiting = %q, want it to say %q", w, want)
		}
		if _, err := prod.d.ApproveLocal(j.ID, "console"); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), want) {
			t.Fatalf("ApproveLocal before the report = %v, want refused: %s", err, want)
		}
		if ev := auditOf(t, prod.st, "approval-refused"); len(ev) != 1 || !strings.Contains(ev[0].Detail["reason"].(string), want) {
			t.Errorf("approval-refused events = %+v, want one naming the missing report", ev)
		}
		st, _ := prod.d.Status(ctx)
		if len(st.Jobs) != 1 || !strings.Contains(st.Jobs[0].Waiting, want) {
			t.Errorf("status jobs = %+v, want the job waiting for the report", st.Jobs)
		}
		retained, _ = prod.st.Retained()
		var jobDoc struct{ Waiting string }
		for _, m := range retained {
			if m.Topic == "fieldgate/v1/s/gw/jobs/"+j.ID {
				json.Unmarshal(m.Payload, &jobDoc)
			}
		}
		if !strings.Contains(jobDoc.Waiting, want) {
			t.Errorf("retained job document waiting = %q, want it to say %q", jobDoc.Waiting, want)
		}

		src.addReport(raw)
		src.addReport(raw) // published twice: harmless
		prod.d.refresh(ctx)
		if ev := auditOf(t, prod.st, "test-report-imported"); len(ev) != 1 {
			t.Errorf("test-report-imported events = %d, want 1 (a replay adds nothing)", len(ev))
		}
		if _, err := prod.d.ApproveLocal(j.ID, "console"); err != nil {
			t.Fatalf("ApproveLocal after the report: %v", err)
		}
		prod.settle(ctx)
		for _, s := range prod.onlyJob(t).Devices {
			if s.Phase != stepCommitted {
				t.Errorf("production %s = %s (%s), want committed", s.Device, s.Phase, s.Error)
			}
		}
	})
}

// TestRequireTestedGate: what the gate refuses at the daemon level, each
// case failing if its check is removed.
func TestRequireTestedGate(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32))
	image := devicetest.Image("2.0.0", 300)
	sum := sha256.Sum256(image)
	sha := hex.EncodeToString(sum[:])
	mk := func(mut func(*testreport.Report)) testreport.Report {
		now := time.Now().UTC()
		r := testreport.Report{ID: "bench-1.job.twin", Site: "lab", Gateway: "bench-1", Target: "fw-2.0.0", SHA256: sha,
			Length: int64(len(image)), Version: "2.0.0", HardwareID: "hw1", Device: "twin",
			Steps:           []testreport.Step{{Phase: "transfer", Result: "ok", At: now}, {Phase: "committed", Result: "ok", At: now}},
			VersionReadBack: "2.0.0", Started: now, Finished: now, Expires: now.Add(48 * time.Hour)}
		if mut != nil {
			mut(&r)
		}
		return r
	}
	tests := []struct {
		name    string
		key     string
		priv    ed25519.PrivateKey
		mut     func(*testreport.Report)
		later   time.Duration // time passing after the import
		refused string        // in the approval's refusal
	}{
		{"valid", "bench-1", priv, nil, 0, ""},
		{"another sha256", "bench-1", priv, func(r *testreport.Report) { r.SHA256 = strings.Repeat("0", 64) }, 0, "no test report for sha256"},
		{"another hardware id", "bench-1", priv, func(r *testreport.Report) { r.HardwareID = "hw2" }, 0, "no test report for sha256"},
		{"a staging key the group does not require", "bench-2", other, nil, 0, "signed by staging key bench-2, not by bench-1"},
		{"expired since", "bench-1", priv, nil, 49 * time.Hour, "expired"},
		{"not committed", "bench-1", priv, func(r *testreport.Report) { r.Steps[1].Phase = "rolled-back" }, 0, "the step did not commit"},
		{"a rollback on the way", "bench-1", priv, func(r *testreport.Report) {
			r.Steps = append([]testreport.Step{{Phase: "rollback", Result: "ok", At: r.Started}}, r.Steps...)
		}, 0, "phase rollback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				r := newRigWith(t, false, func(c *config.Config) {
					c.StagingKeys = []config.StagingKey{
						{ID: "bench-1", PublicKey: base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))},
						{ID: "bench-2", PublicKey: base64.StdEncoding.EncodeToString(other.Public().(ed25519.PublicKey))},
					}
					c.Groups[0].RequireTested = []string{"bench-1"} // approval auto: the gate alone holds the job
				}, "a")
				r.src.add(t, "fw-2.0.0", "2.0.0", 5, "hw1", image)
				raw, err := testreport.Sign(mk(tt.mut), tt.key, tt.priv)
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := r.d.ImportTestReport(raw, "console", "local"); err != nil {
					t.Fatalf("ImportTestReport: %v", err)
				}
				time.Sleep(tt.later)
				r.cycle(ctx)
				j := r.onlyJob(t)
				if tt.refused == "" {
					if j.Devices[0].Phase != stepCommitted {
						t.Errorf("step = %s (%s), want committed", j.Devices[0].Phase, j.Devices[0].Error)
					}
					return
				}
				if j.Phase != jobAwaitingApproval || j.Devices[0].Phase != stepPending {
					t.Errorf("job %s, step %s: want awaiting-approval, pending", j.Phase, j.Devices[0].Phase)
				}
				err = r.d.Approve(Approval{Job: j.ID, Kind: ApprovalLocal, Actor: "console", SHA256: j.SHA256, Devices: []string{"a"}, Window: j.Window})
				if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.refused) {
					t.Errorf("Approve = %v, want refused with %q", err, tt.refused)
				}
			})
		})
	}
}

func TestImportTestReportRefusesUnknownKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, "a")
		mallory := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{6}, 32))
		now := time.Now().UTC()
		raw, err := testreport.Sign(testreport.Report{ID: "x", Site: "lab", Gateway: "x", Target: "fw", SHA256: strings.Repeat("a", 64),
			Length: 1, Version: "2.0.0", HardwareID: "hw1", Device: "twin", VersionReadBack: "2.0.0",
			Steps:   []testreport.Step{{Phase: "committed", Result: "ok", At: now}},
			Started: now, Finished: now, Expires: now.Add(time.Hour)}, "mallory", mallory)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.d.ImportTestReport(raw, "console", "local"); testreport.Reason(err) != "unknown-key" {
			t.Errorf("ImportTestReport = %v, want unknown-key", err)
		}
		if ev := auditOf(t, r.st, "test-report-refused"); len(ev) != 1 || ev[0].Detail["reason"] != "unknown-key" {
			t.Errorf("test-report-refused events = %+v, want one with reason unknown-key", ev)
		}
		if got, _, _ := r.d.TestReports(); len(got) != 0 {
			t.Errorf("TestReports = %d, want none stored", len(got))
		}
	})
}

// TestRequireTestedThroughTUF: the report reaches a production gateway as
// a test-report document of a real TUF repository, beside the firmware:
// approval is refused before it is published and accepted after the
// refresh that brings it.
// requireTestedOverTUF is a gateway whose group needs a local approval and
// a test report from staging key bench-1 (bench's public key), fed by a
// real TUF repository that publishes fw/2.0.0.bin (image) for hw1; dir is
// a scratch directory.
func requireTestedOverTUF(t *testing.T, bench ed25519.PrivateKey) (r *rig, repo *tuftest.Repo, image []byte, dir string) {
	t.Helper()
	repo = tuftest.New(t)
	image = devicetest.Image("2.0.0", 300)
	repo.Publish("fw/2.0.0.bin", image, tuf.Meta{Hardware: []string{"hw1"}, Version: "2.0.0", SecurityCounter: 5, Protocol: "fake"})
	r = newRigWith(t, false, func(c *config.Config) {
		c.StagingKeys = []config.StagingKey{{ID: "bench-1", PublicKey: base64.StdEncoding.EncodeToString(bench.Public().(ed25519.PublicKey))}}
		c.Groups[0].Approval = config.ApprovalLocal
		c.Groups[0].RequireTested = []string{"bench-1"}
	}, "a")
	dir = t.TempDir()
	client, err := tuf.New(tuf.Config{MetadataURL: repo.MetadataURL, TargetsURL: repo.TargetsURL, TrustedRoot: repo.RootPath,
		MetadataDir: filepath.Join(dir, "md"), BlobDir: filepath.Join(dir, "blobs")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.d.src = client
	return r, repo, image, dir
}

func TestRequireTestedThroughTUF(t *testing.T) {
	ctx := context.Background()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	r, repo, image, dir := requireTestedOverTUF(t, priv)
	r.cycle(ctx)
	j := r.onlyJob(t)
	if _, err := r.d.ApproveLocal(j.ID, "console"); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "no test report for sha256") {
		t.Fatalf("ApproveLocal before the report = %v, want refused for want of a test report", err)
	}

	now := time.Now().UTC()
	raw, err := testreport.Sign(testreport.Report{ID: "bench-1.job.twin", Site: "lab", Gateway: "bench-1", Target: "fw/2.0.0.bin",
		SHA256: j.SHA256, Length: int64(len(image)), Version: "2.0.0", HardwareID: "hw1", Device: "twin",
		Steps:           []testreport.Step{{Phase: "transfer", Result: "ok", At: now}, {Phase: "committed", Result: "ok", At: now}},
		VersionReadBack: "2.0.0", Started: now, Finished: now, Expires: now.Add(24 * time.Hour)}, "bench-1", priv)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "report.json")
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Pub.AddDocument("test-reports/"+j.SHA256+"/hw1/bench-1-twin.json", file,
		tuf.DocumentMeta{Kind: tuf.DocumentTestReport, ID: "bench-1.job.twin", Revision: "1", Released: now}, publish.DocumentOptions{}); err != nil {
		t.Fatal(err)
	}
	repo.Commit()
	r.d.refresh(ctx)
	if _, err := r.d.ApproveLocal(j.ID, "console"); err != nil {
		t.Fatalf("ApproveLocal after the report arrived through TUF: %v", err)
	}
	r.settle(ctx)
	if s := r.onlyJob(t).Devices[0]; s.Phase != stepCommitted {
		t.Errorf("step = %s (%s), want committed", s.Phase, s.Error)
	}
	if got, _, _ := r.d.TestReports(); len(got) != 1 {
		t.Errorf("TestReports = %d, want the imported one", len(got))
	}
}

// TestRemoteApprovalNeedsTestReport: a signed remote approval of an
// untested job is refused like a local one, and the result says why.
func TestRemoteApprovalNeedsTestReport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pub, priv, _ := ed25519.GenerateKey(nil)
		bench := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
		r := newRigWith(t, false, func(c *config.Config) {
			c.Groups[0].Approval = config.ApprovalRemote
			c.Groups[0].RequireTested = []string{"bench-1"}
			c.Approvers = []config.Approver{{Name: "ops", PublicKey: base64.StdEncoding.EncodeToString(pub)}}
			c.StagingKeys = []config.StagingKey{{ID: "bench-1", PublicKey: base64.StdEncoding.EncodeToString(bench.Public().(ed25519.PublicKey))}}
		}, "a")
		r.src.add(t, "fw", "2.0.0", 1, "hw1", devicetest.Image("2.0.0", 300))
		r.cycle(context.Background())
		j := r.onlyJob(t)
		c := mqtt.Command{ID: "c1", Action: mqtt.ActionApprove, Gateway: r.d.cfg.MQTT.Prefix,
			Expires: time.Now().Add(time.Hour).Truncate(time.Second), Job: j.ID, SHA256: j.SHA256}
		payload, err := mqtt.SignCommand(c, "ops", priv)
		if err != nil {
			t.Fatal(err)
		}
		send(r, "c1", payload)
		got := results(t, r, "c1")
		if len(got) == 0 || !strings.HasPrefix(got[len(got)-1], "rejected:") && !strings.HasPrefix(got[len(got)-1], "failed:") {
			t.Fatalf("results(c1) = %v, want the approval refused", got)
		}
		ev := auditOf(t, r.st, "approval-refused")
		if len(ev) != 1 || !strings.Contains(ev[0].Detail["reason"].(string), "no test report for sha256") || ev[0].Detail["kind"] != ApprovalRemote {
			t.Errorf("approval-refused events = %+v, want one remote refusal naming the missing report", ev)
		}
		r.settle(context.Background())
		if j := r.onlyJob(t); j.Phase != jobAwaitingApproval || len(j.Approvals) != 0 {
			t.Errorf("job %s with approvals %+v, want awaiting-approval with none", j.Phase, j.Approvals)
		}
	})
}

// TestReportDocumentsQuietAcrossRefreshes: a shared repository carries
// reports of staging keys this gateway does not trust (skipped without an
// audit record) and may carry one that does not verify (audited once, not
// at every refresh), so an idle refresh adds nothing to the audit log.
func TestReportDocumentsQuietAcrossRefreshes(t *testing.T) {
	ctx := context.Background()
	bench := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	r, repo, image, dir := requireTestedOverTUF(t, bench)
	now := time.Now().UTC()
	publishReport := func(name, keyID string, key ed25519.PrivateKey, expires time.Time) {
		raw, err := testreport.Sign(testreport.Report{ID: keyID + ".job.twin", Site: "lab", Gateway: keyID, Target: "fw/2.0.0.bin",
			SHA256: strings.Repeat("ab", 32), Length: int64(len(image)), Version: "2.0.0", HardwareID: "hw1", Device: "twin",
			Steps:           []testreport.Step{{Phase: "committed", Result: "ok", At: now.Add(-time.Hour)}},
			VersionReadBack: "2.0.0", Started: now.Add(-2 * time.Hour), Finished: now.Add(-time.Hour), Expires: expires}, keyID, key)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := repo.Pub.AddDocument("test-reports/"+name, file,
			tuf.DocumentMeta{Kind: tuf.DocumentTestReport, ID: keyID + ".job.twin", Revision: "1", Released: now}, publish.DocumentOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	publishReport("other-site.json", "other-site", other, now.Add(24*time.Hour))
	publishReport("expired.json", "bench-1", bench, now.Add(-time.Minute))
	repo.Commit()
	for range 3 {
		r.d.refresh(ctx)
	}
	if ev := auditOf(t, r.st, "test-report-refused"); len(ev) != 1 || ev[0].Detail["reason"] != "expired" {
		t.Errorf("test-report-refused after 3 refreshes = %+v, want one, for the expired report", ev)
	}
}
