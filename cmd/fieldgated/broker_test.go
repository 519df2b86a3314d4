// SPDX-License-Identifier: Apache-2.0

package main

// These tests run the real fieldgated binary with its embedded broker and
// attack the broker over TCP the way an outside tester did: one huge
// PUBLISH must not raise the daemon's memory, and a retained message over
// the limits must not be kept.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/mqtt"
	"github.com/fieldgate/fieldgate/tuf/tuftest"
)

// patience bounds every wait for the daemon; it is a failure deadline, not
// a timing assertion.
const patience = 30 * time.Second

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// fieldgated builds this package's binary once per test run.
func fieldgated(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fieldgated-test-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "fieldgated")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// freeAddr returns a loopback TCP address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// daemonProc is a running fieldgated.
type daemonProc struct {
	cmd    *exec.Cmd
	broker string // host:port of the embedded broker
	log    *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDaemon writes a minimal configuration (a signed but empty
// repository, one device that is not there) with mqttExtra added to the
// mqtt section, starts fieldgated, and waits until it has connected to
// its own embedded broker. The daemon is stopped with SIGTERM when the
// test ends.
func startDaemon(t *testing.T, mqttExtra string) *daemonProc {
	t.Helper()
	bin := fieldgated(t)
	repo := tuftest.New(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := fmt.Sprintf(`gateway:
  id: gw1
  site: test
  state_dir: %s
  socket: %s
  refresh_interval: 1h
  inventory_interval: 1h
tuf:
  metadata_url: %s
  targets_url: %s
  trusted_root: %s
mqtt:
  listen: %s
%swindows:
  - {name: nightly, start: "0 2 * * *", duration: 1h}
groups:
  - {name: g, window: nightly}
devices:
  - {id: d1, group: g, protocol: xmodem, hardware_id: hw, address: %s}
`, filepath.Join(dir, "state"), filepath.Join(dir, "fieldgated.sock"), repo.MetadataURL, repo.TargetsURL,
		repo.RootPath, addr, mqttExtra, filepath.Join(dir, "no-such-port"))
	path := filepath.Join(dir, "fieldgated.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &daemonProc{broker: addr, log: new(syncBuffer)}
	d.cmd = exec.Command(bin, "--config", path)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed when the process has exited, waitErr set
	var waitErr error
	go func() { waitErr = d.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		d.cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(patience):
			d.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("fieldgated log:\n%s", d.log.String())
		}
	})
	deadline := time.Now().Add(patience)
	for !strings.Contains(d.log.String(), "mqtt connected") {
		select {
		case <-exited:
			t.Fatalf("fieldgated exited before connecting to its broker: %v\n%s", waitErr, d.log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("fieldgated did not connect to its broker:\n%s", d.log.String())
		}
	}
	return d
}

// rss returns the daemon's resident set size in bytes, from /proc.
func (d *daemonProc) rss(t *testing.T) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

// peakRSS samples the RSS n times, interval apart, and returns the largest.
func (d *daemonProc) peakRSS(t *testing.T, n int, interval time.Duration) int {
	peak := 0
	for i := range n {
		if i > 0 {
			time.Sleep(interval)
		}
		peak = max(peak, d.rss(t))
	}
	return peak
}

// hugePublish connects with a raw MQTT 3.1.1 CONNECT, then sends a PUBLISH
// whose remaining length announces size bytes and streams the payload. It
// returns nil if the broker refused the packet, that is closed the
// connection before the payload was through or right after it, and an
// error if the broker took it.
func hugePublish(addr, topic string, size int, retain bool) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(patience))
	id := "attacker"
	connect := []byte{0x10, byte(10 + 2 + len(id)), 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, byte(len(id))}
	if _, err := c.Write(append(connect, id...)); err != nil {
		return err
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		return fmt.Errorf("no CONNACK accepting the client: % x, %v", ack, err)
	}
	hdr := []byte{0x30}
	if retain {
		hdr[0] |= 0x01
	}
	for rem := 2 + len(topic) + size; ; {
		b := byte(rem % 128)
		if rem /= 128; rem > 0 {
			b |= 0x80
		}
		hdr = append(hdr, b)
		if rem == 0 {
			break
		}
	}
	hdr = append(hdr, 0, byte(len(topic)))
	if _, err := c.Write(append(hdr, topic...)); err != nil {
		return nil
	}
	chunk := bytes.Repeat([]byte{'x'}, 1<<20)
	for sent := 0; sent < size; sent += len(chunk) {
		if _, err := c.Write(chunk[:min(len(chunk), size-sent)]); err != nil {
			return nil // the broker closed the connection
		}
	}
	// The whole payload went through. A broker that refuses it closes the
	// connection now; one that took it keeps the connection open (a QoS 0
	// publish gets no answer).
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	return fmt.Errorf("the broker took a PUBLISH of %d bytes on %s", size, topic)
}

func TestHugePublishKeepsMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs fieldgated")
	}
	d := startDaemon(t, "")
	// Settle: the first refresh and inventory run right after start.
	time.Sleep(2 * time.Second)
	before := d.peakRSS(t, 5, 200*time.Millisecond)

	const size = 100 << 20
	if err := hugePublish(d.broker, "plant/x", size, false); err != nil {
		t.Errorf("PUBLISH of 100 MiB: %v", err)
	}
	if err := hugePublish(d.broker, "plant/retained", size, true); err != nil {
		t.Errorf("retained PUBLISH of 100 MiB: %v", err)
	}
	time.Sleep(time.Second)
	after := d.peakRSS(t, 10, 200*time.Millisecond)
	t.Logf("fieldgated VmRSS before %.1f MiB, after two 100 MiB publishes %.1f MiB", float64(before)/(1<<20), float64(after)/(1<<20))
	if after-before > 2<<20 {
		t.Errorf("fieldgated VmRSS grew from %.1f MiB to %.1f MiB after 100 MiB publishes, want at most 2 MiB more",
			float64(before)/(1<<20), float64(after)/(1<<20))
	}
	// The daemon still serves: a small retained message goes through.
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := mqtt.Publish(ctx, mqtt.Config{Broker: "tcp://" + d.broker}, mqtt.Message{Topic: "plant/small", Payload: []byte("ok"), QoS: 1}); err != nil {
		t.Errorf("small publish after the attack: %v", err)
	}
}

// retainedTopics subscribes to filter and returns the retained messages the
// broker sends at subscription, which arrive before a marker published once
// the subscription is live.
func retainedTopics(t *testing.T, broker, filter, marker string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	var mu sync.Mutex
	got := map[string]int{}
	live, done := make(chan struct{}), make(chan struct{})
	var liveOnce, doneOnce sync.Once
	errc := make(chan error, 1)
	go func() {
		errc <- mqtt.Watch(ctx, broker, filter, func(topic string, payload []byte, retained bool) {
			liveOnce.Do(func() { close(live) })
			if topic == marker {
				doneOnce.Do(func() { close(done) })
				return
			}
			if retained {
				mu.Lock()
				got[topic] = len(payload)
				mu.Unlock()
			}
		})
	}()
	// Publish the marker until the subscription sees it: the retained
	// messages came first.
	for {
		if err := mqtt.Publish(ctx, mqtt.Config{Broker: broker}, mqtt.Message{Topic: marker, Payload: []byte("m"), QoS: 1}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
			cancel()
			<-errc
			mu.Lock()
			defer mu.Unlock()
			return got
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("gave up waiting for the marker")
		}
	}
}

func TestRetainedOverLimitNotKept(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs fieldgated")
	}
	d := startDaemon(t, "  embedded: {max_retained_bytes: 100000, max_retained: 100}\n")
	broker := "tcp://" + d.broker
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	for _, m := range []struct {
		topic string
		size  int
	}{{"plant/a", 60000}, {"plant/b", 60000}, {"plant/c", 100}} {
		msg := mqtt.Message{Topic: m.topic, Payload: bytes.Repeat([]byte{'r'}, m.size), QoS: 1, Retained: true}
		if err := mqtt.Publish(ctx, mqtt.Config{Broker: broker}, msg); err != nil {
			t.Fatalf("Publish(%s): %v", m.topic, err)
		}
	}
	got := retainedTopics(t, broker, "plant/#", "plant/marker")
	want := map[string]int{"plant/a": 60000, "plant/c": 100}
	if len(got) != len(want) || got["plant/a"] != want["plant/a"] || got["plant/c"] != want["plant/c"] {
		t.Errorf("retained under plant/ = %v, want %v (plant/b would take the retained bytes over 100000)", got, want)
	}
}
