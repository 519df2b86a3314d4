// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/fieldgate/fieldgate/devices/sim"
)

func TestCounters(t *testing.T) {
	dir := t.TempDir()
	started := filepath.Join(dir, "a")
	if err := os.MkdirAll(started, 0o755); err != nil {
		t.Fatal(err)
	}
	want := sim.Counters{Writes: 2, PartialWrites: 1, BytesWritten: 12345, Boots: 3}
	b, _ := json.Marshal(want)
	if err := os.WriteFile(filepath.Join(started, sim.CountersFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "sim.yaml")
	yaml := fmt.Sprintf(`devices:
  - {id: a, kind: xmodem-console, hardware_id: hw, version: 1.0.0, state_dir: %s, address: %s}
  - {id: b, kind: xmodem-console, hardware_id: hw, version: 1.0.0, state_dir: %s, address: %s}
`, started, filepath.Join(dir, "tty-a"), filepath.Join(dir, "never"), filepath.Join(dir, "tty-b"))
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := run([]string{"counters", "--config", cfg}, &stdout, &stderr); err != nil {
		t.Fatalf("counters = %v (%s)", err, stderr.String())
	}
	var got map[string]sim.Counters
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("counters printed %q: %v", stdout.String(), err)
	}
	if got["a"] != want || got["b"] != (sim.Counters{}) || len(got) != 2 {
		t.Errorf("counters = %+v, want a: %+v and b: zero", got, want)
	}
}
