// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/google/go-cmp/cmp"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/control"
)

// inventoryReader serves a fixed inventory on the control socket.
type inventoryReader struct{ inv api.Inventory }

func (r inventoryReader) Status(context.Context) (api.Status, error) { return api.Status{}, nil }
func (r inventoryReader) Windows() []api.WindowInfo                  { return nil }
func (r inventoryReader) ExportAudit(io.Writer) error                { return nil }
func (r inventoryReader) VerifyAudit() (int, error)                  { return 0, nil }
func (r inventoryReader) Inventory(context.Context) (api.Inventory, error) {
	return r.inv, nil
}

func sampleInventory() api.Inventory {
	return api.Inventory{Gateway: "gw1", Site: "plant1", Devices: []api.InventoryDevice{{
		ID: "plc", Protocol: "modbus-tcp", HardwareID: "acme-plc-r2", Vendor: "Acme", Product: "PLC 200",
		Model: "6ES7 214-1AG40-0XB0", HardwareRevision: "3", Firmware: "2.4.1", ImageSHA256: strings.Repeat("ab", 32),
		Serial: "S-1", CPE: "cpe:2.3:h:acme:plc_200:-:*:*:*:*:*:*:*", PURL: "pkg:generic/acme/plc-200-fw@2.4.1",
		Zone: "dmz", Criticality: "high", Sources: map[string]string{"vendor": "device", "firmware": "device"},
		Conflicts: []api.InventoryConflict{{Field: "model", Device: "6ES7 214-1AG40-0XB0", Config: "6ES7 214-1AG40-0XB1"}},
	}, {
		ID: "mcu", Protocol: "smp-udp", HardwareID: "acme-mcu", Firmware: "1.0.0", CPE: "cpe:2.3:o:acme:mcu_firmware:1.0.0",
		Zone: "isolated", Criticality: "medium", Sources: map[string]string{"firmware": "device"},
	}, {
		ID: "hmi", Protocol: "ssh", HardwareID: "acme-hmi", Zone: "control", Criticality: "low", Sources: map[string]string{},
	}}}
}

// serveInventory starts a control socket serving inv and returns its path.
func serveInventory(t *testing.T, inv api.Inventory) string {
	t.Helper()
	srv := &control.Server{Path: filepath.Join(t.TempDir(), "ctl.sock"), Reader: inventoryReader{inv},
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

func TestInventoryJSON(t *testing.T) {
	inv := sampleInventory()
	sock := serveInventory(t, inv)
	var out bytes.Buffer
	if err := run(t.Context(), []string{"--socket", sock, "inventory", "--format", "json"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var got api.Inventory
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output is not an inventory: %v", err)
	}
	if diff := cmp.Diff(inv, got); diff != "" {
		t.Errorf("inventory --format json (-served +printed):\n%s", diff)
	}
	if err := run(t.Context(), []string{"--socket", sock, "inventory", "--format", "spdx"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "want json or cyclonedx") {
		t.Errorf("--format spdx: err = %v, want one naming json and cyclonedx", err)
	}
}

func TestInventoryCycloneDX(t *testing.T) {
	inv := sampleInventory()
	sock := serveInventory(t, inv)
	var out bytes.Buffer
	if err := run(t.Context(), []string{"--socket", sock, "inventory", "--format", "cyclonedx"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	validateCycloneDX(t, out.Bytes())

	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(out.Bytes()), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatalf("cyclonedx-go cannot decode the output: %v", err)
	}
	if bom.SpecVersion != cdx.SpecVersion1_6 || bom.BOMFormat != "CycloneDX" {
		t.Errorf("BOM %s %v, want CycloneDX 1.6", bom.BOMFormat, bom.SpecVersion)
	}
	if bom.Metadata == nil || bom.Metadata.Component == nil || bom.Metadata.Component.Name != "gw1" {
		t.Fatalf("metadata.component = %+v, want the gateway gw1", bom.Metadata)
	}
	if bom.Components == nil || len(*bom.Components) != len(inv.Devices) {
		t.Fatalf("BOM has %v components, want one per device (%d)", bom.Components, len(inv.Devices))
	}
	for i, dev := range *bom.Components {
		want := inv.Devices[i]
		props := map[string]string{}
		for _, p := range *dev.Properties {
			props[p.Name] = p.Value
		}
		if dev.Type != cdx.ComponentTypeDevice || props[propDevice] != want.ID || props[propGateway] != "gw1" || props[propSite] != "plant1" ||
			props[propZone] != want.Zone || props[propCriticality] != want.Criticality || props[propSerial] != want.Serial ||
			props[propHardwareRevision] != want.HardwareRevision || props[propModel] != want.Model {
			t.Errorf("component %d: type %s, properties %v; want device %s with its inventory fields", i, dev.Type, props, want.ID)
		}
		if dev.Components == nil || len(*dev.Components) != 1 {
			t.Fatalf("device %s: nested components %v, want its firmware", want.ID, dev.Components)
		}
		fw := (*dev.Components)[0]
		if fw.Type != cdx.ComponentTypeFirmware || fw.Version != want.Firmware || fw.PackageURL != want.PURL {
			t.Errorf("device %s firmware: type %s version %q purl %q, want firmware %q %q", want.ID, fw.Type, fw.Version, fw.PackageURL, want.Firmware, want.PURL)
		}
		if cpe := dev.CPE + fw.CPE; cpe != want.CPE {
			t.Errorf("device %s: CPE %q on the device, %q on the firmware, want %q once", want.ID, dev.CPE, fw.CPE, want.CPE)
		}
		if want.Vendor != "" && (dev.Manufacturer == nil || dev.Manufacturer.Name != want.Vendor || fw.Supplier == nil || fw.Supplier.Name != want.Vendor) {
			t.Errorf("device %s: manufacturer %+v, firmware supplier %+v, want %s", want.ID, dev.Manufacturer, fw.Supplier, want.Vendor)
		}
	}
	if plc := (*bom.Components)[0]; plc.CPE == "" || (*(*plc.Components)[0].Hashes)[0].Value != inv.Devices[0].ImageSHA256 {
		t.Errorf("plc: hardware CPE %q on the device, firmware hash %v; want the CPE on the device and the image sha256", plc.CPE, (*plc.Components)[0].Hashes)
	}
}

// validateCycloneDX checks doc against the CycloneDX 1.6 JSON schema that
// cyclonedx-go ships in its module.
func validateCycloneDX(t *testing.T, doc []byte) {
	t.Helper()
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/CycloneDX/cyclonedx-go").Output()
	if err != nil {
		t.Fatalf("go list cyclonedx-go: %v", err)
	}
	schemas := filepath.Join(strings.TrimSpace(string(dir)), "schema")
	c := jsonschema.NewCompiler()
	for file, id := range map[string]string{
		"bom-1.6.schema.json":   "http://cyclonedx.org/schema/bom-1.6.schema.json",
		"spdx.schema.json":      "http://cyclonedx.org/schema/spdx.schema.json",
		"jsf-0.82.schemax.json": "http://cyclonedx.org/schema/jsf-0.82.schema.json",
	} {
		raw, err := os.ReadFile(filepath.Join(schemas, file))
		if err != nil {
			t.Fatal(err)
		}
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if err := c.AddResource(id, v); err != nil {
			t.Fatal(err)
		}
	}
	sch, err := c.Compile("http://cyclonedx.org/schema/bom-1.6.schema.json")
	if err != nil {
		t.Fatalf("compile the CycloneDX 1.6 schema: %v", err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(v); err != nil {
		t.Errorf("inventory --format cyclonedx is not valid CycloneDX 1.6: %v", err)
	}
}
