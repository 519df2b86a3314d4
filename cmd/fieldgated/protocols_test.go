// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/daemon/api"
)

// TestProtocolNamesAgree: the protocol a device document carries is the
// device's configured driver, and the configuration accepts only the
// drivers linked here. So the names of drivers() are the values a
// subscriber can see, and every place that lists them must say the same:
// api.DeviceProtocols (docs/mqtt.md's table is checked against it in
// daemon/api), the enum of docs/schema/device.schema.json, the README's
// protocol table and the driver list of docs/config.md.
func TestProtocolNamesAgree(t *testing.T) {
	linked := drivers().Names() // sorted
	sorted := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

	if got := sorted(api.DeviceProtocols()); !slices.Equal(got, linked) {
		t.Errorf("api.DeviceProtocols() = %q, want the drivers fieldgated links: %q", got, linked)
	}

	raw, err := os.ReadFile("../../docs/schema/device.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties struct {
			Protocol struct {
				Enum []string `json:"enum"`
			} `json:"protocol"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	if got := sorted(schema.Properties.Protocol.Enum); !slices.Equal(got, linked) {
		t.Errorf("device.schema.json protocol enum = %q, want %q (go test ./daemon/api -run TestSchemaFiles -update)", got, linked)
	}

	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Device protocols\n")
	if !ok {
		t.Fatal("README.md has no section Device protocols")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	name := regexp.MustCompile("`([a-z0-9-]+)`")
	var inReadme []string
	for _, l := range strings.Split(section, "\n") {
		if !strings.HasPrefix(l, "| `") {
			continue
		}
		first := strings.Split(l, "|")[1]
		for _, m := range name.FindAllStringSubmatch(first, -1) {
			inReadme = append(inReadme, m[1])
		}
	}
	if got := sorted(inReadme); !slices.Equal(got, linked) {
		t.Errorf("README.md protocol table names %q, want %q", got, linked)
	}

	config, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)The drivers linked\s+into this fieldgated are: ([^.]+)\.`).FindSubmatch(config)
	if m == nil {
		t.Fatal("docs/config.md does not list the linked drivers")
	}
	var inConfig []string
	for _, n := range strings.Split(string(m[1]), ",") {
		inConfig = append(inConfig, strings.TrimSpace(n))
	}
	if got := sorted(inConfig); !slices.Equal(got, linked) {
		t.Errorf("docs/config.md lists drivers %q, want %q", got, linked)
	}
}
