// SPDX-License-Identifier: Apache-2.0

package tuf

import "testing"

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"2.4.1", "2.4.1", 0},
		{"2.4.1", "2.4.0", 1},
		{"2.4.0", "2.4.1", -1},
		{"2.10.0", "2.9.9", 1},
		{"2.4", "2.4.0", 0},
		{"v2.4.1", "2.4.1", 0},
		{"3", "2.99.99", 1},
		{"1.0.0-rc.1", "1.0.0", -1},
		{"1.0.0", "1.0.0-rc.1", 1},
		{"1.0.0-alpha", "1.0.0-alpha.1", -1},
		{"1.0.0-alpha.1", "1.0.0-alpha.beta", -1},
		{"1.0.0-beta.2", "1.0.0-beta.11", -1},
		{"1.0.0-rc.1", "1.0.0-beta", 1},
		{"1.0.0+build.1", "1.0.0+build.2", 0},
		{"18446744073709551615", "18446744073709551614", 1},
		{"garbage", "0.0.1", -1},
		{"0.0.1", "garbage", 1},
		{"a", "b", -1},
		{"", "0", -1},
	}
	for _, tt := range tests {
		if got := CompareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestValidVersion(t *testing.T) {
	for _, s := range []string{"1", "2.4.1", "v1.2", "1.0.0-rc.1", "1.0.0+20260101", "0.0.0"} {
		if err := ValidVersion(s); err != nil {
			t.Errorf("ValidVersion(%q) = %v, want nil", s, err)
		}
	}
	for _, s := range []string{"", "v", "1..2", "1.x", "01.2", "1.2-", "1.2-01", "1.2+", "1 .2", "-1", "1.2.3.4.5.6.7.8.9", "99999999999999999999", "1.2-rc_1"} {
		if err := ValidVersion(s); err == nil {
			t.Errorf("ValidVersion(%q) = nil, want an error", s)
		}
	}
}

func FuzzCompareVersions(f *testing.F) {
	for _, s := range []string{"1", "2.4.1", "1.0.0-rc.1", "v3+b", "x"} {
		f.Add(s, "2.4.1")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ab, ba := CompareVersions(a, b), CompareVersions(b, a)
		if ab != -ba {
			t.Fatalf("CompareVersions not antisymmetric: (%q,%q)=%d, reverse %d", a, b, ab, ba)
		}
		if CompareVersions(a, a) != 0 {
			t.Fatalf("CompareVersions(%q, itself) != 0", a)
		}
	})
}
