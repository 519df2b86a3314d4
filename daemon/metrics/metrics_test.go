// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fieldgate/fieldgate/daemon"
)

// exposition is a scrape read back: the value of every series (as
// written: name{labels}) and the TYPE of every family.
type exposition struct {
	values map[string]float64
	types  map[string]string
}

// parse reads the Prometheus text format strictly enough for these tests:
// a line is a comment (# HELP, # TYPE) or "series value".
func parse(t *testing.T, text string) exposition {
	t.Helper()
	e := exposition{values: map[string]float64{}, types: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			e.types[name] = typ
			continue
		}
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("exposition line %q: no value", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("exposition line %q: %v", line, err)
		}
		if _, dup := e.values[line[:i]]; dup {
			t.Fatalf("exposition has %s twice", line[:i])
		}
		e.values[line[:i]] = v
	}
	return e
}

func scrape(t *testing.T, m *Metrics) exposition {
	t.Helper()
	var b strings.Builder
	n, err := m.WriteTo(&b)
	if err != nil {
		t.Fatalf("WriteTo = %v", err)
	}
	if n != int64(b.Len()) {
		t.Errorf("WriteTo = %d bytes, wrote %d", n, b.Len())
	}
	return parse(t, b.String())
}

// counts is a daemon.Counts to scrape; the test changes it between
// scrapes.
type counts struct {
	c   daemon.Counts
	err error
}

func (c *counts) get() (daemon.Counts, error) { return c.c, c.err }

func TestExposition(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	src := &counts{c: daemon.Counts{
		At:    at,
		Jobs:  map[string]int{"running": 1, "succeeded": 2},
		Steps: map[string]int{"transfer": 1, "committed": 16, "rolled-back": 0},
	}}
	m := New(src.get, []string{"xmodem", "tftp"})

	// Before anything happened: the series a rate needs exist at 0, and
	// no refresh age is claimed before a refresh.
	e := scrape(t, m)
	for _, s := range []string{
		`fieldgate_transfer_bytes_total{protocol="xmodem"}`, `fieldgate_transfer_bytes_total{protocol="tftp"}`,
		`fieldgate_transfers_total{protocol="tftp",result="ok"}`, `fieldgate_transfers_total{protocol="tftp",result="failed"}`,
		`fieldgate_transfer_seconds_count{protocol="xmodem"}`,
		`fieldgate_tuf_refreshes_total{result="ok"}`, `fieldgate_tuf_refreshes_total{result="failed"}`,
	} {
		if v, ok := e.values[s]; !ok || v != 0 {
			t.Errorf("before any transfer: %s = %v (present %v), want 0", s, v, ok)
		}
	}
	if _, ok := e.values["fieldgate_tuf_refresh_age_seconds"]; ok {
		t.Error("fieldgate_tuf_refresh_age_seconds exported before a refresh")
	}

	const img = 40 << 10
	m.Transfer("xmodem", img, 2*time.Second, nil)
	m.Transfer("xmodem", img, 800*time.Millisecond, nil)
	m.Transfer("xmodem", 1000, 40*time.Second, errors.New("line dropped"))
	m.Transfer("smp", 512, time.Second, nil) // a protocol not given to New
	m.Refresh(nil)
	m.Refresh(nil)
	m.Refresh(errors.New("repository unreachable"))
	src.c.LastRefresh = at.Add(-90 * time.Second)
	src.c.OutboxDepth, src.c.OutboxAcked = 3, 1234
	src.c.AuditRecords, src.c.StoreBytes = 812, 1<<20
	src.c.DiskFree, src.c.DiskTotal = 3<<30, 8<<30

	e = scrape(t, m)
	want := map[string]float64{
		`fieldgate_transfer_bytes_total{protocol="xmodem"}`:              2*img + 1000,
		`fieldgate_transfers_total{protocol="xmodem",result="ok"}`:       2,
		`fieldgate_transfers_total{protocol="xmodem",result="failed"}`:   1,
		`fieldgate_transfer_seconds_count{protocol="xmodem"}`:            3,
		`fieldgate_transfer_seconds_sum{protocol="xmodem"}`:              42.8,
		`fieldgate_transfer_seconds_bucket{protocol="xmodem",le="1"}`:    1,
		`fieldgate_transfer_seconds_bucket{protocol="xmodem",le="2.5"}`:  2,
		`fieldgate_transfer_seconds_bucket{protocol="xmodem",le="30"}`:   2,
		`fieldgate_transfer_seconds_bucket{protocol="xmodem",le="60"}`:   3,
		`fieldgate_transfer_seconds_bucket{protocol="xmodem",le="+Inf"}`: 3,
		`fieldgate_transfer_bytes_total{protocol="smp"}`:                 512,
		`fieldgate_transfer_bytes_total{protocol="tftp"}`:                0,
		`fieldgate_tuf_refreshes_total{result="ok"}`:                     2,
		`fieldgate_tuf_refreshes_total{result="failed"}`:                 1,
		`fieldgate_tuf_last_refresh_timestamp_seconds`:                   float64(at.Unix() - 90),
		`fieldgate_tuf_refresh_age_seconds`:                              90,
		`fieldgate_jobs{phase="running"}`:                                1,
		`fieldgate_jobs{phase="succeeded"}`:                              2,
		`fieldgate_steps{phase="transfer"}`:                              1,
		`fieldgate_steps{phase="committed"}`:                             16,
		`fieldgate_steps{phase="rolled-back"}`:                           0,
		`fieldgate_outbox_depth`:                                         3,
		`fieldgate_outbox_delivered_total`:                               1234,
		`fieldgate_audit_records`:                                        812,
		`fieldgate_state_db_bytes`:                                       1 << 20,
		`fieldgate_state_dir_free_bytes`:                                 3 << 30,
		`fieldgate_state_dir_size_bytes`:                                 8 << 30,
	}
	for s, w := range want {
		if got, ok := e.values[s]; !ok || got != w {
			t.Errorf("%s = %v (present %v), want %v", s, got, ok, w)
		}
	}
	wantTypes := map[string]string{
		"fieldgate_transfer_bytes_total": "counter", "fieldgate_transfers_total": "counter",
		"fieldgate_transfer_seconds": "histogram", "fieldgate_tuf_refreshes_total": "counter",
		"fieldgate_tuf_last_refresh_timestamp_seconds": "gauge", "fieldgate_tuf_refresh_age_seconds": "gauge",
		"fieldgate_jobs": "gauge", "fieldgate_steps": "gauge", "fieldgate_outbox_depth": "gauge",
		"fieldgate_outbox_delivered_total": "counter", "fieldgate_audit_records": "gauge",
		"fieldgate_state_db_bytes": "gauge", "fieldgate_state_dir_free_bytes": "gauge", "fieldgate_state_dir_size_bytes": "gauge",
	}
	if diff := cmp.Diff(wantTypes, e.types); diff != "" {
		t.Errorf("TYPE lines (-want +got):\n%s", diff)
	}
	// Every series is a documented fieldgate_ metric.
	for s := range e.values {
		family, _, _ := strings.Cut(s, "{")
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(family, "_bucket"), "_sum"), "_count")
		if _, ok := wantTypes[base]; !ok {
			t.Errorf("series %s is not one of the metrics this test knows (and docs/metrics.md lists)", s)
		}
	}

	// Gauges follow the daemon: a job that ended is no longer running.
	src.c.Jobs["running"], src.c.Jobs["succeeded"] = 0, 3
	e = scrape(t, m)
	if e.values[`fieldgate_jobs{phase="running"}`] != 0 || e.values[`fieldgate_jobs{phase="succeeded"}`] != 3 {
		t.Errorf("after the job ended: running %v, succeeded %v; want 0 and 3",
			e.values[`fieldgate_jobs{phase="running"}`], e.values[`fieldgate_jobs{phase="succeeded"}`])
	}
}

// TestMetricsDocumented checks that docs/metrics.md has a row for every
// metric a scrape shows.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	src := &counts{c: daemon.Counts{At: time.Now(), LastRefresh: time.Now(), Jobs: map[string]int{"running": 1}, Steps: map[string]int{"pending": 1}}}
	m := New(src.get, []string{"xmodem"})
	for family := range scrape(t, m).types {
		if !strings.Contains(string(doc), "| `"+family+"` |") {
			t.Errorf("docs/metrics.md has no table row for %s", family)
		}
	}
}

func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}
}

func TestServerOnUnixSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "metrics.sock")
	if err := os.WriteFile(sock, nil, 0o600); err != nil { // left by an earlier run
		t.Fatal(err)
	}
	src := &counts{c: daemon.Counts{At: time.Now(), Jobs: map[string]int{"running": 1}}}
	s := &Server{Addr: "unix:" + sock, Metrics: New(src.get, []string{"tftp"}), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket %s: %v, %v; want a socket with mode 0660", sock, fi.Mode(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	c := unixClient(sock)

	get := func(method, path string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://gateway"+path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	resp, body := get("GET", "/metrics")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("GET /metrics = %s, Content-Type %q; want 200 and the text format 0.0.4", resp.Status, resp.Header.Get("Content-Type"))
	}
	if e := parse(t, body); e.values[`fieldgate_jobs{phase="running"}`] != 1 {
		t.Errorf("GET /metrics: fieldgate_jobs{phase=\"running\"} = %v, want 1", e.values[`fieldgate_jobs{phase="running"}`])
	}
	if resp, _ := get("GET", "/"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET / = %s, want 404", resp.Status)
	}
	if resp, _ := get("POST", "/metrics"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics = %s, want 405", resp.Status)
	}
	src.err = errors.New("store unreadable")
	if resp, body := get("GET", "/metrics"); resp.StatusCode != http.StatusInternalServerError || !strings.Contains(body, "store unreadable") {
		t.Errorf("GET /metrics with the store unreadable = %s %q, want 500 saying why", resp.Status, body)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after Run returned: %v, want it removed", err)
	}
}

func TestServerOnLoopback(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	src := &counts{c: daemon.Counts{At: time.Now()}}
	s := &Server{Addr: addr, Metrics: New(src.get, nil), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
	}()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if e := parse(t, string(body)); resp.StatusCode != 200 || e.values[`fieldgate_outbox_depth`] != 0 || len(e.values) == 0 {
		t.Errorf("GET /metrics = %s with %d series, want 200 and series", resp.Status, len(e.values))
	}
}

func TestServerRefusesBeyondLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:9464", "192.0.2.7:9464", "[::]:9464", "localhost:9464"} {
		s := &Server{Addr: addr, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		if err := s.Listen(); err == nil || !strings.Contains(err.Error(), "metrics.listen") {
			if s.ln != nil {
				s.ln.Close()
			}
			t.Errorf("Listen(%s) = %v, want a refusal naming metrics.listen", addr, err)
		}
	}
}

// BenchmarkScrape renders one scrape of a gateway with four protocols
// in use and every phase listed. The daemon's Counts, which reads the
// store, is not included: TestInteropPrometheusScrape logs what whole
// scrapes take, as prometheus measures them.
func BenchmarkScrape(b *testing.B) {
	c := daemon.Counts{At: time.Now(), LastRefresh: time.Now(), Jobs: map[string]int{}, Steps: map[string]int{}}
	for _, p := range []string{"awaiting-approval", "scheduled", "running", "succeeded", "partially-failed", "halted", "failed", "cancelled"} {
		c.Jobs[p] = 1
	}
	for _, p := range []string{"pending", "backup", "transfer", "activate", "verify", "soak", "committed", "rollback", "rolled-back", "failed", "skipped"} {
		c.Steps[p] = 2
	}
	protocols := []string{"xmodem", "tftp", "smp-udp", "ssh"}
	m := New(func() (daemon.Counts, error) { return c, nil }, protocols)
	for _, p := range protocols {
		m.Transfer(p, 1<<20, time.Minute, nil)
	}
	var n int64
	b.ReportAllocs()
	for b.Loop() {
		n, _ = m.WriteTo(io.Discard)
	}
	b.ReportMetric(float64(n), "bytes/scrape")
}
