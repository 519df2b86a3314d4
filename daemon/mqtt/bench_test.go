// SPDX-License-Identifier: Apache-2.0

package mqtt_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/mqtt"
	"github.com/fieldgate/fieldgate/daemon/mqtt/mqtttest"
)

// benchLatency measures state change → subscriber latency: the time from
// adding a report to the Outbox until an independent subscriber (a second
// MQTT client on the same broker) receives it. It reports p50 and p99.
func benchLatency(b *testing.B, url string) {
	cfg := testConfig(url, "bench-latency")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan uint64, 1024)
	probe := make(chan struct{}, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- mqtt.Watch(ctx, url, cfg.EventsTopic(), func(_ string, payload []byte, _ bool) {
			var e event
			if json.Unmarshal(payload, &e) != nil || e.Seq == 0 {
				select {
				case probe <- struct{}{}:
				default:
				}
				return
			}
			got <- e.Seq
		})
	}()
	defer func() { cancel(); <-errc }()
	for live := false; !live; {
		if err := mqtt.Publish(ctx, mqtt.Config{Broker: url}, mqtt.Message{Topic: cfg.EventsTopic(), Payload: []byte("probe"), QoS: 1}); err != nil {
			b.Fatal(err)
		}
		select {
		case <-probe:
			live = true
		case <-time.After(100 * time.Millisecond):
		}
	}

	out := mqtttest.NewOutbox()
	warm := out.AddFunc(cfg.EventsTopic(), false, eventPayload)
	_, stop := runSession(b, cfg, out)
	defer stop()
	for s := range got {
		if s == warm.Seq {
			break
		}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		m := out.AddFunc(cfg.EventsTopic(), false, eventPayload)
		for s := range got {
			if s == m.Seq {
				break
			}
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// benchDrain measures the drain rate after an outage: 10 000 events queued
// while disconnected, then a Session connects and drains them until every
// one is acknowledged (PUBACK) to the Outbox.
func benchDrain(b *testing.B, url string) {
	const n = 10000
	cfg := testConfig(url, "bench-drain")
	var total time.Duration
	for range b.N {
		out := mqtttest.NewOutbox()
		for range n {
			out.AddFunc(cfg.EventsTopic(), false, eventPayload)
		}
		t0 := time.Now()
		_, stop := runSession(b, cfg, out)
		waitAcked(b, out, n)
		total += time.Since(t0)
		stop()
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "events/s")
}

func BenchmarkInteropLatencyMosquitto(b *testing.B) { benchLatency(b, startMosquitto(b, nil).URL()) }
func BenchmarkLatencyEmbedded(b *testing.B)         { benchLatency(b, startBroker(b).URL()) }
func BenchmarkInteropDrain10kMosquitto(b *testing.B) {
	benchDrain(b, startMosquitto(b, nil).URL())
}
func BenchmarkDrain10kEmbedded(b *testing.B) { benchDrain(b, startBroker(b).URL()) }
