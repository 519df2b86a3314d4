// SPDX-License-Identifier: Apache-2.0

package devicetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"testing"

	"github.com/fieldgate/fieldgate/devices"
)

// TestNeedResume: with NeedResume, the steps after Transfer fail after
// Forget (a daemon restart) until Resume is given the job's image.
func TestNeedResume(t *testing.T) {
	ctx := context.Background()
	d := New("hw1", "1.0.0")
	d.NeedResume = true
	b := Image("2.0.0", 100)
	sum := sha256.Sum256(b)
	img := devices.Image{Name: "fw", Version: "2.0.0", Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}
	if err := d.Transfer(ctx, img, bytes.NewReader(b), nil); err != nil {
		t.Fatal(err)
	}
	d.Forget()
	if err := d.Activate(ctx); err == nil || devices.IsTransient(err) {
		t.Fatalf("Activate() after Forget = %v, want a permanent error", err)
	}
	if err := d.Resume(img, bytes.NewReader(b[:50])); err == nil {
		t.Fatalf("Resume(short image) = nil, want an error")
	}
	if err := d.Resume(img, bytes.NewReader(b)); err != nil {
		t.Fatalf("Resume() = %v", err)
	}
	for _, step := range []func(context.Context) error{d.Activate, d.Health, d.Commit} {
		if err := step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"transfer", "activate", "resume", "resume", "activate", "health", "commit"}
	if got := d.Calls(); !slices.Equal(got, want) {
		t.Errorf("Calls() = %v, want %v", got, want)
	}
}
