// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fieldgate/fieldgate/daemon/api"
	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/daemon/mqtt"
	"github.com/fieldgate/fieldgate/tuf"
)

// idleSource is a repository where nothing changes: every refresh returns
// the same metadata (the same expiry), as a 304 for timestamp.json does.
// It counts refreshes.
type idleSource struct {
	expires   time.Time
	refreshes atomic.Int64
}

func (s *idleSource) Refresh(ctx context.Context) (*tuf.Snapshot, error) {
	s.refreshes.Add(1)
	return &tuf.Snapshot{Expires: s.expires, RefTime: time.Now(), Versions: map[string]int64{"root": 1}}, nil
}

func (s *idleSource) Fetch(ctx context.Context, t tuf.Target, _ func(int64, int64)) (string, error) {
	panic("idle repository has no targets")
}

// runIdle runs a daemon over idleSource (refresh every minute, heartbeat as
// given) in the synctest bubble; it returns the rig, its source and a
// function that stops the daemon and waits for it (also run at cleanup).
func runIdle(t *testing.T, heartbeat time.Duration, tweak func(*config.Config)) (*rig, *idleSource, func()) {
	r := newRigWith(t, false, func(c *config.Config) {
		c.MQTT.Heartbeat = heartbeat
		if tweak != nil {
			tweak(c)
		}
	}, "a", "b")
	src := &idleSource{expires: time.Now().Add(30 * 24 * time.Hour)}
	d, err := New(Deps{Config: r.d.cfg, Store: r.st, Source: src, Devices: r.d.devs, Log: r.d.log, Version: "test",
		Rand: func() float64 { return 0.5 }})
	if err != nil {
		t.Fatal(err)
	}
	r.d = d
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run = %v", err)
			}
		})
	}
	t.Cleanup(stop) // also after a t.Fatal: the bubble ends only with its goroutines
	return r, src, stop
}

// hintRig runs an idle daemon (refresh interval 24h, so that only hints
// make it refresh after the first one) that takes refresh hints on the
// default broadcast prefix, with a 10s spread and a random source that
// always says 0.5 (a 5s delay).
func hintRig(t *testing.T) (*rig, *idleSource, ed25519.PrivateKey) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	r, src, _ := runIdle(t, time.Hour, func(c *config.Config) {
		c.Gateway.RefreshInterval = 24 * time.Hour
		c.MQTT.BroadcastPrefix = mqtt.DefaultBroadcastPrefix
		c.MQTT.HintSpread = 10 * time.Second
		c.Approvers = []config.Approver{{Name: "ops", PublicKey: base64.StdEncoding.EncodeToString(pub)}}
	})
	time.Sleep(time.Minute) // the first refresh comes within 10s of the start
	synctest.Wait()
	if n := src.refreshes.Load(); n != 1 {
		t.Fatalf("%d refreshes in the first minute, want 1", n)
	}
	return r, src, priv
}

// hint signs a broadcast command and hands it to the daemon as the MQTT
// session would.
func hint(t *testing.T, r *rig, priv ed25519.PrivateKey, c mqtt.Command) {
	t.Helper()
	if c.Gateway == "" {
		c.Gateway = mqtt.DefaultBroadcastPrefix
	}
	if c.Expires.IsZero() {
		c.Expires = time.Now().Add(time.Hour)
	}
	payload, err := mqtt.SignCommand(c, "ops", priv)
	if err != nil {
		t.Fatal(err)
	}
	r.d.CommandHandler()(mqtt.DefaultBroadcastPrefix+"/cmd/"+c.ID, payload)
	synctest.Wait()
}

// hintEvents returns the refresh-hint and refresh-hint-rejected events
// queued on the events topic.
func hintEvents(t *testing.T, r *rig) []api.Event {
	msgs, err := r.st.Pending(0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	var out []api.Event
	for _, m := range msgs {
		if m.Topic != r.d.rep.topic("events") {
			continue
		}
		var e api.Event
		if err := json.Unmarshal(m.Payload, &e); err != nil {
			t.Fatal(err)
		}
		if e.Type == "refresh-hint" || e.Type == "refresh-hint-rejected" {
			out = append(out, e)
		}
	}
	return out
}

// TestRefreshHint: a signed hint makes the gateway refresh once, after the
// random delay within the spread; a second hint meanwhile joins it; a hint
// soon after waits for the 30s rate limit; no result is published for any.
func TestRefreshHint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, src, priv := hintRig(t)
		hint(t, r, priv, mqtt.Command{ID: "h1", Action: mqtt.ActionRefresh})
		time.Sleep(4 * time.Second)
		hint(t, r, priv, mqtt.Command{ID: "h2", Action: mqtt.ActionRefresh}) // joins h1's refresh
		if n := src.refreshes.Load(); n != 1 {
			t.Fatalf("%d refreshes 4s after a hint with a 5s delay, want none yet", n-1)
		}
		time.Sleep(10 * time.Second) // past the whole spread
		synctest.Wait()
		if n := src.refreshes.Load() - 1; n != 1 {
			t.Fatalf("%d refreshes after two hints within the spread, want exactly 1", n)
		}

		// 14s after the first hint, 9s after its refresh: the next hinted
		// refresh is due 30s after that one, not 5s from now.
		hint(t, r, priv, mqtt.Command{ID: "h3", Action: mqtt.ActionRefresh})
		time.Sleep(20 * time.Second) // 29s after h1's refresh
		synctest.Wait()
		if n := src.refreshes.Load() - 1; n != 1 {
			t.Fatalf("%d hinted refreshes within 30s, want 1 (rate limit)", n)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := src.refreshes.Load() - 1; n != 2 {
			t.Fatalf("%d hinted refreshes 31s after the first, want 2 (a later hint is not lost)", n)
		}

		evs := hintEvents(t, r)
		if len(evs) != 3 {
			t.Fatalf("hint events %+v, want refresh-hint for h1, h2, h3", evs)
		}
		for i, e := range evs {
			if id := []string{"h1", "h2", "h3"}[i]; e.Type != "refresh-hint" || e.Detail["command"] != id || e.Detail["key"] != "ops" || e.Actor != "key ops" {
				t.Errorf("event %d = %s %v by %q, want refresh-hint of %s by key ops", i, e.Type, e.Detail, e.Actor, id)
			}
		}
		msgs, _ := r.st.Pending(0, 100000)
		for _, m := range msgs {
			if strings.Contains(m.Topic, "/cmd/") {
				t.Errorf("a hint got a result on %s, want none", m.Topic)
			}
		}
	})
}

// TestBadRefreshHintsChangeNothing: a hint that fails a check (bad
// signature, an action other than refresh, another prefix, a replay) is
// audited with its reason and leads to no refresh and no other effect.
func TestBadRefreshHintsChangeNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, src, priv := hintRig(t)
		_, other, _ := ed25519.GenerateKey(nil)
		forged, _ := mqtt.SignCommand(mqtt.Command{ID: "forged", Action: mqtt.ActionRefresh, Gateway: mqtt.DefaultBroadcastPrefix,
			Expires: time.Now().Add(time.Hour)}, "ops", other)
		r.d.CommandHandler()(mqtt.DefaultBroadcastPrefix+"/cmd/forged", forged)
		synctest.Wait()
		hint(t, r, priv, mqtt.Command{ID: "stop", Action: mqtt.ActionStop})
		hint(t, r, priv, mqtt.Command{ID: "site", Action: mqtt.ActionRefresh, Gateway: "fieldgate/v1/other/broadcast"})
		hint(t, r, priv, mqtt.Command{ID: "mine", Action: mqtt.ActionRefresh, Gateway: r.d.cfg.MQTT.Prefix})
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := src.refreshes.Load() - 1; n != 0 {
			t.Errorf("%d refreshes after bad hints, want none", n)
		}
		if v, err := r.st.Flag("stop"); err != nil || v != "" {
			t.Errorf("stop flag %q, %v after a broadcast stop; want none", v, err)
		}

		hint(t, r, priv, mqtt.Command{ID: "good", Action: mqtt.ActionRefresh})
		time.Sleep(time.Minute)
		hint(t, r, priv, mqtt.Command{ID: "good", Action: mqtt.ActionRefresh}) // replayed
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := src.refreshes.Load() - 1; n != 1 {
			t.Errorf("%d refreshes after a good hint and its replay, want 1", n)
		}
		want := []struct{ typ, id, reason string }{
			{"refresh-hint-rejected", "forged", "bad-signature"},
			{"refresh-hint-rejected", "stop", "broadcast-action"},
			{"refresh-hint-rejected", "site", "wrong-gateway"},
			{"refresh-hint-rejected", "mine", "wrong-gateway"},
			{"refresh-hint", "good", ""},
			{"refresh-hint-rejected", "good", "replayed"},
		}
		evs := hintEvents(t, r)
		if len(evs) != len(want) {
			t.Fatalf("hint events %+v, want %d", evs, len(want))
		}
		for i, w := range want {
			e := evs[i]
			reason, _ := e.Detail["reason"].(string)
			if e.Type != w.typ || e.Detail["command"] != w.id || !strings.HasPrefix(reason, w.reason) {
				t.Errorf("event %d = %s %v, want %s of %s with reason %s", i, e.Type, e.Detail, w.typ, w.id, w.reason)
			}
		}
	})
}
