// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon"
	"github.com/fieldgate/fieldgate/daemon/advisory"
	"github.com/fieldgate/fieldgate/daemon/config"
	"github.com/fieldgate/fieldgate/daemon/control"
	"github.com/fieldgate/fieldgate/daemon/mqtt"
	"github.com/fieldgate/fieldgate/daemon/store"
	"github.com/fieldgate/fieldgate/devices"
	"github.com/fieldgate/fieldgate/devices/devicetest"
)

// triageDaemon runs a daemon with one device and its control socket in
// dir; stop ends it and closes its store.
func triageDaemon(t *testing.T, dir string) (sock string, stop func()) {
	t.Helper()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		Gateway: config.Gateway{ID: "gw", Site: "s", StateDir: dir, RefreshInterval: time.Hour, InventoryInterval: time.Hour, MaxParallel: 1},
		MQTT:    config.MQTT{Prefix: "fieldgate/v1/s/gw"},
		Windows: []config.Window{{Name: "daily", Start: "0 0 * * *", Duration: 24 * time.Hour, TimeZone: "UTC"}},
		Groups:  []config.Group{{Name: "line-1", Window: "daily", Approval: "local", ApprovalTTL: time.Hour}},
		Devices: []config.Device{{ID: "plc-1", Group: "line-1", Protocol: "fake", HardwareID: "hw1", Address: "x", Segment: "bus-1"}},
	}
	d, err := daemon.New(daemon.Deps{Config: cfg, Store: st, Devices: map[string]devices.Device{"plc-1": devicetest.New("hw1", "1.0.0")},
		Version: "test", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	sock = filepath.Join(dir, "fg.sock")
	srv := &control.Server{Path: sock, Reader: d, Commander: d, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); srv.Run(ctx) }()
	return sock, func() { cancel(); wg.Wait(); st.Close() }
}

// TestTriageLocal records, lists and removes verdicts with fieldgatectl
// through a real control socket; the verdicts survive a restart of the
// daemon, and every change is audited with the local user.
func TestTriageLocal(t *testing.T) {
	dir := t.TempDir()
	sock, stop := triageDaemon(t, dir)
	ctl := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(context.Background(), append([]string{"--socket", sock, "--utc"}, args...), &out, &errOut)
		return out.String(), err
	}
	until := time.Now().UTC().AddDate(1, 0, 0).Format(time.DateOnly)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"triage", "plc-1", "ICSA-24-011-01", "--cve", "CVE-2024-0001", "--not-affected", "component_not_present", "--note", "no web server fitted"},
			"recorded not affected (component_not_present) on ICSA-24-011-01 CVE-2024-0001 for plc-1"},
		{[]string{"triage", "plc-1", "ICSA-24-011-01", "--accept-risk-until", until},
			"recorded risk accepted until " + until + " on ICSA-24-011-01 (every CVE) for plc-1"},
		{[]string{"triage", "plc-1", "SSA-123456", "--mitigated-by", "cell firewall FW-3"},
			"recorded mitigated by cell firewall FW-3 on SSA-123456 (every CVE) for plc-1"},
	} {
		if out, err := ctl(tt.args...); err != nil || !strings.Contains(out, tt.want) {
			t.Errorf("fieldgatectl %v = %q, %v; want %q", tt.args, out, err, tt.want)
		}
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"triage", "plc-1", "A"}, "exactly one of"},
		{[]string{"triage", "plc-1", "A", "--not-affected", "component_not_present", "--mitigated-by", "x"}, "exactly one of"},
		{[]string{"triage", "plc-1", "A", "--not-affected", "maybe"}, "--not-affected \"maybe\": want one of component_not_present"},
		{[]string{"triage", "plc-1", "A", "--accept-risk-until", "2020-01-01"}, "passed"},
		{[]string{"triage", "plc-9", "A", "--mitigated-by", "x"}, "no such device"},
		{[]string{"triage", "--remove", "plc-1", "ICSA-24-011-01", "--cve", "CVE-2024-9999"}, "no verdict on CVE-2024-9999"},
		{[]string{"triage", "--remove", "plc-1", "A", "--note", "x"}, "--remove takes"},
	} {
		if out, err := ctl(tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("fieldgatectl %v = %q, %v; want an error about %q", tt.args, out, err, tt.want)
		}
	}
	if out, err := ctl("triage", "--remove", "plc-1", "SSA-123456"); err != nil || !strings.Contains(out, "removed the verdict on SSA-123456 (every CVE) for plc-1") {
		t.Errorf("triage --remove = %q, %v", out, err)
	}
	stop()

	sock, stop = triageDaemon(t, dir)
	defer stop()
	out, err := ctl("triage", "--list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "DEVICE") ||
		!strings.Contains(lines[1], "(all)") || !strings.Contains(lines[1], "risk accepted until "+until) ||
		!strings.Contains(lines[2], "CVE-2024-0001") || !strings.Contains(lines[2], "no web server fitted") {
		t.Errorf("triage --list after restart =\n%s\nwant the two verdicts left", out)
	}
	out, err = ctl("triage", "--list", "--json")
	var vs []advisory.Verdict
	if err != nil || json.Unmarshal([]byte(out), &vs) != nil || len(vs) != 2 {
		t.Fatalf("triage --list --json = %q, %v", out, err)
	}
	actor := "console uid="
	if u, err := user.Current(); err == nil {
		actor += u.Uid
	}
	if !strings.HasPrefix(vs[0].Actor, actor) || vs[0].At.IsZero() {
		t.Errorf("verdict by %q at %v, want the local user (%s…) and a time", vs[0].Actor, vs[0].At, actor)
	}
	var audit bytes.Buffer
	if err := run(context.Background(), []string{"--socket", sock, "audit", "export"}, &audit, io.Discard); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, l := range strings.Split(strings.TrimSpace(audit.String()), "\n") {
		var e store.Event
		if json.Unmarshal([]byte(l), &e) == nil && strings.HasPrefix(e.Type, "triage-") {
			if !strings.HasPrefix(e.Actor, actor) {
				t.Errorf("audit %s by %q, want the local user", e.Type, e.Actor)
			}
			types = append(types, e.Type)
		}
	}
	if got := strings.Join(types, " "); got != "triage-recorded triage-recorded triage-recorded triage-removed" {
		t.Errorf("audited triage events = %s, want three recorded and one removed", got)
	}
}

// TestRemoteTriageSigns sends `fieldgatectl remote triage` to a gateway
// through a broker; the gateway receives exactly the verdict, signed.
func TestRemoteTriageSigns(t *testing.T) {
	b, err := mqtt.StartBroker("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	keyFile := filepath.Join(t.TempDir(), "ops.key")
	var pubOut bytes.Buffer
	if err := run(context.Background(), []string{"remote", "keygen", "--out", keyFile}, &pubOut, io.Discard); err != nil {
		t.Fatal(err)
	}
	pub, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(pubOut.String()))
	const prefix = "fieldgate/v1/test/gw1"
	gw := startFakeGateway(t, b.URL(), prefix, map[string]ed25519.PublicKey{"ops-1": pub}, true)
	common := []string{"--broker", b.URL(), "--gateway", prefix, "--key", keyFile, "--key-id", "ops-1", "--timeout", "20s"}
	var out bytes.Buffer
	args := append([]string{"remote", "triage", "plc-1", "ICSA-24-011-01", "--cve", "CVE-2024-0001", "--mitigated-by", "port 502 closed", "--note", "FW-12"}, common...)
	if err := run(context.Background(), args, &out, io.Discard); err != nil || !strings.Contains(out.String(), "triage succeeded") {
		t.Fatalf("fieldgatectl remote triage = %v\n%s", err, out.String())
	}
	cmds := gw.commands()
	if len(cmds) != 1 {
		t.Fatalf("gateway got %d commands, want 1", len(cmds))
	}
	got := cmds[0]
	got.ID, got.Expires = "", time.Time{}
	want := mqtt.Command{Action: mqtt.ActionTriage, Gateway: prefix, Key: "ops-1", Device: "plc-1", Advisory: "ICSA-24-011-01",
		CVE: "CVE-2024-0001", Verdict: "mitigated", Control: "port 502 closed", Note: "FW-12"}
	if gb, wb := mustJSON(got), mustJSON(want); gb != wb {
		t.Errorf("gateway received %s, want %s", gb, wb)
	}
	// An invalid verdict is refused before anything is sent.
	bad := append([]string{"remote", "triage", "plc-1", "A", "--accept-risk-until", "2020-01-01"}, common...)
	if err := run(context.Background(), bad, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "passed") {
		t.Errorf("fieldgatectl remote triage (date passed) = %v, want refused", err)
	}
	if n := len(gw.commands()); n != 1 {
		t.Errorf("gateway got %d commands after an invalid one, want still 1", n)
	}
}
