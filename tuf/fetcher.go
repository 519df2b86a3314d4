// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"
)

// httpFetcher is go-tuf's metadata Fetcher, bound to the context of one
// refresh. It never retries (the next cycle does), answers a missing file with
// ErrDownloadHTTP{StatusCode: 404} (which ends root probing) and reads at most
// maxLength bytes.
type httpFetcher struct {
	ctx     context.Context
	client  *http.Client
	timeout time.Duration
}

var _ fetcher.Fetcher = (*httpFetcher)(nil)

func (f *httpFetcher) DownloadFile(url string, maxLength int64, _ time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(f.ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, &metadata.ErrDownload{Msg: err.Error()}
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
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
