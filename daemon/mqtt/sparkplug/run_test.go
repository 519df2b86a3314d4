// SPDX-License-Identifier: Apache-2.0

package sparkplug

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/mqtt"
)

// patience bounds every wait for a message over the network; it is a
// failure deadline, not a timing assertion.
const patience = 30 * time.Second

type watcher struct {
	mu     sync.Mutex
	msgs   []sent
	notify chan struct{}
}

// watch subscribes to spBv1.0/# on broker and decodes what arrives.
func watch(t *testing.T, ctx context.Context, broker string) *watcher {
	w := &watcher{notify: make(chan struct{}, 1)}
	ready := make(chan struct{})
	go mqtt.Watch(ctx, broker, "spBv1.0/#", func(topic string, payload []byte, _ bool) {
		if topic == "spBv1.0/ready" {
			select {
			case <-ready:
			default:
				close(ready)
			}
			return
		}
		p, err := Unmarshal(payload)
		if err != nil {
			t.Errorf("%s: %v", topic, err)
			return
		}
		w.mu.Lock()
		w.msgs = append(w.msgs, sent{topic: topic, p: p})
		w.mu.Unlock()
		select {
		case w.notify <- struct{}{}:
		default:
		}
	})
	for { // until the watcher is subscribed
		mqtt.Publish(ctx, mqtt.Config{Broker: broker}, mqtt.Message{Topic: "spBv1.0/ready", QoS: 1})
		select {
		case <-ready:
			return w
		case <-ctx.Done():
			t.Fatal("watcher never subscribed")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (w *watcher) waitFor(t *testing.T, ctx context.Context, topic string, from int) (int, sent) {
	t.Helper()
	for {
		w.mu.Lock()
		for i := from; i < len(w.msgs); i++ {
			if w.msgs[i].topic == topic {
				m := w.msgs[i]
				w.mu.Unlock()
				return i, m
			}
		}
		w.mu.Unlock()
		select {
		case <-w.notify:
		case <-ctx.Done():
			t.Fatalf("no %s: %v", topic, ctx.Err())
		}
	}
}

func bdSeqOf(t *testing.T, m sent) int64 {
	t.Helper()
	for _, mt := range m.p.Metrics {
		if mt.Name == MetricBdSeq {
			return mt.Int
		}
	}
	t.Fatalf("%s has no bdSeq", m.topic)
	return -1
}

// TestRunBirthDeathBdSeq runs the node against the embedded broker: NBIRTH
// and DBIRTH after connect; on cancel the node publishes NDEATH with the
// NBIRTH's bdSeq itself (its clean DISCONNECT suppresses the will); a new
// Node on the same state directory births with bdSeq + 1.
func TestRunBirthDeathBdSeq(t *testing.T) {
	b, err := mqtt.StartBroker("127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	w := watch(t, ctx, b.URL())
	dir := t.TempDir()
	cfg := testConfig()
	cfg.MQTT.Broker, cfg.StateDir = b.URL(), dir
	cfg.Now = time.Now

	from := 0
	for run, want := range []int64{0, 1} {
		n := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), func(string, []byte) {})
		n.Update(testView())
		rctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- n.Run(rctx) }()
		i, birth := w.waitFor(t, ctx, "spBv1.0/site1/NBIRTH/gw1", from)
		if got := bdSeqOf(t, birth); got != want {
			t.Errorf("run %d: NBIRTH bdSeq = %d, want %d", run, got, want)
		}
		w.waitFor(t, ctx, "spBv1.0/site1/DBIRTH/gw1/io1", i)
		stop()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v, want nil on cancel", err)
		}
		var death sent
		from, death = w.waitFor(t, ctx, "spBv1.0/site1/NDEATH/gw1", i)
		if got := bdSeqOf(t, death); got != want || death.p.HasSeq {
			t.Errorf("run %d: NDEATH bdSeq = %d (seq present %v), want %d and no seq", run, got, death.p.HasSeq, want)
		}
	}
}
