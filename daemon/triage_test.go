// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fieldgate/fieldgate/daemon/advisory"
	"github.com/fieldgate/fieldgate/daemon/mqtt"
	"github.com/fieldgate/fieldgate/daemon/store"
)

// triageEvents returns the audited triage events, as "type actor detail".
func triageEvents(t *testing.T, st *store.Store) []store.Event {
	t.Helper()
	var buf bytes.Buffer
	if err := st.ExportAudit(&buf); err != nil {
		t.Fatal(err)
	}
	var out []store.Event
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e store.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(e.Type, "triage-") {
			out = append(out, e)
		}
	}
	return out
}

// TestRemoteTriage: a signed triage command records the verdict, audited
// with the signing key and the command id; a replay, a forged signature,
// an invalid verdict and an unknown device change nothing.
func TestRemoteTriage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, priv := commandRig(t)
		now := time.Now()
		c := mqtt.Command{ID: "t1", Action: mqtt.ActionTriage, Gateway: r.d.cfg.MQTT.Prefix, Expires: now.Add(time.Hour).Truncate(time.Second),
			Device: "a", Advisory: "ICSA-24-011-01", CVE: "CVE-2024-0001", Verdict: "mitigated", Control: "port 502 closed from the IT zone", Note: "FW-12"}
		payload, err := mqtt.SignCommand(c, "ops", priv)
		if err != nil {
			t.Fatal(err)
		}
		send(r, "t1", payload)
		if got := results(t, r, "t1"); len(got) != 2 || got[1] != "succeeded:" {
			t.Fatalf("results(t1) = %v, want accepted then succeeded", got)
		}
		vs, err := r.st.Verdicts("a")
		if err != nil || len(vs) != 1 {
			t.Fatalf("Verdicts(a) = %+v, %v; want the verdict", vs, err)
		}
		if v := vs[0]; v.Kind != advisory.VerdictMitigated || v.Control != c.Control || v.Actor != "key ops" || v.Note != "FW-12" || !v.At.Equal(now.UTC()) {
			t.Errorf("stored verdict = %+v, want mitigated by %q, actor key ops, at %v", v, c.Control, now)
		}
		ev := triageEvents(t, r.st)
		if len(ev) != 1 || ev[0].Type != "triage-recorded" || ev[0].Actor != "key ops" || ev[0].Device != "a" ||
			ev[0].Detail["command"] != "t1" || ev[0].Detail["verdict"] != "mitigated" || ev[0].Detail["cve"] != "CVE-2024-0001" {
			t.Fatalf("triage audit = %+v, want one triage-recorded by key ops for command t1", ev)
		}

		send(r, "t1", payload)
		if got := results(t, r, "t1"); len(got) != 3 || !strings.HasPrefix(got[2], "rejected:replayed") {
			t.Errorf("results after replay = %v, want rejected:replayed", got)
		}
		forged := c
		forged.ID, forged.Control = "t2", "nothing"
		p2, _ := mqtt.SignCommand(forged, "ops", priv)
		var m map[string]any
		json.Unmarshal(p2, &m)
		m["args"].(map[string]any)["verdict"], m["args"].(map[string]any)["control"] = "mitigated", "trust me"
		p2, _ = json.Marshal(m)
		send(r, "t2", p2)
		if got := results(t, r, "t2"); len(got) != 1 || !strings.HasPrefix(got[0], "rejected:bad-signature") {
			t.Errorf("results(forged) = %v, want rejected:bad-signature", got)
		}
		invalid := c
		invalid.ID, invalid.Verdict, invalid.Control, invalid.Until = "t3", "risk_accepted", "", now.AddDate(-1, 0, 0).Format(time.DateOnly)
		p3, err := mqtt.SignCommand(invalid, "ops", priv) // signed: the date is only checked against a clock
		if err != nil {
			t.Fatal(err)
		}
		send(r, "t3", p3)
		if got := results(t, r, "t3"); len(got) != 1 || !strings.HasPrefix(got[0], "rejected:malformed") || !strings.Contains(got[0], "passed") {
			t.Errorf("results(risk accepted until last year) = %v, want rejected:malformed (date passed)", got)
		}
		unknown := c
		unknown.ID, unknown.Device = "t4", "nosuch"
		p4, _ := mqtt.SignCommand(unknown, "ops", priv)
		send(r, "t4", p4)
		if got := results(t, r, "t4"); len(got) != 2 || !strings.HasPrefix(got[1], "rejected:") || !strings.Contains(got[1], "no such device") {
			t.Errorf("results(unknown device) = %v, want accepted then rejected: no such device", got)
		}
		if vs, _ := r.st.Verdicts(""); len(vs) != 1 || vs[0].Control != c.Control {
			t.Errorf("verdicts after bad commands = %+v, want only the first", vs)
		}
		if ev := triageEvents(t, r.st); len(ev) != 1 {
			t.Errorf("triage audit after bad commands = %+v, want only the first", ev)
		}
		if n, err := r.st.VerifyAudit(); err != nil || n == 0 {
			t.Errorf("VerifyAudit = %d, %v", n, err)
		}
	})
}

// TestTriageReplaceAndRemove: a verdict with the same key replaces the
// one before (audited with what it replaced); removal is audited;
// removing what is not there is refused and audits nothing.
func TestTriageReplaceAndRemove(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _ := commandRig(t)
		v := advisory.Verdict{Device: "a", Advisory: "ICSA-24-011-01", Kind: advisory.VerdictNotAffected, Justification: "component_not_present"}
		if _, err := r.d.RecordVerdict(v, "console uid=1000 (ops)", ""); err != nil {
			t.Fatal(err)
		}
		v.Kind, v.Justification, v.Until = advisory.VerdictRiskAccepted, "", time.Now().AddDate(1, 0, 0).Format(time.DateOnly)
		if _, err := r.d.RecordVerdict(v, "console uid=1000 (ops)", ""); err != nil {
			t.Fatal(err)
		}
		if vs, _ := r.d.Verdicts(); len(vs) != 1 || vs[0].Kind != advisory.VerdictRiskAccepted {
			t.Errorf("Verdicts after replacing = %+v, want the risk acceptance only", vs)
		}
		bad := v
		bad.Until = "2020-01-01"
		if _, err := r.d.RecordVerdict(bad, "console", ""); !errors.Is(err, ErrRefused) {
			t.Errorf("RecordVerdict(until passed) = %v, want ErrRefused", err)
		}
		if err := r.d.RemoveVerdict("a", "ICSA-24-011-01", "CVE-2024-0001", "console", ""); !errors.Is(err, ErrRefused) {
			t.Errorf("RemoveVerdict(no such CVE verdict) = %v, want ErrRefused", err)
		}
		if err := r.d.RemoveVerdict("a", "ICSA-24-011-01", "", "console uid=0 (root)", ""); err != nil {
			t.Fatal(err)
		}
		if vs, _ := r.d.Verdicts(); len(vs) != 0 {
			t.Errorf("Verdicts after removing = %+v, want none", vs)
		}
		var got []string
		for _, e := range triageEvents(t, r.st) {
			got = append(got, e.Type+" "+e.Actor+" "+e.Detail["verdict"].(string)+" replaced="+func() string { s, _ := e.Detail["replaced"].(string); return s }())
		}
		want := []string{
			"triage-recorded console uid=1000 (ops) not_affected replaced=",
			"triage-recorded console uid=1000 (ops) risk_accepted replaced=not_affected",
			"triage-removed console uid=0 (root) risk_accepted replaced=",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("triage audit =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}
