// SPDX-License-Identifier: Apache-2.0

package sim

import (
	"bytes"
	"errors"
	"testing"
)

func TestMakeImage(t *testing.T) {
	for _, size := range []int{0, 10, 45, 46, 100, 4096, 100000} {
		img := MakeImage("acme-io16-rev3", "2.4.1", size)
		h, err := VerifyImage(img, "acme-io16-rev3")
		if err != nil {
			t.Fatalf("VerifyImage(MakeImage(size %d)) = %v, want nil", size, err)
		}
		if size >= h.Len && len(img) != size {
			t.Errorf("len(MakeImage(size %d)) = %d, want %d", size, len(img), size)
		}
		if h.Version != "2.4.1" || h.HardwareID != "acme-io16-rev3" || h.Size != len(img) {
			t.Errorf("ParseImageHeader(MakeImage(size %d)) = %+v, want hw, version and size %d", size, h, len(img))
		}
	}
	a := MakeImage("hw", "1.0", 1000)
	if !bytes.Equal(a, MakeImage("hw", "1.0", 1000)) {
		t.Errorf("MakeImage is not deterministic")
	}
	if bytes.Equal(a[100:], MakeImage("hw", "1.1", 1000)[100:]) {
		t.Errorf("MakeImage payload does not depend on the version")
	}
}

func TestVerifyImage(t *testing.T) {
	good := MakeImage("hw1", "1.0", 300)
	padded := append(bytes.Clone(good), 0x1A, 0x1A)
	tests := []struct {
		name string
		img  []byte
		hw   string
		ok   bool
	}{
		{"good", good, "hw1", true},
		{"wrong hw", good, "hw2", false},
		{"padded", padded, "hw1", false},
		{"truncated", good[:200], "hw1", false},
		{"no magic", append([]byte("XXSIM1"), good[6:]...), "hw1", false},
		{"empty", nil, "hw1", false},
		{"no newline", bytes.Repeat([]byte("a"), 1000), "hw1", false},
		{"bad size", []byte("FGSIM1 hw=hw1 version=1 size=x\n"), "hw1", false},
		{"small size", []byte("FGSIM1 hw=hw1 version=1 size=3\n"), "hw1", false},
		{"missing field", []byte("FGSIM1 hw=hw1 size=40\n"), "hw1", false},
		{"swapped keys", []byte("FGSIM1 version=1 hw=hw1 size=38\n"), "hw1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := VerifyImage(tt.img, tt.hw)
			if (err == nil) != tt.ok {
				t.Fatalf("VerifyImage(%s) = %v, want ok=%v", tt.name, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadImage) {
				t.Errorf("VerifyImage(%s) = %v, want it to wrap ErrBadImage", tt.name, err)
			}
		})
	}
}

func FuzzParseImageHeader(f *testing.F) {
	f.Add(MakeImage("hw", "1.0", 80))
	f.Add([]byte("FGSIM1 hw=a version=b size=30\n"))
	f.Add([]byte("FGSIM1 hw= version= size=\n"))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseImageHeader(b)
		if err != nil {
			return
		}
		if h.Len > len(b) || h.Size < h.Len || h.HardwareID == "" || h.Version == "" {
			t.Fatalf("ParseImageHeader(%q) = %+v, inconsistent", b, h)
		}
	})
}
