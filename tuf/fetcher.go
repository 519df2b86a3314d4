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

// newHTTPClient returns a client with its own transport (http.DefaultClient
// is never modified) that also reads file:// URLs, so a repository copied to a
// local directory (an offline bundle) is read through the same code path.
func newHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.RegisterProtocol("file", http.NewFileTransport(http.Dir("/")))
	return &http.Client{Transport: tr}
}
