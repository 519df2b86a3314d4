// SPDX-License-Identifier: Apache-2.0

package advisory

import "testing"

func TestCompare(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"V3.1.2", "3.1.2", 0},
		{"1.2", "1.2.0", 0},
		{"1.2", "1.2.0.5", -1},
		{"V2.0", "V2.0 SP1", -1},
		{"V2.0 SP1", "V2.0.1", -1},
		{"V16 Update 4", "V16 Update 10", -1},
		{"1.10A", "1.10F", -1},
		{"Firmware_6.62", "6.61", 1},
		{"Ver.2.10", "2.9", 1},
		{"2.0 beta", "2.0", -1},
		{"CPCI85 V05.20", "V05.10", 1},
		{"MX-V4.7.2.18", "4.7.2.18", 0},
		{"MX-V4.0.1.15", "MX-V4.7.2.18", -1},
		{"R2.3 TCU1 HF2", "R2.3 TCU1 HF1", 1},
		{"V2406.0003", "V2406", 1},
	} {
		a, aok := ParseVersion(c.a)
		b, bok := ParseVersion(c.b)
		if !aok || !bok {
			t.Fatalf("ParseVersion(%q, %q) = %v, %v", c.a, c.b, aok, bok)
		}
		if got := Compare(a, b); got != c.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := Compare(b, a); got != -c.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
	for _, s := range []string{"", "All versions", "unknown"} {
		if _, ok := ParseVersion(s); ok {
			t.Errorf("ParseVersion(%q) ok, want not a version", s)
		}
	}
}

// TestRange covers the shapes CISA writes (counted in the 2024 corpus) and
// the vers: spec, each with versions inside and outside.
func TestRange(t *testing.T) {
	for _, c := range []struct {
		r        string
		in, out  []string
		all      bool
		cond     bool
		unparsed bool
	}{
		{r: "vers:all/*", all: true, in: []string{"1.0", "99"}},
		{r: "vers:all/<V3.1.2", in: []string{"V3.1.1", "3.0"}, out: []string{"V3.1.2", "4"}},
		{r: "vers:generic/>=1.0|<2.0", in: []string{"1.0", "1.9.9"}, out: []string{"0.9", "2.0"}},
		{r: "vers:generic/>=1.0|<2.0|>=3.0", in: []string{"1.5", "3.0", "7"}, out: []string{"2.5"}},
		{r: "vers:generic/1.2|!=1.3|>=2.0", in: []string{"1.2", "2.1"}, out: []string{"1.3", "1.4"}},
		{r: "<V2.4", in: []string{"V2.3.9", "2.3"}, out: []string{"V2.4", "2.4.1"}},
		{r: "<=Firmware_6.62", in: []string{"6.62", "6.1"}, out: []string{"6.63"}},
		{r: "<=9.9", in: []string{"9.9"}, out: []string{"9.10"}},
		{r: "V3.0 < V3.1.2", in: []string{"V3.0", "3.1.1"}, out: []string{"2.9", "3.1.2"}},
		{r: ">=V1.0<V1.5", in: []string{"1.2"}, out: []string{"1.5", "0.9"}},
		{r: ">=V2.0_<V2.3_only_when_manufactured_between_LQN1 and LQN2", in: []string{"2.1"}, out: []string{"2.3"}, cond: true},
		{r: ">=R2.1|<=R2.4", in: []string{"R2.2", "R2.4"}, out: []string{"R2.5"}},
		{r: "<V2.0_SP1", in: []string{"V2.0"}, out: []string{"V2.0 SP1", "V2.1"}},
		{r: "<V16_Update_4", in: []string{"V16 Update 3", "V16"}, out: []string{"V16 Update 4"}},
		{r: "<= 4.1.2 (Build 19)", in: []string{"4.1.2 Build 18"}, out: []string{"4.1.2 Build 20", "4.1.3"}},
		{r: "<=Ver.2.10", in: []string{"2.10"}, out: []string{"2.11"}},
		{r: ">=1.10A|<1.10F", in: []string{"1.10B"}, out: []string{"1.10F"}},
		{r: "2.1|2.3|2.7", in: []string{"2.3"}, out: []string{"2.2"}},
		{r: "All versions", all: true, in: []string{"0.1"}},
		{r: "All versions < CPCI85 V05.20", in: []string{"CPCI85 V05.10", "V05.10"}, out: []string{"V05.20"}},
		{r: "All versions with Fortinet NGFW", all: true, cond: true},
		{r: "vers:all/*_installed_on_CP1543-1_devices", all: true, cond: true},
		{r: "<V1.3_only_if_the_basic_authentication_mechanism_is_used_by_the_application", in: []string{"1.2"}, out: []string{"1.3"}, cond: true},
		{r: "all versions prior to 5.3", in: []string{"5.2.9"}, out: []string{"5.3"}},
		{r: "versions 1.0 through 1.3", in: []string{"1.0", "1.3"}, out: []string{"1.4", "0.9"}},
		{r: "4.2 and later", in: []string{"4.2", "5"}, out: []string{"4.1"}},
		{r: "3.1 and earlier", in: []string{"3.1"}, out: []string{"3.2"}},
		{r: "before V1.2", in: []string{"1.1"}, out: []string{"1.2"}},
		// Release lines: wildcards, and bare versions in free text, which
		// vendors write for "every revision of".
		{r: "12.4.*", in: []string{"12.4", "12.4.1", "12.4.11"}, out: []string{"12.5", "12.40", "12.3.9"}},
		{r: "13.0.X", in: []string{"13.0.5"}, out: []string{"13.1"}},
		{r: "2.2.0 *", in: []string{"2.2.0", "2.2.0.7"}, out: []string{"2.2.1"}},
		{r: "5.1.0-x | 5.1.1-x", in: []string{"5.1.0-7", "5.1.1-1"}, out: []string{"5.1.2"}},
		{r: ">= 6.x | <= 10.x", in: []string{"6.0", "10.4"}, out: []string{"5.9", "11.0"}},
		{r: "10 | 11", in: []string{"10", "11.0.2"}, out: []string{"9.9", "12.0"}},
		{r: "2.2.3", in: []string{"2.2.3", "2.2.3.2"}, out: []string{"2.2.4", "2.2.30"}},
		{r: "6.0.0-1", in: []string{"6.0.0-1"}, out: []string{"6.0.0-2"}},
		{r: "vers:generic/1.2|>=3.0", in: []string{"1.2", "3.1"}, out: []string{"1.2.5"}},
		{r: "V20 and earlier", in: []string{"20.011"}, out: []string{"21.0"}},
		{r: "<= 9.0", in: []string{"9.0"}, out: []string{"9.0.1"}},
		// A bare version before an upper bound is the lower bound.
		{r: "7.0 | < 7.0.2", in: []string{"7.0", "7.0.1"}, out: []string{"6.9", "7.0.2"}},
		// Hyphen and dash ranges.
		{r: "3.1.1-3.1.9", in: []string{"3.1.1", "3.1.9"}, out: []string{"3.1.0", "3.1.10"}},
		{r: "01.10.000 -01.20.000", in: []string{"01.15.000"}, out: []string{"01.21.000"}},
		{r: "4  - 7", in: []string{"4", "7.011"}, out: []string{"3.9", "8.0"}},
		{r: "1.100A\u20141.200B", in: []string{"1.150C"}, out: []string{"1.300A"}},
		// Comparators written backwards, "rev." and a word before "versions".
		{r: ">= 2.1.0 | =< 2.3.0.x", in: []string{"2.3.0.4"}, out: []string{"2.3.1"}},
		{r: "<  rev. 1.2.3", in: []string{"1.2.2"}, out: []string{"1.2.3"}},
		{r: "All BIOS versions < V1.2.3", in: []string{"V1.2.2"}, out: []string{"V1.2.3"}},
		{r: "All versions in non-default configuration", all: true, cond: true},
		{r: "<=The_first_5_digits_of_serial_No._\"26061\"", unparsed: true},
		{r: "<May_1_2024", unparsed: true},
		{r: "<1/31/2024", unparsed: true},
		{r: "vers:nonsense", unparsed: true},
		{r: "", unparsed: true},
	} {
		r := ParseRange(c.r)
		if r.Parsed == c.unparsed {
			t.Errorf("ParseRange(%q).Parsed = %v, want %v", c.r, r.Parsed, !c.unparsed)
			continue
		}
		if r.All != c.all {
			t.Errorf("ParseRange(%q).All = %v, want %v", c.r, r.All, c.all)
		}
		if (r.Condition != "") != c.cond {
			t.Errorf("ParseRange(%q).Condition = %q, want condition %v", c.r, r.Condition, c.cond)
		}
		for _, v := range c.in {
			if vv, _ := ParseVersion(v); !r.Contains(vv) {
				t.Errorf("ParseRange(%q).Contains(%q) = false, want true (%+v)", c.r, v, r.Constraints)
			}
		}
		for _, v := range c.out {
			if vv, _ := ParseVersion(v); r.Contains(vv) {
				t.Errorf("ParseRange(%q).Contains(%q) = true, want false (%+v)", c.r, v, r.Constraints)
			}
		}
	}
}

func TestFixedVersion(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Update to V3.1.2 or later version", "V3.1.2"},
		{"Update to V2.0 SP1 or later version", "V2.0 SP1"},
		{"Update to V223.0 Update 10 or later version", "V223.0 Update 10"},
		{"Update P3 cameras to firmware version MX-V4.7.2.18 or later that includes a fixed version", "MX-V4.7.2.18"},
		{"PowerPanel Business: Update to v4.10.1 or later version", "v4.10.1"},
		{"Update Fortigate NGFW to V7.4.1. Contact customer support to receive patch and update information.", "V7.4.1"},
		{"Contact customer support to receive patch and update information.", ""},
		{"The issue is fixed in version 5.3.", "5.3"},
	} {
		if got := FixedVersion(c.in); got != c.want {
			t.Errorf("FixedVersion(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"vers:all/*", "<V2.4", ">=9.9|<=9.9", "V3.0 < V3.1.2", "versions 1.0 through 1.3", "<= 4.1.2 (Build 19)", "all versions prior to 5.3", "2.1|2.3"} {
		f.Add(s, "2.3")
	}
	f.Fuzz(func(t *testing.T, s, v string) {
		r := ParseRange(s)
		vv, ok := ParseVersion(v)
		if !ok {
			return
		}
		in := r.Contains(vv)
		if !r.Parsed && in {
			t.Fatalf("unparsed range %q contains %q", s, v)
		}
		if r.All && !in {
			t.Fatalf("range %q of all versions does not contain %q", s, v)
		}
		if Compare(vv, vv) != 0 {
			t.Fatalf("Compare(%q, itself) != 0", v)
		}
	})
}
