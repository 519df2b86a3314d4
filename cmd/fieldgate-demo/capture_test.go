// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"context"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/mqtt/mqtttest"
)

// captured is one message a subscriber received.
type captured struct{ topic, payload string }

// capture is a real subscriber (mosquitto_sub) that keeps every message
// it receives on its topic filters until the test ends or stop is called.
type capture struct {
	mu   sync.Mutex
	msgs []captured
	stop func() []captured
}

// all returns what was received so far.
func (c *capture) all() []captured {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// payloads returns the payloads received so far.
func (c *capture) payloads() []string {
	var out []string
	for _, m := range c.all() {
		out = append(out, m.payload)
	}
	return out
}

// subscribe starts mosquitto_sub on filters and returns once its
// subscription is in place: it publishes to a probe topic of its own
// until the probe comes back.
func subscribe(t *testing.T, ctx context.Context, m *mosquitto, filters ...string) *capture {
	t.Helper()
	bin := mqtttest.NeedPeer(t, "mosquitto_sub", "mosquitto-clients")
	pub := mqtttest.NeedPeer(t, "mosquitto_pub", "mosquitto-clients")
	probe := "fieldgate-test/probe/" + strconv.FormatInt(time.Now().UnixNano(), 36)
	args := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(m.Port()), "-q", "1", "-v", "-t", probe}
	for _, f := range filters {
		args = append(args, "-t", f)
	}
	sub := exec.Command(bin, args...)
	stdout, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	c := &capture{}
	probed := make(chan struct{})
	var once sync.Once
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			topic, payload, _ := strings.Cut(sc.Text(), " ")
			if topic == probe {
				once.Do(func() { close(probed) })
				continue
			}
			c.mu.Lock()
			c.msgs = append(c.msgs, captured{topic, payload})
			c.mu.Unlock()
		}
	}()
	var stopped sync.Once
	c.stop = func() []captured {
		stopped.Do(func() { sub.Process.Kill(); sub.Wait(); <-done })
		return c.all()
	}
	t.Cleanup(func() { c.stop() })
	for {
		exec.Command(pub, "-h", "127.0.0.1", "-p", strconv.Itoa(m.Port()), "-t", probe, "-m", "probe").Run()
		select {
		case <-probed:
			return c
		case <-ctx.Done():
			t.Fatal("mosquitto_sub never subscribed")
		case <-time.After(100 * time.Millisecond): // waiting for a peer process; not a timing assertion
		}
	}
}
