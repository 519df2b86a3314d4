// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"
)

// httpFetcher is go-tuf's metadata Fetcher, bound to the context of one
// refresh. It never retries (the next cycle does), answers a missing file with
// ErrDownloadHTTP{StatusCode: 404} (which ends root probing) and reads at most
// maxLength bytes. With cond set, timestamp.json is asked for conditionally
// (see conditional).
type httpFetcher struct {
	ctx     context.Context
	client  *http.Client
	timeout time.Duration
	cond    *conditional // nil: every request is a plain GET
}

var _ fetcher.Fetcher = (*httpFetcher)(nil)

// conditional makes an idle refresh cheap: it remembers the validators
// (ETag, Last-Modified) of the last 200 answer for timestamp.json and the
// sha256 of its body, asks again with If-None-Match / If-Modified-Since, and
// answers a 304 with the trusted timestamp.json of the metadata cache, so
// go-tuf sees the version it already trusts. Only timestamp.json: every other
// file go-tuf fetches is versioned (immutable, fetched only when needed), and
// the next root's probe stays a plain GET as the TUF specification asks.
//
// A 304 that hides a newer timestamp is the freeze attack that TUF already
// bounds by expiry: the cached bytes go through go-tuf's checks like a
// download, so an expired timestamp still fails the refresh. A repository
// (or anyone between) able to answer 304 could as well replay the old file
// with a 200.
//
// The cached bytes are used only when they are exactly the body of the 200
// the validators came with (same sha256), for the same URL, and still parse
// as a timestamp; otherwise the request goes out without validators. Nor
// are validators kept from an answer served within racyWindow of the file's
// Last-Modified (see racy). They live in memory: the first refresh after a
// start is a plain GET.
type conditional struct {
	url  string // the timestamp.json URL the fetcher conditions
	path string // trusted timestamp.json in the metadata cache

	mu           sync.Mutex
	seenURL      string // URL of the 200 the validators below came with
	etag         string
	lastModified string
	sum          [sha256.Size]byte // sha256 of that 200's body
}

// newConditional conditions timestamp.json under metadataURL, answering 304s
// from metadataDir.
func newConditional(metadataURL, metadataDir string) *conditional {
	u := metadataURL
	if len(u) == 0 || u[len(u)-1] != '/' {
		u += "/" // as go-tuf builds its URLs
	}
	return &conditional{url: u + "timestamp.json", path: filepath.Join(metadataDir, "timestamp.json")}
}

// prepare returns the cached bytes to answer a 304 with and sets the
// validators on req, or returns nil (req unchanged) when url is not the
// conditioned one or nothing consistent is cached.
func (c *conditional) prepare(url string, req *http.Request) []byte {
	if c == nil || url != c.url {
		return nil
	}
	c.mu.Lock()
	seenURL, etag, lastModified, sum := c.seenURL, c.etag, c.lastModified, c.sum
	c.mu.Unlock()
	if seenURL != url || (etag == "" && lastModified == "") {
		return nil
	}
	data, err := os.ReadFile(c.path)
	if err != nil || sha256.Sum256(data) != sum || checkMetadataFile(metadata.TIMESTAMP, data) != nil {
		return nil
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	if lastModified != "" {
		req.Header.Set("If-Modified-Since", lastModified)
	}
	return data
}

// remember records the validators of a 200 answer for url (cleared when it
// carries none).
func (c *conditional) remember(url string, resp *http.Response, body []byte) {
	if c == nil || url != c.url {
		return
	}
	etag, lastModified := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if lastModified != "" && racy(lastModified, resp.Header.Get("Date")) {
		etag, lastModified = "", ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seenURL, c.etag, c.lastModified = url, etag, lastModified
	c.sum = sha256.Sum256(body)
}

// racyWindow is how long before the server's Date a file must have been
// modified for validators derived from its mtime to be trusted.
const racyWindow = 2 * time.Second

// racy reports whether validators that come with lastModified may not tell
// a later change apart: HTTP dates (and nginx's ETag, mtime in seconds and
// size) have a resolution of one second, so a timestamp re-signed in the
// second it was served, at the same size (the usual case), would keep them
// and a 304 would hide it until the next change. Validators are trusted only
// when the file was at least racyWindow older than the answer (as git treats
// a "racily clean" index entry); a missing or unparsable Date counts as racy.
func racy(lastModified, date string) bool {
	lm, err1 := http.ParseTime(lastModified)
	d, err2 := http.ParseTime(date)
	return err1 != nil || err2 != nil || d.Sub(lm) < racyWindow
}

// forget drops the validators after an answer for url that is neither
// 200 nor a usable 304, so that the next request is a plain GET.
func (c *conditional) forget(url string) {
	if c == nil || url != c.url {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seenURL, c.etag, c.lastModified = "", "", ""
}

func (f *httpFetcher) DownloadFile(url string, maxLength int64, _ time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(f.ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, &metadata.ErrDownload{Msg: err.Error()}
	}
	cached := f.cond.prepare(url, req)
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified && cached != nil && int64(len(cached)) <= maxLength {
		return cached, nil
	}
	if resp.StatusCode != http.StatusOK {
		f.cond.forget(url)
		return nil, &metadata.ErrDownloadHTTP{StatusCode: resp.StatusCode, URL: url}
	}
	if resp.ContentLength > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s: content length %d exceeds limit %d", url, resp.ContentLength, maxLength)}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxLength+1))
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", url, err)
	}
	if int64(len(data)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s: more than %d bytes", url, maxLength)}
	}
	f.cond.remember(url, resp, data)
	return data, nil
}

// maxRedirects bounds the redirects one network request follows.
const maxRedirects = 5

// newHTTPClient returns the client for network fetches, with its own
// transport (http.DefaultClient is never modified). It speaks http and https
// only: a local repository or bundle (file:// URLs) is read by
// localTransport, which New and WithSource put in front of this transport.
// Redirects go through checkRedirect.
func newHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &http.Client{Transport: tr, CheckRedirect: checkRedirect}
}

// checkRedirect follows at most maxRedirects redirects, each keeping the
// scheme or going from http to https. A repository may thus never send the
// client to a local file (file:// would be answered from the disk, where a
// named pipe blocks and /etc/passwd leaks through the error) nor downgrade
// https to http.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("redirect to %s: stopped after %d redirects", req.URL.Redacted(), maxRedirects)
	}
	from, to := via[len(via)-1].URL.Scheme, req.URL.Scheme
	switch {
	case from == to && (to == "http" || to == "https"):
	case from == "http" && to == "https":
	default:
		return fmt.Errorf("redirect from %s to %s: scheme %q refused (a redirect may keep the scheme or go from http to https)", from, req.URL.Redacted(), to)
	}
	return nil
}
