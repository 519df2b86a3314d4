// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/daemon/store"
	"github.com/fieldgate/fieldgate/daemon/testreport"
	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/devices/sim"
	"github.com/fieldgate/fieldgate/devices/smp"
	"github.com/fieldgate/fieldgate/tuf"
)

// TestStagingTwinSim: a staging gateway updates its staging twin, a
// fieldgate-sim MCUboot device over SMP/UDP on loopback, and signs a
// report of what the device really did: the version and image hash it
// reads back after the swap.
func TestStagingTwinSim(t *testing.T) {
	const hw = "acme-mcu-rev1"
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	simDev, err := sim.NewSMPDevice(sim.Spec{ID: "twin", Kind: sim.KindSMPUDP, HardwareID: hw, Version: "1.0.0",
		StateDir: t.TempDir(), Address: "127.0.0.1:0", Options: map[string]string{"boot_delay": "50ms"}}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	simCtx, stopSim := context.WithCancel(ctx)
	simDone := make(chan error, 1)
	go func() { simDone <- simDev.Run(simCtx) }()
	defer func() { stopSim(); <-simDone }()
	select {
	case <-simDev.Ready():
	case err := <-simDone:
		t.Fatalf("sim Run: %v", err)
	}
	drv := smp.UDPDriver()
	devCfg := config.Device{ID: "twin", Group: "bench", Protocol: drv.Name, HardwareID: hw, Address: simDev.Addr(), Segment: "lan",
		Options: map[string]string{"timeout": "300ms", "retries": "3", "boot_timeout": "10s"}}
	dev, err := drv.Open(devices.Config{ID: devCfg.ID, Protocol: drv.Name, HardwareID: hw, Address: devCfg.Address, Options: devCfg.Options}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()

	priv, keyFile := stagingKey(t)
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := &config.Config{
		Gateway: config.Gateway{ID: "bench-1", Site: "lab", StateDir: dir, RefreshInterval: time.Minute, InventoryInterval: time.Hour, MaxParallel: 1,
			Role: config.RoleStaging, TestReportKey: keyFile, TestReportTTL: 24 * time.Hour},
		MQTT:    config.MQTT{Prefix: "fieldgate/v1/lab/bench-1"},
		Windows: []config.Window{{Name: "w", Start: "0 0 * * *", Duration: 24 * time.Hour, TimeZone: "UTC"}},
		Groups:  []config.Group{{Name: "bench", Window: "w", Approval: "auto", Canary: 1, ApprovalTTL: time.Hour, Soak: time.Second}},
		Devices: []config.Device{devCfg},
	}
	image, err := sim.SMPImage(hw, "2.0.0", 4096)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(image)
	src := &fakeSource{dir: t.TempDir(), blobs: map[string][]byte{"mcu/2.0.0.bin": image}, targets: []tuf.Target{{
		Name: "mcu/2.0.0.bin", Length: int64(len(image)), Hashes: map[string]string{"sha256": hex.EncodeToString(sum[:])},
		Meta: tuf.Meta{Hardware: []string{hw}, Version: "2.0.0", SecurityCounter: 1, Protocol: drv.Name}}}}
	d, err := New(Deps{Config: cfg, Store: st, Source: src, Devices: map[string]devices.Device{"twin": dev}, Version: "test", Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	d.m.pollInterval = 50 * time.Millisecond
	d.inventory(ctx)
	d.refresh(ctx)
	var j store.Job
	for ctx.Err() == nil {
		d.m.runJobs(ctx)
		d.m.workers.Wait()
		jobs, _ := st.Jobs()
		if len(jobs) == 1 && stepTerminal(jobs[0].Devices[0].Phase) {
			j = jobs[0]
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(j.Devices) != 1 || j.Devices[0].Phase != stepCommitted {
		t.Fatalf("staging job = %+v, want its step committed", j)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "reports", j.SHA256+"-"+hw+"-twin.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := testreport.Parse(raw, map[string]ed25519.PublicKey{"bench-1": priv.Public().(ed25519.PublicKey)}, time.Now())
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	if err := r.Covers(j.SHA256, "2.0.0", hw, []string{"bench-1"}); err != nil {
		t.Errorf("report of the twin's update: %v", err)
	}
	if r.ImageSHA256ReadBack == "" || r.Soak != time.Second {
		t.Errorf("report read back image %q, soak %s; want the device's hash and 1s", r.ImageSHA256ReadBack, r.Soak)
	}
	var phases []string
	for _, s := range r.Steps {
		phases = append(phases, s.Phase)
	}
	want := []string{"backup", "transfer", "activate", "verify", "soak", "committed"}
	if !slices.Equal(phases, want) {
		t.Errorf("report phases = %v, want %v", phases, want)
	}
}
