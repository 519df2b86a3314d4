// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFetcherRedirects: a repository on the network may redirect within
// http/https (http to https included), never to another scheme, never from
// https down to http, and at most maxRedirects times.
func TestFetcherRedirects(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("ok"))
		default: // /down
			http.Redirect(w, r, "http://"+r.Host+"/ok", http.StatusFound)
		}
	}))
	defer tlsSrv.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("ok"))
		case "/passwd":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		case "/fifo":
			http.Redirect(w, r, "file://"+filepath.ToSlash(fifo), http.StatusFound)
		case "/secret": // inside a local base of the client
			http.Redirect(w, r, "file://"+filepath.ToSlash(dir)+"/secret", http.StatusFound)
		case "/https":
			http.Redirect(w, r, tlsSrv.URL+"/ok", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/hop":
			http.Redirect(w, r, "/ok", http.StatusFound)
		}
	}))
	defer srv.Close()

	// The client New builds: the local reader for the file:// base in
	// front of the network client.
	client := newHTTPClient()
	tr := client.Transport.(*http.Transport)
	tr.TLSClientConfig = &tls.Config{RootCAs: tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	client.Transport = newLocalTransport(tr, srv.URL, "file://"+filepath.ToSlash(dir))

	for _, tc := range []struct {
		url     string
		wantErr string // "" = success with body "ok"
	}{
		{srv.URL + "/hop", ""},
		{srv.URL + "/https", ""},
		{srv.URL + "/passwd", `scheme "file" refused`},
		{srv.URL + "/fifo", `scheme "file" refused`},
		{srv.URL + "/secret", `scheme "file" refused`},
		{tlsSrv.URL + "/down", `scheme "http" refused`},
		{srv.URL + "/loop", "stopped after 5 redirects"},
	} {
		t.Run(strings.TrimPrefix(tc.url, "http://"), func(t *testing.T) {
			f := &httpFetcher{ctx: context.Background(), client: client, timeout: 5 * time.Second}
			type result struct {
				data []byte
				err  error
			}
			done := make(chan result, 1)
			go func() {
				data, err := f.DownloadFile(tc.url, 1<<20, 0)
				done <- result{data, err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(20 * time.Second): // only reached when the fetch wedges (a FIFO opened)
				t.Fatalf("DownloadFile(%s) still blocked", tc.url)
			}
			if tc.wantErr == "" {
				if r.err != nil || string(r.data) != "ok" {
					t.Fatalf("DownloadFile(%s) = %q, %v; want \"ok\", nil", tc.url, r.data, r.err)
				}
				return
			}
			if r.err == nil || !strings.Contains(r.err.Error(), tc.wantErr) {
				t.Fatalf("DownloadFile(%s) = %q, %v; want an error containing %q", tc.url, r.data, r.err, tc.wantErr)
			}
		})
	}
}
