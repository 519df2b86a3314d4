// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/testreport"
	"github.com/fieldgate/fieldgate/tuf"
)

// TestReportAdd publishes a staging test report as a document and reads
// it back as a gateway does; reports that do not verify stage nothing.
func TestReportAdd(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, 32))
	key := "bench-1=" + base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))
	w := t.TempDir()
	repo := filepath.Join(w, "repo")
	runCmd(t, "init", repo)
	now := time.Now().UTC()
	sha := strings.Repeat("ab", 32)
	report := func(name string, mut func(*testreport.Report)) string {
		r := testreport.Report{ID: "bench-1.job." + name, Site: "lab", Gateway: "bench-1", Target: "plc/fw-1.0.bin", SHA256: sha,
			Length: 8, Version: "1.0", HardwareID: "plc", Device: name, VersionReadBack: "1.0",
			Steps:   []testreport.Step{{Phase: "transfer", Result: "ok", At: now}, {Phase: "committed", Result: "ok", At: now}},
			Started: now, Finished: now, Expires: now.Add(time.Hour)}
		if mut != nil {
			mut(&r)
		}
		raw, err := testreport.Sign(r, "bench-1", priv)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(w, name+".json")
		os.WriteFile(p, raw, 0o644)
		return p
	}
	good := report("twin", nil)
	for name, args := range map[string][]string{
		"unknown key":  {"report", "add", repo, good, "--staging-key", "bench-2=" + strings.TrimPrefix(key, "bench-1=")},
		"not verified": {"report", "add", repo, good, "--staging-key", "bench-1=" + base64.StdEncoding.EncodeToString(make([]byte, 32))},
		"expired": {"report", "add", repo, good, report("old", func(r *testreport.Report) {
			r.Expires = now.Add(-time.Second)
			r.Started = now.Add(-time.Hour)
			r.Finished = r.Started
		}), "--staging-key", key},
		"rolled back": {"report", "add", repo, good, report("rb", func(r *testreport.Report) { r.Steps[1].Phase = "rolled-back" }), "--staging-key", key},
	} {
		if _, err := runErr(args...); err == nil || !strings.Contains(err.Error(), "nothing staged") {
			t.Errorf("report add (%s) = %v, want refused with nothing staged", name, err)
		}
	}
	out := runCmd(t, "report", "add", repo, good, "--staging-key", key)
	if !strings.Contains(out, "staged test-reports/"+sha+"/plc/bench-1-twin.json") {
		t.Errorf("report add: %s", out)
	}
	runCmd(t, "commit", repo)
	c, _ := serveClient(t, repo)
	ctx := context.Background()
	snap, err := c.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Documents) != 1 || snap.Documents[0].Meta.Kind != tuf.DocumentTestReport || len(snap.Rejected) != 0 {
		t.Fatalf("documents %+v, rejected %v; want the one test report", snap.Documents, snap.Rejected)
	}
	raw, err := c.FetchDocument(ctx, snap.Documents[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testreport.Parse(raw, map[string]ed25519.PublicKey{"bench-1": priv.Public().(ed25519.PublicKey)}, now); err != nil {
		t.Errorf("fetched report: %v", err)
	}
}
