// SPDX-License-Identifier: Apache-2.0

package tuf_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
)

// countingHandler counts the requests it serves and the body bytes it writes.
type countingHandler struct {
	h             http.Handler
	reqs, written atomic.Int64
}

func (c *countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.reqs.Add(1)
	c.h.ServeHTTP(&countingWriter{ResponseWriter: w, n: &c.written}, r)
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}

// manyRolesRepo publishes a repository whose top-level targets role
// delegates to 50 roles, each trusted for its own directory, except roles
// r10 and r40, which are both trusted for "acme-io16/*": only those two can
// matter for the target acme-io16/fw.bin (listed by r40; r10 lists an older
// one), the others hold one small target each.
func manyRolesRepo(tb testing.TB) (*countingHandler, *httptest.Server, string) {
	pub, err := publish.Init(filepath.Join(tb.TempDir(), "repo"), publish.Options{Keys: publish.KeyAccess{InsecurePlaintextKeys: true}})
	if err != nil {
		tb.Fatal(err)
	}
	for i := range 50 {
		role, dir := fmt.Sprintf("r%02d", i), fmt.Sprintf("vendor%02d", i)
		name := dir + "/fw.bin"
		if i == 10 || i == 40 {
			dir = "acme-io16"
			name = map[int]string{10: "acme-io16/fw-old.bin", 40: "acme-io16/fw.bin"}[i]
		}
		if err := pub.Delegate(role, publish.Delegation{Paths: []string{dir + "/*"}}); err != nil {
			tb.Fatal(err)
		}
		if err := pub.AddTargetBytesTo(role, name, []byte("image of "+name), tuf.Meta{Hardware: []string{dir + "-hw"}, Version: "1.0"}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := pub.Commit(); err != nil {
		tb.Fatal(err)
	}
	h := &countingHandler{h: pub.Handler()}
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return h, srv, pub.RootPath()
}

// BenchmarkRefreshManyRoles reports the HTTP requests and response body
// bytes of one refresh from an empty cache (the daemon's Refresh, which
// lists every target) and of one download of acme-io16/fw.bin by name (the
// conformance command line's path), against manyRolesRepo.
func BenchmarkRefreshManyRoles(b *testing.B) {
	h, srv, root := manyRolesRepo(b)
	var paths []string // what the gateway serves; nil: everything
	newClient := func() *tuf.Client {
		dir := b.TempDir()
		c, err := tuf.New(tuf.Config{
			MetadataURL: srv.URL + "/metadata", TargetsURL: srv.URL + "/targets",
			MetadataDir: filepath.Join(dir, "md"), BlobDir: filepath.Join(dir, "blobs"), TrustedRoot: root,
			Paths: paths,
		}, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	measure := func(b *testing.B, op func(*tuf.Client) error) {
		var reqs, bytes int64
		for range b.N {
			b.StopTimer()
			c := newClient()
			r0, w0 := h.reqs.Load(), h.written.Load()
			b.StartTimer()
			if err := op(c); err != nil {
				b.Fatal(err)
			}
			reqs += h.reqs.Load() - r0
			bytes += h.written.Load() - w0
		}
		b.ReportMetric(float64(reqs)/float64(b.N), "requests/op")
		b.ReportMetric(float64(bytes)/float64(b.N), "resp-bytes/op")
	}
	b.Run("refresh", func(b *testing.B) {
		measure(b, func(c *tuf.Client) error {
			snap, err := c.Refresh(context.Background())
			if err == nil && len(snap.Targets) != 50 {
				err = fmt.Errorf("Refresh() = %d targets, want 50", len(snap.Targets))
			}
			return err
		})
	})
	b.Run("download-by-name", func(b *testing.B) {
		measure(b, func(c *tuf.Client) error {
			return c.DownloadTargets(context.Background(), b.TempDir(), []string{"acme-io16/fw.bin"})
		})
	})
	b.Run("refresh-served-paths", func(b *testing.B) {
		paths = []string{"acme-io16/*"}
		defer func() { paths = nil }()
		measure(b, func(c *tuf.Client) error {
			snap, err := c.Refresh(context.Background())
			if err == nil && len(snap.Targets) != 2 {
				err = fmt.Errorf("Refresh() = %d targets, want the 2 below acme-io16/", len(snap.Targets))
			}
			return err
		})
	})
}

// TestRefreshFetchesOnlyServedRoles: a gateway that serves acme-io16/*
// reads the two roles delegated those paths and none of the other 48, and
// still sees both targets below acme-io16/.
func TestRefreshFetchesOnlyServedRoles(t *testing.T) {
	h, srv, root := manyRolesRepo(t)
	dir := t.TempDir()
	c, err := tuf.New(tuf.Config{
		MetadataURL: srv.URL + "/metadata", TargetsURL: srv.URL + "/targets",
		MetadataDir: filepath.Join(dir, "md"), BlobDir: filepath.Join(dir, "blobs"), TrustedRoot: root,
		Paths: []string{"acme-io16/*"},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r0 := h.reqs.Load()
	snap, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tg := range snap.Targets {
		names = append(names, tg.Name)
	}
	slices.Sort(names)
	if want := []string{"acme-io16/fw-old.bin", "acme-io16/fw.bin"}; !slices.Equal(names, want) {
		t.Errorf("targets = %v, want %v", names, want)
	}
	// root probe, timestamp, snapshot, targets, r10, r40: not 54.
	if n := h.reqs.Load() - r0; n > 8 {
		t.Errorf("refresh made %d requests, want at most 8 (the two served roles, not all 50)", n)
	}
}
