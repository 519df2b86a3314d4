// SPDX-License-Identifier: Apache-2.0

package config

import (
	"strings"
	"testing"
)

func TestValidateMetricsListen(t *testing.T) {
	for _, tc := range []struct {
		listen string
		want   string // a substring of the problem; "": valid
	}{
		{"", ""}, // off
		{"127.0.0.1:9464", ""},
		{"127.0.0.53:9464", ""},
		{"[::1]:9464", ""},
		{"unix:/run/fieldgate/metrics.sock", ""},
		{"0.0.0.0:9464", "beyond loopback"},
		{"192.168.10.5:9464", "beyond loopback"},
		{"[::]:9464", "beyond loopback"},
		{":9464", "neither a loopback IP"},
		{"localhost:9464", "neither a loopback IP"},
		{"127.0.0.1", "neither a loopback IP"},
		{"127.0.0.1:0", "needs a port"},
		{"unix:metrics.sock", "absolute path"},
	} {
		t.Run(tc.listen, func(t *testing.T) {
			c, err := Load(writeConfig(t, "gateway: {id: gw1, site: plant1}\nmetrics: {listen: '"+tc.listen+"'}\n"))
			if err != nil {
				t.Fatalf("Load = %v", err)
			}
			if c.Metrics.Listen != tc.listen {
				t.Fatalf("Metrics.Listen = %q, want %q", c.Metrics.Listen, tc.listen)
			}
			var problems []string
			c.validateMetrics(func(path, format string, a ...any) { problems = append(problems, path) })
			if err := CheckMetricsListen(tc.listen); tc.listen != "" && (err == nil) != (tc.want == "") {
				t.Errorf("CheckMetricsListen(%q) = %v, want a problem: %v", tc.listen, err, tc.want != "")
			} else if err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckMetricsListen(%q) = %v, want it to say %q", tc.listen, err, tc.want)
			}
			if tc.want == "" {
				if len(problems) > 0 {
					t.Errorf("validateMetrics(%q) = %v, want no problem", tc.listen, problems)
				}
				return
			}
			if len(problems) != 1 || problems[0] != "metrics.listen" {
				t.Errorf("validateMetrics(%q) named %v, want metrics.listen", tc.listen, problems)
			}
			// Validate, which --check-config and the start run, reports it.
			if err := c.Validate(nil); err == nil || !strings.Contains(err.Error(), "metrics.listen: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate(metrics.listen %q) = %v, want it to name metrics.listen and say %q", tc.listen, err, tc.want)
			}
		})
	}
}
