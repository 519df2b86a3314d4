// SPDX-License-Identifier: Apache-2.0

package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/spf13/cobra"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/control"
)

// inventoryCommand prints the gateway's inventory: the daemon's document
// as JSON, or a CycloneDX 1.6 BOM that security teams import.
func inventoryCommand(socket *string, stdout io.Writer) *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "inventory",
		Short: "Print the device inventory advisories are matched against (--format json or cyclonedx)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "json" && format != "cyclonedx" {
				return fmt.Errorf("--format %q: want json or cyclonedx", format)
			}
			inv, err := control.NewClient(*socket).Inventory(cmd.Context())
			if err != nil {
				return err
			}
			if format == "cyclonedx" {
				enc := cdx.NewBOMEncoder(stdout, cdx.BOMFileFormatJSON)
				enc.SetPretty(true)
				return enc.EncodeVersion(inventoryBOM(inv, version, time.Now()), cdx.SpecVersion1_6)
			}
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(inv)
		},
	}
	c.Flags().StringVar(&format, "format", "json", "json (the daemon's document, as published on {prefix}/inventory) or cyclonedx (CycloneDX 1.6 JSON)")
	return c
}

// Property names in the BOM, in CycloneDX's convention of a namespace
// prefix for names of one's own.
const (
	propGateway          = "fieldgate:gateway"
	propSite             = "fieldgate:site"
	propDevice           = "fieldgate:device"
	propProtocol         = "fieldgate:protocol"
	propHardwareID       = "fieldgate:hardware_id"
	propModel            = "fieldgate:model"
	propSerial           = "fieldgate:serial"
	propHardwareRevision = "fieldgate:hardware_revision"
	propZone             = "fieldgate:zone"
	propCriticality      = "fieldgate:criticality"
	propConflict         = "fieldgate:conflict"
)

// inventoryBOM turns the inventory into a CycloneDX BOM: the gateway is
// the BOM's subject, each device a component of type device (vendor as
// manufacturer and supplier, model and serial as properties) with its
// running firmware nested as a component of type firmware (version,
// sha256, CPE and PURL). A hardware CPE (cpe:2.3:h:…) stays on the device.
func inventoryBOM(inv api.Inventory, tool string, now time.Time) *cdx.BOM {
	bom := cdx.NewBOM()
	bom.SpecVersion = cdx.SpecVersion1_6
	gwProps := []cdx.Property{{Name: propGateway, Value: inv.Gateway}, {Name: propSite, Value: inv.Site}}
	bom.Metadata = &cdx.Metadata{
		Timestamp: now.UTC().Format(time.RFC3339),
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type: cdx.ComponentTypeApplication, Name: "fieldgatectl", Version: tool,
		}}},
		Component: &cdx.Component{
			BOMRef: "gateway:" + inv.Gateway, Type: cdx.ComponentTypeDevice, Name: inv.Gateway,
			Description: "fieldgate gateway of site " + inv.Site, Properties: &gwProps,
		},
	}
	comps := make([]cdx.Component, 0, len(inv.Devices))
	for _, d := range inv.Devices {
		var org *cdx.OrganizationalEntity
		if d.Vendor != "" {
			org = &cdx.OrganizationalEntity{Name: d.Vendor}
		}
		props := []cdx.Property{{Name: propDevice, Value: d.ID}, {Name: propGateway, Value: inv.Gateway}, {Name: propSite, Value: inv.Site}}
		add := func(name, v string) {
			if v != "" {
				props = append(props, cdx.Property{Name: name, Value: v})
			}
		}
		add(propProtocol, d.Protocol)
		add(propHardwareID, d.HardwareID)
		add(propModel, d.Model)
		add(propSerial, d.Serial)
		add(propHardwareRevision, d.HardwareRevision)
		add(propZone, d.Zone)
		add(propCriticality, d.Criticality)
		for _, c := range d.Conflicts {
			add(propConflict, fmt.Sprintf("%s: device reports %q, configured %q", c.Field, c.Device, c.Config))
		}
		name := cmp.Or(d.Product, d.Model, d.HardwareID, d.ID)
		fw := cdx.Component{
			BOMRef: "firmware:" + d.ID, Type: cdx.ComponentTypeFirmware, Name: name + " firmware",
			Version: d.Firmware, Supplier: org, Manufacturer: org, PackageURL: d.PURL,
		}
		if d.ImageSHA256 != "" {
			fw.Hashes = &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: d.ImageSHA256}}
		}
		dev := cdx.Component{
			BOMRef: "device:" + d.ID, Type: cdx.ComponentTypeDevice, Name: name,
			Version: d.HardwareRevision, Supplier: org, Manufacturer: org,
			Properties: &props, Components: &[]cdx.Component{fw},
		}
		if strings.HasPrefix(d.CPE, "cpe:2.3:h:") {
			dev.CPE = d.CPE
		} else {
			(*dev.Components)[0].CPE = d.CPE
		}
		comps = append(comps, dev)
	}
	bom.Components = &comps
	return bom
}
