// SPDX-License-Identifier: Apache-2.0

package tuf

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrTargetMismatch is returned (wrapped) when a target's bytes do not match
// its signed length or hashes: the blob is discarded and must never be used.
var ErrTargetMismatch = errors.New("target does not match its signed length and hashes")

// hashLen lists the only hash algorithms accepted in target metadata.
var hashLen = map[string]int{"sha256": sha256.Size, "sha512": sha512.Size}

// checkHashes accepts a target that lists at least one hash, only sha256 and
// sha512, each well-formed, and a non-negative length.
func checkHashes(t Target) error {
	if t.Length < 0 {
		return fmt.Errorf("target %s: negative length %d", t.Name, t.Length)
	}
	if len(t.Hashes) == 0 {
		return fmt.Errorf("target %s: no hashes listed", t.Name)
	}
	for alg, h := range t.Hashes {
		n, ok := hashLen[alg]
		if !ok {
			return fmt.Errorf("target %s: hash algorithm %q is not accepted (only sha256, sha512)", t.Name, alg)
		}
		if b, err := hex.DecodeString(h); err != nil || len(b) != n {
			return fmt.Errorf("target %s: malformed %s hash %q", t.Name, alg, h)
		}
	}
	return nil
}

// blobKey returns the algorithm and hex digest a target is stored under:
// sha256 if listed, else sha512.
func blobKey(t Target) (string, string) {
	if h, ok := t.Hashes["sha256"]; ok {
		return "sha256", strings.ToLower(h)
	}
	return "sha512", strings.ToLower(t.Hashes["sha512"])
}

// BlobPath returns the path a blob with this sha256 hex has in the store.
func (c *Client) BlobPath(sha256hex string) string {
	return filepath.Join(c.cfg.BlobDir, "sha256", strings.ToLower(sha256hex))
}

func (c *Client) blobPathFor(t Target) string {
	alg, h := blobKey(t)
	return filepath.Join(c.cfg.BlobDir, alg, h)
}

// TargetURL returns the URL Fetch downloads t from: with consistent
// snapshots, the file name is prefixed with the target's sha256 (else
// sha512), as "dir/HEX.name".
func (c *Client) TargetURL(t Target) string {
	c.st.mu.Lock()
	consistent := c.st.consistent
	c.st.mu.Unlock()
	return targetURL(c.cfg.TargetsURL, t, consistent)
}

func targetURL(base string, t Target, consistent bool) string {
	name := t.Name
	if consistent {
		_, h := blobKey(t)
		dir, file := "", name
		if i := strings.LastIndexByte(name, '/'); i >= 0 {
			dir, file = name[:i+1], name[i+1:]
		}
		name = dir + h + "." + file
	}
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.TrimSuffix(base, "/") + "/" + strings.Join(segs, "/")
}

// Fetch streams the target into the blob store and returns the blob's path.
// It checks the exact length and every listed hash (constant-time compare),
// writes to a partial file that is fsynced and renamed into place, and fsyncs
// the directory. An interrupted download leaves the partial file, and the
// next Fetch resumes it with an HTTP Range request after re-hashing what is
// on disk (a server that ignores Range is handled by starting over). A valid
// blob already in the store is not downloaded again. Memory use is constant.
//
// progress, if not nil, is called from Fetch's goroutine with the bytes done
// so far and the total.
func (c *Client) Fetch(ctx context.Context, t Target, progress func(done, total int64)) (string, error) {
	if err := checkHashes(t); err != nil {
		return "", fmt.Errorf("fetch: %w", err)
	}
	dst := c.blobPathFor(t)
	release, err := c.lockBlob(ctx, dst)
	if err != nil {
		return "", fmt.Errorf("fetch %s: %w", t.Name, err)
	}
	defer release()

	switch err := VerifyFile(dst, t); {
	case err == nil:
		c.log.Debug("fetch: blob already in store", "target", t.Name, "path", dst)
		if progress != nil {
			progress(t.Length, t.Length)
		}
		return dst, nil
	case errors.Is(err, fs.ErrNotExist):
	default:
		c.log.Warn("fetch: stored blob is invalid, downloading again", "target", t.Name, "err", err)
		if err := os.Remove(dst); err != nil {
			return "", fmt.Errorf("fetch %s: %w", t.Name, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return "", fmt.Errorf("fetch %s: %w", t.Name, err)
	}
	part := dst + ".partial"
	if err := c.download(ctx, c.TargetURL(t), t, part, progress); err != nil {
		return "", fmt.Errorf("fetch %s: %w", t.Name, err)
	}
	if err := os.Rename(part, dst); err != nil {
		return "", fmt.Errorf("fetch %s: %w", t.Name, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return "", fmt.Errorf("fetch %s: %w", t.Name, err)
	}
	return dst, nil
}

// lockBlob serializes Fetches of the same blob.
func (c *Client) lockBlob(ctx context.Context, path string) (func(), error) {
	for {
		c.st.mu.Lock()
		ch, busy := c.st.inflight[path]
		if !busy {
			ch = make(chan struct{})
			c.st.inflight[path] = ch
			c.st.mu.Unlock()
			return func() {
				c.st.mu.Lock()
				delete(c.st.inflight, path)
				c.st.mu.Unlock()
				close(ch)
			}, nil
		}
		c.st.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// DownloadTo streams target t from rawURL into the file at path (which may
// hold a partial download to resume), and leaves it there, fsynced, only if
// its length and hashes match. It is the engine of Fetch, exported for the
// conformance command line, which stores targets under their own names.
func (c *Client) DownloadTo(ctx context.Context, rawURL string, t Target, path string, progress func(done, total int64)) error {
	if err := checkHashes(t); err != nil {
		return err
	}
	return c.download(ctx, rawURL, t, path, progress)
}

func (c *Client) download(ctx context.Context, rawURL string, t Target, part string, progress func(done, total int64)) error {
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	hs := newHashers(t)
	have, err := resumePoint(f, t, hs)
	if err != nil {
		return err
	}
	if have < t.Length {
		if have > 0 {
			c.log.Info("fetch: resuming partial download", "target", t.Name, "have", have, "total", t.Length)
		}
		have, err = c.get(ctx, rawURL, t, f, hs, have, progress)
		if err != nil {
			return err
		}
	}
	if progress != nil {
		progress(have, t.Length)
	}
	if err := hs.verify(t); err != nil {
		f.Close()
		os.Remove(part)
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// resumePoint re-hashes what a partial file holds and returns its length. A
// partial file longer than the target is discarded.
func resumePoint(f *os.File, t Target, hs *hashers) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	n := st.Size()
	if n > t.Length {
		if err := f.Truncate(0); err != nil {
			return 0, err
		}
		n = 0
	}
	if n > 0 {
		if _, err := copyParallel(context.Background(), hs.writers(), io.NewSectionReader(f, 0, n), nil); err != nil {
			return 0, fmt.Errorf("re-hash partial download: %w", err)
		}
	}
	if _, err := f.Seek(n, io.SeekStart); err != nil {
		return 0, err
	}
	return n, nil
}

// get downloads the bytes from offset have on and appends them to f, hashing
// them. It returns the number of bytes f holds.
func (c *Client) get(ctx context.Context, rawURL string, t Target, f *os.File, hs *hashers, have int64, progress func(done, total int64)) (int64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := c.cfg.HTTPTimeout
	timer := time.AfterFunc(idle, func() { cancel(fmt.Errorf("no data for %s", idle)) })
	defer timer.Stop()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return have, err
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return have, withCause(ctx, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		if start, ok := contentRangeStart(resp.Header.Get("Content-Range")); !ok || start != have {
			return have, fmt.Errorf("get %s: Content-Range %q does not start at %d", rawURL, resp.Header.Get("Content-Range"), have)
		}
	case resp.StatusCode == http.StatusOK:
		if have > 0 {
			c.log.Info("fetch: server ignored Range, starting over", "target", t.Name)
			if err := restart(f, hs, t); err != nil {
				return 0, err
			}
			have = 0
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		// The partial file does not fit what the server has: start over next time.
		if err := restart(f, hs, t); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("get %s: range from %d not satisfiable, partial download discarded", rawURL, have)
	default:
		return have, fmt.Errorf("get %s: %s", rawURL, resp.Status)
	}
	if resp.ContentLength > t.Length-have {
		return have, fmt.Errorf("get %s: server announces %d bytes, at most %d expected: %w", rawURL, resp.ContentLength, t.Length-have, ErrTargetMismatch)
	}
	body := &idleReader{r: resp.Body, timer: timer, idle: idle}
	total := t.Length
	start := have
	var onChunk func(int64)
	if progress != nil {
		onChunk = func(n int64) { progress(start+n, total) }
	}
	// Read one byte more than needed: a longer body is an endless-data attack.
	n, err := copyParallel(ctx, append(hs.writers(), f), io.LimitReader(body, t.Length-have+1), onChunk)
	have += n
	if err != nil {
		return have, fmt.Errorf("get %s: interrupted at %d of %d bytes: %w", rawURL, have, t.Length, withCause(ctx, err))
	}
	if have > t.Length {
		if err := restart(f, hs, t); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("get %s: server sent more than the signed length %d: %w", rawURL, t.Length, ErrTargetMismatch)
	}
	if have < t.Length {
		return have, fmt.Errorf("get %s: body ended at %d of %d bytes", rawURL, have, t.Length)
	}
	return have, nil
}

func withCause(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
		return fmt.Errorf("%w (%v)", err, cause)
	}
	return err
}

func restart(f *os.File, hs *hashers, t Target) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	*hs = *newHashers(t)
	return nil
}

// contentRangeStart parses "bytes START-END/SIZE".
func contentRangeStart(h string) (int64, bool) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, false
	}
	startStr, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(startStr, 10, 64)
	return n, err == nil
}

// idleReader resets an inactivity timer on every read.
type idleReader struct {
	r     io.Reader
	timer *time.Timer
	idle  time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.timer.Reset(r.idle)
	}
	return n, err
}

// hashers computes every hash a target lists.
type hashers struct {
	algs []string
	hs   []hash.Hash
}

func newHashers(t Target) *hashers {
	h := &hashers{}
	for alg := range t.Hashes {
		h.algs = append(h.algs, alg)
	}
	slices.Sort(h.algs)
	for _, alg := range h.algs {
		switch alg {
		case "sha256":
			h.hs = append(h.hs, sha256.New())
		case "sha512":
			h.hs = append(h.hs, sha512.New())
		}
	}
	return h
}

func (h *hashers) writers() []io.Writer {
	ws := make([]io.Writer, len(h.hs))
	for i, x := range h.hs {
		ws[i] = x
	}
	return ws
}

// verify compares every digest in constant time. checkHashes has already
// accepted t, so every algorithm has a hasher.
func (h *hashers) verify(t Target) error {
	if len(h.hs) != len(t.Hashes) || len(h.hs) == 0 {
		return fmt.Errorf("target %s: unsupported hash algorithms: %w", t.Name, ErrTargetMismatch)
	}
	for i, alg := range h.algs {
		want, err := hex.DecodeString(t.Hashes[alg])
		if err != nil {
			return fmt.Errorf("target %s: malformed %s hash: %w", t.Name, alg, ErrTargetMismatch)
		}
		got := h.hs[i].Sum(nil)
		if subtle.ConstantTimeCompare(got, want) != 1 {
			return fmt.Errorf("target %s: %s is %x, want %x: %w", t.Name, alg, got, want, ErrTargetMismatch)
		}
	}
	return nil
}

// VerifyFile re-hashes a file at rest against the target's length and every
// listed hash. A missing file is reported with an error wrapping
// fs.ErrNotExist; a mismatch with one wrapping ErrTargetMismatch.
func VerifyFile(path string, t Target) error {
	if err := checkHashes(t); err != nil {
		return fmt.Errorf("verify %s: %w", path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("verify %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("verify %s: %w", path, err)
	}
	if !st.Mode().IsRegular() || st.Size() != t.Length {
		return fmt.Errorf("verify %s: size %d, want %d: %w", path, st.Size(), t.Length, ErrTargetMismatch)
	}
	hs := newHashers(t)
	n, err := copyParallel(context.Background(), hs.writers(), io.LimitReader(f, t.Length+1), nil)
	if err != nil {
		return fmt.Errorf("verify %s: %w", path, err)
	}
	if n != t.Length {
		return fmt.Errorf("verify %s: read %d bytes, want %d: %w", path, n, t.Length, ErrTargetMismatch)
	}
	if err := hs.verify(t); err != nil {
		return fmt.Errorf("verify %s: %w", path, err)
	}
	return nil
}
