// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
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
	"github.com/fieldgate/fieldgate/devices/modbus"
	"github.com/fieldgate/fieldgate/devices/sim"
)

// startModbusSim runs a fieldgate-sim Modbus TCP device on loopback and
// returns the driver's device for it.
func startModbusSim(t *testing.T, hw string, opts map[string]string) devices.Device {
	t.Helper()
	s, err := sim.NewModbusTCP(sim.Spec{ID: "plc", Kind: "modbus-tcp", HardwareID: hw, Version: "2.4.1",
		StateDir: t.TempDir(), Address: "127.0.0.1:0", Options: opts}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Open()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.Run(ctx); err != nil {
			t.Errorf("sim Run = %v, want nil", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	d, err := modbus.Open(devices.Config{ID: "plc", Protocol: "modbus-tcp", HardwareID: hw, Address: addr}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestInventoryFromModbusAndConfig: a fieldgate-sim PLC identified over
// Modbus TCP (0x2B/0x0E) gives vendor, product, order number and firmware;
// the configuration fills hardware revision, serial, CPE, PURL, zone and
// criticality; each field says where it came from, the configured order
// number that differs from the device's is recorded as a conflict, and
// the retained MQTT document is what the control socket serves.
func TestInventoryFromModbusAndConfig(t *testing.T) {
	const hw = "acme-plc-r2"
	r := newRigWith(t, false, func(c *config.Config) {
		c.Gateway.Zone = "control"
		d := &c.Devices[0]
		d.Protocol, d.HardwareID = "modbus-tcp", hw
		d.Vendor, d.Model, d.HardwareRevision, d.Serial = "Acme", "PLC-200-CFG", "3", "CFG-7"
		d.CPE, d.PURL = "cpe:2.3:h:acme:plc-200:-:*:*:*:*:*:*:*", "pkg:generic/acme/plc-200-fw@2.4.1"
		d.Zone, d.Criticality = "dmz", "high"
		c.Devices[1].Zone, c.Devices[1].Criticality = "control", "medium"
	}, "plc", "io")
	r.d.devs["plc"] = startModbusSim(t, hw, map[string]string{"vendor": "Acme"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Before the first identification, everything is the configuration's.
	inv, err := r.d.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := inv.Devices[0]; got.Firmware != "" || got.Model != "PLC-200-CFG" || got.Sources["model"] != api.SourceConfig {
		t.Errorf("before identify: firmware %q model %q (%s), want empty, PLC-200-CFG (config)", got.Firmware, got.Model, got.Sources["model"])
	}

	r.d.inventory(ctx)
	r.d.publishInventory()
	inv, err = r.d.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := api.Inventory{Gateway: "gw", Site: "s", Devices: []api.InventoryDevice{{
		ID: "plc", Protocol: "modbus-tcp", HardwareID: hw,
		Vendor: "Acme", Product: "fieldgate-sim", Model: hw, HardwareRevision: "3", Firmware: "2.4.1", Serial: "CFG-7",
		CPE: "cpe:2.3:h:acme:plc-200:-:*:*:*:*:*:*:*", PURL: "pkg:generic/acme/plc-200-fw@2.4.1", Zone: "dmz", Criticality: "high",
		Sources: map[string]string{
			"hardware_id": "device", "vendor": "device", "product": "device", "model": "device", "firmware": "device",
			"hardware_revision": "config", "serial": "config", "cpe": "config", "purl": "config", "zone": "config", "criticality": "config",
		},
		Conflicts: []api.InventoryConflict{{Field: "model", Device: hw, Config: "PLC-200-CFG"}},
	}, {
		ID: "io", Protocol: "fake", HardwareID: "hw1", Model: "fake", Firmware: "1.0.0", Zone: "control", Criticality: "medium",
		Sources: map[string]string{"hardware_id": "device", "model": "device", "firmware": "device", "zone": "config", "criticality": "config"},
	}}}
	want.Devices[1].ImageSHA256 = inv.Devices[1].ImageSHA256 // the fake's image hash
	if inv.Devices[1].ImageSHA256 == "" {
		t.Error("fake device: image_sha256 empty, want the sha256 it reports")
	}
	if diff := cmp.Diff(want, inv); diff != "" {
		t.Errorf("Inventory (-want +got):\n%s", diff)
	}
	if got, wantItem := InventoryItem(inv.Devices[0]), (advisory.Item{Device: "plc", Vendor: "Acme", Product: "fieldgate-sim", Model: hw,
		HardwareRevision: "3", Firmware: "2.4.1", Serial: "CFG-7", CPE: want.Devices[0].CPE, PURL: want.Devices[0].PURL,
		Zone: advisory.ZoneDMZ, Criticality: advisory.CriticalityHigh}); got != wantItem {
		t.Errorf("InventoryItem = %+v, want %+v", got, wantItem)
	}

	// The retained document on {prefix}/inventory is what the control
	// socket serves to fieldgatectl inventory.
	srv := &control.Server{Path: filepath.Join(t.TempDir(), "ctl.sock"), Reader: r.d, Commander: r.d, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { srv.Run(sctx) })
	defer func() { stop(); wg.Wait() }()
	served, err := control.NewClient(srv.Path).Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	published := inventoryMessages(t, r)
	if len(published) != 1 {
		t.Fatalf("published %d inventory documents, want 1", len(published))
	}
	if diff := cmp.Diff(served, published[0]); diff != "" {
		t.Errorf("retained inventory differs from the served one (-served +published):\n%s", diff)
	}

	// Nothing changed: nothing is published; a new version is.
	r.d.inventory(ctx)
	r.d.publishInventory()
	if n := len(inventoryMessages(t, r)); n != 1 {
		t.Errorf("after an unchanged inventory: %d documents, want still 1", n)
	}
	r.d.devs["io"] = devicetest.New("hw1", "1.1.0") // changed behind the gateway's back
	r.d.inventory(ctx)
	r.d.publishInventory()
	msgs := inventoryMessages(t, r)
	if len(msgs) != 2 || msgs[1].Devices[1].Firmware != "1.1.0" {
		t.Errorf("after the io device changed version: %d documents, want 2, the last with firmware 1.1.0", len(msgs))
	}
}

// inventoryMessages returns the inventory documents in the outbox, oldest
// first, checking that each is retained.
func inventoryMessages(t *testing.T, r *rig) []api.Inventory {
	t.Helper()
	msgs, err := r.st.Pending(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []api.Inventory
	for _, m := range msgs {
		if m.Topic != "fieldgate/v1/s/gw/inventory" {
			continue
		}
		if !m.Retained {
			t.Errorf("inventory message %d is not retained", m.Seq)
		}
		var inv api.Inventory
		if err := json.Unmarshal(m.Payload, &inv); err != nil {
			t.Fatal(err)
		}
		out = append(out, inv)
	}
	return out
}

func TestInventoryRecordConflicts(t *testing.T) {
	cfg := config.Device{ID: "d", Protocol: "ssh", HardwareID: "hw", Vendor: "ACME Corp", Model: "6ES7 214-1AG40-0XB0", Serial: "S1", Zone: "isolated", Criticality: "low"}
	ident, _ := json.Marshal(devices.Identity{Vendor: "Other", Model: "6es7214-1ag40-0xb0", Serial: "S1", HardwareID: "hw", Version: "1.0"})
	got := inventoryRecord(cfg, storeDevice(ident, "1.0"))
	want := []api.InventoryConflict{{Field: "vendor", Device: "Other", Config: "ACME Corp"}}
	if diff := cmp.Diff(want, got.Conflicts); diff != "" {
		t.Errorf("Conflicts (-want +got):\n%s", diff)
	}
	if got.Vendor != "Other" || got.Model != "6es7214-1ag40-0xb0" || got.Firmware != "1.0" {
		t.Errorf("record = vendor %q model %q firmware %q, want the device's: Other, 6es7214-1ag40-0xb0, 1.0", got.Vendor, got.Model, got.Firmware)
	}
}

func storeDevice(ident []byte, version string) store.Device {
	return store.Device{ID: "d", Version: version, Identity: ident}
}
