// SPDX-License-Identifier: Apache-2.0

package mqtt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/mqtt"
	"github.com/fieldgate/fieldgate/daemon/mqtt/mqtttest"
)

// patience bounds every wait for something to arrive over the network. It
// is a failure deadline, not a timing assertion.
const patience = 30 * time.Second

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("FIELDGATE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startBroker(t testing.TB) *mqtt.Broker {
	t.Helper()
	b, err := mqtt.StartBroker("127.0.0.1:0", testLogger(t))
	if err != nil {
		t.Fatalf("StartBroker: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// received is one message seen by a collector.
type received struct {
	Topic    string
	Payload  string
	Retained bool
}

// collector records what a subscriber sees and lets a test wait for a condition.
type collector struct {
	mu     sync.Mutex
	msgs   []received
	notify chan struct{}
}

func newCollector() *collector { return &collector{notify: make(chan struct{})} }

func (c *collector) add(topic string, payload []byte, retained bool) {
	c.mu.Lock()
	c.msgs = append(c.msgs, received{topic, string(payload), retained})
	close(c.notify)
	c.notify = make(chan struct{})
	c.mu.Unlock()
}

func (c *collector) snapshot() ([]received, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]received(nil), c.msgs...), c.notify
}

// waitFor waits until cond holds for the messages seen so far.
func (c *collector) waitFor(t testing.TB, what string, cond func([]received) bool) []received {
	t.Helper()
	deadline := time.NewTimer(patience)
	defer deadline.Stop()
	for {
		msgs, notify := c.snapshot()
		if cond(msgs) {
			return msgs
		}
		select {
		case <-notify:
		case <-deadline.C:
			t.Fatalf("gave up waiting for %s; saw %d messages, last: %v", what, len(msgs), tail(msgs, 3))
		}
	}
}

func tail(m []received, n int) []received {
	if len(m) > n {
		return m[len(m)-n:]
	}
	return m
}

// watch subscribes a collector to filter on broker until the test ends.
func watch(t testing.TB, cfg mqtt.Config, filter string) *collector {
	t.Helper()
	c := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	subscribed := make(chan struct{})
	var once sync.Once
	go func() {
		errc <- mqtt.WatchConfig(ctx, cfg, filter, func(topic string, payload []byte, retained bool) {
			once.Do(func() { close(subscribed) })
			c.add(topic, payload, retained)
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	// Make sure the subscription is live before the test publishes: publish a
	// probe under the filter's root until it comes back.
	probe := strings.TrimSuffix(strings.TrimSuffix(filter, "#"), "/") + "/probe"
	if strings.ContainsAny(probe, "+#") {
		t.Fatalf("watch: filter %q: only trailing # supported by the probe", filter)
	}
	for i := 0; ; i++ {
		pubCfg := cfg
		pubCfg.ClientID = ""
		if err := mqtt.Publish(ctx, pubCfg, mqtt.Message{Topic: probe, Payload: []byte("probe"), QoS: 1}); err != nil {
			t.Fatalf("Publish probe: %v", err)
		}
		select {
		case <-subscribed:
			return c
		case <-time.After(200 * time.Millisecond):
		}
		if i > int(patience/(200*time.Millisecond)) {
			t.Fatal("watch: subscription never became live")
		}
	}
}

type event struct {
	Seq uint64 `json:"seq"`
}

func eventPayload(seq uint64) []byte { return fmt.Appendf(nil, `{"seq":%d}`, seq) }

// seqs returns the sequence numbers of the messages on topic, in arrival order.
func seqs(msgs []received, topic string) []uint64 {
	var out []uint64
	for _, m := range msgs {
		if m.Topic != topic {
			continue
		}
		var e event
		if err := json.Unmarshal([]byte(m.Payload), &e); err == nil {
			out = append(out, e.Seq)
		}
	}
	return out
}

// distinct reports how many distinct sequence numbers got holds.
func distinct(got []uint64) int {
	seen := map[uint64]bool{}
	for _, s := range got {
		seen[s] = true
	}
	return len(seen)
}

// checkDelivery fails unless every seq in want appears in got and their
// first occurrences are in increasing order (duplicates are allowed: delivery
// is at least once). It returns the number of duplicates.
func checkDelivery(t testing.TB, got []uint64, want []uint64) int {
	t.Helper()
	first := map[uint64]int{}
	var order []uint64
	for _, s := range got {
		if _, ok := first[s]; !ok {
			first[s] = len(order)
			order = append(order, s)
		}
	}
	for _, w := range want {
		if _, ok := first[w]; !ok {
			t.Fatalf("seq %d never delivered (got %d distinct of %d)", w, len(order), len(want))
		}
	}
	for i := 1; i < len(order); i++ {
		if order[i] < order[i-1] {
			t.Fatalf("first delivery of seq %d after seq %d: order broken", order[i], order[i-1])
		}
	}
	return len(got) - len(order)
}

func lastStatus(msgs []received, topic string) (mqtt.StatusPayload, bool) {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Topic == topic {
			var s mqtt.StatusPayload
			if err := json.Unmarshal([]byte(msgs[i].Payload), &s); err != nil {
				return s, false
			}
			return s, true
		}
	}
	return mqtt.StatusPayload{}, false
}

// runSession runs a Session until the returned stop function is called;
// stop cancels it and fails the test if Run returns an error.
func runSession(t testing.TB, cfg mqtt.Config, out *mqtttest.Outbox, opts ...mqtt.Option) (*mqtt.Session, func()) {
	t.Helper()
	s := mqtt.NewSession(cfg, out, testLogger(t), opts...)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("Session.Run = %v, want nil", err)
			}
		})
	}
	t.Cleanup(stop)
	return s, stop
}

func waitAcked(t testing.TB, out *mqtttest.Outbox, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := out.WaitAcked(ctx, seq); err != nil {
		t.Fatal(err)
	}
}

// proxy is a TCP relay between a client and a broker that a test can cut,
// as a failing network link would.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.setDown(true)
		p.wg.Wait()
	})
	return p
}

func (p *proxy) url() string { return "tcp://" + p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, u)
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(c, u)
		go p.pipe(u, c)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// setDown cuts every relayed connection when down is true and refuses new
// ones until it is set to false again.
func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}
