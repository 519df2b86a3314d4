// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"encoding/json"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fieldgate/fieldgate/daemon/mqtt"
)

// TestObserve: an observer (the Sparkplug node) is handed the whole view
// each time the loop publishes the gateway status, and every command
// result as it is published.
func TestObserve(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, priv := commandRig(t)
		var views []Observation
		var results []commandResult
		r.d.Observe(func(o Observation) { views = append(views, o) }, func(doc []byte) {
			var res commandResult
			if err := json.Unmarshal(doc, &res); err != nil {
				t.Errorf("result %s: %v", doc, err)
			}
			results = append(results, res)
		})
		r.d.publishGateway()
		r.d.publishGateway() // unchanged: not published again, observed all the same
		if len(views) != 2 {
			t.Fatalf("%d observations after two turns, want 2", len(views))
		}
		v := views[1]
		if v.Gateway.ID != r.d.cfg.Gateway.ID || len(v.Devices) != 1 || len(v.Jobs) != 1 || len(v.Windows) == 0 {
			t.Errorf("observation = gateway %q, %d devices, %d jobs, %d windows; want the rig's gateway, 1, 1, some",
				v.Gateway.ID, len(v.Devices), len(v.Jobs), len(v.Windows))
		}
		j := r.onlyJob(t)
		payload, err := mqtt.SignCommand(mqtt.Command{ID: "c1", Action: mqtt.ActionApprove, Gateway: r.d.cfg.MQTT.Prefix,
			Expires: time.Now().Add(time.Hour), Job: j.ID, SHA256: j.SHA256}, "ops", priv)
		if err != nil {
			t.Fatal(err)
		}
		send(r, "c1", payload)
		if len(results) != 2 || results[0].Status != "accepted" || results[1].Status != "succeeded" || results[1].ID != "c1" {
			t.Errorf("observed results %+v, want c1 accepted then succeeded", results)
		}
	})
}
