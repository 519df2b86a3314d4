// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/fieldgate/fieldgate/tuf/internal/localfile"
)

func TestLocalTransport(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("0123456789"), 0o644)
	os.WriteFile(filepath.Join(t.TempDir(), "outside"), []byte("secret"), 0o644)
	client := &http.Client{Transport: newLocalTransport(nil, "file://"+filepath.ToSlash(dir))}
	get := func(ctx context.Context, method, name, rng string) (*http.Response, string, error) {
		req, _ := http.NewRequestWithContext(ctx, method, "file://"+filepath.ToSlash(dir)+"/"+name, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, string(body), err
	}
	for _, tc := range []struct {
		method, name, rng string
		status            int
		body              string
		contentRange      string
	}{
		{"GET", "f", "", 200, "0123456789", ""},
		{"HEAD", "f", "", 200, "", ""},
		{"GET", "f", "bytes=4-", 206, "456789", "bytes 4-9/10"},
		{"GET", "f", "bytes=10-", 416, "", "bytes */10"},
		{"GET", "f", "bytes=2-3", 200, "0123456789", ""},
		{"GET", "missing", "", 404, "", ""},
	} {
		resp, body, err := get(context.Background(), tc.method, tc.name, tc.rng)
		if err != nil {
			t.Errorf("%s %s (%s) = %v", tc.method, tc.name, tc.rng, err)
			continue
		}
		if resp.StatusCode != tc.status || body != tc.body || resp.Header.Get("Content-Range") != tc.contentRange {
			t.Errorf("%s %s (%s) = %d %q %q, want %d %q %q", tc.method, tc.name, tc.rng,
				resp.StatusCode, body, resp.Header.Get("Content-Range"), tc.status, tc.body, tc.contentRange)
		}
	}
	for _, name := range []string{"../outside", "f/..", "sub/../f"} {
		if _, _, err := get(context.Background(), "GET", name, ""); !errors.Is(err, localfile.ErrRefused) {
			t.Errorf("GET %s = %v, want ErrRefused", name, err)
		}
	}
	req, _ := http.NewRequest("GET", "file:///etc/passwd", nil)
	if _, err := client.Do(req); !errors.Is(err, localfile.ErrRefused) {
		t.Errorf("GET file:///etc/passwd = %v, want ErrRefused (outside the bases)", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := get(ctx, "GET", "f", ""); !errors.Is(err, context.Canceled) {
		t.Errorf("GET with a cancelled context = %v, want context.Canceled", err)
	}
}
