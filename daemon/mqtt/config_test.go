// SPDX-License-Identifier: Apache-2.0

package mqtt

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	min, max := 500*time.Millisecond, 30*time.Second
	tests := []struct {
		n      int
		r      float64
		lo, hi time.Duration
	}{
		{0, 0, 250 * time.Millisecond, 250 * time.Millisecond},
		{0, 0.999, 250 * time.Millisecond, 500 * time.Millisecond},
		{1, 0, 500 * time.Millisecond, 500 * time.Millisecond},
		{3, 0.5, 3 * time.Second, 3 * time.Second},
		{10, 0, 15 * time.Second, 15 * time.Second},
		{1000, 0.999, 15 * time.Second, 30 * time.Second},
	}
	for _, tt := range tests {
		if got := backoff(min, max, tt.n, tt.r); got < tt.lo || got > tt.hi {
			t.Errorf("backoff(%v, %v, %d, %v) = %v, want in [%v, %v]", min, max, tt.n, tt.r, got, tt.lo, tt.hi)
		}
	}
}

func TestTopics(t *testing.T) {
	c := Config{Prefix: "fieldgate/v1/site1/gw1"}
	tests := []struct{ got, want string }{
		{c.StatusTopic(), "fieldgate/v1/site1/gw1/status"},
		{c.DeviceTopic("plc1"), "fieldgate/v1/site1/gw1/devices/plc1"},
		{c.JobTopic("j1"), "fieldgate/v1/site1/gw1/jobs/j1"},
		{c.EventsTopic(), "fieldgate/v1/site1/gw1/events"},
		{c.CommandTopic("c1"), "fieldgate/v1/site1/gw1/cmd/c1"},
		{c.ResultTopic("c1"), "fieldgate/v1/site1/gw1/cmd/c1/result"},
		{c.CommandFilter(), "fieldgate/v1/site1/gw1/cmd/+"},
		{c.Topic(), "fieldgate/v1/site1/gw1"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("topic = %q, want %q", tt.got, tt.want)
		}
	}
	for topic, want := range map[string]string{
		"fieldgate/v1/site1/gw1/cmd/c1":        "c1",
		"fieldgate/v1/site1/gw1/cmd/c1/result": "",
		"fieldgate/v1/site1/gw1/cmd/":          "",
		"fieldgate/v1/site1/gw2/cmd/c1":        "",
	} {
		if got, ok := c.CommandID(topic); got != want || ok != (want != "") {
			t.Errorf("CommandID(%q) = %q, %v, want %q", topic, got, ok, want)
		}
	}
	if f := c.BroadcastFilter(); f != "" {
		t.Errorf("BroadcastFilter() without a broadcast prefix = %q, want none", f)
	}
	c.Broadcast = "fieldgate/v1/site1/broadcast"
	if f := c.BroadcastFilter(); f != "fieldgate/v1/site1/broadcast/cmd/+" {
		t.Errorf("BroadcastFilter() = %q, want fieldgate/v1/site1/broadcast/cmd/+", f)
	}
	for topic, want := range map[string]string{
		"fieldgate/v1/site1/broadcast/cmd/h1":        "h1",
		"fieldgate/v1/site1/broadcast/cmd/h1/result": "",
		"fieldgate/v1/site1/gw1/cmd/h1":              "",
		"fieldgate/v1/broadcast/cmd/h1":              "",
	} {
		if got, ok := c.BroadcastID(topic); got != want || ok != (want != "") {
			t.Errorf("BroadcastID(%q) = %q, %v, want %q", topic, got, ok, want)
		}
	}
}

func TestValidate(t *testing.T) {
	good := Config{Broker: "ssl://broker.example:8883", ClientID: "gw1", Prefix: "fieldgate/v1/s/gw1"}
	tests := []struct {
		name string
		edit func(*Config)
		want string // substring of the error; "" = valid
	}{
		{"good", func(*Config) {}, ""},
		{"embedded", func(c *Config) { c.Broker = "" }, ""},
		{"scheme", func(c *Config) { c.Broker = "http://x" }, "scheme"},
		{"no host", func(c *Config) { c.Broker = "tcp://:1883" }, "no host"},
		{"no client id", func(c *Config) { c.ClientID = "" }, "client id"},
		{"wildcard prefix", func(c *Config) { c.Prefix = "a/+/b" }, "wildcard"},
		{"slash prefix", func(c *Config) { c.Prefix = "/a" }, "empty level"},
		{"cert without key", func(c *Config) { c.CertFile = "c.pem" }, "together"},
		{"password only", func(c *Config) { c.Password = "x" }, "without username"},
		{"broadcast", func(c *Config) { c.Broadcast = DefaultBroadcastPrefix }, ""},
		{"site broadcast", func(c *Config) { c.Broadcast = "fieldgate/v1/s/broadcast" }, ""},
		{"wildcard broadcast", func(c *Config) { c.Broadcast = "fieldgate/#" }, "wildcard"},
		{"broadcast is the prefix", func(c *Config) { c.Broadcast = c.Prefix }, "overlaps"},
		{"broadcast over the prefix", func(c *Config) { c.Broadcast, c.Prefix = "a/b", "a/b/cmd/gw" }, "overlaps"},
	}
	for _, tt := range tests {
		c := good
		tt.edit(&c)
		err := c.Validate()
		if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("Validate(%s) = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestConfigLogRedactsPassword(t *testing.T) {
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "config", Config{Username: "gw", Password: "hunter2"})
	if strings.Contains(buf.String(), "hunter2") || !strings.Contains(buf.String(), "REDACTED") {
		t.Errorf("logged config = %q, want the password redacted", buf.String())
	}
}
