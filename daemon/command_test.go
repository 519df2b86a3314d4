// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/daemon/mqtt"
	"github.com/fieldgate/fieldgate/devices/devicetest"
)

func commandRig(t *testing.T) (*rig, ed25519.PrivateKey) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	r := newRigWith(t, false, func(c *config.Config) {
		c.Groups[0].Approval = config.ApprovalRemote
		c.Approvers = []config.Approver{{Name: "ops", PublicKey: base64.StdEncoding.EncodeToString(pub)}}
	}, "a")
	r.src.add(t, "fw", "2.0.0", 1, "hw1", devicetest.Image("2.0.0", 300))
	r.cycle(context.Background())
	return r, priv
}

// results returns the status of every result published for command id.
func results(t *testing.T, r *rig, id string) []string {
	msgs, err := r.st.Pending(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		if strings.HasSuffix(m.Topic, "/cmd/"+id+"/result") {
			var res commandResult
			json.Unmarshal(m.Payload, &res)
			out = append(out, res.Status+":"+res.Reason)
		}
	}
	return out
}

func send(r *rig, id string, payload []byte) {
	r.d.cmds.handleCommand(r.d.rep.topic("cmd", id), payload)
}

func TestSignedRemoteApprovalRunsTheJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, priv := commandRig(t)
		j := r.onlyJob(t)
		c := mqtt.Command{ID: "c1", Action: mqtt.ActionApprove, Gateway: r.d.cfg.MQTT.Prefix,
			Expires: time.Now().Add(time.Hour).Truncate(time.Second), Job: j.ID, SHA256: j.SHA256}
		payload, err := mqtt.SignCommand(c, "ops", priv)
		if err != nil {
			t.Fatal(err)
		}
		send(r, "c1", payload)
		if got := results(t, r, "c1"); len(got) != 2 || got[0] != "accepted:" || got[1] != "succeeded:" {
			t.Fatalf("results(c1) = %v, want accepted then succeeded", got)
		}
		r.settle(context.Background())
		if j := r.onlyJob(t); j.Phase != jobSucceeded || j.Approvals[0].Actor != "key ops" {
			t.Errorf("job %q approved by %+v; want succeeded, approved by key ops", j.Phase, j.Approvals)
		}
		// The same command again is a replay.
		send(r, "c1", payload)
		if got := results(t, r, "c1"); len(got) != 3 || !strings.HasPrefix(got[2], "rejected:replayed") {
			t.Errorf("results after replay = %v, want a third result rejected:replayed", got)
		}
	})
}

func TestBadCommandsChangeNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, priv := commandRig(t)
		j := r.onlyJob(t)
		_, other, _ := ed25519.GenerateKey(nil)
		good := mqtt.Command{ID: "x", Action: mqtt.ActionApprove, Gateway: r.d.cfg.MQTT.Prefix,
			Expires: time.Now().Add(time.Hour).Truncate(time.Second), Job: j.ID, SHA256: j.SHA256}
		sign := func(c mqtt.Command, key string, k ed25519.PrivateKey) []byte {
			p, err := mqtt.SignCommand(c, key, k)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		wrongSHA := good
		wrongSHA.ID, wrongSHA.SHA256 = "wrong-sha", strings.Repeat("0", 64)
		expired := good
		expired.ID, expired.Expires = "expired", time.Now().Add(-time.Minute).Truncate(time.Second)
		forged := good
		forged.ID = "forged"
		otherGW := good
		otherGW.ID, otherGW.Gateway = "other-gw", "fieldgate/v1/x/y"
		for id, payload := range map[string][]byte{
			"forged":    sign(forged, "ops", other),
			"unknown":   sign(mqtt.Command{ID: "unknown", Action: good.Action, Gateway: good.Gateway, Expires: good.Expires, Job: good.Job, SHA256: good.SHA256}, "nobody", priv),
			"wrong-sha": sign(wrongSHA, "ops", priv),
			"expired":   sign(expired, "ops", priv),
			"other-gw":  sign(otherGW, "ops", priv),
			"garbage":   []byte("{not json"),
			"huge":      []byte(strings.Repeat("x", mqtt.MaxCommandSize+1)),
		} {
			send(r, id, payload)
			got := results(t, r, id)
			if len(got) == 0 || !strings.HasPrefix(got[len(got)-1], "rejected:") {
				t.Errorf("command %s: results %v, want it rejected", id, got)
			}
		}
		r.settle(context.Background())
		if j := r.onlyJob(t); j.Phase != jobAwaitingApproval || len(j.Approvals) != 0 {
			t.Errorf("after bad commands job = %q with %d approvals; want awaiting-approval and none", j.Phase, len(j.Approvals))
		}
		if n, err := r.st.VerifyAudit(); err != nil || n == 0 {
			t.Errorf("VerifyAudit = %d, %v", n, err)
		}
	})
}

// TestSignedApprovalForOneInterval: a remote approval may name an interval
// (args.window); it must lie within one opening of the job's window, and
// one that runs past the opening's close is rejected and approves nothing.
func TestSignedApprovalForOneInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, priv := commandRig(t)
		j := r.onlyJob(t)
		now := time.Now().Truncate(time.Second)
		sendApprove := func(id string, from, until time.Time) []string {
			c := mqtt.Command{ID: id, Action: mqtt.ActionApprove, Gateway: r.d.cfg.MQTT.Prefix,
				Expires: now.Add(time.Hour), Job: j.ID, SHA256: j.SHA256, Window: mqtt.Window{Start: from, End: until}}
			payload, err := mqtt.SignCommand(c, "ops", priv)
			if err != nil {
				t.Fatal(err)
			}
			send(r, id, payload)
			return results(t, r, id)
		}
		// The rig's window opens daily at midnight UTC for 24 hours.
		closes := now.Truncate(24 * time.Hour).Add(24 * time.Hour)
		if got := sendApprove("past-close", closes.Add(-time.Hour), closes.Add(time.Hour)); len(got) != 2 || !strings.HasPrefix(got[1], "rejected:") {
			t.Fatalf("approval past the window's close: results %v, want accepted then rejected", got)
		}
		if j := r.onlyJob(t); len(j.Approvals) != 0 {
			t.Fatalf("a rejected interval approved the job: %+v", j.Approvals)
		}
		if got := sendApprove("inside", now, now.Add(time.Hour)); len(got) != 2 || got[1] != "succeeded:" {
			t.Fatalf("approval within the opening: results %v, want accepted then succeeded", got)
		}
		r.settle(context.Background())
		if j := r.onlyJob(t); j.Phase != jobSucceeded {
			t.Errorf("job %q after an approval for this hour, want succeeded", j.Phase)
		}
	})
}
