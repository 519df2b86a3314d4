// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fieldgate/fieldgate/devices/sim"
	"github.com/fieldgate/fieldgate/devices/smp"
)

func TestMkimage(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    func(t *testing.T, b []byte)
		wantErr string
	}{
		{name: "fgsim", args: []string{"--hw", "acme-io16-rev3", "--version", "2.4.1", "--size", "4096"},
			want: func(t *testing.T, b []byte) {
				if !bytes.Equal(b, sim.MakeImage("acme-io16-rev3", "2.4.1", 4096)) {
					t.Errorf("mkimage wrote %d bytes, want sim.MakeImage(acme-io16-rev3, 2.4.1, 4096)", len(b))
				}
			}},
		{name: "mcuboot", args: []string{"--format", "mcuboot", "--hw", "acme-nrf52-dk", "--version", "1.1.0", "--size", "4096"},
			want: func(t *testing.T, b []byte) {
				info, err := smp.ParseImage(b)
				if err != nil {
					t.Fatalf("smp.ParseImage(mkimage --format mcuboot) = %v", err)
				}
				if info.Version.String() != "1.1.0" {
					t.Errorf("MCUboot version = %s, want 1.1.0", info.Version)
				}
				body := b[info.HeaderSize : info.HeaderSize+info.ImageSize]
				if h, err := sim.VerifyImage(body, "acme-nrf52-dk"); err != nil || h.Version != "1.1.0" || h.Size != 4096 {
					t.Errorf("MCUboot body = %+v, %v; want an FGSIM1 image of acme-nrf52-dk 1.1.0, 4096 bytes", h, err)
				}
			}},
		{name: "unknown format", args: []string{"--format", "srec", "--hw", "x", "--version", "1.0.0"}, wantErr: `--format "srec"`},
		{name: "mcuboot needs a numeric version", args: []string{"--format", "mcuboot", "--hw", "x", "--version", "1.0-rc1"}, wantErr: "parse image version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "fw.bin")
			var stdout, stderr bytes.Buffer
			err := run(append([]string{"mkimage", "-o", out}, tt.args...), &stdout, &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("mkimage %v = %v, want an error containing %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("mkimage %v = %v", tt.args, err)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			tt.want(t, b)
		})
	}
}
