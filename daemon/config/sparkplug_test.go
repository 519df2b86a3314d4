// SPDX-License-Identifier: Apache-2.0

package config

import (
	"fmt"
	"strings"
	"testing"
)

func TestSparkplugDefaults(t *testing.T) {
	c, err := Load(writeConfig(t, "gateway: {id: gw1, site: plant1}\nmqtt: {sparkplug: {enabled: true}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := c.MQTT.Sparkplug
	if !s.Enabled || s.GroupID != "plant1" || s.EdgeNodeID != "gw1" || s.ClientID != "fieldgated-gw1-sparkplug" || s.PrimaryHostID != "" {
		t.Errorf("MQTT.Sparkplug = %+v, want enabled, group plant1, edge node gw1, client fieldgated-gw1-sparkplug", s)
	}
}

func TestValidateSparkplug(t *testing.T) {
	for _, tc := range []struct {
		name, sparkplug string
		want            []string // substrings of the problems; none: valid
	}{
		{"defaults", "{enabled: true}", nil},
		{"all set", "{enabled: true, group_id: Halle 3, edge_node_id: gw-1, primary_host_id: scada1, client_id: sp1}", nil},
		{"plus in group", "{enabled: true, group_id: a+b}", []string{"mqtt.sparkplug.group_id"}},
		{"slash in node", "{enabled: true, edge_node_id: a/b}", []string{"mqtt.sparkplug.edge_node_id"}},
		{"hash in host", "{enabled: true, primary_host_id: '#'}", []string{"mqtt.sparkplug.primary_host_id"}},
		{"same client id", "{enabled: true, client_id: fieldgated-gw1}", []string{"mqtt.sparkplug.client_id", "connection of its own"}},
		{"off: not checked", "{enabled: false, group_id: a/b}", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(writeConfig(t, "gateway: {id: gw1, site: plant1}\nmqtt: {sparkplug: "+tc.sparkplug+"}\n"))
			if err != nil {
				t.Fatalf("Load = %v", err)
			}
			var problems []string
			c.validateSparkplug(func(path, format string, a ...any) {
				problems = append(problems, path+": "+fmt.Sprintf(format, a...))
			})
			got := strings.Join(problems, "\n")
			if len(tc.want) == 0 && got != "" {
				t.Errorf("validateSparkplug(%s) = %q, want no problem", tc.sparkplug, got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("validateSparkplug(%s) = %q, want it to mention %q", tc.sparkplug, got, w)
				}
			}
			// Validate reports them with the rest.
			if err := c.Validate(nil); len(tc.want) > 0 && (err == nil || !strings.Contains(err.Error(), tc.want[0])) {
				t.Errorf("Validate(sparkplug %s) = %v, want it to mention %q", tc.sparkplug, err, tc.want[0])
			}
		})
	}
}
