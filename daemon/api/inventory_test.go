// SPDX-License-Identifier: Apache-2.0

package api

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestInventoryWireFormat pins the inventory document's JSON, as
// TestWireFormat does for the others, and checks the full sample is full.
func TestInventoryWireFormat(t *testing.T) {
	full := Inventory{Gateway: "gw-1", Site: "plant-a", Devices: []InventoryDevice{{
		ID: "plc-1", Protocol: "modbus-tcp", HardwareID: "acme-plc-r2", Vendor: "Acme", Product: "PLC 200",
		Model: "6ES7 214-1AG40-0XB0", HardwareRevision: "3", Firmware: "2.4.1", ImageSHA256: "aa11", Serial: "SN42",
		CPE: "cpe:2.3:h:acme:plc_200:-", PURL: "pkg:generic/acme/plc-fw@2.4.1", Zone: "dmz", Criticality: "high",
		Sources:   map[string]string{"vendor": SourceDevice, "cpe": SourceConfig},
		Conflicts: []InventoryConflict{{Field: "model", Device: "6ES7 214-1AG40-0XB0", Config: "6ES7 214-1AG40-0XB1"}},
	}}}
	for _, path := range zeroFields(reflect.ValueOf(full), "Inventory") {
		t.Errorf("%s is zero in the full sample: set it, so that its JSON name is pinned", path)
	}
	for _, tc := range []struct {
		name string
		doc  Inventory
		want string
	}{
		{"full", full, `{"gateway":"gw-1","site":"plant-a","devices":[{"id":"plc-1","protocol":"modbus-tcp","hardware_id":"acme-plc-r2",` +
			`"vendor":"Acme","product":"PLC 200","model":"6ES7 214-1AG40-0XB0","hardware_revision":"3","firmware":"2.4.1","image_sha256":"aa11",` +
			`"serial":"SN42","cpe":"cpe:2.3:h:acme:plc_200:-","purl":"pkg:generic/acme/plc-fw@2.4.1","zone":"dmz","criticality":"high",` +
			`"sources":{"cpe":"config","vendor":"device"},"conflicts":[{"field":"model","device":"6ES7 214-1AG40-0XB0","config":"6ES7 214-1AG40-0XB1"}]}]}`},
		{"minimal", Inventory{Gateway: "gw-1", Site: "s", Devices: []InventoryDevice{{ID: "d", Protocol: "ssh", HardwareID: "hw", Zone: "control", Criticality: "medium", Sources: map[string]string{}}}},
			`{"gateway":"gw-1","site":"s","devices":[{"id":"d","protocol":"ssh","hardware_id":"hw","firmware":"","zone":"control","criticality":"medium","sources":{}}]}`},
	} {
		got, err := json.Marshal(tc.doc)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.want {
			t.Errorf("json.Marshal(%s inventory) =\n%s\nwant\n%s", tc.name, got, tc.want)
		}
	}
}
