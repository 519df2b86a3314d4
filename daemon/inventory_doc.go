// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"encoding/json"
	"time"

	"github.com/fieldgate/fieldgate/daemon/advisory"
	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/daemon/store"
	"github.com/fieldgate/fieldgate/devices"
)

// inventoryRecord merges what a device reported (rec.Identity, rec.Version)
// with its configuration. The firmware version is always the device's;
// vendor, model, serial, product, hardware revision and hardware id are
// the device's when it reports them, the configuration's otherwise; CPE,
// PURL, zone and criticality come from the configuration only. Where the
// device and the configuration disagree on vendor, model, serial or
// hardware id, both are recorded as a conflict.
func inventoryRecord(cfg config.Device, rec store.Device) api.InventoryDevice {
	var ident devices.Identity
	if len(rec.Identity) > 0 {
		json.Unmarshal(rec.Identity, &ident) // written by inventory(); a record without one is not identified yet
	}
	inv := api.InventoryDevice{ID: cfg.ID, Protocol: cfg.Protocol, Sources: map[string]string{}}
	pick := func(field string, dst *string, device, configured string, conflict bool) {
		switch {
		case device != "":
			*dst = device
			inv.Sources[field] = api.SourceDevice
			if conflict && configured != "" && !sameValue(device, configured) {
				inv.Conflicts = append(inv.Conflicts, api.InventoryConflict{Field: field, Device: device, Config: configured})
			}
		case configured != "":
			*dst = configured
			inv.Sources[field] = api.SourceConfig
		}
	}
	pick("hardware_id", &inv.HardwareID, ident.HardwareID, cfg.HardwareID, true)
	pick("vendor", &inv.Vendor, ident.Vendor, cfg.Vendor, true)
	pick("product", &inv.Product, ident.Product, cfg.Product, false)
	pick("model", &inv.Model, ident.Model, cfg.Model, true)
	pick("hardware_revision", &inv.HardwareRevision, ident.HardwareRevision, cfg.HardwareRevision, false)
	pick("serial", &inv.Serial, ident.Serial, cfg.Serial, true)
	pick("firmware", &inv.Firmware, rec.Version, "", false)
	if inv.Firmware != "" {
		inv.ImageSHA256 = rec.ImageSHA256
	}
	pick("cpe", &inv.CPE, "", cfg.CPE, false)
	pick("purl", &inv.PURL, "", cfg.PURL, false)
	pick("zone", &inv.Zone, "", cfg.Zone, false)
	pick("criticality", &inv.Criticality, "", cfg.Criticality, false)
	return inv
}

// sameValue compares a reported and a configured value as people write
// them: without case, and for order numbers without spaces and dashes
// ("6ES7 214-1AG40-0XB0" is "6es7214-1ag40-0xb0").
func sameValue(a, b string) bool {
	norm := func(s string) string {
		out := make([]byte, 0, len(s))
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case c == ' ' || c == '-' || c == '_' || c == '.' || c == ',':
			case c >= 'A' && c <= 'Z':
				out = append(out, c+'a'-'A')
			default:
				out = append(out, c)
			}
		}
		return string(out)
	}
	return norm(a) == norm(b)
}

// InventoryItem is the record as the advisory matcher takes it.
func InventoryItem(inv api.InventoryDevice) advisory.Item {
	return advisory.Item{
		Device: inv.ID, Vendor: inv.Vendor, Product: inv.Product, Model: inv.Model,
		HardwareRevision: inv.HardwareRevision, Firmware: inv.Firmware, Serial: inv.Serial,
		CPE: inv.CPE, PURL: inv.PURL,
		Zone: advisory.Zone(inv.Zone), Criticality: advisory.Criticality(inv.Criticality),
	}
}

// Inventory returns the gateway's inventory: every configured device's
// record, in configuration order, from one read of the store. Safe for
// concurrent use.
func (d *Daemon) Inventory(context.Context) (api.Inventory, error) {
	inv := api.Inventory{Gateway: d.cfg.Gateway.ID, Site: d.cfg.Gateway.Site, Devices: make([]api.InventoryDevice, 0, len(d.order))}
	recs, err := d.st.Devices()
	if err != nil {
		return inv, err
	}
	byID := map[string]store.Device{}
	for _, r := range recs {
		byID[r.ID] = r
	}
	for _, id := range d.order {
		inv.Devices = append(inv.Devices, inventoryRecord(d.devCfg[id], byID[id]))
	}
	return inv, nil
}

// publishInventory enqueues the inventory, retained on {prefix}/inventory,
// when it differs from the one last published by this process (the first
// one after a start always goes out). Called from the loop only.
func (d *Daemon) publishInventory() {
	inv, err := d.Inventory(context.Background())
	if err != nil {
		return
	}
	raw, _ := json.Marshal(inv)
	if string(raw) == d.lastInventory {
		return
	}
	err = d.st.Update(func(tx *store.Tx) error {
		_, err := tx.Enqueue(d.rep.topic("inventory"), inv, true)
		return err
	})
	if err != nil {
		if d.errlog.allow("publish-inventory", time.Minute) {
			d.log.Error("publish inventory", "err", err)
		}
		return
	}
	d.lastInventory = string(raw)
}
