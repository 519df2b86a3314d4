// SPDX-License-Identifier: Apache-2.0

package tftp

import (
	"fmt"
	"strings"

	"github.com/fieldgate/fieldgate/devices"
)

// Device states reported in an identity record.
const (
	StateRunning    = "running"     // the reported version is booted
	StateBootFailed = "boot-failed" // the last image did not boot; the old one runs
)

// ParseIdentity parses an identity record: key=value fields separated by
// spaces or newlines, with keys vendor, product, model, hardware_revision,
// serial, hardware_id, version, image_sha256 and state. Unknown keys are ignored; version is required.
// Devices serve it as a "version" file over TFTP, or on the tftp-pull
// control channel.
func ParseIdentity(text string) (devices.Identity, string, error) {
	var id devices.Identity
	var state string
	for _, f := range strings.Fields(text) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		switch k {
		case "vendor":
			id.Vendor = v
		case "product":
			id.Product = v
		case "model":
			id.Model = v
		case "hardware_revision":
			id.HardwareRevision = v
		case "serial":
			id.Serial = v
		case "hardware_id":
			id.HardwareID = v
		case "version":
			id.Version = v
		case "image_sha256":
			id.ImageSHA256 = strings.ToLower(v)
		case "state":
			state = v
		}
	}
	if id.Version == "" {
		return id, state, fmt.Errorf("identity record %q has no version=", printable([]byte(text)))
	}
	return id, state, nil
}

// FormatIdentity writes an identity record that ParseIdentity reads back.
// Values must not contain spaces.
func FormatIdentity(id devices.Identity, state string) string {
	var b strings.Builder
	add := func(k, v string) {
		if v == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + "=" + v)
	}
	add("vendor", id.Vendor)
	add("product", id.Product)
	add("model", id.Model)
	add("hardware_revision", id.HardwareRevision)
	add("serial", id.Serial)
	add("hardware_id", id.HardwareID)
	add("version", id.Version)
	add("image_sha256", id.ImageSHA256)
	add("state", state)
	return b.String()
}
