// SPDX-License-Identifier: Apache-2.0

package api

// Inventory is the gateway's asset inventory, the record advisories are
// matched against: published retained on {prefix}/inventory when it
// changes, and served to fieldgatectl inventory. It carries no clock, so
// that an unchanged inventory is the same document.
type Inventory struct {
	// Gateway is the gateway's id.
	Gateway string `json:"gateway"`
	// Site is the gateway's site.
	Site string `json:"site"`
	// Devices lists every configured device, in configuration order.
	Devices []InventoryDevice `json:"devices"`
}

// InventoryDevice is one device's inventory record: what the device
// reported of itself (firmware always; vendor, model and serial when it
// reports them) and what the configuration adds. Sources says where each
// non-empty field came from.
type InventoryDevice struct {
	// ID is the device's id from the configuration.
	ID string `json:"id"`
	// Protocol is the device's driver, as configured.
	Protocol string `json:"protocol"`
	// HardwareID is the hardware id the device reports, else the
	// configured one.
	HardwareID string `json:"hardware_id"`
	// Vendor is the device's manufacturer.
	Vendor string `json:"vendor,omitempty"`
	// Product is the device's product name.
	Product string `json:"product,omitempty"`
	// Model is the device's model or order number.
	Model string `json:"model,omitempty"`
	// HardwareRevision is the device's hardware revision.
	HardwareRevision string `json:"hardware_revision,omitempty"`
	// Firmware is the running firmware version the device reported; empty
	// until it was identified.
	Firmware string `json:"firmware"`
	// ImageSHA256 is the hex SHA-256 of the running image, when the device
	// reports it.
	ImageSHA256 string `json:"image_sha256,omitempty"`
	// Serial is the device's serial number.
	Serial string `json:"serial,omitempty"`
	// CPE is the device's CPE 2.3 formatted string, from the
	// configuration.
	CPE string `json:"cpe,omitempty"`
	// PURL is the device's firmware package URL, from the configuration.
	PURL string `json:"purl,omitempty"`
	// Zone is the device's network exposure (InventoryZones).
	Zone string `json:"zone"`
	// Criticality is how much the plant depends on the device
	// (InventoryCriticalities).
	Criticality string `json:"criticality"`
	// Sources says, for each field set above by name (vendor, product,
	// model, hardware_revision, firmware, serial, hardware_id, cpe, purl,
	// zone, criticality), where it came from (InventorySources).
	Sources map[string]string `json:"sources"`
	// Conflicts lists the fields the device and the configuration
	// disagree on; the device's value is the one above.
	Conflicts []InventoryConflict `json:"conflicts,omitempty"`
}

// InventoryConflict is a field the device reports differently from the
// configuration. It does not block updates; hardware_id mismatches do, as
// the device's state says.
type InventoryConflict struct {
	// Field is the field's JSON name (vendor, model, serial, hardware_id).
	Field string `json:"field"`
	// Device is what the device reports.
	Device string `json:"device"`
	// Config is what the configuration says.
	Config string `json:"config"`
}

// Where an inventory field came from (InventoryDevice.Sources).
const (
	SourceDevice = "device" // read from the device over its protocol
	SourceConfig = "config" // from the gateway's configuration (or its default)
)

// InventorySources lists the values of InventoryDevice.Sources.
func InventorySources() []string { return []string{SourceDevice, SourceConfig} }

// InventoryZones lists the values of InventoryDevice.Zone, most exposed
// first.
func InventoryZones() []string { return []string{"internet", "dmz", "control", "isolated"} }

// InventoryCriticalities lists the values of InventoryDevice.Criticality.
func InventoryCriticalities() []string { return []string{"high", "medium", "low"} }
