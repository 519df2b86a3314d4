// SPDX-License-Identifier: Apache-2.0

package config

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStaging(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	pub := base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))
	keyFile := filepath.Join(t.TempDir(), "report.key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(priv)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := "approvers: []\nstaging_keys:\n  - {id: bench-1, public_key: " + pub + "}\n"
	tests := []struct {
		name   string
		oldNew []string
		want   string // "" valid, else a part of the error
	}{
		{"default production", nil, ""},
		{"require_tested known", []string{"max_failures: 0 ", "require_tested: [bench-1]\n    max_failures: 0 ", "approvers: []\n", keys}, ""},
		{"require_tested unknown", []string{"max_failures: 0 ", "require_tested: [bench-2]\n    max_failures: 0 ", "approvers: []\n", keys},
			`groups[0].require_tested[0]: unknown staging key "bench-2"`},
		{"staging with key", []string{"gateway:\n", "gateway:\n  role: staging\n  test_report_key: " + keyFile + "\n"}, ""},
		{"staging without key", []string{"gateway:\n", "gateway:\n  role: staging\n"}, "gateway.test_report_key: is required"},
		{"staging key missing", []string{"gateway:\n", "gateway:\n  role: staging\n  test_report_key: /nonexistent/key\n"}, "no such file"},
		{"staging key damaged", []string{"gateway:\n", "gateway:\n  role: staging\n  test_report_key: " + filepath.Join(filepath.Dir(keyFile), "..") + "\n"}, "not a regular file"},
		{"unknown role", []string{"gateway:\n", "gateway:\n  role: bench\n"}, `gateway.role: "bench"`},
		{"bad public key", []string{"approvers: []\n", strings.Replace(keys, pub, "AAAA", 1)}, "staging_keys[0].public_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeConfig(t, example(t, tt.oldNew...)))
			if err == nil {
				err = c.Validate(nil)
			}
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				if c.Gateway.TestReportTTL != DefaultTestReportTTL {
					t.Errorf("TestReportTTL = %s, want %s", c.Gateway.TestReportTTL, DefaultTestReportTTL)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an error with %q", err, tt.want)
			}
		})
	}
}
