// SPDX-License-Identifier: Apache-2.0

package mqtt_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/fieldgate/fieldgate/daemon/mqtt"
)

func startBrokerConfig(t testing.TB, c mqtt.BrokerConfig) *mqtt.Broker {
	t.Helper()
	b, err := c.Start(testLogger(t))
	if err != nil {
		t.Fatalf("BrokerConfig.Start: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestBrokerBeyondLoopbackNeedsAuth(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		_, err := mqtt.BrokerConfig{Listen: listen}.Start(testLogger(t))
		if err == nil || !strings.Contains(err.Error(), "beyond loopback") {
			t.Errorf("BrokerConfig{Listen: %q}.Start() = %v, want an error saying it is beyond loopback", listen, err)
		}
	}
	for _, listen := range []string{"127.0.0.1:0", "localhost:0", "[::1]:0"} {
		if !mqtt.IsLoopback(listen) {
			t.Errorf("IsLoopback(%q) = false, want true", listen)
		}
	}
	pw := writePasswords(t, "ops", "s3cret")
	b := startBrokerConfig(t, mqtt.BrokerConfig{Listen: "0.0.0.0:0", PasswordFile: pw})
	if user, _ := b.Credentials(); user == "" {
		t.Error("Credentials() with a password file = empty, want the gateway's own credential")
	}
}

func writePasswords(t testing.TB, user, pw string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "passwords")
	if err := os.WriteFile(p, []byte("# comment\n\n"+user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBrokerPasswordFile(t *testing.T) {
	b := startBrokerConfig(t, mqtt.BrokerConfig{Listen: "127.0.0.1:0", PasswordFile: writePasswords(t, "ops", "s3cret")})
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	main := "tcp://" + b.Addr()
	user, pw := b.Credentials()
	m := mqtt.Message{Topic: "t/x", Payload: []byte("x"), QoS: 1}
	for _, tc := range []struct {
		name string
		cfg  mqtt.Config
		ok   bool
	}{
		{"no credentials", mqtt.Config{Broker: main}, false},
		{"wrong password", mqtt.Config{Broker: main, Username: "ops", Password: "guess"}, false},
		{"unknown user", mqtt.Config{Broker: main, Username: "nobody", Password: "s3cret"}, false},
		{"from the file", mqtt.Config{Broker: main, Username: "ops", Password: "s3cret"}, true},
		{"own credential on the main listener", mqtt.Config{Broker: main, Username: user, Password: pw}, false},
		{"own credential on the local listener", mqtt.Config{Broker: b.URL(), Username: user, Password: pw}, true},
		{"file user on the local listener", mqtt.Config{Broker: b.URL(), Username: "ops", Password: "s3cret"}, false},
		{"no credentials on the local listener", mqtt.Config{Broker: b.URL()}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := mqtt.Publish(ctx, tc.cfg, m)
			if (err == nil) != tc.ok {
				t.Errorf("Publish(%s) = %v, want success %v", tc.name, err, tc.ok)
			}
		})
	}
}

func TestBrokerPasswordFileErrors(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"empty":      "# nobody\n",
		"no colon":   "ops\n",
		"not bcrypt": "ops:plaintext\n",
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		os.WriteFile(p, []byte(body), 0o600)
		if _, err := (mqtt.BrokerConfig{Listen: "127.0.0.1:0", PasswordFile: p}).Start(testLogger(t)); err == nil {
			t.Errorf("Start with a password file that is %s = nil error, want one", name)
		}
	}
}

// rawPublish connects with a raw MQTT 3.1.1 CONNECT and starts a PUBLISH
// whose remaining length announces size bytes, then streams zeros. It
// returns nil if the broker closed the connection before size bytes were
// sent, or an error saying how far it got.
func rawPublish(t *testing.T, addr string, size int, retain bool) error {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(patience))
	id := "raw"
	connect := []byte{0x10, byte(10 + 2 + len(id)), 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, byte(len(id))}
	connect = append(connect, id...)
	if _, err := c.Write(connect); err != nil {
		return err
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		return errors.New("no CONNACK accepting the client")
	}
	topic := "big/x"
	hdr := []byte{0x30}
	if retain {
		hdr[0] |= 0x01
	}
	rem := 2 + len(topic) + size
	for {
		b := byte(rem % 128)
		rem /= 128
		if rem > 0 {
			b |= 0x80
		}
		hdr = append(hdr, b)
		if rem == 0 {
			break
		}
	}
	hdr = append(hdr, 0, byte(len(topic)))
	hdr = append(hdr, topic...)
	if _, err := c.Write(hdr); err != nil {
		return nil
	}
	chunk := make([]byte, 64<<10)
	for sent := 0; sent < size; sent += len(chunk) {
		if _, err := c.Write(chunk[:min(len(chunk), size-sent)]); err != nil {
			return nil // closed by the broker
		}
	}
	// Everything was written (it fits the socket buffers); the broker must
	// still have closed the connection rather than accept the packet.
	c.SetReadDeadline(time.Now().Add(patience))
	if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	return errors.New("broker kept the connection open after an oversized PUBLISH")
}

func TestBrokerRefusesOversizedPacket(t *testing.T) {
	b := startBrokerConfig(t, mqtt.BrokerConfig{Listen: "127.0.0.1:0", MaxPacketSize: 4 << 10})
	if err := rawPublish(t, b.Addr(), 8<<20, true); err != nil {
		t.Errorf("PUBLISH of 8 MiB to a broker with a 4 KiB limit: %v", err)
	}
	// A packet within the limit still goes through.
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := mqtt.Publish(ctx, mqtt.Config{Broker: b.URL()}, mqtt.Message{Topic: "t/x", Payload: make([]byte, 3<<10), QoS: 1}); err != nil {
		t.Errorf("Publish of 3 KiB: %v", err)
	}
}

func TestBrokerRetainedLimits(t *testing.T) {
	b := startBrokerConfig(t, mqtt.BrokerConfig{Listen: "127.0.0.1:0", MaxRetained: 2, MaxRetainedBytes: 1000})
	cfg := mqtt.Config{Broker: b.URL()}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	live := watch(t, cfg, "t/#")
	for _, m := range []mqtt.Message{
		{Topic: "t/a", Payload: []byte("a1")},
		{Topic: "t/big", Payload: bytes.Repeat([]byte("b"), 1200)}, // over the bytes
		{Topic: "t/b", Payload: []byte("b1")},
		{Topic: "t/c", Payload: []byte("c1")},                   // over the count
		{Topic: "t/a", Payload: []byte("a2")},                   // replaces: kept
		{Topic: "t/b", Payload: bytes.Repeat([]byte("b"), 999)}, // replaces, but over the bytes
	} {
		m.Retained, m.QoS = true, 1
		if err := mqtt.Publish(ctx, cfg, m); err != nil {
			t.Fatalf("Publish(%s): %v", m.Topic, err)
		}
	}
	// Not kept, but delivered to the subscribers of the moment.
	live.waitFor(t, "the live copy of the refused retained message", func(ms []received) bool {
		for _, m := range ms {
			if m.Topic == "t/c" {
				return true
			}
		}
		return false
	})

	// A new subscriber gets the retained messages as it subscribes, before
	// a marker published once it is live.
	later := watch(t, cfg, "t/#")
	if err := mqtt.Publish(ctx, cfg, mqtt.Message{Topic: "t/marker", Payload: []byte("m"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	msgs := later.waitFor(t, "the marker", func(ms []received) bool {
		for _, m := range ms {
			if m.Topic == "t/marker" {
				return true
			}
		}
		return false
	})
	got := map[string]string{}
	for _, m := range msgs {
		if m.Retained {
			got[m.Topic] = m.Payload
		}
	}
	want := map[string]string{"t/a": "a2", "t/b": "b1"}
	if len(got) != len(want) || got["t/a"] != want["t/a"] || got["t/b"] != want["t/b"] {
		t.Errorf("retained messages = %v, want %v (saw %v)", got, want, msgs)
	}
}

// recordHandler sends every record to a channel.
type recordHandler struct{ c chan slog.Record }

func (recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.c <- r
	return nil
}
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordHandler) WithGroup(string) slog.Handler      { return h }

func TestBrokerNoEmptyLogMessages(t *testing.T) {
	h := recordHandler{make(chan slog.Record, 1000)}
	b, err := mqtt.BrokerConfig{Listen: "127.0.0.1:0"}.Start(slog.New(h))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// A connection that does not start with CONNECT ends with an error,
	// which mochi logs as a WARN with an empty message.
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{0x30, 0x00})
	deadline := time.After(patience)
	for {
		select {
		case r := <-h.c:
			if r.Message == "" {
				t.Fatalf("broker logged a %s record with an empty message", r.Level)
			}
			if r.Message == "mqtt client connection ended" {
				if r.Level != slog.LevelDebug {
					t.Errorf("%q logged at %s, want DEBUG", r.Message, r.Level)
				}
				return
			}
		case <-deadline:
			t.Fatal("gave up waiting for the broker to log the ended connection")
		}
	}
}
