// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
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

// timestampServer serves timestamp.json (body, with an ETag and a
// Last-Modified) and 404 for anything else, answering 304 to a matching
// If-None-Match, and records the validators of every request.
type timestampServer struct {
	*httptest.Server
	body, etag string
	modified   string   // Last-Modified
	got        []string // per request: "path If-None-Match|If-Modified-Since"
}

func newTimestampServer(t *testing.T, body string) *timestampServer {
	s := &timestampServer{body: body, etag: `"v1"`, modified: "Mon, 02 Jan 2006 15:04:05 GMT"}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.got = append(s.got, r.URL.Path+" "+r.Header.Get("If-None-Match")+"|"+r.Header.Get("If-Modified-Since"))
		if r.URL.Path != "/metadata/timestamp.json" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("ETag", s.etag)
		w.Header().Set("Last-Modified", s.modified)
		if r.Header.Get("If-None-Match") == s.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write([]byte(s.body))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *timestampServer) last() string { return s.got[len(s.got)-1] }

// timestampBytes returns a (unsigned) timestamp.json of version v.
func timestampBytes(t *testing.T, v int64) []byte {
	t.Helper()
	md := metadata.Timestamp(time.Now().Add(time.Hour))
	md.Signed.Version = v
	data, err := md.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestFetcherConditionalTimestamp: timestamp.json is asked for with the
// validators of the last 200 and a 304 returns exactly the cached file;
// every inconsistency falls back to a plain GET, and other files are never
// conditional.
func TestFetcherConditionalTimestamp(t *testing.T) {
	ts1 := timestampBytes(t, 1)
	srv := newTimestampServer(t, string(ts1))
	dir := t.TempDir()
	cached := filepath.Join(dir, "timestamp.json")
	cond := newConditional(srv.URL+"/metadata", dir)
	f := &httpFetcher{ctx: context.Background(), client: newHTTPClient(), timeout: 5 * time.Second, cond: cond}
	tsURL := srv.URL + "/metadata/timestamp.json"
	get := func(url string) ([]byte, error) { return f.DownloadFile(url, 1<<14, 0) }
	const plain = "/metadata/timestamp.json |"
	const conditional = `/metadata/timestamp.json "v1"|Mon, 02 Jan 2006 15:04:05 GMT`

	// First fetch: nothing known, plain GET.
	data, err := get(tsURL)
	if err != nil || string(data) != string(ts1) || srv.last() != plain {
		t.Fatalf("first fetch = %q, %v, request %q; want the file by a plain GET", data, err, srv.last())
	}
	// go-tuf did not persist it (yet): no cached bytes, plain GET.
	if _, err := get(tsURL); err != nil || srv.last() != plain {
		t.Fatalf("fetch without a cached file: %v, request %q; want a plain GET", err, srv.last())
	}
	// Persisted as go-tuf does: conditional, 304 answered with the file.
	if err := os.WriteFile(cached, ts1, 0o644); err != nil {
		t.Fatal(err)
	}
	data, err = get(tsURL)
	if err != nil || string(data) != string(ts1) || srv.last() != conditional {
		t.Fatalf("idle fetch = %q, %v, request %q; want the cached file after %q", data, err, srv.last(), conditional)
	}
	// The root probe is never conditional, and its 404 keeps the validators.
	var httpErr *metadata.ErrDownloadHTTP
	if _, err := get(srv.URL + "/metadata/2.root.json"); !errors.As(err, &httpErr) || httpErr.StatusCode != 404 || srv.last() != "/metadata/2.root.json |" {
		t.Fatalf("root probe: %v, request %q; want a plain GET answered 404", err, srv.last())
	}
	if _, err := get(tsURL); err != nil || srv.last() != conditional {
		t.Fatalf("fetch after the root probe: %v, request %q; want %q", err, srv.last(), conditional)
	}
	// The cached file is no longer the 200's body (another valid timestamp):
	// plain GET.
	if err := os.WriteFile(cached, timestampBytes(t, 2), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := get(tsURL); err != nil || srv.last() != plain {
		t.Fatalf("fetch with another cached file: %v, request %q; want a plain GET", err, srv.last())
	}
	// Same URL path on another server (another repository): plain GET there.
	other := newTimestampServer(t, string(ts1))
	if err := os.WriteFile(cached, ts1, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := get(other.URL + "/metadata/timestamp.json"); err != nil || other.last() != plain {
		t.Fatalf("fetch from another repository: %v, request %q; want a plain GET", err, other.last())
	}
	if _, err := get(tsURL); err != nil || srv.last() != conditional {
		t.Fatalf("fetch after another repository: %v, request %q; want %q", err, srv.last(), conditional)
	}
	// A cached file that does not parse (the 200 carried garbage and it was
	// written as is): plain GET.
	srv.body, srv.etag = "not json", `"v2"`
	if _, err := get(tsURL); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cached, []byte("not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := get(tsURL); err != nil || srv.last() != plain {
		t.Fatalf("fetch with an unparsable cached file: %v, request %q; want a plain GET", err, srv.last())
	}
}

// TestFetcherUnaskedNotModified: a 304 to a request that carried no
// validators (or a fetcher without conditional requests) is an error, never
// an empty file.
func TestFetcherUnaskedNotModified(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotModified)
	}))
	defer srv.Close()
	dir := t.TempDir()
	for _, cond := range []*conditional{nil, newConditional(srv.URL+"/metadata/", dir)} {
		f := &httpFetcher{ctx: context.Background(), client: newHTTPClient(), timeout: 5 * time.Second, cond: cond}
		data, err := f.DownloadFile(srv.URL+"/metadata/timestamp.json", 1<<14, 0)
		var httpErr *metadata.ErrDownloadHTTP
		if !errors.As(err, &httpErr) || httpErr.StatusCode != http.StatusNotModified {
			t.Errorf("DownloadFile (conditional %v) = %q, %v; want ErrDownloadHTTP 304", cond != nil, data, err)
		}
	}
}

// TestFetcherRacyValidators: validators of a file served within racyWindow
// of its Last-Modified are not used (a change in the same second would keep
// them); once the file is older, they are.
func TestFetcherRacyValidators(t *testing.T) {
	ts1 := timestampBytes(t, 1)
	srv := newTimestampServer(t, string(ts1))
	srv.modified = time.Now().UTC().Format(http.TimeFormat)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "timestamp.json"), ts1, 0o644); err != nil {
		t.Fatal(err)
	}
	f := &httpFetcher{ctx: context.Background(), client: newHTTPClient(), timeout: 5 * time.Second, cond: newConditional(srv.URL+"/metadata", dir)}
	tsURL := srv.URL + "/metadata/timestamp.json"
	for range 2 {
		if _, err := f.DownloadFile(tsURL, 1<<14, 0); err != nil {
			t.Fatal(err)
		}
	}
	if srv.last() != "/metadata/timestamp.json |" {
		t.Fatalf("request after a racy answer: %q, want a plain GET", srv.last())
	}
	srv.modified = time.Now().Add(-racyWindow - time.Second).UTC().Format(http.TimeFormat)
	for range 2 {
		if _, err := f.DownloadFile(tsURL, 1<<14, 0); err != nil {
			t.Fatal(err)
		}
	}
	if want := `/metadata/timestamp.json "v1"|` + srv.modified; srv.last() != want {
		t.Fatalf("request after an answer for an older file: %q, want %q", srv.last(), want)
	}
	for _, tc := range []struct{ lm, date string }{
		{"Mon, 02 Jan 2006 15:04:05 GMT", ""},
		{"Mon, 02 Jan 2006 15:04:05 GMT", "Mon, 02 Jan 2006 15:04:06 GMT"},
		{"yesterday", "Mon, 02 Jan 2006 15:04:05 GMT"},
	} {
		if !racy(tc.lm, tc.date) {
			t.Errorf("racy(%q, %q) = false, want true", tc.lm, tc.date)
		}
	}
	if racy("Mon, 02 Jan 2006 15:04:05 GMT", "Mon, 02 Jan 2006 15:04:07 GMT") {
		t.Error("racy(a file 2s older than the answer) = true, want false")
	}
}
