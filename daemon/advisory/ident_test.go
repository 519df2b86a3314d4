// SPDX-License-Identifier: Apache-2.0

package advisory

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestCPEMatches(t *testing.T) {
	for _, c := range []struct {
		src, tgt string
		want     bool
	}{
		{"cpe:2.3:h:siemens:simatic_s7-1200:*:*:*:*:*:*:*:*", "cpe:2.3:h:siemens:simatic_s7-1200:4.5:*:*:*:*:*:*:*", true},
		{"cpe:2.3:o:siemens:simatic_s7-1200_firmware:4.5", "cpe:2.3:o:siemens:simatic_s7-1200_firmware:4.5:*:*:*:*:*:*:*", true},
		{"cpe:2.3:o:siemens:simatic_s7-1200_firmware:4.5", "cpe:2.3:o:siemens:simatic_s7-1200_firmware:4.6", false},
		{"cpe:2.3:h:siemens:simatic_s7-12??:*", "cpe:2.3:h:siemens:simatic_s7-1214:*", true},
		{"cpe:2.3:h:siemens:scalance_x*:*", "cpe:2.3:h:siemens:scalance_xm408:*", true},
		{"cpe:2.3:h:siemens:scalance_x*:*", "cpe:2.3:h:phoenix:scalance_xm408:*", false},
		{"cpe:2.3:a:vendor:prod:1.0:-", "cpe:2.3:a:vendor:prod:1.0:-", true},
		{"cpe:2.3:a:vendor:prod:1.0:-", "cpe:2.3:a:vendor:prod:1.0:sp1", false},
		{"cpe:2.3:a:vendor:prod:1.0", "cpe:2.3:a:vendor:prod:*", false},
		{`cpe:2.3:a:vendor:prod\:x:1.0`, `cpe:2.3:a:vendor:prod\:x:1.0`, true},
	} {
		s, err := ParseCPE(c.src)
		if err != nil {
			t.Fatal(err)
		}
		g, err := ParseCPE(c.tgt)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Matches(g); got != c.want {
			t.Errorf("ParseCPE(%q).Matches(%q) = %v, want %v", c.src, c.tgt, got, c.want)
		}
	}
	for _, bad := range []string{"cpe:/h:siemens", "cpe:2.3:x:a:b", "cpe:2.3:a:b:c:d:e:f:g:h:i:j:k:l", "cpe:2.3:a:b\\"} {
		if _, err := ParseCPE(bad); err == nil {
			t.Errorf("ParseCPE(%q) = nil error", bad)
		}
	}
}

func TestPURL(t *testing.T) {
	p, err := ParsePURL("pkg:github/Zephyrproject-RTOS/MCUboot@v2.1.0?x=y#sub")
	if err != nil || p != (PURL{"github", "zephyrproject-rtos", "mcuboot", "v2.1.0"}) {
		t.Errorf("ParsePURL = %+v, %v", p, err)
	}
	q, _ := ParsePURL("pkg:github/zephyrproject-rtos/mcuboot")
	if !p.SamePackage(q) {
		t.Errorf("%+v.SamePackage(%+v) = false", p, q)
	}
	for _, bad := range []string{"github/x/y", "pkg:github", "pkg:/x", "pkg:npm/%zz"} {
		if _, err := ParsePURL(bad); err == nil {
			t.Errorf("ParsePURL(%q) = nil error", bad)
		}
	}
}

// TestMatchIdentifiers covers tier 1, which the 2024 corpus never uses.
func TestMatchIdentifiers(t *testing.T) {
	doc := `{"document":{"category":"csaf_security_advisory","csaf_version":"2.0","title":"t","publisher":{"name":"p"},
 "tracking":{"id":"T-1","version":"2","status":"final","initial_release_date":"2024-01-01T00:00:00Z","current_release_date":"2024-02-01T00:00:00Z","revision_history":[{"number":"1"}]}},
 "product_tree":{"branches":[{"category":"vendor","name":"Acme","branches":[{"category":"product_name","name":"IO16","branches":[
   {"category":"product_version_range","name":"vers:generic/>=2.0|<2.4.2","product":{"name":"Acme IO16 <2.4.2","product_id":"P1","product_identification_helper":{"cpe":"cpe:2.3:o:acme:io16_firmware:*:*:*:*:*:*:*:*"}}},
   {"category":"product_version","name":"1.0.0","product":{"name":"lib","product_id":"P2","product_identification_helper":{"purl":"pkg:github/acme/modbuslib@1.0.0"}}}]}]}],
  "product_groups":[{"group_id":"G","product_ids":["P1","P2"]}]},
 "vulnerabilities":[{"cve":"CVE-2024-0001","product_status":{"known_affected":["P1","P2"]},
   "threats":[{"category":"exploit_status","details":"Exploited in the wild","group_ids":["G"]}],
   "remediations":[{"category":"vendor_fix","details":"Update to 2.4.2 or later","group_ids":["G"]}],
   "scores":[{"products":["P1"],"cvss_v3":{"baseScore":9.8,"vectorString":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}}]},
  {"cve":"CVE-2024-0002","product_status":{"known_not_affected":["P1"]},"flags":[{"label":"vulnerable_code_not_in_execute_path","product_ids":["P1"]}]}]}`
	a, err := ParseCSAF(bytes.NewReader([]byte(doc)))
	if err != nil {
		t.Fatal(err)
	}
	x := NewIndex([]*Advisory{a}, nil)
	ms := x.Match(Item{Device: "d", CPE: "cpe:2.3:o:acme:io16_firmware:*:*:*:*:*:*:*:*", Firmware: "2.4.1", Zone: ZoneControl})
	if len(ms) != 1 || ms[0].Tier != TierIdentifier || ms[0].Confidence != High || len(ms[0].Findings) != 2 {
		t.Fatalf("Match by CPE = %+v", ms)
	}
	f0, f1 := ms[0].Findings[0], ms[0].Findings[1]
	if f0.Status != Affected || f0.FixedBy != "2.4.2" || f0.Exploit == "" || f1.Status != NotAffected || f1.Justification != "vulnerable_code_not_in_execute_path" {
		t.Errorf("findings = %+v", ms[0].Findings)
	}
	if p := Prioritize(Item{Zone: ZoneControl}, ms); p.Decision != Act {
		t.Errorf("Prioritize = %+v, want act (exploited, controlled, critical)", p)
	}
	if ms := x.Match(Item{Device: "d", CPE: "cpe:2.3:o:acme:io16_firmware:*", Firmware: "2.4.2"}); len(ms) != 0 {
		t.Errorf("Match at fixed version = %+v, want none", ms)
	}
	if ms := x.Match(Item{Device: "d", PURL: "pkg:github/acme/modbuslib@1.0.0"}); len(ms) != 1 || ms[0].Tier != TierIdentifier {
		t.Errorf("Match by PURL = %+v", ms)
	}
	if ms := x.Match(Item{Device: "d", PURL: "pkg:github/acme/modbuslib@1.0.1"}); len(ms) != 0 {
		t.Errorf("Match by PURL of another version = %+v", ms)
	}
	if ms := x.Match(Item{Device: "d", Vendor: "ACME Inc.", Product: "IO16", Firmware: "weird"}); len(ms) != 1 || ms[0].Tier != TierTriage {
		t.Errorf("Match with unreadable firmware = %+v, want triage", ms)
	}
}

func TestParseCSAFRefuses(t *testing.T) {
	for name, doc := range map[string]string{
		"not json":        "<xml/>",
		"no document":     `{}`,
		"csaf 1.2":        `{"document":{"category":"x","csaf_version":"1.2"}}`,
		"no tracking id":  `{"document":{"category":"x","csaf_version":"2.0","tracking":{"version":"1"}}}`,
		"no history":      `{"document":{"category":"x","csaf_version":"2.0","tracking":{"id":"a","version":"1","current_release_date":"2024-01-01T00:00:00Z"}}}`,
		"bad date":        `{"document":{"category":"x","csaf_version":"2.0","tracking":{"id":"a","version":"1","current_release_date":"yesterday","revision_history":[{}]}}}`,
		"unknown product": `{"document":{"category":"x","csaf_version":"2.0","tracking":{"id":"a","version":"1","current_release_date":"2024-01-01T00:00:00Z","revision_history":[{}]}},"vulnerabilities":[{"remediations":[{"category":"vendor_fix","product_ids":["nope"]}]}]}`,
		"too large":       `{"x":"` + string(bytes.Repeat([]byte("a"), MaxDocumentSize)) + `"}`,
	} {
		if _, err := ParseCSAF(bytes.NewReader([]byte(doc))); err == nil {
			t.Errorf("ParseCSAF(%s) = nil error", name)
		}
	}
}

func TestParseKEV(t *testing.T) {
	k := loadKEV(t)
	if len(k.Entries) != 1404 || k.Version != "2025.08.25" {
		t.Errorf("KEV: %d entries, version %s; want 1404, 2025.08.25", len(k.Entries), k.Version)
	}
	if _, err := ParseKEV(bytes.NewReader([]byte(`{"vulnerabilities":[]}`))); err == nil {
		t.Error("ParseKEV without catalogVersion = nil error")
	}
}

func FuzzParseCSAF(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(sharedTestdata, "csaf", "cisa-ot-2024", "icsa-24-0[01]*.json"))
	for _, fn := range files[:min(len(files), 4)] {
		if b, err := os.ReadFile(fn); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"document":{"category":"x","csaf_version":"2.0","tracking":{"id":"a","version":"1","current_release_date":"2024-01-01T00:00:00Z","revision_history":[{}]}},"product_tree":{"branches":[{"category":"vendor","name":"v","product":{"name":"n","product_id":"1"}}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseCSAF(bytes.NewReader(b))
		if err != nil {
			return
		}
		// Whatever parses must be matchable without panicking.
		x := NewIndex([]*Advisory{a}, nil)
		for _, id := range a.Order {
			p := a.Products[id]
			m := ""
			if len(p.Models) > 0 {
				m = p.Models[0]
			}
			x.Match(Item{Vendor: p.Vendor, Product: p.ProductName, Model: m, Firmware: "1.0", CPE: p.CPE, PURL: p.PURL})
		}
	})
}

func FuzzCPE(f *testing.F) {
	f.Add("cpe:2.3:h:siemens:simatic_s7-12??:*", "cpe:2.3:h:siemens:simatic_s7-1214:*")
	f.Add(`cpe:2.3:a:v:p\:x:1.*`, `cpe:2.3:a:v:p\:x:1.0`)
	f.Fuzz(func(t *testing.T, a, b string) {
		ca, err := ParseCPE(a)
		if err != nil {
			return
		}
		if !ca.Matches(ca) && !hasWildcardValue(ca) {
			t.Fatalf("%q does not match itself", a)
		}
		if cb, err := ParseCPE(b); err == nil {
			ca.Matches(cb)
		}
	})
}

func hasWildcardValue(c CPE) bool {
	for _, v := range c {
		if v != "*" && bytes.ContainsAny([]byte(v), "*?") {
			return true
		}
	}
	return false
}
