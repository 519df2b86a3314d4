// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/control"
)

// advisoryReader serves fixed advisories on the control socket.
type advisoryReader struct {
	inventoryReader
	adv api.Advisories
}

func (r advisoryReader) Advisories(context.Context) (api.Advisories, error) { return r.adv, nil }

func sampleAdvisories() api.Advisories {
	return api.Advisories{Gateway: "gw1", Devices: []api.DeviceAdvisories{{
		Device: "door", Priority: "act", Reasons: []string{"CVE-2019-7256 is on CISA KEV", "zone dmz: exposure controlled"},
		Matches: []api.AdvisoryMatch{{Advisory: "ICSA-24-065-01", Revision: "1", Title: "Nice Linear eMerge E3-Series", Tier: "name", Confidence: "medium",
			CVEs: []api.AdvisoryCVE{{CVE: "CVE-2019-7256", Status: "affected", KEV: true, CVSS: 10, Remediation: []string{"mitigation"}}}}},
	}, {
		Device: "ups", Priority: "attend", Reasons: []string{"CVSS 9.8 critical"},
		Matches: []api.AdvisoryMatch{{Advisory: "ICSA-24-123-01", Revision: "1", Title: "CyberPower PowerPanel", Tier: "name", Confidence: "medium",
			CVEs: []api.AdvisoryCVE{{CVE: "CVE-2024-32047", Status: "affected", CVSS: 9.8, FixedBy: "v4.10.1", FixedByTarget: "ppb/4.10.1.bin"}}}},
	}, {
		Device: "plc", Priority: "none", Matches: []api.AdvisoryMatch{},
	}}}
}

func serveAdvisories(t *testing.T, adv api.Advisories) string {
	t.Helper()
	srv := &control.Server{Path: filepath.Join(t.TempDir(), "ctl.sock"), Reader: advisoryReader{adv: adv},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { srv.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return srv.Path
}

func TestAdvisoriesTable(t *testing.T) {
	sock := serveAdvisories(t, sampleAdvisories())
	var out bytes.Buffer
	if err := run(t.Context(), []string{"--socket", sock, "advisories"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := [][]string{
		{"DEVICE", "ADVISORY", "CVE", "KEV", "CVSS", "STATUS", "FIXED", "BY", "PRIORITY", "REASONS"},
		{"door", "ICSA-24-065-01", "CVE-2019-7256", "yes", "10.0", "affected", "-", "act", "CVE-2019-7256", "is", "on", "CISA", "KEV;", "zone", "dmz:", "exposure", "controlled"},
		{"ups", "ICSA-24-123-01", "CVE-2024-32047", "no", "9.8", "affected", "v4.10.1", "(ppb/4.10.1.bin)", "attend", "CVSS", "9.8", "critical"},
		{"plc", "-", "-", "-", "-", "-", "-", "none"},
	}
	if len(lines) != len(want) {
		t.Fatalf("advisories printed %d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, l := range lines {
		if diff := cmp.Diff(want[i], strings.Fields(l)); diff != "" {
			t.Errorf("line %d (-want +got):\n%s", i, diff)
		}
	}
}

func TestAdvisoriesJSONAndDevice(t *testing.T) {
	adv := sampleAdvisories()
	sock := serveAdvisories(t, adv)
	var out bytes.Buffer
	if err := run(t.Context(), []string{"--socket", sock, "advisories", "--json"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var got api.Advisories
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output is not an advisories document: %v", err)
	}
	if diff := cmp.Diff(adv, got); diff != "" {
		t.Errorf("advisories --json (-served +printed):\n%s", diff)
	}
	out.Reset()
	if err := run(t.Context(), []string{"--socket", sock, "advisories", "--json", "--device", "ups"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	got = api.Advisories{}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Devices) != 1 || got.Devices[0].Device != "ups" {
		t.Errorf("--device ups printed %+v, want the ups only", got.Devices)
	}
	if err := run(t.Context(), []string{"--socket", sock, "advisories", "--device", "nope"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "no such device") {
		t.Errorf("--device nope: err = %v, want no such device", err)
	}
}
