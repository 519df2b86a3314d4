// SPDX-License-Identifier: Apache-2.0

// Package metrics exposes what the daemon does in the Prometheus text
// format, on a listener of its own that stays on the gateway: a loopback
// address or a Unix socket, off unless configured (docs/metrics.md lists
// every metric).
//
// Metrics implements daemon.Meter, which the daemon feeds as it transfers
// images and refreshes metadata; everything else (jobs and steps by phase,
// the outbox, the audit log, free disk) is read from daemon.Counts when a
// scrape arrives, so an idle gateway that nobody scrapes does no work for
// its metrics. The package is the only importer of
// github.com/VictoriaMetrics/metrics, chosen over the Prometheus client
// library for its size (BENCHMARKS.md, Footprint).
package metrics
