// SPDX-License-Identifier: Apache-2.0

package tuf_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/fieldgate/fieldgate/tuf"
	"github.com/fieldgate/fieldgate/tuf/publish"
)

// Benchmark sizes: 64 MiB by default; FIELDGATE_BENCH_SIZE (bytes, or with
// a MiB/GiB suffix) for the 256 MiB and 1 GiB runs of issue 3.
func benchSize(tb testing.TB) int64 {
	s := os.Getenv("FIELDGATE_BENCH_SIZE")
	if s == "" {
		return 64 << 20
	}
	mult := int64(1)
	switch {
	case len(s) > 3 && s[len(s)-3:] == "MiB":
		mult, s = 1<<20, s[:len(s)-3]
	case len(s) > 3 && s[len(s)-3:] == "GiB":
		mult, s = 1<<30, s[:len(s)-3]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		tb.Fatalf("FIELDGATE_BENCH_SIZE=%q: want a positive size", os.Getenv("FIELDGATE_BENCH_SIZE"))
	}
	return n * mult
}

// writeBigFile writes n pseudo-random bytes to path without holding them in memory.
func writeBigFile(tb testing.TB, path string, n int64) {
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	buf := payload(1<<20, 9)
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := f.Write(buf[:k]); err != nil {
			tb.Fatal(err)
		}
		buf[0]++
		n -= k
	}
}

type benchRepo struct {
	srv      *httptest.Server
	rootPath string
	target   tuf.Target
	url      string // hash-prefixed target URL
}

func newBenchRepo(tb testing.TB, size int64) *benchRepo {
	dir := tb.TempDir()
	pub, err := publish.Init(filepath.Join(dir, "repo"), publish.Options{Keys: publish.KeyAccess{InsecurePlaintextKeys: true}})
	if err != nil {
		tb.Fatal(err)
	}
	src := filepath.Join(dir, "fw.bin")
	writeBigFile(tb, src, size)
	if err := pub.AddTarget("fw.bin", src, tuf.Meta{Hardware: []string{"hw"}, Version: "1.0"}); err != nil {
		tb.Fatal(err)
	}
	os.Remove(src)
	if err := pub.Commit(); err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(pub.Handler())
	tb.Cleanup(srv.Close)
	br := &benchRepo{srv: srv, rootPath: pub.RootPath()}
	c := br.client(tb, tb.TempDir())
	snap, err := c.Refresh(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	br.target = snap.Targets[0]
	br.url = c.TargetURL(br.target)
	return br
}

func (br *benchRepo) client(tb testing.TB, dir string) *tuf.Client {
	c, err := tuf.New(tuf.Config{
		MetadataURL: br.srv.URL + "/metadata", TargetsURL: br.srv.URL + "/targets",
		MetadataDir: filepath.Join(dir, "md"), BlobDir: filepath.Join(dir, "blobs"), TrustedRoot: br.rootPath,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func reportMBps(b *testing.B, size int64) {
	b.ReportMetric(float64(size)*float64(b.N)/(1<<20)/b.Elapsed().Seconds(), "MiB/s")
}

// BenchmarkFetch measures fieldgate's streaming download + verify + fsync.
func BenchmarkFetch(b *testing.B) {
	size := benchSize(b)
	br := newBenchRepo(b, size)
	dir := b.TempDir()
	c := br.client(b, dir)
	if _, err := c.Refresh(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		os.Remove(c.BlobPath(br.target.SHA256()))
		b.StartTimer()
		if _, err := c.Fetch(context.Background(), br.target, nil); err != nil {
			b.Fatal(err)
		}
	}
	reportMBps(b, size)
}

func newGoTUFUpdater(tb testing.TB, br *benchRepo, dir string) *updater.Updater {
	root, err := os.ReadFile(br.rootPath)
	if err != nil {
		tb.Fatal(err)
	}
	cfg, err := config.New(br.srv.URL+"/metadata", root)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.RemoteTargetsURL = br.srv.URL + "/targets"
	cfg.LocalMetadataDir = filepath.Join(dir, "md")
	cfg.LocalTargetsDir = filepath.Join(dir, "targets")
	if err := cfg.SetDefaultFetcherHTTPClient(&http.Client{Timeout: time.Minute}); err != nil {
		tb.Fatal(err)
	}
	up, err := updater.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := up.Refresh(); err != nil {
		tb.Fatal(err)
	}
	return up
}

// BenchmarkGoTUFDownloadTarget measures go-tuf's in-memory DownloadTarget on
// the same repository, for comparison.
func BenchmarkGoTUFDownloadTarget(b *testing.B) {
	size := benchSize(b)
	br := newBenchRepo(b, size)
	dir := b.TempDir()
	up := newGoTUFUpdater(b, br, dir)
	tf, err := up.GetTargetInfo("fw.bin")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		if _, _, err := up.DownloadTarget(tf, filepath.Join(dir, "fw.bin"), ""); err != nil {
			b.Fatal(err)
		}
	}
	reportMBps(b, size)
}

// BenchmarkRawHTTPCopy is the ceiling: the same GET copied into a file and
// fsynced, without hashing.
func BenchmarkRawHTTPCopy(b *testing.B) {
	size := benchSize(b)
	br := newBenchRepo(b, size)
	dst := filepath.Join(b.TempDir(), "raw")
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		if err := rawCopy(br.url, dst); err != nil {
			b.Fatal(err)
		}
	}
	reportMBps(b, size)
}

func rawCopy(url, dst string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		return err
	}
	return f.Sync()
}

// BenchmarkSHA256 is the machine's single-core sha256 throughput.
func BenchmarkSHA256(b *testing.B) {
	buf := payload(1<<20, 3)
	b.SetBytes(int64(len(buf)))
	for range b.N {
		sha256.Sum256(buf)
	}
	reportMBps(b, int64(len(buf)))
}

// TestPeakRSS downloads one target per path in a child process and reports
// each child's peak RSS (ru_maxrss) and wall time. It runs only with
// FIELDGATE_BENCH_RSS=1 (make bench); size from FIELDGATE_BENCH_SIZE, paths
// and their order from FIELDGATE_RSS_MODES (default raw,fetch,gotuf).
func TestPeakRSS(t *testing.T) {
	if mode := os.Getenv("FIELDGATE_RSS_CHILD"); mode != "" {
		rssChild(t, mode)
		return
	}
	if os.Getenv("FIELDGATE_BENCH_RSS") != "1" {
		t.Skip("set FIELDGATE_BENCH_RSS=1 to measure peak RSS (make bench)")
	}
	size := benchSize(t)
	br := newBenchRepo(t, size)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("peak RSS, target %d MiB\n%-22s %10s %10s %10s\n", size>>20, "path", "wall", "MiB/s", "maxRSS")
	modes := []string{"raw", "fetch", "gotuf"}
	if m := os.Getenv("FIELDGATE_RSS_MODES"); m != "" {
		modes = strings.Split(m, ",")
	}
	for _, mode := range modes {
		cmd := exec.Command(exe, "-test.run=^TestPeakRSS$")
		cmd.Env = append(os.Environ(), "FIELDGATE_RSS_CHILD="+mode,
			"FIELDGATE_RSS_BASE="+br.srv.URL, "FIELDGATE_RSS_ROOT="+br.rootPath,
			"FIELDGATE_RSS_URL="+br.url, "FIELDGATE_RSS_DIR="+t.TempDir())
		start := time.Now()
		out, err := cmd.CombinedOutput()
		wall := time.Since(start)
		if err != nil {
			t.Fatalf("child %s: %v\n%s", mode, err, out)
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		fmt.Printf("%-22s %10s %10.0f %8d MiB\n", mode, wall.Round(time.Millisecond), float64(size)/(1<<20)/wall.Seconds(), ru.Maxrss>>10)
	}
}

func rssChild(t *testing.T, mode string) {
	base, dir := os.Getenv("FIELDGATE_RSS_BASE"), os.Getenv("FIELDGATE_RSS_DIR")
	br := &benchRepo{srv: &httptest.Server{URL: base}, rootPath: os.Getenv("FIELDGATE_RSS_ROOT")}
	switch mode {
	case "raw":
		if err := rawCopy(os.Getenv("FIELDGATE_RSS_URL"), filepath.Join(dir, "raw")); err != nil {
			t.Fatal(err)
		}
	case "fetch":
		c := br.client(t, dir)
		snap, err := c.Refresh(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Fetch(context.Background(), snap.Targets[0], nil); err != nil {
			t.Fatal(err)
		}
	case "gotuf":
		up := newGoTUFUpdater(t, br, dir)
		tf, err := up.GetTargetInfo("fw.bin")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := up.DownloadTarget(tf, filepath.Join(dir, "fw.bin"), ""); err != nil {
			t.Fatal(err)
		}
	}
}
