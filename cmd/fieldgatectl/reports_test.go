// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon"
	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/daemon/control"
	"github.com/fieldgate/fieldgate/daemon/store"
	"github.com/fieldgate/fieldgate/daemon/testreport"
	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/devices/devicetest"
)

// TestReportsImportExport imports a hand-carried report through the
// control socket, lists it and exports it byte for byte.
func TestReportsImportExport(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	cfg := &config.Config{
		Gateway:     config.Gateway{ID: "gw", Site: "s", StateDir: dir, RefreshInterval: time.Hour, InventoryInterval: time.Hour, MaxParallel: 1},
		MQTT:        config.MQTT{Prefix: "fieldgate/v1/s/gw"},
		Windows:     []config.Window{{Name: "daily", Start: "0 0 * * *", Duration: 24 * time.Hour, TimeZone: "UTC"}},
		Groups:      []config.Group{{Name: "line-1", Window: "daily", Approval: "local", ApprovalTTL: time.Hour, RequireTested: []string{"bench-1"}}},
		Devices:     []config.Device{{ID: "plc-1", Group: "line-1", Protocol: "fake", HardwareID: "hw1", Address: "x", Segment: "bus-1"}},
		StagingKeys: []config.StagingKey{{ID: "bench-1", PublicKey: base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))}},
	}
	d, err := daemon.New(daemon.Deps{Config: cfg, Store: st, Devices: map[string]devices.Device{"plc-1": devicetest.New("hw1", "1.0.0")},
		Version: "test", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "fg.sock")
	srv := &control.Server{Path: sock, Reader: d, Commander: d, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() { defer wg.Done(); srv.Run(ctx) }()

	now := time.Now().UTC()
	sha := strings.Repeat("ab", 32)
	raw, err := testreport.Sign(testreport.Report{ID: "bench-1.job.twin", Site: "lab", Gateway: "bench-1", Target: "fw", SHA256: sha,
		Length: 8, Version: "2.0.0", HardwareID: "hw1", Device: "twin", VersionReadBack: "2.0.0",
		Steps:   []testreport.Step{{Phase: "committed", Result: "ok", At: now}},
		Started: now, Finished: now, Expires: now.Add(time.Hour)}, "bench-1", priv)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "r.json")
	os.WriteFile(file, raw, 0o644)
	ctl := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(ctx, append([]string{"--socket", sock}, args...), &out, &errOut)
		return out.String(), err
	}
	if out, err := ctl("reports", "import", file); err != nil || !strings.Contains(out, "imported test report bench-1.job.twin") {
		t.Fatalf("reports import = %q, %v", out, err)
	}
	if out, err := ctl("reports", "import", file); err != nil || !strings.Contains(out, "already held") {
		t.Errorf("reports import again = %q, %v; want already held", out, err)
	}
	tampered := filepath.Join(t.TempDir(), "t.json")
	os.WriteFile(tampered, bytes.Replace(raw, []byte(`"hw1"`), []byte(`"hw2"`), 1), 0o644)
	if _, err := ctl("reports", "import", tampered); err == nil || !strings.Contains(err.Error(), "bad signature") {
		t.Errorf("reports import (tampered) = %v, want bad signature", err)
	}
	exp := filepath.Join(t.TempDir(), "export")
	out, err := ctl("reports", "--export", exp)
	if err != nil || !strings.Contains(out, "abababababab  hw1") || !strings.Contains(out, "bench-1") {
		t.Fatalf("reports = %q, %v", out, err)
	}
	got, err := os.ReadFile(filepath.Join(exp, sha+"-hw1-twin.json"))
	if err != nil || !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(compact(t, raw))) {
		t.Errorf("exported report = %q, %v; want the signed report", got, err)
	}
	if _, err := testreport.Parse(got, map[string]ed25519.PublicKey{"bench-1": priv.Public().(ed25519.PublicKey)}, now); err != nil {
		t.Errorf("exported report does not verify: %v", err)
	}
}

func compact(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
