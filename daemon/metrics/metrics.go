// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"fmt"
	"io"
	"sync"
	"time"

	vm "github.com/VictoriaMetrics/metrics"

	"github.com/fieldgate/fieldgate/daemon"
)

// TransferBuckets are the upper bounds, in seconds, of the
// fieldgate_transfer_seconds histogram: a small image over TFTP takes
// under a second, a large one over a 9600 baud line an hour.
var TransferBuckets = []float64{0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

// Metrics holds the daemon's counters and renders them with the numbers
// of the moment. Create it with New; it is safe for concurrent use.
type Metrics struct {
	set    *vm.Set
	counts func() (daemon.Counts, error)
	mu     sync.Mutex // one scrape at a time sets the gauges and writes them
}

var _ daemon.Meter = (*Metrics)(nil)

// New returns metrics that read the numbers of the moment from counts at
// every scrape (the daemon's Counts). The transfer series of each of
// protocols, and both refresh outcomes, exist from the start at 0, so
// that a rate over the first transfer or failure is right.
func New(counts func() (daemon.Counts, error), protocols []string) *Metrics {
	// TYPE lines tell Prometheus which series are counters and histograms.
	// The switch is the library's, process-wide; nothing else in
	// fieldgated uses the library.
	vm.ExposeMetadata(true)
	m := &Metrics{set: vm.NewSet(), counts: counts}
	for _, p := range protocols {
		m.transferSeries(p, "ok")
		m.transferSeries(p, "failed")
	}
	m.refreshes("ok")
	m.refreshes("failed")
	return m
}

func outcome(err error) string {
	if err != nil {
		return "failed"
	}
	return "ok"
}

// transferSeries returns (creating them at 0) the series of one protocol.
func (m *Metrics) transferSeries(protocol, result string) (bytes, count *vm.Counter, seconds *vm.PrometheusHistogram) {
	bytes = m.set.GetOrCreateCounter(fmt.Sprintf("fieldgate_transfer_bytes_total{protocol=%q}", protocol))
	count = m.set.GetOrCreateCounter(fmt.Sprintf("fieldgate_transfers_total{protocol=%q,result=%q}", protocol, result))
	seconds = m.set.GetOrCreatePrometheusHistogramExt(fmt.Sprintf("fieldgate_transfer_seconds{protocol=%q}", protocol), TransferBuckets)
	return bytes, count, seconds
}

func (m *Metrics) refreshes(result string) *vm.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf("fieldgate_tuf_refreshes_total{result=%q}", result))
}

// Transfer implements daemon.Meter.
func (m *Metrics) Transfer(protocol string, n int64, took time.Duration, err error) {
	bytes, count, seconds := m.transferSeries(protocol, outcome(err))
	bytes.AddInt64(n)
	count.Inc()
	seconds.Update(took.Seconds())
}

// Refresh implements daemon.Meter.
func (m *Metrics) Refresh(err error) { m.refreshes(outcome(err)).Inc() }

// WriteTo writes every metric in the Prometheus text format (version
// 0.0.4), with the daemon's numbers read now. It implements io.WriterTo.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	c, err := m.counts()
	if err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	gauge := func(name string, v float64) { m.set.GetOrCreateGauge(name, nil).Set(v) }
	for p, n := range c.Jobs {
		gauge(fmt.Sprintf("fieldgate_jobs{phase=%q}", p), float64(n))
	}
	for p, n := range c.Steps {
		gauge(fmt.Sprintf("fieldgate_steps{phase=%q}", p), float64(n))
	}
	gauge("fieldgate_outbox_depth", float64(c.OutboxDepth))
	m.set.GetOrCreateCounter("fieldgate_outbox_delivered_total").Set(c.OutboxAcked)
	if !c.LastRefresh.IsZero() {
		gauge("fieldgate_tuf_last_refresh_timestamp_seconds", float64(c.LastRefresh.UnixMilli())/1000)
		gauge("fieldgate_tuf_refresh_age_seconds", c.At.Sub(c.LastRefresh).Seconds())
	}
	gauge("fieldgate_audit_records", float64(c.AuditRecords))
	gauge("fieldgate_state_db_bytes", float64(c.StoreBytes))
	gauge("fieldgate_state_dir_free_bytes", float64(c.DiskFree))
	gauge("fieldgate_state_dir_size_bytes", float64(c.DiskTotal))
	cw := &countingWriter{w: w}
	m.set.WritePrometheus(cw)
	return cw.n, cw.err
}

type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(b []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.err = err
	return n, err
}
