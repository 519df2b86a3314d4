// SPDX-License-Identifier: Apache-2.0

package mqtt_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fieldgate/fieldgate/daemon/mqtt"
	"github.com/google/go-cmp/cmp"
)

var (
	testNow    = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	testSeed   = [32]byte{1, 2, 3}
	testPriv   = ed25519.NewKeyFromSeed(testSeed[:])
	otherSeed  = [32]byte{9}
	otherPriv  = ed25519.NewKeyFromSeed(otherSeed[:])
	testKeys   = map[string]ed25519.PublicKey{"ops-1": testPriv.Public().(ed25519.PublicKey)}
	testSHA    = strings.Repeat("ab", 32)
	testPrefix = "fieldgate/v1/site1/gw1"
)

func approve() mqtt.Command {
	return mqtt.Command{ID: "c-1", Action: mqtt.ActionApprove, Gateway: testPrefix,
		Expires: testNow.Add(time.Hour), Job: "job-7", SHA256: testSHA, Devices: []string{"plc1", "plc2"}}
}

func triage() mqtt.Command {
	return mqtt.Command{ID: "c-8", Action: mqtt.ActionTriage, Gateway: testPrefix, Expires: testNow.Add(time.Hour),
		Device: "plc1", Advisory: "ICSA-24-011-01", CVE: "CVE-2024-0001", Verdict: "risk_accepted", Until: "2027-01-31", Note: "until the 2027 shutdown"}
}

func sign(t testing.TB, c mqtt.Command, key string, priv ed25519.PrivateKey) []byte {
	t.Helper()
	b, err := mqtt.SignCommand(c, key, priv)
	if err != nil {
		t.Fatalf("SignCommand(%+v): %v", c, err)
	}
	return b
}

// edit decodes a payload as a JSON map, lets f change it and encodes it again.
func edit(t testing.TB, payload []byte, f func(map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseCommandAcceptsSigned(t *testing.T) {
	window := mqtt.Window{Start: testNow.Add(2 * time.Hour), End: testNow.Add(4 * time.Hour)}
	for _, c := range []mqtt.Command{
		approve(),
		{ID: "c-2", Action: mqtt.ActionCancel, Gateway: testPrefix, Expires: testNow.Add(time.Minute), Job: "job-7"},
		{ID: "c-3", Action: mqtt.ActionDefer, Gateway: testPrefix, Expires: testNow.Add(time.Minute), Job: "job-7", Window: window},
		{ID: "c-3w", Action: mqtt.ActionApprove, Gateway: testPrefix, Expires: testNow.Add(time.Minute), Job: "job-7", SHA256: testSHA, Window: window},
		{ID: "c-4", Action: mqtt.ActionUpdateNow, Gateway: testPrefix, Expires: testNow.Add(time.Minute), Devices: []string{"rtu-3"}},
		{ID: "c-5", Action: mqtt.ActionRefresh, Gateway: testPrefix, Expires: testNow.Add(time.Minute)},
		{ID: "c-6", Action: mqtt.ActionRollback, Gateway: testPrefix, Expires: testNow.Add(time.Minute), Devices: []string{"plc1"}},
		{ID: "c-7", Action: mqtt.ActionStop, Gateway: testPrefix, Expires: testNow.Add(time.Minute)},
		triage(),
		{ID: "c-9", Action: mqtt.ActionTriage, Gateway: testPrefix, Expires: testNow.Add(time.Minute),
			Device: "plc1", Advisory: "ICSA-24-011-01", Verdict: "not_affected", Justification: "vulnerable_code_not_in_execute_path"},
		{ID: "c-10", Action: mqtt.ActionTriage, Gateway: testPrefix, Expires: testNow.Add(time.Minute),
			Device: "plc1", Advisory: "SSA-123456", CVE: "CVE-2024-12345", Verdict: "mitigated", Control: "cell firewall FW-3: port 102 closed = only the HMI"},
	} {
		t.Run(c.Action, func(t *testing.T) {
			got, err := mqtt.ParseCommand(sign(t, c, "ops-1", testPriv), testKeys, testNow)
			if err != nil {
				t.Fatalf("ParseCommand(signed %s) = %v, want nil", c.Action, err)
			}
			c.Key = "ops-1"
			if diff := cmp.Diff(c, got); diff != "" {
				t.Errorf("ParseCommand(signed %s) (-want +got):\n%s", c.Action, diff)
			}
			cfg := mqtt.Config{Prefix: testPrefix}
			if _, err := cfg.ParseCommand(sign(t, c, "ops-1", testPriv), testKeys, testNow); err != nil {
				t.Errorf("Config.ParseCommand(own gateway) = %v, want nil", err)
			}
		})
	}
}

func TestParseCommandRejects(t *testing.T) {
	good := sign(t, approve(), "ops-1", testPriv)
	tests := []struct {
		name    string
		payload []byte
		now     time.Time
		want    error
	}{
		{"oversized", append(good, make([]byte, mqtt.MaxCommandSize)...), testNow, mqtt.ErrCommandTooLarge},
		{"not json", []byte("approve job-7 please"), testNow, mqtt.ErrCommandMalformed},
		{"empty", nil, testNow, mqtt.ErrCommandMalformed},
		{"trailing data", append(append([]byte(nil), good...), []byte(` {}`)...), testNow, mqtt.ErrCommandMalformed},
		{"unknown field", edit(t, good, func(m map[string]any) { m["force"] = true }), testNow, mqtt.ErrCommandMalformed},
		{"unknown action", edit(t, good, func(m map[string]any) { m["action"] = "format-disk" }), testNow, mqtt.ErrCommandMalformed},
		{"missing sha256", edit(t, good, func(m map[string]any) { delete(m["args"].(map[string]any), "sha256") }), testNow, mqtt.ErrCommandMalformed},
		{"arg not for action", edit(t, good, func(m map[string]any) { m["action"] = "cancel" }), testNow, mqtt.ErrCommandMalformed},
		{"malformed window", edit(t, good, func(m map[string]any) { m["args"].(map[string]any)["window"] = "x" }), testNow, mqtt.ErrCommandMalformed},
		{"bad id", edit(t, good, func(m map[string]any) { m["id"] = "a/b" }), testNow, mqtt.ErrCommandMalformed},
		{"non-utc expiry", edit(t, good, func(m map[string]any) { m["expires"] = "2026-05-01T15:00:00+02:00" }), testNow, mqtt.ErrCommandMalformed},
		{"unsigned", edit(t, good, func(m map[string]any) { delete(m, "sig") }), testNow, mqtt.ErrCommandUnsigned},
		{"unknown key", sign(t, approve(), "ops-9", testPriv), testNow, mqtt.ErrUnknownKey},
		{"wrong key", sign(t, approve(), "ops-1", otherPriv), testNow, mqtt.ErrBadSignature},
		{"sig not base64", edit(t, good, func(m map[string]any) { m["sig"] = "!!" }), testNow, mqtt.ErrBadSignature},
		{"tampered job", edit(t, good, func(m map[string]any) { m["args"].(map[string]any)["job"] = "job-8" }), testNow, mqtt.ErrBadSignature},
		{"tampered devices", edit(t, good, func(m map[string]any) { m["args"].(map[string]any)["devices"] = []string{"plc1"} }), testNow, mqtt.ErrBadSignature},
		{"tampered gateway", edit(t, good, func(m map[string]any) { m["gateway"] = "fieldgate/v1/site1/gw2" }), testNow, mqtt.ErrBadSignature},
		{"expired", good, testNow.Add(time.Hour), mqtt.ErrCommandExpired},
		{"too far ahead", good, testNow.Add(-mqtt.MaxCommandLifetime), mqtt.ErrCommandMalformed},
	}
	goodTriage := sign(t, triage(), "ops-1", testPriv)
	triageWith := func(f func(*mqtt.Command)) mqtt.Command { c := triage(); f(&c); return c }
	// signed as it was sent, bypassing SignCommand's checks
	signRaw := func(c mqtt.Command) []byte {
		c.Key = "ops-1"
		return edit(t, goodTriage, func(m map[string]any) {
			a := m["args"].(map[string]any)
			for k, v := range map[string]string{"device": c.Device, "advisory": c.Advisory, "cve": c.CVE, "verdict": c.Verdict,
				"justification": c.Justification, "until": c.Until, "control": c.Control, "note": c.Note} {
				if v == "" {
					delete(a, k)
				} else {
					a[k] = v
				}
			}
			m["sig"] = base64.StdEncoding.EncodeToString(ed25519.Sign(testPriv, mqtt.CanonicalCommand(c)))
		})
	}
	tests = append(tests, []struct {
		name    string
		payload []byte
		now     time.Time
		want    error
	}{
		{"triage arg on approve", edit(t, good, func(m map[string]any) { m["args"].(map[string]any)["verdict"] = "mitigated" }), testNow, mqtt.ErrCommandMalformed},
		{"job on triage", edit(t, goodTriage, func(m map[string]any) { m["args"].(map[string]any)["job"] = "j" }), testNow, mqtt.ErrCommandMalformed},
		{"triage unknown verdict", signRaw(triageWith(func(c *mqtt.Command) { c.Verdict = "ignore" })), testNow, mqtt.ErrCommandMalformed},
		{"triage no device", signRaw(triageWith(func(c *mqtt.Command) { c.Device = "" })), testNow, mqtt.ErrCommandMalformed},
		{"triage bad cve", signRaw(triageWith(func(c *mqtt.Command) { c.CVE = "cve-1" })), testNow, mqtt.ErrCommandMalformed},
		{"triage until passed", signRaw(triageWith(func(c *mqtt.Command) { c.Until = "2026-04-30" })), testNow, mqtt.ErrCommandMalformed},
		{"triage until too far", signRaw(triageWith(func(c *mqtt.Command) { c.Until = "2031-05-02" })), testNow, mqtt.ErrCommandMalformed},
		{"triage until not a date", signRaw(triageWith(func(c *mqtt.Command) { c.Until = "2027-01-31T00:00:00Z" })), testNow, mqtt.ErrCommandMalformed},
		{"triage risk with control", signRaw(triageWith(func(c *mqtt.Command) { c.Control = "fw" })), testNow, mqtt.ErrCommandMalformed},
		{"triage mitigated without control", signRaw(triageWith(func(c *mqtt.Command) { c.Verdict, c.Until = "mitigated", "" })), testNow, mqtt.ErrCommandMalformed},
		{"triage bad justification", signRaw(triageWith(func(c *mqtt.Command) { c.Verdict, c.Until, c.Justification = "not_affected", "", "trust_me" })), testNow, mqtt.ErrCommandMalformed},
		{"triage note with newline", signRaw(triageWith(func(c *mqtt.Command) { c.Note = "a\nb" })), testNow, mqtt.ErrCommandMalformed},
		{"triage control too long", signRaw(triageWith(func(c *mqtt.Command) { c.Verdict, c.Until, c.Control = "mitigated", "", strings.Repeat("c", 201) })), testNow, mqtt.ErrCommandMalformed},
		{"triage tampered verdict", edit(t, goodTriage, func(m map[string]any) {
			a := m["args"].(map[string]any)
			a["verdict"], a["justification"] = "not_affected", "component_not_present"
			delete(a, "until")
		}), testNow, mqtt.ErrBadSignature},
		{"triage tampered until", edit(t, goodTriage, func(m map[string]any) { m["args"].(map[string]any)["until"] = "2031-01-31" }), testNow, mqtt.ErrBadSignature},
		{"triage tampered device", edit(t, goodTriage, func(m map[string]any) { m["args"].(map[string]any)["device"] = "plc2" }), testNow, mqtt.ErrBadSignature},
		{"triage by other key", sign(t, triage(), "ops-1", otherPriv), testNow, mqtt.ErrBadSignature},
	}...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := mqtt.ParseCommand(tt.payload, testKeys, tt.now)
			if !errors.Is(err, tt.want) {
				t.Errorf("ParseCommand(%s) = %v, want %v", tt.name, err, tt.want)
			}
			if r := mqtt.RejectReason(err); r == "invalid" {
				t.Errorf("RejectReason(%v) = %q, want a specific reason", err, r)
			}
		})
	}
}

func TestConfigParseCommandChecksGateway(t *testing.T) {
	cfg := mqtt.Config{Prefix: "fieldgate/v1/site1/gw2"}
	_, err := cfg.ParseCommand(sign(t, approve(), "ops-1", testPriv), testKeys, testNow)
	if !errors.Is(err, mqtt.ErrWrongGateway) || mqtt.RejectReason(err) != "wrong-gateway" {
		t.Errorf("Config.ParseCommand(command for gw1 on gw2) = %v, want %v", err, mqtt.ErrWrongGateway)
	}
}

func TestCanonicalCommand(t *testing.T) {
	c := approve()
	c.Key = "ops-1"
	want := "fieldgate-command-v1\nid=c-1\naction=approve\ngateway=fieldgate/v1/site1/gw1\nexpires=2026-05-01T13:00:00Z\n" +
		"job=job-7\nsha256=" + testSHA + "\ndevices=plc1,plc2\nwindow=\nkey=ops-1\n"
	if got := string(mqtt.CanonicalCommand(c)); got != want {
		t.Errorf("CanonicalCommand(approve) = %q, want %q", got, want)
	}
}

// TestCanonicalTriage: a triage command is signed in the v2 form
// (docs/mqtt.md); the v1 form of every other action is unchanged
// (TestCanonicalCommand).
func TestCanonicalTriage(t *testing.T) {
	c := triage()
	c.Key = "ops-1"
	want := "fieldgate-command-v2\nid=c-8\naction=triage\ngateway=fieldgate/v1/site1/gw1\nexpires=2026-05-01T13:00:00Z\n" +
		"device=plc1\nadvisory=ICSA-24-011-01\ncve=CVE-2024-0001\nverdict=risk_accepted\njustification=\nuntil=2027-01-31\n" +
		"control=\nnote=until the 2027 shutdown\nkey=ops-1\n"
	if got := string(mqtt.CanonicalCommand(c)); got != want {
		t.Errorf("CanonicalCommand(triage) = %q, want %q", got, want)
	}
}

func TestSignCommandValidates(t *testing.T) {
	c := approve()
	c.SHA256 = "not-hex"
	if _, err := mqtt.SignCommand(c, "ops-1", testPriv); !errors.Is(err, mqtt.ErrCommandMalformed) {
		t.Errorf("SignCommand(bad sha256) = %v, want %v", err, mqtt.ErrCommandMalformed)
	}
}

// TestParseBroadcast: on the broadcast topic only a signed refresh for the
// broadcast prefix passes; everything ParseCommand refuses stays refused.
func TestParseBroadcast(t *testing.T) {
	cfg := mqtt.Config{Prefix: testPrefix, Broadcast: mqtt.DefaultBroadcastPrefix}
	hint := mqtt.Command{ID: "h-1", Action: mqtt.ActionRefresh, Gateway: mqtt.DefaultBroadcastPrefix, Expires: testNow.Add(time.Hour)}
	c, err := cfg.ParseBroadcast(sign(t, hint, "ops-1", testPriv), testKeys, testNow)
	if err != nil || c.ID != "h-1" || c.Action != mqtt.ActionRefresh || c.Key != "ops-1" {
		t.Fatalf("ParseBroadcast(signed refresh hint) = %+v, %v; want it accepted", c, err)
	}
	if _, err := cfg.ParseCommand(sign(t, hint, "ops-1", testPriv), testKeys, testNow); mqtt.RejectReason(err) != "wrong-gateway" {
		t.Errorf("ParseCommand(hint) on the gateway's own topic = %v, want wrong-gateway", err)
	}
	stop := hint
	stop.Action = mqtt.ActionStop
	approveAll := approve()
	approveAll.Gateway = mqtt.DefaultBroadcastPrefix
	expired := hint
	expired.Expires = testNow.Add(-time.Second)
	site := hint
	site.Gateway = "fieldgate/v1/site1/broadcast"
	own := hint
	own.Gateway = testPrefix
	for _, tt := range []struct {
		name    string
		payload []byte
		cfg     mqtt.Config
		want    string
	}{
		{"stop", sign(t, stop, "ops-1", testPriv), cfg, "broadcast-action"},
		{"approve", sign(t, approveAll, "ops-1", testPriv), cfg, "broadcast-action"},
		{"bad signature", sign(t, hint, "ops-1", otherPriv), cfg, "bad-signature"},
		{"unknown key", sign(t, hint, "mallory", otherPriv), cfg, "unknown-key"},
		{"expired", sign(t, expired, "ops-1", testPriv), cfg, "expired"},
		{"another broadcast prefix", sign(t, site, "ops-1", testPriv), cfg, "wrong-gateway"},
		{"the gateway's own prefix", sign(t, own, "ops-1", testPriv), cfg, "wrong-gateway"},
		{"no broadcast configured", sign(t, hint, "ops-1", testPriv), mqtt.Config{Prefix: testPrefix}, "wrong-gateway"},
		{"tampered action", edit(t, sign(t, hint, "ops-1", testPriv), func(m map[string]any) { m["action"] = "stop" }), cfg, "bad-signature"},
	} {
		c, err := tt.cfg.ParseBroadcast(tt.payload, testKeys, testNow)
		if got := mqtt.RejectReason(err); err == nil || got != tt.want {
			t.Errorf("ParseBroadcast(%s) = %+v, %v (%s); want rejected as %s", tt.name, c, err, got, tt.want)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	good, _ := mqtt.SignCommand(approve(), "ops-1", testPriv)
	f.Add(good)
	hint, _ := mqtt.SignCommand(mqtt.Command{ID: "h", Action: mqtt.ActionRefresh, Gateway: mqtt.DefaultBroadcastPrefix, Expires: testNow.Add(time.Hour)}, "ops-1", testPriv)
	f.Add(hint)
	tri, _ := mqtt.SignCommand(triage(), "ops-1", testPriv)
	f.Add(tri)
	f.Add([]byte(`{"id":"x","action":"triage","gateway":"g","expires":"2026-05-01T12:30:00Z","args":{"device":"d","advisory":"A","verdict":"mitigated","control":"c","note":"n"},"key":"ops-1","sig":""}`))
	f.Add([]byte(`{"id":"x","action":"triage","gateway":"g","expires":"2026-05-01T12:30:00Z","args":{"device":"d","advisory":"A","cve":"CVE-2024-0001","verdict":"not_affected","justification":"component_not_present"}}`))
	f.Add([]byte(`{"id":"x","action":"approve","gateway":"g","expires":"2026-05-01T12:30:00Z","args":{"job":"j","sha256":"` + testSHA + `","until":"2027-01-01"}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"x","action":"refresh","gateway":"g","expires":"2026-05-01T12:30:00Z","args":{},"key":"ops-1","sig":""}`))
	f.Add([]byte(`{"id":"x","action":"defer","gateway":"g","expires":"2026-05-01T12:30:00Z","args":{"job":"j","window":"2026-05-01T12:30:00Z/2026-05-01T12:00:00Z"}}`))
	f.Add([]byte(`[1,2,3]`))
	f.Add([]byte("\xff\xfe"))
	broadcast := mqtt.Config{Prefix: testPrefix, Broadcast: mqtt.DefaultBroadcastPrefix}
	f.Fuzz(func(t *testing.T, payload []byte) {
		if h, err := broadcast.ParseBroadcast(payload, testKeys, testNow); err == nil &&
			(h.Action != mqtt.ActionRefresh || h.Gateway != broadcast.Broadcast || h.Key != "ops-1") {
			t.Fatalf("ParseBroadcast accepted %+v", h)
		} else if err != nil && mqtt.RejectReason(err) == "invalid" {
			t.Fatalf("ParseBroadcast error %v has no reason", err)
		}
		c, err := mqtt.ParseCommand(payload, testKeys, testNow)
		if err != nil {
			if mqtt.RejectReason(err) == "invalid" {
				t.Fatalf("ParseCommand error %v has no reason", err)
			}
			return
		}
		// Anything accepted must be signed by the known key over what was parsed,
		// and re-signing it must give a command that parses to the same thing.
		if c.Key != "ops-1" || !c.Expires.After(testNow) {
			t.Fatalf("ParseCommand accepted %+v", c)
		}
		again, err := mqtt.ParseCommand(sign(t, c, c.Key, testPriv), testKeys, testNow)
		if err != nil {
			t.Fatalf("re-signed %+v: %v", c, err)
		}
		if diff := cmp.Diff(c, again); diff != "" {
			t.Fatalf("re-signed command differs (-first +again):\n%s", diff)
		}
	})
}
