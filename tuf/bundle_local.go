// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/fieldgate/fieldgate/tuf/internal/localfile"
)

// maxBundleTimestamp bounds the timestamp.json read to identify a bundle:
// go-tuf's own limit for timestamp metadata (config.New's default).
const maxBundleTimestamp = 16384

// BundleID returns an identifier of the offline bundle in dir: the sha256
// of its metadata/timestamp.json, which changes with every bundle exported
// from a new timestamp. It reads that file like ImportBundle does (a
// regular file reached without symbolic links, at most 16 KiB, never
// blocking), so a watcher polling an import directory cannot be stalled by
// what is on the medium. A missing file is reported with an error wrapping
// fs.ErrNotExist.
func BundleID(dir string) (string, error) {
	data, err := localfile.ReadFile(dir, "metadata/timestamp.json", maxBundleTimestamp)
	if err != nil {
		return "", fmt.Errorf("offline bundle %s: %w", dir, err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// localTransport answers file:// requests below its base directories
// through localfile: regular files only, no symbolic link followed below a
// base, no blocking open, the body bounded by the size the file had when
// opened, and the request's context checked on every read. A missing file
// is a 404 (which ends go-tuf's root probing); an entry that may not be read
// is an error naming its path. Other schemes go to next.
//
// It replaces net/http's file transport for bundles, which follows symbolic
// links and waits forever on a named pipe without looking at the context.
type localTransport struct {
	bases []string // cleaned absolute paths of the file:// base URLs
	next  http.RoundTripper

	mu      sync.Mutex
	refused error // the first entry refused, kept for refusals go-tuf only logs
}

var _ http.RoundTripper = (*localTransport)(nil)

// newLocalTransport returns a transport reading the file:// URLs among
// baseURLs locally and passing everything else to next.
func newLocalTransport(next http.RoundTripper, baseURLs ...string) *localTransport {
	t := &localTransport{next: next}
	for _, raw := range baseURLs {
		if u, err := url.Parse(raw); err == nil && u.Scheme == "file" && u.Path != "" {
			t.bases = append(t.bases, path.Clean(u.Path))
		}
	}
	return t
}

func (t *localTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "file" {
		if t.next == nil {
			return http.DefaultTransport.RoundTrip(req)
		}
		return t.next.RoundTrip(req)
	}
	if req.Body != nil {
		req.Body.Close()
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return nil, fmt.Errorf("%s %s: only GET and HEAD", req.Method, req.URL)
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	base, rel, ok := t.split(req.URL.Path)
	if !ok {
		return nil, fmt.Errorf("%s: outside the local directories %s: %w", req.URL.Path, strings.Join(t.bases, ", "), localfile.ErrRefused)
	}
	f, err := localfile.Open(base, rel)
	if errors.Is(err, fs.ErrNotExist) {
		return t.response(req, http.StatusNotFound, 0, http.NoBody), nil
	}
	if err != nil {
		if errors.Is(err, localfile.ErrRefused) {
			t.mu.Lock()
			if t.refused == nil {
				t.refused = err
			}
			t.mu.Unlock()
		}
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	size, start := st.Size(), int64(0)
	status := http.StatusOK
	if from, ok := rangeFrom(req.Header.Get("Range")); ok {
		if from >= size {
			f.Close()
			resp := t.response(req, http.StatusRequestedRangeNotSatisfiable, 0, http.NoBody)
			resp.Header.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
			return resp, nil
		}
		if _, err := f.Seek(from, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
		start, status = from, http.StatusPartialContent
	}
	if req.Method == http.MethodHead {
		f.Close()
		return t.response(req, status, size-start, http.NoBody), nil
	}
	resp := t.response(req, status, size-start, &localBody{ctx: req.Context(), r: io.LimitReader(f, size-start), f: f})
	if status == http.StatusPartialContent {
		resp.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, size-1, size))
	}
	return resp, nil
}

// firstRefused returns the error for the first entry refused, or nil. A
// delegated role that cannot be read is only listed in Snapshot.Rejected by
// a refresh; for a bundle it is a reason to refuse the whole bundle.
func (t *localTransport) firstRefused() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.refused
}

// split returns the base directory holding p and p relative to it.
func (t *localTransport) split(p string) (base, rel string, ok bool) {
	for _, b := range t.bases {
		if rel, ok := strings.CutPrefix(p, strings.TrimSuffix(b, "/")+"/"); ok {
			return b, rel, true
		}
	}
	return "", "", false
}

func (t *localTransport) response(req *http.Request, status int, length int64, body io.ReadCloser) *http.Response {
	return &http.Response{
		Status: strconv.Itoa(status) + " " + http.StatusText(status), StatusCode: status,
		Proto: "HTTP/1.0", ProtoMajor: 1, Header: http.Header{}, ContentLength: length,
		Body: body, Request: req,
	}
}

// rangeFrom parses "bytes=N-", the only Range form Fetch sends.
func rangeFrom(h string) (int64, bool) {
	rest, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return 0, false
	}
	from, ok := strings.CutSuffix(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(from, 10, 64)
	return n, err == nil && n >= 0
}

// localBody is a local file's response body; it stops at the context's end.
type localBody struct {
	ctx context.Context
	r   io.Reader
	f   io.Closer
}

func (b *localBody) Read(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	return b.r.Read(p)
}

func (b *localBody) Close() error { return b.f.Close() }
