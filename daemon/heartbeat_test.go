// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"encoding/json"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
)

// published returns the topics (below the prefix) of every message the
// daemon has queued, in order, and the gateway documents among them.
func published(t *testing.T, r *rig) ([]string, []api.Gateway) {
	msgs, err := r.st.Pending(0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	var topics []string
	var status []api.Gateway
	for _, m := range msgs {
		topic := strings.TrimPrefix(m.Topic, r.d.cfg.MQTT.Prefix+"/")
		topics = append(topics, topic)
		if topic == "status" {
			var g api.Gateway
			if err := json.Unmarshal(m.Payload, &g); err != nil {
				t.Fatal(err)
			}
			status = append(status, g)
		}
	}
	return topics, status
}

// TestIdleRefreshPublishesNothing: over hours of refreshes that find
// nothing new, the daemon queues nothing for MQTT but the gateway status
// once per heartbeat, each carrying the heartbeat and the newest
// last_refresh. Counts only: no timing is asserted beyond which turn of
// the clock a message belongs to.
func TestIdleRefreshPublishesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, src, stop := runIdle(t, time.Hour, nil)
		time.Sleep(2 * time.Minute) // started, identified the devices, refreshed
		synctest.Wait()
		startTopics, startStatus := published(t, r)
		if len(startStatus) == 0 {
			t.Fatalf("no status after the start; queued %v", startTopics)
		}
		start := src.refreshes.Load()

		time.Sleep(3*time.Hour + 30*time.Minute - 2*time.Minute)
		synctest.Wait()
		topics, status := published(t, r)
		refreshes := src.refreshes.Load() - start
		if refreshes < 180 {
			t.Fatalf("%d refreshes in 3.5h at a 1m interval, want about 200", refreshes)
		}
		later := topics[len(startTopics):]
		beats := status[len(startStatus):]
		for _, topic := range later {
			if topic != "status" {
				t.Errorf("after %d idle refreshes the daemon queued %v; want only statuses (heartbeats)", refreshes, later)
				break
			}
		}
		if len(beats) != 3 {
			t.Fatalf("%d statuses in 3.5h of idle refreshes with a 1h heartbeat, want 3 (at 1h, 2h and 3h)", len(beats))
		}
		prev := status[len(startStatus)-1]
		for i, g := range beats {
			if g.Heartbeat != 3600 {
				t.Errorf("heartbeat %d says heartbeat %d, want 3600", i, g.Heartbeat)
			}
			if gap := g.Time.Sub(prev.Time); gap < time.Hour || gap > time.Hour+10*time.Second {
				t.Errorf("heartbeat %d came %v after the previous status, want one heartbeat (1h, within a loop tick)", i, gap)
			}
			if g.LastRefresh == nil || prev.LastRefresh == nil || !g.LastRefresh.After(*prev.LastRefresh) {
				t.Errorf("heartbeat %d last_refresh %v, previous %v: want the newer refresh", i, g.LastRefresh, prev.LastRefresh)
			}
			prev = g
		}
		stop()
	})
}

// TestStatusChangeIsPublishedAtOnce: a change (a new metadata expiry) is
// published on the next turn, not at the heartbeat.
func TestStatusChangeIsPublishedAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, src, stop := runIdle(t, time.Hour, nil)
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		_, before := published(t, r)
		src.expires = src.expires.Add(24 * time.Hour) // the repository re-signed its timestamp
		r.d.Wake()
		time.Sleep(time.Second)
		synctest.Wait()
		_, after := published(t, r)
		stop()
		if len(after) != len(before)+1 {
			t.Fatalf("%d statuses after the expiry changed, want %d (one more)", len(after), len(before)+1)
		}
		if g := after[len(after)-1]; g.MetadataExpires == nil || !g.MetadataExpires.Equal(src.expires.UTC()) {
			t.Errorf("new status says metadata_expires %v, want %v", g.MetadataExpires, src.expires.UTC())
		}
	})
}

func statuses(t *testing.T, msgs []mqttMsg) []api.Gateway {
	var out []api.Gateway
	for _, m := range msgs {
		if m.topic != "status" {
			continue
		}
		var g api.Gateway
		if err := json.Unmarshal(m.payload, &g); err != nil {
			t.Fatalf("status %s: %v", m.payload, err)
		}
		out = append(out, g)
	}
	return out
}

// TestInteropIdleRefreshesPublishOnlyHeartbeats: a gateway connected to
// a real mosquitto, refreshing an unchanged repository over and over,
// sends the broker nothing but its status once per heartbeat. Its clock
// moves one minute per refresh and the heartbeat is 30 minutes, so each
// status must come exactly 30 refreshes after the one before.
func TestInteropIdleRefreshesPublishOnlyHeartbeats(t *testing.T) {
	g := startBrokerGateway(t, 20*time.Millisecond, 30*time.Minute, time.Minute)
	g.await(t, "the devices' documents", func(m []mqttMsg) bool {
		n := 0
		for _, x := range m {
			if strings.HasPrefix(x.topic, "devices/") {
				n++
			}
		}
		return n >= 2
	})
	for g.src.refreshes.Load() < 3 {
		time.Sleep(20 * time.Millisecond)
	}
	before := g.flush(t, "start")
	first := statuses(t, before)
	if len(first) == 0 {
		t.Fatal("no status after the start")
	}
	last := first[len(first)-1]
	startRefreshes := g.src.refreshes.Load()

	const n = 100
	for g.src.refreshes.Load() < startRefreshes+n {
		time.Sleep(20 * time.Millisecond)
	}
	after := g.flush(t, "end")[len(before):]
	for _, m := range after {
		if m.topic != "status" && !strings.HasPrefix(m.topic, "marker/") {
			t.Errorf("over %d idle refreshes the broker got %s: %s; want only heartbeat statuses", n, m.topic, m.payload)
		}
	}
	beats := statuses(t, after)
	if len(beats) < 3 {
		t.Fatalf("%d statuses over %d idle refreshes with a heartbeat of 30 refreshes, want at least 3", len(beats), n)
	}
	for i, b := range beats {
		if gap := b.Time.Sub(last.Time); gap != 30*time.Minute {
			t.Errorf("status %d came %v (daemon clock, one minute per refresh) after the previous one, want exactly the 30m heartbeat", i, gap)
		}
		if b.Heartbeat != 1800 || !b.Online {
			t.Errorf("status %d: heartbeat %d, online %v; want 1800 and true", i, b.Heartbeat, b.Online)
		}
		last = b
	}
}
