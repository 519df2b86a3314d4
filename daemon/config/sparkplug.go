// SPDX-License-Identifier: Apache-2.0

package config

import "github.com/fieldgate/fieldgate/daemon/mqtt/sparkplug"

// defaultSparkplug fills in the Sparkplug ids from the gateway's.
func (c *Config) defaultSparkplug() {
	s := &c.MQTT.Sparkplug
	if s.GroupID == "" {
		s.GroupID = c.Gateway.Site
	}
	if s.EdgeNodeID == "" {
		s.EdgeNodeID = c.Gateway.ID
	}
	if s.ClientID == "" {
		s.ClientID = c.MQTT.ClientID + "-sparkplug"
	}
}

// validateSparkplug checks the Sparkplug ids (when the node is enabled):
// Sparkplug forbids / + and # in them, and the node's client id must
// differ from the gateway's, or the two connections would take each
// other over.
func (c *Config) validateSparkplug(bad func(path, format string, a ...any)) {
	s := c.MQTT.Sparkplug
	if !s.Enabled {
		return
	}
	for _, id := range []struct{ key, v string }{
		{"group_id", s.GroupID}, {"edge_node_id", s.EdgeNodeID}, {"client_id", s.ClientID},
	} {
		if err := sparkplug.CheckID(id.v); err != nil {
			bad("mqtt.sparkplug."+id.key, "%v", err)
		}
	}
	if s.PrimaryHostID != "" {
		if err := sparkplug.CheckID(s.PrimaryHostID); err != nil {
			bad("mqtt.sparkplug.primary_host_id", "%v", err)
		}
	}
	if s.ClientID == c.MQTT.ClientID {
		bad("mqtt.sparkplug.client_id", "%q is mqtt.client_id: the edge node needs a connection of its own", s.ClientID)
	}
}
