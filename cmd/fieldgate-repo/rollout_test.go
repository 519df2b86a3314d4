// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
)

// TestRolloutCommand: add publishes a target at 10 % for one site, rollout
// widens it (top-level and delegated role), halts it and clears it; after
// each commit a gateway's tuf.Client sees the new rollout on the same file.
func TestRolloutCommand(t *testing.T) {
	w := t.TempDir()
	repo := filepath.Join(w, "repo")
	fw := filepath.Join(w, "fw.bin")
	if err := os.WriteFile(fw, []byte("FGSIM1 firmware 2.0.0"), 0o644); err != nil {
		t.Fatal(err)
	}
	runCmd(t, "init", repo)
	runCmd(t, "delegate", repo, "acme", "--path", "acme/*")
	out := runCmd(t, "add", repo, fw, "--name", "fw-2.0.0.bin", "--hardware", "hw", "--version", "2.0.0",
		"--rollout-percent", "10", "--rollout-not-before", "2026-06-01T22:00:00+02:00", "--rollout-site", "plant-1", "--rollout-site", "plant-2")
	if !strings.Contains(out, "staged fw-2.0.0.bin") {
		t.Errorf("add printed %q", out)
	}
	runCmd(t, "add", repo, fw, "--role", "acme", "--name", "acme/fw-2.0.0.bin", "--hardware", "hw", "--version", "2.0.0",
		"--rollout-percent", "10", "--rollout-gateway", "gw-1")
	runCmd(t, "commit", repo)

	r, err := publish.Open(repo)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	c, err := tuf.New(tuf.Config{
		MetadataURL: srv.URL + "/metadata",
		TargetsURL:  srv.URL + "/targets",
		MetadataDir: filepath.Join(w, "client", "metadata"),
		BlobDir:     filepath.Join(w, "client", "blobs"),
		TrustedRoot: filepath.Join(repo, "repository", "metadata", "1.root.json"),
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	rollouts := func() map[string]*tuf.Rollout {
		t.Helper()
		snap, err := c.Refresh(context.Background())
		if err != nil {
			t.Fatalf("Refresh() = %v", err)
		}
		m := map[string]*tuf.Rollout{}
		for _, tg := range snap.Targets {
			if tg.MetaErr != nil {
				t.Fatalf("%s: %v", tg.Name, tg.MetaErr)
			}
			m[tg.Name] = tg.Meta.Rollout
		}
		return m
	}
	got := rollouts()
	if ro := got["fw-2.0.0.bin"]; ro == nil || ro.Percent != 10 || len(ro.Sites) != 2 || ro.Sites[1] != "plant-2" ||
		!ro.NotBefore.Equal(time.Date(2026, 6, 1, 20, 0, 0, 0, time.UTC)) {
		t.Fatalf("published rollout = %+v, want 10 %% at plant-1 and plant-2, not before 20:00Z", ro)
	}
	if ro := got["acme/fw-2.0.0.bin"]; ro == nil || ro.Percent != 10 || ro.Gateways[0] != "gw-1" {
		t.Fatalf("published rollout of the delegated target = %+v, want 10 %% for gw-1", ro)
	}

	out = runCmd(t, "rollout", repo, "fw-2.0.0.bin", "--percent", "50", "--site", "plant-1")
	if !strings.Contains(out, "role targets: 50 %, sites plant-1") {
		t.Errorf("rollout printed %q", out)
	}
	out = runCmd(t, "rollout", repo, "acme/fw-2.0.0.bin", "--percent", "0")
	if !strings.Contains(out, "role acme: 0 % (halted)") {
		t.Errorf("rollout printed %q", out)
	}
	runCmd(t, "commit", repo)
	got = rollouts()
	if ro := got["fw-2.0.0.bin"]; ro == nil || ro.Percent != 50 || len(ro.Sites) != 1 || !ro.NotBefore.IsZero() {
		t.Errorf("widened rollout = %+v, want 50 %% at plant-1 only", ro)
	}
	if ro := got["acme/fw-2.0.0.bin"]; ro == nil || ro.Percent != 0 || ro.Gateways != nil {
		t.Errorf("halted rollout of the delegated target = %+v, want 0 %%", ro)
	}
	runCmd(t, "rollout", repo, "fw-2.0.0.bin", "--clear")
	runCmd(t, "commit", repo)
	if ro := rollouts()["fw-2.0.0.bin"]; ro != nil {
		t.Errorf("cleared rollout = %+v, want none", ro)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"rollout", repo, "fw-2.0.0.bin"}, "--percent (or --clear) is required"},
		{[]string{"rollout", repo, "fw-2.0.0.bin", "--site", "plant-1"}, "--percent is required"},
		{[]string{"rollout", repo, "fw-2.0.0.bin", "--percent", "10", "--clear"}, "one or the other"},
		{[]string{"rollout", repo, "fw-2.0.0.bin", "--percent", "101"}, "percent 101: want 0..100"},
		{[]string{"rollout", repo, "fw-2.0.0.bin", "--percent", "10", "--not-before", "tomorrow"}, "--not-before \"tomorrow\": want RFC 3339"},
		{[]string{"rollout", repo, "nope.bin", "--percent", "10"}, "no such staged target"},
		{[]string{"add", repo, fw, "--name", "x.bin", "--hardware", "hw", "--version", "1", "--rollout-gateway", "gw-1"}, "--rollout-percent is required"},
		{[]string{"add", repo, fw, "--name", "x.bin", "--hardware", "hw", "--version", "1", "--rollout-percent", "5", "--rollout-gateway", "gw 1"}, "gateways[0]"},
	} {
		if err := runCmdErr(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("fieldgate-repo %s = %v, want an error containing %q", strings.Join(tc.args[2:], " "), err, tc.want)
		}
	}
}
