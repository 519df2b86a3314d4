// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckConfigExample(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run([]string{"--check-config", exampleWith(t)}, &out, &errb); err != nil {
		t.Fatalf("--check-config example.yaml = %v\n%s%s", err, out.String(), errb.String())
	}
}

func TestCheckConfigNamesTypo(t *testing.T) {
	raw, err := os.ReadFile("../../daemon/config/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(raw), "  metadata_url:", "  metdata_url:", 1)
	p := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(p, []byte(bad), 0o600)
	var out, errb bytes.Buffer
	err = run([]string{"--check-config", p}, &out, &errb)
	if err == nil {
		t.Fatal("--check-config with a typo succeeded, want an error")
	}
	if !strings.Contains(out.String(), "metdata_url") || !strings.Contains(out.String(), "line ") {
		t.Errorf("--check-config output does not name the key and its line:\n%s", out.String())
	}
}

func TestCheckConfigDriverOptions(t *testing.T) {
	raw, _ := os.ReadFile("../../daemon/config/example.yaml")
	bad := strings.Replace(string(raw), `      prompt: "> "`, `      promt: "> "`, 1)
	p := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(p, []byte(bad), 0o600)
	var out, errb bytes.Buffer
	if err := run([]string{"--check-config", p}, &out, &errb); err == nil || !strings.Contains(out.String(), "promt") {
		t.Errorf("--check-config with an unknown driver option = %v, output:\n%s\nwant it to name promt", err, out.String())
	}
}

func TestBadArguments(t *testing.T) {
	for _, args := range [][]string{{"--no-such-flag"}, {"extra"}, {"--config"}} {
		var out, errb bytes.Buffer
		if err := run(args, &out, &errb); err == nil {
			t.Errorf("run(%q) = nil, want an error", args)
		}
	}
	var out, errb bytes.Buffer
	if err := run([]string{"--version"}, &out, &errb); err != nil || !strings.HasPrefix(out.String(), "fieldgated ") {
		t.Errorf("--version = %v, %q", err, out.String())
	}
}
